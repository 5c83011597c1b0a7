"""The model sweep: graphlift does whatever torch.export does, on models others wrote.

Every case of ``tests/sweep/models.py`` (the zoo's transformers and torch.nn
models, plus encoders, decoders, vision and audio architectures from small
transformers configs), in three spec modes (static, the case's named Dims,
``Dim.AUTO`` on every dim), goes through export, run against eager at several
sizes, decompose and save/load with *both* exporters in the same test
(``tests/sweep/runner.py``). A stage where torch.export succeeds and graphlift
does not fails the test, unless the cell is listed in ``KNOWN_GAPS`` with its
reason; a listed gap that closes fails too (strict), so the list only shrinks.
A wrong answer from graphlift always fails (judged against eager, live).
Each dynamic cell's exported, decomposed and loaded programs are also run at
the smallest sizes (every dim at its declared min, batch alone at its min; AUTO:
batch 1 and 0; ``tests/sweep/minimum.py``): equal to eager or an announced typed
refusal, else the test fails unless the cell is listed in ``MINIMUM_GAPS``.
torch.export's verdicts come from ``tests/sweep/torch_oracle.json``
(``tests/sweep/oracle.py``: running torch.export on every cell costs ~15
CPU-minutes, 3-8x graphlift); ``GRAPHLIFT_SWEEP_TORCH=1`` runs it live instead,
on the cells where graphlift is not ``ok`` at every stage (elsewhere it cannot
change the verdict). ``benchmarks/model_sweep.py`` runs both exporters on every
cell and prints the matrix as a table.
"""

from __future__ import annotations

import pytest

from tests.sweep import oracle
from tests.sweep.minimum import MINIMUM, run_graphlift_cell
from tests.sweep.models import CASES, CASES_BY_NAME
from tests.sweep.runner import MODES, STAGES, TORCH, StageResult, run_cell

pytestmark = pytest.mark.slow

# (case, mode) -> why graphlift is behind torch.export there. Each names the issue-14 item.
KNOWN_GAPS: dict[tuple[str, str], str] = {}

# (case, mode) -> why a program of the cell is unsound at its smallest sizes
# (``tests/sweep/minimum.py``: a raw error or an unannounced refusal; a wrong answer
# always fails). Strict: a violation that goes away fails until removed from here.
MINIMUM_GAPS: dict[tuple[str, str], str] = {}


ORACLE = oracle.load()


def torch_column(case: str, mode: str) -> dict[str, StageResult]:
    """torch.export's recorded verdicts; live when asked, or for a cell not yet recorded
    (which ``test_oracle.py`` flags)."""
    if oracle.LIVE or mode not in ORACLE.get(case, {}):
        return run_cell(TORCH, CASES_BY_NAME[case], mode)
    return oracle.verdicts(ORACLE, case, mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_graphlift_does_what_torch_export_does(case: object, mode: str) -> None:
    name = case.name  # type: ignore[attr-defined]
    ours = run_graphlift_cell(case, mode)  # type: ignore[arg-type]
    reasons = [r for r in (behind_torch(name, mode, ours), at_minimum(name, mode, ours)) if r]
    if reasons:
        pytest.xfail("; ".join(reasons))


def behind_torch(name: str, mode: str, ours: dict[str, StageResult]) -> str | None:
    """The listed gap, when graphlift is behind torch.export as listed; fails otherwise."""
    gap = KNOWN_GAPS.get((name, mode))
    if all(ours[s].status == "ok" for s in STAGES):
        # Nothing torch.export does can put graphlift behind here (wrong answers are
        # judged against eager). A listed gap that closed still fails.
        assert gap is None, f"known gap closed, remove it from KNOWN_GAPS: {gap}"
        return None
    theirs = torch_column(name, mode)
    table = "\n".join(
        f"  {s:<10} graphlift: {ours[s]}\n  {'':<10} torch:     {theirs[s]}" for s in STAGES
    )
    assert not [s for s in STAGES if ours[s].status == "wrong"], f"wrong answer:\n{table}"
    behind = [s for s in STAGES if theirs[s].status == "ok" and ours[s].status != "ok"]
    if gap is not None:
        assert behind, f"known gap closed, remove it from KNOWN_GAPS:\n{table}"
        return gap
    assert not behind, f"graphlift behind torch.export at {behind}:\n{table}"
    return None


def at_minimum(name: str, mode: str, ours: dict[str, StageResult]) -> str | None:
    """The listed violation at the smallest sizes (``tests/sweep/minimum.py``), when the
    cell still has it; fails on an unlisted one and on a listed one that closed."""
    result = ours[MINIMUM]
    gap = MINIMUM_GAPS.get((name, mode))
    if result.status in ("ok", "skipped"):
        assert gap is None, f"minimum-size gap closed, remove it from MINIMUM_GAPS: {gap}"
        return None
    assert result.status != "wrong", f"wrong answer at the smallest sizes: {result}"
    assert gap is not None, f"unsound at the smallest sizes: {result}"
    return gap
