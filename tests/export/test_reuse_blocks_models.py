"""Shared block bodies on transformers models (issue 18): small configs with
random weights and four layers, so that later layers are calls of a body.

For each model: the program with reuse equals eager at several shapes, its
inlined form equals the ``reuse_blocks=False`` program byte for byte, and the
number of distinct bodies is what the architecture says (Gemma3 alternates
sliding-window and full-attention layers: two bodies, never one).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers
from torch import nn

import graphlift as gl
from graphlift.trace.control_flow import invoke_subgraph
from tests.export.test_golden_programs import printout
from tests.export.test_reuse_blocks import bodies, called, calls, named_values
from tests.zoo.models import CASES as ZOO_CASES

VOCAB = 128
DECODER = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    use_cache=False, pad_token_id=0,
)  # fmt: skip
# batch min 2: transformers' mask code branches on batch_size != 1 (docs/block_reuse.md)
BATCH = gl.Dim("batch", min=2, max=8)
SEQ = gl.Dim("seq", min=2, max=64)


class Logits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, return_dict=False)[0]


class Seq2Seq(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(
            input_ids=input_ids, decoder_input_ids=decoder_input_ids, return_dict=False
        )[0]


class Vision(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values, return_dict=False)[0]


def llama() -> nn.Module:
    return Logits(transformers.LlamaForCausalLM(transformers.LlamaConfig(**DECODER)))


def gemma3() -> nn.Module:
    config = transformers.Gemma3TextConfig(
        **DECODER, head_dim=8, sliding_window=4,
        layer_types=["sliding_attention", "full_attention"] * 2,
    )  # fmt: skip
    return Logits(transformers.Gemma3ForCausalLM(config))


def t5() -> nn.Module:
    config = transformers.T5Config(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=4, num_decoder_layers=4,
        num_heads=4, use_cache=False, decoder_start_token_id=0, pad_token_id=0,
    )  # fmt: skip
    return Seq2Seq(transformers.T5ForConditionalGeneration(config))


def vit() -> nn.Module:
    config = transformers.ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=4,
        num_attention_heads=4, intermediate_size=64,
    )  # fmt: skip
    return Vision(transformers.ViTModel(config))


def tokens(batch: int, seq: int) -> tuple[Any, ...]:
    return (torch.randint(3, VOCAB, (batch, seq)),)


def encoder_decoder(batch: int, seq: int) -> tuple[Any, ...]:
    return (torch.randint(3, VOCAB, (batch, seq)), torch.randint(3, VOCAB, (batch, seq + 1)))


def images(batch: int, _: int) -> tuple[Any, ...]:
    return (torch.randn(batch, 3, 32, 32),)


DECODER_SPEC = {"input_ids": {0: BATCH, 1: SEQ}}
T5_SPEC = {
    "input_ids": {0: BATCH, 1: SEQ},
    "decoder_input_ids": {0: BATCH, 1: gl.Dim("dec", min=2, max=64)},
}
# name: (model, inputs, spec, distinct bodies)
CASES: dict[str, tuple[Callable[[], nn.Module], Callable[..., Any], Any, int]] = {
    "llama": (llama, tokens, DECODER_SPEC, 1),
    "gemma3": (gemma3, tokens, DECODER_SPEC, 2),  # sliding and full attention layers
    "t5": (t5, encoder_decoder, T5_SPEC, 2),  # encoder and decoder blocks
    "vit": (vit, images, {"pixel_values": {0: BATCH}}, 1),
}
SHAPES = ((2, 8), (3, 13), (5, 2))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_reused_program_equals_eager_and_inlines_to_the_flat_one(name: str) -> None:
    make, inputs, spec, distinct = CASES[name]
    torch.manual_seed(0)
    model = make().eval()
    example = inputs(*SHAPES[0])
    reused = gl.export(model, example, dynamic_shapes=spec)
    flat = gl.export(model, example, dynamic_shapes=spec, reuse_blocks=False)
    assert len(bodies(reused)) == distinct and calls(reused) >= 2
    if name == "t5":  # block 0 holds the relative bias; 1 is traced; 2 and 3 of each stack share
        assert calls(reused) == 4
    assert printout(reused.inline_subgraphs()) == printout(flat)
    # the inner modules of reused calls are in the call graph, as without reuse
    assert called(reused) == called(flat)
    assert reused.inline_subgraphs().module_call_graph == flat.module_call_graph
    for shape in SHAPES:
        args = inputs(*shape)
        with torch.no_grad():
            torch.testing.assert_close(reused.module()(*args), model(*args))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llama", "gemma3"])
def test_decomposed_reused_program_equals_eager(name: str) -> None:
    make, inputs, spec, distinct = CASES[name]
    torch.manual_seed(0)
    model = make().eval()
    core = gl.export(model, inputs(*SHAPES[0]), dynamic_shapes=spec).run_decompositions()
    assert len(bodies(core)) == distinct
    # the call graph names the values inside bodies as the flat decomposition does
    flat = gl.export(model, inputs(*SHAPES[0]), dynamic_shapes=spec, reuse_blocks=False)
    assert named_values(core.inline_subgraphs()) == named_values(flat.run_decompositions())
    for shape in SHAPES:
        args = inputs(*shape)
        with torch.no_grad():
            torch.testing.assert_close(core.module()(*args), model(*args))


@pytest.mark.slow
def test_llama_call_graph_and_unflatten_match_torch_export() -> None:
    """Every module path torch.export lists, in its order; ``unflatten`` gives the
    model's tree and equals eager (``unflatten`` inlines the bodies first)."""
    make, inputs, spec, _ = CASES["llama"]
    torch.manual_seed(0)
    model = make().eval()
    example = inputs(*SHAPES[0])
    reused = gl.export(model, example, dynamic_shapes=spec)
    torch_dims = {
        "input_ids": {0: torch.export.Dim("batch", min=2, max=8),
                      1: torch.export.Dim("seq", min=2, max=64)},
    }  # fmt: skip
    reference = torch.export.export(model, example, dynamic_shapes=torch_dims)
    assert [e.fqn for e in reused.module_call_graph] == [e.fqn for e in reference.module_call_graph]
    unflattened = gl.unflatten(reused)
    assert [n for n, _ in unflattened.named_modules()] == [n for n, _ in model.named_modules()]
    for shape in SHAPES:
        args = inputs(*shape)
        with torch.no_grad():
            torch.testing.assert_close(unflattened(*args), model(*args))


def layer_of_each_call(ep: gl.ExportedProgram) -> list[tuple[str, int]]:
    """(body, decoder layer index) for every block call, from its module stack."""
    found = []
    for node in ep.graph.nodes:
        if node.op == "call_function" and node.target is invoke_subgraph:
            path = next(reversed(node.meta["nn_module_stack"].values()))[0]
            found.append((str(node.args[0].target), int(path.rsplit(".", 1)[1])))
    return found


@pytest.mark.slow
def test_gemma3_sliding_and_full_attention_layers_never_share_a_body() -> None:
    """Six layers alternating sliding-window and full attention: each body is
    called only by layers of one kind, and both kinds are shared."""
    torch.manual_seed(0)
    kinds = ["sliding_attention", "full_attention"] * 3
    config = transformers.Gemma3TextConfig(
        **{**DECODER, "num_hidden_layers": 6}, head_dim=8, sliding_window=4, layer_types=kinds
    )
    model = Logits(transformers.Gemma3ForCausalLM(config)).eval()
    example = tokens(2, 8)
    reused = gl.export(model, example, dynamic_shapes=DECODER_SPEC)
    flat = gl.export(model, example, dynamic_shapes=DECODER_SPEC, reuse_blocks=False)
    assert len(bodies(reused)) == 2
    kinds_per_body: dict[str, set[str]] = {}
    for body, layer in layer_of_each_call(reused):
        kinds_per_body.setdefault(body, set()).add(kinds[layer])
    assert sorted(len(k) for k in kinds_per_body.values()) == [1, 1]
    assert printout(reused.inline_subgraphs()) == printout(flat)
    for shape in ((2, 8), (3, 13), (4, 3)):  # windows of 4 inside and beyond the sequence
        args = tokens(*shape)
        with torch.no_grad():
            expected = model(*args)
            torch.testing.assert_close(reused.module()(*args), expected)
            torch.testing.assert_close(flat.module()(*args), expected)


def zoo_export(case: Any, reuse: bool) -> gl.ExportedProgram:
    args, kwargs = case.make_inputs()
    spec = case.dynamic_shapes(gl.Dim)
    return gl.export(case.make_model(), args, kwargs, dynamic_shapes=spec, reuse_blocks=reuse)


@pytest.mark.slow
@pytest.mark.parametrize("case", ZOO_CASES, ids=lambda case: case.name)
def test_every_zoo_program_inlines_to_its_flat_export(case: Any) -> None:
    """Dynamic export of every zoo model: with shared bodies, inlined, byte for
    byte the ``reuse_blocks=False`` program (a refused case is refused alike)."""
    try:
        flat = zoo_export(case, reuse=False)
    except gl.GraphliftError as error:
        with pytest.raises(type(error)):
            zoo_export(case, reuse=True)
        return
    reused = zoo_export(case, reuse=True)
    assert printout(reused.inline_subgraphs()) == printout(flat)
    assert reused.inline_subgraphs().module_call_graph == flat.module_call_graph
    args, kwargs = case.make_inputs()
    with torch.no_grad():
        expected = flat.module()(*args, **kwargs)
        for actual, wanted in zip(
            gl.pytree.tree_leaves(reused.module()(*args, **kwargs)),
            gl.pytree.tree_leaves(expected),
            strict=True,
        ):
            torch.testing.assert_close(actual, wanted)
