"""Dask: a local cluster of worker processes, or an existing cluster (``--scheduler``).

Where the trial runs::

    no scheduler given                          --scheduler tcp://HOST:PORT (or the
                                                $POOLSCOPE_DASK_SCHEDULER variable)
    ------------------                          -----------------------------------------------
    start(): LocalCluster of `workers` worker   start(): connect a Client; use the first workers (by
      processes, 1 thread each, on 127.0.0.1,     address) whose threads add up to `workers`; the
      no dashboard; close(): stop it              cluster is left running by close()

Each chunk is one task, ``_dask_task(payload, digest, chunk, by_value)`` with the key
``poolscope-<run token>-<first item>``: the worker unpickles the function once (cloudpickle bytes,
cached by digest; a ``path/to/file.py:function`` target by its module name, or from ``by_value``,
its code itself, on an external cluster's worker that does not have the file), runs the probe
over the chunk and stamps the record with its hostname and address. The client yields records
as their futures finish and releases each future at once (a worker dying later must not make the
scheduler recompute a chunk already received).

Clocks. ``perf_counter_ns`` is system-wide only within one host (one boot). At start, and for any
worker first seen mid-run, the client takes ``CLOCK_ROUNDS`` round trips to every worker
(``client.run`` of a clock reading): t0 on the client, t_w on the worker, t1 on the client;
offset = t_w − (t0 + t1)/2, uncertainty = (t1 − t0)/2, from the round trip with the smallest
RTT (about 2 ms on 127.0.0.1, so ±1 ms). A worker on the same boot as the client (same
``/proc/sys/kernel/random/boot_id``, or same hostname where there is none) whose estimate is
within its uncertainty of 0 shares our clock: its offset is 0 and its records are left as they
are. Any other worker's item times are shifted by the estimate onto the client's axis. A worker
that left before it could be asked is bounded by its task instead: its items ran after the
client submitted the task and ended before the client had the result ("task bounds"). The
estimate, its uncertainty, the offset applied and the method are kept per worker in
``Backend.worker_info`` → ``TrialResult.worker_info`` → the run's options
(``options["worker_details"][trial index]``, in the JSON and the store).

Lost workers. The client subscribes to the scheduler's ``"all"`` event topic; each
``remove-worker`` event names the worker and the task keys it was processing or held unfetched
(``processing-tasks``, ``lost-computed-tasks``). Dask re-runs those tasks elsewhere; their
records arrive once (one future per chunk, deduplicated by first item anyway) and are marked
``retried``, so no item is counted twice. An unexpected loss (killed, crashed, network) becomes an
incident in the trial's errors ({"item": None, "kind": "WorkerDiedError"}, naming the worker,
its pid and host and the re-run items): the trial is ``partial`` and the CLI exits **1** —
every item finished and was recorded, but the executor lost a worker and the trial's time
includes the lost work. A graceful retirement (``expected``) only marks the records retried.
When a chunk kills every worker that tries it (dask's ``allowed-failures``, default 3) the
trial fails with one ``WorkerDiedError`` naming the items (exit 1, the other trials still run).
A cluster left with no workers for ``NO_WORKERS_TIMEOUT_S``, or a lost scheduler, fails the
trial too: every wait has a timeout.

CPU. start() reads each worker's process CPU into ``cpu_reported``, the baseline of what the
workers report with their chunks (``process_cpu_s``); the runner counts the increase. A local
cluster's workers are also our children, reaped when close() stops them, and the runner takes
the larger of the two, so a fresh cluster's trial counts its workers' start-up too (as for
spawned process pools) and a reused one (``--reuse-pool``) only what its trials used. A remote
cluster's workers are not our children: their reported increase is all there is. On a shared
cluster it includes other clients' work on those workers; CPU after a worker's last report (and a
killed worker's lost work) is not counted. pids key the baselines: two remote workers with the
same pid on different hosts (containers) would share one.

Logs and signals. A local cluster runs with distributed's logging silenced below CRITICAL (the
losses it logs are reported here instead) and its workers ignore SIGINT (``dask_setup``, a worker
preload): Ctrl-C interrupts the client, which stops the cluster.

poolscope must be importable on remote workers (the task and the probe are sent by reference).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import queue
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from importlib.util import find_spec
from typing import Any

from .._errors import PoolscopeError, UsageError, WorkerDiedError
from .._filetargets import PREFIX as FILE_TARGET_PREFIX
from .._format import count
from ..families import CLUSTER
from ..measure.probe import HOST, Chunk, ChunkRecord, run_chunk
from ._base import Backend, register

__all__ = ["ENV_SCHEDULER", "DaskBackend", "dask_setup", "normalize_address",
           "scheduler_address", "using_scheduler"]

ENV_SCHEDULER = "POOLSCOPE_DASK_SCHEDULER"
CLOCK_ROUNDS = 8
SETTLE_S = 0.2  # how long to let the scheduler's verdicts on other tasks arrive
POLL_S = 0.5  # how often a waiting client checks that the cluster still has workers
NO_WORKERS_TIMEOUT_S = 60.0  # a cluster with no workers this long fails the trial
CONNECT_TIMEOUT_S = 30.0
GREETING_TIMEOUT_S = 5.0  # an external scheduler must accept a connection and greet within it
_HEADER = struct.Struct("QQ")  # a TCP message's bytes and its frame count (distributed's "Q")
_MAX_FRAMES = 1024  # a handshake is one or two frames of a few hundred bytes
_MAX_GREETING = 1 << 20
WAIT_FOR_WORKERS_S = 30.0  # an external cluster must offer `workers` threads within this
CLOSE_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 30.0  # one round trip to the scheduler or the workers

_scheduler: ContextVar[str | None] = ContextVar("poolscope_dask_scheduler", default=None)


class _NannyDeaths(logging.Handler):
    """The exit codes of a local cluster's worker processes, as their nannies (which run in
    this process and reap them) tell them: dask's own errors carry none.

    While a local cluster of ours runs, the ``distributed.nanny`` logger passes its INFO
    records here only (not on to the user's handlers, which ``silence_logs`` keeps quiet).
    """

    _PATTERN = re.compile(r"Worker process (\d+) (?:was killed by signal (\d+)|exited with "
                          r"status (\d+)|was killed by unknown signal)")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.codes: dict[int, int] = {}  # pid -> exit code (negative: the signal)
        self._users = 0
        self._saved: tuple[int, bool] = (logging.NOTSET, True)

    def emit(self, record: logging.LogRecord) -> None:
        found = self._PATTERN.match(record.getMessage())
        if found and (found[2] or found[3]):
            self.codes[int(found[1])] = -int(found[2]) if found[2] else int(found[3])

    def attach(self) -> None:
        logger = logging.getLogger("distributed.nanny")
        if self._users == 0:
            self._saved = (logger.level, logger.propagate)
            logger.setLevel(logging.INFO)
            logger.propagate = False
            logger.addHandler(self)
        self._users += 1

    def detach(self) -> None:
        self._users -= 1
        if self._users == 0:
            logger = logging.getLogger("distributed.nanny")
            logger.removeHandler(self)
            logger.setLevel(self._saved[0])
            logger.propagate = self._saved[1]
            self.codes.clear()


_nanny_deaths = _NannyDeaths()


def normalize_address(text: str) -> str:
    """``tcp://HOST:PORT`` from what a user typed (``HOST:PORT`` gets ``tcp://``)."""
    address = text.strip()
    if "://" not in address:
        address = f"tcp://{address}"
    protocol, _, rest = address.partition("://")
    host, sep, port = rest.rpartition(":")
    if not protocol or not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--scheduler: expected tcp://HOST:PORT, got {text!r}")
    return address


def _restore_environ(saved: dict[str, str]) -> None:
    """Undo what a local cluster changed in this process's environment: distributed's nannies
    set their workers' pre-spawn settings (OMP_NUM_THREADS=1, MKL_NUM_THREADS=1, …) in it, and
    every child poolscope starts later — an isolated child, a process pool — would inherit them
    and run its native thread pools on one thread."""
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


def _check_scheduler(address: str) -> None:
    """Within ``GREETING_TIMEOUT_S``: OSError when nothing accepts a TCP connection at
    ``address``, PoolscopeError when what does is not a Dask scheduler.

    distributed's own handshake has no deadline, and it takes the first bytes a peer sends for
    frame lengths: a local HTTP server (which waits for a request) kept a Client waiting for
    minutes, or its reply's "HTTP/1.0" asked for 3.07 EiB (MemoryError). A scheduler writes its
    handshake as soon as it accepts a connection, so its first frame header is read here first.
    """
    protocol, _, rest = address.partition("://")
    if protocol not in ("tcp", "tls"):
        return  # another transport: let distributed try it
    host, _, port = rest.rpartition(":")
    deadline = time.monotonic() + GREETING_TIMEOUT_S
    with socket.create_connection((host.strip("[]"), int(port)),
                                  timeout=GREETING_TIMEOUT_S) as sock:
        # tls: the handshake is inside TLS, which the client speaks first; nothing to read
        why = _greeting_problem(sock, deadline) if protocol == "tcp" else None
    if why:
        raise PoolscopeError(f"{address} is not a Dask scheduler ({why})")


def _greeting_problem(sock: socket.socket, deadline: float) -> str | None:
    """Why the peer's first bytes are not a Dask handshake's frame header, or None when they
    are: the bytes that follow (8), then the frame count (8), then each frame's length (8)."""
    head = b""
    while len(head) < _HEADER.size:
        left = deadline - time.monotonic()
        if left <= 0:
            return (f"it accepted the connection but sent nothing within "
                    f"{GREETING_TIMEOUT_S:g} s, where a Dask scheduler greets at once"
                    if not head else f"it sent only {head!r} within {GREETING_TIMEOUT_S:g} s")
        sock.settimeout(left)
        try:
            data = sock.recv(_HEADER.size - len(head))
        except TimeoutError:
            continue
        if not data:
            return "it closed the connection" + (f" after {head!r}" if head else "")
        head += data
    size, frames = _HEADER.unpack(head)
    if 1 <= frames <= _MAX_FRAMES and 8 * (1 + frames) <= size <= _MAX_GREETING:
        return None
    return f"it greeted with {head!r}, which is not a Dask handshake"


def scheduler_address() -> str | None:
    """The scheduler the dask executor uses: the API's or CLI's, else $POOLSCOPE_DASK_SCHEDULER,
    else None (a local cluster per trial)."""
    address = _scheduler.get() or os.environ.get(ENV_SCHEDULER, "").strip()
    return normalize_address(address) if address else None


@contextlib.contextmanager
def using_scheduler(address: str | None) -> Iterator[None]:
    """Within the block, dask trials run on the cluster at ``address`` (None: unchanged)."""
    if address is None:
        yield
        return
    token = _scheduler.set(normalize_address(address))
    try:
        yield
    finally:
        _scheduler.reset(token)


# --- worker side -------------------------------------------------------------------------------

_functions: dict[str, Callable[[Any], Any]] = {}
_functions_lock = threading.Lock()
# The runs (their board paths, one per run) this worker process has told its native thread
# pools: once per run, with its first chunk, after the function loaded its libraries.
_pools_told: set[str] = set()


def _boot_id() -> str | None:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _process_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def _worker_facts() -> dict[str, Any]:
    """Run on each worker by ``client.run``: its clock first, then who and where it is."""
    now = time.perf_counter_ns()
    return {"perf_ns": now, "pid": os.getpid(), "host": HOST, "boot_id": _boot_id(),
            "cpu_s": _process_cpu_s()}


def dask_setup(worker: Any) -> None:
    """Worker preload of our local clusters (dask calls it by this name when a worker starts):
    Ctrl-C reaches the whole process group, and the parent stops the cluster itself, so a
    worker must neither die half-way through a chunk nor print a KeyboardInterrupt traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _load_function(payload: bytes, by_value: bytes) -> Callable[[Any], Any]:
    """The function from its payload; from ``by_value`` when it names a file target whose file
    this worker does not have (a remote host), where the client sent one."""
    import cloudpickle

    try:
        return cloudpickle.loads(payload)
    except ImportError as exc:
        if not by_value or not (exc.name or "").startswith(FILE_TARGET_PREFIX):
            raise
    return cloudpickle.loads(by_value)


def _dask_task(payload: bytes, digest: str, chunk: Chunk, by_value: bytes = b"") -> ChunkRecord:
    """The task of one chunk, in a dask worker thread."""
    from distributed import get_worker

    fn = _functions.get(digest)
    if fn is None:
        with _functions_lock:
            if len(_functions) > 8:  # a long-lived worker serves many runs: keep a few
                _functions.clear()
            fn = _functions[digest] = _load_function(payload, by_value)
    record = run_chunk(fn, chunk)
    pools = None
    with _functions_lock:
        tell = chunk.board not in _pools_told
        if tell:
            if len(_pools_told) > 64:
                _pools_told.clear()
            _pools_told.add(chunk.board)
    if tell:
        from ..measure import native

        pools = native.pools()
    return record._replace(host=HOST, worker=get_worker().address, native_threads=pools)


# --- client side -------------------------------------------------------------------------------


def _file_targets_by_value(fn: Callable[[Any], Any], payload: bytes) -> bytes:
    """``fn`` pickled with the file targets it refers to by value (their code itself), for
    workers that cannot import them by name; b"" when its payload names none. By name is the
    rule (results that refer to the file's functions and classes then come back by reference)."""
    import cloudpickle

    names = [n for n in list(sys.modules) if n.startswith(FILE_TARGET_PREFIX)]
    named = [sys.modules[n] for n in names if n.encode() in payload]
    if not named:
        return b""
    already = cloudpickle.list_registry_pickle_by_value()
    added = [module for module in named if module.__name__ not in already]
    for module in added:
        cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(fn)
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)


def _items_text(firsts: Sequence[tuple[int, int]]) -> str:
    parts = [f"{a}" if a == b else f"{a}–{b}" for a, b in sorted(firsts)]
    return ", ".join(parts)


@register
class DaskBackend(Backend):
    name = "dask"
    summary = ("Dask distributed: a local cluster of worker processes, or an existing cluster "
               "(--scheduler tcp://HOST:PORT)")
    family = CLUSTER
    in_process = False
    stops_items = False  # killing a worker makes dask retry its task elsewhere
    scheduled = True

    @classmethod
    def scheduler_address(cls, given: str | None = None) -> str | None:
        return normalize_address(given) if given is not None else scheduler_address()

    @classmethod
    def using_scheduler(cls, address: str | None) -> contextlib.AbstractContextManager[None]:
        return using_scheduler(address)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if find_spec("dask") is None or find_spec("distributed") is None:
            return "pip install 'poolscope[dask]'"
        # Planning a run asks this first: importing distributed (about 0.5 s of CPU) now keeps
        # it out of the first trial's wall and CPU time.
        try:
            import distributed  # noqa: F401
        except Exception as exc:  # a broken install: say what broke
            return f"distributed cannot be imported ({type(exc).__name__}: {exc})"
        return None

    def __init__(self, fn: Callable[[Any], Any], workers: int) -> None:
        super().__init__(fn, workers)
        self.scheduler = scheduler_address()  # None: a LocalCluster of our own
        import distributed  # noqa: F401  (before the trial's clock starts, if not yet)

        self._cluster: Any = None
        self._client: Any = None
        self._allowed: list[str] | None = None  # an external cluster's workers we run on
        self._payload = b""
        self._by_value = b""  # the function with its file target's code, for remote workers
        self._digest = ""
        self._keys: dict[str, tuple[int, int]] = {}  # task key -> (first, last) item
        self._futures: list[Any] = []  # this trial's tasks
        self._events: list[dict[str, Any]] = []  # remove-worker events, as they arrive
        self._lock = threading.Lock()
        self._own_boot = _boot_id()
        self._watching_nannies = False  # attached to _nanny_deaths (a local cluster of ours)
        self._environ: dict[str, str] | None = None  # os.environ before our cluster started

    # --- start and stop ------------------------------------------------------------------------
    def start(self) -> None:
        import cloudpickle  # lazily: a child interpreter running thread@ needs none
        import distributed

        self._payload = cloudpickle.dumps(self.fn)
        self._digest = hashlib.sha256(self._payload).hexdigest()
        address = self.scheduler
        if address is not None:  # its workers may be on hosts without the user's file
            self._by_value = _file_targets_by_value(self.fn, self._payload)
        if address is None:
            from .processes import _unguarded_main_hidden

            _nanny_deaths.attach()
            self._watching_nannies = True
            self._environ = dict(os.environ)  # the nannies' pre-spawn settings leak into it
            with _unguarded_main_hidden():  # spawned workers must not re-run a user's script
                self._cluster = distributed.LocalCluster(
                    n_workers=self.workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", scheduler_port=0, dashboard_address=None,
                    # no dashboard, and its bare HTTP server (health checks) on a free port:
                    # without this it takes 8787, or warns when something else has it
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    silence_logs=logging.CRITICAL, preload=[__name__])
            _restore_environ(self._environ)
            address = self._cluster.scheduler_address
        try:
            if self._cluster is None:
                # else a failed Client leaves its IO loop thread running, or never returns
                _check_scheduler(address)
            self._client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S,
                                              set_as_default=False)
        except OSError as exc:
            raise PoolscopeError(
                f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self._client.subscribe_topic("all", self._on_event)
        if self._cluster is None:
            self._allowed = self._choose_workers()
        self._survey(self._allowed)
        # The workers' CPU so far is the baseline of what they report with their chunks. For a
        # remote cluster that is all the runner can count; a local cluster's workers are also
        # reaped children (start-up included), and the runner takes the larger of the two.
        for info in self.worker_info.values():
            self.cpu_reported[info["pid"]] = info.pop("cpu_s_at_start")

    def close(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        try:
            if client is not None:
                with contextlib.suppress(Exception):
                    client.unsubscribe_topic("all")
                client.close(timeout=CLOSE_TIMEOUT_S)
        finally:
            try:
                if cluster is not None:
                    cluster.close(timeout=CLOSE_TIMEOUT_S)
            finally:
                if self._watching_nannies:
                    self._watching_nannies = False
                    _nanny_deaths.detach()
                if self._environ is not None:
                    _restore_environ(self._environ)
                    self._environ = None

    # --- cluster facts ---------------------------------------------------------------------------
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A client coroutine method run to completion, with a timeout."""
        return self._client.sync(fn, *args, callback_timeout=CALL_TIMEOUT_S, **kwargs)

    def _cluster_workers(self) -> dict[str, dict[str, Any]]:
        identity = self._call(self._client.scheduler.identity, n_workers=-1)
        return dict(identity.get("workers", {}))

    def _choose_workers(self) -> list[str]:
        """The first workers, by address, whose threads add up to the requested count."""
        deadline = time.monotonic() + WAIT_FOR_WORKERS_S
        while True:
            workers = self._cluster_workers()
            chosen, threads = [], 0
            for address in sorted(workers):
                if threads >= self.workers:
                    break
                chosen.append(address)
                threads += int(workers[address].get("nthreads", 1))
            if threads >= self.workers:
                return chosen
            if time.monotonic() > deadline:
                total = sum(int(w.get("nthreads", 1)) for w in workers.values())
                raise UsageError(
                    f"the Dask cluster at {self.scheduler} has {count(total, 'worker thread')}, "
                    f"fewer than the {self.workers} asked for: start more workers or lower "
                    "--workers")
            time.sleep(POLL_S)

    def _survey(self, addresses: list[str] | None, rounds: int = CLOCK_ROUNDS,
                timeout: float = CALL_TIMEOUT_S) -> None:
        """Clock offsets (NTP-style, best of ``rounds`` round trips), pid, host, CPU."""
        best: dict[str, tuple[int, int, dict[str, Any]]] = {}
        for _ in range(rounds):
            if addresses is not None and not addresses:
                break
            t0 = time.perf_counter_ns()
            try:
                replies = self._client.sync(self._client._run, _worker_facts,
                                            workers=addresses, on_error="return",
                                            callback_timeout=timeout)
            except TimeoutError:
                break
            t1 = time.perf_counter_ns()
            for address, facts in replies.items():
                if isinstance(facts, ImportError | AttributeError):
                    raise PoolscopeError(
                        f"poolscope cannot run on the Dask worker {address} "
                        f"({type(facts).__name__}: {facts}): install the same poolscope "
                        "there") from None
                if isinstance(facts, BaseException):
                    continue  # a worker leaving: not asked again
                if address not in best or t1 - t0 < best[address][0]:
                    best[address] = (t1 - t0, facts["perf_ns"] - (t0 + t1) // 2, facts)
            addresses = [a for a, facts in replies.items()
                         if not isinstance(facts, BaseException)]
        for address, (rtt, estimate, facts) in best.items():
            same_clock = self._same_boot(facts) and abs(estimate) <= rtt // 2
            self.worker_info[address] = {
                "address": address, "host": facts["host"], "pid": facts["pid"],
                "clock_offset_s": 0.0 if same_clock else estimate / 1e9,
                "clock_estimate_s": estimate / 1e9, "clock_uncertainty_s": rtt / 2e9,
                "clock_rtt_s": rtt / 1e9, "clock_method": "round trips",
                "same_clock": same_clock, "lost": None, "cpu_s_at_start": facts["cpu_s"]}

    def _same_boot(self, facts: dict[str, Any]) -> bool:
        """Whether a worker's perf_counter can be ours: the same boot of the same machine."""
        if self._own_boot and facts.get("boot_id"):
            return bool(facts["boot_id"] == self._own_boot)
        return bool(facts.get("host") == HOST)

    # --- events from the scheduler (the client's event-loop thread) -----------------------------
    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        _, message = event
        if isinstance(message, dict) and message.get("action") == "remove-worker":
            with self._lock:
                self._events.append(message)

    def _lost_keys(self) -> set[str]:
        with self._lock:
            events = list(self._events)
        keys: set[str] = set()
        for event in events:
            keys.update(event.get("processing-tasks") or ())
            keys.update(event.get("lost-computed-tasks") or ())
        return keys

    # --- running -----------------------------------------------------------------------------
    def run(self, chunks: Sequence[Chunk]) -> Iterator[ChunkRecord]:
        assert self._client is not None, "start() first"
        client = self._client
        token = uuid.uuid4().hex[:12]
        self._keys = {f"poolscope-{token}-{c.first}": (c.first, c.first + len(c.items) - 1)
                      for c in chunks}
        with self._lock:
            self._events.clear()
        # A reused cluster (--reuse-pool): workers lost in an earlier trial are not this one's.
        self.worker_info = {a: w for a, w in self.worker_info.items() if not w.get("lost")}
        done: queue.Queue[Any] = queue.Queue()
        restrict = ({"workers": self._allowed, "allow_other_workers": True}
                    if self._allowed else {})
        futures = []
        submitted: dict[int, int] = {}  # first item -> perf_counter_ns when submitted
        for chunk, key in zip(chunks, self._keys, strict=True):
            submitted[chunk.first] = time.perf_counter_ns()  # the task cannot start before
            future = client.submit(_dask_task, self._payload, self._digest, chunk,
                                   self._by_value, key=key, pure=False, **restrict)
            future.add_done_callback(done.put)
            futures.append(future)
        self._futures = futures
        seen: set[int] = set()
        retried_by: dict[int, str] = {}  # first item -> the worker that lost it
        no_workers_since: float | None = None
        finished = False
        try:
            remaining = len(futures)
            while remaining:
                try:
                    future = done.get(timeout=POLL_S)
                except queue.Empty:
                    no_workers_since = self._check_health(no_workers_since)
                    continue
                remaining -= 1
                record = self._result(future)
                future.release()
                if record.first in seen:  # never count an item twice
                    continue
                seen.add(record.first)
                retried = future.key in self._lost_keys()
                if retried:
                    retried_by[record.first] = record.worker
                received = time.perf_counter_ns()
                yield self._on_client_clock(record, submitted[record.first],
                                            received)._replace(retried=retried)
            finished = True
        finally:
            if not finished:
                with contextlib.suppress(Exception):
                    client.cancel([f for f in futures if not f.done()])
            self._report_losses(finished)

    def _result(self, future: Any) -> ChunkRecord:
        """The chunk's record; a task that failed becomes an error naming its items."""
        from distributed import KilledWorker

        no_workers_since: float | None = None
        while True:
            try:
                return future.result(timeout=POLL_S)  # type: ignore[no-any-return]
            except KilledWorker:
                suspects = self._given_up_with(future)
                blame = ("" if len(suspects) == 1 else
                         "; dask cannot tell which of them killed the workers")
                error = WorkerDiedError(
                    f"{_item_ranges(suspects)}: every Dask worker that ran them died "
                    f"(dask's allowed-failures reached{blame}); "
                    f"workers lost: {self._lost_text() or 'unknown'}")
                if suspects == [(suspects[0][0], suspects[0][0])]:
                    error.item = suspects[0][0]  # one item alone: the error is that item's
                raise error from None
            except TimeoutError:  # the data is being fetched, or re-computed after a loss
                no_workers_since = self._check_health(no_workers_since)

    def _given_up_with(self, future: Any) -> list[tuple[int, int]]:
        """The item ranges of every task dask gave up on along with ``future``'s.

        A dying worker takes all the tasks it held with it, so a task that did nothing wrong
        reaches allowed-failures together with the one that kills workers, sometimes first.
        """
        from distributed import KilledWorker

        time.sleep(SETTLE_S)  # the scheduler fails them in one transition; let it all arrive
        keys = {future.key}
        for other in self._futures:
            if other.status == "error" and other.key not in keys:
                with contextlib.suppress(Exception):
                    if isinstance(other.exception(timeout=POLL_S), KilledWorker):
                        keys.add(other.key)
        return sorted(self._keys[key] for key in keys)

    def _check_health(self, no_workers_since: float | None) -> float | None:
        """Raise when the scheduler is gone or the cluster stayed without workers too long."""
        if self._client is None or self._client.status not in ("running", "connecting"):
            raise WorkerDiedError(f"lost the connection to the Dask scheduler at "
                                  f"{self.scheduler or 'the local cluster'}")
        try:  # the count only: a big cluster's worker list is not fetched every poll
            count = self._call(self._client.scheduler.identity, n_workers=0)["n_workers"]
        except (TimeoutError, OSError) as exc:
            raise WorkerDiedError(f"the Dask scheduler does not answer ({exc})") from None
        if count:
            return None
        now = time.monotonic()
        if no_workers_since is None:
            return now
        if now - no_workers_since > NO_WORKERS_TIMEOUT_S:
            raise WorkerDiedError(
                f"the Dask cluster has had no workers for {NO_WORKERS_TIMEOUT_S:.0f} s; "
                f"workers lost: {self._lost_text() or 'none seen leaving'}")
        return no_workers_since

    def _on_client_clock(self, record: ChunkRecord, submitted_ns: int,
                         received_ns: int) -> ChunkRecord:
        """The record's item times moved onto the client's perf_counter axis."""
        info = self.worker_info.get(record.worker)
        if info is None:  # a worker first seen mid-run (a nanny's restart, scaling up)
            if record.worker in self._cluster_workers():  # asking a dead one waits 30 s
                self._survey([record.worker], rounds=3, timeout=5.0)
            info = self.worker_info.get(record.worker)
            if info is None:  # it left already: bound its clock by this task's round trip
                info = self.worker_info[record.worker] = self._task_bounds(
                    record, submitted_ns, received_ns)
            info.pop("cpu_s_at_start", None)
            if self._cluster is None and info["pid"] == record.pid:
                # A remote worker first seen now: count its CPU from this chunk's start.
                chunk_cpu = (record.cpu_marks_ns[-1] - record.cpu_marks_ns[0]) / 1e9
                self.cpu_reported.setdefault(record.pid, record.process_cpu_s - chunk_cpu)
        offset = round(info["clock_offset_s"] * 1e9)
        if not offset:
            return record
        return record._replace(start_ns=array("q", (t - offset for t in record.start_ns)),
                               end_ns=array("q", (t - offset for t in record.end_ns)))

    def _task_bounds(self, record: ChunkRecord, submitted_ns: int,
                     received_ns: int) -> dict[str, Any]:
        """A clock estimate from the task itself: its items ran after the client submitted it
        and ended before the client received it: offset ∈ [end − received, start − submitted].
        """
        low = record.end_ns[-1] - received_ns if len(record.end_ns) else 0
        high = record.start_ns[0] - submitted_ns if len(record.start_ns) else 0
        estimate, half = (low + high) // 2, max(0, (high - low) // 2)
        same_clock = record.host == HOST and low <= 0 <= high
        return {"address": record.worker, "host": record.host, "pid": record.pid,
                "clock_offset_s": 0.0 if same_clock else estimate / 1e9,
                "clock_estimate_s": estimate / 1e9, "clock_uncertainty_s": half / 1e9,
                "clock_rtt_s": None, "clock_method": "task bounds", "same_clock": same_clock,
                "lost": None}

    def _lost_text(self) -> str:
        with self._lock:
            events = list(self._events)
        names = []
        for event in events:
            address = event.get("worker", "?")
            names.append(f"{address}{self._where(self.worker_info.get(address, {}))}")
        return ", ".join(dict.fromkeys(names))

    def _where(self, info: dict[str, Any]) -> str:
        """" (pid 1234 on host: signal SIGSEGV — a crash in native code …)", as far as known:
        the exit code only for a local cluster's workers, whose nannies say it."""
        if "pid" not in info:
            return ""
        from ..measure.faults import describe_exit, likely_cause

        code = _nanny_deaths.codes.get(info["pid"]) if self._watching_nannies else None
        ended = f": {describe_exit(code)} — {likely_cause(code)}" if code else ""
        return f" (pid {info['pid']} on {info['host']}{ended})"

    def _report_losses(self, finished: bool) -> None:
        """Each worker lost during run(): marked in worker_info, and an incident when it was
        not a graceful retirement and the run still finished (a failed run says it all in its
        error)."""
        with self._lock:
            events = list(self._events)
        ours = set(self.worker_info) | set(self._allowed or ())
        for event in events:
            address = event.get("worker", "?")
            keys = set(event.get("processing-tasks") or ()) | set(
                event.get("lost-computed-tasks") or ())
            mine = sorted(self._keys[k] for k in keys if k in self._keys)
            if address not in ours and not mine:
                continue  # another worker of a shared cluster
            expected = bool(event.get("expected"))
            info = self.worker_info.setdefault(address, {"address": address, "lost": None})
            info["lost"] = {"expected": expected,
                            "rerun_items": [list(span) for span in mine]}
            if expected or not finished:
                continue
            where = self._where(info)
            rerun = (f"items {_items_text(mine)} were re-run on other workers and are marked "
                     "retried" if mine else "no chunk of this trial was lost")
            self.incidents.append({
                "kind": "WorkerDiedError",
                "message": f"Dask worker {address}{where} left the cluster during the trial "
                           f"(killed, crashed or cut off; the scheduler does not know its exit "
                           f"code); {rerun}; the trial's time includes the lost work"})


def _item_ranges(ranges: Sequence[tuple[int, int]]) -> str:
    """"item 3", "items 3 and 8", "items 3–4, 8 and 11": chunks as their item ranges."""
    texts = [str(a) if a == b else f"{a}–{b}" for a, b in ranges]
    plural = len(texts) > 1 or ranges[0][0] != ranges[0][1]
    joined = texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]
    return ("items " if plural else "item ") + joined
