"""Machine and interpreter metadata, collected with every run."""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any

import psutil

__all__ = ["collect_environment", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask), not just the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def collect_environment() -> dict[str, Any]:
    gil_check = getattr(sys, "_is_gil_enabled", None)
    memory = psutil.virtual_memory()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "gil_enabled": bool(gil_check()) if gil_check else True,
        "cpu_count": usable_cores(),
        "cpu_count_machine": os.cpu_count(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "hostname": socket.gethostname(),
        "memory_bytes": memory.total,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
