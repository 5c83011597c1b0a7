"""Per-op metadata reuse: an op called again on the same metadata is not re-run.

With symbolic sizes, computing one op's result metadata runs torch's Python
meta kernel, which asks the ShapeEnv dozens of questions through SymNodes, and
then the 0/1 check re-runs it on concrete sizes. A transformer asks exactly the
same of every layer. The result of that computation is a function of:

- the op (and the kernel used for it, a function of the op);
- every argument's metadata: for tensors sizes, strides and storage offset as
  expressions, dtype, device, layout, the conj/neg bits, which arguments share
  a storage; symbolic scalars by expression; other arguments by type and value
  (``1``, ``1.0`` and ``True`` promote differently; floats by ``repr``);
- global state a kernel may read: default dtype, grad mode, autocast,
  deterministic algorithms;
- what the ShapeEnv knows (:meth:`ShapeEnv.knowledge_stamp`): a question is
  answered from facts, ranges and replacements, and their current form shapes
  the result's expressions.

A computation is only *stored* when it left the ShapeEnv's knowledge unchanged
(no guard, runtime assert, symbol or range was added, including by the 0/1
check), so a later call with an equal key would run exactly the same
computation and record nothing: reusing its result is the same as re-running
it. A call that did add a guard is not stored; the next one (now answered from
that guard) is, and every later one reuses it. Anything the key cannot describe
(a real tensor, an unknown object) is never reused.

With static sizes (no ShapeEnv) the key's concrete metadata is all a kernel
reads, whichever export asks, so those entries are shared by every export in
the process (as torch's FakeTensor cache is), bounded by
``STATIC_ENTRIES_LIMIT``. torch's meta kernels for many ops (``addmm``,
elementwise ops) are Python decompositions, which dominate a static export.

Result tensors are rebuilt, never shared: a fresh result gets a fresh meta
tensor with the recorded sizes and strides; a result that shared a storage
with argument ``i`` becomes a view of argument ``i``'s shadow with the
recorded geometry (so views stay visible as views); a result that *was*
argument ``i`` is that argument again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch

from graphlift.symbolic import ShapeEnv

META = torch.device("meta")

_SCALARS = (int, bool, str, type(None), torch.dtype, torch.device, torch.layout,
            torch.memory_format)  # fmt: skip
_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)

#: Ops whose metadata is never reused: ``as_strided`` reads its input's storage
#: size, which the key does not describe.
NEVER_REUSED = frozenset({
    torch.ops.aten.as_strided.default, torch.ops.aten.as_strided_scatter.default,
})  # fmt: skip

_reuse_enabled: ContextVar[bool] = ContextVar("graphlift_metadata_reuse", default=True)


@contextmanager
def metadata_reuse(enabled: bool) -> Iterator[None]:
    """Turn per-op metadata reuse on or off for the exports inside the block
    (tests compare programs made both ways)."""
    token = _reuse_enabled.set(enabled)
    try:
        yield
    finally:
        _reuse_enabled.reset(token)


class Undescribable(Exception):
    """An argument or result the cache cannot describe exactly."""


@dataclass(frozen=True)
class ResultTensor:
    """How to rebuild one result tensor: ``source`` is the index of the argument
    tensor it shares a storage with (None: a fresh tensor); ``same`` means it
    is that argument itself."""

    source: int | None
    same: bool
    sizes: tuple[Any, ...]
    strides: tuple[Any, ...]
    offset: Any
    dtype: torch.dtype

    def rebuild(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        if self.source is None:
            return torch.empty_strided(self.sizes, self.strides, dtype=self.dtype, device=META)
        if self.same:
            return tensors[self.source]
        return tensors[self.source].as_strided(self.sizes, self.strides, self.offset)


#: Static entries are shared by every export in the process: with concrete sizes
#: the key is all a kernel reads, whichever export asks (torch's FakeTensor cache
#: is process-wide too). Emptied when it holds this many.
STATIC_ENTRIES_LIMIT = 20_000
_static_entries: dict[Hashable, Any] = {}


class MetadataCache:
    """Result metadata by call key, for one export's ShapeEnv (None: static
    sizes, where the key's concrete metadata is all a kernel reads, so the
    entries are the process's static ones)."""

    def __init__(self, shape_env: ShapeEnv | None) -> None:
        self.shape_env = shape_env
        self.entries: dict[Hashable, Any] = {} if shape_env is not None else _static_entries
        self.hits = 0

    def compute(
        self, op: Any, args: tuple[Any, ...], kwargs: dict[str, Any], run: Callable[[], Any]
    ) -> Any:
        """``run()`` (the op's metadata on shadow ``args``/``kwargs``), or its
        stored equal."""
        if not _reuse_enabled.get() or op in NEVER_REUSED:
            return run()
        tensors: list[torch.Tensor] = []
        try:
            key = (op, describe(args, tensors), describe(kwargs, tensors), global_state(),
                   self._stamp())  # fmt: skip
        except Undescribable:
            return run()
        entry = self.entries.get(key)
        if entry is not None:
            self.hits += 1
            with self._rebuilding():
                return _rebuild(entry, tensors)
        result = run()
        if self._stamp() == key[-1]:
            try:
                template = _template(result, tensors)
            except Undescribable:
                return result
            if self.shape_env is None and len(self.entries) >= STATIC_ENTRIES_LIMIT:
                self.entries.clear()
            self.entries[key] = template
        return result

    def _stamp(self) -> tuple[int, int] | None:
        return None if self.shape_env is None else self.shape_env.knowledge_stamp()

    def _rebuilding(self) -> AbstractContextManager[None]:
        """Making result tensors asks only about storage sizes (the geometry is
        given): no guards."""
        return nullcontext() if self.shape_env is None else self.shape_env.suppress_guards()


def global_state() -> tuple[Any, ...]:
    """State a kernel reads besides its arguments. The Python dispatcher routes
    some meta kernels to torch's Python references, which lay out a size-1 dim
    otherwise (``view`` of ``[1, 8, 16]`` with strides ``(128, 1, 8)`` to ``[1, 8, 4,
    4]``: stride 128 there, 8 in C++ and on the CPU): a static entry made under it
    (the structural 0/1 check's concrete recording) must not serve a static export."""
    return (torch.get_default_dtype(), torch.is_grad_enabled(),
            torch.is_autocast_enabled("cpu"), torch.are_deterministic_algorithms_enabled(),
            torch._C._dispatch_tls_is_dispatch_key_included(_PYTHON_DISPATCHER))  # fmt: skip


_PYTHON_DISPATCHER = torch._C.DispatchKey.PythonDispatcher


def describe(value: Any, tensors: list[torch.Tensor]) -> Hashable:
    """A hashable description of an argument; tensors are appended to ``tensors``."""
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()._cdata
        shared = next((i for i, t in enumerate(tensors) if t.untyped_storage()._cdata == storage),
                      None)  # fmt: skip
        tensors.append(value)
        if value._has_symbolic_sizes_strides:
            geometry = (_sizes(value.shape), _sizes(value.stride()), _size(value.storage_offset()))
        else:  # plain ints: nothing to convert
            geometry = (tuple(value.shape), value.stride(), value.storage_offset())
        return ("T", shared, *geometry, value.dtype, value.device, value.layout,
                value.is_conj(), value.is_neg(), value.requires_grad)  # fmt: skip
    if isinstance(value, _SYMBOLIC):
        return (type(value), value.node.symbolic_expr)
    if isinstance(value, float):
        return (float, repr(value))
    if isinstance(value, _SCALARS):
        return (type(value), value)
    if isinstance(value, tuple | list):
        return (type(value), tuple(describe(item, tensors) for item in value))
    if isinstance(value, dict):
        return (dict, tuple((k, describe(v, tensors)) for k, v in value.items()))
    raise Undescribable


def _size(size: Any) -> Hashable:
    return ("S", size.node.symbolic_expr) if isinstance(size, torch.SymInt) else size


def _sizes(sizes: Any) -> tuple[Hashable, ...]:
    return tuple(_size(size) for size in sizes)


def _template(result: Any, tensors: list[torch.Tensor]) -> Any:
    """``result`` with each tensor replaced by how to rebuild it."""
    if isinstance(result, torch.Tensor):
        if result.device != META or result.layout != torch.strided:
            raise Undescribable
        if result.is_conj() or result.is_neg() or result.requires_grad:
            raise Undescribable
        storage = result.untyped_storage()._cdata
        source = next((i for i, t in enumerate(tensors) if t.untyped_storage()._cdata == storage),
                      None)  # fmt: skip
        same = source is not None and tensors[source] is result
        if source is None and not _is_zero(result.storage_offset()):
            raise Undescribable
        return ResultTensor(source, same, tuple(result.shape), tuple(result.stride()),
                            result.storage_offset(), result.dtype)  # fmt: skip
    if isinstance(result, tuple | list):
        items = [_template(item, tensors) for item in result]
        fresh = [
            r for r, i in zip(result, items) if isinstance(i, ResultTensor) and i.source is None
        ]
        storages = {t.untyped_storage()._cdata for t in fresh}
        if len(storages) != len(fresh):
            raise Undescribable  # results aliasing each other but no argument
        return type(result)(items)
    if result is None or isinstance(result, (*_SCALARS, float, torch.SymInt)):
        return result
    raise Undescribable


def _is_zero(offset: Any) -> bool:
    return not isinstance(offset, torch.SymInt) and offset == 0


def _rebuild(template: Any, tensors: list[torch.Tensor]) -> Any:
    if isinstance(template, ResultTensor):
        return template.rebuild(tensors)
    if isinstance(template, tuple | list):
        return type(template)(_rebuild(item, tensors) for item in template)
    return template
