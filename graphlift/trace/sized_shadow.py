"""Metadata of an op whose C++ kernel reads concrete sizes of a symbolic tensor.

Some kernels are written in C++ against ``sizes()``, not ``sym_sizes()``:
composite ones (``kron``, ``linalg_multi_dot``, ``take_along_dim``,
``gradient``) and meta ones (``fractional_max_pool3d``). On a plain meta
shadow with symbolic sizes, C++ then asks the Python interpreter for the
concrete sizes, and a tensor without a ``__torch_dispatch__`` of its own trips
torch's ``python_arg_parser`` INTERNAL ASSERT. torch's FakeTensorMode never
meets this: its tensors are a subclass that answers ``aten.size`` in Python,
C++ turns the symbolic answer into ints, and each int read guards
(specializes) that size -- which is what torch.export does for these ops.

:func:`sized_metadata` does the same for one op: its shadows become
:class:`SizedShadow` (a subclass of the shadow sharing its storage, that
answers size queries with its symbolic sizes; the ints C++ takes guard
through our ShapeEnv's ``SymNode``), composite kernels run in Python over them
so their inner ops come back here, and every other op runs its kernel on them
with Python dispatch off. The op is still recorded whole; only its metadata
comes from this path, and only when the plain run failed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_leaves, tree_map

_COMPOSITE = torch._C.DispatchKey.CompositeImplicitAutograd


def has_composite_kernel(op: Any) -> bool:
    """Whether ``op`` (an OpOverload) has a CompositeImplicitAutograd kernel to decompose with."""
    if not isinstance(op, torch._ops.OpOverload):
        return False
    if _COMPOSITE in op.py_kernels:
        return True
    try:
        # the overload's own name ("aten::tensor_split.indices"): the schema's names
        # the default overload, which ops like tensor_split do not have
        name = (
            f"{op._schema.name}.{op._overloadname}"
            if op._overloadname != "default"
            else op._schema.name
        )
        return torch._C._dispatch_has_kernel_for_dispatch_key(name, _COMPOSITE)
    except RuntimeError:  # Python-only ops (aten.size.default) are not in the dispatcher
        return False


def has_symbolic_shadow(args: Any) -> bool:
    """Whether any tensor among ``args`` has a symbolic size, stride or offset."""
    for leaf in tree_leaves(args):
        if isinstance(leaf, torch.Tensor):
            facts = (*leaf.shape, *leaf.stride(), leaf.storage_offset())
            if any(isinstance(f, torch.SymInt) for f in facts):
                return True
    return False


#: What C++ asks a Python tensor when it reads concrete ``sizes()``/``strides()``:
#: answered with the symbolic values, which C++ turns into ints (a guard each).
SIZE_QUERIES: dict[Any, Any] = {
    torch.ops.aten.size.default: lambda tensor: tuple(tensor.shape),
    torch.ops.aten.stride.default: lambda tensor: tuple(tensor.stride()),
    torch.ops.aten.storage_offset.default: lambda tensor: tensor.storage_offset(),
}


class SizedShadow(torch.Tensor):
    """A meta shadow that C++ can read concrete sizes from (they guard when read)."""

    shadow: torch.Tensor  # the plain shadow this one was made from

    @staticmethod
    def __new__(cls, shadow: torch.Tensor) -> SizedShadow:
        return torch.Tensor._make_subclass(cls, shadow)

    def __init__(self, shadow: torch.Tensor) -> None:
        self.shadow = shadow

    # torch's Tensor.__repr__ is unannotated (returns Any), which mypy cannot match
    def __repr__(self, *, tensor_contents: Any = None) -> str:  # type: ignore[override]
        return f"SizedShadow({self.shadow!r})"

    # torch types Tensor.__torch_dispatch__ as its disabled plain function, while a
    # subclass must define it as a classmethod: torch's annotation is what is wrong.
    @classmethod
    def __torch_dispatch__(  # type: ignore[override]
        cls, func: Any, types: Any, args: Any = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        query = SIZE_QUERIES.get(func)
        if query is not None:
            return query(args[0])
        if has_composite_kernel(func):
            decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        with torch._C._DisableTorchDispatch():  # the kernel itself, on these tensors
            result = func(*args, **kwargs)
        return tree_map(_wrap, result)


def sized_metadata(op: Any, *args: Any, **kwargs: Any) -> Any:
    """``op``'s result metadata on shadows ``args``/``kwargs``, concrete size reads guarding."""
    if has_composite_kernel(op):
        result = op.decompose(*tree_map(_wrap, args), **tree_map(_wrap, kwargs))
    else:
        result = op(*tree_map(_wrap, args), **tree_map(_wrap, kwargs))
    return tree_map(_unwrap, result)


def _wrap(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and not isinstance(value, SizedShadow):
        return SizedShadow(value)
    return value


def _unwrap(value: Any) -> Any:
    """The plain shadow behind ``value``; a plain alias when an in-place op changed its sizes."""
    if not isinstance(value, SizedShadow):
        return value
    shadow = value.shadow
    same = (shadow.shape, shadow.stride(), shadow.storage_offset()) == (
        value.shape, value.stride(), value.storage_offset()
    )  # fmt: skip
    if same:
        return shadow
    with torch._C._DisableTorchDispatch():
        return shadow.as_strided(value.shape, value.stride(), value.storage_offset())
