"""Python control flow on a Proxy fails loudly, names the user's line, and leaves
no global state patched.

Each model marks its offending line with ``# <- offending``; the expected line
number is read from the source, so editing this file cannot make the table lie.
In oracle mode (torch.fx), whose messages do not name the line, the table is
validated by finding that line in the raised exception's traceback instead.
"""

from __future__ import annotations

import builtins
import inspect
import math
import operator
import os
import re
import traceback
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from . import corpus
from .subject import IS_ORACLE, ORACLE

MARKER = "# <- offending"


class IfOnTensor(nn.Module):
    def forward(self, x):
        if x.sum() > 0:  # <- offending
            return x
        return -x


class ForOverTensor(nn.Module):
    def forward(self, x):
        total = x.new_zeros(x.shape[1:])
        for row in x:  # <- offending
            total = total + row
        return total


class LenOfTensor(nn.Module):
    def forward(self, x):
        return x * len(x)  # <- offending


class WhileOnTensor(nn.Module):
    def forward(self, x):
        while x.abs().max() > 1:  # <- offending
            x = x / 2
        return x


class BoolOfShapeComparison(nn.Module):
    def forward(self, x):
        y = torch.relu(x)
        return y if x.shape[0] == 2 else -y  # <- offending


class IfInsideNestedSubmodule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = IfOnTensor()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        return self.inner(self.fc(x))


class FailsAfterPatchedCalls(nn.Module):
    """Uses a wrapped function, an autowrapped math call and a submodule, then fails."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        y = corpus.clip_if_large(self.fc(x), 2.0) * math.sqrt(x.shape[-1])
        if F.relu(y).mean() > 0:  # <- offending
            return y
        return x


@dataclass(frozen=True)
class ErrorCase:
    name: str
    make_module: type[nn.Module]
    offender: type[nn.Module]  # the class whose forward holds the marked line
    oracle_error: type[Exception] | None = None  # torch.fx raises this instead of TraceError


ERROR_CASES = (
    ErrorCase("if_on_tensor", IfOnTensor, IfOnTensor),
    ErrorCase("for_over_tensor", ForOverTensor, ForOverTensor),
    ErrorCase("len_of_tensor", LenOfTensor, LenOfTensor, oracle_error=RuntimeError),
    ErrorCase("while_on_tensor", WhileOnTensor, WhileOnTensor),
    ErrorCase("conditional_expression_on_shape", BoolOfShapeComparison, BoolOfShapeComparison),
    ErrorCase("inside_nested_submodule", IfInsideNestedSubmodule, IfOnTensor),
    ErrorCase("after_patched_calls", FailsAfterPatchedCalls, FailsAfterPatchedCalls),
)


def offending_line(cls: type[nn.Module]) -> int:
    lines, first = inspect.getsourcelines(cls.forward)
    (index,) = [i for i, line in enumerate(lines) if MARKER in line]
    return first + index


error_cases = pytest.mark.parametrize("case", ERROR_CASES, ids=[c.name for c in ERROR_CASES])


@error_cases
def test_control_flow_on_proxy_raises_trace_error(subject, case):
    if IS_ORACLE and case.oracle_error is not None:
        with pytest.raises(case.oracle_error):
            subject.symbolic_trace(case.make_module())
        return
    with pytest.raises(subject.TraceError) as info:
        subject.symbolic_trace(case.make_module())
    assert isinstance(info.value, ValueError)


@error_cases
def test_trace_error_names_the_offending_line_and_a_fix(subject, case):
    filename = os.path.basename(__file__)
    lineno = offending_line(case.offender)
    with pytest.raises(Exception) as info:
        subject.symbolic_trace(case.make_module())
    if IS_ORACLE:  # torch.fx's message has no location; check the table via the traceback
        frames = traceback.extract_tb(info.value.__traceback__)
        assert (__file__, lineno) in [(frame.filename, frame.lineno) for frame in frames]
        return
    message = str(info.value)
    assert re.search(rf"{re.escape(filename)}\D{{1,12}}{lineno}\b", message), message
    assert "concrete_args" in message or "wrap" in message, message
    # the location is also data, not only text (errors.py: ``err.where``)
    assert re.search(rf"{re.escape(filename)}\D{{1,12}}{lineno}\b", str(info.value.where))


def global_state() -> dict[str, dict[str, object]]:
    """Every attribute tracing might patch, per namespace (compared by identity)."""
    namespaces = {
        "torch.nn.Module": vars(torch.nn.Module),
        "torch.Tensor": vars(torch.Tensor),
        "torch": vars(torch),
        "torch.nn.functional": vars(F),
        "math": vars(math),
        "operator": vars(operator),
        "builtins": vars(builtins),
        "corpus": vars(corpus),
        "this test module": globals(),
    }
    return {name: dict(namespace) for name, namespace in namespaces.items()}


def changed_entries(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """Keys replaced or removed, or added with a non-module value (lazy imports are fine)."""
    changed = []
    for key in before.keys() | after.keys():
        if key == "__warningregistry__":
            continue
        if key not in before and inspect.ismodule(after[key]):
            continue
        if before.get(key, MISSING) is not after.get(key, MISSING):
            changed.append(key)
    return sorted(changed)


MISSING = object()


def patchable() -> dict[str, object]:
    """The usual suspects, named, so a failure message says which one leaked."""
    return {
        "Module.__call__": torch.nn.Module.__call__,
        "Module.__getattr__": torch.nn.Module.__getattr__,
        "math.sqrt": math.sqrt,
        "builtins.len": builtins.len,
        "corpus.clip_if_large": corpus.clip_if_large,
        "corpus.count_positive_rows": corpus.count_positive_rows,
    }


ORIGINALS = patchable()


class RaisesUserError(nn.Module):
    """Fails with the user's own exception, deep inside patched calls."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        y = corpus.clip_if_large(self.fc(x), 1.0) * math.sqrt(2)
        raise KeyError(f"the user's own error, after {type(y).__name__}")


class Succeeds(nn.Module):
    def forward(self, x):
        return corpus.clip_if_large(x, 1.0) * math.sqrt(x.shape[0]) + len(x.shape)


# every kind of trace that must leave global state as it found it
PATCH_CASES = {
    **{case.name: case.make_module for case in ERROR_CASES},
    "user_exception": RaisesUserError,
    "successful_trace": Succeeds,
    "custom_leaf_raising_inside": lambda: corpus.WithCustomLeaf(),  # Untraceable is no leaf here
}


@pytest.mark.parametrize("make_module", PATCH_CASES.values(), ids=PATCH_CASES.keys())
def test_nothing_stays_patched_after_a_trace(subject, make_module):
    before = global_state()
    try:
        subject.symbolic_trace(make_module())
    except Exception:  # failing or not, every patch must be undone
        pass
    after = global_state()
    for namespace in before:
        changed = changed_entries(before[namespace], after[namespace])
        assert not changed, f"{namespace}: {changed} changed by tracing"
    assert patchable() == ORIGINALS
    # and tracing still works afterwards
    gm = subject.symbolic_trace(corpus.MathOnShape())
    x = torch.randn(3, 4)
    torch.testing.assert_close(gm(x), corpus.MathOnShape()(x))


OUTSIDE_PARAMETER = nn.Parameter(torch.randn(3))


class UsesOutsideParameter(nn.Module):
    def forward(self, x):
        return x + OUTSIDE_PARAMETER


def test_parameter_outside_the_module_raises_name_error(subject):
    """torch.fx refuses an nn.Parameter that is not the root's ("parameter is not a
    member of this module", NameError) rather than freezing it into a constant."""
    with pytest.raises(NameError, match="parameter"):
        subject.symbolic_trace(UsesOutsideParameter())


class RangeOfSize(nn.Module):
    def forward(self, x):
        out = x
        for i in range(x.size(0)):
            out = out + i
        return out


class IntOfShape(nn.Module):
    def forward(self, x):
        return x * int(x.shape[0])


class FloatOfTensor(nn.Module):
    def forward(self, x):
        return x * float(x.sum())


CONVERSIONS = {
    "range_of_size": RangeOfSize,
    "int_of_shape": IntOfShape,
    "float_of_tensor": FloatOfTensor,
}


@pytest.mark.parametrize("make_module", CONVERSIONS.values(), ids=CONVERSIONS.keys())
def test_python_number_conversions_raise_type_error(subject, make_module):
    """A Proxy has no __index__/__int__/__float__: Python raises TypeError, as under torch.fx."""
    with pytest.raises(TypeError, match="Proxy"):
        subject.symbolic_trace(make_module())


def test_wrap_outside_module_scope_raises_like_torch_fx(subject):
    """torch.fx raises NotImplementedError ("wrap must be called at the top level of a
    module"); code catching that keeps working."""
    with pytest.raises(NotImplementedError, match="top level"):
        subject.wrap("clip_if_large")


# --- exception types: code written for torch.fx catches graphlift's errors too --------


class CustomObject:
    pass


class PassesCustomObject(nn.Module):
    def forward(self, x):
        return x * CustomObject()


def graph_with(lib, op: str, target: str):
    graph = lib.Graph()
    x = graph.placeholder("x")
    graph.output(graph.create_node(op, target, (x,) if op == "call_module" else ()))
    return graph


def untracable_argument(lib):
    lib.symbolic_trace(PassesCustomObject())


def missing_get_attr_target(lib):
    lib.GraphModule(nn.Module(), graph_with(lib, "get_attr", "missing"))


def missing_call_module_target(lib):
    lib.GraphModule(nn.Module(), graph_with(lib, "call_module", "nope"))


def too_few_arguments(lib):
    graph = lib.Graph()
    graph.output(graph.placeholder("x"))
    lib.Interpreter(lib.GraphModule(nn.Module(), graph)).run()


# situation -> the exception type torch.fx raises (graphlift must raise a subclass)
ERROR_TYPES = {
    "create_arg_of_an_unsupported_object": (untracable_argument, NotImplementedError),
    "get_attr_target_missing_from_root": (missing_get_attr_target, AttributeError),
    "call_module_target_missing_from_root": (missing_call_module_target, AttributeError),
    "interpreter_run_with_too_few_arguments": (too_few_arguments, RuntimeError),
}


@pytest.mark.parametrize("situation, error", ERROR_TYPES.values(), ids=ERROR_TYPES.keys())
def test_error_types_match_torch_fx(subject, situation, error):
    with pytest.raises(error):
        situation(ORACLE)
    with pytest.raises(error):
        situation(subject)
