"""`TraceTensor`: the value a model computes with while it is being exported.

A wrapper tensor subclass: it has the sizes (possibly symbolic), strides,
dtype, device and ``requires_grad`` of the real tensor it stands for, but no
data. Two things ride along:

- ``shadow``: a tensor on the meta device with the same metadata. ATen's meta
  kernels run on shadows to compute the metadata of every result, and views of
  a shadow share its (empty) storage, so aliasing is visible.
- ``node``: the graph Node that computes this value *now*. An in-place update
  rebinds it to the node of the functional result (see ``trace/aliasing.py``).

Aliasing is tracked for functionalization: a view remembers its ``base`` (the
tensor that owns the storage) and the ``view_steps`` that derive it from the
base; a base counts its in-place updates in ``version``, and a view whose
``seen_version`` lags behind is regenerated from the base on its next use.

The device reported is the user's (``cpu``), never ``meta``: model code reads
``x.device`` to create new tensors, and those must land in the graph with the
user's device.
"""

from __future__ import annotations

from typing import Any

import torch

from graphlift.errors import TraceError
from graphlift.ir.node import Node, describe_value


class TraceTensor(torch.Tensor):
    shadow: torch.Tensor
    node: Node
    base: TraceTensor | None  # None: this tensor owns its storage
    view_steps: tuple[Any, ...]  # trace.aliasing.ViewStep, from base to this view
    version: int  # in-place updates of this base so far
    seen_version: int  # the base version this view's node reflects
    has_views: bool  # a view of this base was made (trace.aliasing.track_views)

    @staticmethod
    def __new__(
        cls, shadow: torch.Tensor, node: Node, device: torch.device, requires_grad: bool = False
    ) -> TraceTensor:
        return torch.Tensor._make_wrapper_subclass(
            cls,
            shadow.shape,
            strides=shadow.stride(),
            storage_offset=shadow.storage_offset(),
            # The shadow's storage size, already computed: deriving it again from
            # symbolic sizes was most of the cost of making a traced tensor.
            storage_size=shadow.untyped_storage().nbytes(),
            dtype=shadow.dtype,
            layout=shadow.layout,
            device=device,
            requires_grad=requires_grad,
        )

    def __init__(
        self, shadow: torch.Tensor, node: Node, device: torch.device, requires_grad: bool = False
    ) -> None:
        self.shadow = shadow
        self.node = node
        self.base = None
        self.view_steps = ()
        self.version = 0
        self.seen_version = 0
        self.has_views = False

    # torch's Tensor.__repr__ is unannotated (returns Any), which mypy cannot match
    def __repr__(self, *, tensor_contents: Any = None) -> str:  # type: ignore[override]
        return f"TraceTensor({describe_value(self)}, node=%{self.node.name}, device={self.device})"

    def tolist(self) -> Any:
        """torch's C++ ``tolist`` refuses tensor subclasses; element by element,
        each ``.item()`` is a data-dependent value like any other."""
        if self.dim() == 0:
            return self.item()
        return [row.tolist() for row in self.unbind(0)]

    # torch types Tensor.__torch_dispatch__ as its disabled plain function, while a
    # subclass must define it as a classmethod: torch's annotation is what is wrong.
    @classmethod
    def __torch_dispatch__(  # type: ignore[override]
        cls, func: Any, types: Any, args: Any = (), kwargs: Any = None
    ) -> Any:
        raise TraceError(
            f"{func} was called on a traced tensor outside of an export trace; "
            "traced tensors only live while graphlift.export runs the model (was one kept "
            "in a global or an attribute?)"
        )

    # Tensors created while tracing carry nodes; copying them (deepcopy of an
    # exported program's meta) must not try to copy data.
    def __deepcopy__(self, memo: dict[int, Any]) -> TraceTensor:
        return self
