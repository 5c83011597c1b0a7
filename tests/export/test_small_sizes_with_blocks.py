"""The small-size proof (export/small_sizes.py) with shared block bodies (issue 18).

A declared batch 1 that a guard refuses (transformers' ``batch_size != 1``
branch) is proven by a second trace at that size. With ``reuse_blocks=True``
both traces keep their shared bodies and the proof reads them inlined, instead
of tracing the whole model flat again: the program keeps its bodies, and its
flat form equals the ``reuse_blocks=False`` program byte for byte, with the same
ranges and guards. A capture whose bodies are control flow (not blocks) is not
traced again at all: the proof cannot read a ``cond`` body either way.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.export import api
from graphlift.trace.control_flow import invoke_subgraph
from tests.export.test_golden_programs import printout

pytestmark = pytest.mark.slow  # two models, each exported both ways and traced twice


def decoders() -> list[tuple[str, nn.Module]]:
    import transformers

    torch.manual_seed(0)
    llama = transformers.LlamaConfig(
        vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, use_cache=False,
    )  # fmt: skip
    gpt2 = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=3, n_head=4, use_cache=False)
    return [
        ("llama", transformers.LlamaForCausalLM(llama).eval()),
        ("gpt2", transformers.GPT2LMHeadModel(gpt2).eval()),
    ]


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_batch_1_is_proven_on_the_inlined_bodies(name: str) -> None:
    model = dict(decoders())[name]
    ids = torch.randint(0, 100, (3, 7))
    spec = {"input_ids": {0: gl.Dim("batch", min=1, max=16), 1: gl.Dim("seq", min=2, max=64)}}
    shared = gl.export(model, (ids,), dynamic_shapes=spec)
    flat = gl.export(model, (ids,), dynamic_shapes=spec, reuse_blocks=False)
    assert any(node.target is invoke_subgraph for node in shared.graph.nodes)
    assert shared.range_constraints["s0"].lower == 1
    assert printout(shared.inline_subgraphs()) == printout(flat)
    assert shared.range_constraints == flat.range_constraints
    assert [str(g) for g in shared._shape_env.guards] == [str(g) for g in flat._shape_env.guards]
    module = shared.module()
    with torch.no_grad():
        for batch, seq in ((1, 5), (1, 2), (2, 9), (4, 3)):
            x = torch.randint(0, 100, (batch, seq))
            torch.testing.assert_close(module(x).logits, model(x).logits)


class CondOnBatch(nn.Module):
    """A ``cond`` body and a branch refusing batch 1: the proof cannot read the body."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cond(x.sum() > 0, lambda t: t * 2, lambda t: t - 1, (x,))
        if x.shape[0] != 1:
            return y + 1
        return y + 1


def test_control_flow_bodies_are_not_traced_again(monkeypatch: pytest.MonkeyPatch) -> None:
    traced = []
    original = api.capture_model

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        traced.append(kwargs.get("reuse_blocks"))
        return original(*args, **kwargs)

    monkeypatch.setattr(api, "capture_model", counting)
    x = torch.randn(3, 4)
    ep = gl.export(CondOnBatch(), (x,), dynamic_shapes=({0: gl.Dim.AUTO},))
    assert traced == [True]  # once: no flat re-trace, no second trace the proof cannot read
    with pytest.raises(gl.errors.InputMismatchError):  # batch 1 stays refused
        ep.module()(torch.randn(1, 4))
    for batch in (0, 2, 5):
        x = torch.randn(batch, 4)
        torch.testing.assert_close(ep.module()(x), CondOnBatch()(x))
