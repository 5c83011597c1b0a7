"""The model sweep's recorded torch.export column covers the sweep and still says what torch does.

``tests/sweep/torch_oracle.json`` stands in for a live torch.export run in
``test_model_sweep.py``; a case added without recording its verdicts, or a gap
listed for a cell that does not exist, fails here at once. The slow tier re-runs
torch.export on a sample of cells (some where it succeeds everywhere, some where
it fails at a stage) and fails when the recorded verdicts are stale: re-record
with ``python tools/model_sweep_oracle.py <case>``.
"""

from __future__ import annotations

import pytest

from tests.sweep import oracle
from tests.sweep.models import CASES, CASES_BY_NAME
from tests.sweep.runner import MODES, STAGES, TORCH, run_cell
from tests.sweep.test_model_sweep import KNOWN_GAPS

STATUSES = {"ok", "wrong", "refused", "fail", "skipped"}
RECORDED = oracle.load()

#: (case, mode) cells re-run live: cheap for torch, and covering ok, fail and refused.
LIVE_SAMPLE = (
    ("nn_mlp", "auto"),
    ("nn_lstm", "named"),  # torch's export fails (it specializes seq)
    ("nn_lstm", "auto"),  # torch's module refuses another sequence length
    ("gpt2", "static"),  # torch's decomposition fails
    ("mobilebert", "named"),  # torch's export fails
)


def test_every_cell_of_the_sweep_has_a_recorded_verdict() -> None:
    cells = {(case.name, mode) for case in CASES for mode in MODES}
    recorded = {(case, mode) for case, modes in RECORDED.items() for mode in modes}
    assert not cells - recorded, "record them: python tools/model_sweep_oracle.py <case>"
    assert not recorded - cells, "cells of removed cases: re-run tools/model_sweep_oracle.py"
    for case, mode in sorted(cells):
        verdicts = oracle.verdicts(RECORDED, case, mode)
        assert set(verdicts) == set(STAGES)
        assert {result.status for result in verdicts.values()} <= STATUSES, (case, mode)


def test_every_known_gap_is_a_cell_where_torch_passes_a_stage() -> None:
    for case, mode in KNOWN_GAPS:
        verdicts = oracle.verdicts(RECORDED, case, mode)
        assert any(result.status == "ok" for result in verdicts.values()), (case, mode)


def test_a_recorded_verdict_reads_back_as_recorded() -> None:
    result = oracle.parse("fail (TypeError: f() got (1) args)")
    assert (result.status, result.detail) == ("fail", "TypeError: f() got (1) args")
    assert str(result) == "fail (TypeError: f() got (1) args)"
    assert oracle.parse("ok").status == "ok" and oracle.parse("ok").detail == ""


@pytest.mark.slow
@pytest.mark.parametrize("case,mode", LIVE_SAMPLE, ids=[f"{c}-{m}" for c, m in LIVE_SAMPLE])
def test_recorded_verdicts_are_what_torch_export_does(case: str, mode: str) -> None:
    live = run_cell(TORCH, CASES_BY_NAME[case], mode)
    recorded = oracle.verdicts(RECORDED, case, mode)
    assert {s: live[s].status for s in STAGES} == {s: recorded[s].status for s in STAGES}, (
        f"stale oracle for ({case}, {mode}): re-record with "
        f"python tools/model_sweep_oracle.py {case}"
    )
