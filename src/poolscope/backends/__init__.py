"""Executors: one backend class each, found through the registry.

Importing this package registers every built-in executor.
"""

from . import processes, serial, threads  # noqa: F401  (registration happens on import)
from ._base import REGISTRY, Backend, get_backend, register

__all__ = ["REGISTRY", "Backend", "get_backend", "register"]
