"""The child side of ``NAME@/path/to/python`` (see ``backends/elsewhere.py``).

Run by another interpreter as ``python -m poolscope._child MODE`` with this poolscope's source
on PYTHONPATH. It imports only the standard library, the probe and the backends — never numpy,
pandas or anything of the analysis — and must run on every supported Python (3.10+).

- ``describe``: a pickled request on stdin ({"function": bytes | None});
  one JSON object on stdout: version, implementation, whether the build is free-threaded and
  whether the GIL is enabled (read after loading the function), every executor with why it is
  unavailable, and which packages poolscope would use there and whether they are installed.
- ``serve``: the trial protocol, framed pickles on stdin and stdout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import platform
import resource
import struct
import sys
import sysconfig
import time
from typing import Any

PROTOCOL = 5
_HEADER = struct.Struct(">Q")
_CLOUDPICKLE_USERS = "the executors that send the function to their own workers"


def _take_stdio() -> tuple[int, int]:
    """Keep stdin and stdout for the protocol; the workload's prints go to stderr instead."""
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return read_fd, write_fd


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check is not None else True


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _why(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return (f"{type(exc).__name__}: {exc} — install it there: {sys.executable} -m pip "
                f"install {exc.name.split('.')[0]}")
    return f"{type(exc).__name__}: {exc}"


def _interpreter() -> dict[str, Any]:
    return {"python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
            "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED"))}


def describe(request: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {**_interpreter(), "executors": [], "error": None,
                            "function_error": None}
    spec = importlib.util.find_spec("cloudpickle")
    version = None
    if spec is not None:
        try:
            from importlib.metadata import version as dist_version

            version = dist_version("cloudpickle")
        except Exception:
            version = "?"
    need = {"package": "cloudpickle", "installed": spec is not None, "version": version,
            "install": f"{sys.executable} -m pip install cloudpickle",
            "for": [_CLOUDPICKLE_USERS]}
    info["needs"] = [need]
    try:
        from poolscope.backends import REGISTRY
    except BaseException as exc:
        info["error"] = f"poolscope's executors cannot be imported there: {_why(exc)}"
        info["gil_enabled"] = _gil_enabled()
        return info
    for name, cls in REGISTRY.items():
        reason = cls.unavailable_reason()
        info["executors"].append({"name": name, "family": cls.family, "summary": cls.summary,
                                  "available": reason is None, "reason": reason})
    users = [e["name"] for e in info["executors"] if "cloudpickle" in (e["reason"] or "")]
    need["for"] = users or need["for"]
    if request.get("function") is not None:
        try:
            pickle.loads(request["function"])  # imports the workload's module
        except BaseException as exc:
            info["function_error"] = f"the function cannot be loaded: {_why(exc)}"
    info["gil_enabled"] = _gil_enabled()  # after the workload's imports: they can turn it on
    return info


class _Pipe:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd, self.write_fd = read_fd, write_fd

    def _read(self, n: int) -> bytes:
        parts, left = [], n
        while left:
            data = os.read(self.read_fd, min(left, 1 << 20))
            if not data:
                raise EOFError
            parts.append(data)
            left -= len(data)
        return b"".join(parts)

    def receive(self) -> tuple[Any, ...]:
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        message: tuple[Any, ...] = pickle.loads(self._read(size))
        return message

    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, PROTOCOL)
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.write_fd, view):]


def _dead_workers(backend: Any, chunks: Any) -> tuple[str, str, str, int | None] | None:
    """When the executor's own worker processes died (a process executor run here), the
    failure naming the item, pid, exit code and likely cause, as the parent's runner names
    them for its own pools; the board the chunks carry says what each was running."""
    processes = backend.worker_processes()
    if not processes or not chunks or not any(p.exitcode for p in processes.values()):
        return None
    from poolscope.board import Board
    from poolscope.faults import dead_worker_errors

    errors = dead_worker_errors(processes, Board.at(chunks[0].board))
    if not errors:
        return None
    message = "; ".join(e["message"] for e in errors)
    return ("failed", "WorkerDiedError", f"{message}; the pool broke, and the trial's items "
            "that had not reported are lost", errors[0]["item"])


def _failed(exc: BaseException) -> tuple[str, str, str]:
    return ("failed", type(exc).__name__, str(exc) or repr(exc))


def serve() -> None:
    pipe = _Pipe(*_take_stdio())
    try:
        _, hello = pipe.receive()
    except EOFError:
        return
    try:
        from poolscope.backends import get_backend
        from poolscope.probe import peak_rss, reset_peak_rss

        get_backend(hello["executor"])  # the first trial's: said now, before any clock runs
        from poolscope import native

        native.limit(hello.get("native_threads"))  # before the function's imports
        fn = pickle.loads(hello["function"])
        own_pools = native.pools()  # sent with this process's first record
    except BaseException as exc:
        pipe.send(("error", type(exc).__name__, f"under {sys.executable}: {_why(exc)}"))
        return
    pipe.send(("ready", {"pid": os.getpid(), "gil_enabled": _gil_enabled(), "cpu_s": _cpu_s(),
                         **_interpreter()}))
    backend = None
    # This process's peak memory goes at "closed", as VmHWM (reset at each "start"), not in
    # its records' ru_maxrss: the kernel carries that over an exec from the process that was
    # there before — a fork (or vfork) of poolscope itself, a hundred MiB or more.
    own_pid, peak_known = os.getpid(), peak_rss() is not None
    staged: dict[int, Any] = {}
    t0_ns = 0
    waiting_since: int | None = None  # since "started" was sent, until the first "run"
    done_at: int | None = None  # when the last "done" was sent
    while True:
        try:
            message = pipe.receive()
        except EOFError:  # the parent went away
            break
        if message[0] == "start":
            reset_peak_rss()  # a kept child's peak so far belongs to earlier trials
            # The trial's clock starts here, not in the parent; the waits for the parent's
            # next message ("run", "close") are taken out of it below.
            t0_ns, cpu0 = time.perf_counter_ns(), _cpu_s()  # staging's CPU stays out
            try:
                trial = message[1]  # a kept child serves every in-process executor's trials
                backend = get_backend(trial["executor"])(fn, trial["workers"])
                backend.start()
            except BaseException as exc:
                pipe.send(_failed(exc))
            else:
                pipe.send(("started", {"t0_ns": t0_ns, "cpu_s": cpu0}))
            waiting_since = time.perf_counter_ns()
        elif message[0] == "stage":  # the trial's chunks, sent before its clock starts
            staged = {chunk.first: chunk for chunk in message[1]}
            if message[1]:
                from poolscope.board import prepare

                prepare(message[1][0].board)  # its file on the board: made before the clock
        elif message[0] in ("run", "run-staged"):
            if waiting_since is not None:  # the first run after start
                t0_ns += time.perf_counter_ns() - waiting_since
                waiting_since = None
            t_last_ns = None
            try:
                assert backend is not None, "start first"
                chunks = message[1] if message[0] == "run" else [
                    staged[held] if (first, count) == (held, len(staged[held].items)) else
                    staged[held]._replace(first=first, items=staged[held].items[
                        first - held:first - held + count])
                    for held, first, count in message[1]]
                for record in backend.run(chunks):
                    try:
                        results = pickle.dumps(record.results[:8], PROTOCOL)
                    except Exception:
                        results = None
                    if record.pid == own_pid and peak_known:  # sent at "closed" instead
                        record = record._replace(process_maxrss=0)
                    if record.pid == own_pid and own_pools is not None:
                        record, own_pools = record._replace(native_threads=own_pools), None
                    pipe.send(("record", record._replace(results=[]), results))
                    t_last_ns = time.perf_counter_ns()  # as the runner's: when it has it
            except BaseException as exc:
                died = _dead_workers(backend, chunks) if backend is not None else None
                pipe.send(died or _failed(exc))
            else:
                pipe.send(("done", {"t0_ns": t0_ns, "t_last_ns": t_last_ns,
                                    "incidents": list(getattr(backend, "incidents", [])),
                                    "worker_info": dict(getattr(backend, "worker_info", {}))}))
                getattr(backend, "incidents", []).clear()
            done_at = time.perf_counter_ns()
        elif message[0] == "preflight":  # the first items, before any trial (preflight.py)
            from poolscope.preflight import try_items

            pipe.send(("preflighted", try_items(fn, message[1])))
        elif message[0] == "close":
            waited = time.perf_counter_ns() - done_at if done_at is not None else 0
            error = None
            try:
                if backend is not None:
                    backend.close()
            except BaseException as exc:
                error = (type(exc).__name__, str(exc) or repr(exc))
            t_end_ns = time.perf_counter_ns() - waited
            backend, done_at = None, None
            sys.stdout.flush()
            sys.stderr.flush()
            pipe.send(("closed", {"gil_enabled": _gil_enabled(), "error": error,
                                  "t_end_ns": t_end_ns, "cpu_s": _cpu_s(),
                                  "peak_rss": peak_rss() or 0}))
            # Then the parent either starts its next trial here or stops this process (and
            # anything the executor left running): waiting spares the trial the shutdown.


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else ""
    if mode == "describe":
        request = pickle.loads(sys.stdin.buffer.read() or pickle.dumps({}))
        out = os.dup(1)
        os.dup2(2, 1)  # what importing the workload prints must not mix with the answer
        info = describe(request)
        with os.fdopen(out, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(info) + "\n")
        return 0
    if mode == "serve":
        serve()
        return 0
    sys.stderr.write("usage: python -m poolscope._child describe|serve\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
