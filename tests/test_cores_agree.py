"""The terminal's sentence, the PNG and the report name the same cores: those of every trial of
the configuration, never of the one trial a timeline draws."""

from __future__ import annotations

import numpy as np
import pytest
from bokeh.models import Label

from poolscope.analysis.cores import cores_text, cores_used
from poolscope.model import ItemColumns, TrialResult
from poolscope.present.demo import observations
from poolscope.present.plots import plot_run
from poolscope.present.report import build_report
from poolscope.result import Result


def trial(index: int, executor: str, wall: float, cores: list[int], threads: bool) -> TrialResult:
    """Two workers, two 0.1 s items each; item k started on ``cores[k % len(cores)]``."""
    n = 4
    lane = np.array([0, 1, 0, 1])
    start = np.array([0.0, 0.0, 0.1, 0.1])
    items = ItemColumns(
        item=np.arange(n, dtype=np.int64), start_ns=(start * 1e9).astype(np.int64),
        end_ns=((start + 0.1) * 1e9).astype(np.int64),
        cpu_ns=np.full(n, 50_000_000 if threads else 100_000_000, np.int64),
        core=np.array([cores[k % len(cores)] for k in range(n)], np.int16),
        status=np.zeros(n, np.int8),
        pid=np.full(n, 100, np.int32) if threads else (100 + lane).astype(np.int32),
        tid=(200 + lane).astype(np.int64) if threads else np.ones(n, np.int64))
    return TrialResult(index=index, executor=executor, workers=2, chunksize=1, repeat=index,
                       wall_s=wall, cpu_s=0.4, startup_s=0.0, teardown_s=0.0, peak_rss=0,
                       status="ok", host="test", items=items, errors=[])


@pytest.fixture(scope="module")
def result() -> Result:
    # thread-pool's median trial (wall 0.21) started every item on core 1; its other trials on
    # core 0. Over the run its threads used cores 0 and 1.
    trials = [trial(0, "thread-pool", 0.20, [0], True), trial(1, "thread-pool", 0.21, [1], True),
              trial(2, "thread-pool", 0.22, [0], True),
              trial(3, "process-pool", 0.21, [0, 1], False)]
    return Result(run_id="cores", target="cores", n_items=4, trial_results=trials,
                  environment={"cpu_count": 2})


def test_cores_used_spans_every_trial_of_the_configuration(result):
    assert cores_used(result.items, "thread-pool", 2) == [0, 1]
    assert cores_used(result.items, "thread-pool", 4) == []
    assert cores_text([0, 1]) == "cores 0 and 1"
    assert cores_text([3]) == "core 3"


def test_terminal_png_and_report_say_the_same_cores(result):
    expected = cores_text(cores_used(result.items, "thread-pool", 2))
    assert expected == "cores 0 and 1"
    sentence = [line for line in observations(result, "thread-pool", "process-pool")
                if "threads ran on" in line]
    assert sentence and expected in sentence[0]

    fig = plot_run(result)
    notes = [ax.get_title(loc="right") for ax in fig.axes if ax.get_title(loc="right")]
    thread_notes = [n for n in notes if "core" in n]
    assert len(thread_notes) == 2  # one per configuration's row
    assert any(expected in n and "3 trials" in n for n in thread_notes), notes
    assert not any("on 1 core" in n for n in notes)

    labels = [model.text for part in build_report(result) if not isinstance(part, str)
              for model in part.references() if isinstance(model, Label)]
    # The timeline's band titles (the concurrency bands under it are named only).
    thread_label = [text for text in labels if text.startswith("thread-pool") and "trial" in text]
    assert thread_label and expected in thread_label[0], labels
