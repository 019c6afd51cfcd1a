"""Real workloads on real executors: the properties the numbers must have.

Timing checks compare ratios and orderings with generous margins, never absolute times.
"""

from __future__ import annotations

import functools
import pickle
import resource
import statistics
import sys

import pytest

from poolscope import workloads
from poolscope.api import run_workload
from poolscope.backends import get_backend
from poolscope.environment import usable_cores
from poolscope.measure._child import _as_defined
from poolscope.measure.runner import Plan, auto_chunksize, make_chunks, run_plan, run_trial
from poolscope.workloads import Workload, resolve_workload

pytestmark = pytest.mark.slow

needs_two_cores = pytest.mark.skipif(usable_cores() < 2, reason="speedup needs 2 usable cores")

PROCESS_EXECUTORS = ["process", "process-fork", "process-spawn", "process-forkserver",
                     "process-pool"]
THREAD_EXECUTORS = ["thread", "thread-pool"]


@pytest.fixture(scope="module")
def cpu_result():
    # About 3.5 s of serial work, so spawn's 0.2-0.3 s start-up cannot hide a real speedup on a
    # VM whose two cores give processes 1.6-1.9x; medians of interleaved trials, so a moment of
    # load on a shared machine does not decide.
    workload = resolve_workload("cpu", 160, size=1_000_000)
    return run_workload(workload, executors=[*THREAD_EXECUTORS, *PROCESS_EXECUTORS],
                        workers=2, repeat=3)


@needs_two_cores
@pytest.mark.parametrize("name", PROCESS_EXECUTORS)
def test_processes_speed_up_a_cpu_bound_loop(cpu_result, name):
    speedup = cpu_result.summary.set_index("executor").loc[name, "speedup"]
    if speedup <= 1.4:
        # Another job on a 2-core CI machine takes a core for seconds at a time (threads were
        # once 1.3x slower than serial in the same run): measure this executor once more.
        again = run_workload(resolve_workload("cpu", 160, size=1_000_000), executors=[name],
                             workers=2, repeat=3)
        speedup = max(speedup, again.summary.set_index("executor").loc[name, "speedup"])
    assert speedup > 1.4, cpu_result.summary[["executor", "wall_s", "speedup"]]


@needs_two_cores
@pytest.mark.parametrize("name", THREAD_EXECUTORS)
def test_threads_do_not_speed_up_a_cpu_bound_loop(cpu_result, name):
    row = cpu_result.summary.set_index("executor").loc[name]
    assert row.speedup < 1.3, cpu_result.summary[["executor", "wall_s", "speedup"]]
    # The GIL: both threads are inside an item, but only about one computes at a time.
    assert row.cpu_parallelism < 1.3


def test_cpu_bound_loop_is_classified_and_processes_recommended(cpu_result):
    assert cpu_result.classification == "cpu-bound"
    assert get_backend(cpu_result.recommendation.executor).family == "process"


@pytest.mark.parametrize("name", THREAD_EXECUTORS)
def test_threads_overlap_on_io(name):
    result = run_workload(resolve_workload("io", 20, size=50), executors=[name], workers=2,
                          repeat=1, baseline=False)
    row = result.summary.iloc[0]
    assert row.parallelism > 1.6
    assert row.offcpu_fraction > 0.8  # sleeping is off the CPU


@pytest.mark.parametrize("name", ["serial", "thread"])
def test_isolated_trials_count_the_childs_cpu_not_the_talking_to_it(name):
    """Isolated, a serial or thread trial's CPU is its child's over the trial (a kept child:
    later trials count only their own), not this process's unpickling of the records: with
    100,000 near-empty items the records are most of what moves, and the trial, in one GIL,
    uses at most about one core. (So many: timed in spans, 20,000 took ~20 ms, and a few ms of
    a thread pool's fixed CPU, beside its GIL, passed the margin.)"""
    workload = resolve_workload("tiny", 100_000)
    trials, _ = run_plan(workload, Plan(executors=(name,), workers=(2,), repeat=4,
                                        isolate=True))
    assert len({int(p) for t in trials for p in set(t.items.pid.tolist())}) == 1  # one child
    for t in trials:
        assert 0.5 * t.wall_s <= t.cpu_s <= 1.05 * t.wall_s + 0.002, (t.cpu_s, t.wall_s)


def test_isolated_trials_report_the_childs_own_peak_memory():
    """The child's peak, not the size of poolscope's process it was started from (which the
    kernel's ru_maxrss carries over an exec): a trial of identity stays small, one that holds
    200 MiB says so, and each trial of the kept child starts its peak again."""
    import fault_workloads

    def trial(fn):
        workload = Workload(fn=fn, items=list(range(4)), target=fn.__name__)
        (t,), _ = run_plan(workload, Plan(executors=("serial",), workers=(1,), repeat=1,
                                          isolate=True))
        return t

    small = trial(fault_workloads.identity)
    big = trial(fault_workloads.hold_200_mib_on_zero)
    assert small.peak_rss < 80 << 20, small.peak_rss  # a bare child is about 25 MiB
    assert big.peak_rss >= 200 << 20, big.peak_rss
    workload = Workload(fn=fault_workloads.hold_200_mib_once, items=[1, 2], target="once")
    first, second = run_plan(workload, Plan(executors=("serial",), workers=(1,), repeat=2,
                                            isolate=True))[0]
    assert set(first.items.pid) == set(second.items.pid)  # one kept child
    assert first.peak_rss >= 200 << 20 > second.peak_rss * 2, (first.peak_rss, second.peak_rss)


def test_isolation_does_not_charge_large_results_to_the_trial():
    """8 items each returning 16 MiB: the results stay in the child, as they stay in poolscope's
    process in-process, so the isolated serial trial takes about as long as the in-process one
    (they once crossed the pipe inside the trial: 35x slower, and the recommendation flipped to
    processes). Interleaved runs, medians, a 3x margin; the result sizes still reach the parent."""
    size = 16 << 20
    workload = Workload(fn=bytes, items=[size] * 8, target="bytes")  # bytes(n): n zero bytes
    walls: dict[bool, list[float]] = {False: [], True: []}
    samples = []
    for isolate in (True, False) * 3:
        trials, _ = run_plan(workload, Plan(executors=("serial",), workers=(1,), repeat=3,
                                            isolate=isolate))
        assert all(t.status == "ok" for t in trials), [t.errors for t in trials]
        walls[isolate] += [t.wall_s for t in trials]
        samples += [t.result_sample for t in trials if isolate]
    isolated, in_process = (statistics.median(walls[k]) for k in (True, False))
    assert isolated < 3 * in_process, (walls[True], walls[False])
    assert all(sample and len(sample[0]) == size for sample in samples)


class _Partial(functools.partial):
    pass


def test_the_child_calls_an_unpickled_partial_as_fast_as_where_it_was_made():
    """Unpickled keyword names are new strings, not interned, and each call of the partial then
    matches them by text (~35 ns here, a fifth of a near-empty item, charged to isolated serial
    and threads only). The child interns them again, in nested partials and subclasses too."""
    inner = _Partial(workloads.tiny, size=0)
    inner.note = "kept"  # a partial with attributes of its own is not flattened into the outer
    made = functools.partial(inner, extra=1)
    shipped = pickle.loads(pickle.dumps(made, protocol=5))
    names = [*shipped.keywords, *shipped.func.keywords]
    assert not any(sys.intern(name) is name for name in names)  # what the child receives
    loaded = _as_defined(shipped)
    assert loaded is shipped and type(loaded.func) is _Partial
    names = [*loaded.keywords, *loaded.func.keywords]
    assert names == ["extra", "size"] and all(sys.intern(name) is name for name in names)
    assert loaded.func(7) == 7 and loaded.func.note == "kept"


@pytest.mark.parametrize("isolate", [True, False])
def test_results_that_cannot_be_pickled_are_not_sized_isolated_or_not(isolate):
    """A memoryview cannot be pickled: in-process the sample holds it and sizing fails; the
    child cannot send it, and its stand-in fails the same way (not a sample of nothing)."""
    from poolscope.result import transfer_sample

    workload = Workload(fn=memoryview, items=[b"ab"] * 4, target="memoryview")
    (t,), _ = run_plan(workload, Plan(executors=("serial",), workers=(1,), repeat=1,
                                      isolate=isolate))
    assert t.status == "ok" and t.result_sample
    assert transfer_sample(workload.items, t.result_sample) is None
    assert transfer_sample(workload.items, []) is not None  # the arguments alone would size


@pytest.mark.parametrize("name", ["process-fork", "process-spawn", "process-pool"])
def test_tree_cpu_matches_the_kernels_accounting(name):
    """Parent plus reaped workers, as the kernel counts them (getrusage), within 15%."""
    workload = resolve_workload("cpu", 16, size=2_000_000)
    chunks = make_chunks(list(workload.items), auto_chunksize(16, 2))

    def kernel_cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    before = kernel_cpu()
    t = run_trial(0, get_backend(name), workload.fn, 2, chunks)
    kernel = kernel_cpu() - before
    assert t.cpu_s == pytest.approx(kernel, rel=0.15)
    # and the workers' CPU is really there: at least the items' own CPU time
    assert t.cpu_s >= 0.9 * t.items.cpu_ns.sum() / 1e9


def test_forkserver_workers_cpu_is_counted():
    """Forkserver workers are not our children; their own reports must still be counted."""
    workload = resolve_workload("cpu", 8, size=2_000_000)
    t = run_trial(0, get_backend("process-forkserver"), workload.fn, 2,
                  make_chunks(list(workload.items), 2))
    item_cpu = t.items.cpu_ns.sum() / 1e9
    assert item_cpu * 0.95 <= t.cpu_s <= item_cpu * 1.5 + 0.5


@pytest.mark.parametrize("name", ["serial", "thread", "process-fork"])
def test_sleep_timestamps_match_the_sleep(name):
    result = run_workload(resolve_workload("io", 6, size=100), executors=[name], workers=2,
                          chunksize=1, repeat=1, baseline=False)
    items = result.items
    assert items["wall_s"].min() >= 0.099
    assert items["wall_s"].max() < 0.100 + 0.05
    assert (items["cpu_s"] < 0.02).all()
    # items of one worker follow each other: the next starts after the previous ended
    for _, lane in items.sort_values("start_s").groupby("lane"):
        assert (lane["start_s"].to_numpy()[1:] >= lane["end_s"].to_numpy()[:-1]).all()


def test_threads_use_more_than_one_core_but_serialise_on_the_gil():
    result = run_workload(resolve_workload("cpu", 40, size=300_000), executors=["thread"],
                          workers=2, repeat=1, baseline=False)
    assert result.items["pid"].nunique() == 1
    assert result.items["tid"].nunique() == 2
