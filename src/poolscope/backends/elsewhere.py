"""Any executor under another Python interpreter: ``NAME@/path/to/python``.

``thread@/usr/bin/python3.14t`` runs the ``thread`` executor in a child process of that
interpreter; the child imports this same poolscope source (``PYTHONPATH``), runs the inner
executor's start/run/close with the probe, and streams the ChunkRecords back. Records join the
run on one time axis: ``perf_counter_ns`` is system-wide, so the child's clock is the parent's::

    parent (this interpreter)                     child: PATH -m poolscope.measure._child serve
    -------------------------                     -------------------------------------
    spawn, ("hello", executor, fn by reference) ─> import backends, load fn, read the GIL
                                   ("ready", facts) <─
    ("stage", chunks)                            ─> hold them
    ---- the trial's clock starts here (t0) ----
    ("start", executor, workers)                 ─> inner.start()
    ("run", chunks)                              ─> for record in inner.run(chunks):
                   ("records", [ChunkRecord]) <─      stream them back, without results
                   ("done", incidents)         <─
    ("close",)                                   ─> inner.close(), read the GIL again
                   ("closed", facts, sample)   <─  then wait: the next trial's "stage" and
                                                    "start", or SIGKILL when the run ends

Messages are pickles (protocol 5, which every supported version reads) framed by an 8-byte
length, on the child's stdin and stdout; the child points its own stdout at stderr, so what the
workload prints cannot corrupt them. The child runs in its own process group: Ctrl-C reaches
only the parent, which stops it (and any workers it started) itself. Not in a session of its
own: on Linux that is a scheduling group of its own (autogroup), and under load the child then
used 3-4% more CPU than poolscope's process for the same items; in poolscope's session it is
scheduled as the work would be in-process.

**Timing.** The child interpreter's start-up — Python starting, importing poolscope and the
workload — happens in ``__init__``, before the runner starts the trial's clock: it is measured
(``startup_s`` of each child in the run's ``environment["interpreters"][NAME]["trials"]``) but
is not part of the trial's wall time, nor of its CPU (its start-up CPU is taken off the reaped
child's, see ``ChildReadings.untimed_cpu_s``). Within a run (``begin_run`` .. ``end_run``) a child
that closed its trial cleanly is kept, and the next trial for the same interpreter and function
— of any executor — takes it (``startup_s`` 0): one child serves a run's configurations as
poolscope's own process serves the in-process ones. The trial's chunks go to the child in
``stage``, before the clock; the trial is then timed by the child's clock readings (``t0_ns`` at
"start", ``t_last_ns`` at its last record, ``t_end_ns`` after "close"), with its waits for the
parent's next message taken out, so the pipe is not part of the executor's time. Its CPU is the
child's own from its reading at "start" to its reading after "close" (and its workers', from
their records), not this process's, which only talks to it (``Backend.child``); so is its
peak memory.

**Results stay in the child**, as they stay in poolscope's process in-process: records travel
without them, and a few return values (``result_sample``, for sizing results; see
``_child.pickled_sample``) go back once per trial, with "closed", after its clock stopped.

**The function** goes by reference — a built-in workload, ``package.module:function`` or
``path/to/file.py:function`` — and the child resolves it; cloudpickle's by-value code objects do
not cross Python versions, so a lambda, a closure or a function from ``__main__`` is refused
with the reason. A child of this same interpreter (``isolated``) takes those by value.

**What the child needs**: Python 3.10+, and for the executors that send the function on to
their own workers (process, process-*, loky, interpreter) cloudpickle. Not numpy, pandas or the
rest: the child imports only the probe and the backends. ``poolscope executors --python PATH``
tells what is there.

**Recorded**: ``prepare_run`` describes the interpreter (version, implementation, whether the
build is free-threaded, whether the GIL is enabled after the workload's module is imported) in
the run's ``environment["interpreters"][NAME]``, and each child adds its own readings (the GIL
after importing the workload and again after the run: an extension module can turn it back on).
"""

from __future__ import annotations

import atexit
import bisect
import contextlib
import functools
import io
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .._errors import PoolscopeError, UsageError, WorkerDiedError
from ..measure.native import worker_cap
from ..measure.probe import Chunk, ChunkRecord
from ._base import REGISTRY, Backend, ChildReadings

__all__ = ["MIN_VERSION", "ElsewhereBackend", "backend_for", "check_python", "describe",
           "function_reference"]

MIN_VERSION = (3, 10)
PROTOCOL = 5
STARTUP_TIMEOUT_S = 120.0  # the child's import of poolscope and the workload
REPLY_TIMEOUT_S = 300.0  # the inner executor's start() or close()
KILL_GRACE_S = 2.0
POLL_S = 0.2
_HEADER = struct.Struct(">Q")


class ElsewhereError(PoolscopeError):
    """The child interpreter reported an error (its kind names the original exception)."""

    item: int | None = None  # the item it names, when it is one item's (a dead worker's)


_ERROR_TYPES: dict[str, type[ElsewhereError]] = {}


def _error(kind: str, message: str) -> ElsewhereError:
    """An exception whose type name is the child's exception's, so records keep its kind."""
    if not kind.isidentifier():
        kind = "ElsewhereError"
    cls = _ERROR_TYPES.setdefault(kind, type(kind, (ElsewhereError,), {}))
    return cls(message)


# --- the interpreter ------------------------------------------------------------------------

_VERSION_PROBE = ('import sys; sys.stdout.write("poolscope-python %d %d %d" '
                  '% tuple(sys.version_info[:3]))')


def _resolve(python: str) -> str:
    expanded = os.path.expanduser(python)
    if os.sep not in expanded and not os.path.exists(expanded):
        found = shutil.which(expanded)
        if found is None:
            raise UsageError(f"{python}: no such interpreter on PATH")
        return found
    return os.path.abspath(expanded)


@functools.cache
def _check(python: str) -> tuple[str, tuple[int, int, int]]:
    path = _resolve(python)
    if not os.path.exists(path):
        raise UsageError(f"{python}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{python}: is a directory, not a Python interpreter")
    if not os.access(path, os.X_OK):
        raise UsageError(f"{python}: is not executable")
    try:
        done = subprocess.run([path, "-c", _VERSION_PROBE], capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL, env=_child_env(), text=True,
                              errors="replace")
    except subprocess.TimeoutExpired:
        raise UsageError(f"{python}: did not answer within 60 s") from None
    except OSError as exc:
        raise UsageError(f"{python}: is not a Python interpreter ({exc.strerror})") from None
    words = done.stdout.split()
    if done.returncode != 0 or len(words) != 4 or words[0] != "poolscope-python":
        raise UsageError(f"{python}: is not a Python interpreter (it did not answer as one)")
    version = (int(words[1]), int(words[2]), int(words[3]))
    if version < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        raise UsageError(f"{python}: is Python {'.'.join(map(str, version))}; poolscope needs "
                         f"Python {need} or newer there")
    return path, version


def check_python(python: str) -> str:
    """The interpreter's absolute path; a one-line UsageError when it is not a usable Python."""
    return _check(python)[0]


# --- what the child imports -----------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _source_root() -> str:
    return isolated_root(Path(__file__).resolve().parent.parent)


def isolated_root(package: Path) -> str:
    """A directory whose only package is ``package``, for the child's PYTHONPATH.

    A src checkout's ``src`` qualifies; an installed poolscope sits among other packages built
    for this interpreter (site-packages), so the child gets a directory holding just a link.
    """
    root = package.parent
    for entry in root.iterdir():
        if entry.name == package.name or entry.name.endswith((".egg-info", ".dist-info")):
            continue
        if entry.suffix in (".py", ".so", ".pyd", ".pth") or (entry / "__init__.py").exists():
            break
    else:
        return str(root)
    shim = Path(tempfile.mkdtemp(prefix="poolscope-child-"))
    try:
        (shim / package.name).symlink_to(package, target_is_directory=True)
    except OSError:
        shutil.copytree(package, shim / package.name)
    atexit.register(shutil.rmtree, shim, True)
    return str(shim)


def _forwarded_path() -> list[str]:
    """This process's own source directories: sys.path without the interpreter's own.

    That is the script's directory or the working directory, PYTHONPATH, and what was put in
    front at run time (pytest's test directories, a notebook's ``sys.path.insert(0, ...)``) —
    but never this interpreter's library and site-packages (nor the user's), whose compiled
    modules would not load there. Entries under the interpreter are skipped, not an end: the
    ``poolscope`` script's directory (the environment's bin) comes before PYTHONPATH.
    """
    import site

    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                               sys.base_exec_prefix)}
    with contextlib.suppress(Exception):
        prefixes.add(os.path.realpath(site.getusersitepackages()))
    forwarded = []
    for entry in sys.path:
        real = os.path.realpath(entry or os.getcwd())
        if any(real == p or real.startswith(p + os.sep) for p in prefixes):
            continue
        if os.path.isdir(real) and real not in forwarded:
            forwarded.append(real)
    return forwarded


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONHOME", "PYTHONEXECUTABLE", "__PYVENV_LAUNCHER__")}
    root = _source_root()
    env["PYTHONPATH"] = os.pathsep.join(
        [root, *(p for p in _forwarded_path() if p != root)])
    env["POOLSCOPE_PARENT_PID"] = str(os.getpid())  # the child dies with it (lifetime.py)
    return env


def _child_command(python: str, mode: str) -> list[str]:
    return [python, "-m", "poolscope.measure._child", mode]


# --- the function, by reference -------------------------------------------------------------

def _load_file_function(path: str, qualname: str) -> Any:
    """In the child: a function of a ``path/to/file.py:function`` target."""
    from ..workloads import _load_file_module

    obj: Any = _load_file_module(Path(path))
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


class _ByValueOnly(Exception):
    pass


class _ReferencePickler(pickle.Pickler):
    """Pickles functions and classes by reference only, saying why when one cannot be."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType | type):
            module = getattr(obj, "__module__", None) or ""
            qualname = getattr(obj, "__qualname__", "")
            if "<lambda>" in qualname:
                raise _ByValueOnly("it is a lambda")
            if "<locals>" in qualname:
                raise _ByValueOnly(f"{qualname} is defined inside another function")
            if module == "__main__":
                raise _ByValueOnly(f"{qualname} is defined in __main__ (a notebook cell or the "
                                   "script being run)")
            if module.startswith("poolscope_user_"):  # a path/to/file.py:function target
                path = getattr(sys.modules.get(module), "__file__", None)
                if path:
                    return _load_file_function, (path, qualname)
        return NotImplemented


def function_reference(fn: Callable[[Any], Any]) -> bytes:
    """``fn`` pickled by reference only; a UsageError saying why when it cannot be."""
    buffer = io.BytesIO()
    try:
        _ReferencePickler(buffer, PROTOCOL).dump(fn)
    except Exception as exc:
        reason = str(exc) if isinstance(exc, _ByValueOnly) else f"{type(exc).__name__}: {exc}"
        raise UsageError(
            f"the function cannot go to another interpreter: {reason}. Functions reach another "
            "Python version by reference only (cloudpickle's by-value code does not cross "
            "versions): put it in a module and name it as package.module:function or "
            "path/to/file.py:function") from None
    return buffer.getvalue()


# --- describe ---------------------------------------------------------------------------------

def describe(python: str, *, function: bytes | None = None) -> dict[str, Any]:
    """Run the child in describe mode: its version, build, GIL, executors and missing packages.

    With ``function`` the child loads it first (so the GIL reading comes after its imports)
    and reports a failure to load it as ``function_error``.
    """
    path = check_python(python)
    request = pickle.dumps({"function": function}, PROTOCOL)
    try:
        done = subprocess.run(_child_command(path, "describe"), input=request,
                              capture_output=True, timeout=STARTUP_TIMEOUT_S, env=_child_env())
    except subprocess.TimeoutExpired:
        raise UsageError(f"{python}: describing it took over {STARTUP_TIMEOUT_S:.0f} s"
                         ) from None
    import json

    try:
        info: dict[str, Any] = json.loads(done.stdout.decode("utf-8"))
    except ValueError:
        last = _last_line(done.stderr.decode("utf-8", "replace"))
        raise UsageError(f"{python}: poolscope's child did not start there"
                         f"{': ' + last if last else ''}") from None
    info["python_path"] = python
    return info


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def needs_lines(info: dict[str, Any]) -> list[str]:
    """What poolscope needs installed in a described interpreter, one line per package."""
    lines = []
    for need in info.get("needs", []):
        if need["installed"]:
            lines.append(f"{need['package']}: installed ({need['version']})")
        else:
            lines.append(f"{need['package']}: missing — {need['install']} (needed by "
                         f"{', '.join(need['for'])})")
    return lines


# --- the backend ------------------------------------------------------------------------------

@functools.cache
def backend_for(name: str) -> type[ElsewhereBackend]:
    """The backend class of ``NAME@PYTHON`` (KeyError when NAME is not an executor)."""
    inner_name, _, python = name.partition("@")
    if not python:
        raise UsageError(f"executor {name!r}: name the interpreter after '@', e.g. "
                         "thread@/usr/bin/python3.14t")
    inner = REGISTRY[inner_name]
    return type(f"ElsewhereBackend[{name}]", (ElsewhereBackend,), {
        "name": name, "inner_name": inner_name, "python": python, "family": inner.family,
        "summary": f"{inner_name} in a child process of {python}", "facts": None})


@functools.cache
def isolated(inner_name: str) -> type[ElsewhereBackend]:
    """The in-process executor ``inner_name`` run in a child process of this interpreter
    (``--isolate``): a function that ends its process (os._exit, SIGKILL, a segfault) then ends
    the child, not poolscope, and is reported like a worker process's crash. It keeps its name."""
    inner = REGISTRY[inner_name]
    return type(f"ElsewhereBackend[{inner_name}, isolated]", (ElsewhereBackend,), {
        "name": inner_name, "inner_name": inner_name, "python": sys.executable,
        "family": inner.family, "summary": f"{inner_name} in a child process (--isolate)",
        "facts": None, "prepare_run": classmethod(_check_function),
        "function_payload": staticmethod(_same_interpreter_payload)})


def _check_function(cls: type[ElsewhereBackend], fn: Callable[[Any], Any]
                    ) -> dict[str, Any] | None:
    """An isolated executor's run needs a function the child can load, and what the executor
    itself checks; the interpreter is this one, so there is nothing to describe."""
    _same_interpreter_payload(fn)
    return REGISTRY[cls.inner_name].prepare_run(fn)


def _same_interpreter_payload(fn: Callable[[Any], Any]) -> bytes:
    """The function for a child of this same interpreter: by reference where it has one, else
    by value (cloudpickle: a lambda, a closure, a notebook's function), as to process workers."""
    try:
        return function_reference(fn)
    except UsageError:
        pass
    try:
        import cloudpickle

        return cloudpickle.dumps(fn, PROTOCOL)
    except Exception as exc:
        raise UsageError(f"the function cannot go to a child process: it has no importable "
                         f"name and cannot be pickled ({type(exc).__name__}: {exc}); run with "
                         "--no-isolate (isolate=False) to keep it in poolscope's process"
                         ) from None


class _Parked:
    """A child that closed its trial cleanly and waits for the next ("start") or to be stopped."""

    def __init__(self, proc: subprocess.Popen[bytes] | None, stderr: Any,
                 ready: dict[str, Any]) -> None:
        self.proc, self.stderr, self.ready = proc, stderr, ready

    def discard(self) -> None:
        """Stop it and the processes it started (its process group), and reap it."""
        if self.proc is None:
            return
        _stop_session(self.proc, clean=True)
        if self.stderr is not None:
            self.stderr.close()
        self.proc = None


def _stop_session(proc: subprocess.Popen[bytes], clean: bool) -> None:
    """Stop a child and every process it started (its process group), reap it, close its
    pipes.

    After a clean close the child only waits to be stopped: SIGKILL spares it the interpreter's
    shutdown (no cost of the inner executor's) and takes any worker it left behind. Otherwise
    its group gets SIGTERM and KILL_GRACE_S to go first.
    """
    if proc.poll() is None:
        steps = ([(signal.SIGKILL, None)] if clean else
                 [(signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, None)])
        for sig, grace in steps:
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
    else:  # it ended on its own (a crash): workers it left behind go with its group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


# Children kept between trials, by (interpreter, function): a run's trials of every executor
# there take the same child in turn; the runner stops them when the run ends (end_run).
_PARKED: dict[tuple[Any, ...], _Parked] = {}


@atexit.register
def _discard_parked() -> None:
    while _PARKED:
        _PARKED.popitem()[1].discard()


class Unsendable:
    """Stands in the sample for a return value that could not be pickled in the child or
    unpickled here: pickling it fails, as pickling (or unpickling) the value itself would have
    in-process, so results are not sized as if it were not there (result.transfer_sample)."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __reduce__(self) -> Any:
        raise pickle.PicklingError(f"a return value that cannot travel: {self.why}")


def _loaded(blobs: Sequence[bytes | str]) -> list[Any]:
    """The child's sample of return values (see ``_child.pickled_sample``)."""
    values: list[Any] = []
    for blob in blobs:
        try:
            values.append(pickle.loads(blob) if isinstance(blob, bytes) else Unsendable(blob))
        except Exception as exc:
            values.append(Unsendable(f"{type(exc).__name__}: {exc}"))
    return values


class _ChildExit:
    """The child as the runner's faults.py sees a worker process: ``exitcode``."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @property
    def exitcode(self) -> int | None:
        return self._proc.poll()


class ElsewhereBackend(Backend):
    """An inner executor run in a child process of another interpreter (see module docs)."""

    inner_name: ClassVar[str]
    python: ClassVar[str]
    in_process = False
    # The run's environment["interpreters"][name], set by prepare_run; each child adds its
    # readings to its "trials" list.
    facts: ClassVar[dict[str, Any] | None] = None
    # Within a run (begin_run .. end_run), a child that closed its trial cleanly is kept for
    # the run's next trial instead of starting a new one each time.
    _keep: ClassVar[bool] = False

    # The function as the child loads it: by reference only, across Python versions.
    function_payload = staticmethod(function_reference)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            check_python(cls.python)
        except UsageError as exc:
            return str(exc)
        return None

    @classmethod
    def effective_workers(cls, requested: int) -> int:
        return REGISTRY[cls.inner_name].effective_workers(requested)

    @classmethod
    def prepare_run(cls, fn: Callable[[Any], Any]) -> dict[str, Any] | None:
        info = describe(cls.python, function=function_reference(fn))
        where = f"{cls.python} (Python {info.get('python', '?')})"
        if info.get("error"):
            raise UsageError(f"executor {cls.name!r}: {info['error']}")
        if info.get("function_error"):
            raise UsageError(f"executor {cls.name!r}: under {where} {info['function_error']}")
        known = {e["name"]: e for e in info["executors"]}
        inner = known.get(cls.inner_name)
        if inner is None or not inner["available"]:
            reason = inner["reason"] if inner else "it is not known there"
            raise UsageError(f"executor {cls.inner_name!r} is not available under {where}: "
                             f"{reason}")
        facts = {key: info[key] for key in ("python", "implementation", "executable",
                                            "free_threaded", "gil_enabled")}
        cls.facts = {"executor": cls.inner_name, "python_path": cls.python, **facts,
                     "trials": []}
        return cls.facts

    def __init__(self, fn: Callable[[Any], Any], workers: int) -> None:
        super().__init__(fn, workers)
        self.child = ChildReadings()  # this process only talks to the child: it runs the trial
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._buffer = bytearray()
        self._failure: BaseException | None = None
        self._busy = False
        self._ready: dict[str, Any] = {}
        self._key: tuple[Any, ...] = ()
        self._staged: dict[int, Chunk] = {}  # by first item: the chunks the child holds
        self._staged_firsts: list[int] = []
        # A few of the trial's return values, sent by the child after the trial's clock
        # stopped (at "closed"), for the runner's result_sample: only they cross the pipe.
        self.result_sample: list[Any] = []
        began = time.perf_counter()
        try:  # before the trial's clock starts: see "Timing" above
            reference = self.function_payload(fn)
            # One child serves a run's trials of every executor it runs for this function,
            # as poolscope's own process serves them with --no-isolate: the same process for
            # serial and thread, not one each with its own memory layout and hash seed.
            self._key = (self.python, reference)
            parked = _PARKED.pop(self._key, None)
            if parked is not None and parked.proc.poll() is None:
                self._proc, self._stderr, self._ready = parked.proc, parked.stderr, parked.ready
                self._ready["startup_s"] = 0.0  # started for an earlier trial
                return
            if parked is not None:
                parked.discard()
            path = check_python(self.python)
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
            self._proc = subprocess.Popen(
                _child_command(path, "serve"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=self._stderr, env=_child_env(), bufsize=0, process_group=0)
            self._send(("hello", {"executor": self.inner_name, "workers": workers,
                                  "function": reference, "native_threads": worker_cap()}))
            self._ready = self._expect("ready", STARTUP_TIMEOUT_S)[1]
        except BaseException as exc:  # raised by start(), inside the trial, as its failure
            self._failure = exc
            self._kill(clean=False)
            self._proc = None
            if self._stderr is not None:
                self._stderr.close()
            return
        self._ready["startup_s"] = time.perf_counter() - began

    # --- the protocol
    def _send(self, message: tuple[Any, ...]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        data = pickle.dumps(message, PROTOCOL)
        view = memoryview(_HEADER.pack(len(data)) + data)
        try:
            while view:
                view = view[self._proc.stdin.write(view) or 0:]
        except (BrokenPipeError, ConnectionResetError):
            raise self._gone() from None

    def _read(self, n: int, deadline: float | None) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while len(self._buffer) < n:
            wait = POLL_S if deadline is None else min(POLL_S, deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError(f"the {self.python} child did not answer in time")
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                data = os.read(fd, max(n - len(self._buffer), 1 << 16))
                if not data:
                    raise self._gone()
                self._buffer += data
            elif self._proc.poll() is not None:
                raise self._gone()
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def _receive(self, timeout: float | None = None) -> tuple[Any, ...]:
        deadline = None if timeout is None else time.monotonic() + timeout
        (size,) = _HEADER.unpack(self._read(_HEADER.size, deadline))
        message: tuple[Any, ...] = pickle.loads(self._read(size, deadline))
        if message[0] in ("error", "failed"):
            error = _error(message[1], message[2])
            error.item = message[3] if len(message) > 3 else None  # the item it names
            raise error
        return message

    def _expect(self, kind: str, timeout: float | None) -> tuple[Any, ...]:
        message = self._receive(timeout)
        if message[0] != kind:
            raise ElsewhereError(f"the {self.python} child answered {message[0]!r}, "
                                 f"not {kind!r}")
        return message

    def _gone(self) -> WorkerDiedError:
        from ..measure.faults import describe_exit

        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            code = None
        last = _last_line(self._stderr_text())
        return WorkerDiedError(f"the {self.python} child (pid {self._proc.pid}) ended "
                               f"({describe_exit(code)}){': ' + last if last else ''}")

    def _stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def worker_processes(self) -> dict[int, Any]:
        """The child: the items its threads ran are on the trial's board under its pid."""
        return {self._proc.pid: _ChildExit(self._proc)} if self._proc is not None else {}

    def preflight(self, items: Sequence[Any], timeout_s: float) -> list[dict[str, Any]] | None:
        """Call the function on ``items`` in the child, before any trial (preflight.py): each
        one's outcome, or None when the child did not answer within ``timeout_s`` (it is then
        stopped: the trials start a new one). A child that died raises WorkerDiedError."""
        if self._failure is not None:
            raise self._failure
        self._busy = True  # until it answers: close() then stops it instead (Ctrl-C)
        self._send(("preflight", list(items), timeout_s))
        try:
            answer = list(self._expect("preflighted", timeout_s)[1])
            self._busy = False
            return answer
        except TimeoutError:
            self._kill(clean=False)
            self._proc = None
            self._stderr.close()
            return None

    # --- the backend protocol
    def start(self) -> None:
        if self._failure is not None:
            raise self._failure
        self._send(("start", {"executor": self.inner_name, "workers": self.workers}))
        started = self._expect("started", REPLY_TIMEOUT_S)[1]
        self.child.started_ns = started["t0_ns"]
        # The child's CPU from here on is the trial's (not what receiving its chunks took).
        self._ready["cpu_s"] = self.cpu_reported[self._ready["pid"]] = started["cpu_s"]

    def stage(self, chunks: Sequence[Chunk]) -> None:
        if self._failure is None and self._proc is not None:
            try:
                self._send(("stage", list(chunks)))
            except BaseException as exc:  # raised by start(), inside the trial, as its failure
                self._failure = exc
                return
            self._staged = {chunk.first: chunk for chunk in chunks}
            self._staged_firsts = sorted(self._staged)

    def _named(self, chunk: Chunk) -> tuple[int, int, int] | None:
        """(staged chunk, first item, count) when the child holds ``chunk``'s items."""
        firsts = self._staged_firsts
        at = bisect.bisect_right(firsts, chunk.first) - 1
        held = self._staged[firsts[at]] if at >= 0 else None
        if (held is not None and chunk.first + len(chunk.items) <= held.first + len(held.items)
                and held.board == chunk.board and held.timeout_s == chunk.timeout_s):
            return held.first, chunk.first, len(chunk.items)
        return None

    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        self._busy = True
        named = [self._named(chunk) for chunk in chunks]
        self._send(("run", list(chunks)) if None in named else ("run-staged", named))
        while True:
            try:
                message = self._receive()
            except ElsewhereError:  # the inner executor failed; the child waits for "close"
                self._busy = False
                raise
            if message[0] == "done":
                extra = message[1]
                self.child.started_ns = extra.get("t0_ns", self.child.started_ns)
                self.child.last_record_ns = extra.get("t_last_ns")
                self.incidents.extend(extra.get("incidents", []))
                self.worker_info.update(extra.get("worker_info", {}))
                self._busy = False
                return
            records: list[ChunkRecord] = message[1]  # their results stay in the child
            yield from records

    def close(self) -> None:
        if self._proc is None:
            return
        closed: dict[str, Any] = {}
        try:
            if not self._busy and self._proc.poll() is None:
                self._send(("close",))
                closed = self._expect("closed", REPLY_TIMEOUT_S)[1]
        except (PoolscopeError, TimeoutError, OSError):
            pass  # stopped below
        finally:
            self.child.closed_ns = closed.get("t_end_ns")
            self.result_sample = _loaded(closed.get("result_sample", []))
            if "cpu_s" in closed:  # the child's own CPU, its executor's close included
                self.child.closing_cpu[self._ready["pid"]] = closed["cpu_s"]
                self.child.closing_rss[self._ready["pid"]] = closed.get("peak_rss", 0)
            park = (type(self)._keep and bool(closed) and not closed.get("error")
                    and self._proc.poll() is None)
            if not park:
                self._kill(clean=bool(closed))
            self._record(closed)
            text = self._stderr_text()
            if text.strip():  # what the workload printed, and warnings: shown once it is done
                sys.stderr.write(text if text.endswith("\n") else text + "\n")
            if park:  # the run's next trial here takes it: no start-up to wait for
                self._stderr.seek(0)
                self._stderr.truncate()
                ready = {**self._ready, "cpu_s": closed["cpu_s"]}
                _PARKED.pop(self._key, _Parked(None, None, {})).discard()
                _PARKED[self._key] = _Parked(self._proc, self._stderr, ready)
            else:
                self._stderr.close()
            self._proc = None
        if closed.get("error"):
            raise _error(closed["error"][0], closed["error"][1])

    @classmethod
    def begin_run(cls) -> None:
        cls._keep = True

    @classmethod
    def end_run(cls) -> None:
        """Stop the children kept for a next trial under this executor's interpreter."""
        cls._keep = False
        for key in [key for key in _PARKED if key[0] == cls.python]:
            _PARKED.pop(key).discard()

    def _kill(self, clean: bool) -> None:
        """Stop the child and every process it started, reap it (``_stop_session``)."""
        if self._proc is None:
            return
        _stop_session(self._proc, clean)
        # Reaped in this trial: its CPU before the trial (start-up, earlier trials of a kept
        # child) is in the children's CPU too; take it off.
        self.child.untimed_cpu_s = float(self._ready.get("cpu_s", 0.0))

    def _record(self, closed: dict[str, Any]) -> None:
        facts = type(self).facts
        if facts is None or not self._ready:
            return
        entry = {"pid": self._ready["pid"], "startup_s": self._ready.get("startup_s"),
                 "gil_enabled": self._ready.get("gil_enabled"),
                 "gil_enabled_after": closed.get("gil_enabled")}
        facts["trials"].append(entry)
        if entry["gil_enabled"] or entry["gil_enabled_after"]:
            facts["gil_enabled"] = True
