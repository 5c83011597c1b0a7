"""Every conformance case on torch.fx and on graphlift.fx, compared (see adapter.py)."""

from __future__ import annotations

import pytest

from . import (  # noqa: F401  (they register cases)
    cases_api,
    cases_codegen,
    cases_editing,
    cases_graph,
    cases_module,
    cases_passes,
    cases_proxy,
    cases_rewriter,
    cases_run,
    cases_signature,
    cases_trace,
)
from .adapter import CASES, ORACLE, SUBJECT, Raised, assert_same, observe, same


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case):
    expected = observe(case.run, ORACLE)
    actual = observe(case.run, SUBJECT)
    if case.eager is None:
        assert isinstance(expected, Raised) == case.raises, f"torch.fx on this case: {expected!r}"
        assert_same(actual, expected)
        return
    # A deliberate difference: graphlift computes what eager PyTorch computes,
    # torch.fx does not (if torch.fx is fixed, drop the difference).
    right = case.eager()
    assert_same(actual, right)
    assert not same(expected, right), f"torch.fx now agrees with eager on {case.name}: {case.why}"


def test_cases_are_many_and_distinct():
    assert len(CASES) >= 100
    assert len({c.name for c in CASES}) == len(CASES)
