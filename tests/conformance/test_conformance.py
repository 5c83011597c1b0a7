"""The differential conformance suite: graphlift against torch.export's recorded column.

Default tier: each case runs through graphlift and is compared with
``oracle.json`` (what torch.export 2.13 did, recorded by
``tools/conformance_oracle.py``) and with eager PyTorch. Slow tier: torch.export
runs live and must still do what the oracle says, so the recorded column
cannot drift from the real one. A case marked with a ``Difference`` expects
graphlift's documented behaviour instead (docs/differences.md lists them).
"""

from __future__ import annotations

import builtins
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.cases import all_cases
from tests.conformance.harness import (
    Case,
    Observation,
    as_json,
    graphlift_exporter,
    matches_category,
    observe,
    torch_exporter,
)

ORACLE: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "oracle.json").read_text())
CASES = all_cases()


def expected_for_graphlift(case: Case) -> dict[str, Any]:
    expected = dict(ORACLE[case.name])
    if case.difference is not None:
        expected.update(case.difference.graphlift)
    return expected


def _run_category_ok(expected: str, got: str) -> bool:
    """A refused run must be refused with torch's builtin type or a subclass of it."""
    if expected == got:
        return True
    want, have = getattr(builtins, expected, None), getattr(builtins, got, None)
    return isinstance(want, type) and isinstance(have, type) and issubclass(have, want)


def compare(expected: dict[str, Any], got: Observation, error: BaseException | None) -> list[str]:
    """Every way ``got`` differs from ``expected`` (empty when it conforms)."""
    problems = []
    if expected["outcome"] == "ok" or got.outcome == "ok":
        if expected["outcome"] != got.outcome:
            problems.append(f"outcome {got.outcome} ({error!r:.300}), torch: {expected['outcome']}")
            return problems
    elif error is not None and not matches_category(expected["outcome"], error):
        problems.append(
            f"raised {got.outcome} ({error!r:.300}), torch raises {expected['outcome']}"
        )
    for key in ("inputs", "outputs", "targets", "observed"):
        if as_json(getattr(got, key)) != expected[key]:
            problems.append(f"{key}: {getattr(got, key)!r}, torch: {expected[key]!r}")
    runs, expected_runs = list(got.runs), list(expected["runs"])
    if len(runs) != len(expected_runs) or not all(
        _run_category_ok(want, have) for want, have in zip(expected_runs, runs)
    ):
        problems.append(f"runs: {runs}, torch: {expected_runs}")
    problems += [f"differs from eager: {m}" for m in got.eager]
    return problems


#: Cases where graphlift still differs from torch.export and should not (issue #15's
#: open gaps). Strict xfails: a fix makes the test pass and asks to remove the entry.
KNOWN_GAPS: dict[str, str] = {}


def _graphlift_param(name: str) -> Any:
    gap = KNOWN_GAPS.get(name)
    marks = [pytest.mark.xfail(reason=f"open gap: {gap}", strict=True)] if gap else []
    return pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", [_graphlift_param(name) for name in sorted(CASES)])
def test_graphlift_column(name: str) -> None:
    case = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, error = observe(case, graphlift_exporter())
    problems = compare(expected_for_graphlift(case), got, error)
    assert not problems, f"{name} ({case.source}):\n  " + "\n  ".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_column(name: str) -> None:
    """torch.export still does what oracle.json recorded (re-record with tools/conformance_oracle.py)."""
    case = CASES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, _ = observe(case, torch_exporter())
    assert got.to_json() == ORACLE[name]


def test_every_case_has_an_oracle_entry_and_a_source() -> None:
    assert sorted(CASES) == sorted(ORACLE), "run tools/conformance_oracle.py"
    assert all(case.source for case in CASES.values())


def test_every_difference_is_documented() -> None:
    text = (Path(__file__).parents[2] / "docs" / "differences.md").read_text()
    missing = [name for name, case in CASES.items() if case.difference and name not in text]
    assert not missing, f"cases differing from torch but not in docs/differences.md: {missing}"
