"""Executors: one backend class each, found through the registry.

Importing this package registers every built-in executor, in the order they are listed.
"""

# isort: skip_file
from . import serial, threads, processes  # noqa: F401  (registration happens on import)
from . import asyncio_, loky_  # noqa: F401
from . import interpreters  # noqa: F401
from . import dask_  # noqa: F401
from ._base import REGISTRY, Backend, ChildReadings, get_backend, register, resolve

__all__ = ["REGISTRY", "Backend", "ChildReadings", "get_backend", "register", "resolve"]
