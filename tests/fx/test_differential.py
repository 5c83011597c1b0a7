"""Every corpus case traced by the library under test and by torch.fx, compared.

For each case: the traced GraphModule computes what eager PyTorch computes on
fresh inputs (same outputs, same input mutations, same buffer updates, also when
called by keyword, interpreted, identity-transformed, deep-copied, pickled or
traced again); its graph has the shape of torch.fx's (call-node count, op
multiset, call targets, placeholder types and defaults, state_dict keys,
ShapeProp metadata node by node); it lints and prints deterministically; and
tracing leaves the user's module exactly as it was.

``+=`` is recorded as ``operator.iadd`` by graphlift and ``operator.add`` by
torch.fx on purpose; comparisons normalize in-place operators (corpus.py).
"""

from __future__ import annotations

import copy
import inspect
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from .corpus import CASES
from .harness import (
    CALL_OPS,
    FRESH_INPUT_SEED,
    RUN_SEED,
    assert_same_result,
    build_module,
    call_targets,
    fresh_inputs,
    plain_containers,
    run,
    trace,
)
from .subject import IS_ORACLE, ORACLE


def torch_fx_cannot_pickle(gm) -> bool:
    """torch.fx 2.13 defects, pinned in test_fx_defects.py: unpickling a graph with
    ``_assert_is_none`` registers a bogus ``wrap`` that breaks every later trace, and a
    string annotation (``from __future__ import annotations``) fails to pickle."""
    return any(
        getattr(node.target, "__name__", "") == "_assert_is_none" or isinstance(node.type, str)
        for node in gm.graph.nodes
    )


def sharing(module: nn.Module) -> list[list[str]]:
    """Names of parameters and buffers grouped by the tensor they are."""
    groups: dict[int, list[str]] = {}
    for name, tensor in [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]:
        groups.setdefault(id(tensor), []).append(name)
    return sorted(groups.values())


def node_summary(gm) -> list[tuple[str, str, str]]:
    return [(node.op, node.name, str(node.target)) for node in gm.graph.nodes]


def snapshot(module: nn.Module) -> dict:
    """Everything tracing must leave alone: tensors, flags, attribute names, classes."""
    return {
        "tensors": {
            name: tensor.detach().clone()
            for name, tensor in [
                *module.named_parameters(remove_duplicate=False),
                *module.named_buffers(remove_duplicate=False),
            ]
        },
        "identity": {
            name: id(tensor)
            for name, tensor in [
                *module.named_parameters(remove_duplicate=False),
                *module.named_buffers(remove_duplicate=False),
            ]
        },
        "training": {name: m.training for name, m in module.named_modules()},
        "classes": {name: type(m) for name, m in module.named_modules()},
        "attributes": {
            name: (sorted(vars(m)), sorted(m._parameters), sorted(m._buffers), sorted(m._modules))
            for name, m in module.named_modules()
        },
    }


cases = pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])


@cases
def test_torch_fx_oracle_matches_eager(case):
    """Validates the case itself: torch.fx traces it and matches eager."""
    if IS_ORACLE:
        pytest.skip("same as test_traced_module_matches_eager_on_fresh_inputs in oracle mode")
    expected, expected_inputs = run(build_module(case), fresh_inputs(case))
    actual, actual_inputs = run(trace(ORACLE, case, build_module(case)), fresh_inputs(case))
    assert_same_result(actual, expected)
    assert_same_result(actual_inputs, expected_inputs)


@cases
def test_traced_module_matches_eager_on_fresh_inputs(subject, case):
    module, eager = build_module(case), build_module(case)
    gm = trace(subject, case, module)
    for seed in (FRESH_INPUT_SEED, FRESH_INPUT_SEED + 1):
        inputs = fresh_inputs(case, seed)
        expected, expected_inputs = run(eager, inputs)
        actual, actual_inputs = run(gm, inputs)
        assert_same_result(actual, expected)
        assert_same_result(actual_inputs, expected_inputs)  # same input mutations, if any
    # running the graph updates the traced module's buffers as eager updates its own
    torch.testing.assert_close(dict(module.state_dict()), dict(eager.state_dict()))


@cases
def test_graph_module_shares_parameters_and_buffers_with_the_module(subject, case):
    """As in torch.fx, the GraphModule holds the module's own tensors, not copies:
    an optimizer over ``module.parameters()`` trains the GraphModule too."""
    module = build_module(case)
    gm = trace(subject, case, module)
    originals = dict(module.named_parameters()) | dict(module.named_buffers())
    for name, tensor in [*gm.named_parameters(), *gm.named_buffers()]:
        if name in originals:
            assert tensor is originals[name], name


def differentiable_loss(output) -> torch.Tensor | None:
    """Sum of every floating-point tensor in ``output`` that carries a gradient."""
    tensors = [
        t
        for t in tree_leaves(output)
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad
    ]
    return sum(t.float().sum() for t in tensors) if tensors else None


def with_grad(inputs):
    """A copy of ``inputs`` whose floating-point tensors require grad."""
    inputs = copy.deepcopy(inputs)
    for leaf in tree_leaves(inputs):
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
            leaf.requires_grad_()
    return inputs


def input_grads(inputs) -> list:
    return [t.grad for t in tree_leaves(inputs) if isinstance(t, torch.Tensor)]


@cases
def test_gradients_match_eager(subject, case):
    """Backpropagating through the traced graph gives eager's gradients, for the
    parameters and for the inputs."""
    module, eager = build_module(case), build_module(case)
    gm = trace(subject, case, module)
    inputs = fresh_inputs(case)
    expected_inputs, actual_inputs = with_grad(inputs), with_grad(inputs)
    torch.manual_seed(RUN_SEED)
    expected = differentiable_loss(eager(*expected_inputs))
    if expected is None:
        pytest.skip("no differentiable output")
    torch.manual_seed(RUN_SEED)
    actual = differentiable_loss(gm(*actual_inputs))
    torch.testing.assert_close(actual, expected)
    try:
        expected.backward()
    except RuntimeError as error:  # e.g. no derivative for floor_divide: same in the graph
        with pytest.raises(RuntimeError, match="derivative"):
            actual.backward()
        assert "derivative" in str(error)
        return
    actual.backward()
    expected_grads = {n: p.grad for n, p in eager.named_parameters()}
    actual_grads = {n: p.grad for n, p in module.named_parameters()}
    torch.testing.assert_close(actual_grads, expected_grads, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(
        input_grads(actual_inputs), input_grads(expected_inputs), rtol=1e-4, atol=1e-5
    )


@cases
def test_graph_module_takes_the_training_flag_of_the_root(subject, case):
    module = build_module(case)
    gm = trace(subject, case, module)
    assert gm.training == module.training


@cases
def test_placeholder_types_and_defaults_match_torch_fx(subject, case):
    """Placeholder ``type`` (from annotations) and default value (``args``) are
    torch.fx's; a concrete argument's default is the traced value in graphlift
    (README), so only its type is compared."""
    gm = trace(subject, case, build_module(case))
    reference = trace(ORACLE, case, build_module(case))
    concrete = case.concrete_args or {}

    def placeholders(g):
        return [
            (n.type,) if str(n.target).removesuffix("_1") in concrete else (n.type, tuple(n.args))
            for n in g.graph.nodes
            if n.op == "placeholder"
        ]

    assert placeholders(gm) == placeholders(reference)


@cases
def test_forward_signature_matches_torch_fx(subject, case):
    """Names, kinds and defaults of ``gm.forward``'s parameters are torch.fx's.

    Concrete arguments are compared by kind only: torch.fx renames them (``flag`` ->
    ``flag_1``) and keeps the user's default, while graphlift keeps the name and
    defaults them to the traced value (README: deliberate differences; checked in
    test_fx_defects.py).
    """
    concrete = case.concrete_args or {}

    def signature(gm):
        described = []
        for p in inspect.signature(gm.forward).parameters.values():
            name = p.name.removesuffix("_1") if p.name.removesuffix("_1") in concrete else p.name
            described.append((name, p.kind) if name in concrete else (name, p.kind, p.default))
        return described

    gm = trace(subject, case, build_module(case))
    reference = trace(ORACLE, case, build_module(case))
    assert signature(gm) == signature(reference)


@cases
def test_graph_module_can_be_called_with_keywords(subject, case):
    """Placeholders keep the user's parameter names: ``gm(**kwargs)`` works like eager."""
    module = build_module(case)
    parameters = inspect.signature(module.forward).parameters.values()
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in parameters):
        pytest.skip("variadic signature")
    if IS_ORACLE and case.concrete_args:
        pytest.skip("torch.fx renames concrete placeholders (pinned in test_fx_defects.py)")
    gm = trace(subject, case, module)
    inputs = fresh_inputs(case)
    keywords = dict(zip([p.name for p in parameters], inputs))
    eager = build_module(case)
    with torch.no_grad():
        torch.manual_seed(RUN_SEED)
        expected = eager(**copy.deepcopy(keywords))
        torch.manual_seed(RUN_SEED)
        actual = gm(**copy.deepcopy(keywords))
    assert_same_result(actual, expected)


@cases
def test_same_state_dict_and_submodules_as_torch_fx(subject, case):
    """The GraphModule keeps what torch.fx keeps: same state_dict keys, same submodule
    paths (so checkpoints load into either)."""
    module = build_module(case)
    gm = trace(subject, case, module)
    reference = trace(ORACLE, case, build_module(case))
    non_persistent = {  # torch.fx makes these persistent (pinned in test_fx_defects.py)
        f"{prefix}.{name}".lstrip(".")
        for prefix, m in module.named_modules()
        for name in m._non_persistent_buffers_set
    }
    actual = set(gm.state_dict()) - (non_persistent if IS_ORACLE else set())
    assert sorted(actual) == sorted(set(reference.state_dict()) - non_persistent)
    assert sorted(name for name, _ in gm.named_modules()) == sorted(
        name for name, _ in reference.named_modules()
    )


@cases
def test_same_number_of_call_nodes_as_torch_fx(subject, case):
    gm = trace(subject, case, build_module(case))
    reference = trace(ORACLE, case, build_module(case))
    count = sum(node.op in CALL_OPS for node in gm.graph.nodes)
    expected = sum(node.op in CALL_OPS for node in reference.graph.nodes)
    assert count == expected, f"\n{gm.code}\ntorch.fx:\n{reference.code}"


@cases
def test_same_node_ops_as_torch_fx(subject, case):
    gm = trace(subject, case, build_module(case))
    reference = trace(ORACLE, case, build_module(case))
    ops = Counter(node.op for node in gm.graph.nodes)
    expected = Counter(node.op for node in reference.graph.nodes)
    assert ops == expected, f"\n{gm.code}\ntorch.fx:\n{reference.code}"


@cases
def test_same_call_targets_as_torch_fx(subject, case):
    """Same functions, methods and submodules are called (in-place operators normalized)."""
    gm = trace(subject, case, build_module(case))
    reference = trace(ORACLE, case, build_module(case))
    assert call_targets(gm) == call_targets(reference), f"\n{gm.code}\ntorch.fx:\n{reference.code}"


@cases
def test_tracing_twice_prints_the_same(subject, case):
    """Deterministic printing: the same module traced twice gives identical code and graph."""
    module = build_module(case)
    first = trace(subject, case, module)
    if IS_ORACLE:  # torch.fx left _tensor_constant0 on the module: the next is ...1
        module = build_module(case)
    second = trace(subject, case, module)
    assert first.code == second.code
    assert str(first.graph) == str(second.graph)


@cases
def test_graph_lints(subject, case):
    gm = trace(subject, case, build_module(case))
    gm.graph.lint()


@cases
def test_deepcopy_and_pickle_compute_the_same(subject, case):
    gm = trace(subject, case, build_module(case))
    inputs = fresh_inputs(case)
    clones = [copy.deepcopy(gm)]  # copied before any run: each starts from the same state
    if not (IS_ORACLE and torch_fx_cannot_pickle(gm)):
        clones.append(pickle.loads(pickle.dumps(gm)))
    expected, _ = run(gm, inputs)
    for clone in clones:
        assert clone is not gm
        assert node_summary(clone) == node_summary(gm)
        assert_same_result(run(clone, inputs)[0], expected)
        for (name, tensor), (_, original) in zip(
            clone.state_dict().items(), gm.state_dict().items(), strict=True
        ):
            assert tensor is not original, name
            torch.testing.assert_close(tensor, original)
        assert sharing(clone) == sharing(gm)  # tied weights stay tied


@cases
def test_tracing_does_not_modify_the_module(subject, case):
    module = build_module(case)
    before = snapshot(module)
    trace(subject, case, module)
    after = snapshot(module)
    if IS_ORACLE:  # torch.fx stores tensor constants on the user's root module
        names, *rest = after["attributes"][""]
        after["attributes"][""] = (
            [name for name in names if not name.startswith("_tensor_constant")],
            *rest,
        )
    for key in ("identity", "training", "classes", "attributes"):
        assert after[key] == before[key], key
    torch.testing.assert_close(after["tensors"], before["tensors"], rtol=0, atol=0)


@cases
def test_retracing_the_graph_module_keeps_its_meaning(subject, case):
    """Tracing generated code again (wrapped functions, leaves and all) is stable."""
    gm = trace(subject, case, build_module(case))
    if IS_ORACLE and torch_fx_cannot_pickle(gm):
        pytest.skip("torch.fx: retracing _assert_is_none poisons every later trace")
    again = trace(subject, case, gm, retrace=True)
    again.graph.lint()
    first = trace(ORACLE, case, build_module(case))
    if not torch_fx_cannot_pickle(first):  # same defect: re-running its code poisons fx
        reference = trace(ORACLE, case, first, retrace=True)
        assert call_targets(again) == call_targets(reference), (
            f"\n{again.code}\ntorch.fx:\n{reference.code}"
        )
    inputs = fresh_inputs(case)
    assert_same_result(run(again, inputs)[0], run(build_module(case), inputs)[0])


@cases
def test_interpreter_matches_eager(subject, case):
    gm = trace(subject, case, build_module(case))
    inputs = fresh_inputs(case)
    expected, _ = run(build_module(case), inputs)
    interpreted, _ = run(lambda *args: subject.Interpreter(gm).run(*args), inputs)
    assert_same_result(plain_containers(interpreted), expected)


@cases
def test_identity_transformer_matches_eager(subject, case):
    gm = trace(subject, case, build_module(case))
    inputs = fresh_inputs(case)
    expected, _ = run(build_module(case), inputs)
    transformed = subject.Transformer(gm).transform()
    transformed.graph.lint()
    assert_same_result(run(transformed, inputs)[0], expected)
    assert Counter(n.op for n in transformed.graph.nodes) == Counter(n.op for n in gm.graph.nodes)


@cases
def test_shape_prop_matches_torch_fx(subject, case):
    """ShapeProp records the same tensor_meta and type, node by node, as torch.fx's."""

    def shapes(lib, gm):
        inputs = fresh_inputs(case)
        torch.manual_seed(RUN_SEED)
        lib.ShapeProp(gm).propagate(*copy.deepcopy(inputs))  # grad on: requires_grad varies
        return [
            (node.op, _describe_meta(node.meta.get("tensor_meta")), node.meta.get("type"))
            for node in gm.graph.nodes
            if node.op != "output"
        ]

    gm = trace(subject, case, build_module(case))
    reference = trace(ORACLE, case, build_module(case))
    assert shapes(subject, gm) == shapes(ORACLE, reference)


def _describe_meta(meta):
    """A (possibly nested) tensor_meta as plain comparable data; non-tensor leaves as is."""
    if isinstance(meta, dict):
        return {key: _describe_meta(value) for key, value in meta.items()}
    if isinstance(meta, (list, tuple)) and not hasattr(meta, "shape"):
        return [_describe_meta(item) for item in meta]
    if not hasattr(meta, "shape"):
        return meta
    return (
        tuple(meta.shape),
        meta.dtype,
        meta.requires_grad,
        tuple(meta.stride),
        meta.memory_format,
        meta.is_quantized,
    )


FRESH_PROCESS_CASES = (
    "user_submodules",
    "wrapped_functions",
    "custom_leaf_module",
    "namedtuple_input_and_output",
    "tensor_constants",
    "math_on_shape",
)

LOAD_AND_COMPARE = """
import pickle, sys, torch
sys.path.insert(0, sys.argv[2])
with open(sys.argv[1], "rb") as f:
    payload = pickle.load(f)
for name, gm, inputs, expected in payload:
    torch.manual_seed(7)
    with torch.no_grad():
        torch.testing.assert_close(gm(*inputs), expected, rtol=1e-5, atol=1e-6)
print("loaded", len(payload))
"""


def test_pickle_loads_in_a_fresh_process(subject, tmp_path):
    """A pickled GraphModule is self-contained: another interpreter, with only the
    user's modules importable, loads it and computes the same."""
    payload = []
    for case in (c for c in CASES if c.name in FRESH_PROCESS_CASES):
        gm = trace(subject, case, build_module(case))
        inputs = fresh_inputs(case)
        payload.append((case.name, gm, inputs, run(gm, inputs)[0]))
    path = tmp_path / "graph_modules.pkl"
    path.write_bytes(pickle.dumps(payload))
    tests_dir = str(Path(__file__).resolve().parent.parent)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_AND_COMPARE, str(path), tests_dir],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"loaded {len(FRESH_PROCESS_CASES)}" in result.stdout
