"""The project's own checks, run as tests so CI enforces them: ruff over the
repository, and ``mypy --strict`` over the whole graphlift package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the test extras")
def test_ruff_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow  # about 15 s of CPU from a cold cache (a minute on a loaded 2-core machine)
def test_mypy_strict() -> None:
    result = run(sys.executable, "-m", "mypy", "--strict", "graphlift")
    assert result.returncode == 0, result.stdout + result.stderr
