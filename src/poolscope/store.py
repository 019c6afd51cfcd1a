"""The run history: an embedded SQLite store, written as measurements arrive.

    parent process (the only writer)                 .poolscope/poolscope.db (WAL)
    -------------------------------                  -----------------------------
    run starts                      ── INSERT ──>    runs     (status 'running', pid, host)
    each chunk's records arrive     ── INSERT ──>    chunks   (columnar arrays as blobs)
    each trial ends                 ── INSERT ──>    trials   (wall, tree CPU, status, t0)
    run ends                        ── UPDATE ──>    runs     (status 'complete' / 'interrupted')

Every write is its own transaction, so a crash or SIGKILL loses at most the chunk in flight; a
run whose writer died while 'running' reads back as 'incomplete'. Items are kept as each chunk's
arrays (one row per chunk, not per item), so a million-item trial is a handful of rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import sqlite3
import time
import uuid
from array import array
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import UsageError
from .measure.lifetime import pid_alive
from .measure.probe import STATUS_ERROR, ChunkRecord

if TYPE_CHECKING:
    from .model import TrialResult
    from .result import Result

__all__ = ["DEFAULT_STORE", "SCHEMA_VERSION", "RunStore", "new_run_id", "store_path"]

SCHEMA_VERSION = 6
DEFAULT_STORE = Path(".poolscope") / "poolscope.db"
BUSY_TIMEOUT_S = 30.0
RETRIES = 20

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,
    target TEXT NOT NULL, status TEXT NOT NULL, n_items INTEGER NOT NULL,
    executors TEXT NOT NULL, best TEXT, environment TEXT NOT NULL, options TEXT NOT NULL,
    transfer TEXT, pid INTEGER NOT NULL, host TEXT NOT NULL, growth TEXT);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (started_at);
CREATE TABLE IF NOT EXISTS trials (
    run_id TEXT NOT NULL, trial INTEGER NOT NULL, executor TEXT NOT NULL,
    workers INTEGER NOT NULL, chunksize INTEGER NOT NULL, repeat INTEGER NOT NULL,
    wall_s REAL NOT NULL, cpu_s REAL NOT NULL, startup_s REAL NOT NULL,
    teardown_s REAL NOT NULL, peak_rss INTEGER NOT NULL, status TEXT NOT NULL,
    host TEXT NOT NULL, t0_ns INTEGER NOT NULL, errors TEXT NOT NULL,
    worker_info TEXT NOT NULL DEFAULT '[]', family TEXT, initializer TEXT,
    PRIMARY KEY (run_id, trial));
CREATE TABLE IF NOT EXISTS chunks (
    run_id TEXT NOT NULL, trial INTEGER NOT NULL, first INTEGER NOT NULL,
    pid INTEGER NOT NULL, tid INTEGER NOT NULL, start_ns BLOB NOT NULL, end_ns BLOB NOT NULL,
    cpu_marks_ns BLOB NOT NULL, core BLOB NOT NULL, status BLOB NOT NULL,
    errors TEXT NOT NULL, process_cpu_s REAL NOT NULL, process_maxrss INTEGER NOT NULL,
    host TEXT NOT NULL DEFAULT '', worker TEXT NOT NULL DEFAULT '',
    retried INTEGER NOT NULL DEFAULT 0, spans BLOB, span_items INTEGER,
    PRIMARY KEY (run_id, trial, first));
"""

# Each step upgrades a store from the version before it, in one transaction. Every earlier
# version has a store file written by that version's code under tests/data, which the tests
# upgrade and read back.
_MIGRATIONS: dict[int, str] = {
    # 1 -> 2: a sweep's fits of wall time against the item count (JSON per executor); where
    # each chunk ran (host, worker address) and whether it was re-run after a lost worker, and
    # each trial's workers (clock offsets, losses), for executors with remote workers (dask).
    2: "ALTER TABLE runs ADD COLUMN growth TEXT;"
       "ALTER TABLE trials ADD COLUMN worker_info TEXT NOT NULL DEFAULT '[]';"
       "ALTER TABLE chunks ADD COLUMN host TEXT NOT NULL DEFAULT '';"
       "ALTER TABLE chunks ADD COLUMN worker TEXT NOT NULL DEFAULT '';"
       "ALTER TABLE chunks ADD COLUMN retried INTEGER NOT NULL DEFAULT 0;",
    # 2 -> 3: which items of a chunk were timed together in spans (probe.py), NULL when none.
    3: "ALTER TABLE chunks ADD COLUMN spans BLOB;",
    # 3 -> 4: a chunk that is one span of N items (poolscope.map's serial rest, timed as a bare
    # loop) keeps its clock readings once, not N times: span_items is N, NULL otherwise.
    4: "ALTER TABLE chunks ADD COLUMN span_items INTEGER;",
    # 4 -> 5: each trial's executor family, so a run read back describes itself (NULL before:
    # the registry's, when read).
    5: "ALTER TABLE trials ADD COLUMN family TEXT;",
    # 5 -> 6: the seconds each worker's initializer took (JSON list), NULL when there was none.
    6: "ALTER TABLE trials ADD COLUMN initializer TEXT;",
}

T = TypeVar("T")


def new_run_id() -> str:
    """Sortable and unique: UTC time then random hex, e.g. 20261125T221503-3fa9c2."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def store_path(option: str | Path | None) -> Path:
    """--store, else $POOLSCOPE_STORE, else the project's store (``project_store``)."""
    if option is not None:
        return Path(option)
    env = os.environ.get("POOLSCOPE_STORE")
    return Path(env) if env else project_store(Path.cwd())


def project_store(start: Path) -> Path:
    """Found as git finds its repository, so that runs made from a project's sub-folders stay
    together: ``.poolscope/poolscope.db`` in the nearest folder up from ``start`` that has a
    ``.poolscope/``, else in the enclosing project's root (a folder with ``.git`` or
    ``pyproject.toml``), else in ``start``. Relative to ``start`` when under it."""
    here = start.resolve()
    folders = (here, *here.parents)
    found = next((f for f in folders if (f / ".poolscope").is_dir()), None) or next(
        (f for f in folders if (f / ".git").exists() or (f / "pyproject.toml").is_file()),
        here)
    return DEFAULT_STORE if found == here else found / DEFAULT_STORE


class RunStore:
    """One connection to a store; create it, write runs into it, read them back."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise UsageError(f"no poolscope store at {self.path}")
        if create:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(
                    f"cannot create the store's directory {self.path.parent}: "
                    f"{exc.strerror or exc}") from None
        try:
            self.db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                      check_same_thread=False)
            # Look before writing anything: a file that is not ours is left as it was.
            self._check_schema(create)
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{self.path} is not a usable poolscope store ({exc})") from None

    # --- schema ------------------------------------------------------------------------------
    def _check_schema(self, create: bool) -> None:
        tables = {row[0] for row in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "meta" not in tables:
            raise UsageError(f"{self.path} is an SQLite file but not a poolscope store")
        if "meta" in tables:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise UsageError(
                    f"{self.path} was written by a newer poolscope (store schema {version}; "
                    f"this one reads up to {SCHEMA_VERSION}): upgrade poolscope")
            if version == SCHEMA_VERSION:
                self._use_wal()
                return
            if version >= 1:
                self._use_wal()
                self._migrate(version)
                return
        if not create:
            raise UsageError(f"{self.path} is not a poolscope store")
        self._use_wal()
        self._retry(lambda: self.db.executescript(
            "BEGIN IMMEDIATE;" + _SCHEMA + "INSERT OR REPLACE INTO meta VALUES "
            f"('schema_version', '{SCHEMA_VERSION}'); COMMIT;"))

    def _migrate(self, version: int) -> None:
        """Upgrade an older store in place; all steps commit together or not at all."""
        steps = "".join(_MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1))

        def upgrade() -> None:
            self.db.execute("BEGIN IMMEDIATE")
            # Another poolscope may have upgraded it while this one waited for the lock.
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            if int(row.fetchone()[0]) >= SCHEMA_VERSION:
                self.db.execute("COMMIT")
                return
            for statement in filter(str.strip, steps.split(";")):
                self.db.execute(statement)
            self.db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                            (str(SCHEMA_VERSION),))
            self.db.execute("COMMIT")

        try:
            self._retry(upgrade)
        except sqlite3.OperationalError as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise UsageError(f"cannot upgrade the store {self.path} from schema {version} to "
                             f"{SCHEMA_VERSION}: {exc}") from None

    def _use_wal(self) -> None:
        """WAL: readers never block the writer, and a killed writer leaves a consistent file."""
        self._retry(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
        self.db.execute("PRAGMA synchronous=NORMAL")

    def _retry(self, action: Callable[[], T]) -> T:
        """Another poolscope may hold the write lock past the busy timeout: wait and retry."""
        for attempt in range(RETRIES):
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                time.sleep(min(0.05 * 2 ** attempt, 1.0))
        return action()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        if self.db.in_transaction:  # together(): the whole transaction is retried, not a row
            self.db.execute(sql, params)
            return
        self._written(lambda: self.db.execute(sql, params))

    def together(self, writes: Callable[[], None]) -> None:
        """Several writes as one transaction: one commit, not one per row (a trial's chunks),
        retried whole when another poolscope holds the lock."""
        def block() -> None:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                writes()
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

        self._written(block)

    def _written(self, action: Callable[[], object]) -> None:
        """A write, retried under a neighbour's lock; a store that refuses it is a UsageError."""
        try:
            self._retry(action)
        except sqlite3.OperationalError as exc:
            raise UsageError(f"cannot write to the store {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing a run as it happens ---------------------------------------------------------
    def begin_run(self, run_id: str, started_at: str, target: str, n_items: int,
                  executors: list[str], environment: dict[str, Any],
                  options: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO runs (run_id, started_at, target, status, n_items, executors, "
            "environment, options, pid, host) VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
            (run_id, started_at, target, n_items, ",".join(executors),
             json.dumps(environment), json.dumps(options, default=str), os.getpid(),
             socket.gethostname()))

    def add_chunk(self, run_id: str, trial: int, record: ChunkRecord,
                  span_items: int | None = None) -> None:
        """A chunk's records. ``span_items``: the chunk is that many items timed as one span,
        and ``record`` holds the span's readings once (arrays of one item, two CPU marks; its
        errors name the failed items), as poolscope.map's bare serial loops record them."""
        if trial < 0:  # warm-up trials are not kept
            return
        self._write(
            "INSERT OR IGNORE INTO chunks (run_id, trial, first, pid, tid, start_ns, end_ns, "
            "cpu_marks_ns, core, status, errors, process_cpu_s, process_maxrss, host, worker, "
            "retried, spans, span_items) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, trial, record.first, record.pid, record.tid, record.start_ns.tobytes(),
             record.end_ns.tobytes(), record.cpu_marks_ns.tobytes(), record.core.tobytes(),
             record.status.tobytes(), json.dumps(record.errors), record.process_cpu_s,
             record.process_maxrss, record.host, record.worker, int(record.retried),
             record.spans.tobytes() if record.spans else None, span_items))

    def end_trial(self, run_id: str, trial: TrialResult) -> None:
        self._write(
            "INSERT OR REPLACE INTO trials (run_id, trial, executor, workers, chunksize, repeat, "
            "wall_s, cpu_s, startup_s, teardown_s, peak_rss, status, host, t0_ns, errors, "
            "worker_info, family, initializer) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, trial.index, trial.executor, trial.workers, trial.chunksize, trial.repeat,
             trial.wall_s, trial.cpu_s, trial.startup_s, trial.teardown_s, trial.peak_rss,
             str(trial.status), trial.host, trial.t0_ns, json.dumps(trial.errors),
             json.dumps(trial.worker_info, default=str), trial.family or None,
             json.dumps(trial.initializer_s) if trial.initializer_s else None))

    def end_run(self, result: Result) -> None:
        rec = result.recommendation
        best = f"{rec.executor} ×{rec.workers}" if rec else None
        transfer = (json.dumps({"bytes_per_item": result.transfer.bytes_per_item,
                                "seconds_per_item": result.transfer.seconds_per_item})
                    if result.transfer else None)
        from datetime import UTC, datetime

        growth = (json.dumps({name: dataclasses.asdict(fit) for name, fit in result.growth.items()})
                  if result.growth else None)
        self._write(
            "UPDATE runs SET status = ?, finished_at = ?, best = ?, options = ?, transfer = ?, "
            "growth = ?, environment = ? WHERE run_id = ?",
            ("interrupted" if result.interrupted else "complete",
             datetime.now(UTC).isoformat(timespec="seconds"), best,
             json.dumps(result.options, default=str), transfer, growth,
             # again: executors add what they learn during the trials (other interpreters)
             json.dumps(result.environment, default=str), result.run_id))

    def finish_map_run(self, run_id: str, n_items: int, best: str | None,
                       options: dict[str, Any], interrupted: bool) -> None:
        """End a ``poolscope.map`` run (map_record.py): its item count is known only now."""
        self._write(
            "UPDATE runs SET status = ?, finished_at = ?, n_items = ?, best = ?, options = ? "
            "WHERE run_id = ?",
            ("interrupted" if interrupted else "complete",
             datetime.now(UTC).isoformat(timespec="seconds"), n_items, best,
             json.dumps(options, default=str), run_id))

    # --- reading -----------------------------------------------------------------------------
    def resolve(self, ref: str) -> str:
        """A run id, a unique prefix of one, 'latest' or 'latest~N'."""
        ref = ref.strip()
        if ref == "latest" or ref.startswith("latest~"):
            back = _runs_back(ref)
            row = self.db.execute("SELECT run_id FROM runs ORDER BY rowid "
                                  "DESC LIMIT 1 OFFSET ?", (back,)).fetchone()
            if row is None:
                raise UsageError(f"no run {ref!r} in {self.path}")
            return str(row[0])
        rows = self.db.execute("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\'",
                               (ref.replace("%", r"\%").replace("_", r"\_") + "%",)).fetchall()
        if not rows:
            raise UsageError(f"no run {ref!r} in {self.path}")
        if len(rows) > 1:
            raise UsageError(f"run {ref!r} is ambiguous: {len(rows)} runs start with it")
        return str(rows[0][0])

    def last_labelled(self, label: str) -> str | None:
        """The newest complete run stored with this label (a pytest test's node id)."""
        row = self.db.execute(
            "SELECT run_id FROM runs WHERE json_extract(options, '$.label') = ? AND "
            "status = 'complete' ORDER BY rowid DESC LIMIT 1", (label,)).fetchone()
        return None if row is None else str(row[0])

    def history(self, target: str | None = None, since: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT run_id, started_at, target, executors, best, status, pid, host "
               "FROM runs")
        where, params = [], []
        if target:
            where.append("target = ?")
            params.append(target)
        if since:
            where.append("started_at >= ?")
            params.append(since)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        rows = []
        for run_id, started, tgt, executors, best, status, pid, host in self.db.execute(
                sql, params):
            if status == "running" and not _writer_alive(pid, host):
                status = "incomplete"
            rows.append({"run_id": run_id, "started_at": started, "target": tgt,
                         "executors": executors, "best": best, "status": status})
        return rows

    def load(self, ref: str) -> Result:
        """The stored run as the same Result object a fresh run returns."""
        from .analysis.scaling import GrowthFit
        from .model import ItemColumns, TrialResult
        from .result import Result, TransferSample

        run_id = self.resolve(ref)
        (started, target, status, n_items, env, options, transfer, pid, host, growth) = \
            self.db.execute("SELECT started_at, target, status, n_items, environment, options, "
                            "transfer, pid, host, growth FROM runs WHERE run_id = ?",
                            (run_id,)).fetchone()
        trials = []
        for row in self.db.execute(
                "SELECT trial, executor, workers, chunksize, repeat, wall_s, cpu_s, startup_s, "
                "teardown_s, peak_rss, status, host, t0_ns, errors, worker_info, family, "
                "initializer FROM trials WHERE run_id = ? ORDER BY trial", (run_id,)):
            (index, executor, workers, chunksize, repeat, wall, cpu, startup, teardown, rss,
             trial_status, trial_host, t0, errors, worker_info, family, initializer) = row
            records = list(self._chunks(run_id, index))
            trials.append(TrialResult(
                index=index, executor=executor, workers=workers, chunksize=chunksize,
                repeat=repeat, wall_s=wall, cpu_s=cpu, startup_s=startup, teardown_s=teardown,
                peak_rss=rss, status=trial_status, host=trial_host,
                items=ItemColumns.from_chunks(records, t0), errors=json.loads(errors),
                t0_ns=t0, worker_info=json.loads(worker_info), family=family or "",
                initializer_s=json.loads(initializer or "[]")))
        interrupted = status == "interrupted" or (status == "running"
                                                  and not _writer_alive(pid, host))
        moved = json.loads(transfer) if transfer else None
        return Result(run_id=run_id, target=target, n_items=n_items, trial_results=trials,
                      environment=json.loads(env), options=json.loads(options),
                      interrupted=interrupted, started_at=started,
                      transfer=TransferSample(**moved) if moved else None,
                      growth={name: GrowthFit(**fit)
                              for name, fit in json.loads(growth or "{}").items()})

    def _chunks(self, run_id: str, trial: int) -> Iterator[ChunkRecord]:
        for (first, pid, tid, start, end, marks, core, status, errors, cpu, maxrss, host,
             worker, retried, spans, span_items) in self.db.execute(
                "SELECT first, pid, tid, start_ns, end_ns, cpu_marks_ns, core, status, errors, "
                "process_cpu_s, process_maxrss, host, worker, retried, spans, span_items "
                "FROM chunks WHERE run_id = ? AND trial = ? ORDER BY first", (run_id, trial)):
            record = ChunkRecord(
                first=first, start_ns=_array("q", start), end_ns=_array("q", end),
                cpu_marks_ns=_array("q", marks), core=_array("i", core),
                status=_array("b", status),
                errors=[tuple(e) for e in json.loads(errors)],  # type: ignore[misc]
                pid=pid, tid=tid, process_cpu_s=cpu, process_maxrss=maxrss, results=[],
                host=host, worker=worker, retried=bool(retried),
                spans=_array("q", spans) if spans else None)
            yield _spread(record, span_items) if span_items else record


def _runs_back(ref: str) -> int:
    """N of 'latest~N' (0 for 'latest'): digits only — int() would take '-1', which SQLite's
    OFFSET then ignores ('latest~-1' read as 'latest'), and '+1', ' 1' or '1_0' too."""
    if ref == "latest":
        return 0
    back = ref.removeprefix("latest~")
    if not re.fullmatch(r"[0-9]+", back):
        raise UsageError(f"bad run reference {ref!r}: use latest~N, with N a whole number "
                         "of 0 or more (latest~1 is the run before the latest)")
    return int(back)


def _spread(record: ChunkRecord, count: int) -> ChunkRecord:
    """A one-span chunk (add_chunk's span_items) as the probe would have sent it: ``count``
    items, the first with the span's start, the last with its end, one span over them all."""
    starts, ends = array("q", bytes(8 * count)), array("q", bytes(8 * count))
    marks = array("q", bytes(8 * (count + 1)))
    starts[0], ends[-1] = record.start_ns[0], record.end_ns[0]
    marks[0], marks[-1] = record.cpu_marks_ns[0], record.cpu_marks_ns[-1]
    status = array("b", bytes(count))
    for item, _, _ in record.errors:
        status[item - record.first] = STATUS_ERROR
    return record._replace(start_ns=starts, end_ns=ends, cpu_marks_ns=marks,
                           core=array("i", record.core[:1]) * count, status=status,
                           spans=array("q", [0, count]) if count > 1 else None)


def _array(typecode: str, data: bytes) -> array:
    values = array(typecode)
    values.frombytes(data)
    return values


def _writer_alive(pid: int, host: str) -> bool:
    """Whether the process that wrote a 'running' run may still be writing it."""
    if host != socket.gethostname():
        return True  # cannot tell from here
    return pid_alive(pid)
