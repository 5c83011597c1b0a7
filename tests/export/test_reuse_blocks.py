"""Shared block bodies (issue 18, ``reuse_blocks``): a repeated layer traced once.

Every test compares three things: the program with reuse (``reuse_blocks=True``,
the default), its flat form ``inline_subgraphs()``, and the program exported
with ``reuse_blocks=False``. The oracle for "reuse changed nothing" is that the
inlined printout equals the flat export's byte for byte; the oracle for
correctness is eager PyTorch at several shapes. Layers that differ in what
their code reads must get their own trace, never a wrong reuse.
"""

from __future__ import annotations

import functools
import io
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

import graphlift as gl
from graphlift.errors import ExportError
from graphlift.examples.tiny_gpt import make_example
from graphlift.export import ConstantArgument
from graphlift.interop import from_fx, to_fx
from graphlift.trace.control_flow import invoke_subgraph
from tests.export.test_golden_programs import CASES as GOLDEN_CASES
from tests.export.test_golden_programs import printout


class Layer(nn.Module):
    def __init__(self, width: int = 8, scale: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.scale = scale
        self.layer_idx = 0  # held, never read by forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x)) * self.scale + x


class Stack(nn.Module):
    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def stack(count: int = 5, make: Callable[[int], nn.Module] = lambda i: Layer()) -> Stack:
    torch.manual_seed(0)
    model = Stack([make(i) for i in range(count)]).eval()
    for index, layer in enumerate(model.layers):
        if hasattr(layer, "layer_idx"):
            layer.layer_idx = index
    return model


SPEC = {"x": {0: gl.Dim("batch", min=2, max=32)}}
SHAPES = ((2, 8), (3, 8), (17, 8))


def calls(ep: gl.ExportedProgram) -> int:
    return sum(1 for node in ep.graph.nodes if node.target is invoke_subgraph)


def bodies(ep: gl.ExportedProgram) -> list[str]:
    return [name for name, _ in ep.graph_module.named_children()]


def called(ep: gl.ExportedProgram) -> list[str]:
    """The modules the call graph lists as called (with a signature)."""
    return [entry.fqn for entry in ep.module_call_graph if entry.in_spec is not None]


def check(model: nn.Module, spec: object = SPEC, shapes: tuple = SHAPES) -> gl.ExportedProgram:
    """Export both ways; the inlined program equals the flat one and both equal eager."""
    example = torch.randn(*shapes[0])
    reused = gl.export(model, (example,), dynamic_shapes=spec)
    flat = gl.export(model, (example,), dynamic_shapes=spec, reuse_blocks=False)
    assert printout(reused.inline_subgraphs()) == printout(flat)
    assert reused.inline_subgraphs().module_call_graph == flat.module_call_graph
    assert called(reused) == called(flat)  # every inner module of a reused call has its entry
    for shape in shapes if spec else shapes[:1]:
        x = torch.randn(*shape)
        with torch.no_grad():
            torch.testing.assert_close(reused.module()(x), model(x))
    return reused


def test_equal_layers_share_one_body() -> None:
    ep = check(stack(5))
    assert bodies(ep) == ["repeated_block_0"]
    assert calls(ep) >= 3  # the first layer (or two) traced, the rest calls of the body
    assert "layer_idx" not in str(ep)  # held, not read: the layers are the same computation


def test_static_shapes_share_one_body_too() -> None:
    ep = check(stack(4), spec=None)
    assert calls(ep) >= 2


def test_tiny_gpt_with_and_without_reuse() -> None:
    model, (tokens,) = make_example()
    spec = {"tokens": {0: gl.Dim("batch", min=1, max=64), 1: gl.Dim("seq", min=2, max=31)}}
    reused = gl.export(model, (tokens,), dynamic_shapes=spec)
    flat = gl.export(model, (tokens,), dynamic_shapes=spec, reuse_blocks=False)
    assert calls(reused) == 1 and calls(flat) == 0
    before = printout(reused)
    inlined = reused.inline_subgraphs()
    assert inlined is not reused and inlined.graph is not reused.graph
    assert printout(inlined) == printout(flat)
    for batch, seq in ((1, 5), (3, 17)):
        tokens = torch.randint(0, model.config.vocab_size, (batch, seq))
        torch.testing.assert_close(reused.module()(tokens), model(tokens))
        torch.testing.assert_close(inlined.module()(tokens), model(tokens))
    assert printout(reused) == before  # the source program is not changed


def test_a_layer_reading_a_different_attribute_gets_its_own_trace() -> None:
    # scales 1, 2, 1, 2, 1, 2: two distinct computations, each with its own body
    ep = check(stack(6, lambda i: Layer(scale=1.0 + i % 2)))
    assert len(bodies(ep)) == 2
    # every scale different: nothing to share
    ep = check(stack(4, lambda i: Layer(scale=1.0 + i)))
    assert calls(ep) == 0 and bodies(ep) == []


class IndexedLayer(Layer):
    """Reads its index: every layer computes something else."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + self.layer_idx


class ConfigLayer(Layer):
    """Reads its index through a shared table, as Gemma3 picks sliding windows."""

    table = {0: 1.0, 1: 1.0, 2: 3.0, 3: 1.0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.table[self.layer_idx]


class DictLayer(Layer):
    """Reads its scale through ``vars(self)``, not an attribute access."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.linear(x)) * vars(self)["scale"] + x


def test_a_read_through_vars_counts_as_reading_every_attribute() -> None:
    ep = check(stack(6, lambda i: DictLayer(scale=1.0 + i % 2)))
    assert len(bodies(ep)) <= 2  # never one body for both scales (eager equality says so)


@pytest.mark.parametrize("layer", [IndexedLayer, ConfigLayer])
def test_a_layer_reading_its_index_is_never_reused(layer: type[Layer]) -> None:
    ep = check(stack(4, lambda i: layer()))
    assert calls(ep) == 0


class HalfLayer(nn.Module):
    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.register_buffer("shift", torch.ones(8, dtype=dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.shift


def test_a_buffer_of_another_dtype_gets_its_own_body() -> None:
    dtypes = [torch.float32, torch.float64] * 3
    ep = check(stack(6, lambda i: HalfLayer(dtypes[i])))
    assert len(bodies(ep)) == 2


def test_a_forward_hook_inside_a_layer_is_not_skipped() -> None:
    model = stack(4)
    model.layers[2].linear.register_forward_hook(lambda module, args, out: out * 2)
    check(model)


class CountingLayer(Layer):
    """Updates a buffer in place (a KV-cache slot, a running count)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seen", torch.zeros(8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add_(x.sum(0))
        return super().forward(x) + self.seen


def test_a_layer_mutating_its_buffer_is_traced_every_time() -> None:
    model = stack(3, lambda i: CountingLayer())
    x = torch.randn(4, 8)
    ep = gl.export(model, (x,), dynamic_shapes=SPEC)
    assert calls(ep) == 0
    eager = stack(3, lambda i: CountingLayer())
    torch.testing.assert_close(ep.module()(x), eager(x))


class Passthrough(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], 8)


class Writer(Layer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.last_width = x.shape[-1]  # an attribute write: not a pure computation
        return super().forward(x)


@pytest.mark.parametrize("make", [lambda i: Passthrough(), lambda i: Writer()])
def test_views_and_attribute_writes_are_traced_every_time(make: Callable[[int], nn.Module]) -> None:
    model = stack(4, make)
    gl.export(model, (torch.randn(3, 8),), dynamic_shapes=SPEC)
    assert all("last_width" not in vars(layer) for layer in model.layers)  # restored
    assert calls(check(model)) == 0


class ItemLayer(Layer):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        positive = x[x > 0]  # a data-dependent size: a new symbol per call
        return super().forward(x) + positive.sum()


def test_a_data_dependent_layer_is_traced_every_time() -> None:
    ep = check(stack(3, lambda i: ItemLayer()))
    assert calls(ep) == 0


class NestedBlock(nn.Module):
    """A T5-style block: its own ``nn.ModuleList`` of parts, and an argument (the
    position bias) handed on unchanged to the next block."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.parts = nn.ModuleList([Layer(width), Layer(width, scale=0.5)])

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for part in self.parts:
            x = part(x) + bias
        return x, bias


class BiasUpdatingBlock(NestedBlock):
    """Hands its argument on after updating it in place: not a pass-through."""

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, bias = super().forward(x, bias)
        bias.mul_(0.25)
        return x, bias


class NestedStack(nn.Module):
    def __init__(self, make: Callable[[], nn.Module], count: int = 5) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([make() for _ in range(count)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = x.mean(0)  # made here, handed from block to block
        for block in self.blocks:
            x, bias = block(x, bias)
        return x * bias


def test_nested_blocks_share_the_outer_body_and_hand_arguments_on() -> None:
    torch.manual_seed(0)
    model = NestedStack(NestedBlock).eval()
    ep = check(model)
    # the outer blocks are the shared unit (their inner lists were wrapped, not
    # user code); the passed-through bias is the caller's own value, not an output
    assert bodies(ep) == ["repeated_block_0"] and calls(ep) >= 3
    body = ep.graph_module.repeated_block_0.graph
    assert len(list(body.nodes)[-1].args[0]) == 1  # only x is computed by the body
    entries = {entry.fqn: entry for entry in ep.module_call_graph}
    inner = entries["blocks.4.parts.1"]  # a module of a reused call, as the flat trace has it
    assert inner.signature is not None and len(inner.inputs) == len(inner.outputs) == 1
    reference = torch.export.export(model, (torch.randn(3, 8),))
    assert [e.fqn for e in ep.module_call_graph] == [e.fqn for e in reference.module_call_graph]
    unflattened = gl.unflatten(ep)
    assert [n for n, _ in unflattened.named_modules()] == [n for n, _ in model.named_modules()]
    for shape in SHAPES:
        x = torch.randn(*shape)
        torch.testing.assert_close(unflattened(x), model(x))


def test_an_argument_updated_in_place_and_returned_is_not_passed_through() -> None:
    torch.manual_seed(0)
    ep = check(NestedStack(BiasUpdatingBlock).eval())
    updates = [n for n in ep.graph.nodes if n.args[1:] == (0.25,)]
    assert len(updates) == 5  # every block traced (only its inner parts may be shared)


def test_strict_capture_traces_every_call() -> None:
    model = stack(4)
    ep = gl.export(model, (torch.randn(3, 8),), strict=True)
    assert calls(ep) == 0


def test_save_load_keeps_the_shared_body(tmp_path: Path) -> None:
    model = stack(5)
    ep = check(model)
    gl.save(ep, tmp_path / "stack.gl")
    loaded = gl.load(tmp_path / "stack.gl")
    assert calls(loaded) == calls(ep) and bodies(loaded) == bodies(ep)
    assert printout(loaded.inline_subgraphs()) == printout(ep.inline_subgraphs())
    for shape in SHAPES:
        x = torch.randn(*shape)
        torch.testing.assert_close(loaded.module()(x), model(x))


def test_decomposition_replays_the_body_once() -> None:
    model = stack(5)
    ep = check(model)
    core = ep.run_decompositions()
    assert bodies(core) == bodies(ep) and calls(core) == calls(ep)
    body = core.graph_module.repeated_block_0.graph
    assert {str(n.target) for n in body.nodes if n.op == "call_function"} >= {"aten.addmm.default"}
    for shape in SHAPES:
        x = torch.randn(*shape)
        torch.testing.assert_close(core.module()(x), model(x))
        torch.testing.assert_close(core.inline_subgraphs().module()(x), model(x))


def named_values(ep: gl.ExportedProgram) -> list[tuple[str, list[str]]]:
    """Each call graph entry's module path and what its inputs and outputs name:
    the shape of the graph value, "-" for a constant, "" for a value no longer
    computed."""
    values = {node.name: node.meta.get("val") for node in ep.graph.nodes}
    return [
        (
            entry.fqn,
            [
                "-" if isinstance(arg, ConstantArgument) else
                str(getattr(values.get(arg.name), "shape", values.get(arg.name, "")))
                for arg in (*entry.inputs, *entry.outputs)
            ],
        )
        for entry in ep.module_call_graph
    ]  # fmt: skip


def test_decomposition_keeps_the_call_graph_names_inside_bodies() -> None:
    """The module call graph names values computed inside a body (``layers.3.linear``'s
    output) by their inlined names; the body is replayed into new nodes, whose
    names the decomposed program reserves again, so no name is lost ("") or left
    pointing at another value, and inlining gives the flat decomposition's names."""
    model = stack(5)
    reused = check(model)
    flat = gl.export(model, (torch.randn(2, 8),), dynamic_shapes=SPEC, reuse_blocks=False)
    core, flat_core = reused.run_decompositions(), flat.run_decompositions()
    assert calls(core) == calls(reused) >= 2
    inner = {e.fqn: e for e in core.module_call_graph}["layers.4.linear"]
    assert all(arg.name for arg in (*inner.inputs, *inner.outputs))
    assert core.inline_subgraphs().module_call_graph == flat_core.module_call_graph
    assert printout(core.inline_subgraphs()) == printout(flat_core)
    assert named_values(core.inline_subgraphs()) == named_values(flat_core)
    archive = io.BytesIO()
    gl.save(core, archive)  # loading checks every name the call graph uses
    assert gl.load(io.BytesIO(archive.getvalue())).module_call_graph == core.module_call_graph
    unflattened = gl.unflatten(core)
    for shape in SHAPES:
        x = torch.randn(*shape)
        torch.testing.assert_close(unflattened(x), model(x))


def test_to_fx_and_unflatten_run_the_bodies() -> None:
    model = stack(4)
    ep = check(model)
    fx_module = to_fx(ep)
    unflattened = gl.unflatten(ep)
    for shape in SHAPES:
        x = torch.randn(*shape)
        torch.testing.assert_close(fx_module(x), model(x))
        torch.testing.assert_close(unflattened(x), model(x))


def test_to_fx_calls_each_body_as_a_submodule_fx_tools_understand() -> None:
    """torch.fx's own idiom: ``call_module`` of one body submodule per reuse, no
    graphlift function in the graph; it runs like eager, prints, propagates
    shapes, survives fx's dead-code elimination and pickling, and converts back."""
    model = stack(5)
    ep = check(model)
    fx_module = to_fx(ep)
    block_calls = [n for n in fx_module.graph.nodes if n.op == "call_module"
                   and n.target == "repeated_block_0"]  # fmt: skip
    assert len(block_calls) == calls(ep) >= 3
    assert not any(
        getattr(n.target, "__module__", "").startswith("graphlift")
        for n in fx_module.graph.nodes if n.op == "call_function"
    )  # fmt: skip
    assert isinstance(fx_module.repeated_block_0, torch.fx.GraphModule)
    readable = fx_module.print_readable(print_output=False)
    assert "class repeated_block_0(torch.nn.Module)" in readable
    assert readable.count("self.repeated_block_0(") == calls(ep)
    x = torch.randn(4, 8)
    ShapeProp(fx_module).propagate(x)
    for node in block_calls:
        (output,) = [u for u in node.users]
        assert output.meta["tensor_meta"].shape == (4, 8)
    assert not fx_module.graph.eliminate_dead_code()  # every call's result is used
    restored = pickle.loads(pickle.dumps(fx_module))
    back = from_fx(to_fx(ep, checks=False))
    assert back.code == ep.module().code  # the block calls come back as they were
    for shape in SHAPES:
        x = torch.randn(*shape)
        expected = model(x)
        for module in (fx_module, restored, to_fx(back)):
            torch.testing.assert_close(module(x), expected)


def test_the_body_is_verified_and_printed_once() -> None:
    ep = check(stack(6))
    assert str(ep).count("repeated_block_0:") == 1
    gl.Verifier().check(ep) if hasattr(gl, "Verifier") else None


def test_reuse_blocks_must_be_a_bool() -> None:
    model, (tokens,) = make_example()
    with pytest.raises(ExportError, match="reuse_blocks must be True or False"):
        gl.export(model, (tokens,), reuse_blocks="yes")  # type: ignore[arg-type]


# --- reuse never changes a program -------------------------------------------------------


def flat_export(
    monkeypatch: pytest.MonkeyPatch, make: Callable[[], gl.ExportedProgram]
) -> gl.ExportedProgram:
    """``make()`` with every ``gl.export`` call it makes tracing every call flat."""
    with monkeypatch.context() as patched:
        patched.setattr(gl, "export", functools.partial(gl.export, reuse_blocks=False))
        return make()


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_golden_programs_inline_to_their_flat_export(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every golden program (pinned with reuse on): inlined, it prints byte for
    byte as the ``reuse_blocks=False`` export, and so does its decomposition."""
    reused = GOLDEN_CASES[name]()
    flat = flat_export(monkeypatch, GOLDEN_CASES[name])
    assert calls(flat) == 0
    assert printout(reused.inline_subgraphs()) == printout(flat)
    assert reused.inline_subgraphs().module_call_graph == flat.module_call_graph
    flat_core = flat.run_decompositions()
    core = reused.inline_subgraphs().run_decompositions()
    assert printout(core) == printout(flat_core)
    # decomposed with its bodies, the call graph names the values as the flat one's
    assert reused.run_decompositions().inline_subgraphs().module_call_graph == (
        flat_core.module_call_graph
    )


def test_the_golden_tiny_gpt_programs_do_share_a_body() -> None:
    """The equalities above are not vacuous: the pinned tiny GPT programs call a body."""
    for name in ("tiny_gpt_static", "tiny_gpt_dynamic"):
        assert calls(GOLDEN_CASES[name]()) >= 1
