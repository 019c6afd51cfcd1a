"""Workload targets and items sources, and the errors for each way they can be wrong."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from poolscope import ItemsError, TargetError, UsageError
from poolscope.workloads import BUILTIN_WORKLOADS, load_items_file, resolve_workload


@pytest.mark.parametrize("name", sorted(BUILTIN_WORKLOADS))
def test_builtin_runs_one_item_and_honours_size(name):
    small = {"cpu": 1000, "io": 1, "io-async": 1, "hash": 1, "json": 10, "tiny": 0,
             "payload": 1}[name]
    workload = resolve_workload(name, 2, size=small)
    assert workload.size == small
    assert len(workload.items) == 2
    result = workload.fn(workload.items[0])
    if inspect.iscoroutine(result):  # io-async: an async def, awaited on a loop
        assert asyncio.run(result) == small


def test_builtin_defaults():
    workload = resolve_workload("cpu")
    assert workload.size == 1_000_000
    assert list(workload.items) == list(range(40))
    payload = resolve_workload("payload", 3, size=2)
    assert [len(x) for x in payload.items] == [2 << 20] * 3


def test_module_target():
    workload = resolve_workload("json:dumps", 3)
    assert workload.fn(1) == "1"
    assert list(workload.items) == [0, 1, 2]


def test_file_target(tmp_path):
    path = tmp_path / "work.py"
    path.write_text("def crunch(x):\n    return x * 3\n")
    workload = resolve_workload(f"{path}:crunch", 4)
    assert workload.fn(2) == 6


@pytest.mark.parametrize(("target", "message"), [
    ("nosuch", "unknown workload 'nosuch'"),
    ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
    ("json:no_such_function", "'json' has no attribute 'no_such_function'"),
    ("json:__doc__", "is not callable"),
    ("missing/file.py:fn", "no such file"),
])
def test_bad_targets(target, message):
    with pytest.raises(TargetError, match=message):
        resolve_workload(target, 3)


def test_file_that_raises_on_import(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('nope')\n")
    with pytest.raises(TargetError, match="raised RuntimeError: nope"):
        resolve_workload(f"{path}:fn", 3)


def test_user_target_needs_items_and_takes_no_size():
    with pytest.raises(UsageError, match="give items"):
        resolve_workload("json:dumps")
    with pytest.raises(UsageError, match="--size applies only"):
        resolve_workload("json:dumps", 3, size=4)


def test_items_file(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"a": 1}\n\n[1, 2]\n"text"\n3.5\n')
    assert load_items_file(path) == [{"a": 1}, [1, 2], "text", 3.5]


@pytest.mark.parametrize(("content", "message"), [
    (b'{"a": 1}\n{oops\n', r"items.jsonl:2: not a JSON value"),
    (b"\n\n", "has no items"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
def test_bad_items_files(tmp_path, content, message):
    path = tmp_path / "items.jsonl"
    path.write_bytes(content)
    with pytest.raises(ItemsError, match=message):
        load_items_file(path)


def test_missing_items_file(tmp_path):
    with pytest.raises(ItemsError, match="not found"):
        load_items_file(tmp_path / "nope.jsonl")
    with pytest.raises(ItemsError, match="is a directory"):
        load_items_file(tmp_path)
