"""The op sweep: graphlift handles every op of torch's op_db that torch.export handles.

Every OpInfo of ``op_db`` (one per name and variant) runs on its first sample
(``GRAPHLIFT_OPSWEEP_SAMPLES=N`` for the first N), wrapped as a module with
``Dim.AUTO`` on every dim of every tensor input, through export, run against
eager (the sample and a resized sample) and ``run_decompositions()``
(``tests/opsweep/runner.py``). torch.export's column is ``torch_oracle.json``
(recorded by ``benchmarks/op_sweep.py --record``; running torch.export on 700
ops costs ~3 CPU-minutes); with more than one sample, or
``GRAPHLIFT_OPSWEEP_TORCH=1``, torch.export runs live next to graphlift.

A stage where torch.export succeeds and graphlift does not fails, unless the op
is listed in ``KNOWN_GAPS`` with its reason; a listed gap that closes fails too
(strict), so the list only shrinks. A wrong answer from graphlift always fails.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from typing import Any

import pytest

from tests.opsweep.runner import (
    GRAPHLIFT,
    ORACLE_PATH,
    STAGES,
    TORCH,
    StageResult,
    op_table,
    run_cell,
    samples_of,
)

pytestmark = pytest.mark.slow

ORACLE: dict[str, dict[str, str]] = json.loads(ORACLE_PATH.read_text())
SAMPLES = int(os.environ.get("GRAPHLIFT_OPSWEEP_SAMPLES", "1"))
LIVE_TORCH = SAMPLES > 1 or os.environ.get("GRAPHLIFT_OPSWEEP_TORCH") == "1"

#: op key -> why graphlift is behind torch.export there (strict: a closed gap fails).
KNOWN_GAPS: dict[str, str] = {}


@pytest.fixture(scope="module")
def ops() -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return op_table()


def torch_column(sample: Any, index: int, key: str) -> dict[str, StageResult]:
    if LIVE_TORCH:
        return run_cell(TORCH, sample)
    assert index == 0
    return {s: StageResult(*ORACLE[key][s].split(" ", 1)) for s in STAGES}


@pytest.mark.parametrize("key", sorted(ORACLE))
def test_graphlift_handles_what_torch_export_handles(ops: dict[str, Any], key: str) -> None:
    logging.disable(logging.WARNING)
    behind: set[str] = set()
    tables = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, sample in enumerate(samples_of(ops[key], SAMPLES)):
            ours, theirs = run_cell(GRAPHLIFT, sample), torch_column(sample, index, key)
            table = "\n".join(
                f"  {s:<10} graphlift: {ours[s]}\n  {'':<10} torch:     {theirs[s]}" for s in STAGES
            )
            wrong = [s for s in STAGES if ours[s].status == "wrong"]
            assert not wrong, f"wrong answer on sample {index}:\n{table}"
            behind |= {s for s in STAGES if theirs[s].status == "ok" and ours[s].status != "ok"}
            tables.append(f"sample {index}:\n{table}")
    report = "\n".join(tables)
    gap = KNOWN_GAPS.get(key)
    if gap is not None:
        assert behind, f"known gap closed, remove it from KNOWN_GAPS:\n{report}"
        pytest.xfail(gap)
    assert not behind, f"graphlift behind torch.export at {sorted(behind)}:\n{report}"


def test_every_known_gap_is_an_op() -> None:
    assert not set(KNOWN_GAPS) - set(ORACLE)
