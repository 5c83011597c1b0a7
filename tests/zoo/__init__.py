"""A shared corpus of real models for graphlift's tests and benchmarks.

Each :class:`ModelCase` builds a small but real model (transformers architectures
from configs written in code, torch.nn building blocks) with seeded weights, makes
inputs at any size in its declared ranges, and names the input dimensions that may
be dynamic. The zoo never imports graphlift and never touches the network.

>>> from tests.zoo import get_case
>>> case = get_case("gpt2")
>>> args, kwargs = case.make_inputs(batch=2, seq=8)
>>> case.make_model()(*args, **kwargs)[0].shape
torch.Size([2, 8, 128])
"""

from __future__ import annotations

from .case import SEED, DimSpec, Inputs, ModelCase
from .models import CASES, CASES_BY_NAME, get_case, select

__all__ = [
    "CASES",
    "CASES_BY_NAME",
    "SEED",
    "DimSpec",
    "Inputs",
    "ModelCase",
    "get_case",
    "select",
]
