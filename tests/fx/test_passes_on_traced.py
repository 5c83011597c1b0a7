"""Dead-code and common-subexpression elimination on traced corpus graphs keep
their meaning: same outputs (runs are seeded), same buffer updates, same inputs
mutated, and every assertion still checked.

The passes under test are graphlift's ``eliminate_dead_code(graph)`` and
``eliminate_common_subexpressions(graph)``; in oracle mode, torch.fx's
``Graph.eliminate_dead_code()`` and ``CSEPass``. Where torch.fx's passes are
wrong, oracle mode pins the failure (``TORCH_FX_WRONG``) instead.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.fx.passes.dialect.common.cse_pass import CSEPass

from .corpus import CASES
from .harness import assert_same_result, build_module, fresh_inputs, run, trace
from .subject import IS_ORACLE


def _torch_fx_dce(gm):
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def _torch_fx_cse(gm):
    return CSEPass()(gm).graph_module


def _graphlift_pass(name: str):
    def apply(gm):
        passes = importlib.import_module("graphlift.ir.passes")
        getattr(passes, name)(gm.graph)
        gm.recompile()
        return gm

    return apply


PASSES = (
    {"dce": _torch_fx_dce, "cse": _torch_fx_cse}
    if IS_ORACLE
    else {
        "dce": _graphlift_pass("eliminate_dead_code"),
        "cse": _graphlift_pass("eliminate_common_subexpressions"),
    }
)

# (pass, case) -> how torch.fx 2.13 gets it wrong; pinned in oracle mode.
TORCH_FX_WRONG = {
    ("dce", "in_place_ops"): "drops y.add_(1) and y.relu_(): in-place methods count as pure",
    ("dce", "side_effects_and_randomness"): "drops the unused BatchNorm call (running stats)",
    ("cse", "lstm_leaf"): "CSEPass hashes arguments: TypeError on a slice",
    ("cse", "slicing_ellipsis_none"): "CSEPass hashes arguments: TypeError on a slice",
    ("cse", "constant_arguments"): "CSEPass hashes arguments: TypeError on a slice",
    ("cse", "side_effects_and_randomness"): "CSEPass merges repeated dropout/rand calls",
}

ASSERTIONS = ("_assert", "_assert_is_none")


def apply_and_compare(pass_name: str, case, lib):
    module, eager = build_module(case), build_module(case)
    traced = trace(lib, case, module)
    before = [(n.op, n.target) for n in traced.graph.nodes]
    gm = PASSES[pass_name](traced)
    gm.graph.lint()
    if [(n.op, n.target) for n in gm.graph.nodes] == before:
        return gm  # nothing changed: test_differential.py already ran this graph
    inputs = fresh_inputs(case)
    expected, expected_inputs = run(eager, inputs)
    actual, actual_inputs = run(gm, inputs)
    assert_same_result(actual, expected)
    assert_same_result(actual_inputs, expected_inputs)
    torch.testing.assert_close(dict(module.state_dict()), dict(eager.state_dict()))
    return gm


@pytest.mark.parametrize("pass_name", ["dce", "cse"])
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_pass_preserves_meaning(subject, pass_name, case):
    wrong = TORCH_FX_WRONG.get((pass_name, case.name))
    if IS_ORACLE and wrong:
        with pytest.raises((AssertionError, TypeError)):
            apply_and_compare(pass_name, case, subject)
        return
    apply_and_compare(pass_name, case, subject)


def assertion_count(gm) -> int:
    return sum(getattr(n.target, "__name__", "") in ASSERTIONS for n in gm.graph.nodes)


ASSERTING_CASES = [
    c
    for c in CASES
    if c.name in ("torch_assert", "concrete_bool_flag_true", "concrete_none_argument")
]


@pytest.mark.parametrize("case", ASSERTING_CASES, ids=[c.name for c in ASSERTING_CASES])
def test_dead_code_elimination_keeps_every_assertion(subject, case):
    """An assertion's value is never used; it is kept for its effect (raising).

    torch.fx keeps ``torch._assert`` but drops ``_assert_is_none`` (the check that a
    None concrete argument is still None); oracle mode pins that.
    """
    gm = trace(subject, case, build_module(case))
    before = assertion_count(gm)
    assert before > 0
    PASSES["dce"](gm)
    if IS_ORACLE and case.name == "concrete_none_argument":
        assert assertion_count(gm) == before - 1
        return
    assert assertion_count(gm) == before
