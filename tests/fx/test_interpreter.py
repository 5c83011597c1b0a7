"""Interpreter and Transformer subclasses written for torch.fx work unchanged.

The idioms are the ones torch.fx documents: override an opcode method
(``call_function``, ``call_module``, ...) or ``run_node``; seed values with
``initial_env``; rewrite a graph by overriding Transformer methods. Each runs
on the library under test and on torch.fx, and the two must agree.
"""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F

from .corpus import CASES, DELIBERATE_TARGET_DIFFERENCES
from .harness import build_module, fresh_inputs, plain_containers, run, trace
from .subject import ORACLE

MODEL_CASES = [
    case
    for case in CASES
    if case.name in ("user_submodules", "functional_calls", "resnet_block", "in_place_ops")
]
models = pytest.mark.parametrize("case", MODEL_CASES, ids=[case.name for case in MODEL_CASES])


def swapping_interpreter(lib):
    """torch.fx's documented example: relu runs as sigmoid, add as sub."""

    class Swap(lib.Interpreter):
        def call_function(self, target, args, kwargs):
            target = {torch.relu: torch.sigmoid, F.relu: F.silu}.get(target, target)
            if DELIBERATE_TARGET_DIFFERENCES.get(target, target) is operator.add:
                target = operator.sub
            return super().call_function(target, args, kwargs)

        def call_method(self, target, args, kwargs):
            if target == "relu":
                target = "sigmoid"
            return super().call_method(target, args, kwargs)

        def call_module(self, target, args, kwargs):
            return super().call_module(target, args, kwargs) * 0.5

    return Swap


@models
def test_overriding_opcode_methods(subject, case):
    gm = trace(subject, case, build_module(case))
    reference = trace(ORACLE, case, build_module(case))
    inputs = fresh_inputs(case)
    actual, _ = run(lambda *a: swapping_interpreter(subject)(gm).run(*a), inputs)
    expected, _ = run(lambda *a: swapping_interpreter(ORACLE)(reference).run(*a), inputs)
    torch.testing.assert_close(plain_containers(actual), plain_containers(expected))
    untouched, _ = run(build_module(case), inputs)
    assert not torch.allclose(plain_containers(actual), untouched)  # the overrides did run


@models
def test_run_node_sees_every_node_in_order(subject, case):
    def recording(lib):
        class Recording(lib.Interpreter):
            def run_node(self, n):
                self.seen.append((n.op, n.name))
                return super().run_node(n)

        return Recording

    seen = []
    for lib in (subject, ORACLE):
        gm = trace(lib, case, build_module(case))
        interpreter = recording(lib)(gm)
        interpreter.seen = []
        run(interpreter.run, fresh_inputs(case))
        assert interpreter.seen == [(n.op, n.name) for n in gm.graph.nodes]
        seen.append([op for op, _ in interpreter.seen])
    assert seen[0] == seen[1]


def relu_then_matmul(x, y):
    a = x.relu()
    b = a * 2
    return b @ y


def test_initial_env_seeds_values(subject):
    gm = subject.symbolic_trace(relu_then_matmul)
    nodes = {n.name: n for n in gm.graph.nodes}
    x, y = torch.randn(3, 3), torch.randn(3, 3)
    seeded = torch.ones(3, 3)
    result = subject.Interpreter(gm).run(x, y, initial_env={nodes["relu"]: seeded})
    torch.testing.assert_close(result, (seeded * 2) @ y)


def test_errors_while_running_name_the_node(subject):
    """The original exception type is kept and the message says which node failed."""
    gm = subject.symbolic_trace(relu_then_matmul)
    with pytest.raises(RuntimeError, match=r"(?s)cannot be multiplied.*matmul"):
        subject.Interpreter(gm).run(torch.randn(2, 3), torch.randn(2, 3))


# --- Transformer -----------------------------------------------------------------


def rewriting_transformer(lib):
    """torch.fx's documented example: rewrite calls while copying the graph."""

    class Rewrite(lib.Transformer):
        def call_function(self, target, args, kwargs):
            if DELIBERATE_TARGET_DIFFERENCES.get(target, target) is operator.add:
                target = operator.sub
            return super().call_function(target, args, kwargs)

        def call_method(self, target, args, kwargs):
            if target == "relu":
                return super().call_function(torch.tanh, args, kwargs)
            return super().call_method(target, args, kwargs)

    return Rewrite


def nodes_of(gm):
    return [
        (
            n.op,
            n.target
            if isinstance(n.target, str)
            else DELIBERATE_TARGET_DIFFERENCES.get(n.target, n.target),
        )
        for n in gm.graph.nodes
    ]


@models
def test_transformer_rewrites_like_torch_fx(subject, case):
    gm = rewriting_transformer(subject)(trace(subject, case, build_module(case))).transform()
    reference = rewriting_transformer(ORACLE)(trace(ORACLE, case, build_module(case))).transform()
    gm.graph.lint()
    assert nodes_of(gm) == nodes_of(reference), f"\n{gm.code}\ntorch.fx:\n{reference.code}"
    inputs = fresh_inputs(case)
    torch.testing.assert_close(run(gm, inputs)[0], run(reference, inputs)[0])


def test_transformer_leaves_the_source_graph_alone(subject):
    case = MODEL_CASES[0]
    gm = trace(subject, case, build_module(case))
    before = [(n.op, n.name, n.target) for n in gm.graph.nodes]
    rewriting_transformer(subject)(gm).transform()
    assert [(n.op, n.name, n.target) for n in gm.graph.nodes] == before


def long_chain(x):
    for _ in range(30):
        x = torch.relu(x) + 1
    return x


def test_values_are_released_after_their_last_use(subject):
    """With the default ``garbage_collect_values=True`` the environment stays small
    on a long chain (torch.fx holds at most a couple of values at a time)."""

    def peak_env(lib, collect: bool) -> int:
        class Measuring(lib.Interpreter):
            peak = 0

            def run_node(self, n):
                result = super().run_node(n)
                Measuring.peak = max(Measuring.peak, len(self.env))
                return result

        gm = lib.symbolic_trace(long_chain)
        Measuring(gm, garbage_collect_values=collect).run(torch.randn(3))
        return Measuring.peak

    assert peak_env(subject, True) <= peak_env(ORACLE, True) < 5
    assert peak_env(subject, False) == peak_env(ORACLE, False) > 50
