"""Ctrl-C for the CLI: the first SIGINT stops cleanly, a second one stops at once.

The first SIGINT raises KeyboardInterrupt as Python does by default: the runner ends the
trial's workers, keeps every finished trial (already in the store) and the CLI exits 130 with
one line saying what was kept. Process workers ignore SIGINT (the parent stops them), so when a
second SIGINT arrives during that clean-up, poolscope kills its child processes itself and
exits 130 at once: no worker outlives it.

A KeyboardInterrupt raised inside a fork callback (logging releases its lock after every fork
of a worker) is printed as "Exception ignored" and lost. So while a fork is under way the first
SIGINT is only noted, and raised a millisecond after the fork (through SIGALRM), in ordinary code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

__all__ = ["install_sigint_handler"]

EXIT_INTERRUPTED = 130
_seen = 0
_forking = False  # between our own before-fork and after-fork callbacks
_deferred = False  # a first SIGINT that arrived while forking
_hooks_registered = False


def install_sigint_handler() -> None:
    """Install the two-step handler in the main thread (a no-op elsewhere)."""
    global _seen, _hooks_registered
    _seen = 0
    try:
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread: leave Python's default
        return
    signal.signal(signal.SIGALRM, _on_alarm)
    if not _hooks_registered:
        # Registered after logging's: "before" callbacks run in reverse order of registration
        # and "after" ones in order, so ours bracket logging's.
        import logging  # noqa: F401

        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                            after_in_child=_after_fork_in_child)
        _hooks_registered = True


def _before_fork() -> None:
    global _forking
    _forking = True


def _after_fork_in_parent() -> None:
    global _forking
    _forking = False
    if _deferred:
        signal.setitimer(signal.ITIMER_REAL, 0.001)  # raise it once out of the fork callbacks


def _after_fork_in_child() -> None:
    global _forking, _deferred
    _forking = _deferred = False


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    global _deferred
    if _deferred and not _forking:
        _deferred = False
        raise KeyboardInterrupt


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _seen, _deferred
    _seen += 1
    if _seen == 1:
        if _forking:
            _deferred = True
            return
        raise KeyboardInterrupt
    _kill_children()
    try:
        sys.stderr.write("poolscope: interrupted again: stopped at once, workers killed; "
                         "trials stored before the first Ctrl-C are kept\n")
        sys.stderr.flush()
    finally:
        os._exit(EXIT_INTERRUPTED)


def _kill_children() -> None:
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
