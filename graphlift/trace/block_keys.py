"""What makes two calls of a repeated block the same computation (issue 18).

A call of a block (a child of an ``nn.ModuleList``) is keyed on everything its
trace can depend on; when the key cannot be stated, the call is *ineligible*
and traced as usual. The key has three parts:

- :func:`structure`: the block's module tree by relative path — each
  submodule's class (hence its code), its parameter, buffer and child names,
  each parameter's and buffer's metadata (shape, stride, dtype, device,
  requires_grad) and which of them are the same tensor. A submodule with its
  own hooks, its own ``__getattribute__`` or an instance-level ``forward``,
  or registered under another path first (shared with code outside the
  block), makes the block ineligible.
- :func:`call_key`: the arguments as a pytree, tensors by symbolic metadata
  (``metadata_cache.describe``: sizes and strides as expressions, dtype,
  device, which arguments share a storage), symbolic scalars by expression,
  plain values by type and value; anything else (a real tensor, a cache
  object) is ineligible. Plus global state (default dtype, grad mode,
  autocast, deterministic algorithms), ``annotate`` blocks, the depth of the
  module stack and :meth:`ShapeEnv.knowledge_stamp`.
- the *instance attributes the first trace read* (:class:`ReadLog`), by
  relative path, compared value by value for every later call
  (:func:`value_key`): a layer reading its ``layer_idx`` or a per-layer
  ``sliding_window`` gets its own body; one that only holds them does not.
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Collection, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from graphlift.patching import Patcher
from graphlift.pytree import tree_flatten
from graphlift.pytree.modules import Same
from graphlift.trace.metadata_cache import Undescribable, describe, global_state
from graphlift.trace.recorder import Recorder, user_annotations
from graphlift.trace.tensor import TraceTensor

_PLAIN = (int, bool, str, type(None), torch.dtype, torch.device, torch.layout,
          torch.memory_format)  # fmt: skip
_SYMBOLIC = (torch.SymInt, torch.SymFloat, torch.SymBool)
_HOOK_TABLES = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks", "_backward_pre_hooks")
#: module attributes that are the module tree and its hooks (keyed by ``structure``):
#: what ``nn.Module.__init__`` sets, but ``training``, and our own ``forward`` wrapper
_STRUCTURAL = frozenset(vars(torch.nn.Module())) - {"training"} | {"forward"}


_STATE = ("_parameters", "_buffers", "_modules")
#: nn.Module's own code reads ``__dict__`` only for the state tables (``__getattr__``)
_MODULE_INTERNALS = "torch.nn.modules.module"


class Ineligible(Exception):
    """The call's key cannot be stated exactly: trace it as usual."""


def value_key(value: Any, paths: dict[int, str]) -> Hashable:
    """An attribute's value as a key: plain values and containers of them by
    value, modules of the block by relative path, anything else by identity."""
    if isinstance(value, float):
        return (float, repr(value))
    if isinstance(value, Same):
        return value
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, tuple | list | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return (type(value), tuple(value_key(item, paths) for item in items))
    if isinstance(value, dict):
        return (dict, tuple((value_key(k, paths), value_key(v, paths)) for k, v in value.items()))
    if isinstance(value, torch.nn.Module) and id(value) in paths:
        return ("module", paths[id(value)])
    if isinstance(value, functools.partial):  # made per instance, e.g. an activation
        keywords = tuple(sorted((k, value_key(v, paths)) for k, v in value.keywords.items()))
        return ("partial", Same(value.func), value_key(value.args, paths), keywords)
    if isinstance(value, types.MethodType):
        return ("method", Same(value.__func__), value_key(value.__self__, paths))
    return Same(value)


def relative_paths(block: torch.nn.Module) -> dict[int, str]:
    """id -> path inside ``block`` ("" for the block) of every submodule."""
    paths: dict[int, str] = {}
    for path, submodule in block.named_modules(remove_duplicate=False):
        paths.setdefault(id(submodule), path)
    return paths


def structure(
    block: torch.nn.Module,
    block_path: str,
    root_paths: dict[int, str],
    own_hooks: frozenset[Any],
    own_forwards: Collection[Any] = (),
) -> Hashable:
    """The block's module tree and state metadata (see the module docstring).
    ``own_forwards`` are export's own ``forward`` wrappers of nested blocks (a
    T5 block's ``layer`` list): they run the class's ``forward`` as it is while
    the outer block is traced, so they are not the model's own code."""
    modules = []
    for path, submodule in block.named_modules(remove_duplicate=False):
        full = f"{block_path}.{path}" if path else block_path
        if root_paths.get(id(submodule)) != full:
            raise Ineligible  # shared with another path: its calls are named elsewhere
        if "__getattribute__" in {k for c in type(submodule).__mro__[:-1] for k in vars(c)}:
            raise Ineligible  # its own attribute lookup: reads could not be noted
        forward = vars(submodule).get("forward", _Missing)
        if submodule is not block and (
            (forward is not _Missing and forward not in own_forwards)
            or _has_hooks(submodule, own_hooks)
        ):
            raise Ineligible
        modules.append((path, type(submodule), tuple(submodule._parameters),
                        tuple(submodule._buffers), tuple(submodule._modules)))  # fmt: skip
    first: dict[int, str] = {}
    state = []
    named = [
        *block.named_parameters(remove_duplicate=False),
        *block.named_buffers(remove_duplicate=False),
    ]
    for name, tensor in named:
        if not isinstance(tensor, TraceTensor) or tensor.base is not None:
            raise Ineligible  # a real tensor, or state that is a view of other state
        state.append((name, first.setdefault(id(tensor), name), tuple(tensor.shape),
                      tensor.stride(), tensor.dtype, tensor.device, tensor.requires_grad))  # fmt: skip
    return (tuple(modules), tuple(state))


def tree_signature(block: torch.nn.Module) -> Hashable:
    """The block's type, module tree and state shapes and dtypes: equal for two
    blocks whose ``structure`` can be equal (a necessary condition, read without
    tracing). A block no other block shares it with can never reuse a body."""
    return (type(block), tuple(
        (path, type(sub), tuple(sub._modules), tuple(
            (name, None if t is None else (tuple(t.shape), t.dtype))
            for name, t in (*sub._parameters.items(), *sub._buffers.items())
        ))
        for path, sub in block.named_modules(remove_duplicate=False)
    ))  # fmt: skip


def _has_hooks(module: torch.nn.Module, own_hooks: frozenset[Any]) -> bool:
    return any(
        hook not in own_hooks
        for table in _HOOK_TABLES
        for hook in getattr(module, table, {}).values()
    )


def global_hooks_are(own_hooks: frozenset[Any]) -> bool:
    """Whether every global module hook is one of export's own."""
    hooks = torch.nn.modules.module
    tables = (hooks._global_forward_pre_hooks, hooks._global_forward_hooks,
              hooks._global_backward_hooks, hooks._global_backward_pre_hooks)  # fmt: skip
    return all(hook in own_hooks for table in tables for hook in table.values())


def call_key(
    recorder: Recorder, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Hashable, list[Any]]:
    """The arguments' part of the key, and the flat argument leaves."""
    leaves, spec = tree_flatten((tuple(args), dict(kwargs)))
    tensors: list[torch.Tensor] = []
    described = []
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor) and not isinstance(leaf, TraceTensor):
            raise Ineligible  # a real tensor: a constant the body would have to lift
        if isinstance(leaf, _SYMBOLIC) and (
            recorder.symbolic is None or not isinstance(leaf, torch.SymInt)
        ):
            raise Ineligible
        try:
            described.append(
                describe(leaf.shadow if isinstance(leaf, TraceTensor) else leaf, tensors)
            )
        except Undescribable:
            raise Ineligible from None
        if isinstance(leaf, TraceTensor):
            if leaf.base is not None and leaf.seen_version != leaf.base.version:
                raise Ineligible  # a stale view: the flat trace regenerates it at its first use
            described[-1] = (described[-1], leaf.requires_grad, leaf.device)
    env = None if recorder.symbolic is None else recorder.symbolic.shape_env
    stamp = None if env is None else env.knowledge_stamp()
    annotations = user_annotations()
    custom = None if annotations is None else value_key(annotations, {})
    state = (global_state(), custom, len(recorder.module_stack), stamp)
    return (spec, tuple(described), state), leaves


class ReadLog:
    """Records which instance attributes of the block's modules a trace reads."""

    def __init__(self, paths: dict[int, str]) -> None:
        self.paths = paths
        self.reads: set[tuple[str, str]] = set()

    @contextmanager
    def watching(self, classes: set[type]) -> Iterator[None]:
        """While the block runs, every attribute read on an instance of ``classes``
        that is one of the block's modules is noted (instance ``__dict__`` only:
        class attributes are the same for every instance of the class)."""
        paths, reads = self.paths, self.reads

        def noting(obj: Any, name: str) -> Any:
            path = paths.get(id(obj))
            if path is not None and name not in _STRUCTURAL:
                own = object.__getattribute__(obj, "__dict__")
                if name == "__dict__":  # vars(self), self.__dict__[...]: it may read anything
                    if sys._getframe(1).f_globals.get("__name__") != _MODULE_INTERNALS:
                        reads.update((path, key) for key in own if key not in _STRUCTURAL)
                elif name in own and not name.startswith("__"):
                    reads.add((path, name))
            return object.__getattribute__(obj, name)

        with Patcher() as patcher:
            for cls in classes:
                patcher.patch_attribute(cls, "__getattribute__", noting)
            yield


def snapshot(block: torch.nn.Module, paths: dict[int, str]) -> dict[tuple[str, str], Hashable]:
    """Every instance attribute (and state entry) of the block's modules, as keys:
    compared after the first trace to find attributes the block wrote."""
    found: dict[tuple[str, str], Hashable] = {}
    for path, submodule in block.named_modules(remove_duplicate=False):
        for name, value in vars(submodule).items():
            if name == "forward" or (name in _STRUCTURAL and name not in _STATE):
                continue
            if name in _STATE:
                value = tuple((k, Same(v)) for k, v in value.items())
            found[(path, name)] = value_key(value, paths)
    return found


def read_values(
    block: torch.nn.Module, reads: set[tuple[str, str]], paths: dict[int, str]
) -> tuple[tuple[str, str, Hashable], ...]:
    """The values the attributes in ``reads`` have on ``block`` (relative paths)."""
    modules = dict(block.named_modules(remove_duplicate=False))
    values = []
    for path, name in sorted(reads):
        owner = modules.get(path)
        if owner is None:
            raise Ineligible
        value = vars(owner).get(name, _Missing)
        values.append((path, name, value_key(value, paths)))
    return tuple(values)


class _Missing:
    """An attribute the module does not have."""
