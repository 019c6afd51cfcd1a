"""Workloads: a function and its items.

Built-in workloads each stress one thing (the GIL, sleeping, GIL-releasing C code, dispatch
overhead, argument transfer); user workloads are named ``package.module:function`` or
``path/to/file.py:function``. Items come from a count (``0..N-1``) or a JSON-lines file.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ItemsError, TargetError, UsageError
from ._filetargets import module_name

__all__ = [
    "BUILTIN_WORKLOADS",
    "BuiltinWorkload",
    "Workload",
    "load_items_file",
    "resolve_workload",
]


@dataclass(frozen=True)
class Workload:
    """A function and the items it runs over, with the name it is reported under."""

    fn: Callable[[Any], Any]
    items: Sequence[Any]
    target: str
    size: int | None = None

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TargetError(f"{self.target!r} is not callable")


# --- built-in workload functions -------------------------------------------------------------
# They are module-level so every process executor can import them by reference. Each takes the
# item (ignored or used as a seed) and a size knob bound with functools.partial.


def cpu(item: Any, size: int = 1_000_000) -> int:
    """The notebook's worker: a pure-Python loop that holds the GIL."""
    for _ in range(size):
        pass
    return size


def io(item: Any, size: int = 50) -> int:
    """Sleep ``size`` milliseconds: stands for a network or disk wait (releases the GIL)."""
    time.sleep(size / 1000)
    return size


async def io_async(item: Any, size: int = 50) -> int:
    """Await ``asyncio.sleep`` for ``size`` milliseconds: a coroutine waiting on the network.

    The ``asyncio`` executor awaits it on its event loop; every other executor runs each call
    to completion on an event loop of the worker's thread (see ``probe.run_chunk``).
    """
    import asyncio

    await asyncio.sleep(size / 1000)
    return size


_HASH_BLOCK = bytes(range(256)) * 4096  # 1 MiB, built once per process


def hash_(item: Any, size: int = 16) -> str:
    """SHA-256 over ``size`` MiB: C code that releases the GIL for large buffers."""
    digest = hashlib.sha256()
    for _ in range(size):
        digest.update(_HASH_BLOCK)
    return digest.hexdigest()


def _json_document(size: int) -> str:
    return json.dumps([{"id": i, "name": f"item-{i}", "tags": ["a", "b"], "x": i * 0.5}
                       for i in range(size)])


def json_(item: Any, size: int = 20_000) -> int:
    """Parse and re-serialise a JSON document of ``size`` records: holds the GIL."""
    document = _json_document(size)
    return len(json.dumps(json.loads(document)))


def tiny(item: Any, size: int = 0) -> Any:
    """Almost nothing: overhead-bound, shows dispatch cost."""
    return item


def payload(item: Any, size: int = 8) -> int:
    """Receives a large argument (``size`` MiB) and returns its length: transfer-bound."""
    return len(item)


def _payload_items(count: int, size: int) -> list[bytes]:
    return [bytes(size * 1024 * 1024) for _ in range(count)]


@dataclass(frozen=True)
class BuiltinWorkload:
    name: str
    fn: Callable[..., Any]
    stresses: str
    size_meaning: str
    default_size: int
    default_items: int = 40
    make_items: Callable[[int, int], Sequence[Any]] | None = field(default=None)

    def workload(self, items: int | Sequence[Any] | None, size: int | None) -> Workload:
        size = self.default_size if size is None else size
        if size < 0:
            raise UsageError(f"--size must be zero or more, got {size}")
        count = self.default_items if items is None else items
        if isinstance(count, int):
            made = self.make_items(count, size) if self.make_items else range(count)
        else:
            made = count
        fn = functools.partial(self.fn, size=size)
        return Workload(fn=fn, items=made, target=self.name, size=size)


BUILTIN_WORKLOADS: dict[str, BuiltinWorkload] = {
    w.name: w
    for w in [
        BuiltinWorkload("cpu", cpu, "the GIL: a pure-Python loop (the notebook's worker)",
                        "loop iterations per item", 1_000_000),
        BuiltinWorkload("io", io, "waiting: time.sleep, which releases the GIL",
                        "milliseconds of sleep per item", 50),
        BuiltinWorkload("io-async", io_async,
                        "waiting in coroutines: await asyncio.sleep (made for -e asyncio)",
                        "milliseconds of sleep per item", 50),
        BuiltinWorkload("hash", hash_, "GIL-releasing C code: hashlib SHA-256 over a buffer",
                        "MiB hashed per item", 16),
        BuiltinWorkload("json", json_, "the GIL in C code: json parsing and serialising",
                        "records per JSON document", 20_000),
        BuiltinWorkload("tiny", tiny, "dispatch overhead: items that do almost nothing",
                        "unused", 0, default_items=10_000),
        BuiltinWorkload("payload", payload, "transfer: large arguments pickled to workers",
                        "MiB per argument", 8, default_items=20, make_items=_payload_items),
    ]
}


def resolve_workload(target: str, items: int | Sequence[Any] | None = None,
                     size: int | None = None) -> Workload:
    """Turn a CLI target (built-in name, ``pkg.mod:fn`` or ``file.py:fn``) into a Workload."""
    if target in BUILTIN_WORKLOADS:
        return BUILTIN_WORKLOADS[target].workload(items, size)
    if size is not None:
        raise UsageError("--size applies only to the built-in workloads")
    fn = resolve_function(target)
    if items is None:
        raise UsageError(f"{target}: give items with --items N or --items-from FILE")
    made = range(items) if isinstance(items, int) else items
    return Workload(fn=fn, items=made, target=target)


def _working_directory_importable() -> None:
    """A module beside the user is a target, as for ``python -m`` and ``python -c``: the
    ``poolscope`` script's own directory (the environment's bin) is what its sys.path starts
    with instead. What is on sys.path is forwarded to the isolated child and to workers."""
    cwd = os.getcwd()
    if not any(os.path.realpath(entry or cwd) == os.path.realpath(cwd) for entry in sys.path):
        sys.path.insert(0, cwd)


def resolve_function(target: str) -> Callable[..., Any]:
    """Import ``pkg.module:function`` or load ``path/file.py:function``."""
    module_part, sep, attr_path = target.rpartition(":")
    if not sep or not module_part or not attr_path:
        known = ", ".join(BUILTIN_WORKLOADS)
        raise TargetError(
            f"unknown workload {target!r}: use a built-in ({known}), "
            "package.module:function or path/to/file.py:function")
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        module = _load_file_module(Path(module_part))
    else:
        _working_directory_importable()
        try:
            module = importlib.import_module(module_part)
        except ImportError as exc:
            raise TargetError(f"cannot import module {module_part!r}: {exc}") from None
        except Exception as exc:  # the module itself raised while importing
            raise TargetError(
                f"importing {module_part!r} raised {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError(f"{module_part!r} has no attribute {attr_path!r}") from None
    if not callable(obj):
        raise TargetError(f"{target!r} is not callable (it is a {type(obj).__name__})")
    return obj


def _load_file_module(path: Path) -> Any:
    """Import the file under its module name (``_filetargets``): the name every worker and the
    isolated child import it under too, so its functions and classes, and results that refer
    to them, pickle by reference in either direction."""
    if not path.is_file():
        raise TargetError(f"no such file: {path}")
    name = module_name(path)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:  # not a .py file: no loader takes it
            raise TargetError(f"cannot load {path} as a Python module") from None
        raise TargetError(f"running {path} raised {type(exc).__name__}: {exc}") from None
    except Exception as exc:
        raise TargetError(f"running {path} raised {type(exc).__name__}: {exc}") from None


@contextlib.contextmanager
def items_file_errors(path: str | Path) -> Iterator[None]:
    """Opening or reading an items file: an OSError becomes one ItemsError line."""
    try:
        yield
    except FileNotFoundError:
        raise ItemsError(f"items file not found: {path}") from None
    except IsADirectoryError:
        raise ItemsError(f"items file is a directory: {path}") from None
    except PermissionError:
        raise ItemsError(f"items file is not readable: {path}") from None
    except OSError as exc:
        raise ItemsError(f"cannot read items file {path}: {exc.strerror}") from None


def load_items_file(path: str | Path) -> list[Any]:
    """Read one JSON value per line; blank lines are skipped."""
    path = Path(path)
    with items_file_errors(path):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ItemsError(f"items file is not UTF-8 text: {path}") from None
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ItemsError(f"{path}:{number}: not a JSON value ({exc.msg})") from None
    if not items:
        raise ItemsError(f"items file has no items: {path}")
    return items
