"""A decomposed program at size 1 of a dynamic dim, where the kernels lay tensors out
otherwise than the recorded strides say (issue 14: soundness inside the declared range).

diffusers' ``UNet2DModel`` exported with ``Dim("batch", min=1)`` ran at batch 1
(``ep.module()``), but its decomposed program raised ``Expected
X.is_contiguous(memory_format)`` from ``native_group_norm``: the attention block
hands ``group_norm`` a tensor whose recorded strides are channels-last-like, so
the ``group_norm`` composite recorded no copy, while at batch 1 the kernels give
the size-1 batch dim another stride and torch's channels-last heuristic (which
``native_group_norm`` checks against) reads it. torch.export's decomposed program
fails the same way. ``trace/layout_preconditions.py`` records the copy whenever
the layout is not the same for every admitted size; docs/zero_one.md says why.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import graphlift as gl
from tests.export.test_decompose_diffusers import decomposed_runs_like_eager
from tests.sweep.diffusers_models import DIFFUSERS_CASES

aten = torch.ops.aten


class AttentionThenGroupNorm(nn.Module):
    """The shape of diffusers' attention block: a projection over ``[b, h*w, c]``,
    reshaped back to ``[b, c, h, w]``, a residual add, then a GroupNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.norm = nn.GroupNorm(2, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.proj(x.flatten(2).transpose(1, 2))
        return self.norm(tokens.transpose(1, 2).reshape(b, c, h, w) + x)


class ConvThenGroupNorm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def _copies(program: gl.ExportedProgram) -> list[torch.memory_format]:
    """The memory formats of the copies the program makes."""
    return [
        node.kwargs.get("memory_format", torch.preserve_format)
        for node in program.graph.nodes
        if node.target is aten.clone.default
    ]


def _decomposed(model: nn.Module, example: torch.Tensor, batch: object) -> gl.ExportedProgram:
    ep = gl.export(model, (example,), dynamic_shapes=({0: batch},))
    return ep.run_decompositions()


def test_the_premise_the_kernels_lay_out_a_batch_of_one_otherwise() -> None:
    """Eager: the tensor reaching GroupNorm is channels-last-like at batch 2, and at
    batch 1 neither contiguous nor channels-last-like (its size-1 dim's stride)."""
    model = AttentionThenGroupNorm().eval()
    seen = []
    model.norm.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    for batch in (2, 1):
        model(torch.randn(batch, 8, 4, 4))
    at_two, at_one = seen
    assert at_two.is_contiguous(memory_format=torch.channels_last)
    assert at_two.stride()[0] == 8 * 4 * 4
    assert at_one.stride()[0] != 8 * 4 * 4 and not at_one.is_contiguous()


def test_group_norm_after_an_attention_reshape_decomposes_equal_to_eager_at_batch_one() -> None:
    torch.manual_seed(0)
    model = AttentionThenGroupNorm().eval()
    core = _decomposed(model, torch.randn(2, 8, 4, 4), gl.Dim("batch", min=1, max=8))
    assert _copies(core) == [torch.channels_last]
    for batch in (1, 2, 3):
        x = torch.randn(batch, 8, 4, 4)
        torch.testing.assert_close(core.module()(x), model(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(gl.errors.InputMismatchError):
        core.module()(torch.randn(9, 8, 4, 4))


def test_no_copy_where_the_layout_is_the_same_for_every_size() -> None:
    """The copy is recorded only where the recorded strides do not decide the
    layout: not with batch >= 2, not for a contiguous activation, and a static
    batch of 1 makes just the copy eager makes (``group_norm``'s own)."""
    torch.manual_seed(0)
    attention, conv = AttentionThenGroupNorm().eval(), ConvThenGroupNorm().eval()
    at_least_two = _decomposed(attention, torch.randn(2, 8, 4, 4), gl.Dim("b", min=2, max=8))
    static_one = gl.export(attention, (torch.randn(1, 8, 4, 4),)).run_decompositions()
    contiguous = _decomposed(conv, torch.randn(2, 4, 4, 4), gl.Dim("batch", min=1, max=8))
    assert _copies(at_least_two) == _copies(contiguous) == []
    assert _copies(static_one) == [torch.contiguous_format]
    x = torch.randn(1, 8, 4, 4)
    torch.testing.assert_close(static_one.module()(x), attention(x), rtol=1e-4, atol=1e-5)
    for batch in (1, 3):
        x = torch.randn(batch, 4, 4, 4)
        torch.testing.assert_close(contiguous.module()(x), conv(x), rtol=1e-4, atol=1e-5)


def test_a_static_program_after_a_dynamic_one_keeps_the_kernels_strides() -> None:
    """Decomposing the dynamic program records the decomposition again on concrete
    sizes under the Python dispatcher, whose ``view`` reference lays out the size-1
    batch otherwise than the C++ kernel. Static metadata is shared between exports
    in a process, so that entry, keyed without the dispatcher, made the static
    batch-1 program's ``view`` channels-last-like and its GroupNorm skip the copy:
    a raw ``RuntimeError`` depending on what was exported before."""
    torch.manual_seed(0)
    model = AttentionThenGroupNorm().eval()
    _decomposed(model, torch.randn(2, 8, 4, 4), gl.Dim("batch", min=1, max=8))
    x = torch.randn(1, 8, 4, 4)
    static_one = gl.export(model, (x,)).run_decompositions()
    assert _copies(static_one) == [torch.contiguous_format]  # group_norm's own, as eager
    torch.testing.assert_close(static_one.module()(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_unet2d_decomposed_equals_eager_at_batch_one_two_and_three() -> None:
    case = next(case for case in DIFFUSERS_CASES if case.name == "unet2d")
    torch.manual_seed(0)
    sizes = [(1, 8, 8), (1, 16, 24), (2, 8, 8), (3, 24, 16)]
    decomposed_runs_like_eager(
        case,
        case.dynamic_shapes(gl.Dim),
        [dict(batch=b, height=h, width=w) for b, h, w in sizes],
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["vae_encode", "vae_decode"])
def test_the_vae_decomposed_equals_eager_at_its_smallest_sizes(name: str) -> None:
    """The VAE's mid-block attention feeds GroupNorm the same way (both raised at
    batch 1 before)."""
    case = next(case for case in DIFFUSERS_CASES if case.name == name)
    torch.manual_seed(0)
    smallest = {dim.name: dim.min for dim in case.dims}
    decomposed_runs_like_eager(
        case, case.dynamic_shapes(gl.Dim), [smallest, case.sizes("example"), case.sizes("other")]
    )
