"""Metadata of an op without a meta kernel, from its CPU kernel on static sizes.

Some ATen ops have no meta kernel (``histogram``): their result's metadata
cannot be computed on shadows. torch's FakeTensorMode then runs the real
kernel on zero-filled tensors of the same metadata (its "fallback kernel")
and keeps only the result's metadata. graphlift does the same when that is
sound: every size and stride is static (a symbolic size would be replaced by
its example, a silent specialization), the op's output shape does not depend
on its values (no ``dynamic_output_shape``/``data_dependent_output`` tag), its
results alias no argument and it mutates nothing, and the tensors live on the
CPU (the only device a kernel can run on here).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_leaves, tree_map

META = torch.device("meta")

_VALUE_DEPENDENT = (torch.Tag.dynamic_output_shape, torch.Tag.data_dependent_output)


def can_run_real_kernel(op: Any, args: Any, device: torch.device) -> bool:
    """Whether ``real_kernel_metadata`` gives ``op``'s metadata soundly (module docstring)."""
    if not isinstance(op, torch._ops.OpOverload) or device.type != "cpu":
        return False
    schema = op._schema
    if schema.is_mutable or any(r.alias_info is not None for r in schema.returns):
        return False
    if any(tag in op.tags for tag in _VALUE_DEPENDENT):
        return False
    for leaf in tree_leaves(args):
        if isinstance(leaf, torch.SymInt | torch.SymFloat | torch.SymBool):
            return False
        if isinstance(leaf, torch.Tensor):
            facts = (*leaf.shape, *leaf.stride(), leaf.storage_offset())
            if any(isinstance(f, torch.SymInt) for f in facts):
                return False
    return True


def real_kernel_metadata(op: Any, *args: Any, **kwargs: Any) -> Any:
    """``op`` run on zero-filled CPU tensors shaped like the shadows; its results as shadows."""
    result = op(*tree_map(_zeros_like, args), **tree_map(_zeros_like, kwargs))
    return tree_map(_shadow_of, result)


def _zeros_like(value: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    extent = value.untyped_storage().nbytes() // max(value.element_size(), 1)
    base = torch.zeros(extent, dtype=value.dtype)
    return base.as_strided(value.shape, value.stride(), value.storage_offset())


def _shadow_of(value: Any) -> Any:
    if not isinstance(value, torch.Tensor):
        return value
    return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=META)
