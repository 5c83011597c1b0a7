"""A complex FFT survives run_decompositions as torch's core IR keeps it.

FNet mixes tokens with ``torch.fft.fftn(x.to(complex)).real``; it traces to
``aten._fft_c2c`` and ``aten.view_as_real``, which torch does not tag core and
has no decomposition for, so torch.export's ``run_decompositions()`` keeps both.
graphlift's verifier refused them (issue 14, found by the model sweep's FNet).
"""

from __future__ import annotations

import torch
import torch.export as te
from torch import nn

import graphlift as gl

aten = torch.ops.aten
KEPT = {aten._fft_c2c.default, aten.view_as_real.default}


class FourierMixing(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.fftn(x.to(torch.complex64), dim=(1, 2)).real * 0.5 + x


def called(ep: object) -> set[object]:
    return {n.target for n in ep.graph.nodes if n.op == "call_function"}  # type: ignore[attr-defined]


def test_complex_fft_decomposes_like_torch_and_equals_eager_at_other_sizes() -> None:
    x = torch.randn(2, 5, 8)
    spec = ({0: gl.Dim("batch"), 1: gl.Dim("seq", min=1)},)
    core = gl.export(FourierMixing(), (x,), dynamic_shapes=spec).run_decompositions()
    theirs = te.export(FourierMixing(), (x,)).run_decompositions()
    assert KEPT <= called(theirs)
    assert KEPT <= called(core)
    for shape in ((2, 5, 8), (3, 7, 8), (1, 2, 8)):
        y = torch.randn(shape)
        torch.testing.assert_close(core.module()(y), FourierMixing()(y))
