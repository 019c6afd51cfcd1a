"""The child side of ``NAME@/path/to/python`` (see ``backends/elsewhere.py``).

Run by another interpreter as ``python -m poolscope.measure._child MODE`` with this poolscope's
source on PYTHONPATH. It imports only the standard library, the probe (and shipping) and the
backends — never numpy, pandas or anything of the analysis — and must run on every supported
Python (3.10+).

- ``describe``: a pickled request on stdin ({"function": bytes | None});
  one JSON object on stdout: version, implementation, whether the build is free-threaded and
  whether the GIL is enabled (read after loading the function), every executor with why it is
  unavailable, and which packages poolscope would use there and whether they are installed.
- ``serve``: the trial protocol, framed pickles on stdin and stdout.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import json
import os
import pickle
import platform
import resource
import signal
import struct
import sys
import sysconfig
import time
from typing import Any

PROTOCOL = 5
_HEADER = struct.Struct(">Q")
# The sample of return values that goes back once per trial, after its clock stopped: as many
# as the runner keeps in-process, within a size that keeps its trip short.
SAMPLE_VALUES = 8
SAMPLE_BYTES = 16 << 20
PIPE_BYTES = 1 << 20  # Linux's default most for an unprivileged process
# Records wait here at most this long before they go, together (see _Server.run).
RECORD_HOLD_NS = 100_000_000
_CLOUDPICKLE_USERS = "the executors that send the function to their own workers"


_saved_stderr_fd: int | None = None  # a private copy of stderr, for _restore_stdio


def _take_stdio() -> tuple[int, int]:
    """Keep stdin and stdout for the protocol; the workload's prints go to stderr instead."""
    global _saved_stderr_fd
    read_fd, write_fd = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    _saved_stderr_fd = os.dup(2)
    return read_fd, write_fd


def _restore_stdio() -> None:
    """A usable ``sys.stdout`` and ``sys.stderr`` again where the function closed them (or set
    them to None): the child's own flushes must not fail (a traceback per trial), and the next
    trial's prints still reach stderr. Each new stream writes to its own copy of stderr's file
    descriptor, never over fds 1 and 2, which the function may have closed and reused."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not getattr(stream, "closed", False):
            continue
        if _saved_stderr_fd is None:
            return
        with contextlib.suppress(OSError):
            setattr(sys, name, open(os.dup(_saved_stderr_fd), "w", buffering=1,  # noqa: SIM115
                                    encoding="utf-8", errors="backslashreplace"))


def _flush_stdio() -> None:
    """Flush what the function printed; a stream it replaced may still fail: not our error."""
    _restore_stdio()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _gil_enabled() -> bool:
    check = getattr(sys, "_is_gil_enabled", None)
    return bool(check()) if check is not None else True


_untimed_cpu_s = 0.0  # this process's CPU spent on sending records after a trial's last item


def _cpu_s() -> float:
    """This process's CPU, less what sending records out of the trial's clock took."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime - _untimed_cpu_s


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
        info["executors"].append({"name": name, "family": str(cls.family), "summary": cls.summary,
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
        self.sending = False  # a message is part-written: nothing else may write now
        for fd in (read_fd, write_fd):  # a record seldom waits for the parent to read (Linux)
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # type: ignore[attr-defined]

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

    def send(self, message: tuple[Any, ...], fast: bool = False) -> None:
        """``fast``: pickled without a memo (nothing in it may refer to itself; an object it
        holds twice goes twice)."""
        if fast:
            buffer = io.BytesIO()
            pickler = pickle.Pickler(buffer, PROTOCOL)
            pickler.fast = True  # type: ignore[attr-defined]  (deprecated, not removed)
            pickler.dump(message)
            data = buffer.getvalue()
        else:
            data = pickle.dumps(message, PROTOCOL)
        view = memoryview(_HEADER.pack(len(data)) + data)
        self.sending = True
        try:
            while view:
                view = view[os.write(self.write_fd, view):]
        finally:
            self.sending = False


def _dead_workers(backend: Any, chunks: Any) -> tuple[str, str, str, int | None] | None:
    """When the executor's own worker processes died (a process executor run here), the
    failure naming the item, pid, exit code and likely cause, as the parent's runner names
    them for its own pools; the board the chunks carry says what each was running."""
    processes = backend.worker_processes()
    if not processes or not chunks or not any(p.exitcode for p in processes.values()):
        return None
    from poolscope.measure.board import Board
    from poolscope.measure.faults import dead_worker_errors

    errors = dead_worker_errors(processes, Board.at(chunks[0].board),
                                cleanup=backend.cleanup_signal)
    if not errors:
        return None
    message = "; ".join(e["message"] for e in errors)
    return ("failed", "WorkerDiedError", f"{message}; the pool broke, and the trial's items "
            "that had not reported are lost", errors[0]["item"])


def pickled_sample(values: list[Any]) -> list[bytes | str]:
    """The return values the parent sizes results by (``TrialResult.result_sample``), each
    pickled alone: the first always, then more while they stay within SAMPLE_BYTES in all. A
    value that cannot be pickled ends the sample with why, as a string: the parent's sizing
    then fails as it would on that value in-process."""
    blobs: list[bytes | str] = []
    total = 0
    for value in values:
        try:
            blob = pickle.dumps(value, PROTOCOL)
        except Exception as exc:
            blobs.append(f"{type(exc).__name__}: {exc}")
            break
        if blobs and total + len(blob) > SAMPLE_BYTES:
            break
        blobs.append(blob)
        total += len(blob)
    return blobs


def _as_defined(fn: Any) -> Any:
    """The function as fast to call as where it was defined. Unpickling makes new strings, so
    a ``functools.partial``'s keyword names arrive not interned, and every call then matches
    them to the function's parameters by comparing text instead of identity: ~35 ns a call
    here, a fifth of a near-empty item. Serial and threads are measured in this child on behalf
    of poolscope's process, where the partial was made from interned names; process workers
    keep what they unpickle, as a bare pool's do."""
    import functools

    inner = fn
    while isinstance(inner, functools.partial):
        func, args, keywords, attrs = inner.__reduce__()[2]
        if keywords:
            inner.__setstate__((func, args, {sys.intern(k) if type(k) is str else k: v
                                             for k, v in keywords.items()}, attrs))
        inner = func
    return fn


def _failed(exc: BaseException) -> tuple[str, str, str]:
    return ("failed", type(exc).__name__, str(exc) or repr(exc))


def _bind_to_parent() -> None:
    """Die with the parent, even a SIGKILL'd one (lifetime.py). Ignore SIGINT as process
    workers do: the parent stops this process itself, so a SIGINT here is the function's own."""
    import signal

    from poolscope.measure.lifetime import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.environ.get("POOLSCOPE_PARENT_PID", "")
    die_with_parent(int(parent) if parent.isdigit() else None)


def serve() -> None:
    _bind_to_parent()
    pipe = _Pipe(*_take_stdio())
    try:
        _, hello = pipe.receive()
    except EOFError:
        return
    try:
        from poolscope.backends import get_backend

        get_backend(hello["executor"])  # the first trial's: said now, before any clock runs
        from poolscope.measure import native

        native.limit(hello.get("native_threads"))  # before the function's imports
        fn = _as_defined(pickle.loads(hello["function"]))
        own_pools = native.pools()  # sent with this process's first record
    except BaseException as exc:
        pipe.send(("error", type(exc).__name__, f"under {sys.executable}: {_why(exc)}"))
        return
    pipe.send(("ready", {"pid": os.getpid(), "gil_enabled": _gil_enabled(), "cpu_s": _cpu_s(),
                         **_interpreter()}))
    server = _Server(pipe, fn, own_pools)
    signal.signal(signal.SIGTERM, server.on_terminate)
    while True:
        try:
            message = pipe.receive()
        except EOFError:  # the parent went away
            break
        server.handle(message)
        del message  # a "run" message's chunks go with the trial (_Server.close), not later


class _Server:
    """The trial protocol's side in the child: one trial at a time, in a kept process.

    The trial's clock starts at "start", not in the parent; the waits for the parent's next
    message ("run", "close") are taken out of it. Nothing the trial leaves behind (its chunks,
    its last record and results, the sample) is let go inside the next trial's clock: in-process
    that happens when the runner's trial returns, so here it happens once "closed" is sent.

    Records are held and go together, at most RECORD_HOLD_NS after the first of them finished,
    and the last ones after the trial's last item, out of its clock and its CPU. Sent one by
    one, each cost the item loop 60 µs–1 ms (pickling, and a write that wakes the parent, which
    this VM may then run on the child's core): 20,000 near-empty items in 8 chunks took 1.3–1.4×
    as long as in-process. A SIGTERM (the parent's limits stopping an item) sends the held
    records before the process ends, so a timeout loses no item that had finished.
    """

    def __init__(self, pipe: _Pipe, fn: Any, own_pools: Any = None) -> None:
        from poolscope.measure.probe import peak_rss

        self.pipe, self.fn = pipe, fn
        self.backend: Any = None
        # This process's peak memory goes at "closed", as VmHWM (reset at each "start"), not in
        # its records' ru_maxrss: the kernel carries that over an exec from the process that
        # was there before — a fork (or vfork) of poolscope itself, a hundred MiB or more.
        self.own_pid, self.peak_known = os.getpid(), peak_rss() is not None
        self.staged: dict[int, Any] = {}
        self.t0_ns = 0
        self.waiting_since: int | None = None  # since "started" was sent, until the first run
        self.done_at: int | None = None  # when the trial's last item was done (see close)
        self.sample: list[Any] = []  # the trial's first few return values, until "closed"
        self.left: list[Any] = []  # the trial's chunks, until "closed"
        self.last: Any = None  # the trial's last record, with its results, until "closed"
        self.own_pools = own_pools  # native thread pools: sent with this process's next record
        self.pools_told: list[Any] = []  # the pools a record has carried so far
        self.held: list[Any] = []  # records not sent yet
        self.held_since = 0  # when the first of them finished

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "start":
            self.start(message[1])
        elif kind == "stage":  # the trial's chunks, sent before its clock starts
            self.stage(message[1])
        elif kind in ("run", "run-staged"):
            self.run(message[1] if kind == "run" else self.named(message[1]))
        elif kind == "close":
            self.close()
        elif kind == "preflight":  # the first items, before any trial (preflight.py)
            from poolscope.measure.preflight import try_items

            budget = message[2] if len(message) > 2 else None
            self.pipe.send(("preflighted", try_items(self.fn, message[1], budget_s=budget)))

    def start(self, trial: dict[str, Any]) -> None:
        from poolscope.backends import get_backend
        from poolscope.measure.probe import reset_peak_rss

        _restore_stdio()  # the last trial's function may have closed them
        reset_peak_rss()  # a kept child's peak so far belongs to earlier trials
        if not self.pools_told:  # the function may load its libraries when it first runs (the
            # preflight, or an earlier trial, did): read again, before the clock, until found
            from poolscope.measure import native

            found = native.pools()
            self.own_pools = found if found else self.own_pools
        self.t0_ns, cpu0 = time.perf_counter_ns(), _cpu_s()  # staging's CPU stays out
        try:  # a kept child serves every in-process executor's trials
            self.backend = get_backend(trial["executor"])(self.fn, trial["workers"])
            self.backend.start()
        except BaseException as exc:
            self.waiting_since = time.perf_counter_ns()
            self.pipe.send(_failed(exc))
        else:  # from here to "run" is the parent's time: saying so (a write that wakes it) too
            self.waiting_since = time.perf_counter_ns()
            self.pipe.send(("started", {"t0_ns": self.t0_ns, "cpu_s": cpu0}))

    def stage(self, chunks: list[Any]) -> None:
        self.staged = {}  # the last trial's items go now, before this trial's clock
        self.staged = {chunk.first: chunk for chunk in chunks}
        if chunks:
            from poolscope.measure.board import prepare

            prepare(chunks[0].board)  # its file on the board: made before the clock

    def named(self, names: list[tuple[int, int, int]]) -> list[Any]:
        """The staged chunks that ("run-staged") names: (staged chunk, first item, count)."""
        staged = self.staged
        return [staged[held] if (first, count) == (held, len(staged[held].items)) else
                staged[held]._replace(first=first, items=staged[held].items[
                    first - held:first - held + count])
                for held, first, count in names]

    def run(self, chunks: list[Any]) -> None:
        from poolscope.measure.shipping import unreadable_errors

        if self.waiting_since is not None:  # the first run after start
            self.t0_ns += time.perf_counter_ns() - self.waiting_since
            self.waiting_since = None
        self.left.append(chunks)
        t_last_ns = None
        backend = self.backend
        try:
            assert backend is not None, "start first"
            for record in backend.run(chunks):
                record = unreadable_errors(record)  # a process executor's, run here
                if not self.sample:  # as the runner's: the first record's; sent at "closed"
                    self.sample = record.results[:SAMPLE_VALUES]
                t_last_ns = time.perf_counter_ns()  # as the runner's: when it has it
                self._hold(record, t_last_ns)
                self.last = record  # its results go after the trial, as in-process
        except BaseException as exc:
            self._send_held_untimed()
            died = _dead_workers(backend, chunks) if backend is not None else None
            self.pipe.send(died or _failed(exc))
        else:
            self._send_held_untimed()
            self.pipe.send(("done", {"t0_ns": self.t0_ns, "t_last_ns": t_last_ns,
                                     "incidents": list(backend.incidents),
                                     "worker_info": dict(backend.worker_info)}))
            backend.incidents.clear()

    def _hold(self, record: Any, now_ns: int) -> None:
        if not self.held:
            self.held_since = now_ns
        self.held.append(self._outgoing(record))
        if now_ns - self.held_since >= RECORD_HOLD_NS:
            self._send_held()

    def _send_held(self) -> None:
        """The held records in one message, pickled without a memo: an error message per
        failed item, each its own string, pickles twice as fast."""
        if self.held:
            held, self.held = self.held, []
            self.pipe.send(("records", held), fast=True)

    def _send_held_untimed(self) -> None:
        """The last records, once the trial's items are all done: from here to "close" is the
        parent's time (``done_at``), and the sending's CPU is not the trial's (``_cpu_s``)."""
        global _untimed_cpu_s
        self.done_at = time.perf_counter_ns()
        cpu = _cpu_s()
        self._send_held()
        _untimed_cpu_s += _cpu_s() - cpu

    def _outgoing(self, record: Any) -> Any:
        """The record as it goes: without its results (they stay here, as in-process), with
        this process's CPU reading as ``_cpu_s`` counts it."""
        own = record.pid == self.own_pid
        if own and self.own_pools is not None:
            record, self.own_pools = record._replace(native_threads=self.own_pools), None
            self.pools_told = record.native_threads
        peak_later = own and self.peak_known  # its peak goes at "closed"
        return record._replace(
            results=[], process_maxrss=0 if peak_later else record.process_maxrss,
            process_cpu_s=record.process_cpu_s - _untimed_cpu_s if own
            else record.process_cpu_s)

    def on_terminate(self, signum: int, frame: Any) -> None:
        """SIGTERM: the held records go first (unless a message is part-written, or this is
        a process worker forked from here), then the process ends as SIGTERM ends it."""
        if os.getpid() == self.own_pid and not self.pipe.sending:
            with contextlib.suppress(Exception):
                self._send_held()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    def close(self) -> None:
        from poolscope.measure.probe import peak_rss

        waited = time.perf_counter_ns() - self.done_at if self.done_at is not None else 0
        error = None
        try:
            if self.backend is not None:
                self.backend.close()
        except BaseException as exc:
            error = (type(exc).__name__, str(exc) or repr(exc))
        t_end_ns = time.perf_counter_ns() - waited
        self.backend, self.done_at = None, None
        _flush_stdio()
        closed = {"gil_enabled": _gil_enabled(), "error": error, "t_end_ns": t_end_ns,
                  "cpu_s": _cpu_s(), "peak_rss": peak_rss() or 0}
        # After the trial's readings: pickling the sample is neither its time nor its peak.
        closed["result_sample"] = pickled_sample(self.sample)
        self.pipe.send(("closed", closed))
        self.sample, self.left, self.last = [], [], None  # what the trial left goes now
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
    sys.stderr.write("usage: python -m poolscope.measure._child describe|serve\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
