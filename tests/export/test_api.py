"""export() on small modules: signature, pytree inputs and outputs, module()
checks, error paths, and that export never changes the user's module."""

from __future__ import annotations

import copy
import dataclasses
from collections import namedtuple

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import (
    DataDependentError,
    ExportError,
    InputMismatchError,
    InputStructureError,
)


class Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 4)
        self.register_buffer("offset", torch.arange(4.0))
        self.register_buffer("scratch", torch.zeros(4), persistent=False)
        self.table = torch.tensor([1.0, -1.0, 2.0, 0.5])  # plain tensor attribute: a constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x) + self.offset) * self.table + self.scratch


def kinds(ep: gl.ExportedProgram) -> list[tuple[str, str | None]]:
    return [(spec.kind.name, spec.target) for spec in ep.graph_signature.input_specs]


def test_signature_lists_state_then_constants_then_user_inputs() -> None:
    ep = gl.export(Small(), (torch.randn(2, 8),))
    assert kinds(ep) == [
        ("PARAMETER", "linear.weight"),
        ("PARAMETER", "linear.bias"),
        ("BUFFER", "offset"),
        ("BUFFER", "scratch"),
        ("CONSTANT_TENSOR", "table"),
        ("USER_INPUT", None),
    ]
    assert [n.name for n in ep.graph.nodes if n.op == "placeholder"] == [
        "p_linear_weight", "p_linear_bias", "b_offset", "b_scratch", "c_table", "x",
    ]  # fmt: skip
    assert set(ep.state_dict) == {"linear.weight", "linear.bias", "offset"}
    assert set(ep.constants) == {"scratch", "table"}  # non-persistent buffers are constants
    assert ep.graph_signature.non_persistent_buffers == ("scratch",)


def test_program_matches_torch_export_signature_and_ops() -> None:
    model, x = Small(), torch.randn(2, 8)
    ours = gl.export(model, (x,))
    theirs = torch.export.export(model, (x,))
    assert [k for k, _ in kinds(ours)] == [s.kind.name for s in theirs.graph_signature.input_specs]
    ops = lambda g: [str(n.target) for n in g.nodes if n.op == "call_function"]  # noqa: E731
    assert ops(ours.graph) == ops(theirs.graph)


def test_module_runs_like_eager_and_keeps_state_names() -> None:
    model, x = Small().eval(), torch.randn(2, 8)
    module = gl.export(model, (x,)).module()
    torch.testing.assert_close(module(x), model(x))
    assert set(module.state_dict()) == set(model.state_dict())


def test_every_node_has_a_value_a_source_line_and_a_module_stack() -> None:
    ep = gl.export(Small(), (torch.randn(2, 8),))
    for node in ep.graph.nodes:
        if node.op == "call_function":
            assert "val" in node.meta
            assert "test_api.py" in node.meta["stack_trace"]
    linear = next(n for n in ep.graph.nodes if n.name == "linear")
    assert linear.meta["nn_module_stack"] == {
        "linear": ("linear", "torch.nn.modules.linear.Linear")
    }
    assert "return torch.relu(self.linear(x)" in linear.meta["stack_trace"]


Pair = namedtuple("Pair", ["left", "right"])


@dataclasses.dataclass
class Batch:
    tokens: torch.Tensor
    weights: torch.Tensor


gl_pytree_registered = False


def register_batch() -> None:
    global gl_pytree_registered
    if not gl_pytree_registered:
        gl.register_dataclass(Batch)
        gl_pytree_registered = True


class Structured(nn.Module):
    def forward(self, pair, items, batch, *, scale=1.0, note=None):
        a = pair.left * scale + items[0]
        b = pair.right - items[1]["bias"]
        out = (batch.tokens.float() * batch.weights).sum()
        return {"pair": Pair(a, b), "total": out, "count": len(items)}


def structured_inputs(rows: int = 2):
    pair = Pair(torch.randn(rows, 3), torch.randn(rows, 3))
    items = [torch.randn(3), {"bias": torch.randn(3)}]
    batch = Batch(torch.randint(0, 5, (rows,)), torch.randn(rows))
    return (pair, items, batch), {"scale": 2.0, "note": "hi"}


def test_pytree_inputs_and_outputs() -> None:
    register_batch()
    args, kwargs = structured_inputs()
    model = Structured()
    ep = gl.export(model, args, kwargs)
    names = [n.name for n in ep.graph.nodes if n.op == "placeholder"]
    assert names == [
        "pair_left", "pair_right", "items_0", "items_1_bias", "batch_tokens", "batch_weights",
        "scale", "note",
    ]  # fmt: skip
    args2, kwargs2 = structured_inputs()
    expected, actual = model(*args2, **kwargs2), ep.module()(*args2, **kwargs2)
    assert type(actual["pair"]) is Pair and actual["count"] == 2
    torch.testing.assert_close(actual["pair"].left, expected["pair"].left)
    torch.testing.assert_close(actual["total"], expected["total"])
    # keyword order does not matter, as in torch.export
    torch.testing.assert_close(
        ep.module()(*args2, note="hi", scale=2.0)["total"], expected["total"]
    )


def test_module_rejects_other_structures_shapes_dtypes_and_values() -> None:
    register_batch()
    args, kwargs = structured_inputs()
    module = gl.export(Structured(), args, kwargs).module()
    with pytest.raises(
        InputStructureError, match=r"\[0\]\[1\]: expected a list of 2 items"
    ) as info:
        module(args[0], args[1][:1], args[2], **kwargs)
    assert isinstance(info.value, ValueError)  # what torch.export raises
    with pytest.raises(
        InputMismatchError, match=r"input 'pair_left' .* expected shape \[2, 3\], got \[5, 3\]"
    ) as info:
        module(*structured_inputs(5)[0], **kwargs)
    assert isinstance(info.value, AssertionError)  # torch.export: "Guard failed"
    bad_dtype = (Pair(args[0].left.double(), args[0].right), args[1], args[2])
    with pytest.raises(InputMismatchError, match=r"dtype torch\.float32"):
        module(*bad_dtype, **kwargs)
    with pytest.raises(InputMismatchError, match=r"input 'scale' .* expected 2\.0, got 3\.0"):
        module(*args, scale=3.0, note="hi")
    with pytest.raises(InputMismatchError, match="input 'note'"):
        module(*args, scale=2.0, note="other")


def test_python_scalar_inputs_are_checked_by_type() -> None:
    class Flag(nn.Module):
        def forward(self, x, flag):
            return x + 1 if flag else x - 1

    module = gl.export(Flag(), (torch.ones(2), True)).module()
    torch.testing.assert_close(module(torch.ones(2), True), torch.full((2,), 2.0))
    with pytest.raises(InputMismatchError):
        module(torch.ones(2), 1)  # 1 == True in Python, but it is not the traced value


def test_export_argument_errors() -> None:
    with pytest.raises(ExportError, match=r"takes a torch\.nn\.Module, an operator"):
        gl.export(42, (torch.ones(1),))  # type: ignore[arg-type]
    with pytest.raises(ExportError, match="args must be a tuple"):
        gl.export(Small(), torch.randn(2, 8))  # type: ignore[arg-type]
    with pytest.raises(ExportError, match=r"do not fit Small\.forward"):
        gl.export(Small(), (torch.randn(2, 8), torch.randn(2)))
    with pytest.raises(ExportError, match="failed on the traced shapes") as info:
        gl.export(Small(), (torch.randn(2, 7),))
    assert "test_api.py" in str(info.value) and isinstance(info.value, RuntimeError)


def test_program_is_not_callable_and_prints_its_parts() -> None:
    ep = gl.export(Small(), (torch.randn(2, 8),))
    with pytest.raises(TypeError, match=r"ep.module\(\)"):
        ep(torch.randn(2, 8))
    text = str(ep)
    assert text.startswith("ExportedProgram:\n    graph(p_linear_weight")
    assert (
        "%linear = call_function[aten.linear.default](%x, %p_linear_weight, %p_linear_bias)  # f32[2, 4]"
        in text
    )
    assert "p_linear_weight: PARAMETER target='linear.weight'" in text
    assert "c_table: CONSTANT_TENSOR target='table'" in text


# --- export never changes the user's module -------------------------------------------


def snapshot(model: nn.Module):
    return (
        {k: (v, v.clone()) for k, v in model.state_dict(keep_vars=True).items()},
        {k: v for k, v in vars(model).items() if not k.startswith("_")},
        model.training,
        [m.training for m in model.modules()],
        dict(model._forward_hooks),
        torch.is_grad_enabled(),
        torch.nn.Module.__call__,
        torch.compiler.is_exporting(),
        len(torch.nn.modules.module._global_forward_hooks),
        len(torch.nn.modules.module._global_forward_pre_hooks),
    )


def assert_unchanged(model: nn.Module, before) -> None:  # type: ignore[no-untyped-def]
    after = snapshot(model)
    for (name, (obj, value)), (name2, (obj2, _)) in zip(before[0].items(), after[0].items()):
        assert name == name2 and obj is obj2, f"{name} was replaced"
        assert torch.equal(obj, value), f"{name} was modified"
    assert before[1:] == after[1:]


class Failing(Small):
    def forward(self, x):
        y = self.linear(x)
        if y.sum() > 0:  # data-dependent: export fails here
            return y
        return -y


@pytest.mark.parametrize("model_class", [Small, Failing])
@pytest.mark.parametrize("training", [True, False])
def test_export_leaves_the_module_as_it_was(model_class: type[nn.Module], training: bool) -> None:
    model = model_class().train(training)
    model.register_forward_hook(lambda *a: None)
    before = snapshot(model)
    try:
        gl.export(model, (torch.randn(2, 8),))
    except DataDependentError:
        assert model_class is Failing
    assert_unchanged(model, before)


class CachesAnAttribute(nn.Module):
    """Assigns an attribute from the input size while running, as Swin does."""

    def __init__(self) -> None:
        super().__init__()
        self.window = 4

    def forward(self, x):
        self.window = min(self.window, x.shape[0])
        self.last_input = x
        return x[: self.window] * 2


def test_attributes_assigned_while_tracing_do_not_outlive_export() -> None:
    model = CachesAnAttribute()
    ep = gl.export(model, (torch.randn(6, 3),), dynamic_shapes={"x": {0: gl.Dim.AUTO}})
    assert model.window == 4 and "last_input" not in vars(model)
    x = torch.randn(6, 3)
    torch.testing.assert_close(ep.module()(x), model(x))


def test_data_dependent_branch_names_the_line() -> None:
    with pytest.raises(DataDependentError) as info:
        gl.export(Failing(), (torch.randn(2, 8),))
    assert "if y.sum() > 0:" in str(info.value)
    assert isinstance(info.value, RuntimeError)


def test_in_place_update_of_a_fresh_tensor_is_recorded_functionally() -> None:
    class Accumulate(nn.Module):
        def forward(self, x):
            total = torch.zeros_like(x)
            total.add_(x)
            total.mul_(2)
            return total

    ep = gl.export(Accumulate(), (torch.randn(3),))
    targets = [str(n.target) for n in ep.graph.nodes if n.op == "call_function"]
    assert targets == ["aten.zeros_like.default", "aten.add.Tensor", "aten.mul.Tensor"]
    x = torch.randn(3)
    torch.testing.assert_close(ep.module()(x), x * 2)


def test_meta_device_model_exports_without_materializing() -> None:
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(4096, 4096), nn.GELU(), nn.Linear(4096, 8))
    ep = gl.export(model, (torch.empty(2, 4096, device="meta"),))
    assert all(t.device.type == "meta" for t in ep.state_dict.values())
    output = next(reversed(ep.graph.nodes)).args[0][0]
    assert tuple(output.meta["val"].shape) == (2, 8)


def test_deepcopied_program_module_still_runs() -> None:
    model, x = Small(), torch.randn(2, 8)
    module = copy.deepcopy(gl.export(model, (x,)).module())
    torch.testing.assert_close(module(x), model(x))
