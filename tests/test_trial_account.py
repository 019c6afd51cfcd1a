"""trial.account: a trial's time and CPU as a pure function of what it read."""

from __future__ import annotations

import dataclasses

import pytest

from poolscope.measure.trial import Readings, account

BASE = Readings(t0=1_000, t_last=9_000, t_close=9_500, t_end=10_000, child_t0=None,
                child_t_last=None, child_t_end=None, first_item_start=200, own_cpu=0.25,
                children_cpu=0.0, untimed_children_cpu=0.0, worker_cpu=0.0)


def test_wall_startup_and_teardown_come_from_this_process_clock():
    counted = account(BASE)
    assert counted.t0 == 1_000
    assert counted.wall_s == pytest.approx(9_000e-9)
    assert counted.startup_s == pytest.approx(200e-9)  # the first item's start, since t0
    assert counted.teardown_s == pytest.approx(1_000e-9)  # last record to closed
    assert counted.cpu_s == pytest.approx(0.25)


def test_a_trial_without_records_ends_its_work_when_closing_began():
    counted = account(dataclasses.replace(BASE, t_last=BASE.t0, first_item_start=None))
    assert counted.teardown_s == pytest.approx(500e-9)  # t_close to t_end
    assert counted.startup_s == pytest.approx(8_500e-9)  # t0 to t_close: no item started


def test_a_child_that_ran_the_trial_times_it_with_its_own_readings():
    child = dataclasses.replace(BASE, child_t0=1_400, child_t_last=8_000, child_t_end=8_600)
    counted = account(child)
    assert counted.t0 == 1_400
    assert counted.wall_s == pytest.approx(7_200e-9)
    assert counted.teardown_s == pytest.approx(600e-9)
    # a last record after the child's end (the readings disagree) never makes teardown negative
    late = account(dataclasses.replace(child, child_t_last=9_000))
    assert late.teardown_s == 0


def test_cpu_is_own_plus_the_larger_of_reaped_children_and_workers_reports():
    reaped = dataclasses.replace(BASE, own_cpu=0.1, children_cpu=2.0,
                                 untimed_children_cpu=0.5, worker_cpu=1.2)
    assert account(reaped).cpu_s == pytest.approx(0.1 + 1.5)  # start-up before t0 taken off
    reported = dataclasses.replace(reaped, worker_cpu=1.9)
    assert account(reported).cpu_s == pytest.approx(0.1 + 1.9)
    assert account(dataclasses.replace(BASE, own_cpu=0.0, children_cpu=0.2,
                                       untimed_children_cpu=0.5)).cpu_s == 0
