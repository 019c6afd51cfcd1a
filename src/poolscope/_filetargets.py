"""File targets (``path/to/file.py:function``) under one module name in every process.

A file target is imported as the module ``poolscope_user_<its real path, spelt as an
identifier>``. The name says where the file is, so any process that imported poolscope — a
fork, spawn, forkserver or loky worker, the isolated child, a Dask worker — imports the same file
under the same name when it unpickles a reference into it: the function itself, and the
functions, classes and partials its results refer to, which the worker then pickles back by
reference to the module the parent has. A name that depends on nothing else (not ``hash()``,
salted per process; not a registry in the environment, which a forkserver started earlier never
sees) is what keeps every process on the same module.

``poolscope/__init__.py`` installs the finder: it must stay cheap (standard library only).
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["PREFIX", "install", "module_name", "module_path"]

PREFIX = "poolscope_user_"
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX = frozenset("0123456789abcdef")


def module_name(path: str | os.PathLike[str]) -> str:
    """The module name of the file at ``path``: its real path with every byte outside
    ``[A-Za-z0-9]`` written ``_xx`` (hex), so the name is an identifier and can be read back."""
    return _spell(os.fsencode(os.path.realpath(path)))


def _spell(raw: bytes) -> str:
    return PREFIX + "".join(chr(b) if b in _PLAIN else f"_{b:02x}" for b in raw)


def module_path(name: str) -> str | None:
    """The file a ``module_name`` names, or None when ``name`` is not one."""
    if not name.startswith(PREFIX):
        return None
    spelt, raw, i = name[len(PREFIX):], bytearray(), 0
    while i < len(spelt):
        escaped = spelt[i + 1:i + 3]
        if spelt[i] == "_" and len(escaped) == 2 and set(escaped) <= _HEX:
            raw.append(int(escaped, 16))
            i += 3
        elif ord(spelt[i]) in _PLAIN:
            raw.append(ord(spelt[i]))
            i += 1
        else:
            return None
    if _spell(bytes(raw)) != name:
        return None  # one file, one name: "_61" for "a" would import it a second time
    path = os.fsdecode(bytes(raw))
    return path if os.path.isabs(path) else None  # module_name spells real paths only


class _Finder:
    """A ``sys.meta_path`` finder for file targets' module names."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        file = module_path(fullname)
        if file is None or not os.path.isfile(file):
            return None  # not ours, or the file is not here (a remote worker): ImportError
        import importlib.util

        return importlib.util.spec_from_file_location(fullname, file)

    @staticmethod
    def invalidate_caches() -> None:
        return None


def install() -> None:
    """Let this process import file targets by their module names (idempotent)."""
    if _Finder not in sys.meta_path:
        sys.meta_path.append(_Finder)  # type: ignore[arg-type]
