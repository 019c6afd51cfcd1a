"""poolscope: see how a Python function really runs in parallel.

    >>> import poolscope
    >>> r = poolscope.compare(worker, range(100), executors=["thread-pool", "process-pool"])
    >>> r.summary, r.items, r.trials, r.recommendation, r.plot()
"""

from __future__ import annotations

from ._errors import ItemsError, PoolscopeError, TargetError, UsageError
from .api import compare
from .result import Result

__all__ = ["ItemsError", "PoolscopeError", "Result", "TargetError", "UsageError", "compare"]
__version__ = "0.1.0"
