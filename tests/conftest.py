"""Shared fixtures. Every wait has a timeout (pytest-timeout, faulthandler_timeout in pyproject)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 180,
            input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m poolscope`` for real, as a user would, with a timeout."""
    env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "poolscope", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env,
                          input=input_text)


@pytest.fixture
def cli(tmp_path: Path):
    def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=tmp_path, timeout=timeout)

    return _run
