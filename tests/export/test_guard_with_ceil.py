"""A guard on ``math.ceil`` of a size runs in the input checks (issue 14).

MobileViT pads a feature map to whole patches with ``math.ceil(h / patch)``;
with ``Dim.AUTO`` the recorded guard printed as ``math.ceil(...)`` and the
compiled input checks raised ``NameError: name 'math' is not defined`` for
every call at another size. Found by the model sweep's MobileViT AUTO cell.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import graphlift as gl


class PadToPatches(nn.Module):
    """MobileViT's unfolding: branch on the number of 2-pixel patches, rounded up."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = math.ceil(x.shape[1] / 2.0)
        if patches == 3:
            return F.pad(x, (0, 0, 0, 2 * patches - x.shape[1])) * 2
        return x + 1


def test_a_ceil_guard_checks_inputs_instead_of_crashing() -> None:
    ep = gl.export(PadToPatches(), (torch.randn(2, 5, 4),), dynamic_shapes=({1: gl.Dim.AUTO},))
    module = ep.module()
    for rows in (5, 6):  # ceil(rows / 2) == 3: the traced branch
        x = torch.randn(2, rows, 4)
        torch.testing.assert_close(module(x), PadToPatches()(x))
    with pytest.raises(gl.errors.InputMismatchError, match=r"math\.ceil"):
        module(torch.randn(2, 9, 4))
