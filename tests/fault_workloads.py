"""Functions that misbehave on item 3, importable by reference from any worker (stdlib only)."""

from __future__ import annotations

import time

STUCK_S = 60.0  # far past every timeout the tests set, far below their own deadline


def sleep_on_three(x: int) -> int:
    """Item 3 blocks in time.sleep: C code that no exception can enter until it returns."""
    time.sleep(STUCK_S if x == 3 else 0.02)
    return x


def spin_on_three(x: int) -> int:
    """Item 3 loops in Python code for good."""
    if x == 3:
        deadline = time.monotonic() + STUCK_S
        while time.monotonic() < deadline:
            pass
    else:
        time.sleep(0.02)
    return x


def grow_on_three(x: int) -> int:
    """Item 3 takes memory, 64 MiB at a time, and holds it (what the OOM killer ends)."""
    held = []
    if x == 3:
        deadline = time.monotonic() + STUCK_S
        while time.monotonic() < deadline:
            if len(held) < 64:  # at most 4 GiB
                held.append(bytearray(64 << 20))
            time.sleep(0.05)
    return x


def killed_on_three(x: int) -> int:
    """Item 3 takes 300 MiB, then gets SIGKILL, as from the OOM killer."""
    import os
    import signal

    if x == 3:
        held = bytearray(300 << 20)
        time.sleep(0.5)  # long enough for the parent to read its peak
        os.kill(os.getpid(), signal.SIGKILL)
        return len(held)
    return x
