"""Graph inputs are named after the forward's parameters exactly as torch.export
names them, also when a parameter is named like a builtin (``input``, ``len``):
every ``torch.nn`` module's forward takes ``input``. torch.export is the oracle."""

from __future__ import annotations

import builtins

import pytest
import torch
import torch.export as te
from torch import nn

import graphlift as gl
from graphlift.errors import InputMismatchError
from graphlift.export.capture import placeholder_names
from graphlift.interop import to_fx
from graphlift.ir.codegen import compile_forward, generate_python
from graphlift.ir.graph import Graph


class Builtins(nn.Module):
    """Parameters named like builtins; the traced code itself needs ``max``."""

    def forward(self, input, len, sum, type, id, max, filter, object):
        n = builtins.max(input.shape[0], len.shape[0])  # a SymInt max when dynamic
        return input[:n] * len + sum + type + id + max + filter + object


_torch = torch


class InputAndLen(nn.Module):
    """The code of its dynamic program calls ``torch.sym_max``, ``torch.device``
    and ``len``/``max`` live in its namespace: the inputs shadow all three."""

    def forward(self, input, len, torch):
        rows = builtins.max(input.shape[0], len.shape[0])
        return input.sum() + _torch.zeros(rows) + torch.sum() * len.shape[0]


class Trailing(nn.Module):
    def forward(self, x_, _y, list):
        return x_ + _y + list[0] + list[1]


class InputLikeAParameter(nn.Module):
    """torch.export names user inputs first: ``p_weight`` is the input's."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2))

    def forward(self, p_weight, input):
        return p_weight * self.weight + input


def _user_inputs(ep) -> tuple[str, ...]:
    return tuple(ep.graph_signature.user_inputs)


CASES = [
    ("linear", lambda: nn.Linear(3, 4), lambda: (torch.randn(4, 3),)),
    ("conv2d", lambda: nn.Conv2d(2, 3, 3), lambda: (torch.randn(1, 2, 6, 6),)),
    ("layer_norm", lambda: nn.LayerNorm(5), lambda: (torch.randn(2, 5),)),
    ("lstm", lambda: nn.LSTM(3, 4), lambda: (torch.randn(5, 2, 3),)),
    (
        "lstm_hx",
        lambda: nn.LSTM(3, 4),
        lambda: (torch.randn(5, 2, 3), (torch.randn(1, 2, 4), torch.randn(1, 2, 4))),
    ),
    ("builtins", Builtins, lambda: tuple(torch.randn(3, 2) for _ in range(8))),
    (
        "input_and_len",
        InputAndLen,
        lambda: (torch.randn(4, 3), torch.randn(2, 3), torch.randn(2)),
    ),
    ("input_like_a_parameter", InputLikeAParameter, lambda: (torch.randn(2), torch.randn(2))),
    ("trailing", Trailing, lambda: (torch.randn(2), torch.randn(2), [torch.randn(2)] * 2)),
]


@pytest.mark.parametrize("make, example", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_inputs_are_named_as_torch_export_names_them(make, example) -> None:
    model, args = make(), example()
    ep = gl.export(model, args)
    expected = _user_inputs(te.export(model, args))
    assert _user_inputs(ep) == expected
    assert tuple(placeholder_names(model, args, {})) == expected
    placeholders = [n.name for n in ep.graph.nodes if n.op == "placeholder"]
    assert placeholders[-len(expected) :] == list(expected)
    state = [s.arg.name for s in ep.graph_signature.input_specs if s.target is not None]
    assert state == [
        s.arg.name for s in te.export(model, args).graph_signature.input_specs if s.target
    ]
    torch.testing.assert_close(ep.module()(*args), model(*args))


def test_a_builtin_named_input_keeps_the_builtin_usable_in_the_program() -> None:
    batch = gl.Dim("batch", min=2, max=64)
    names = ("input", "len", "torch")
    example = dict(zip(names, (torch.randn(4, 3), torch.randn(2, 3), torch.randn(2)), strict=True))
    spec = {"input": {0: batch}, "len": {0: gl.Dim("n", max=64)}, "torch": None}
    ep = gl.export(InputAndLen(), (), example, dynamic_shapes=spec)
    torch_ep = te.export(
        InputAndLen(),
        (),
        example,
        dynamic_shapes=spec
        | {"input": {0: te.Dim("batch", min=2, max=64)}, "len": {0: te.Dim("n", max=64)}},
    )
    assert _user_inputs(ep) == _user_inputs(torch_ep) == names
    code = ep.module().code
    assert "sym_max" in code and "input, len, torch" in code
    for rows, n in [(4, 2), (7, 5), (3, 9)]:
        inputs = dict(zip(names, (torch.randn(rows, 3), torch.randn(n, 3), torch.randn(2))))
        torch.testing.assert_close(ep.module()(**inputs), InputAndLen()(**inputs))
    wrong = dict(zip(names, (torch.randn(4, 3), torch.randn(65, 3), torch.randn(2))))
    with pytest.raises(InputMismatchError, match=r"input 'len' does not match"):
        ep.module()(**wrong)
    with pytest.raises(InputMismatchError, match=r"input 'torch' does not match"):
        ep.module()(**(wrong | {"len": torch.randn(2, 3), "torch": torch.randn(3)}))


def test_generated_code_reaches_shadowed_builtins_through_an_alias() -> None:
    graph = Graph()
    length = graph.placeholder("len", shadows_builtin=True)
    cut = graph.placeholder("slice", shadows_builtin=True)
    assert (length.name, cut.name) == ("len", "slice")
    size = graph.call_function(builtins.len, (length,))
    top = graph.call_function(builtins.max, (size, 1))
    part = graph.call_function(torch.narrow, (cut, 0, 0, top))
    parts = graph.call_function(torch.Tensor.__getitem__, (part, (slice(0, 2, None),)))
    graph.output((top, parts))
    forward = compile_forward(generate_python(graph))
    count, rows = forward(None, [7, 8, 9], torch.arange(10))
    assert count == 3 and rows.tolist() == [0, 1]


def test_keywords_are_still_renamed() -> None:
    """torch.export cannot export ``**{"lambda": x}`` (its code is not Python);
    graphlift renames keyword-named inputs and exports."""

    class Keywords(nn.Module):
        def forward(self, input, **kw):
            return input + kw["lambda"] + kw["class"]

    x = torch.randn(2, 3)
    ep = gl.export(Keywords(), (x,), {"lambda": x, "class": x})
    assert _user_inputs(ep) == ("input", "lambda_1", "class_1")
    torch.testing.assert_close(ep.module()(x, **{"lambda": x, "class": x}), 3 * x)


def test_refusals_and_ranges_name_the_input_as_the_user_does() -> None:
    model, x = nn.Linear(3, 4), torch.randn(4, 3)
    ep = gl.export(model, (x,), dynamic_shapes=({0: gl.Dim("batch", min=2, max=8)},))
    with pytest.raises(InputMismatchError, match=r"input 'input'") as info:
        ep.module()(torch.randn(9, 3))
    assert "input_1" not in str(info.value)
    with pytest.raises(InputMismatchError, match=r"input 'input'"):
        ep.module()(torch.randn(4, 5))


def test_names_survive_decomposition_save_load_unflatten_and_fx(tmp_path) -> None:
    model, x = nn.Sequential(nn.Linear(3, 4), nn.ReLU()), torch.randn(4, 3)
    ep = gl.export(nn.Linear(3, 4), (x,), dynamic_shapes=({0: gl.Dim("batch")},))
    decomposed = ep.run_decompositions()
    assert _user_inputs(decomposed) == _user_inputs(ep) == ("input",)
    path = tmp_path / "linear.gl"
    gl.save(ep, path)
    loaded = gl.load(path)
    assert _user_inputs(loaded) == ("input",)
    for n in (1, 6):
        y = torch.randn(n, 3)
        expected = ep.module()(y)
        for program in (decomposed, loaded):
            torch.testing.assert_close(program.module()(y), expected)
        torch.testing.assert_close(gl.unflatten(ep)(y), expected)
        torch.testing.assert_close(to_fx(ep)(y), expected)
    fx_module = to_fx(ep)
    fx_module.graph.lint()
    assert [n.target for n in fx_module.graph.nodes if n.op == "placeholder"][-1] == "input"
    seq = gl.export(model, (x,))
    assert _user_inputs(seq) == _user_inputs(te.export(model, (x,)))


def test_draft_export_names_inputs_as_torch_does() -> None:
    model, x = nn.Linear(3, 4), torch.randn(4, 3)
    ep = gl.draft_export(model, (x,))
    assert _user_inputs(ep) == _user_inputs(te.export(model, (x,))) == ("input",)


class Variadic(nn.Module):
    def forward(self, input, *args, **kwargs):
        return input + args[0] + args[1][0] + kwargs["sum"]


class SharesAPrefix(nn.Module):
    def forward(self, x, args_0):
        return x + args_0


@pytest.mark.parametrize("model", [Variadic(), SharesAPrefix()], ids=lambda m: type(m).__name__)
def test_variadic_inputs_count_from_zero_as_in_torch(model) -> None:
    x = torch.randn(2)
    args = (x, x, (x,)) if isinstance(model, Variadic) else (x, x)
    kwargs = {"sum": x} if isinstance(model, Variadic) else {}
    ep = gl.export(model, args, kwargs)
    assert _user_inputs(ep) == _user_inputs(te.export(model, args, kwargs))
    torch.testing.assert_close(ep.module()(*args, **kwargs), model(*args, **kwargs))


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 4)

    def forward(self, input, len):
        out = self.linear(input).reshape(len.shape[0], -1)
        return out * 2 if input.shape[0] > 3 else out


def test_fixes_specializations_and_guards_use_the_forward_names() -> None:
    model, args = Branchy(), (torch.randn(5, 16), torch.randn(5))
    with pytest.raises(gl.errors.ConstraintViolationError) as info:
        gl.export(model, args, dynamic_shapes={"input": {0: gl.Dim("batch", max=64)}})
    assert "input_1" not in str(info.value)
    assert list(info.value.fixes) == ["input.size()[0]"]
    auto = {"input": {0: gl.Dim.AUTO}, "len": {0: gl.Dim.AUTO}}
    ep = gl.export(model, args, dynamic_shapes=auto)
    assert {s.source for s in ep.specializations} == {"input.size()[0]", "len.size()[0]"}
    for n in (4, 9):
        inputs = (torch.randn(n, 16), torch.randn(n))
        torch.testing.assert_close(ep.module()(*inputs), model(*inputs))
    with pytest.raises(InputMismatchError, match=r"input 'len' .* size input\.size\(\)\[0\]"):
        ep.module()(torch.randn(6, 16), torch.randn(5))
