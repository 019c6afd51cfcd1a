"""Ctrl-C for the CLI: the first SIGINT stops cleanly, a second one stops at once.

The first SIGINT raises KeyboardInterrupt as Python does by default: the runner ends the
trial's workers, keeps every finished trial (already in the store) and the CLI exits 130 with
one line saying what was kept. Process workers ignore SIGINT (the parent stops them), so when a
second SIGINT arrives during that clean-up, poolscope kills its child processes itself and
exits 130 at once: no worker outlives it.
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


def install_sigint_handler() -> None:
    """Install the two-step handler in the main thread (a no-op elsewhere)."""
    global _seen
    _seen = 0
    with contextlib.suppress(ValueError):  # not the main thread: leave Python's default
        signal.signal(signal.SIGINT, _on_sigint)


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _seen
    _seen += 1
    if _seen == 1:
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
