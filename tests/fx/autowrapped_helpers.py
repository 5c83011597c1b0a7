"""A module whose functions a Tracer autowraps with ``autowrap_modules=(math, this)``."""

from __future__ import annotations

import torch


def soft_clip(x: torch.Tensor, limit: float) -> torch.Tensor:
    """Data-dependent Python: only traceable as one recorded call."""
    if x.abs().max() > limit:
        return torch.tanh(x / limit) * limit
    return x
