"""A model file for the command line: BERT from the test zoo (small config, random weights)."""

from typing import Any

import torch

from tests.zoo.models import get_case


def make_example() -> tuple[torch.nn.Module, tuple[Any, ...], dict[str, Any]]:
    case = get_case("bert")
    args, kwargs = case.make_inputs()
    return case.make_model(), args, kwargs
