"""Tracer's override hooks are called as torch.fx calls them, and overriding them works.

Code written against torch.fx subclasses ``Tracer`` and overrides
``is_leaf_module``, ``call_module``, ``getattr``, ``create_proxy``,
``create_node`` or ``create_arg``. Each test drives the library under test and
torch.fx with the same subclass and compares what the hooks saw, or what the
override produced.
"""

from __future__ import annotations

import math
import operator
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from . import autowrapped_helpers
from .corpus import CASES, DELIBERATE_TARGET_DIFFERENCES, ResNetBlock
from .harness import (
    assert_same_result,
    build_module,
    call_targets,
    fresh_inputs,
    run,
)
from .subject import IS_ORACLE, ORACLE

# --- hook-call logs --------------------------------------------------------------


def describe(target):
    """A target as comparable data (in-place operators and library helpers normalized)."""
    if isinstance(target, str):
        return target
    target = DELIBERATE_TARGET_DIFFERENCES.get(target, target)
    if getattr(target, "__module__", "").startswith(("torch.fx", "graphlift")):
        return ("library helper", target.__name__)
    return target


def recording_tracer(lib, log: list, leaves: tuple[type, ...] = ()):
    """A Tracer subclass that logs every hook call, then defers to the base class."""

    class RecordingTracer(lib.Tracer):
        def is_leaf_module(self, m, module_qualified_name):
            log.append(("is_leaf_module", type(m).__name__, module_qualified_name))
            return isinstance(m, leaves) or super().is_leaf_module(m, module_qualified_name)

        def call_module(self, m, forward, args, kwargs):
            log.append(("call_module", type(m).__name__))
            return super().call_module(m, forward, args, kwargs)

        def getattr(self, attr, attr_val, parameter_proxy_cache):
            log.append(("getattr", attr, type(attr_val).__name__))
            return super().getattr(attr, attr_val, parameter_proxy_cache)

        def create_proxy(self, kind, target, args, kwargs, *rest, **options):
            if kind == "placeholder":
                # torch.fx renames a concrete argument's placeholder (flag -> flag_1),
                # which makes the keyword unusable; keeping the name is no defect.
                target = re.sub(r"_1$", "", target)
            log.append(("create_proxy", kind, describe(target)))
            return super().create_proxy(kind, target, args, kwargs, *rest, **options)

        def create_node(self, kind, target, args, kwargs, *rest, **options):
            log.append(("create_node", kind, describe(target)))
            return super().create_node(kind, target, args, kwargs, *rest, **options)

    return RecordingTracer()


def hook_log(lib, case) -> list:
    log: list = []
    tracer = recording_tracer(lib, log, case.leaf_modules)
    tracer.trace(build_module(case), concrete_args=case.concrete_args)
    return log


cases = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


@cases
def test_hooks_are_called_as_torch_fx_calls_them(subject, case):
    """Same hooks, same order, same arguments (by kind, target, type and qualified name)."""
    actual = hook_log(subject, case)
    expected = hook_log(ORACLE, case)
    assert actual == expected, _first_difference(actual, expected)


def _first_difference(actual: list, expected: list) -> str:
    for index, (mine, theirs) in enumerate(zip(actual, expected)):
        if mine != theirs:
            return f"first difference at call {index}: {mine} != torch.fx's {theirs}"
    return f"{len(actual)} hook calls, torch.fx made {len(expected)}"


# --- overriding hooks ------------------------------------------------------------


def traced_with(lib, tracer_class, module, concrete_args=None):
    tracer = tracer_class()
    graph = tracer.trace(module, concrete_args=concrete_args)
    return lib.GraphModule(tracer.root, graph)


# Not resnet_block: BatchNorm's forward checks ``input.dim()`` in Python, which
# torch.fx cannot trace through either.
INLINE_ALL_CASES = (
    "user_submodules",
    "conv2d_leaf",
    "layernorm_leaf",
    "embedding_leaf",
    "hand_written_attention",
)


@pytest.mark.parametrize("name", INLINE_ALL_CASES)
def test_is_leaf_module_false_traces_into_torch_nn(subject, name):
    """With no leaves, torch.nn modules are traced through to F.* calls, as in torch.fx."""
    case = next(case for case in CASES if case.name == name)

    def no_leaves(lib):
        class NoLeaves(lib.Tracer):
            def is_leaf_module(self, m, module_qualified_name):
                return False

        return NoLeaves

    gm = traced_with(subject, no_leaves(subject), build_module(case))
    reference = traced_with(ORACLE, no_leaves(ORACLE), build_module(case))
    assert not [n for n in gm.graph.nodes if n.op == "call_module"]
    assert call_targets(gm) == call_targets(reference), f"\n{gm.code}\ntorch.fx:\n{reference.code}"
    inputs = fresh_inputs(case)
    assert_same_result(run(gm, inputs)[0], run(build_module(case), inputs)[0])


def test_call_module_override_can_inline_chosen_modules(subject):
    """A call_module override that runs ReLU's forward inline instead of recording it."""

    def inlining(lib):
        class InlineReLU(lib.Tracer):
            def call_module(self, m, forward, args, kwargs):
                if isinstance(m, nn.ReLU):
                    return forward(*args, **kwargs)
                return super().call_module(m, forward, args, kwargs)

        return InlineReLU

    gm = traced_with(subject, inlining(subject), ResNetBlock().eval())
    reference = traced_with(ORACLE, inlining(ORACLE), ResNetBlock().eval())
    assert call_targets(gm) == call_targets(reference)
    assert ("call_function", F.relu) in call_targets(gm)
    assert not any(n.op == "call_module" and n.target == "relu" for n in gm.graph.nodes)


def test_create_node_override_can_tag_every_node(subject):
    def tagging(lib):
        class Tagging(lib.Tracer):
            def create_node(self, kind, target, args, kwargs, *rest, **options):
                node = super().create_node(kind, target, args, kwargs, *rest, **options)
                node.meta["tag"] = f"{kind}:{node.name}"
                return node

        return Tagging

    case = next(case for case in CASES if case.name == "user_submodules")
    gm = traced_with(subject, tagging(subject), build_module(case))
    assert all(node.meta["tag"] == f"{node.op}:{node.name}" for node in gm.graph.nodes)
    reference = traced_with(ORACLE, tagging(ORACLE), build_module(case))
    assert [n.meta["tag"].split(":")[0] for n in gm.graph.nodes] == [
        n.meta["tag"].split(":")[0] for n in reference.graph.nodes
    ]


class Scale:
    """A custom object only a create_arg override knows how to record."""

    def __init__(self, factor: float) -> None:
        self.factor = factor


class UsesScale(nn.Module):
    def forward(self, x):
        return x * Scale(2.0) + x.new_tensor([Scale(1.0), 3.0]) + x.add(Scale(0.5))


def test_create_arg_override_records_custom_objects(subject):
    """create_arg is consulted for every argument, including ones nested in lists."""

    def unwrapping(lib):
        class UnwrapScale(lib.Tracer):
            def create_arg(self, a):
                if isinstance(a, Scale):
                    return a.factor
                return super().create_arg(a)

        return UnwrapScale

    gm = traced_with(subject, unwrapping(subject), UsesScale())
    reference = traced_with(ORACLE, unwrapping(ORACLE), UsesScale())
    assert call_targets(gm) == call_targets(reference)
    x = torch.randn(2)
    torch.testing.assert_close(gm(x), x * 2.0 + torch.tensor([1.0, 3.0]) + (x + 0.5))
    with pytest.raises(Exception, match="Scale"):  # the base class refuses the object
        subject.symbolic_trace(UsesScale())


def test_getattr_override_can_keep_parameters_as_constants(subject):
    """Returning the raw tensor from getattr turns parameter reads into constants."""

    def constant_params(lib):
        class ConstantParams(lib.Tracer):
            def getattr(self, attr, attr_val, parameter_proxy_cache):
                return attr_val

        return ConstantParams

    module = nn.Sequential(nn.Linear(3, 3)).eval()
    gm = traced_with(subject, constant_params(subject), module)
    reference = traced_with(ORACLE, constant_params(ORACLE), module)
    ops = sorted(n.op for n in gm.graph.nodes)
    assert ops == sorted(n.op for n in reference.graph.nodes)
    x = torch.randn(2, 3)
    torch.testing.assert_close(gm(x), module(x))


def test_create_proxy_override_sees_every_recorded_op(subject):
    def counting(lib):
        class Counting(lib.Tracer):
            seen: list

            def create_proxy(self, kind, target, args, kwargs, *rest, **options):
                self.seen.append(kind)
                return super().create_proxy(kind, target, args, kwargs, *rest, **options)

        return Counting

    case = next(case for case in CASES if case.name == "tensor_indexing_and_attributes")
    seen = []  # tensor constants become get_attr nodes without a Proxy: create_node only
    for lib in (subject, ORACLE):
        tracer_class = counting(lib)
        tracer_class.seen = []
        gm = traced_with(lib, tracer_class, build_module(case))
        assert set(tracer_class.seen) <= {n.op for n in gm.graph.nodes}
        seen.append(tracer_class.seen)
    assert seen[0] == seen[1]


# --- roots and arguments ---------------------------------------------------------


def free_function(x, y, scale=2.0):
    return torch.relu(x) * scale + y.sum(-1, keepdim=True)


def test_tracing_a_plain_function(subject):
    gm = subject.symbolic_trace(free_function)
    reference = ORACLE.symbolic_trace(free_function)
    assert call_targets(gm) == call_targets(reference)
    assert [n.op for n in gm.graph.nodes] == [n.op for n in reference.graph.nodes]
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(gm(x, y), free_function(x, y))
    torch.testing.assert_close(gm(x, y, 3.0), free_function(x, y, 3.0))


def dict_input(inputs, flag):
    return inputs["a"] * inputs["b"] if flag else inputs["a"]


def test_concrete_args_with_PH_flatten_structured_inputs(subject):
    """``PH`` marks the leaves of a structured input that stay symbolic: one
    placeholder per leaf (``inputs_1``, ``inputs_2``), as torch.fx makes them,
    while the generated forward still takes the structured input."""
    concrete = {"inputs": {"a": subject.PH, "b": subject.PH}, "flag": True}
    gm = subject.symbolic_trace(dict_input, concrete_args=concrete)
    reference = ORACLE.symbolic_trace(
        dict_input,
        concrete_args={"inputs": {"a": ORACLE.module.PH, "b": ORACLE.module.PH}, "flag": True},
    )
    a, b = torch.randn(3), torch.randn(3)
    torch.testing.assert_close(gm({"a": a, "b": b}, True), a * b)
    torch.testing.assert_close(reference({"a": a, "b": b}, True), a * b)
    if IS_ORACLE:
        return
    placeholders = [n.target for n in gm.graph.nodes if n.op == "placeholder"]
    expected = [n.target for n in reference.graph.nodes if n.op == "placeholder"]
    # The concrete flag keeps its name (torch.fx: ``flag_1``): it stays an
    # input that defaults to the traced value (README, deliberate differences).
    assert placeholders[:2] == expected[:2] == ["inputs_1", "inputs_2"]


def make_tensor_pair(metaclass):
    """A user class whose construction is recorded, built with ``lib.ProxyableClassMeta``."""

    class TensorPair(metaclass=metaclass):
        def __init__(self, left, right):
            self.left, self.right = left, right

        def add(self, other):
            return TensorPair(self.left + other.left, self.right + other.right)

    return TensorPair


def test_proxyable_class_meta_records_construction(subject):
    def traced(lib):
        pair_class = make_tensor_pair(lib.ProxyableClassMeta)

        def uses_tensor_pair(x, y):
            pair = pair_class(x, y)
            return pair.add(pair).left * 2

        return lib.symbolic_trace(uses_tensor_pair)

    gm, reference = traced(subject), traced(ORACLE)

    def shape_of(g):
        return [
            (n.op, n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "?"))
            for n in g.graph.nodes
        ]

    assert shape_of(gm) == shape_of(reference)
    x, y = torch.randn(2), torch.randn(2)
    torch.testing.assert_close(gm(x, y), (x + x) * 2)


def data_dependent_helper(x):
    return x * 2 if x.sum() > 0 else -x


def calls_helper(x):
    return data_dependent_helper(x) + 1


def test_autowrap_functions_records_a_helper_as_one_call(subject):
    tracer = subject.Tracer(autowrap_functions=(data_dependent_helper,))
    graph = tracer.trace(calls_helper)
    gm = subject.GraphModule(tracer.root, graph)
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    assert targets == [data_dependent_helper, operator.add]
    for x in (torch.ones(2), -torch.ones(2)):
        torch.testing.assert_close(gm(x), calls_helper(x))


class UsesWeightShape(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 3))

    def forward(self, x):
        return x.reshape(-1, self.weight.shape[1]) @ self.weight.T


def shape_reads(lib, param_shapes_constant: bool) -> int:
    """How many ``getattr(_, "shape")`` nodes tracing UsesWeightShape records."""
    module = UsesWeightShape()
    tracer = lib.Tracer(param_shapes_constant=param_shapes_constant)
    graph = tracer.trace(module)
    gm = lib.GraphModule(tracer.root, graph)
    x = torch.randn(2, 3)
    torch.testing.assert_close(gm(x), module(x))
    return sum(
        n.op == "call_function" and n.target is getattr and n.args[1] == "shape"
        for n in graph.nodes
    )


def test_param_shapes_constant_reads_parameter_shapes_as_ints(subject):
    assert (shape_reads(ORACLE, False), shape_reads(ORACLE, True)) == (1, 0)  # non-vacuous
    assert shape_reads(subject, False) == 1
    assert shape_reads(subject, True) == 0


def calls_module_helper(x):
    return autowrapped_helpers.soft_clip(x * 4, 1.0) + 1


def test_autowrap_modules_records_every_function_of_a_module(subject):
    original = autowrapped_helpers.soft_clip
    for lib in (ORACLE, subject):
        tracer = lib.Tracer(autowrap_modules=(math, autowrapped_helpers))
        graph = tracer.trace(calls_module_helper)
        gm = lib.GraphModule(tracer.root, graph)
        targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
        assert original in targets, lib
        x = torch.randn(3)
        torch.testing.assert_close(gm(x), calls_module_helper(x))
    assert autowrapped_helpers.soft_clip is original  # the patch was undone


def scale_and_shift(x, cfg):
    return x * cfg["scale"] + cfg["shift"]


def test_structured_concrete_values_are_checked_at_run_time(subject):
    """A dict in concrete_args is specialized leaf by leaf; torch.fx asserts every
    leaf when the GraphModule runs, so a different value fails loudly."""
    config = {"scale": 2.0, "shift": 1.0}
    x = torch.randn(3)
    for lib in (ORACLE, subject):
        gm = lib.symbolic_trace(scale_and_shift, concrete_args={"cfg": dict(config)})
        torch.testing.assert_close(gm(x, dict(config)), scale_and_shift(x, config))
        with pytest.raises(AssertionError, match="cfg"):
            gm(x, {"scale": 5.0, "shift": 1.0})
