"""Exporting what is not a module (an operator overload, a function) and custom
torch.autograd.Functions inside forward, against eager and torch.export."""

from __future__ import annotations

import pytest
import torch
import torch.export._wrapper_utils

import graphlift as gl
from graphlift.errors import ExportError, InputMismatchError


def test_operator_overload_exports_with_schema_names() -> None:
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    ep = gl.export(torch.ops.aten.add.Tensor, (x, y), {"alpha": 2})
    assert [n.name for n in ep.graph.nodes if n.op == "placeholder"] == ["self_1", "other", "alpha"]
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    assert targets == [torch.ops.aten.add.Tensor]
    x2, y2 = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(ep.module()(x2, y2, alpha=2), x2 + 2 * y2)
    with pytest.raises(InputMismatchError):
        ep.module()(x2, y2, alpha=3)  # alpha was specialized to 2


def test_operator_packet_is_refused_with_the_fix() -> None:
    with pytest.raises(ExportError, match=r"aten\.add\.Tensor"):
        gl.export(torch.ops.aten.add, (torch.ones(1), torch.ones(1)))


def test_not_callable_is_refused() -> None:
    with pytest.raises(ExportError, match="an operator overload or a callable"):
        gl.export("add", (torch.ones(1),))  # type: ignore[arg-type]


def scaled_sum(x: torch.Tensor, *, scale: float = 2.0, y: torch.Tensor | None = None):
    return x * scale + (0 if y is None else y.sum(0))


def test_plain_function_with_keyword_only_inputs_matches_torch_export() -> None:
    x, y = torch.randn(4, 3), torch.randn(5, 3)
    batch = gl.Dim("batch")
    ep = gl.export(scaled_sum, (x,), {"y": y}, dynamic_shapes={"x": {0: batch}, "y": None})
    theirs = torch.export.export(
        torch.export._wrapper_utils._WrapperModule(scaled_sum), (x,), {"y": y}
    )  # torch's wrapper takes (*args, **kwargs), so its spec would name "args"
    torch.testing.assert_close(ep.module()(x, y=y), theirs.module()(x, y=y))
    for rows in (1, 2, 7):
        x2 = torch.randn(rows, 3)
        torch.testing.assert_close(ep.module()(x2, y=y), scaled_sum(x2, y=y))
    assert [s.arg.name for s in ep.graph_signature.input_specs] == ["x", "y"]


def test_lambda_and_builtin_callables() -> None:
    x = torch.randn(3)
    ep = gl.export(lambda a: (a.cos(), 3), (x,))
    cos, three = ep.module()(x)
    torch.testing.assert_close(cos, x.cos())
    assert three == 3
    ep = gl.export(torch.sin, (x,))
    torch.testing.assert_close(ep.module()(x + 1), torch.sin(x + 1))


def test_callable_closing_over_a_tensor_lifts_it_as_a_constant() -> None:
    table = torch.arange(6.0).reshape(2, 3)
    ep = gl.export(lambda x: x @ table.T, (torch.randn(4, 3),))
    assert ep.graph_signature.input_specs[0].kind is gl.InputKind.CONSTANT_TENSOR
    x = torch.randn(4, 3)
    torch.testing.assert_close(ep.module()(x), x @ table.T)


class ScaledSin(torch.autograd.Function):
    """A custom autograd.Function as models write them (ctx, saved tensors)."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.save_for_backward(x)
        ctx.scale = scale
        return x.sin() * scale

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x.cos() * ctx.scale, None


class Clamp(torch.autograd.Function):
    """Two outputs, one marked non-differentiable; forward uses setup_context."""

    @staticmethod
    def forward(x, low):
        return x.clamp(min=low), (x < low).to(torch.int64)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad, _):
        return grad, None


class WithFunctions(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 4)

    def forward(self, x):
        h = ScaledSin.apply(self.linear(x), 3.0)
        clamped, below = Clamp.apply(h, 0.5)
        return clamped + 1, below


def test_autograd_function_forward_is_traced() -> None:
    model = WithFunctions()
    x = torch.randn(3, 4)
    ep = gl.export(model, (x,), dynamic_shapes={"x": {0: gl.Dim("batch")}})
    theirs = torch.export.export(model, (x,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    ours_ops = sorted(str(n.target) for n in ep.graph.nodes if n.op == "call_function")
    their_ops = sorted(str(n.target) for n in theirs.graph.nodes if n.op == "call_function"
                       and n.target is not torch.ops.aten._assert_tensor_metadata.default)  # fmt: skip
    assert ours_ops == their_ops  # the forward bodies, whole, at the same level
    for rows in (1, 5):
        x2 = torch.randn(rows, 4)
        for got, expected in zip(ep.module()(x2), model(x2), strict=True):
            torch.testing.assert_close(got, expected)
    core = ep.run_decompositions()
    torch.testing.assert_close(core.module()(x)[0], model(x)[0])


class Encoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(4, 8)
        self.register_buffer("calls", torch.zeros(()))

    def encode(self, x):
        self.calls += 1
        return self.embed(x).tanh()

    def forward(self, x):
        return self.embed(x)


def test_a_modules_method_exports_the_module_through_it() -> None:
    model = Encoder()
    ep = gl.export(model.encode, (torch.randn(3, 4),), dynamic_shapes={"x": {0: gl.Dim("rows")}})
    assert ep.graph_signature.parameters == ("embed.weight", "embed.bias")
    assert list(ep.graph_signature.buffers_to_mutate.values()) == ["calls"]
    assert "forward" not in vars(model)  # restored
    x = torch.randn(5, 4)
    torch.testing.assert_close(ep.module()(x), model.embed(x).tanh())
