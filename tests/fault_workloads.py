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


class Unreadable:
    """Pickles fine; unpickling it raises (a class that cannot be rebuilt on the other side)."""

    def __reduce__(self):
        return (_refuse, ())


def _refuse():
    raise RuntimeError("cannot rebuild this result")


def unpicklable_result_on_three(x: int):
    import threading

    return threading.Lock() if x == 3 else x


def unreadable_result_on_three(x: int):
    return Unreadable() if x == 3 else x


def identity(x):
    return 0 if not isinstance(x, int) else x


def raise_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("item 3 is bad")
    return x


def sys_exit_on_three(x: int) -> int:
    import sys

    if x == 3:
        sys.exit(3)
    return x


def os_exit_on_three(x: int) -> int:
    import os

    if x == 3:
        os._exit(7)
    return x


def sigkill_on_three(x: int) -> int:
    import os
    import signal

    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def segfault_on_three(x: int) -> int:
    import ctypes

    if x == 3:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    return x


async def nap_on_three(x: int) -> int:
    import asyncio

    await asyncio.sleep(STUCK_S if x == 3 else 0.02)
    return x


def exit_while_another_item_runs(x: int) -> int:
    """Items take 0.3 s; item 3 ends its process halfway, while a neighbour is mid-item."""
    import os

    time.sleep(0.15)
    if x == 3:
        os._exit(7)
    time.sleep(0.15)
    return x


def hold_200_mib_on_zero(x: int) -> int:
    """Item 0 takes 200 MiB, touched, and lets it go when it returns."""
    if x == 0:
        block = bytearray(200 << 20)
        block[::4096] = b"x" * len(block[::4096])
    return x


_held_once = False


def hold_200_mib_once(x: int) -> int:
    """The first call in a process takes 200 MiB, touched, and lets it go; later calls none."""
    global _held_once
    if not _held_once:
        _held_once = True
        block = bytearray(200 << 20)
        block[::4096] = b"x" * len(block[::4096])
    return x
