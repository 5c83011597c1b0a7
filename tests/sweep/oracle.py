"""torch.export's recorded column of the model sweep: ``torch_oracle.json``.

Running torch.export on every (case, mode) cell costs ~15 CPU-minutes (a swin
cell alone ~100 s), so the test compares graphlift's verdicts with torch's
*recorded* verdicts, case -> mode -> stage -> ``"status (detail)"`` (the
``str`` of a :class:`tests.sweep.runner.StageResult`). Wrong answers never
come from here: graphlift is always judged against eager, live.

Re-record after adding or changing a case, or upgrading torch:
``python tools/model_sweep_oracle.py [case ...]`` (torch only, the matching
cases), or ``python benchmarks/model_sweep.py --record`` (both exporters, every
cell). ``GRAPHLIFT_SWEEP_TORCH=1`` makes the test run torch.export live instead,
and ``tests/sweep/test_oracle.py`` checks a sample of cells against live torch.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.sweep.runner import STAGES, StageResult

ORACLE_PATH = Path(__file__).parent / "torch_oracle.json"
LIVE = os.environ.get("GRAPHLIFT_SWEEP_TORCH") == "1"
"""Run torch.export live in the test instead of reading the oracle."""

Oracle = dict[str, dict[str, dict[str, str]]]  # case -> mode -> stage -> "status (detail)"


def load(path: Path = ORACLE_PATH) -> Oracle:
    oracle: Oracle = json.loads(path.read_text()) if path.exists() else {}
    return oracle


def save(oracle: Oracle, path: Path = ORACLE_PATH) -> None:
    ordered = {case: dict(sorted(modes.items())) for case, modes in sorted(oracle.items())}
    path.write_text(json.dumps(ordered, indent=1) + "\n")


def record(oracle: Oracle, case: str, mode: str, results: dict[str, StageResult]) -> None:
    oracle.setdefault(case, {})[mode] = {stage: str(results[stage]) for stage in STAGES}


def verdicts(oracle: Oracle, case: str, mode: str) -> dict[str, StageResult]:
    """The recorded results of one cell; a missing cell says how to record it."""
    try:
        cell = oracle[case][mode]
    except KeyError:
        raise KeyError(
            f"no torch.export verdict recorded for ({case}, {mode}): "
            f"run python tools/model_sweep_oracle.py {case}"
        ) from None
    return {stage: parse(cell[stage]) for stage in STAGES}


def parse(text: str) -> StageResult:
    """The inverse of ``str(StageResult)``: ``"fail (TypeError: ...)"``."""
    status, _, rest = text.partition(" ")
    detail = rest[1:-1] if rest.startswith("(") and rest.endswith(")") else rest
    return StageResult(status, detail)
