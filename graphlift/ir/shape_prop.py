"""`ShapeProp`: run a GraphModule on example inputs and record each node's
tensor metadata in ``node.meta["tensor_meta"]`` (torch.fx's ShapeProp)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from graphlift.ir.interpreter import Interpreter
from graphlift.ir.node import Node, map_aggregate


class TensorMetadata(NamedTuple):
    shape: torch.Size
    dtype: torch.dtype
    requires_grad: bool
    stride: tuple[int, ...]
    memory_format: torch.memory_format | None
    is_quantized: bool
    qparams: dict[str, Any]


def extract_tensor_metadata(tensor: torch.Tensor) -> TensorMetadata:
    memory_format = None
    for candidate in (torch.contiguous_format, torch.channels_last, torch.channels_last_3d):
        if tensor.is_contiguous(memory_format=candidate):
            memory_format = candidate
            break
    qparams: dict[str, Any] = {}
    if tensor.is_quantized and tensor.qscheme() in (
        torch.per_tensor_affine,
        torch.per_tensor_symmetric,
    ):
        qparams = {"scale": tensor.q_scale(), "zero_point": tensor.q_zero_point()}
    return TensorMetadata(
        tensor.shape, tensor.dtype, tensor.requires_grad, tensor.stride(),
        memory_format, tensor.is_quantized, qparams,
    )  # fmt: skip


class ShapeProp(Interpreter):
    """``ShapeProp(gm).propagate(*args)`` fills ``meta["tensor_meta"]`` (nested
    like the value for tuple results) and ``meta["type"]`` on every node."""

    def run_node(self, n: Node) -> Any:
        result = super().run_node(n)
        found_tensor = False

        def describe(value: Any) -> Any:
            nonlocal found_tensor
            if isinstance(value, torch.Tensor):
                found_tensor = True
                return extract_tensor_metadata(value)
            return value

        metadata = map_aggregate(result, describe)
        if found_tensor:
            n.meta["tensor_meta"] = metadata
        n.meta["type"] = type(result)
        return result

    def propagate(self, *args: Any) -> Any:
        return self.run(*args)
