"""Decomposed programs at sizes 0, 1, 2 and 5, against eager (issue 14, defect 5).

Export keeps sizes 0 and 1 of a dynamic dim where the program is right there
(``docs/zero_one.md``); ``run_decompositions`` must keep every size its source
program runs, with the same values, or — for ``Dim.AUTO`` dims only — announce
what it narrowed. Each program here is exported, decomposed, and both programs
are run on every size of a small grid: where the source runs, the decomposed
program runs and equals eager, unless the narrowing is announced in its
``specializations`` (then it refuses with a typed error before computing).
A named Dim's range is a promise: a decomposition that would narrow it raises.
"""

from __future__ import annotations

import io
import itertools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphlift as gl
from graphlift.decompose import zero_one
from graphlift.errors import ConstraintViolationError, InputMismatchError, NarrowingWarning
from tests.zoo.torch_models import make_conv_bn

AUTO = gl.Dim.AUTO
SIZES = (0, 1, 2, 5)


def archive(ep: gl.ExportedProgram) -> bytes:
    buffer = io.BytesIO()
    gl.save(ep, buffer)
    return buffer.getvalue()


def decompose_quietly(ep: gl.ExportedProgram) -> gl.ExportedProgram:
    """``ep.run_decompositions()``, failing on a NarrowingWarning: nothing to narrow."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", NarrowingWarning)
        return ep.run_decompositions()


def runs(ep: gl.ExportedProgram, args: tuple[torch.Tensor, ...]) -> Any:
    """The program's result, or None when it refuses the sizes (before computing)."""
    try:
        return ep.module()(*args)
    except InputMismatchError:
        return None


def compare_on_grid(
    model: nn.Module,
    ep: gl.ExportedProgram,
    core: gl.ExportedProgram,
    grid: Iterable[tuple[torch.Tensor, ...]],
) -> tuple[int, list[tuple[int, ...]]]:
    """Run source, decomposed program and eager on every input of ``grid``: the
    decomposed program equals eager wherever it runs. Returns how many inputs it
    ran and the shapes the source ran but it refused."""
    ran, refused = 0, []
    for args in grid:
        if runs(ep, args) is None:
            continue  # the source refuses these sizes (announced at export)
        got = runs(core, args)
        if got is None:
            refused.append(tuple(d for a in args for d in a.shape))
            continue
        torch.testing.assert_close(got, model(*args), rtol=1e-4, atol=1e-5)
        ran += 1
    return ran, refused


def announced(core: gl.ExportedProgram) -> set[str]:
    """The input dims ``core`` narrowed beyond its source, from its specializations."""
    return {s.source for s in core.specializations if "to decompose" in s.change}


# --- conv-bn: products of spatial sizes that are 1 only together ---------------------------------


@pytest.fixture(scope="module")
def conv_bn() -> nn.Module:
    return make_conv_bn().eval()


@pytest.mark.slow
def test_conv_bn_with_auto_dims_decomposes_and_keeps_every_size(conv_bn: nn.Module) -> None:
    """Batch norm's decomposition asks whether ``((h+1)//2)*((w+1)//2)`` is 1 (a
    layout question of an elementwise op), which only ``h == w == 1`` together
    answers yes: the check runs that joint size and keeps it."""
    x = torch.randn(2, 3, 16, 16)
    ep = gl.export(conv_bn, (x,), dynamic_shapes=({0: AUTO, 2: AUTO, 3: AUTO},))
    core = decompose_quietly(ep)
    assert core.specializations == ep.specializations
    grid = [
        (torch.randn(b, 3, h, w),)
        for b, h, w in itertools.product(SIZES, (1, 2, 3, 5, 16), (1, 2, 5))
    ]
    ran, refused = compare_on_grid(conv_bn, ep, core, grid)
    assert not refused
    assert ran >= 30  # h == w == 1 and the batches 0 and 1 among them
    assert runs(core, (torch.randn(1, 3, 1, 1),)) is not None


def test_conv_bn_with_a_named_batch_decomposes(conv_bn: nn.Module) -> None:
    batch = gl.Dim("batch", min=0)
    ep = gl.export(conv_bn, (torch.randn(2, 3, 16, 16),), dynamic_shapes=({0: batch},))
    core = decompose_quietly(ep)
    ran, refused = compare_on_grid(conv_bn, ep, core, [(torch.randn(b, 3, 16, 16),) for b in SIZES])
    assert (ran, refused) == (len(SIZES), [])


# --- a reshape into heads (CodeGen's qkv split) -------------------------------------------------


class SplitHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        qkv = self.qkv(x)
        split = qkv.reshape(qkv.shape[:-1] + (4, -1))  # noqa: RUF005 (CodeGen writes it so)
        q, k, v = split.permute(0, 2, 1, 3).chunk(3, dim=-1)
        return (q @ k.transpose(-1, -2)).softmax(-1) @ v


@pytest.mark.parametrize("kind", ["auto", "named"])
def test_a_reshape_into_heads_decomposes_at_every_size(kind: str) -> None:
    """The view's decomposition asks questions that fail at an empty batch (an
    ambiguous ``-1``) but hold at batch 1: the batch 1 it checked stays."""
    torch.manual_seed(0)
    model = SplitHeads().eval()
    if kind == "auto":
        spec: Any = ({0: AUTO, 1: AUTO},)
    else:
        spec = ({0: gl.Dim("batch", min=0), 1: gl.Dim("seq", min=0)},)
    ep = gl.export(model, (torch.randn(3, 4, 8),), dynamic_shapes=spec)
    core = decompose_quietly(ep)
    grid = [(torch.randn(b, t, 8),) for b, t in itertools.product(SIZES, SIZES)]
    ran, refused = compare_on_grid(model, ep, core, grid)
    assert not refused
    # An empty batch or length is refused by both (reshape's -1 is ambiguous there,
    # eager raises too); batch 1 runs with lengths 2 and 5, length 1 with batches 2 and 5.
    assert ran >= 8


# --- attention over a second input's batch (T5's cross attention) -------------------------------


class CrossAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.kv = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.q(x).view(b, t, 2, 4).transpose(1, 2)
        kv = self.kv(memory).view(memory.shape[0], memory.shape[1], 2, 8).transpose(1, 2)
        k, v = kv.chunk(2, dim=-1)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, 8)


def cross_grid() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [
        (torch.randn(b, t, 8), torch.randn(b2, s, 8))
        for b, b2, t, s in itertools.product(SIZES, SIZES, (1, 3), (1, 5))
    ]


def test_cross_attention_with_one_batch_dim_decomposes_at_every_size() -> None:
    torch.manual_seed(0)
    model = CrossAttention().eval()
    batch = gl.Dim("batch", min=0)
    spec = ({0: batch, 1: gl.Dim("t", min=0)}, {0: batch, 1: gl.Dim("s", min=0)})
    ep = gl.export(model, (torch.randn(2, 3, 8), torch.randn(2, 5, 8)), dynamic_shapes=spec)
    core = decompose_quietly(ep)
    ran, refused = compare_on_grid(model, ep, core, cross_grid())
    assert not refused
    assert ran >= 12


@pytest.mark.slow
def test_cross_attention_with_auto_batches_announces_what_it_narrows() -> None:
    """With Dim.AUTO the two batches are separate dims; export keeps a memory batch
    of 1 broadcast over the query batch. The sdpa decomposition is written for
    equal batches: the decomposed program refuses the broadcast, says so in its
    specializations and a warning, and leaves its source as it was."""
    torch.manual_seed(0)
    model = CrossAttention().eval()
    args = (torch.randn(2, 3, 8), torch.randn(2, 5, 8))
    ep = gl.export(model, args, dynamic_shapes=({0: AUTO, 1: AUTO}, {0: AUTO, 1: AUTO}))
    printout, saved = str(ep), archive(ep)
    with pytest.warns(NarrowingWarning, match=r"memory\.size\(\)\[0\].*scaled_dot_product"):
        core = ep.run_decompositions()
    assert str(ep) == printout and archive(ep) == saved
    assert "memory.size()[0]" in announced(core)
    assert "to decompose aten.scaled_dot_product_attention" in str(core)
    ran, refused = compare_on_grid(model, ep, core, cross_grid())
    assert ran >= 8  # export itself refuses a query batch of 0 or 1 here (announced)
    assert refused and all(shape[0] != shape[3] for shape in refused)  # only unequal batches
    # the source still runs what the decomposed program refuses
    broadcast = (torch.randn(2, 3, 8), torch.randn(1, 5, 8))
    torch.testing.assert_close(ep.module()(*broadcast), model(*broadcast))
    with pytest.raises(InputMismatchError):
        core.module()(*broadcast)


# --- an algorithm chosen by size (isin) ----------------------------------------------------------


class IsIn(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.isin(x, y)


def isin_args() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(0, 5, (6,)), torch.randint(0, 5, (4,))


def test_a_named_dim_is_never_narrowed_by_a_decomposition() -> None:
    ep = gl.export(IsIn(), isin_args(), dynamic_shapes=({0: gl.Dim("n")}, {0: gl.Dim("m")}))
    printout, saved = str(ep), archive(ep)
    with pytest.raises(ConstraintViolationError, match="isin") as raised:
        ep.run_decompositions()
    assert isinstance(raised.value, RuntimeError)
    assert str(ep) == printout and archive(ep) == saved


def test_auto_dims_narrowed_by_a_decomposition_are_announced() -> None:
    model = IsIn()
    ep = gl.export(model, isin_args(), dynamic_shapes=({0: AUTO}, {0: AUTO}))
    printout, saved = str(ep), archive(ep)
    with pytest.warns(NarrowingWarning, match="isin") as caught:
        core = ep.run_decompositions()
    assert any(w.filename == __file__ for w in caught)  # points at the caller
    assert str(ep) == printout and archive(ep) == saved
    assert announced(core) and not announced(ep)
    grid: Callable[[], list[tuple[torch.Tensor, torch.Tensor]]] = lambda: [  # noqa: E731
        (torch.randint(0, 5, (n,)), torch.randint(0, 5, (m,)))
        for n, m in itertools.product((0, 1, 2, 6, 40), (0, 1, 4, 40))
    ]
    ran, _ = compare_on_grid(model, ep, core, grid())
    assert ran >= 4
    again = decompose_quietly(core)  # nothing left to narrow
    assert announced(again) == announced(core)


class MetaBoolMaskAttention(nn.Module):
    """A decoder's attention core on the meta device (a large config exported
    without weights, issue 18): heads split by a transpose, a boolean causal mask.
    torch's composite sdpa on meta takes the math path, which builds the mask's
    ``-inf`` fill with factories on the meta device."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, _ = x.shape
        q = x.view(b, s, 4, 8).transpose(1, 2)
        mask = torch.ones(s, s, dtype=torch.bool, device=x.device).tril()
        return F.scaled_dot_product_attention(q, q, q, attn_mask=mask, scale=0.3)


def test_meta_device_attention_keeps_batch_one_through_decomposition() -> None:
    """The 0/1 check of a decomposition runs the op and the recorded ops on CPU
    numbers; factories recorded for the meta device must make CPU tensors there
    too, or every such check 'fails' and a named batch min 1 is refused."""
    x = torch.randn(4, 6, 32, device="meta")
    spec = ({0: gl.Dim("batch", min=1, max=64), 1: gl.Dim("seq", min=2, max=64)},)
    ep = gl.export(MetaBoolMaskAttention(), (x,), dynamic_shapes=spec)
    core = decompose_quietly(ep)
    assert [(r.lower, r.upper) for r in core.range_constraints.values()] == [(1, 64), (2, 64)]
    for batch in (1, 3):
        out = core.module()(torch.randn(batch, 5, 32, device="meta"))
        assert out.shape == (batch, 4, 5, 8) and out.device.type == "meta"


def test_one_tensor_passed_as_query_key_and_value_decomposes_for_every_batch() -> None:
    """The 0/1 check draws one random tensor per traced tensor, not per argument:
    self-attention passes the same tensor three times."""
    model = MetaBoolMaskAttention()
    x = torch.randn(4, 6, 32)
    spec = ({0: gl.Dim("batch", min=1, max=64), 1: gl.Dim("seq", min=2, max=64)},)
    core = decompose_quietly(gl.export(model, (x,), dynamic_shapes=spec))
    for batch, seq in ((1, 2), (1, 5), (3, 7)):
        y = torch.randn(batch, seq, 32)
        torch.testing.assert_close(core.module()(y), model(y))


def test_large_check_data_repeats_a_prime_block() -> None:
    """Past RANDOM_PERIOD elements the 0/1 check's data repeats one random block
    (a large config's weights would cost seconds of randn); the period is prime,
    so no row of a weight repeats another."""
    period = zero_one.RANDOM_PERIOD
    data = zero_one._random([3, period // 2 + 7], torch.float32, torch.Generator().manual_seed(0))
    assert data.shape == (3, period // 2 + 7) and data.dtype == torch.float32
    flat = data.flatten()
    assert torch.equal(flat[period : period + 5], flat[:5])
    assert not torch.equal(data[0], data[1]) and not torch.equal(data[1], data[2])


def test_llama_with_two_default_dims_decomposes_for_every_size() -> None:
    """torch's Dims with their default minimum on batch and sequence: the reshape
    after attention leaves ``b*s == 0 or b*s >= 1``, which holds everywhere and so
    must not be refused as a narrowing (torch.export decomposes this model)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, use_cache=False,
    )  # fmt: skip
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 128, (2, 9))
    spec = {"input_ids": {0: torch.export.Dim("batch"), 1: torch.export.Dim("seq")}}
    core = decompose_quietly(gl.export(model, (), {"input_ids": ids}, dynamic_shapes=spec))
    for batch, seq in ((1, 1), (1, 5), (3, 4)):
        x = torch.randint(0, 128, (batch, seq))
        torch.testing.assert_close(core.module()(input_ids=x).logits, model(input_ids=x).logits)
