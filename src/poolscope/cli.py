"""The ``poolscope`` command: thin typer commands over the pipeline.

Exit codes: 0 ok · 1 finished but some items or executors failed (every result kept), or the
preflight found the function failing on each of its first items (nothing run, nothing stored) ·
2 bad usage or input (one line, no traceback) · 130 interrupted by Ctrl-C, 143 by SIGTERM, 129 by
SIGHUP (finished trials kept, the run marked interrupted).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ._errors import ItemsError, PoolscopeError, PreflightError, UsageError
from ._format import count
from .options import (
    RunOptions,
    check_format,
    check_native_threads,
    check_output,
    check_outputs,
    check_report,
    parse_counts,
    parse_initargs,
    parse_workers,
)

__all__ = ["app", "main"]

EXIT_OK, EXIT_FAILED_ITEMS, EXIT_USAGE = 0, 1, 2

# Recent typer vendors its own click: take click's exception classes from typer's, by name.
_CLICK_ERRORS = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
ClickUsageError: type[Exception] = _CLICK_ERRORS["UsageError"]

app = typer.Typer(
    name="poolscope", no_args_is_help=True, add_completion=False,
    pretty_exceptions_enable=False, rich_markup_mode=None,
    help="See how a Python function really runs: serially, in threads, in processes — "
         "measured per item, compared, explained.")



def _print_version(asked: bool) -> None:
    if asked:
        from . import __version__

        typer.echo(f"poolscope {__version__}")
        raise typer.Exit()


@app.callback()
def _everywhere(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print poolscope's version and exit.")] = False,
) -> None:
    # The options every command shares (typer's callback); the work is in each command.
    pass


ExecutorsOpt = Annotated[str, typer.Option(
    "--executors", "-e", help="Comma-separated executors (see `poolscope executors`).")]
WorkersOpt = Annotated[str | None, typer.Option(
    "--workers", "-w", help="Workers per pool: N or a list like 1,2,4 [default: usable cores].")]
RepeatOpt = Annotated[str, typer.Option(
    "--repeat", "-r", help="Trials per executor, or 'auto': at least 5 trials and 2 s each, "
                           "capped by --max-time.")]
WarmupOpt = Annotated[int, typer.Option(
    "--warmup", help="Untimed trials per executor before the timed ones.")]
MaxTimeOpt = Annotated[float, typer.Option(
    "--max-time", help="With --repeat auto, stop adding trials after this many seconds.")]
ReusePoolOpt = Annotated[bool, typer.Option(
    "--reuse-pool", help="Keep each pool across its trials (start-up is then paid once).")]
TimeoutOpt = Annotated[float | None, typer.Option(
    "--timeout", help="Stop an item that runs longer than this many seconds (its worker process "
                      "is terminated, then killed) and go on; the item is recorded as timed out.")]
TrialTimeoutOpt = Annotated[float | None, typer.Option(
    "--trial-timeout", help="Stop a trial that runs longer than this many seconds; what finished "
                            "is kept and the trial is recorded as failed.")]
MaxMemoryOpt = Annotated[str | None, typer.Option(
    "--max-memory", help="Stop a worker process whose peak RSS passes this size (e.g. 2G, 512M) "
                         "and go on; its item is recorded as over the limit.")]
IsolateOpt = Annotated[bool, typer.Option(
    "--isolate/--no-isolate",
    help="Run serial, thread and the other in-process executors in a child process, so a "
         "function that ends its process (os._exit, a segfault, the OOM killer) cannot end "
         "the run; --no-isolate runs them in poolscope's own process.")]
NativeThreadsOpt = Annotated[int | None, typer.Option(
    "--native-threads", metavar="N",
    help="Cap each worker's native thread pools (BLAS, OpenMP) at N threads, through "
         "threadpoolctl [default: the libraries' own, often one per core].")]
ChunksizeOpt = Annotated[str, typer.Option(
    "--chunksize", help="Items per task: N, 'auto' (about four chunks per worker), or a list.")]
PredictCoresOpt = Annotated[str | None, typer.Option(
    "--predict-cores", metavar="N[,N…]",
    help="Also predict each executor on machines with these core counts (of this machine's "
         "per-core speed): wall time, interval, speedup and the bottleneck (see `poolscope "
         "predict`).")]
JsonOpt = Annotated[str | None, typer.Option(
    "--json", help="Write the result as JSON (schema poolscope/1); '-' for stdout.")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="Write one row per item as CSV.")]
PlotOpt = Annotated[Path | None, typer.Option(
    "--plot", help="Write the notebook's scatter and a per-worker timeline (.png or .svg).")]
ReportOpt = Annotated[Path | None, typer.Option(
    "--report", help="Write the interactive HTML report (one self-contained .html file).")]
TraceOpt = Annotated[Path | None, typer.Option(
    "--trace", help="Write a Chrome/Perfetto trace (.json, or .json.gz compressed) for "
                    "ui.perfetto.dev.")]
FormatOpt = Annotated[str, typer.Option(
    "--format", help="How to print the result: table, or markdown to paste into an issue.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
StarOpt = Annotated[bool, typer.Option(
    "--star", help="Each item is the function's arguments: a JSON list positional, an object "
                   "keywords (itertools.starmap, Pool.starmap).")]
InitializerOpt = Annotated[str | None, typer.Option(
    "--initializer", metavar="MODULE:FUNCTION",
    help="Call this function once in each worker (each thread, process or asyncio slot of a "
         "trial's pool) before its first item, as concurrent.futures' initializer; its time is "
         "the worker's, outside the items'. If it raises, that worker's items fail with "
         "InitializerFailed.")]
InitargsOpt = Annotated[str | None, typer.Option(
    "--initargs", metavar="JSON",
    help="The initializer's arguments, a JSON list (e.g. '[\"db.sqlite\", 4]').")]
VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Also each comparison behind the verdict, where each "
                            "configuration's time went, and the demo's code to paste.")]
StoreOpt = Annotated[Path | None, typer.Option(
    "--store", help="The run history's SQLite file [default: $POOLSCOPE_STORE or "
                    ".poolscope/poolscope.db].")]
NoStoreOpt = Annotated[bool, typer.Option("--no-store", help="Do not record this run.")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", metavar="tcp://HOST:PORT",
    help="Run the dask executor on this existing Dask cluster [default: "
         "$POOLSCOPE_DASK_SCHEDULER, else a local cluster of --workers processes per trial].")]


def _open_store(path: Path | None, no_store: bool) -> Any:
    """The store a run writes to, or None with --no-store."""
    if no_store:
        return None
    from .store import RunStore, store_path

    return RunStore(store_path(path))


def _read_store(path: Path | None) -> Any:
    from .store import RunStore, store_path

    return RunStore(store_path(path), create=False)


def _print_result(result: Any, console: Console, format_: str, verbose: bool = False,
                  short: bool = False) -> None:
    """The result's view; ``short`` (the demo, which says the rest in its own words) leaves
    the reasons and the code to paste to ``verbose``."""
    if format_ == "markdown":
        from .present.terminal import markdown_summary

        # Plain text on stdout, unwrapped, so it pastes as it is.
        _stdout().write(markdown_summary(result))
        _stdout().flush()
    else:
        from .present.terminal import render_result

        full = verbose or not short
        for part in render_result(result, verbose, code=full, reasons=full, hint=True):
            console.print(part)


def _predict(result: Any, console: Console, cores: list[int] | None, format_: str = "table",
             workers: list[int] | None = None, executors: list[str] | None = None) -> None:
    """Predict for ``cores`` (already parsed), keep the answers for the outputs, print them."""
    if not cores:
        return
    from .present.terminal import prediction_view

    result.predict(cores, workers=workers, executors=executors)
    if format_ == "table":
        console.print()
        if not result.predictions:
            console.print("no prediction: the run has no executor but serial with finished "
                          "items to read the parts from", style="dim")
        for part in prediction_view(result):
            console.print(part)


_document_out: Any = None  # the real stdout while _reserve_stdout holds it


def _reserve_stdout(json_path: str | None, format_: str) -> None:
    """With --json - (or --format markdown) stdout carries one document, so while the function
    runs, file descriptor 1 is stderr: nothing it prints, here or in worker processes (which
    inherit it), gets into the document, which goes to the real stdout (``_stdout``)."""
    global _document_out
    if json_path != "-" and format_ != "markdown":
        return
    try:
        if sys.stdout.fileno() != 1:
            return
    except (AttributeError, OSError, ValueError):  # captured, or replaced: nothing to guard
        return
    sys.stdout.flush()
    _document_out = open(os.dup(1), "w", encoding="utf-8")  # noqa: SIM115 (_release_stdout)
    os.dup2(2, 1)


def _release_stdout() -> None:
    global _document_out
    if _document_out is not None:
        _document_out.flush()
        sys.stdout.flush()
        os.dup2(_document_out.fileno(), 1)
        _document_out.close()
        _document_out = None


def _stdout() -> Any:
    """Where a document for stdout goes."""
    return _document_out if _document_out is not None else sys.stdout


def _consoles(json_path: str | None, format_: str = "table") -> Console:
    # With --json - stdout carries only the JSON document, with --format markdown only the
    # Markdown: the table and status lines go to stderr.
    stderr = json_path == "-" or format_ == "markdown"
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if _wraps(stream) else UNWRAPPED)


UNWRAPPED = 10_000  # a pipe's width: lines as long as they are, for grep and editors to wrap


def _wraps(stream: Any) -> bool:
    """Whether output to ``stream`` is wrapped to a width: on a terminal, or when COLUMNS
    asks for one; a pipe or a file gets whole lines."""
    try:
        return stream.isatty() or bool(os.environ.get("COLUMNS"))
    except (AttributeError, ValueError):
        return True


def _write(what: str, path: Any, write: Any) -> None:
    """``write(path)``, with a file that cannot be written said in one line (exit 2)."""
    try:
        write(path)
    except OSError as exc:  # a full disk, a read-only file, a directory in the way
        raise UsageError(f"cannot write the {what} to {path}: {exc.strerror or exc}") from None


def _write_json(document: Any, json_path: str) -> None:
    """A JSON document to ``json_path``, or to stdout for ``-``."""
    import json

    text = json.dumps(document, indent=2, default=str) + "\n"
    if json_path == "-":
        _stdout().write(text)
        _stdout().flush()
    else:
        _write("JSON", json_path, lambda path: Path(path).write_text(text, encoding="utf-8"))


def _write_outputs(result: Any, console: Console, json_path: str | None, csv: Path | None,
                   plot: Path | None, report: Path | None = None,
                   trace: Path | None = None) -> list[str]:
    """Write each output asked for; one that cannot be written does not stop the others (nor
    the run's last lines). Returns why each failed."""
    failed: list[str] = []
    written: list[str] = []

    def attempt(what: str, path: Any, write: Any, done: str | None) -> None:
        try:
            _write(what, path, write)
        except PoolscopeError as exc:
            failed.append(str(exc))
        else:
            if done:
                written.append(done)

    if json_path:
        attempt("JSON", json_path,
                lambda path: result.write_json(_stdout() if path == "-" else path),
                f"JSON written to {json_path}" if json_path != "-" else None)
    if csv:
        attempt("items CSV", csv, result.write_csv, f"items written to {csv}")
    if plot:
        attempt("plot", plot, result.plot, f"plot written to {plot}")
    if report:
        attempt("report", report, result.report, f"report written to {report}")
    if trace:
        attempt("trace", trace, result.to_perfetto,
                f"trace written to {trace} (open it in ui.perfetto.dev)")
    if written:
        console.print(" · ".join(written))
    return failed


def _show_progress(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()


@app.command()
def run(
    target: Annotated[str, typer.Argument(
        help="A built-in workload (see `poolscope workloads`), package.module:function or "
             "path/to/file.py:function.")],
    items: Annotated[int | None, typer.Option(
        "--items", "-n", help="Run over the items 0..N-1.")] = None,
    items_from: Annotated[Path | None, typer.Option(
        "--items-from", help="Read items from a file, one JSON value per line.")] = None,
    size: Annotated[int | None, typer.Option(
        "--size", help="The built-in workload's size knob (see `poolscope workloads`).")] = None,
    executors: ExecutorsOpt = "thread,process",
    workers: WorkersOpt = None,
    repeat: RepeatOpt = "auto",
    warmup: WarmupOpt = 0,
    max_time: MaxTimeOpt = 60.0,
    reuse_pool: ReusePoolOpt = False,
    chunksize: ChunksizeOpt = "auto",
    timeout: TimeoutOpt = None,
    trial_timeout: TrialTimeoutOpt = None,
    max_memory: MaxMemoryOpt = None,
    isolate: IsolateOpt = True,
    native_threads: NativeThreadsOpt = None,
    star: StarOpt = False,
    initializer: InitializerOpt = None,
    initargs: InitargsOpt = None,
    no_baseline: Annotated[bool, typer.Option(
        "--no-baseline", help="Do not add a serial trial (speedups are then unknown).")] = False,
    json_path: JsonOpt = None,
    csv: CsvOpt = None,
    plot: PlotOpt = None,
    report: ReportOpt = None,
    trace: TraceOpt = None,
    format_: FormatOpt = "table",
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    store: StoreOpt = None,
    no_store: NoStoreOpt = False,
    scheduler: SchedulerOpt = None,
    predict_cores: PredictCoresOpt = None,
) -> None:
    """Run TARGET over its items under each executor and compare them."""
    from .api import run_workload
    from .workloads import load_items_file

    if items is not None and items_from is not None:
        raise UsageError("give either --items or --items-from, not both")
    if items is not None and items < 1:
        raise UsageError(f"--items must be at least 1, got {items}")
    check_outputs(json_path, csv, plot, report, trace, format_)
    cores = parse_counts(predict_cores, "--predict-cores")  # bad counts fail before the run
    options = RunOptions.parse(
        executors=executors, workers=workers, repeat=repeat, chunksize=chunksize,
        max_memory=max_memory, warmup=warmup, max_time=max_time, reuse_pool=reuse_pool,
        baseline=not no_baseline, scheduler=scheduler, timeout=timeout,
        trial_timeout=trial_timeout, isolate=isolate, native_threads=native_threads)
    source = load_items_file(items_from) if items_from is not None else items
    workload = _workload(target, source, size, star, initializer, initargs)
    console = _consoles(json_path, format_)
    _reserve_stdout(json_path, format_)
    run_store = _open_store(store, no_store)
    result = run_workload(workload, options, progress=_show_progress(quiet),
                          console=Console(stderr=True), store=run_store)
    _print_result(result, console, format_, verbose)
    _predict(result, console, cores, format_)
    unwritten = _write_outputs(result, console, json_path, csv, plot, report, trace)
    _finish(result, console, run_store, unwritten)


def _workload(target: str, items: Any, size: int | None, star: bool, initializer: str | None,
              initargs: str | None) -> Any:
    """TARGET over its items, called in the shape --star and --initializer give."""
    from .call_shape import shape
    from .workloads import resolve_function, resolve_workload

    arguments = parse_initargs(initargs, initializer)  # before the target: exit 2 at once
    return shape(resolve_workload(target, items, size), star=star,
                 initializer=resolve_function(initializer) if initializer else None,
                 initargs=tuple(arguments))


def _finish(result: Any, console: Console, store: Any = None,
            unwritten: list[str] | None = None) -> None:
    """The run's last lines and its exit code; an output that could not be written is a usage
    error (exit 2), said after them: the run itself is stored."""
    if store is not None:
        console.print(f"stored as run {result.run_id} in {store.path}", style="dim")
    if result.interrupted:
        from .measure._interrupt import exit_code, stopped_by

        done = sum(t.status != "interrupted" for t in result.trial_results)
        console.print(f"{stopped_by()}: kept {count(done, 'finished trial')}", style="yellow")
    if unwritten:
        raise UsageError("; ".join(unwritten))
    raise typer.Exit(exit_code() if result.interrupted else result.exit_code)


@app.command()
def sweep(
    target: Annotated[str, typer.Argument(
        help="A built-in workload, package.module:function or path/to/file.py:function.")],
    items: Annotated[str | None, typer.Option(
        "--items", "-n", help="Item count, or a list like 100,1000,10000 to also fit how the "
                              "wall time grows with the count.")] = None,
    items_from: Annotated[Path | None, typer.Option(
        "--items-from", help="Read items from a file, one JSON value per line.")] = None,
    size: Annotated[int | None, typer.Option("--size", help="The built-in's size knob.")] = None,
    executors: ExecutorsOpt = "thread,process",
    workers: Annotated[str | None, typer.Option(
        "--workers", "-w", help="Worker counts [default: 1, 2, 4, … up to twice the cores].")
    ] = None,
    chunksize: ChunksizeOpt = "auto",
    repeat: RepeatOpt = "auto",
    warmup: WarmupOpt = 0,
    max_time: MaxTimeOpt = 60.0,
    timeout: TimeoutOpt = None,
    trial_timeout: TrialTimeoutOpt = None,
    max_memory: MaxMemoryOpt = None,
    isolate: IsolateOpt = True,
    native_threads: NativeThreadsOpt = None,
    star: StarOpt = False,
    initializer: InitializerOpt = None,
    initargs: InitargsOpt = None,
    json_path: JsonOpt = None,
    csv: CsvOpt = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Write the scaling curves (.png, .svg or .pdf).")] = None,
    report: ReportOpt = None,
    trace: TraceOpt = None,
    format_: FormatOpt = "table",
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    store: StoreOpt = None,
    no_store: NoStoreOpt = False,
    scheduler: SchedulerOpt = None,
    predict_cores: PredictCoresOpt = None,
) -> None:
    """Scale TARGET over worker counts (and chunksizes, item counts): speedup, efficiency,
    Amdahl's serial fraction, Karp–Flatt."""
    from .api import sweep_workload
    from .workloads import load_items_file

    counts = parse_workers(items, "--items") if items is not None else None
    if counts is not None and items_from is not None:
        raise UsageError("give either --items or --items-from, not both")
    if counts is not None and min(counts) < 1:
        raise UsageError(f"--items must be at least 1, got {min(counts)}")
    check_outputs(json_path, csv, plot, report, trace, format_)
    cores = parse_counts(predict_cores, "--predict-cores")  # bad counts fail before the run
    options = RunOptions.parse(
        executors=executors, workers=workers, repeat=repeat, chunksize=chunksize,
        max_memory=max_memory, warmup=warmup, max_time=max_time, scheduler=scheduler,
        timeout=timeout, trial_timeout=trial_timeout, isolate=isolate,
        native_threads=native_threads)
    source = load_items_file(items_from) if items_from is not None else (
        max(counts) if counts else None)
    workload = _workload(target, source, size, star, initializer, initargs)
    console = _consoles(json_path, format_)
    _reserve_stdout(json_path, format_)
    run_store = _open_store(store, no_store)
    result = sweep_workload(workload, options, item_counts=counts,
                            progress=_show_progress(quiet), console=Console(stderr=True),
                            store=run_store)
    _print_result(result, console, format_, verbose)
    _predict(result, console, cores, format_)
    unwritten = _write_outputs(result, console, json_path, csv, None, report, trace)
    if plot:
        try:
            _write("scaling plot", plot, result.plot_scaling)
        except PoolscopeError as exc:
            unwritten.append(str(exc))
        else:
            console.print(f"scaling plot written to {plot}")
    _finish(result, console, run_store, unwritten)


@app.command(name="map")
def map_command(
    target: Annotated[str, typer.Argument(
        help="A built-in workload (see `poolscope workloads`), package.module:function or "
             "path/to/file.py:function.")],
    items_from: Annotated[Path, typer.Option(
        "--items-from", help="Read items from a file, one JSON value per line ('-' for stdin), "
                             "a line at a time as they are needed.")],
    out: Annotated[str, typer.Option(
        "--out", help="Write the results as JSON lines in item order, one per item: "
                      '{"item": i, "result": ...} or {"item": i, "error": {"kind": ..., '
                      '"message": ...}}; \'-\' for stdout.')] = "-",
    size: Annotated[int | None, typer.Option(
        "--size", help="The built-in workload's size knob (see `poolscope workloads`).")] = None,
    executors: Annotated[str, typer.Option(
        "--executors", "-e", help="Comma-separated candidate executors: serial, thread and "
                                  "process ones (see `poolscope executors`).")
    ] = "serial,thread,process-pool",
    max_workers: Annotated[int | None, typer.Option(
        "--max-workers", help="Workers per pool [default: threads as many as the items can "
                              "overlap (from the cores they keep busy), the usable cores for "
                              "processes].")] = None,
    star: StarOpt = False,
    budget: Annotated[float, typer.Option(
        "--budget", help="Seconds of calibration, at most (whole batches: it may pass it a "
                         "little).")] = 1.0,
    chunksize: Annotated[int | None, typer.Option(
        "--chunksize", help="Items per task on a pool [default: about four chunks per worker "
                            "in each batch].")] = None,
    initializer: InitializerOpt = None,
    initargs: InitargsOpt = None,
    native_threads: NativeThreadsOpt = None,
    quiet: QuietOpt = False,
    store: StoreOpt = None,
    no_store: NoStoreOpt = False,
) -> None:
    """Map TARGET over the items, as list(map(...)) does, on the executor the first items show
    fastest; the results stream out as JSON lines, in item order."""
    from .workloads import resolve_function, resolve_workload

    if max_workers is not None and max_workers < 1:
        raise UsageError(f"--max-workers must be at least 1, got {max_workers}")
    if chunksize is not None and chunksize < 1:
        raise UsageError(f"--chunksize must be at least 1, got {chunksize}")
    if not (0 < budget < float("inf")):
        raise UsageError(f"--budget must be a number of seconds more than 0, got {budget:g}")
    check_native_threads(native_threads)
    arguments = parse_initargs(initargs, initializer)
    check_output(out, "--out")
    _check_not_the_items(out, items_from)
    items = _JsonLinesItems(items_from, star)  # opened now: a missing file is exit 2 at once
    try:
        progress = _map_progress(quiet, out)
        # With --out -, stdout carries only the results: what the target prints, as it is
        # imported or as it runs (here or in workers), goes to stderr.
        _reserve_stdout(out, "table")
        workload = resolve_workload(target, items, size)
        fn = workload.fn
        console = _consoles(out)
        results = _ResultLines(out, progress)
        recording: dict[str, Any] = {}  # map_stream's own default unless asked: the history
        if no_store or store is not None:
            recording["store"] = False if no_store else store
        if initializer is not None:
            recording.update(initializer=resolve_function(initializer), initargs=arguments)
        _run_map(fn, items, results, console, progress, executors=executors,
                 max_workers=max_workers, star=star, budget=budget, chunksize=chunksize,
                 native_threads=native_threads, target=workload.target, **recording)
    finally:
        items.close()


def _run_map(fn: Any, items: _JsonLinesItems, results: _ResultLines, console: Console,
             progress: Any, **options: Any) -> None:
    """``map``'s run and last lines: its exit code, 1 when an item failed; an error while
    writing a result is said as it is (a full disk: exit 2; a closed pipe: exit 0)."""
    from .automap import map_stream
    from .measure._interrupt import exit_code, stopped_by

    try:
        if progress is not None:
            progress.start()
        try:
            decision = map_stream(fn, iter(items), results, **options)
            results.finish()
        finally:
            if progress is not None:
                progress.stop()
            results.close()
    except KeyboardInterrupt:
        console.print(f"{stopped_by()}: kept the results of the first "
                      f"{count(results.done, 'item')}", style="yellow")
        raise typer.Exit(exit_code()) from None
    except Exception:
        if results.error is None:  # the function's items, the options: said by _main
            raise
        if isinstance(results.error, BrokenPipeError):  # `| head`: the reader has enough
            raise typer.Exit(EXIT_OK) from None  # as _main means (click would exit 1)
        raise UsageError(f"cannot write the results to {results.out}: "
                         f"{results.error.strerror or results.error}") from None
    if results.out != "-":
        console.print(f"results written to {results.out}")
    _print_decision(decision, console, results)
    raise typer.Exit(EXIT_FAILED_ITEMS if results.failed else EXIT_OK)


def _check_not_the_items(out: str, items_from: Path) -> None:
    """--out would empty the file the items are still being read from."""
    if out == "-" or str(items_from) == "-":
        return
    try:
        same = os.path.samefile(out, items_from)
    except OSError:  # one of them does not exist (yet): not the same file
        return
    if same:
        raise UsageError(f"--out {out} is the --items-from file: write the results elsewhere")


class _JsonLinesItems:
    """``map``'s --items-from: one JSON value per line (blank lines skipped), read a line at a
    time as the items are taken, so a file of any length is never in memory at once. The file
    is opened at once; a line that is not JSON stops the run when it is reached (ItemsError,
    with the file and line number)."""

    def __init__(self, path: Path, star: bool) -> None:
        self.star = star
        self.name = "<stdin>" if str(path) == "-" else str(path)
        self.file: Any
        if str(path) == "-":
            self.file = getattr(sys.stdin, "buffer", sys.stdin)
            self.owned = False
            return
        from .workloads import items_file_errors

        with items_file_errors(path):
            self.file = open(path, "rb")  # noqa: SIM115 (closed by close())
        self.owned = True

    def __iter__(self) -> Any:
        import json

        number = 0
        try:
            for number, raw in enumerate(self.file, start=1):
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw if isinstance(raw, str) else raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise ItemsError(f"{self.name}:{number}: not UTF-8 text") from None
                except json.JSONDecodeError as exc:
                    raise ItemsError(
                        f"{self.name}:{number}: not a JSON value ({exc.msg})") from None
                if self.star and not isinstance(item, list | dict):
                    text = raw if isinstance(raw, str) else raw.decode("utf-8")
                    raise ItemsError(f"{self.name}:{number}: --star takes a JSON list "
                                     f"(arguments) or object (keywords), got "
                                     f"{text.strip()[:40]}")
                yield item
        except OSError as exc:
            raise ItemsError(f"cannot read items file {self.name} after line {number}: "
                             f"{exc.strerror or exc}") from None

    def close(self) -> None:
        if self.owned:
            self.file.close()


class _ResultLines:
    """``map``'s sink: each list of results it is handed, as JSON lines written and flushed at
    once (bounded memory; what finished stays written whatever comes next). The file is opened
    with the first results: a run that stops before any (a bad option) leaves no file."""

    def __init__(self, out: str, progress: Any = None) -> None:
        self.out = out
        self.stream: Any = None
        self.done = self.failed = 0
        self.error: OSError | None = None  # why writing failed, when it did
        self.progress = progress

    def __call__(self, values: list[Any]) -> None:
        lines = []
        for value in values:
            line, failed = _result_line(self.done + len(lines), value)
            lines.append(line)
            self.failed += failed
        try:
            stream = self._stream()
            stream.write("".join(lines))
            stream.flush()
        except OSError as exc:
            self.error = exc
            if isinstance(exc, BrokenPipeError) and self.stream is not None:
                # The reader left: what is still buffered goes nowhere, without an error at exit.
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
                os.close(devnull)
            raise
        self.done += len(values)
        if self.progress is not None:
            self.progress.update(self.progress.task_ids[0], refresh=True,
                                 description=f"{self.done:,} items done, {self.failed:,} "
                                             "failed")

    def _stream(self) -> Any:
        if self.stream is None:
            self.stream = _stdout() if self.out == "-" else open(  # noqa: SIM115 (close())
                self.out, "w", encoding="utf-8")
        return self.stream

    def finish(self) -> None:
        """Every item done: the results flushed (an empty file for no items)."""
        try:
            self._stream().flush()
        except OSError as exc:
            self.error = exc
            raise

    def close(self) -> None:
        if self.stream is None or self.out == "-":
            return
        try:
            self.stream.close()
        except OSError as exc:
            if self.error is None:  # else already said: the first error is the one
                self.error = exc
                raise


def _result_line(item: int, value: Any) -> tuple[str, bool]:
    """One result as a JSON line, and whether the item failed. A value JSON cannot hold (an
    object, bytes, NaN) is written as its repr, marked ``"repr": true``."""
    import json

    from .map_call import ItemFailed, Raised

    if isinstance(value, Raised):
        exc = value.exc
        if isinstance(exc, ItemFailed):
            kind, message = exc.kind, exc.message
        elif isinstance(exc, SystemExit):
            kind, message = "SystemExit", f"the function called sys.exit({exc.code!r})"
        else:
            kind, message = type(exc).__name__, _safe_text(str, exc)
        return json.dumps({"item": item, "error": {"kind": kind, "message": message}}) + "\n", True
    try:
        return json.dumps({"item": item, "result": value}, allow_nan=False) + "\n", False
    except (TypeError, ValueError, RecursionError):
        return json.dumps({"item": item, "result": _safe_text(repr, value),
                           "repr": True}) + "\n", False


def _safe_text(convert: Any, value: Any) -> str:
    try:
        return str(convert(value))
    except Exception as exc:  # a __str__ or __repr__ that raises
        return f"<{type(value).__name__} object: {convert.__name__}() raised " \
               f"{type(exc).__name__}>"


def _map_progress(quiet: bool, out: str) -> Any:
    """A line on stderr counting the results, on a terminal (not when the results go to the
    same terminal); no refresh thread, as the runs' bar (present/progress.py)."""
    if not _show_progress(quiet) or (out == "-" and sys.stdout.isatty()):
        return None
    from rich.progress import Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=Console(stderr=True), auto_refresh=False, transient=True,
                        redirect_stdout=False, redirect_stderr=False)
    progress.add_task("calibrating", total=None)
    return progress


def _print_decision(decision: Any, console: Console, results: _ResultLines) -> None:
    """What map chose, each candidate's calibration, and the counts."""
    from ._format import duration

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False)

    if decision is not None:
        label = (decision.executor if decision.executor == "serial"
                 else f"{decision.executor} ×{decision.workers}")
        say(f"decision: {label} ({decision.how}): {decision.reason}")
        say(f"calibration: {decision.calibration_items:,} of {results.done:,} items")
        width = max((len(name) for name in decision.calibration), default=0)
        for name, times in decision.calibration.items():
            if times:
                batches = f"{len(times)} batch{'es' if len(times) != 1 else ''}"
                say(f"  {name:<{width}}  {duration(statistics.median(times)):>9} per item "
                    f"(median of {batches})")
    say(f"{results.done:,} items, {results.failed:,} failed")


@app.command()
def demo(
    items_per_job: Annotated[int, typer.Option(
        "--items-per-worker", "--items-per-job",
        help="Items per worker (the notebook's jobs).")] = 20,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", help="Workers (the notebook's jobs) [default: one per usable core]."
    )] = None,
    size: Annotated[int, typer.Option("--size", help="Loop iterations per item.")] = 1_000_000,
    plot: Annotated[Path, typer.Option(
        "--plot", help="Where to write the picture.")] = Path("poolscope-demo.png"),
    report: Annotated[Path, typer.Option(
        "--report", help="Where to write the interactive HTML report.")
    ] = Path("poolscope-demo.html"),
    trace: TraceOpt = None,
    format_: FormatOpt = "table",
    repeat: RepeatOpt = "auto",
    native_threads: NativeThreadsOpt = None,
    json_path: JsonOpt = None,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    store: StoreOpt = None,
    no_store: NoStoreOpt = False,
) -> None:
    """Redo the notebook's experiment: thread-pool vs process-pool on a pure-Python loop."""
    from .api import run_workload
    from .environment import usable_cores
    from .present.demo import observations
    from .workloads import resolve_workload

    jobs = usable_cores() if workers is None else workers
    if jobs < 1 or items_per_job < 1:
        raise UsageError("--workers and --items-per-worker must be at least 1")
    check_native_threads(native_threads)
    check_outputs(json_path, None, plot, report, trace, format_)
    console = _consoles(json_path, format_)
    console.print(f"The notebook's experiment: serial, ThreadPool and Pool on "
                  f"{items_per_job * jobs} items of a {size:,}-step loop")
    workload = resolve_workload("cpu", items_per_job * jobs, size)
    run_store = _open_store(store, no_store)
    options = RunOptions.parse(executors="serial,thread-pool,process-pool", repeat=repeat,
                               native_threads=native_threads).replace(workers=jobs)
    result = run_workload(workload, options, progress=_show_progress(quiet),
                          console=Console(stderr=True), store=run_store)
    _print_result(result, console, format_, verbose, short=True)
    console.print()
    for line in observations(result, "thread-pool", "process-pool"):
        console.print(line)
    console.print()
    unwritten = _write_outputs(result, console, json_path, None, plot, report, trace)
    _finish(result, console, run_store, unwritten)


@app.command()
def history(
    target: Annotated[str | None, typer.Option("--target", help="Only runs of this target.")
                      ] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only runs started on or after this date (YYYY-MM-DD).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many runs (0: all).")] = 50,
    store: StoreOpt = None,
    json_path: Annotated[str | None, typer.Option(
        "--json", help="Write the runs as a JSON list instead; '-' for stdout.")] = None,
) -> None:
    """List stored runs, newest first: id, when, target, executors, best, status."""
    check_output(json_path, "--json")
    if since is not None:
        from datetime import date

        try:
            date.fromisoformat(since[:10])
        except ValueError:
            raise UsageError(f"--since: {since!r} is not a date like 2026-11-25") from None
    with _read_store(store) as runs:
        rows = runs.history(target=target, since=since, limit=limit)
    if json_path is not None:
        _write_json([{**row, "executors": row["executors"].split(",")} for row in rows],
                    json_path)
        return
    console = _consoles(None)  # piped: whole rows, one per line, for grep and friends
    if not rows:
        console.print("no runs stored yet")
        return
    table = _history_table(rows, with_time=True)
    if console.measure(table, options=console.options.update_width(UNWRAPPED)
                       ).maximum > console.width:
        table = _history_table(rows, with_time=False)  # the id says when, less readably
    console.print(table)


def _history_table(rows: list[dict[str, Any]], with_time: bool) -> Table:
    """The runs; a narrow terminal wraps the target, executors and best, never the id (to
    copy) or the status (to grep for)."""
    table = Table(header_style="bold", box=None, caption=None if with_time else
                  "each run id begins with its start time (UTC)")
    columns = ["run", *(["started (UTC)"] if with_time else []), "target", "executors", "best",
               "status"]
    for column in columns:
        table.add_column(column, no_wrap=column in ("run", "started (UTC)", "status"),
                         min_width=len("incomplete") if column == "status" else None,
                         overflow="fold")
    for row in rows:
        started = [row["started_at"].replace("T", " ")[:19]] if with_time else []
        table.add_row(row["run_id"], *started, row["target"], row["executors"].replace(",", ", "),
                      row["best"] or "–", row["status"])
    return table


@app.command()
def show(
    run_ref: Annotated[str, typer.Argument(
        metavar="RUN", help="A run id, a unique prefix of one, latest or latest~N.")],
    json_path: JsonOpt = None,
    format_: FormatOpt = "table",
    verbose: VerboseOpt = False,
    store: StoreOpt = None,
) -> None:
    """Show a stored run's table and recommendation again."""
    check_output(json_path, "--json")
    check_format(format_, json_path)
    with _read_store(store) as runs:
        result = runs.load(run_ref)
    console = _consoles(json_path, format_)
    if format_ == "table":
        console.print(f"run {result.run_id}, started {result.started_at}")
    _print_result(result, console, format_, verbose)
    if json_path:
        _write("JSON", json_path, result.write_json)


@app.command()
def predict(
    run_ref: Annotated[str, typer.Argument(
        metavar="RUN", help="A run id, a unique prefix of one, latest or latest~N.")],
    cores: Annotated[str, typer.Option(
        "--cores", metavar="N[,N…]", help="Core counts of the machines to predict for.")],
    workers: Annotated[str | None, typer.Option(
        "--workers", "-w", help="Worker counts to predict [default: those measured, powers of "
                                "two and one per core].")] = None,
    executors: Annotated[str | None, typer.Option(
        "--executors", "-e", help="Comma-separated executors of the run [default: all but "
                                  "serial].")] = None,
    json_path: JsonOpt = None,
    plot: Annotated[Path | None, typer.Option(
        "--plot", help="Draw the predicted speedups with their intervals and the measured "
                       "ones (.png, .svg or .pdf).")] = None,
    report: ReportOpt = None,
    store: StoreOpt = None,
) -> None:
    """Predict a stored run's executors on machines with more (or fewer) cores: wall time,
    95% interval, speedup over serial and the bottleneck, from the parts the run measured."""
    check_outputs(json_path, None, plot, report, None, "table")
    counts = parse_counts(cores, "--cores") or []
    counts_of_workers = parse_counts(workers, "--workers")
    with _read_store(store) as runs:
        result = runs.load(run_ref)
    measured = [name for name in dict.fromkeys(result.summary["executor"]) if name != "serial"]
    names = [name.strip() for name in executors.split(",") if name.strip()] if executors else (
        measured)
    if "serial" in names:
        raise UsageError("serial runs on one core on any machine: there is nothing to predict "
                         f"for it; run {result.run_id} has {', '.join(measured) or 'no other'}")
    unknown = [name for name in names if name not in measured]
    if unknown or not names:
        raise UsageError(f"run {result.run_id} measured no {', '.join(unknown) or 'executor'} "
                         f"to predict; it has {', '.join(measured) or 'serial only'}")
    console = _consoles(json_path, "table")
    console.print(f"run {result.run_id}: {result.target}, {result.n_items:,} items, measured on "
                  f"{result.cores} core{'s' * (result.cores != 1)}")
    _predict(result, console, counts, "table", counts_of_workers or None,
             names)
    if not result.predictions:
        raise UsageError(f"run {result.run_id} has no finished items to predict from")
    if json_path:
        _write("JSON", json_path,
               lambda path: result.write_json(_stdout() if path == "-" else path))
    if plot:
        _write("plot", plot, result.plot_prediction)
        console.print(f"plot written to {plot}")
    if report:
        _write("report", report, result.report)
        console.print(f"report written to {report}")


@app.command(name="compare")
def compare_command(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="The earlier run.")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="The later run.")],
    fail_on_regression: Annotated[float | None, typer.Option(
        "--fail-on-regression", metavar="PCT",
        help="Exit 1 when an executor got slower by more than PCT percent, with 95% "
             "confidence (for CI).")] = None,
    json_path: JsonOpt = None,
    store: StoreOpt = None,
) -> None:
    """Compare two stored runs: per executor, the change in wall time and a verdict."""
    from .analysis.change import compare_runs, mismatches

    if fail_on_regression is not None and fail_on_regression < 0:
        raise UsageError("--fail-on-regression must be zero or more")
    check_output(json_path, "--json")
    with _read_store(store) as runs:
        before, after = runs.load(run_a), runs.load(run_b)
    changes = compare_runs(before.trials, after.trials)
    console = _consoles(json_path)
    if not changes:
        raise UsageError(f"runs {before.run_id} and {after.run_id} share no executor to compare")
    apart = mismatches(before, after)
    if apart and fail_on_regression is not None:
        raise UsageError(f"--fail-on-regression: runs {before.run_id} and {after.run_id} are not "
                         f"the same experiment ({'; '.join(apart)}): a change between them is "
                         "not a regression of the code")
    for difference in apart:
        console.print(f"not the same experiment: {difference}", style="yellow")
    table = Table(title=f"{before.run_id} ({before.target}) → {after.run_id} ({after.target})",
                  title_justify="left", title_style="bold", header_style="bold", box=None)
    for column in ("executor × workers", "before", "after", "change", "95% CI", "verdict"):
        # The verdict wraps in a narrow terminal; the numbers are never cut.
        table.add_column(column, justify="left" if column in ("executor × workers", "verdict")
                         else "right", no_wrap=column != "verdict")
    from ._format import duration

    for c in changes:
        ci = f"{c.ci[0] - 1:+.0%} … {c.ci[1] - 1:+.0%}" if c.ci else "–"
        table.add_row(f"{c.executor} ×{c.workers}", duration(c.before_s), duration(c.after_s),
                      f"{c.ratio - 1:+.1%}", ci, c.verdict,
                      style={"slower": "red", "faster": "green"}.get(c.verdict))
    console.print(table)
    regressions = [c for c in changes
                   if fail_on_regression is not None and c.regression_beyond(fail_on_regression)]
    if json_path:

        document = {"schema": "poolscope/1", "before": before.run_id, "after": after.run_id,
                    "not_the_same_experiment": apart,
                    "changes": [c.to_json() for c in changes],
                    "regressions": [f"{c.executor} ×{c.workers}" for c in regressions]}
        _write_json(document, json_path)
    if regressions:
        names = ", ".join(f"{c.executor} ×{c.workers} ({c.ratio - 1:+.0%})" for c in regressions)
        console.print(f"regression beyond {fail_on_regression:g}%: {names}", style="red")
        raise typer.Exit(EXIT_FAILED_ITEMS)


@app.command()
def export(
    run_ref: Annotated[str, typer.Argument(
        metavar="RUN", help="A run id, a unique prefix of one, latest or latest~N.")],
    format_: Annotated[str, typer.Option(
        "--format", "-f", help="csv or parquet (one row per item), json (the result), or "
                               "perfetto (a trace for ui.perfetto.dev).")
    ] = "csv",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write [default: RUN.FORMAT].")] = None,
    store: StoreOpt = None,
) -> None:
    """Export a stored run: its items as CSV or Parquet, its result as JSON, or a trace."""
    if format_ not in ("csv", "parquet", "json", "perfetto"):
        raise UsageError(f"--format must be csv, parquet, json or perfetto, got {format_!r}")
    check_output(output, "--output")
    with _read_store(store) as runs:
        result = runs.load(run_ref)
    suffix = "trace.json" if format_ == "perfetto" else format_
    target = output or Path(f"{result.run_id}.{suffix}")
    if target.exists() and output is None:
        raise UsageError(f"{target} exists: name the file with --output")
    writers = {"csv": result.write_csv, "perfetto": result.to_perfetto,
               "parquet": lambda path: result.items.to_parquet(path, index=False)}
    _write(format_, target, writers.get(format_, result.write_json))
    _consoles(None).print(f"{format_} written to {target}")


@app.command()
def report(
    run_ref: Annotated[str, typer.Argument(
        metavar="RUN", help="A run id, a unique prefix of one, latest or latest~N.")] = "latest",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Where to write [default: poolscope-report-RUN.html].")] = None,
    store: StoreOpt = None,
) -> None:
    """Write a stored run's interactive HTML report (self-contained, works offline)."""
    check_report(output)
    with _read_store(store) as runs:
        result = runs.load(run_ref)
    target = output or Path(f"poolscope-report-{result.run_id}.html")
    result.report(target)
    _consoles(None).print(f"report written to {target}")


@app.command()
def workloads() -> None:
    """List the built-in workloads and what each stresses."""
    from .workloads import BUILTIN_WORKLOADS

    table = Table(header_style="bold", box=None)  # no frame: 80 columns hold more text
    for column in ("workload", "stresses", "--size means", "default size", "default items"):
        table.add_column(column, no_wrap=column == "workload", overflow="fold")
    for w in BUILTIN_WORKLOADS.values():
        table.add_row(w.name, w.stresses, w.size_meaning, f"{w.default_size:,}",
                      f"{w.default_items:,}")
    _consoles(None).print(table)
    _consoles(None).print("Your own: package.module:function or path/to/file.py:function, "
                    "with --items N or --items-from FILE.")


@app.command()
def executors(
    python: Annotated[str | None, typer.Option(
        "--python", metavar="PATH",
        help="Describe another interpreter instead: which executors run under it (as "
             "NAME@PATH) and what poolscope needs installed there.")] = None,
    bench: Annotated[bool, typer.Option(
        "--bench", help="Measure each available executor's start-up, teardown and overhead "
                        "per item on this machine.")] = False,
    bench_items: Annotated[int, typer.Option(
        "--bench-items", help="Near-empty items per --bench trial.")] = 2_000,
    json_path: JsonOpt = None,
) -> None:
    """List the executors, whether each can run here, and why not when it cannot."""
    from rich.markup import escape

    from .backends import REGISTRY

    if python is not None:
        _describe_python(python)
        return
    if bench:
        _bench_executors(bench_items, json_path)
        return
    table = Table(header_style="bold", box=None)
    for column in ("executor", "family", "available", "what it is"):
        # Folded, not cut: "concurrent.futures.ThreadPoolExecutor" is one long word.
        table.add_column(column, no_wrap=column == "executor", overflow="fold")
    for name, cls in REGISTRY.items():
        reason = cls.unavailable_reason()
        # The reason goes under the description, where a narrow terminal has room to wrap it.
        # Escaped: a reason like "pip install 'poolscope[dask]'" is not rich markup.
        what = cls.summary if reason is None else f"{cls.summary}\nnot here: {reason}"
        table.add_row(name, str(cls.family), "yes" if reason is None else "no", escape(what))
    _consoles(None).print(table)


def _bench_executors(items: int, json_path: str | None) -> None:
    """``executors --bench``: start-up and overhead per item, measured, as a table and JSON."""

    from ._format import duration
    from .executor_bench import bench_executors, bench_json

    if items < 10:
        raise UsageError(f"--bench-items must be at least 10, got {items}")
    check_output(json_path, "--json")
    console = _consoles(json_path)
    repeat, workers = 3, 2
    console.print(f"Timing each executor on {items:,} near-empty items, {workers} workers, "
                  f"median of {repeat} trials…", style="dim")
    table = bench_executors(items=items, workers=workers, repeat=repeat)
    view = Table(header_style="bold", box=None)
    for column in ("executor", "start-up", "teardown", "per item", "per item, chunked"):
        view.add_column(column, justify="left" if column == "executor" else "right",
                        no_wrap=True)
    missing = []
    for row in table.itertuples(index=False):
        if not row.available:
            view.add_row(row.executor, "–", "–", "–", "–", style="dim")
            missing.append(f"{row.executor}: {row.reason}")
            continue
        view.add_row(row.executor, duration(row.startup_s), duration(row.teardown_s),
                     duration(row.per_item_s), duration(row.per_item_auto_s))
    console.print(view)
    console.print("per item: (wall − start-up − teardown) / items, one item per task; chunked: "
                  "about four chunks per worker", style="dim")
    for line in missing:
        console.print(f"not here: {line}", style="dim", markup=False)
    if json_path:
        _write_json(bench_json(table, items, workers, repeat), json_path)


def _describe_python(python: str) -> None:
    """``executors --python PATH``: what a child of that interpreter can run, and needs."""
    from rich.markup import escape

    from .backends.elsewhere import describe, needs_lines

    info = describe(python)  # a one-line UsageError for a missing, non-Python or old PATH
    console = _consoles(None)
    build = "free-threaded build" if info["free_threaded"] else "GIL build"
    gil = "enabled" if info["gil_enabled"] else "disabled"
    console.print(f"{python}: {info['implementation']} {info['python']} ({build}, GIL {gil}) "
                  f"at {info['executable']}")
    if info.get("error"):
        console.print(info["error"], style="red")
    if info["executors"]:
        table = Table(header_style="bold")
        for column in ("executor", "family", "available", "what it is"):
            table.add_column(column)
        for e in info["executors"]:
            table.add_row(e["name"], e["family"],  # escaped: "pip install 'poolscope[dask]'"
                          "yes" if e["available"] else escape(f"no: {e['reason']}"),
                          escape(e["summary"]))
        console.print(table)
        console.print(f"run one there as NAME@{python}, e.g. -e thread@{python}")
    console.print("poolscope needs there:")
    for line in needs_lines(info):
        console.print(f"  {line}")
    console.print("  nothing else: the child imports this poolscope's own source; numpy, pandas "
                  "and the analysis stay in this interpreter")


def main(argv: list[str] | None = None) -> None:
    """Entry point: every error becomes one line and a documented exit code; threads the
    function left running do not keep poolscope from ending (``_leave_stray_threads``)."""
    try:
        try:
            _main(argv)
        finally:
            _release_stdout()
    except SystemExit as exc:
        if argv is None:  # the program itself, not a caller's process (tests call main(argv))
            _leave_stray_threads(exc.code if isinstance(exc.code, int) else EXIT_FAILED_ITEMS
                                 if exc.code else EXIT_OK)
        raise


def _leave_stray_threads(code: int) -> None:
    """With --no-isolate the function runs in this process, and Python's exit waits for every
    non-daemon thread it started: forever for a server loop. They get the teardown's grace
    period; then poolscope ends without them (exit handlers run, the exit code kept)."""
    import threading
    import time

    from .measure.lifetime import TEARDOWN_GRACE_S

    deadline = time.monotonic() + TEARDOWN_GRACE_S
    stray = [t for t in threading.enumerate()
             if not t.daemon and t is not threading.main_thread()]
    for thread in stray:
        thread.join(max(0.0, deadline - time.monotonic()))
    left = [t.name for t in stray if t.is_alive()]
    if not left:
        return
    import atexit

    print(f"poolscope: the function left {count(len(left), 'non-daemon thread')} running "
          f"({', '.join(left[:3])}{', …' if len(left) > 3 else ''}); ended without them",
          file=sys.stderr)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _main(argv: list[str] | None) -> None:
    from .measure._interrupt import exit_code, install_sigint_handler, stopped_by

    install_sigint_handler()
    try:
        # Without standalone mode click returns a command's exit code instead of exiting.
        code = app(args=argv, standalone_mode=False)
    except UsageError as exc:
        _fail(str(exc), EXIT_USAGE)
    except PreflightError as exc:  # the function runs on no item: its error, not usage
        _fail(str(exc), EXIT_FAILED_ITEMS)
    except PoolscopeError as exc:
        _fail(str(exc), EXIT_USAGE)
    except ClickUsageError as exc:
        ctx: Any = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `poolscope`: show the help
            print(ctx.get_help() if ctx else exc.format_message())  # type: ignore[attr-defined]
            sys.exit(EXIT_USAGE)
        message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
        hint = f" (see 'poolscope {ctx.info_name} --help')" if ctx and ctx.parent else ""
        _fail(message + hint, EXIT_USAGE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _fail(stopped_by(), exit_code())
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _fail(message: str, code: int) -> None:
    print(f"poolscope: error: {message}", file=sys.stderr)
    sys.exit(code)
