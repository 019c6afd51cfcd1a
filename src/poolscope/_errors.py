"""poolscope's exceptions.

    PoolscopeError                 anything poolscope raises on purpose
    ├── UsageError                 bad input: an unknown target, executor or option (CLI exit 2)
    │   ├── TargetError            a workload target that cannot be found or called
    │   └── ItemsError             items that cannot be read or parsed
    ├── WorkerDiedError            a worker process ended while its items were running
    └── PreflightError             the function failed on each of its first items (CLI exit 1)
"""

from __future__ import annotations

__all__ = ["ItemsError", "PoolscopeError", "PreflightError", "TargetError", "UsageError",
           "WorkerDiedError"]


class PoolscopeError(Exception):
    """Base class of every error poolscope raises on purpose."""


class UsageError(PoolscopeError, ValueError):
    """Bad input from the user; the CLI prints the message on one line and exits 2."""


class TargetError(UsageError):
    """A workload target that cannot be imported, found or called."""


class ItemsError(UsageError):
    """An items source that cannot be read or parsed."""


class WorkerDiedError(PoolscopeError):
    """A worker process exited or was killed while items were running.

    ``item`` is the item it was running when the executor can tell, else None.
    """

    item: int | None = None


class PreflightError(PoolscopeError):
    """The function failed on every item of the preflight, before any trial (preflight.py).

    The message names each item's exception and shows the first one's traceback (the user's
    frames). ``exception``: the original exception where it was raised in this process (else
    None: it was raised in a child); ``traceback``: the first failure's user frames as text;
    ``outcomes``: per preflight item, ``{"ok", "kind", "message", "traceback"}``.
    """

    exception: BaseException | None = None
    traceback: str | None = None
    outcomes: list[dict[str, object]] = []  # noqa: RUF012 (replaced per instance)
