"""poolscope: see how a Python function really runs in parallel.

    >>> import poolscope
    >>> r = poolscope.compare(worker, range(100), executors=["thread-pool", "process-pool"])
    >>> r.summary, r.items, r.trials, r.recommendation, r.plot()

In IPython or Jupyter, ``%load_ext poolscope`` adds the ``%%poolscope`` cell magic (see
``poolscope.magic``).

Heavy names load on first use: process workers import ``poolscope.measure.probe`` through this
package, and must not pay for pandas (nor IPython).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import ItemsError, PoolscopeError, PreflightError, TargetError, UsageError
from ._filetargets import install as _install_file_targets

if TYPE_CHECKING:
    from .api import compare, load, sweep
    from .automap import map
    from .executor import Executor
    from .result import Result

# and load_ipython_extension, IPython's hook for `%load_ext poolscope`
__all__ = ["Executor", "ItemsError", "PoolscopeError", "PreflightError", "Result", "TargetError",
           "UsageError", "compare", "load", "map", "sweep"]
__version__ = "0.1.0"  # the one place: pyproject.toml reads it from here

# Every process that imports poolscope (workers, the isolated child) can then import a
# path/to/file.py:function target under the parent's module name, as pickle by reference needs.
_install_file_targets()


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext poolscope``: register the ``%%poolscope`` cell magic."""
    from .magic import load_ipython_extension as load

    load(ipython)


def __dir__() -> list[str]:
    """The public names (the heavy ones load on first use, so they are not attributes yet)."""
    return sorted([*__all__, "__version__", "load_ipython_extension"])


def __getattr__(name: str) -> Any:
    if name == "compare":
        from .api import compare

        return compare
    if name == "load":
        from .api import load

        return load
    if name == "sweep":
        from .api import sweep

        return sweep
    if name == "map":
        from .automap import map

        return map
    if name == "Executor":
        from .executor import Executor

        return Executor
    if name == "Result":
        from .result import Result

        return Result
    raise AttributeError(f"module 'poolscope' has no attribute {name!r}")
