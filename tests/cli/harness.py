"""Running the ``graphlift`` command in a fresh process, and checking its ``--json`` output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema

from graphlift.cli import main
from graphlift.cli.schemas import schema

ROOT = Path(__file__).resolve().parents[2]
MODELS = Path(__file__).resolve().parent / "models"
BRANCHY = str(MODELS / "branchy.py")


def run_graphlift(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``python -m graphlift ARGUMENTS`` with this checkout's graphlift first on the path."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "graphlift", *arguments],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def validate(command: str, stdout: str) -> dict[str, Any]:
    """The JSON object a ``--json`` run printed, after checking it against its schema."""
    result = json.loads(stdout)
    jsonschema.validate(result, schema(command))
    return result


def run_in_process(capsys: Any, *arguments: str) -> tuple[int, dict[str, Any]]:
    """``graphlift ARGUMENTS --json`` in this process: (exit code, validated JSON result)."""
    capsys.readouterr()
    code = main([*arguments, "--json"])
    return code, validate(arguments[0], capsys.readouterr().out)
