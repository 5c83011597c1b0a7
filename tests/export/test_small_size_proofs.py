"""What the second trace at a small size (export/small_sizes.py) proves, beyond
batch 1 (tests/export/test_batch_one.py): a one-token sequence, side by side with
eager and torch.export at sequence 1, 2 and 7.

- ``is_causal = q_len > 1`` (transformers' sdpa integration): torch's causal mask
  is ``ones(L, S).tril()``, aligned top-left, so it keeps every key exactly when
  there is at most one key. At one query *and* one key the flag is immaterial and
  the size is kept; with a cache the one query sees more keys, the flag matters
  (it would keep key 0 only), and the size stays refused: torch.export's program
  answers wrongly there.
- ``transpose(1, 2).contiguous()`` records ``contiguous`` only where the tensor is
  not contiguous already: at one token it is, and the second graph has no node.
- Both dims at 1 at once: the trace at sequence 1 refuses batch 1 by itself, so
  its own small sizes are proven first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

import graphlift as gl
from graphlift.export import small_sizes

# Each export traces two to five times, and torch.export runs side by side.
pytestmark = pytest.mark.slow

SEQUENCES = (1, 2, 7)


class CausalUnlessOneToken(nn.Module):
    """transformers' ``sdpa_attention_forward`` without a mask: causal only when the
    query has more than one token."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        is_causal = bool(q.shape[2] > 1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


class CausalUnlessOneTokenWithCache(CausalUnlessOneToken):
    """The same after three cached keys: one query token sees four keys."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("cached", torch.randn(1, 2, 3, 8))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        cached = self.cached.expand(q.shape[0], -1, -1, -1)
        return super().forward(q, torch.cat([cached, k], 2), torch.cat([cached, v], 2))


class MergeHeads(nn.Module):
    """``transpose(1, 2).contiguous().reshape(b, s, -1)`` after a branch on the
    sequence length that computes the same either way at one token."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, heads, s, d = x.shape
        scale = torch.ones(1, 1, 1, 1)
        if s != scale.shape[2]:
            scale = scale.expand(-1, -1, s, -1)
        merged = (x * scale).transpose(1, 2).contiguous()
        return merged.reshape(b, s, heads * d)


class PositionsAndCausal(nn.Module):
    """transformers' masking branch on the batch and the sdpa branch on the sequence."""

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        b, _, s, _ = q.shape
        positions = torch.arange(s).unsqueeze(0)
        if b != positions.shape[0]:
            positions = positions.expand(b, -1)
        q = q + positions[:, None, :, None].float()
        return F.scaled_dot_product_attention(q, q, q, is_causal=bool(s > 1))


def named_qkv() -> tuple[dict[int, Any], ...]:
    batch, sequence = Dim("batch"), Dim("seq")
    return ({0: batch, 2: sequence},) * 3


def qkv(batch: int, sequence: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(batch, 2, sequence, 8) for _ in range(3))


def outcome(fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...]) -> Any:
    try:
        return fn(*inputs)
    except gl.errors.InputMismatchError as error:
        return type(error)


def test_is_causal_at_one_query_and_one_key_is_immaterial() -> None:
    model = CausalUnlessOneToken()
    ours = gl.export(model, qkv(2, 7), dynamic_shapes=named_qkv())
    theirs = torch.export.export(model, qkv(2, 7), dynamic_shapes=named_qkv())
    assert [r.lower for r in ours.range_constraints.values()] == [0, 0]
    for sequence in SEQUENCES:
        inputs = qkv(3, sequence)
        want = model(*inputs)
        torch.testing.assert_close(ours.module()(*inputs), want)
        torch.testing.assert_close(theirs.module()(*inputs), want)


def test_is_causal_at_one_query_over_cached_keys_matters_and_is_refused() -> None:
    """One query over four keys: is_causal would keep key 0 only. graphlift refuses
    sequence 1 (naming the line for a named Dim, announced for Dim.AUTO); torch's
    program keeps the causal flag it traced with and differs from eager there."""
    model = CausalUnlessOneTokenWithCache()
    with pytest.raises(gl.errors.ConstraintViolationError, match="is_causal = bool") as caught:
        gl.export(model, qkv(2, 7), dynamic_shapes=named_qkv())
    assert "q.size()[2]" in str(caught.value) and "declared [0, inf]" in str(caught.value)
    auto = ({0: Dim.AUTO, 2: Dim.AUTO},) * 3
    ours = gl.export(model, qkv(2, 7), dynamic_shapes=auto)
    assert any(s.source == "q.size()[2]" and "[2, inf]" in s.change for s in ours.specializations)
    theirs = torch.export.export(model, qkv(2, 7), dynamic_shapes=named_qkv())
    for sequence in SEQUENCES:
        inputs = qkv(3, sequence)
        want = model(*inputs)
        got = outcome(ours.module(), inputs)
        if sequence == 1:
            assert got is gl.errors.InputMismatchError
            assert not torch.allclose(theirs.module()(*inputs), want)  # torch: wrong answer
        else:
            torch.testing.assert_close(got, want)
            torch.testing.assert_close(theirs.module()(*inputs), want)


def test_is_causal_with_a_key_length_of_its_own_is_refused_at_one_query() -> None:
    """The key length is another dim: at one query the flag matters for every key
    length but 1, which the second trace (key length still dynamic) cannot show."""
    model = CausalUnlessOneToken()
    query, keys = Dim("query"), Dim("keys")
    spec = ({2: query}, {2: keys}, {2: keys})
    with pytest.raises(gl.errors.ConstraintViolationError, match=r"q\.size\(\)\[2\]"):
        gl.export(model, qkv(2, 7), dynamic_shapes=spec)


def test_contiguous_of_an_already_contiguous_tensor_is_that_tensor() -> None:
    model = MergeHeads()
    spec = ({0: Dim("batch"), 2: Dim("seq")},)
    example = (torch.randn(2, 4, 7, 8),)
    ours = gl.export(model, example, dynamic_shapes=spec)
    theirs = torch.export.export(model, example, dynamic_shapes=spec)
    assert [r.lower for r in ours.range_constraints.values()] == [0, 0]
    for sequence in (0, *SEQUENCES):
        x = torch.randn(3, 4, sequence, 8)
        torch.testing.assert_close(ours.module()(x), model(x))
        torch.testing.assert_close(theirs.module()(x), model(x))


def test_batch_1_and_sequence_1_at_once() -> None:
    model = PositionsAndCausal()
    spec = ({0: Dim("batch"), 2: Dim("seq")},)
    example = (torch.randn(2, 2, 7, 8),)
    ours = gl.export(model, example, dynamic_shapes=spec)
    theirs = torch.export.export(model, example, dynamic_shapes=spec)
    for batch in (1, 3):
        for sequence in SEQUENCES:
            x = torch.randn(batch, 2, sequence, 8)
            torch.testing.assert_close(ours.module()(x), model(x))
            torch.testing.assert_close(theirs.module()(x), model(x))


def test_without_traces_left_both_at_1_stays_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The proofs take at most MAX_SECOND_TRACES traces: past it, a size stays
    refused (announced for Dim.AUTO), never assumed."""
    monkeypatch.setattr(small_sizes, "MAX_SECOND_TRACES", 1)
    model = PositionsAndCausal()
    spec = ({0: Dim.AUTO, 2: Dim.AUTO},)
    ours = gl.export(model, (torch.randn(2, 2, 7, 8),), dynamic_shapes=spec)
    assert ours.specializations
    module = ours.module()
    assert outcome(module, (torch.randn(1, 2, 1, 8),)) is gl.errors.InputMismatchError
    x = torch.randn(3, 2, 7, 8)
    torch.testing.assert_close(module(x), model(x))
