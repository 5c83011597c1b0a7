"""Decompositions where torch.export's succeed (issue 14, defect 5), against eager.

Each case is a program torch.export's ``run_decompositions()`` handles: ops the
default table cannot reduce (``histc``, ``unfold``), which torch's core programs
keep; a guard whose own fact the ShapeEnv has learned (T5's cross attention);
a symbolic float scale (DINOv2's position-embedding interpolation). Small
programs pin the mechanism; the real transformers models (small configs,
random weights) are the slow tier. torch.export runs in the same test as the
oracle where it exports.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import torch.export as te
from torch import nn

import graphlift as gl
from graphlift.decompose.table import is_irreducible
from graphlift.export.program.verifier import verify
from graphlift.symbolic import ShapeEnv

AUTO = gl.Dim.AUTO
aten = torch.ops.aten


def close(got: Any, expected: Any) -> None:
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def round_trip(ep: gl.ExportedProgram) -> gl.ExportedProgram:
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    buffer.seek(0)
    return gl.load(buffer)


def targets(ep: Any) -> set[Any]:
    graph = ep.graph
    return {node.target for node in graph.nodes if node.op == "call_function"}


# --- ops the default table cannot reduce stay, as in torch's core programs -----------------------


class Patches(nn.Module):
    """PatchTST's patching: overlapping windows along time, then a projection."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.unfold(2, 4, 2)).sum(-2)


class ExpertCounts(nn.Module):
    """Qwen2-MoE's routing statistics: how many tokens each expert got (histc)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        chosen = logits.topk(2, dim=-1).indices.reshape(-1).float()
        return torch.histc(chosen, bins=4, min=0, max=3) / logits.shape[0]


IRREDUCIBLE_CASES: list[tuple[str, nn.Module, Callable[[int], torch.Tensor], Any]] = [
    ("unfold", Patches(), lambda b: torch.randn(b, 10, 3).transpose(1, 2), aten.unfold.default),
    ("histc", ExpertCounts(), lambda b: torch.randn(b, 4), aten.histc.default),
]


@pytest.mark.parametrize(
    ("model", "make", "op"),
    [c[1:] for c in IRREDUCIBLE_CASES],
    ids=[c[0] for c in IRREDUCIBLE_CASES],
)
def test_an_op_without_decomposition_stays_in_the_core_program(
    model: nn.Module, make: Callable[[int], torch.Tensor], op: Any
) -> None:
    x = make(3)
    ep = gl.export(model, (x,), dynamic_shapes=({0: gl.Dim("b", min=1, max=64)},))
    core = ep.run_decompositions()
    theirs = te.export(model, (x,), dynamic_shapes=({0: te.Dim("b", min=1, max=64)},))
    theirs = theirs.run_decompositions()
    assert op in targets(core) and op in {n.target for n in theirs.graph.nodes}
    assert is_irreducible(op)
    loaded = round_trip(core)
    for b in (3, 1, 7):
        x = make(b)
        close(core.module()(x), model(x))
        close(loaded.module()(x), model(x))
        close(core.module()(x), theirs.module()(x))


def test_the_core_verifier_still_refuses_reducible_ops() -> None:
    """Only ops the default table leaves alone pass: linear has a decomposition."""
    model = nn.Linear(3, 4)
    ep = gl.export(model, (torch.randn(2, 3),))
    assert aten.linear.default in targets(ep)
    assert not is_irreducible(aten.linear.default) and not is_irreducible(aten.add.Tensor)
    with pytest.raises(gl.errors.VerificationError, match="not in the core ATen opset"):
        verify(ep, "core")


# --- a guard read as recorded, not through what the env learned from it -------------------------


def test_a_guard_is_evaluated_as_recorded_not_through_its_own_lesson() -> None:
    """Once ``s0 == s1`` is guarded, simplify() reads it as true at every size (the
    env ties s0 to s1); whether a decomposition's guard refuses a size must read
    the guard as written (T5's cross attention guards ``s0 == 1 or s0 == s2``)."""
    env = ShapeEnv()
    a = env.create_symbol(3, source="a.size()[0]")
    b = env.create_symbol(3, source="b.size()[0]")
    assert a == b  # records the guard
    fact = env.guards[-1].expr
    assert env.holds_at(fact, {"s0": 5}) is True  # through the tie
    assert env.holds_at(fact, {"s0": 5}, simplified=False) is False
    assert env.holds_at(fact, {"s0": 3}, simplified=False) is True


@pytest.mark.slow
def test_t5_with_auto_on_every_dim_decomposes_like_torch() -> None:
    pytest.importorskip("transformers")
    from tests.sweep.models import CASES_BY_NAME
    from tests.sweep.runner import GRAPHLIFT, TORCH, run_cell

    case = CASES_BY_NAME["t5"]
    ours, theirs = run_cell(GRAPHLIFT, case, "auto"), run_cell(TORCH, case, "auto")
    assert theirs["decompose"].status == "ok"
    assert ours["decompose"].status == "ok", ours


# --- the real models -----------------------------------------------------------------------------


def patchtst() -> tuple[nn.Module, Callable[[int], torch.Tensor]]:
    import transformers

    config = transformers.PatchTSTConfig(
        num_input_channels=3, context_length=32, patch_length=8, patch_stride=8, d_model=16,
        num_attention_heads=2, num_hidden_layers=2, ffn_dim=32,
    )  # fmt: skip
    torch.manual_seed(0)
    inner = transformers.PatchTSTModel(config).eval()

    class PastValues(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = inner

        def forward(self, past_values: torch.Tensor) -> torch.Tensor:
            return self.model(past_values=past_values, return_dict=False)[0]

    return PastValues().eval(), lambda b: torch.randn(b, 32, 3)


def qwen2_moe() -> tuple[nn.Module, Callable[[int], torch.Tensor]]:
    import transformers

    config = transformers.Qwen2MoeConfig(
        vocab_size=128, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
        shared_expert_intermediate_size=32, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
        max_position_embeddings=64, use_cache=False,
    )  # fmt: skip
    torch.manual_seed(0)
    inner = transformers.Qwen2MoeForCausalLM(config).eval()

    class LogitsAndAuxLoss(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = inner

        def forward(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.model(input_ids=input_ids, output_router_logits=True, return_dict=True)
            return out.logits, out.aux_loss

    return LogitsAndAuxLoss().eval(), lambda b: torch.randint(3, 128, (b, 8))


def dinov2() -> tuple[nn.Module, Callable[[int], torch.Tensor]]:
    import transformers

    config = transformers.Dinov2Config(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64,
    )  # fmt: skip
    torch.manual_seed(0)
    inner = transformers.Dinov2Model(config).eval()

    class Pixels(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = inner

        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return self.model(pixel_values=pixel_values, return_dict=False)[0]

    return Pixels().eval(), lambda side: torch.randn(2, 3, side, side + 8)


@pytest.mark.slow
def test_qwen2_moe_router_statistics_decompose_and_equal_eager() -> None:
    pytest.importorskip("transformers")
    model, make = qwen2_moe()
    ep = gl.export(model, (make(2),), dynamic_shapes=({0: AUTO, 1: AUTO},))
    core = ep.run_decompositions()
    assert aten.histc.default in targets(core)
    for b in (2, 3, 4):
        x = make(b)
        with torch.no_grad():
            close(core.module()(x), model(x))
    x = make(3)
    with torch.no_grad():
        close(round_trip(core).module()(x), model(x))


@pytest.mark.slow
def test_patchtst_patching_decomposes_and_verifies() -> None:
    """torch.export's decomposed PatchTST raises at run time (a view of a batch norm
    result whose meta strides differ from the CPU kernel's); graphlift's must run."""
    pytest.importorskip("transformers")
    model, make = patchtst()
    ep = gl.export(model, (make(2),), dynamic_shapes=({0: AUTO},))
    core = ep.run_decompositions()
    assert aten.unfold.default in targets(core)
    for b in (2, 3, 5):
        x = make(b)
        with torch.no_grad():
            close(core.module()(x), model(x))


@pytest.mark.slow
def test_dinov2_interpolated_positions_decompose_with_a_symbolic_scale() -> None:
    """Bicubic interpolation to (h // 8, w // 8) decomposes with the scale 4.0 / (h // 8)
    computed in the graph from the input's size, not a constant."""
    pytest.importorskip("transformers")
    model, make = dinov2()
    spec = ({0: gl.Dim("b", min=1, max=8), 2: gl.Dim("h", min=16, max=128),
             3: gl.Dim("w", min=16, max=128)},)  # fmt: skip
    ep = gl.export(model, (make(48),), dynamic_shapes=spec)
    core = ep.run_decompositions()
    assert aten.upsample_bicubic2d.vec not in targets(core)
    assert torch.sym_float in targets(core)
    loaded = round_trip(core)
    for side in (48, 40, 64):
        x = make(side)
        with torch.no_grad():
            close(core.module()(x), model(x))
            close(loaded.module()(x), model(x))
