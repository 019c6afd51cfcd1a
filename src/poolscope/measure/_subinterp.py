"""What runs inside each subinterpreter of the ``interpreter`` executor.

Every subinterpreter imports this module afresh, so it imports only the probe and the standard
library: an isolated subinterpreter (its own GIL) can load only extension modules that support
it, and whatever is imported here is imported once per worker.

Two drivers use it (see ``backends/interpreters.py``):

- Python 3.13, the low-level ``_interpreters`` module: ``setup`` once per subinterpreter, then
  ``run`` per chunk; each sends one pickled message back on a cross-interpreter queue.
- Python 3.14+, ``concurrent.futures.InterpreterPoolExecutor``: ``run_payload_chunk`` is the
  task; the executor pickles it, its arguments and the ChunkRecord it returns.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .probe import Chunk, ChunkRecord, run_chunk

__all__ = ["run", "run_payload_chunk", "setup", "why"]

PROTOCOL = 5
UNBOUND = 2  # _interpqueues: what happens to items of a destroyed interpreter (error)

_fn: Callable[[Any], Any] | None = None
_payload: bytes | None = None
_queue_id: int | None = None


def why(exc: BaseException) -> str:
    """A one-line reason for a function that cannot be loaded in a subinterpreter."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ImportError) and "subinterpreter" in str(exc):
        text += (" — an extension module it needs does not support subinterpreters with their "
                 "own GIL; use a process executor")
    return text


def _send(message: tuple[Any, ...]) -> None:
    import _interpqueues  # type: ignore[import-not-found]  # Python 3.13

    data = pickle.dumps(message, PROTOCOL)
    try:
        _interpqueues.put(_queue_id, data, 0, UNBOUND)
    except TypeError:  # a 3.13 release whose put() takes no unbound operation
        _interpqueues.put(_queue_id, data, 0)


def setup(queue_id: int, path: str, payload: bytes) -> None:
    """3.13: once per subinterpreter: this process's sys.path, then unpickle the function."""
    global _fn, _queue_id
    _queue_id = queue_id
    sys.path[:] = path.split("\0")
    try:
        _fn = pickle.loads(payload)  # cloudpickle's output; it imports cloudpickle if by value
    except BaseException as exc:
        _send(("error", f"the function cannot be loaded in a subinterpreter: {why(exc)}"))
    else:
        _send(("ready",))


def run(data: bytes) -> None:
    """3.13: run one pickled chunk and send its record back."""
    try:
        chunk: Chunk = pickle.loads(data)
        assert _fn is not None, "setup() first"
        record = run_chunk(_fn, chunk)
    except BaseException as exc:
        _send(("error", f"a chunk failed in a subinterpreter: {type(exc).__name__}: {exc}"))
        return
    try:
        out = pickle.dumps(("record", record), PROTOCOL)
    except Exception:  # a return value that cannot be pickled: the records still count
        out = pickle.dumps(("record", record._replace(results=[])), PROTOCOL)
    import _interpqueues  # type: ignore[import-not-found]

    try:
        _interpqueues.put(_queue_id, out, 0, UNBOUND)
    except TypeError:
        _interpqueues.put(_queue_id, out, 0)


class FunctionNotShareable(RuntimeError):
    """The workload function could not be loaded in a subinterpreter (3.14+ driver)."""


def run_payload_chunk(payload: bytes, path: Sequence[str], chunk: Chunk) -> ChunkRecord:
    """3.14+: the InterpreterPoolExecutor task; unpickles the function once per subinterpreter."""
    global _fn, _payload
    if _payload != payload:
        sys.path[:] = list(path)
        try:
            _fn = pickle.loads(payload)
        except BaseException as exc:
            raise FunctionNotShareable(
                f"the function cannot be loaded in a subinterpreter: {why(exc)}") from None
        _payload = payload
    assert _fn is not None
    return run_chunk(_fn, chunk)
