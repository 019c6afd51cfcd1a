"""A function with an initializer, as a database query with its connection (test_call_shapes).

Importable by every worker (process, subinterpreter, another interpreter): tests/ is on their
path as it is on the tests'.
"""

import os
import time

CONNECTION: dict[str, object] = {}  # per process: the initializer's work


def connect(name: str, seconds: float) -> None:
    """The initializer: slow, as opening a connection or loading a model is."""
    time.sleep(seconds)
    CONNECTION["name"], CONNECTION["pid"] = name, os.getpid()


def query(a: int, b: int = 0) -> int:
    """Fails where its worker's initializer did not run (a process that never connected)."""
    if CONNECTION.get("pid") != os.getpid():
        raise RuntimeError("not connected in this process")
    return a + b


def no_database() -> None:
    raise OSError("no database at db.sqlite")
