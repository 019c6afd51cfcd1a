"""Ctrl-C for the CLI: the first SIGINT stops cleanly, a second one stops at once.

The first SIGINT raises KeyboardInterrupt as Python does by default: the runner ends the
trial's workers, keeps every finished trial (already in the store) and the CLI exits 130 with
one line saying what was kept. SIGTERM and SIGHUP do the same, and the CLI then exits 143 or
129 (128 + the signal's number, as a shell reports a process the signal ended). Process workers
ignore SIGINT (the parent stops them), so when a second signal arrives during that clean-up,
poolscope kills its child processes itself and exits at once: no worker outlives it.

A KeyboardInterrupt that the measured function raises itself is that item's failure, not a
stop: ``is_users_interrupt`` tells them apart (the probe and the preflight ask it).

A KeyboardInterrupt raised inside a fork callback (logging releases its lock after every fork
of a worker) is printed as "Exception ignored" and lost. So while a fork is under way the first
SIGINT is only noted, and raised a millisecond after the fork (through SIGALRM), in ordinary code.
"Under way" also covers the edges of the callbacks (Python runs a pending handler on entry to a
function, before ``_before_fork`` can set its flag), so the handler also looks for a callback's
frame on the stack it interrupted.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from types import FrameType

__all__ = ["exit_code", "install_sigint_handler", "is_users_interrupt", "stopped_by"]

EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_seen = 0
_first_signal: int | None = None  # the signal that stopped the run
_forking = False  # between our own before-fork and after-fork callbacks
_deferred = False  # a first SIGINT that arrived while forking
_hooks_registered = False


def install_sigint_handler() -> None:
    """Install the two-step handler in the main thread (a no-op elsewhere)."""
    global _seen, _first_signal, _hooks_registered
    _seen, _first_signal = 0, None
    try:
        for signum in STOP_SIGNALS:
            signal.signal(signum, _on_sigint)
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
    # A forked worker is stopped with SIGTERM (limits.py, lifetime.py): it must end, not take
    # the signal for a stop of its own and carry on.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is _on_sigint:
            signal.signal(signum, signal.SIG_DFL)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    global _deferred
    if not _deferred:
        return
    if _in_fork_callback(frame):
        signal.setitimer(signal.ITIMER_REAL, 0.001)  # try again once out of it
        return
    _deferred = False
    raise KeyboardInterrupt


def _in_fork_callback(frame: FrameType | None) -> bool:
    """Whether a KeyboardInterrupt raised now would be raised inside a fork callback: the
    interrupted frame, or one under it (a handler interrupted by another), is one of them."""
    if _forking:
        return True
    while frame is not None:
        if frame.f_code in _FORK_CALLBACK_CODES:
            return True
        frame = frame.f_back
    return False


def exit_code() -> int:
    """The CLI's exit code once interrupted: 128 + the first stop signal's number."""
    return 128 + (_first_signal or signal.SIGINT)


def stopped_by() -> str:
    """How the run was stopped, for the CLI's last line: "interrupted", "stopped by SIGTERM"."""
    if _first_signal in (None, signal.SIGINT):
        return "interrupted"
    return f"stopped by {signal.Signals(_first_signal).name}"


def is_users_interrupt() -> bool:
    """Whether a KeyboardInterrupt raised now is a stop the user asked for (Ctrl-C, SIGTERM,
    SIGHUP), not one the measured function raised itself."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return False  # Python raises a signal's KeyboardInterrupt in the main thread only
    handler = signal.getsignal(signal.SIGINT)
    if handler is signal.SIG_IGN:  # a worker or the isolating child: the parent stops it
        return False
    if handler is _on_sigint:
        return _seen > 0
    return True  # Python's own handler (the API): the two cannot be told apart


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _seen, _deferred, _first_signal
    _seen += 1
    if _seen == 1:
        _first_signal = signum
        if _in_fork_callback(frame):
            _deferred = True
            if not _forking:  # at the edge of a callback: nothing else will raise it
                signal.setitimer(signal.ITIMER_REAL, 0.001)
            return
        raise KeyboardInterrupt
    _kill_children()
    try:
        sys.stderr.write("poolscope: interrupted again: stopped at once, workers killed; "
                         "trials stored before the first signal are kept\n")
        sys.stderr.flush()
    finally:
        os._exit(exit_code())


def _fork_callback_codes() -> frozenset[object]:
    import logging

    # logging's own callbacks (their names changed in 3.13) run inside ours, but a handler
    # interrupting one on its way out would raise inside it all the same.
    theirs = [getattr(logging, name, None)
              for name in ("_acquireLock", "_releaseLock", "_prepareFork", "_afterFork")]
    ours = [_before_fork, _after_fork_in_parent, _after_fork_in_child]
    return frozenset(f.__code__ for f in ours + theirs if hasattr(f, "__code__"))


_FORK_CALLBACK_CODES = _fork_callback_codes()


def _kill_children() -> None:
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()
