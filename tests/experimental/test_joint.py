"""Joint forward-backward export (issue 19), checked against eager autograd.

Every case runs the joint program's ``module()`` on two inputs other than the
export example and compares the loss, every gradient and every buffer with
eager ``loss.backward()`` on a copy of the model. torch's own
``_export_forward_backward`` is the oracle for the signature (kinds, order,
targets) where it succeeds.
"""

from __future__ import annotations

import copy
import inspect
import io
from typing import Any

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import JointExportError
from graphlift.experimental import export_forward_backward
from tests.zoo.models import get_case

from .models import (
    CASES,
    JointCase,
    LinearCrossEntropy,
    LlamaWithLabels,
    Regression,
    build,
    llama_inputs,
)

Kind = gl.OutputKind
GRADIENTS = (Kind.GRADIENT_TO_PARAMETER, Kind.GRADIENT_TO_USER_INPUT)


def eager_step(model: nn.Module, inputs: tuple[Any, ...], loss_index: int) -> dict[str, Any]:
    """Loss, outputs, gradients (zeros where autograd gives None) and buffers after
    one eager forward and backward; ``model`` keeps its new buffers."""
    model.zero_grad(set_to_none=True)
    outputs = model(*inputs)
    flat = outputs if isinstance(outputs, tuple) else (outputs,)
    flat[loss_index].backward()
    grads = {
        name: torch.zeros_like(p) if p.grad is None else p.grad
        for name, p in model.named_parameters()
    }
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return {"outputs": [o.detach() for o in flat], "grads": grads, "buffers": buffers}


def joint_step(module: nn.Module, inputs: tuple[Any, ...]) -> dict[str, Any]:
    """One call of a joint program's module, under no_grad as a training step runs it."""
    with torch.no_grad():
        outputs, grads = module(*inputs)
    flat = outputs if isinstance(outputs, tuple) else (outputs,)
    buffers = {name: b.clone() for name, b in module.named_buffers()}
    return {"outputs": list(flat), "grads": grads, "buffers": buffers}


def assert_same_step(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert len(got["outputs"]) == len(expected["outputs"])
    for mine, theirs in zip(got["outputs"], expected["outputs"]):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    assert got["grads"].keys() == expected["grads"].keys()
    for name, grad in expected["grads"].items():
        torch.testing.assert_close(got["grads"][name], grad, rtol=1e-4, atol=1e-5, msg=name)
    for name, buffer in expected["buffers"].items():
        torch.testing.assert_close(got["buffers"][name], buffer, msg=name)


def export_joint(case: JointCase) -> tuple[nn.Module, gl.ExportedProgram]:
    model = build(case)
    program = gl.export(copy.deepcopy(model), case.make_inputs(0))
    return model, export_forward_backward(program, joint_loss_index=case.loss_index)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_loss_and_gradients_equal_eager_on_two_inputs(case: JointCase) -> None:
    model, joint = export_joint(case)
    module = joint.module()
    for seed in (1, 2):
        inputs = case.make_inputs(seed)
        assert_same_step(joint_step(module, inputs), eager_step(model, inputs, case.loss_index))


def _signature(program: Any) -> list[tuple[str, Any]]:
    return [(spec.kind.name, spec.target) for spec in program.graph_signature.output_specs]


# Where torch 2.13's _export_forward_backward fails, and how (graphlift exports these).
TORCH_FAILS = {
    "tied_embeddings": "did not receive a gradient",
    "unused_parameter": "did not receive a gradient",
    "loss_at_index_1": "not the scalar loss",
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_signature_matches_torch_joint_export(case: JointCase) -> None:
    from torch.export.experimental import _export_forward_backward

    model, joint = export_joint(case)
    torch_program = torch.export.export(copy.deepcopy(model), case.make_inputs(0))
    if case.name in TORCH_FAILS:
        with pytest.raises(Exception, match=TORCH_FAILS[case.name]):
            _export_forward_backward(torch_program, joint_loss_index=case.loss_index)
        return
    expected = _export_forward_backward(torch_program, joint_loss_index=case.loss_index)
    assert _signature(joint) == _signature(expected)


def test_tied_weights_get_one_gradient_under_the_canonical_name() -> None:
    case = next(c for c in CASES if c.name == "tied_embeddings")
    _, joint = export_joint(case)
    targets = [s.target for s in joint.graph_signature.output_specs if s.kind in GRADIENTS]
    assert targets == ["embed.weight", "hidden.weight", "hidden.bias"]


def test_unused_parameter_gets_a_zero_gradient() -> None:
    case = next(c for c in CASES if c.name == "unused_parameter")
    _, joint = export_joint(case)
    _, grads = joint.module()(*case.make_inputs(1))
    assert torch.count_nonzero(grads["idle_expert.weight"]) == 0
    assert grads["idle_expert.bias"].shape == (3,)


def test_batch_norm_in_training_returns_buffer_mutations_first() -> None:
    case = next(c for c in CASES if c.name == "train_batch_norm")
    _, joint = export_joint(case)
    kinds = [kind for kind, _ in _signature(joint)]
    assert kinds[:4] == ["BUFFER_MUTATION"] * 3 + ["LOSS_OUTPUT"]
    assert kinds[4:] == ["GRADIENT_TO_PARAMETER"] * 6


@pytest.mark.parametrize(
    ("make_model", "make_target"),
    [
        (Regression, lambda n: torch.randn(n, 2)),
        (LinearCrossEntropy, lambda n: torch.randint(0, 3, (n,))),
    ],
    ids=["mean_squared", "cross_entropy"],
)
def test_dynamic_batch_gradients_reduce_over_the_symbolic_dim(
    make_model: Any, make_target: Any
) -> None:
    model = make_model()
    batch = gl.Dim("batch", min=2, max=64)
    names = list(inspect.signature(model.forward).parameters)
    spec = {names[0]: {0: batch}, names[1]: {0: batch}}
    example = (torch.randn(5, 4), make_target(5))
    program = gl.export(copy.deepcopy(model), example, dynamic_shapes=spec)
    joint = export_forward_backward(program)
    assert [str(s) for s in joint.range_constraints] == ["s0"]
    for module in (joint.module(), joint.run_decompositions().module()):
        for size in (3, 17):
            inputs = (torch.randn(size, 4), make_target(size))
            assert_same_step(joint_step(module, inputs), eager_step(model, inputs, 0))
        with pytest.raises(gl.errors.InputMismatchError):
            module(torch.randn(65, 4), make_target(65))


def test_gradient_to_user_input_that_requires_grad() -> None:
    model = LinearCrossEntropy()
    x, labels = torch.randn(5, 4, requires_grad=True), torch.randint(0, 3, (5,))
    joint = export_forward_backward(gl.export(copy.deepcopy(model), (x, labels)))
    last = joint.graph_signature.output_specs[-1]
    assert (last.kind, last.target, last.arg.name) == (Kind.GRADIENT_TO_USER_INPUT, "x", "grad_x")
    x2 = torch.randn(5, 4, requires_grad=True)
    _, grads = joint.module()(x2, labels)
    model(x2, labels).backward()
    torch.testing.assert_close(grads["x"], x2.grad)


def test_frozen_parameters_get_no_gradient() -> None:
    model = LinearCrossEntropy()
    model.fc.bias.requires_grad_(False)
    joint = export_forward_backward(
        gl.export(model, (torch.randn(5, 4), torch.randint(0, 3, (5,))))
    )
    assert joint.backward_signature is not None
    assert list(joint.backward_signature.gradients_to_parameters.values()) == ["fc.weight"]


def test_backward_nodes_point_at_the_forward_line_and_no_detach_remains() -> None:
    case = CASES[0]
    _, joint = export_joint(case)
    backward = [n for n in joint.graph.nodes if n.meta.get("autograd_backward")]
    assert len(backward) > 5
    for node in backward:
        assert "return F.cross_entropy(self.fc(x), labels)" in node.meta["stack_trace"], node
    targets = {n.target for n in joint.graph.nodes}
    assert torch.ops.aten.detach.default not in targets
    assert torch.ops.aten.alias.default not in targets
    gradients = [s.arg.name for s in joint.graph_signature.output_specs if s.kind in GRADIENTS]
    assert gradients == ["grad_fc_weight", "grad_fc_bias"]


def test_source_program_is_unchanged() -> None:
    case = next(c for c in CASES if c.name == "train_batch_norm")
    program = gl.export(build(case), case.make_inputs(0))
    before = str(program)
    export_forward_backward(program)
    assert str(program) == before
    assert program.backward_signature is None


def test_decompose_save_load_and_fx_keep_the_joint_program() -> None:
    case = next(c for c in CASES if c.name == "train_batch_norm")
    model, joint = export_joint(case)
    archive = io.BytesIO()
    gl.save(joint, archive)

    def fresh() -> gl.ExportedProgram:  # programs share state with their source: one each
        return gl.load(io.BytesIO(archive.getvalue()))

    core = fresh().run_decompositions()
    assert _signature(core) == _signature(joint)
    assert core.backward_signature == fresh().run_decompositions().backward_signature
    assert torch.ops.aten.native_batch_norm_backward.default not in {
        n.target for n in core.graph.nodes
    }
    decomposed_archive = io.BytesIO()
    gl.save(core, decomposed_archive)
    loaded_core = gl.load(io.BytesIO(decomposed_archive.getvalue()))
    assert _signature(loaded_core) == _signature(joint)
    inputs = case.make_inputs(1)
    expected = eager_step(copy.deepcopy(model), inputs, 0)
    modules = [fresh().module(), core.module(), loaded_core.module(), gl.interop.to_fx(fresh())]
    for module in modules:
        assert_same_step(joint_step(module, inputs), expected)


@pytest.mark.parametrize(
    ("make_model", "index", "message"),
    [
        (lambda: nn.Linear(4, 3), 0, "user output 0 .* is not a scalar floating-point loss"),
        (LinearCrossEntropy, 1, "joint_loss_index=1, but the program has 1 user output"),
    ],
)
def test_a_bad_loss_is_a_typed_error(make_model: Any, index: int, message: str) -> None:
    model = make_model()
    inputs = (
        (torch.randn(5, 4),)
        if isinstance(model, nn.Linear)
        else (torch.randn(5, 4), torch.randint(0, 3, (5,)))
    )
    program = gl.export(model, inputs)
    with pytest.raises(JointExportError, match=message) as error:
        export_forward_backward(program, joint_loss_index=index)
    assert isinstance(error.value, RuntimeError)
    if index == 0:  # the error names the line that computed the output
        assert "linear.py" in str(error.value.where)


def test_a_loss_without_trainable_inputs_is_a_typed_error() -> None:
    model = LinearCrossEntropy().requires_grad_(False)
    program = gl.export(model, (torch.randn(5, 4), torch.randint(0, 3, (5,))))
    with pytest.raises(JointExportError, match="does not depend on any trainable"):
        export_forward_backward(program)


def test_torch_name_is_an_alias() -> None:
    assert gl.experimental._export_forward_backward is export_forward_backward


@pytest.mark.slow
def test_llama_with_labels_equals_eager_where_torch_refuses() -> None:
    from torch.export.experimental import _export_forward_backward

    torch.manual_seed(0)
    model = LlamaWithLabels().train()
    program = gl.export(copy.deepcopy(model), llama_inputs(0))
    joint = export_forward_backward(program)  # loss is output 0; logits (output 1) require grad
    # attention is differentiated through its math kernel (a boolean causal mask made
    # additive), so the joint program decomposes to core ATen
    modules = [joint.module(), joint.run_decompositions().module()]
    for seed in (1, 2):
        inputs = llama_inputs(seed)
        expected = eager_step(model, inputs, 0)
        for module in modules:
            assert_same_step(joint_step(module, inputs), expected)
    torch_program = torch.export.export(copy.deepcopy(model), llama_inputs(0))
    with pytest.raises(RuntimeError, match="not the scalar loss"):
        _export_forward_backward(torch_program)


def test_custom_function_backward_survives_save_load_and_decomposition() -> None:
    """torch 2.13's joint export differentiates the forward's ``round`` (zero
    gradients); the Function's own backward is used here, also after load."""
    case = next(c for c in CASES if c.name == "custom_autograd_function")
    model = build(case)
    program = gl.export(copy.deepcopy(model), case.make_inputs(0))
    archive = io.BytesIO()
    gl.save(program, archive)
    loaded = gl.load(io.BytesIO(archive.getvalue()))
    inputs = case.make_inputs(1)
    expected = eager_step(model, inputs, 0)
    assert torch.count_nonzero(expected["grads"]["fc.weight"]) > 0
    for source in (loaded, program.run_decompositions()):
        joint = export_forward_backward(source)
        assert_same_step(joint_step(joint.module(), inputs), expected)


class Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        return torch.cond(y.sum() > 0, lambda t: t.sum(), lambda t: -t.sum(), (y,))


def test_control_flow_is_refused_not_differentiated_wrongly() -> None:
    program = gl.export(Branching(), (torch.randn(3, 4),))
    with pytest.raises(JointExportError, match="control flow"):
        export_forward_backward(program)


class CountingCalls(nn.Module):
    """Updates a user input in place (a step counter) besides computing a loss."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, calls: torch.Tensor) -> torch.Tensor:
        calls.add_(1)
        return self.fc(x).pow(2).mean()


def test_user_input_mutation_comes_first_and_is_written_back() -> None:
    model = CountingCalls()
    program = gl.export(copy.deepcopy(model), (torch.randn(3, 4), torch.zeros(())))
    joint = export_forward_backward(program)
    kinds = [kind for kind, _ in _signature(joint)]
    assert kinds == ["USER_INPUT_MUTATION", "LOSS_OUTPUT", *["GRADIENT_TO_PARAMETER"] * 2]
    calls, x = torch.zeros(()), torch.randn(3, 4)
    got = joint_step(joint.module(), (x, calls))
    assert calls.item() == 1
    assert_same_step(got, eager_step(model, (x, torch.zeros(())), 0))


class SquaredOutputs(nn.Module):
    """A loss over every float output of a zoo model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any) -> torch.Tensor:
        outputs = torch.utils._pytree.tree_leaves(self.model(*args))
        return sum(o.pow(2).mean() for o in outputs if o.is_floating_point())  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["nn_lstm", "nn_gru"])
def test_recurrent_layers_equal_eager(name: str) -> None:
    """LSTM: with mkldnn on, its layer returns the workspace its backward needs only
    under grad mode, so the joint program failed under no_grad; the joint export
    runs the portable kernels, as run_decompositions does. GRU (bidirectional):
    its C++ kernel calls ``transpose_``; it is differentiated through torch's
    Python decomposition instead."""
    case = get_case(name)
    model = SquaredOutputs(case.make_model()).train()
    args, _ = case.make_inputs()
    joint = export_forward_backward(gl.export(copy.deepcopy(model), args))
    other = (torch.randn_like(args[0]),)
    assert_same_step(joint_step(joint.module(), other), eager_step(model, other, 0))


def test_a_builtin_named_input_keeps_its_name_in_the_joint_program() -> None:
    """Every nn module's forward takes ``input``; torch names the joint's input so too."""
    from torch.export.experimental import _export_forward_backward

    class Loss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, input):
            return (self.linear(input).sum(),)

    model, x = Loss(), torch.randn(2, 3)
    joint = export_forward_backward(gl.export(model, (x,)))
    expected = _export_forward_backward(torch.export.export(model, (x,)))
    assert joint.graph_signature.user_inputs == expected.graph_signature.user_inputs == ("input",)
    (loss,), grads = joint.module()(x)
    torch.testing.assert_close(loss, model(x)[0])
    model(x)[0].backward()
    torch.testing.assert_close(grads["linear.weight"], model.linear.weight.grad)
