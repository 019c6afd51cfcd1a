"""The truth suite's reference workloads: one function per kind of work, one item each call.

``bench_truth.py`` times these bare (a plain loop, ThreadPoolExecutor, ProcessPoolExecutor...)
and through the real CLI as ``benchmarks/truth_workloads.py:NAME``, so every function is
module-level, takes one item and keeps no module-level data: the CLI loads a file target by
value (cloudpickle), and a large global would travel with the function to every process.
Items are the integers 0..N-1, except ``large_args`` whose items are 8 MB strings (the suite
writes them to a JSON-lines file for ``--items-from``).
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import time
import zlib

MB = 1 << 20


def _spin(loops: int) -> int:
    """Pure-Python arithmetic that holds the GIL throughout."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def py_compute(item: int) -> int:
    """Pure-Python compute, about 40 ms: holds the GIL, so only processes run it in parallel."""
    return _spin(400_000) + item


def hash_buffer(item: int) -> str:
    """SHA-256 over 48 MB (a 1 MB buffer 48 times): C code that releases the GIL."""
    block = bytes([item % 256]) * MB
    digest = hashlib.sha256()
    for _ in range(48):
        digest.update(block)
    return digest.hexdigest()


def zlib_compress(item: int) -> int:
    """zlib level 6 over 1 MB of hex text (about 60 ms): C code that releases the GIL."""
    data = random.Random(item).randbytes(256 * 1024).hex().encode() * 2
    return len(zlib.compress(data, 6))


def sleep_io(item: int) -> int:
    """A 50 ms blocking wait (a network call): releases the GIL, uses no CPU."""
    time.sleep(0.05)
    return item


def subprocess_wait(item: int) -> int:
    """Run a short child process and wait for it (fork/exec, then 50 ms asleep)."""
    subprocess.run(["sleep", "0.05"], check=True)
    return item


def tiny(item: int) -> int:
    """A few microseconds of work: per-item overhead is all there is."""
    return sum(range(item % 7, 40))


def large_args(item: str) -> int:
    """Count a character in an 8 MB string argument: the argument's transfer is the cost."""
    return item.count("7")


def large_results(item: int) -> bytes:
    """Return 16 MB (filled, not lazily zeroed): the result's transfer is the cost."""
    return bytes([item % 256]) * (16 * MB)


def numpy_matmul(item: int) -> float:
    """Matrix products in BLAS, which runs its own native threads (one per core by default)."""
    import numpy as np

    rng = np.random.default_rng(item)
    a = rng.standard_normal((600, 600))
    for _ in range(3):
        a = a @ a
        a /= np.abs(a).max()
    return float(a.sum())


def mixed(item: int) -> int:
    """Part compute (about 10 ms of pure Python), part wait (30 ms asleep)."""
    total = _spin(100_000)
    time.sleep(0.03)
    return total + item


def gil_switching(item: int) -> int:
    """About 40 µs of pure Python: many such items handed to threads one by one spend more
    on passing the GIL and the work queue between threads than on the work (measured here:
    8,000 items, serial 0.33 s, ThreadPoolExecutor ×2 0.64 s)."""
    return _spin(300) + item


def _write_items(path: str, count: int) -> None:
    """Write ``count`` 8 MB strings, one JSON value per line (the items of ``large_args``)."""
    import json

    with open(path, "w", encoding="utf-8") as f:
        for index in range(count):
            f.write(json.dumps(str(index % 10) * (8 * MB)) + "\n")


if __name__ == "__main__":  # a quick look at each function's serial time per item
    for name in sys.argv[1:]:
        fn = globals()[name]
        began = time.perf_counter()
        fn("0" * 8 * MB if name == "large_args" else 1)
        print(f"{name}: {(time.perf_counter() - began) * 1e3:.1f} ms")
