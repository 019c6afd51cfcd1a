"""Code to paste: the recommended configuration as a short script that runs the user's function.

``snippet(...)`` is a pure function of what the recommendation says (executor, family, workers,
chunksize) and what the run knows (target, items, size, whether the function is a coroutine
function). It writes the standard-library call (``concurrent.futures`` / ``multiprocessing``,
``asyncio`` with a semaphore), or loky's and dask's documented ones, with the
``if __name__ == "__main__":`` guard that process workers need, and imports the function:

- a built-in workload: ``from poolscope.workloads import cpu`` at the run's ``--size``;
- ``pkg.mod:fn``: ``from pkg.mod import fn``;
- ``path/file.py:fn``: ``from file import fn``, saved beside ``file.py`` (a comment says so);
- anything else (a function of a notebook or of ``__main__``): a named placeholder.

Items are the run's own when they were ``range(n)``; otherwise a placeholder to fill in.

The script hands work over as the trial did, so that it pays what was measured: every backend
submits chunks of ``chunksize`` items (runner.make_chunks). ``Pool.map``,
``ProcessPoolExecutor.map`` and loky's ``map`` do that with ``chunksize=``; for the others
(``ThreadPoolExecutor``, ``InterpreterPoolExecutor``, dask, asyncio) and for coroutine
functions (one event loop per chunk, as probe.run_chunk runs them) the script cuts the items
into chunks itself, maps a ``run_chunk`` helper over them and joins the results in order.
"""

from __future__ import annotations

import keyword
from pathlib import Path

from ..families import family_of

__all__ = ["snippet"]

# Names the generated code binds itself: an imported function must not take one of them.
_TAKEN = {"asyncio", "multiprocessing", "partial", "items", "results", "pool", "main", "one",
          "limit", "fn", "importlib", "cluster", "client", "context", "run_chunk", "chunks",
          "chunk", "item", "done", "runner", "call", "init", "threading", "_worker"}
# Executors whose own map hands items over one at a time: the script hands them chunks.
_CHUNKED_BY_SCRIPT = {"thread", "interpreter", "dask", "asyncio"}
_FLATTEN = "results = [result for chunk in done for result in chunk]  # the items' order"
_START_METHODS = {"process-fork": "fork", "process-spawn": "spawn",
                  "process-forkserver": "forkserver"}


def snippet(executor: str, family: str, workers: int, chunksize: int | None, target: str,
            items: str | None, *, n_items: int | None = None, size: int | None = None,
            coroutine: bool = False, star: bool = False, initializer: str | None = None,
            initargs: list[str] | None = None) -> str | None:
    """A runnable script for ``executor`` × ``workers``; None for an executor it cannot write.

    ``items`` is the items as code (``"range(40)"``) or None for a placeholder; ``n_items``
    only says, in that placeholder's comment, how many poolscope ran. ``star`` and an
    ``initializer`` (its target, ``initargs`` as code) call the function as the run did, through
    a ``call`` helper: the initializer once per worker thread, then each item unpacked.
    """
    name, _, python = executor.partition("@")
    chunked = name in _CHUNKED_BY_SCRIPT or (coroutine and name != "serial")
    body = _pool_lines(name, workers, chunksize, coroutine, chunked)
    if body is None:
        return None
    head, fn_lines, call, notes = _function(target, size)
    if star or initializer:
        shape_head, shape_lines, call = _call_shape(call, coroutine, star, initializer,
                                                    initargs or [])
        head, fn_lines = {*head, *shape_head}, [*fn_lines, *shape_lines]
    items_line, items_head = _items(target, items, n_items, size)
    runner_head, runner = _chunk_runner(name, coroutine) if chunked else (set(), [])
    head = sorted({*head, *items_head, *body[0], *runner_head})
    chunk = f", chunksize {chunksize}" if chunksize else ""
    lines = [f"# poolscope's recommendation: {name} ×{workers}{chunk}"]
    if python:
        lines.append(f"# measured under {python}: run this script with it")
    lines += [*(f"# {note}" for note in notes), *_imports(head), *fn_lines,
              *(line.replace("{fn}", call) for line in runner), *([""] if runner else []), ""]
    code = [line.replace("{fn}", call) for line in [items_line, *body[1]]]
    if chunked:
        code[1:1] = [f"chunks = [items[i:i + {chunksize or 1}] for i in range(0, len(items), "
                     f"{chunksize or 1})]"]
        code.append(_FLATTEN)
    if family_of(family).pickles:  # the workers (processes, subinterpreters) import this script
        lines += ["", 'if __name__ == "__main__":', *(f"    {line}" if line else ""
                                                      for line in code)]
    else:
        lines += code
    return "\n".join(lines).strip("\n").replace("\n\n\n\n", "\n\n\n") + "\n"


def _call_shape(fn: str, coroutine: bool, star: bool, initializer: str | None,
                initargs: list[str]) -> tuple[set[str], list[str], str]:
    """(imports, lines, the name to call) of ``call``: the function as the run called it."""
    imports: set[str] = set()
    lines = [""]
    module, _, name = (initializer or "").rpartition(":")
    if initializer and all(p.isidentifier() for p in [*module.split("."), name]) \
            and module != "__main__":
        imports.add(f"from {module} import {name} as init")
    elif initializer:
        lines.append(f"init = ...  # fill in: your initializer (poolscope ran {initializer})")
    if initializer:
        imports.add("import threading")
        lines += ["_worker = threading.local()  # each worker thread runs init once", ""]
    wait = "await " if coroutine else ""
    body = (f"{wait}{fn}(**item) if isinstance(item, dict) else {wait}{fn}(*item)" if star
            else f"{wait}{fn}(item)")
    lines += ["", f"{'async ' if coroutine else ''}def call(item):  # as poolscope called it",
              *(['    if not getattr(_worker, "ready", False):',
                 f"        init({', '.join(initargs)})",
                 "        _worker.ready = True"] if initializer else []),
              f"    return {body}"]
    return imports, lines, "call"


def _chunk_runner(name: str, coroutine: bool) -> tuple[set[str], list[str]]:
    """(imports, lines) of ``run_chunk``: one chunk's items in turn, calling ``{fn}``."""
    if coroutine and name == "asyncio":  # on the script's own event loop
        return set(), ["", "", "async def run_chunk(chunk):  # its items in turn, as measured",
                       "    return [await {fn}(item) for item in chunk]"]
    if coroutine:
        return {"import asyncio"}, [
            "", "", "def run_chunk(chunk):  # an event loop per chunk, as measured",
            "    with asyncio.Runner() as runner:",
            "        return [runner.run({fn}(item)) for item in chunk]"]
    return set(), ["", "", "def run_chunk(chunk):  # its items in turn, as measured",
                   "    return [{fn}(item) for item in chunk]"]


def _imports(head: list[str]) -> list[str]:
    """Standard library first, then the rest, a blank line between (as isort would); names
    from one module on one line."""
    merged: dict[str, list[str]] = {}
    plain = []
    for line in head:
        words = line.split(" import ", 1)
        if line.startswith("from ") and "#" not in line:
            merged.setdefault(words[0], []).append(words[1])
        else:
            plain.append(line)
    lines = sorted(plain, key=lambda line: (line.startswith("from "), line)) + [
        f"{module} import {', '.join(sorted(names))}" for module, names in sorted(merged.items())]
    stdlib = [line for line in lines if line.split()[1].split(".")[0] in _STDLIB]
    others = [line for line in lines if line not in stdlib]
    return [*stdlib, *([""] if stdlib and others else []), *others]


_STDLIB = {"asyncio", "concurrent", "functools", "importlib", "multiprocessing", "threading"}


def _pool_lines(name: str, workers: int, chunksize: int | None, coroutine: bool,
                chunked: bool) -> tuple[set[str], list[str]] | None:
    """(imports, lines) of the pool code; None for an unknown executor. It maps ``{fn}`` over
    ``items`` into ``results``, or, ``chunked``, ``run_chunk`` over ``chunks`` into ``done``
    (a chunk per task: Pool.map's ``chunksize=1``)."""
    call, over, out = ("run_chunk", "chunks", "done") if chunked else ("{fn}", "items", "results")
    chunks = ", chunksize=1" if chunked else f", chunksize={chunksize}" if chunksize else ""
    if name == "serial":
        return _serial_lines(coroutine)
    if name == "thread":
        return ({"from concurrent.futures import ThreadPoolExecutor"}, [
            f"with ThreadPoolExecutor(max_workers={workers}) as pool:",
            f"    {out} = list(pool.map({call}, {over}))"])
    if name == "thread-pool":
        return ({"from multiprocessing.pool import ThreadPool"}, [
            f"with ThreadPool({workers}) as pool:",
            f"    {out} = pool.map({call}, {over}{chunks})"])
    if name == "process" or name in _START_METHODS:
        method = _START_METHODS.get(name)
        return ({"from concurrent.futures import ProcessPoolExecutor",
                 *({"import multiprocessing"} if method else set())}, [
            *([f'context = multiprocessing.get_context("{method}")'] if method else []),
            f"with ProcessPoolExecutor(max_workers={workers}"
            + (", mp_context=context" if method else "") + ") as pool:",
            f"    {out} = list(pool.map({call}, {over}{'' if chunked else chunks}))"])
    if name == "process-pool":
        return ({"import multiprocessing"}, [
            f"with multiprocessing.Pool({workers}) as pool:",
            f"    {out} = pool.map({call}, {over}{chunks})"])
    if name == "loky":
        return ({"from loky import get_reusable_executor"}, [
            f"pool = get_reusable_executor(max_workers={workers})",
            f"{out} = list(pool.map({call}, {over}{'' if chunked else chunks}))"])
    if name == "interpreter":
        return ({"from concurrent.futures import InterpreterPoolExecutor  # Python 3.14+"}, [
            f"with InterpreterPoolExecutor(max_workers={workers}) as pool:",
            f"    {out} = list(pool.map({call}, {over}))"])
    if name == "dask":
        return ({"from dask.distributed import Client, LocalCluster"}, [
            "# or Client(\"tcp://host:8786\") for a cluster of your own",
            f"with LocalCluster(n_workers={workers}, threads_per_worker=1) as cluster, "
            "Client(cluster) as client:",
            f"    {out} = client.gather(client.map({call}, {over}))"])
    if name == "asyncio":
        return _asyncio_lines(workers, coroutine)
    return None


def _serial_lines(coroutine: bool) -> tuple[set[str], list[str]]:
    if not coroutine:
        return set(), ["results = [{fn}(item) for item in items]"]
    return {"import asyncio"}, [
        "with asyncio.Runner() as runner:  # one event loop for the items",
        "    results = [runner.run({fn}(item)) for item in items]"]


def _asyncio_lines(workers: int, coroutine: bool) -> tuple[set[str], list[str]]:
    """At most ``workers`` chunks at once, each ``run_chunk``: awaited on the loop for a
    coroutine function, in the loop's threads (as asyncio.to_thread runs it) for a plain one."""
    if coroutine:
        head, call, setup = {"import asyncio"}, "await run_chunk(chunk)", []
    else:
        head = {"import asyncio", "from concurrent.futures import ThreadPoolExecutor"}
        call = "await asyncio.to_thread(run_chunk, chunk)"
        setup = ["    asyncio.get_running_loop().set_default_executor("
                 f"ThreadPoolExecutor({workers}))"]
    return head, [
        "",
        "",
        "async def main():",
        *setup,
        f"    limit = asyncio.Semaphore({workers})  # at most {workers} chunks at once",
        "",
        "    async def one(chunk):",
        "        async with limit:",
        f"            return {call}",
        "",
        "    return await asyncio.gather(*(one(chunk) for chunk in chunks))",
        "",
        "",
        "done = asyncio.run(main())"]


def _function(target: str, size: int | None) -> tuple[set[str], list[str], str, list[str]]:
    """(imports, lines, the name to call, notes) that bring the target's function in."""
    from ..workloads import BUILTIN_WORKLOADS

    if target in BUILTIN_WORKLOADS:
        builtin = BUILTIN_WORKLOADS[target]
        name = builtin.fn.__name__
        value = builtin.default_size if size is None else size
        return ({"from functools import partial", f"from poolscope.workloads import {name}"},
                ["", f"fn = partial({name}, size={value})  # the built-in `{target}` workload"],
                "fn", [])
    module, _, attr = target.rpartition(":")
    first, _, rest = attr.partition(".")
    notes: list[str] = []
    if module.endswith(".py") or "/" in module or "\\" in module:
        path = Path(module)
        module = path.stem
        notes.append(f"save this script beside {path.name} (in its folder), so that it "
                     f"imports {module}")
    importable = (all(part.isidentifier() for part in module.split(".")) and module
                  and module != "__main__" and first.isidentifier()
                  and not keyword.iskeyword(first) and "<" not in attr)
    if module == "__main__" and first.isidentifier() and "<" not in attr:
        notes.append(f"poolscope ran {attr} from __main__ (a notebook or a script): run this "
                     f"where {first} is defined")
        return set(), ["", f"fn = {attr}"], "fn", notes
    if notes and not module.isidentifier() and first.isidentifier():  # "my-work.py"
        attr_code = f"{first}.{rest}" if rest else first
        return ({"import importlib"}, ["", f'fn = importlib.import_module("{module}").'
                                           f"{attr_code}"], "fn", notes)
    if not importable:
        return (set(), ["", "fn = ...  # fill in: your function "
                            f"(poolscope ran {target}; process workers need it importable)"],
                "fn", notes)
    alias = first if first not in _TAKEN else "fn"
    imports = {f"from {module} import {first}" + (f" as {alias}" if alias != first else "")}
    if rest:
        return imports, ["", f"fn = {alias}.{rest}"], "fn", notes
    return imports, [], alias, notes


def _items(target: str, items: str | None, n_items: int | None, size: int | None
           ) -> tuple[str, set[str]]:
    """The ``items = ...`` line and its imports."""
    from ..workloads import BUILTIN_WORKLOADS

    builtin = BUILTIN_WORKLOADS.get(target)
    if builtin is not None and builtin.make_items is not None and n_items:
        value = builtin.default_size if size is None else size
        return (f'items = BUILTIN_WORKLOADS["{target}"].make_items({n_items}, {value})',
                {"from poolscope.workloads import BUILTIN_WORKLOADS"})
    if items is not None:
        return f"items = {items}  # the items poolscope ran", set()
    ran = f" (poolscope ran {n_items:,})" if n_items else ""
    return f"items = []  # fill in: your items{ran}", set()
