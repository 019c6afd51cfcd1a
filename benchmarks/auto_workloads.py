"""The long workloads of ``bench_auto.py``: one function per kind of work, one integer item each.

``bench_auto.py`` sizes each to a serial run of at least 5 s (by a serial sample at start-up)
and times ``poolscope.map`` against bare serial, thread and process runs of it. Module-level
functions, so that process-pool workers can import them (``benchmarks/`` is the script's own
directory, hence on ``sys.path``). The fourth long kind, near-empty items, is the truth suite's
``tiny`` itself.
"""

from __future__ import annotations

import hashlib
import time

from truth_workloads import MB, _spin


def cpu_bound(item: int) -> int:
    """Pure-Python arithmetic, about 5 ms: holds the GIL, so only processes run it in parallel."""
    return _spin(50_000) + item


def gil_releasing(item: int) -> str:
    """SHA-256 over 8 MB (a 1 MB buffer 8 times), about 10-20 ms: C code that releases the GIL."""
    block = bytes([item % 256]) * MB
    digest = hashlib.sha256()
    for _ in range(8):
        digest.update(block)
    return digest.hexdigest()


def io_bound(item: int) -> int:
    """A 10 ms blocking wait (a short network call): releases the GIL, uses no CPU."""
    time.sleep(0.01)
    return item
