"""The project's own checks, run as tests so CI enforces them: ruff over the
repository, and ``mypy --strict`` over the packages that promise it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRICTLY_TYPED = ["graphlift/symbolic", "graphlift/pytree"]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the test extras")
def test_ruff_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("target", STRICTLY_TYPED)
def test_mypy_strict(target: str) -> None:
    # --follow-imports=silent: check this package, not everything graphlift/__init__ imports
    result = run(sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", target)
    assert result.returncode == 0, result.stdout + result.stderr
