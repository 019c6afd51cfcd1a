"""The ``%%poolscope`` cell magic and ``%poolscope`` line magic: compare executors on a function.

    %load_ext poolscope

    %%poolscope -n 40 -e thread-pool,process-pool -w 2
    def worker(item):
        for _ in range(1_000_000):
            pass
        return item

    %poolscope worker range(40) -e thread,process

The line magic measures a function of the notebook (a name, or an expression such as
``module.fn``) over the items its second part gives (a count, or an expression, which may hold
spaces: ``%poolscope fn range(0, 100, 5) -e thread``), with the same options.

The cell magic runs the cell in the notebook's namespace, then measures the last function the
cell defines at top level (``def`` or ``async def``), or the one named by ``--function NAME`` (which
may come from an earlier cell). The options are those of ``poolscope run``; ``--items`` takes a
count (``-n 40``: the items 0..39) or the name of a variable, or any Python expression, evaluated
in the notebook (``--items data``, ``--items "range(0, 100, 5)"``). The result is returned, so it
shows as the HTML summary and timeline, and is also kept in the notebook as ``_poolscope``.
Progress shows as tqdm's notebook bar unless ``--quiet``. Like the CLI, the run is stored in
``.poolscope/poolscope.db`` under the working directory unless ``--no-store`` (``--verbose``
says where).

A bad option prints one line (``poolscope: error: ...``) and returns nothing; an error raised by
the cell's own code shows IPython's usual traceback.
"""

from __future__ import annotations

import argparse
import ast
import functools
import itertools
import re
import sys
from pathlib import Path
from typing import Any

from IPython.core import magic_arguments
from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.utils.process import arg_split

from ._errors import PoolscopeError, UsageError
from ._format import count

__all__ = ["PoolscopeMagics", "last_function_name", "load_ipython_extension"]

RESULT_NAME = "_poolscope"  # where the magic leaves its result in the notebook
_COUNT = re.compile(r"[+-]?\d[\d_]*")


def last_function_name(source: str) -> str | None:
    """The name of the last top-level ``def`` or ``async def`` in ``source``; None if none."""
    try:
        tree = compile(source, "<cell>", "exec",
                       flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except (SyntaxError, ValueError):
        return None
    names = [node.name for node in tree.body
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]
    return names[-1] if names else None


def _fail(message: str) -> None:
    print(f"poolscope: error: {' '.join(str(message).split())}", file=sys.stderr)


@functools.cache
def _run_options() -> dict[str, Any]:
    """``poolscope run``'s options (click parameters) by their first name."""
    import typer.main

    from .cli import app

    return {param.opts[0]: param for param in typer.main.get_command(app).commands["run"].params}


def _as_in_run(*names: str, **kwargs: Any) -> Any:
    """An option of the magic that is ``poolscope run``'s: its help and default come from
    there, so the two cannot drift apart."""
    param = _run_options()[names[0]]
    text = param.help or ""
    if param.is_flag:  # type: ignore[attr-defined]
        kwargs.setdefault("action", "store_true")
    else:
        kwargs.setdefault("default", param.default)
        if param.default is not None and "[default" not in text:
            text += f" [default: {param.default}]"
    return magic_arguments.argument(*names, help=text, **kwargs)


@magics_class
class PoolscopeMagics(Magics):
    """``%%poolscope``: see the module's docstring, or ``%%poolscope?`` in a notebook."""

    @magic_arguments.magic_arguments()
    @magic_arguments.argument(
        "--function", "-f", metavar="NAME",
        help="The function to measure [default: the last one the cell defines].")
    @magic_arguments.argument(
        "--items", "-n", metavar="N|EXPR",
        help="A count N (the items 0..N-1), or a variable or Python expression of the notebook "
             "giving the items (a whole number again means 0..N-1).")
    @_as_in_run("--items-from", metavar="FILE")
    @_as_in_run("--executors", "-e")
    @_as_in_run("--workers", "-w")
    @_as_in_run("--repeat", "-r")
    @_as_in_run("--warmup", type=int)
    @_as_in_run("--max-time", type=float)
    @_as_in_run("--reuse-pool")
    @_as_in_run("--chunksize")
    @_as_in_run("--timeout", type=float, metavar="SECONDS")
    @_as_in_run("--trial-timeout", type=float, metavar="SECONDS")
    @_as_in_run("--max-memory", metavar="SIZE")
    @_as_in_run("--scheduler", metavar="ADDRESS")
    @_as_in_run("--native-threads", type=int, metavar="N")
    @_as_in_run("--no-baseline")
    @_as_in_run("--star")
    @_as_in_run("--initializer", metavar="NAME|MODULE:FUNCTION")
    @_as_in_run("--initargs", metavar="JSON")
    @_as_in_run("--predict-cores", metavar="N[,N…]")
    @magic_arguments.argument(
        "--isolate", action=argparse.BooleanOptionalAction, default=False,
        help=_run_options()["--isolate"].help.replace("the run", "the run (and the kernel)")
        + " Off by default here, unlike run: a cell's function goes to the child by value, "
          "with what it refers to.")
    @magic_arguments.argument(
        "--json", metavar="PATH",
        help="Write the result as JSON (schema poolscope/1); '-' for the cell's output.")
    @_as_in_run("--csv", metavar="PATH")
    @magic_arguments.argument(
        "--plot", metavar="PATH",
        help="Write the notebook's scatter and a per-worker timeline (.png, .svg or .pdf).")
    @_as_in_run("--report", metavar="PATH")
    @_as_in_run("--trace", metavar="PATH")
    @magic_arguments.argument(
        "--quiet", "-q", action="store_true", help="No progress bar and no messages.")
    @magic_arguments.argument(
        "--verbose", "-v", action="store_true",
        help="Also say where the run was stored (poolscope show RUN, poolscope.load(RUN)).")
    @_as_in_run("--store", metavar="PATH")
    @_as_in_run("--no-store")
    @magic_arguments.argument("--help", "-h", action="store_true", help="Show this help.")
    @line_cell_magic
    def poolscope(self, line: str, cell: str | None = None) -> Any:
        """Compare executors on a function: the cell's last one (``%%poolscope``), or the
        one named on the line with its items (``%poolscope fn range(40)``).

        The result shows as an HTML summary with the timeline and is also stored in the
        notebook as ``_poolscope``.
        """
        words = arg_split(line, posix=True)
        # The line magic's function and items come first, before any option.
        given = [] if cell is not None else list(
            itertools.takewhile(lambda word: not word.startswith("-"), words))
        try:
            # Quotes group words and go (--items "range(0, 100, 5)", --json "my run.json").
            args = PoolscopeMagics.poolscope.parser.parse_args(words[len(given):])
        except IPythonUsageError as exc:
            return _fail(f"{exc} (see %%poolscope --help)")
        if args.help:
            print(PoolscopeMagics.poolscope.__doc__)
            return None
        try:
            if cell is None:
                self._line_items(args, given)
            options = self._options(args)
        except PoolscopeError as exc:
            return _fail(str(exc))
        if cell is not None and not self._run_cell(cell):
            return None  # IPython has shown the cell's own error
        try:
            fn = (self._function(args.function, cell) if cell is not None
                  else self._named_function(given[0]))
            workload = self._workload(fn, args)
            return self._run(workload, args, options)
        except PoolscopeError as exc:
            return _fail(str(exc))

    def _run_cell(self, cell: str) -> bool:
        # The cell runs as a cell of its own; it resets the display hook's record of the
        # running cell, which must point at this one again for the returned result to land.
        running = self.shell.displayhook.exec_result
        try:
            return bool(self.shell.run_cell(cell, store_history=False).success)
        finally:
            self.shell.displayhook.exec_result = running

    @staticmethod
    def _line_items(args: Any, given: list[str]) -> None:
        """The line magic's items: its words after the function's name (an expression may
        hold spaces), into ``args.items``."""
        if not given:
            raise UsageError("give a function and its items: %poolscope fn range(40) "
                             "[options] (or use %%poolscope on a cell)")
        if args.function is not None:
            raise UsageError("the line magic's function is its first word: drop --function")
        if len(given) > 1:
            if args.items is not None or args.items_from is not None:
                raise UsageError("give the items once: after the function, or with --items")
            args.items = " ".join(given[1:])

    def _named_function(self, text: str) -> Any:
        try:
            fn = eval(text, self.shell.user_global_ns, self.shell.user_ns)
        except Exception as exc:
            raise UsageError(f"{text}: {type(exc).__name__}: {exc}") from None
        if not callable(fn):
            raise UsageError(f"{text!r} is a {type(fn).__name__}, not a function")
        return fn

    # --- the pieces ------------------------------------------------------------------------
    def _options(self, args: Any) -> dict[str, Any]:
        """Check every option before the cell runs, with the CLI's own parsers."""
        from .options import RunOptions, check_output, check_plot, parse_counts, parse_initargs

        if args.items is not None and args.items_from is not None:
            raise UsageError("give either --items or --items-from, not both")
        if args.items is None and args.items_from is None:
            raise UsageError("give the items: --items N, --items VARIABLE or --items-from FILE")
        args.initargs_list = parse_initargs(args.initargs, args.initializer)
        run = RunOptions.parse(
            executors=args.executors, workers=args.workers, repeat=args.repeat,
            chunksize=args.chunksize, max_memory=args.max_memory, warmup=args.warmup,
            max_time=args.max_time, reuse_pool=args.reuse_pool, baseline=not args.no_baseline,
            scheduler=args.scheduler, timeout=args.timeout, trial_timeout=args.trial_timeout,
            isolate=args.isolate, native_threads=args.native_threads)
        run.plan()  # an unknown or unavailable executor, a bad count: one line, before the cell
        check_output(args.json, "--json")
        check_output(args.csv, "--csv")
        check_plot(Path(args.plot) if args.plot else None)
        check_output(args.report, "--report")
        check_output(args.trace, "--trace")
        return {"run": run, "predict_cores": parse_counts(args.predict_cores, "--predict-cores")}

    def _function(self, name: str | None, cell: str) -> Any:
        namespace = self.shell.user_ns
        if name is None:
            name = last_function_name(self.shell.transform_cell(cell))
            if name is None:
                raise UsageError("the cell defines no function: define one with def, or name "
                                 "one with --function NAME")
        elif not name.isidentifier():
            raise UsageError(f"--function: {name!r} is not a name")
        if name not in namespace:
            raise UsageError(f"--function: no function named {name!r} in the notebook")
        fn = namespace[name]
        if not callable(fn):
            raise UsageError(f"{name!r} is a {type(fn).__name__}, not a function")
        return fn

    def _items(self, text: str) -> list[Any]:
        if _COUNT.fullmatch(text.strip()):
            value: Any = int(text.strip())
        else:
            try:
                value = eval(text, self.shell.user_global_ns, self.shell.user_ns)
            except Exception as exc:
                raise UsageError(f"--items {text}: {type(exc).__name__}: {exc}") from None
        if isinstance(value, bool):
            raise UsageError(f"--items {text}: a count or an iterable, not a bool")
        if isinstance(value, int):
            if value < 1:
                raise UsageError(f"--items must be at least 1, got {value}")
            return list(range(value))
        if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            raise UsageError(f"--items {text}: a count or an iterable of items, not "
                             f"{type(value).__name__}")
        try:
            items = list(value)
        except Exception as exc:
            raise UsageError(f"--items {text}: {type(exc).__name__}: {exc}") from None
        if not items:
            raise UsageError(f"--items {text}: there are no items")
        return items

    def _workload(self, fn: Any, args: Any) -> Any:
        from .call_shape import shape
        from .workloads import Workload, load_items_file

        items = (load_items_file(args.items_from) if args.items_from is not None
                 else self._items(args.items))
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        target = f"{getattr(fn, '__module__', None) or '?'}:{name}"
        return shape(Workload(fn=fn, items=items, target=target), star=args.star,
                     initializer=self._initializer(args.initializer),
                     initargs=tuple(args.initargs_list))

    def _initializer(self, text: str | None) -> Any:
        """A function of the notebook by name, else MODULE:FUNCTION or path.py:FUNCTION."""
        if text is None:
            return None
        if text.isidentifier() and text in self.shell.user_ns:
            return self._named_function(text)
        from .workloads import resolve_function

        return resolve_function(text)

    def _run(self, workload: Any, args: Any, options: dict[str, Any]) -> Any:
        from .api import run_workload
        from .store import RunStore, store_path

        store = None if args.no_store else RunStore(store_path(args.store))
        try:
            result = run_workload(workload, options["run"], progress=not args.quiet,
                                  store=store)
        finally:
            if store is not None:
                store.close()
        self.shell.user_ns[RESULT_NAME] = result
        say = (lambda text: None) if args.quiet else print
        if options["predict_cores"]:
            result.predict(options["predict_cores"])  # before the outputs, which show it
            if not args.quiet:
                from rich.console import Console

                from .present.terminal import prediction_view

                console = Console()
                for part in prediction_view(result):
                    console.print(part)
        if args.json:
            result.write_json(args.json)
            if args.json != "-":
                say(f"JSON written to {args.json}")
        if args.csv:
            result.write_csv(args.csv)
            say(f"items written to {args.csv}")
        if args.plot:
            result.plot(args.plot)
            say(f"plot written to {args.plot}")
        if args.report:
            result.report(args.report)
            say(f"report written to {args.report}")
        if args.trace:
            result.to_perfetto(args.trace)
            say(f"trace written to {args.trace}")
        if store is not None and args.verbose:
            say(f"stored as run {result.run_id} in {store.path} (poolscope show "
                f"{result.run_id}; poolscope.load({result.run_id!r}))")
        if result.interrupted:
            done = sum(t.status != "interrupted" for t in result.trial_results)
            print(f"interrupted: kept {count(done, 'finished trial')}", file=sys.stderr)
        return result


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%poolscope``, a text printer for results (terminal IPython) and, for
    ``result.plot()``, a PNG printer for matplotlib figures where none is registered yet."""
    from .present.notebook import enable_figure_display, repr_pretty

    ipython.register_magics(PoolscopeMagics)
    formatter = ipython.display_formatter.formatters["text/plain"]
    formatter.for_type_by_name("poolscope.result", "Result", repr_pretty)
    enable_figure_display(ipython)  # result.plot() shows as a picture
