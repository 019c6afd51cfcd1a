"""``path/to/file.py:function`` targets whose results refer to their own module (issue 13, 7).

A file target is imported under a synthetic module name. Workers must import the file under the
same name, so that what its results refer to — its functions, partials of them, instances of
its classes — pickles by reference in the worker and unpickles in the parent.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from poolscope._filetargets import PREFIX, module_name, module_path
from poolscope.backends import REGISTRY

WORK = '''\
import functools


def helper(x):
    return x


class Box:
    def __init__(self, x):
        self.x = x


def crunch(x):
    return helper, functools.partial(helper, x), Box(x)
'''

PROCESS_EXECUTORS = ["process", "process-pool", "loky", "process-spawn", "process-forkserver"]


def test_results_that_refer_to_the_file_come_back_from_every_process_executor(cli, tmp_path):
    """They failed every item: "PicklingError: Can't pickle <function helper>: it's not the
    same object as poolscope_user_<n>.helper" (fork: the function arrived by value, a copy
    beside the module), "import of module 'poolscope_user_<n>' failed" (spawn, forkserver,
    loky), and the isolated child imported the file under a name of its own."""
    (tmp_path / "work.py").write_text(WORK)
    executors = [name for name in PROCESS_EXECUTORS if REGISTRY[name].unavailable_reason() is None]
    result = cli("run", "work.py:crunch", "--items", "8", "--executors",
                 ",".join([*executors, "thread"]), "--workers", "2", "--repeat", "1",
                 "--quiet", "--no-store", "--json", "r.json", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["errors"] == []
    ran = {row["executor"] for row in doc["summary"]}
    assert ran == {"serial", "thread", *executors}
    assert "PicklingError" not in result.stdout + result.stderr


def test_a_file_module_name_says_where_the_file_is(tmp_path):
    odd = tmp_path / "a dir_with ünïcode" / "my_work.py"
    odd.parent.mkdir()
    odd.write_text("def helper(x):\n    return x + 1\n")
    name = module_name(odd)
    assert name.isidentifier() and name.startswith(PREFIX)
    assert module_path(name) == str(odd.resolve())
    assert module_name(tmp_path / "a dir_with ünïcode" / ".." / odd.parent.name / odd.name) == name
    for bad in ("json", PREFIX, PREFIX + "_zz", PREFIX + "_2", PREFIX + "a-b", PREFIX + "123",
                PREFIX + "_2ftmp_2f_61_2epy"):
        assert module_path(bad) is None


def test_any_process_that_imports_poolscope_imports_the_file_by_name(tmp_path):
    """The same name in every process (hash() is salted per process: a child's name differed),
    and the same module object for every import of it in one process."""
    from poolscope.workloads import resolve_workload

    script = tmp_path / "work.py"
    script.write_text(WORK)
    fn = resolve_workload(f"{script}:crunch", 3).fn
    assert fn.__module__ == module_name(script)
    assert importlib.import_module(fn.__module__).crunch is fn
    assert resolve_workload(f"{script}:crunch", 3).fn is fn
    code = (f"import importlib, poolscope; m = importlib.import_module({fn.__module__!r}); "
            "print(m.crunch(5)[0](7), m.__file__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["7", str(script.resolve())]


@pytest.mark.parametrize(("text", "message"), [
    ("import no_such_module_xyz\n", "raised ModuleNotFoundError: No module named"),
    ("def f(:\n", "raised SyntaxError"),
])
def test_a_file_that_fails_to_import_says_why(tmp_path, text, message):
    from poolscope import TargetError
    from poolscope.workloads import resolve_workload

    script = tmp_path / "bad.py"
    script.write_text(text)
    with pytest.raises(TargetError, match=message):
        resolve_workload(f"{script}:f", 3)
    assert module_name(script) not in sys.modules


def test_a_file_that_is_not_python_is_refused(tmp_path):
    from poolscope import TargetError
    from poolscope.workloads import resolve_workload

    script = tmp_path / "dir" / "work.txt"
    script.parent.mkdir()
    script.write_text("def f(x):\n    return x\n")
    with pytest.raises(TargetError, match=r"cannot load .*work\.txt as a Python module"):
        resolve_workload(f"{script}:f", 3)
