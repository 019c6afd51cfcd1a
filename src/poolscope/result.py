"""The result of a run: frames, metrics, classification, recommendation, JSON and pictures.

Presentation reads this object's frames; it never touches live executors.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import frames
from ._format import json_number as _num
from .analysis.classify import Classification, classify
from .analysis.costs import COST_PARTS, cost_model
from .analysis.metrics import outlier_flags, summarize
from .analysis.noise import noise_warnings
from .analysis.predict import ASSUMPTIONS, Prediction, predict
from .analysis.recommend import Recommendation, recommend, trial_failures, workload_findings
from .analysis.scaling import (
    AmdahlFit,
    GrowthFit,
    USLFit,
    fit_amdahl_per_executor,
    fit_usl_per_executor,
    scaling_json,
    scaling_table,
)
from .analysis.snippet import snippet
from .backends import REGISTRY
from .model import COUNTED, TrialResult
from .store import new_run_id

__all__ = ["SCHEMA", "Result", "new_run_id"]

SCHEMA = "poolscope/1"


@dataclass
class Result:
    """Everything measured in one run, and what poolscope makes of it."""

    run_id: str | None  # None: not stored
    target: str
    n_items: int
    trial_results: list[TrialResult]
    environment: dict[str, Any]
    options: dict[str, Any] = field(default_factory=dict)
    interrupted: bool = False
    transfer: TransferSample | None = None
    growth: dict[str, GrowthFit] = field(default_factory=dict)  # sweep: wall against item count
    started_at: str = ""
    # The last predict() call's answers, which the JSON, the terminal and the report show.
    predictions: list[Prediction] = field(default_factory=list)
    prediction_parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- frames ------------------------------------------------------------------------------
    @functools.cached_property
    def items(self) -> pd.DataFrame:
        """One row per item per trial: start, end, wall, CPU, pid, thread, host, core, status."""
        return frames.items_frame(self.trial_results)

    @functools.cached_property
    def trials(self) -> pd.DataFrame:
        """One row per trial: wall, tree CPU, start-up, teardown, peak RSS, status, outlier."""
        trials = frames.trials_frame(self.trial_results)
        trials["outlier"] = outlier_flags(trials).to_numpy(dtype=bool)
        return trials

    @functools.cached_property
    def summary(self) -> pd.DataFrame:
        """One row per executor and worker count: the design's metrics."""
        return summarize(self.trials, self.cores)

    def melted(self) -> pd.DataFrame:
        """The original notebook's long frame: ``variable`` (worker), ``value`` (time), ``type``."""
        return frames.melted_frame(self.trial_results)

    @property
    def cores(self) -> int:
        return int(self.environment["cpu_count"])

    # --- analysis ----------------------------------------------------------------------------
    @functools.cached_property
    def families(self) -> dict[str, str]:
        """Each executor's family (serial, thread, process, …) as its trials recorded it; for
        runs stored before schema 5, the registry's today (``NAME@/path/python``: NAME's)."""
        found = {name: str(cls.family) for name, cls in REGISTRY.items()}
        found.update({t.executor: t.family for t in self.trial_results if t.family})
        for t in self.trial_results:
            found.setdefault(t.executor, found.get(t.executor.split("@")[0], ""))
        return found

    @functools.cached_property
    def _classification(self) -> Classification:
        return classify(self.summary, self.items, self.families,
                        self.transfer.bytes_per_item if self.transfer else None,
                        self.transfer.seconds_per_item if self.transfer else None,
                        self.environment.get("native_threads"))

    @property
    def classification(self) -> str:
        return self._classification.kind

    @property
    def classification_evidence(self) -> list[str]:
        return self._classification.evidence

    @functools.cached_property
    def recommendation(self) -> Recommendation | None:
        first = recommend(self.summary, self.trials, self.cores, self.families,
                          caveats=self.options.get("caveats", []),
                          findings=self.options.get("findings", []),
                          failures=trial_failures(self.trial_results))
        extra = workload_findings(self.classification, self.costs, first)
        if first is None:
            return first
        return dataclasses.replace(first, reasons=[*first.reasons, *extra],
                                   code=self._code(first))

    def _code(self, rec: Recommendation) -> str | None:
        """The recommended configuration as a script (see ``analysis.snippet``)."""
        return snippet(rec.executor, self.families.get(rec.executor, ""),
                       rec.workers, rec.chunksize, self.target,
                       f"range({self.n_items})" if self.options.get("items_range") else None,
                       n_items=self.n_items, size=self.options.get("size"),
                       coroutine=bool(self.options.get("coroutine")),
                       star=bool(self.options.get("star")),
                       initializer=self.options.get("initializer"),
                       initargs=self.options.get("initargs"))

    @functools.cached_property
    def costs(self) -> pd.DataFrame:
        """Where the time goes per configuration: start-up, dispatch, transfer, compute."""
        return cost_model(self.trials, self.items, self.families,
                          self.transfer.bytes_per_item if self.transfer else None,
                          self.transfer.seconds_per_item if self.transfer else None)

    @functools.cached_property
    def scaling(self) -> pd.DataFrame:
        """Speedup and efficiency per executor × workers × chunksize, with the ideal line.

        With only the automatic chunksize (a different size per worker count) the chunksize
        column is left empty, so each executor is one curve.
        """
        summary = self.summary.dropna(subset=["wall_s"])
        if list(self.options.get("chunksize", ["auto"])) == ["auto"]:
            summary = summary.drop(columns="chunksize")
        return scaling_table(summary, self.cores)

    @functools.cached_property
    def amdahl(self) -> dict[str, AmdahlFit]:
        """Amdahl's law fitted per executor: the serial fraction and the speedup limit."""
        return fit_amdahl_per_executor(self.scaling, self.cores)

    @functools.cached_property
    def usl(self) -> dict[str, USLFit]:
        """The Universal Scalability Law per executor (three worker counts or more)."""
        return fit_usl_per_executor(self.scaling)

    def _sweep_json(self) -> dict[str, Any]:
        fits = {name: fit for name, fit in self.amdahl.items() if name != "serial"}
        rec = self.recommendation
        speedups = self.scaling.groupby("executor")["speedup"].max()
        main = rec.executor if rec and rec.executor in fits else max(
            fits, key=lambda name: speedups.get(name, 0.0), default=None)
        amdahl: dict[str, Any] = fits[main].to_json() if main else {"serial_fraction": None}
        amdahl["executor"] = main
        amdahl["per_executor"] = {name: fit.to_json() for name, fit in fits.items()}
        return {"scaling": scaling_json(self.scaling), "amdahl": amdahl,
                "usl": {name: fit.to_json() for name, fit in self.usl.items()
                        if name != "serial" and fit.ok},
                "growth": {name: fit.to_json() for name, fit in self.growth.items()}}

    def predict(self, cores: int | Sequence[int], workers: Sequence[int] | None = None,
                executors: Sequence[str] | None = None) -> pd.DataFrame:
        """Each executor × workers on machines with ``cores`` cores of this one's per-core
        speed: predicted wall time with its 95% interval, speedup over serial, and the
        bottleneck that sets the limit (analysis/predict.py says how). Workers default to the
        counts measured, the powers of two up to the cores and one per core. The answers are
        kept for the JSON, the report and ``plot_prediction``."""
        counts = [cores] if isinstance(cores, int) else list(cores)
        if not counts or any(int(c) < 1 for c in counts):
            raise ValueError("cores must be whole numbers of at least 1")
        forecast = predict(self, [int(c) for c in counts], workers, executors)
        self.predictions, self.prediction_parts = forecast.predictions, forecast.parts
        frame = pd.DataFrame([{
            "executor": p.executor, "workers": p.workers, "cores": p.cores,
            "chunksize": p.chunksize, "wall_s": p.wall_s, "wall_ci_lo": p.wall_ci[0],
            "wall_ci_hi": p.wall_ci[1], "speedup": p.speedup, "speedup_ci_lo": p.speedup_ci[0],
            "speedup_ci_hi": p.speedup_ci[1], "bottleneck": p.bottleneck,
            "calibration": p.calibration} for p in self.predictions])
        frame.attrs["assumptions"] = ASSUMPTIONS
        return frame

    def plot_prediction(self, path: str | Path | None = None) -> Any:
        """The last ``predict``'s speedups against workers, with their intervals as bands and
        the speedups measured here as points."""
        from .present.prediction_plot import plot_prediction

        return plot_prediction(self, path)

    def plot_scaling(self, path: str | Path | None = None) -> Any:
        """Speedup and efficiency against workers, the ideal line and the Amdahl curves."""
        from .present.scaling_plot import plot_scaling

        return plot_scaling(self.scaling, self.amdahl, self.cores, path)

    @functools.cached_property
    def warnings(self) -> list[str]:
        """Noisy measurements, each with its likely cause."""
        return noise_warnings(self.summary, self.environment)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for t in self.trial_results for e in t.errors]

    @property
    def exit_code(self) -> int:
        """The CLI's exit code: 130 interrupted, 1 if any item or executor failed, else 0."""
        if self.interrupted:
            return 130
        return 1 if self.errors or any(t.status == "failed" for t in self.trial_results) else 0

    # --- output ------------------------------------------------------------------------------
    def _times(self) -> dict[tuple[str, int, int], list[float]]:
        """Each configuration's trial wall times, in the order they ran: the ones its median
        counts (as hyperfine's ``times``)."""
        times: dict[tuple[str, int, int], list[float]] = {}
        for t in self.trial_results:
            if t.status in COUNTED:
                times.setdefault((t.executor, t.workers, t.chunksize), []).append(t.wall_s)
        return times

    def to_json(self) -> dict[str, Any]:
        """The machine-readable result, schema ``poolscope/1``."""
        times = self._times()
        summary = [
            {
                "executor": row.executor, "family": self.families.get(row.executor, ""),
                "workers": int(row.workers),
                "chunksize": int(row.chunksize), "trials": int(row.trials),
                "wall_s": _num(row.wall_s), "wall_ci": [_num(row.wall_ci_lo), _num(row.wall_ci_hi)],
                "times": [_num(wall) for wall in times.get(
                    (row.executor, int(row.workers), int(row.chunksize)), [])],
                "speedup": _num(row.speedup),
                "speedup_ci": [_num(row.speedup_ci_lo), _num(row.speedup_ci_hi)],
                "efficiency": _num(row.efficiency),
                "efficiency_ci": [_num(row.efficiency_ci_lo), _num(row.efficiency_ci_hi)],
                "outliers": int(row.outliers), "failed_trials": int(row.failed_trials),
                "cpu_s": _num(row.cpu_s), "cpu_utilization": _num(row.cpu_utilization),
                "parallelism": _num(row.parallelism),
                "cpu_parallelism": _num(row.cpu_parallelism),
                "offcpu_fraction": _num(row.offcpu_fraction),
                "startup_s": _num(row.startup_s), "errors": int(row.errors),
                "teardown_s": _num(row.teardown_s), "throughput": _num(row.throughput),
                "peak_rss": int(row.peak_rss),
                "initializer_s": _num(row.initializer_s),
            }
            for row in self.summary.itertuples(index=False)
        ]
        rec = self.recommendation
        sweep = self._sweep_json() if self.options.get("sweep") else {}
        return {
            "schema": SCHEMA,
            "run_id": self.run_id,
            "target": self.target,
            "items": self.n_items,
            "environment": self.environment,
            "summary": summary,
            "classification": self.classification,
            "recommendation": rec.to_json() if rec else None,
            "errors": self.errors,
            "warnings": self.warnings,
            "costs": [{key: (_num(value) if isinstance(value, float) else value)
                       for key, value in row.items()}
                      for row in self.costs.to_dict(orient="records")],
            "cost_parts": COST_PARTS,
            "started_at": self.started_at,
            "interrupted": self.interrupted,
            "options": {k: v for k, v in self.options.items()
                        if k not in ("caveats", "findings")},
            **sweep,
            **({"prediction": [p.to_json() for p in self.predictions],
                "prediction_model": self.prediction_parts,
                "prediction_assumptions": ASSUMPTIONS} if self.predictions else {}),
        }

    def write_json(self, path: str | Path | Any) -> None:
        """To a file, to stdout for "-", or to an open text stream."""
        text = json.dumps(self.to_json(), indent=2, allow_nan=False) + "\n"
        if hasattr(path, "write"):
            path.write(text)
            path.flush()
        elif str(path) == "-":
            import sys

            sys.stdout.write(text)
        else:
            Path(path).write_text(text, encoding="utf-8")

    def write_csv(self, path: str | Path) -> None:
        self.items.to_csv(path, index=False)

    def plot(self, path: str | Path | None = None) -> Any:
        """The notebook's scatter beside a per-worker timeline; saved when given a path."""
        from .present.plots import plot_run
        from .present.progress import in_notebook

        if in_notebook():  # figures are built without pyplot: teach Jupyter to show them
            from .present.notebook import enable_figure_display

            enable_figure_display()
        return plot_run(self, path)

    def report(self, path: str | Path) -> Path:
        """Write the interactive, self-contained HTML report (bokeh, works offline)."""
        from .present.report import write_report

        return write_report(self, path)

    def to_perfetto(self, path: str | Path) -> Path:
        """Write a Chrome Trace Event JSON file for ui.perfetto.dev or chrome://tracing."""
        from .present.trace import write_trace

        return write_trace(self, path)

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from .present.terminal import render_result

        yield from render_result(self)

    def _repr_html_(self) -> str:
        """Jupyter's view: the summary, recommendation and timeline, self-contained HTML."""
        from .present.notebook import result_html

        return result_html(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Terminal IPython's view: the tables as plain text."""
        from .present.notebook import repr_pretty

        repr_pretty(self, printer, cycle)

    def __repr__(self) -> str:
        return (f"<poolscope.Result {self.run_id or '(not stored)'} target={self.target!r} "
                f"items={self.n_items} "
                f"trials={len(self.trial_results)}>")

    def __str__(self) -> str:
        """``print(result)``: the tables and the verdict as plain text, as the CLI shows them."""
        from .present.notebook import result_text

        return result_text(self)



@dataclass(frozen=True)
class TransferSample:
    """What moving one item to a process worker and its result back costs, from a sample."""

    bytes_per_item: float  # pickled argument plus pickled result
    seconds_per_item: float  # pickling and unpickling both, in this process


def transfer_sample(items: Sequence[Any], results: Sequence[Any] = (), limit: int = 8
                    ) -> TransferSample | None:
    """Pickle (and unpickle) the first few arguments and results; None if they cannot be."""
    import pickle
    import time

    def cost(values: Sequence[Any]) -> tuple[float, float]:
        if not values:
            return 0.0, 0.0
        passes: list[float] = []
        sizes: list[int] = []
        # The first pass pays cold caches (tens of µs for a small int); small samples are
        # timed again and the fastest pass counts, as a pool's steady stream of items pays.
        while not passes or (len(passes) < 3 and sum(passes) < 0.01):
            t0 = time.perf_counter()
            sizes = []
            for value in values:
                data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.loads(data)
                sizes.append(len(data))
            passes.append(time.perf_counter() - t0)
        return float(np.mean(sizes)), min(passes) / len(values)

    try:
        arg_bytes, arg_s = cost(list(items[:limit]))
        out_bytes, out_s = cost(list(results[:limit]))
    except Exception:
        return None
    return TransferSample(arg_bytes + out_bytes, arg_s + out_s)
