"""Notebooks: the HTML view, the text view, the %%poolscope magic, tqdm's bar, docs/notebook.ipynb.

The example notebook runs in a real Jupyter kernel (nbclient) started from this very Python, with
its working directory in a temporary folder so no run history lands in the repository.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import poolscope
from poolscope.measure.runner import Plan, run_plan
from poolscope.present import progress
from poolscope.present.notebook import enable_figure_display, result_html, result_text
from poolscope.workloads import Workload

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "notebook.ipynb"


def _spin(item: int) -> int:
    total = 0
    for i in range(2_000):
        total += i
    return total + item


@pytest.fixture(scope="module")
def result() -> poolscope.Result:
    return poolscope.compare(_spin, range(12), executors=["thread"], workers=2, repeat=2)


# --- (c) the HTML view ---------------------------------------------------------------------------
def test_repr_html_is_a_self_contained_summary_with_a_picture(result):
    page = result._repr_html_()
    assert "<script" not in page.lower() and "src=\"http" not in page
    rec = result.recommendation
    assert rec is not None
    assert "recommendation:" in page and f"{rec.executor} with {rec.workers} worker" in page
    assert rec.reasons and rec.reasons[0].split(":")[0] in page
    assert 'class="poolscope-summary"' in page
    assert 'data-executor="serial"' in page and 'data-executor="thread"' in page
    assert result.classification in page and result.target in page
    assert '<img src="data:image/png;base64,' in page
    assert len(page) < 300_000
    text = re.sub(r"base64,[^\"]+", "", page)
    assert not re.search(r"\d\.\d{5,}", text), "raw floats: use readable units"
    assert re.search(r"\d (ms|µs|s)<", text), "durations carry their unit"


def test_repr_html_shows_the_code_to_paste(result):
    page = result._repr_html_()
    code = result.recommendation.code
    assert code and "items = range(12)" in code
    assert 'class="poolscope-code"' in page
    assert html.escape(code.splitlines()[-1], quote=True) in page


def test_html_escapes_what_it_shows(result):
    odd = dataclasses.replace(result, target="<b>mine</b> & co")
    page = result_html(odd, picture=False)
    assert "&lt;b&gt;mine&lt;/b&gt; &amp; co" in page
    assert "<b>mine</b>" not in page
    assert "<img" not in page


# --- (d) text elsewhere --------------------------------------------------------------------------
def test_text_view_outside_notebooks(result):
    text = result_text(result, width=100)
    assert "executor × workers" in text and "recommendation:" in text
    assert "\x1b[" not in text  # plain text, no terminal colours
    assert repr(result).startswith("<poolscope.Result ")
    # print(result) shows the view (issue 16), at the terminal's width rather than 100
    assert str(result).split() == result_text(result).split()


def test_importing_poolscope_stays_light():
    code = ("import sys, poolscope, poolscope.measure.probe; "
            "print(sorted(m for m in ('IPython', 'tqdm', 'ipywidgets', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# --- (e) progress ---------------------------------------------------------------------------------
def test_tqdm_progress_counts_every_item_without_a_thread():
    plan = Plan(executors=("serial", "thread"), workers=(2,), repeat=2)
    items = list(range(10))
    before = set(threading.enumerate())
    stream = io.StringIO()
    bar = progress.TqdmProgress(plan, len(items), notebook=False, file=stream)
    with bar:
        trials, interrupted = run_plan(Workload(fn=_spin, items=items, target="t"), plan,
                                       on_chunk=bar.on_chunk, on_trial_start=bar.on_trial_start)
        started = set(threading.enumerate()) - before
    assert not interrupted and len(trials) == 4
    assert bar.total == 4 * len(items)
    assert bar.n == bar.total
    assert type(bar.bar).monitor_interval == 0
    assert not [t for t in started if type(t).__name__ == "TMonitor"]
    assert "trial 4: thread ×2" in stream.getvalue()


def _spy(monkeypatch) -> list:
    made = []
    real = progress.trial_progress

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(progress, "trial_progress", spy)
    return made


def test_tqdm_bar_is_chosen_in_a_kernel(monkeypatch, capsys):
    made = _spy(monkeypatch)
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "_widgets_available", lambda: False)  # text bar, no widget
    r = poolscope.compare(_spin, range(6), executors=["thread"], workers=2, repeat=1,
                          progress=True)
    assert len(made) == 1 and isinstance(made[0], progress.TqdmProgress)
    assert made[0].n == 2 * 6 == len(r.items)
    assert "item" in capsys.readouterr().err


def test_rich_bar_is_kept_outside_a_kernel(monkeypatch):
    made = _spy(monkeypatch)
    assert not progress.in_notebook()
    poolscope.compare(_spin, range(4), executors=["thread"], workers=2, repeat=1, progress=True)
    assert len(made) == 1 and isinstance(made[0], progress.TrialProgress)


def test_kernel_detection(monkeypatch):
    class ZMQInteractiveShell:
        pass

    class Colab(ZMQInteractiveShell):
        pass

    class TerminalInteractiveShell:
        pass

    fake_ipython = type(sys)("IPython")
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    monkeypatch.setitem(sys.modules, "ipykernel", type(sys)("ipykernel"))
    for shell, expected in ((ZMQInteractiveShell(), True), (Colab(), True),
                            (TerminalInteractiveShell(), False), (None, False)):
        fake_ipython.get_ipython = lambda shell=shell: shell
        assert progress.in_notebook() is expected
    monkeypatch.delitem(sys.modules, "ipykernel")
    fake_ipython.get_ipython = ZMQInteractiveShell
    assert progress.in_notebook() is False  # no ipykernel loaded: not a kernel


# --- (b) the magic in an in-process IPython ------------------------------------------------------
@pytest.fixture(scope="module")
def shell(tmp_path_factory):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        config = Config()
        config.HistoryManager.hist_file = ":memory:"
        ip = InteractiveShell.instance(config=config)
        ip.display_formatter.active_types = ["text/plain"]  # as terminal IPython shows it
        ip.run_cell("%load_ext poolscope", store_history=False)
        yield ip
        InteractiveShell.clear_instance()


CELL = "ran_the_cell = True\n\ndef first(x):\n    return x\n\ndef last(x):\n    return -x\n"
FAST = "-e thread -w 2 -r 1 -q --no-store"


@pytest.mark.parametrize("line, runs_cell", [
    ("-n 5 --bogus", False),
    ("-n 5 --workers two", False),
    ("-n 5 --repeat often", False),
    ("-n 5 --warmup x", False),
    ("-n 5 --chunksize big", False),
    ("-n 5 -e nope", False),
    ("-n 5 -e thread,", False),
    ("-n 5 --plot out.txt", False),
    ("-n 5 --json /no/such/dir/r.json", False),
    ("-n 5 --items-from items.jsonl", False),
    ("", False),
    ("-n 0", True),
    ("--items nothing_called_this", True),
    ("--items 'object()'", True),
    ("-n 5 --function nothing_called_this", True),
    ("-n 5 --function ran_the_cell", True),
    ("-n 5 --items-from", False),
])
def test_bad_options_give_one_line_and_no_traceback(shell, capsys, tmp_path, monkeypatch,
                                                    line, runs_cell):
    monkeypatch.chdir(tmp_path)
    shell.user_ns.pop("ran_the_cell", None)
    shell.user_ns.pop("_poolscope", None)
    outcome = shell.run_cell(f"%%poolscope {line}\n{CELL}", store_history=False)
    captured = capsys.readouterr()
    assert outcome.success and outcome.result is None
    assert "Traceback" not in captured.out + captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolscope: error: "), captured
    assert ("ran_the_cell" in shell.user_ns) is runs_cell
    assert "_poolscope" not in shell.user_ns


def test_magic_measures_the_last_function_and_shows_text(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome = shell.run_cell(f"%%poolscope -n 6 {FAST}\n{CELL}", store_history=False)
    out = capsys.readouterr().out
    r = outcome.result
    assert isinstance(r, poolscope.Result) and shell.user_ns["_poolscope"] is r
    assert r.target == "__main__:last" and r.n_items == 6
    assert list(r.summary["executor"]) == ["serial", "thread"]
    assert "executor × workers" in out and "recommendation:" in out  # text, not HTML
    assert not (tmp_path / ".poolscope").exists()  # --no-store


def test_magic_function_option_and_items_from_the_notebook(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell.user_ns.update(data=["a", "bb", "ccc"], count=4)
    r = shell.run_cell(f"%%poolscope --items data --function first {FAST}\n{CELL}").result
    assert r.target == "__main__:first" and r.n_items == 3
    assert sorted(r.items.loc[r.items["executor"] == "thread", "item"]) == [0, 1, 2]
    assert shell.run_cell(f"%%poolscope --items count {FAST}\n{CELL}").result.n_items == 4
    r = shell.run_cell(f'%%poolscope --items "range(0, 10, 2)" {FAST}\n{CELL}').result
    assert r.n_items == 5
    (tmp_path / "items.jsonl").write_text('{"a": 1}\n[2]\n3\n', encoding="utf-8")
    r = shell.run_cell(f"%%poolscope --items-from items.jsonl {FAST}\n{CELL}").result
    assert r.n_items == 3
    capsys.readouterr()


def test_magic_stores_like_the_cli_and_writes_outputs(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POOLSCOPE_STORE", raising=False)
    r = shell.run_cell("%%poolscope -n 4 -e thread -w 2 -r 1 --json r.json --csv r.csv\n"
                       f"{CELL}").result
    out = capsys.readouterr().out
    assert "stored as run" not in out  # said only when asked (-v)
    assert (tmp_path / ".poolscope" / "poolscope.db").exists()
    assert poolscope.load(r.run_id).run_id == r.run_id
    assert json.loads((tmp_path / "r.json").read_text())["target"] == "__main__:last"
    assert (tmp_path / "r.csv").read_text().startswith("trial,")
    r = shell.run_cell(f"%%poolscope -n 4 -e thread -w 2 -r 1 -v\n{CELL}").result
    assert f"stored as run {r.run_id}" in capsys.readouterr().out


def test_line_magic_takes_a_function_and_its_items(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell.run_cell(CELL)
    shell.user_ns["data"] = ["a", "bb"]
    r = shell.run_cell(f"%poolscope first range(0, 10, 2) {FAST}").result
    assert isinstance(r, poolscope.Result) and shell.user_ns["_poolscope"] is r
    assert r.target == "__main__:first" and r.n_items == 5
    assert shell.run_cell(f"%poolscope last 3 {FAST}").result.n_items == 3
    assert shell.run_cell(f"%poolscope first --items data {FAST}").result.n_items == 2
    capsys.readouterr()
    for line in ("", FAST, "first", "nothing_called_this 4", "data 4",
                 "first 4 --items 5", "first 4 --function last", "first 'object()'"):
        assert shell.run_cell(f"%poolscope {line} {FAST}").result is None
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("poolscope: error: "), (line, err)


def test_a_failing_cell_shows_its_own_error_and_nothing_runs(shell, capsys, tmp_path,
                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    shell.user_ns.pop("_poolscope", None)
    outcome = shell.run_cell(f"%%poolscope -n 4 {FAST}\ndef f(x):\n    return x\n1 / 0\n")
    assert outcome.result is None and "_poolscope" not in shell.user_ns
    assert "ZeroDivisionError" in capsys.readouterr().out


# Options of `poolscope run` the magic leaves out, and why.
NOT_IN_THE_MAGIC = {
    "target": "the function is the cell's",
    "--size": "the knob of built-in workloads",
    "--format": "the result shows as HTML in the notebook",
}


def test_the_magic_takes_every_option_of_run():
    import typer.main

    from poolscope.cli import app
    from poolscope.magic import PoolscopeMagics

    run = typer.main.get_command(app).commands["run"]
    parser = PoolscopeMagics.poolscope.parser
    magic = {option for action in parser._actions for option in action.option_strings}
    for param in run.params:
        name = param.opts[0]
        if name in NOT_IN_THE_MAGIC:
            continue
        assert set(param.opts) <= magic, f"%%poolscope lacks {param.opts} of `poolscope run`"


def test_magic_passes_the_limits_on(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cell = ("%%poolscope -n 6 -e thread -w 2 -r 1 --no-baseline --no-store --quiet --timeout 0.5 "
            "--report r.html\ndef stuck(x):\n    while x == 3:\n        pass\n    return x\n")
    result = shell.run_cell(cell).result
    assert result is not None, capsys.readouterr()
    assert [(e["item"], e["kind"]) for e in result.errors] == [(3, "Timeout")]
    assert (tmp_path / "r.html").stat().st_size > 10_000


def test_magic_isolate_keeps_the_kernel_alive_through_a_segfault(shell, capsys, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    cell = ("%%poolscope -n 6 -e thread -w 2 -r 1 --chunksize 1 --no-baseline --no-store "
            "--quiet --isolate\nimport ctypes\n\ndef crash(x):\n    if x == 3:\n"
            "        ctypes.string_at(0)\n    return x\n")
    result = shell.run_cell(cell).result  # the cell's function goes to the child by value
    assert result is not None, capsys.readouterr()
    assert [(e["item"], e["kind"]) for e in result.errors] == [(3, "WorkerDiedError")]
    assert "signal SIGSEGV" in result.errors[0]["message"]
    assert sorted(result.items.item) == [0, 1, 2, 4, 5]


def test_last_function_name():
    from poolscope.magic import last_function_name

    source = ("import time\n\ndef a(x):\n    def inner(y):\n        return y\n    return x\n\n"
              "class C:\n    def method(self):\n        pass\n\nasync def b(x):\n    await x\n\n"
              "value = a(1)\n")
    assert last_function_name(source) == "b"
    assert last_function_name("x = 1\n") is None
    assert last_function_name("def broken(:\n") is None


def test_extension_shows_figures_as_pictures(shell):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    formatter = shell.display_formatter.formatters["image/png"]  # off in this text shell
    png = formatter.lookup(fig)(fig)
    assert isinstance(png, str | bytes) and png
    assert enable_figure_display(shell) is True  # already in place: left alone
    assert enable_figure_display(object()) is False


# --- (a) the example notebook in a real kernel ---------------------------------------------------
CHECK = """
import json as _json, os as _os
_items = _poolscope.items
_procs = _items.loc[_items["executor"] == "process-pool", "pid"]
print("POOLSCOPE-CHECK " + _json.dumps({
    "executors": [str(e) for e in _poolscope.summary["executor"]],
    "errors": int(_poolscope.summary["errors"].sum()),
    "target": _poolscope.target,
    "kernel_pid": _os.getpid(),
    "process_pids": sorted({int(p) for p in _procs}),
    "process_items": int(len(_procs)),
    "stored": _os.path.exists(".poolscope/poolscope.db"),
    "cwd": _os.getcwd(),
    "executable": __import__("sys").executable,
}))
"""


def _kernelspec_here(folder: Path) -> Path:
    """A ``python3`` kernelspec that starts this test's own Python, found first on JUPYTER_PATH."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (poolscope tests)", "language": "python"}), encoding="utf-8")
    return folder


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_docs_notebook_runs_in_a_kernel(tmp_path, monkeypatch):
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from nbclient import NotebookClient

    monkeypatch.setenv("JUPYTER_PATH", str(_kernelspec_here(tmp_path / "jupyter")))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.delenv("POOLSCOPE_STORE", raising=False)
    assert KernelSpecManager().get_kernel_spec("python3").argv[0] == sys.executable
    work = tmp_path / "work"
    work.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), \
        "docs/notebook.ipynb is stored with outputs: clear them"
    assert any(c.source.startswith("%%poolscope") for c in code)
    nb.cells.append(nbformat.v4.new_code_cell(CHECK))
    NotebookClient(nb, kernel_name="python3", timeout=240, startup_timeout=120,
                   resources={"metadata": {"path": str(work)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Traceback" not in streams

    magic = next(c for c in nb.cells if c.source.startswith("%%poolscope"))
    html = [o.data["text/html"] for o in magic.outputs if o.output_type == "execute_result"]
    assert len(html) == 1
    assert 'class="poolscope-summary"' in html[0] and "<img" in html[0]
    assert "recommendation:" in html[0]
    for name in ("serial", "thread-pool", "process-pool"):
        assert f'data-executor="{name}"' in html[0]
    # tqdm's widget bar, once the run ended, is replaced by a line saying what ran: a saved
    # notebook keeps no widget, only an output's text, which would be the bar at 0%.
    shown = [o.get("data", {}) for o in magic.outputs]
    assert not [d for d in shown if "application/vnd.jupyter.widget-view+json" in d]
    assert not [d for d in shown if "0%|" in d.get("text/plain", "")]
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        pass
    else:
        ends = [d["text/plain"] for d in shown if d.get("text/plain", "").startswith("poolscope: ")]
        assert len(ends) == 1 and re.fullmatch(r"poolscope: 360 items in 9 trials, .+", ends[0])

    plot = next(c for c in nb.cells if c.source.strip() == "result.plot()")
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)

    line = next(s for s in streams.splitlines() if s.startswith("POOLSCOPE-CHECK "))
    facts = json.loads(line.split(" ", 1)[1])
    assert facts["executors"] == ["serial", "thread-pool", "process-pool"]
    assert facts["errors"] == 0 and facts["target"] == "__main__:worker"
    assert facts["process_items"] == 40 * 3  # the notebook's function ran in worker processes
    assert facts["process_pids"] and facts["kernel_pid"] not in facts["process_pids"]
    assert os.path.samefile(facts["cwd"], work) and facts["stored"]
    assert os.path.samefile(facts["executable"], sys.executable)
