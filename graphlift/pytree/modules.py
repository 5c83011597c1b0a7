"""A module passed as an input: a pytree node of its parameters and buffers.

torch.export flattens an ``nn.Module`` argument into its parameters and buffers
(``register_module_as_pytree_input_node``) and, when the program runs, compares
only the module's *class*: a module of the same class with other non-tensor
state (``ReLU(inplace=True)``, a scale factor, a hook, ``training``) passes and
silently computes what the example module computed. Here the node's context is
a :class:`ModuleState`: the class, the names of the leaves, which of them are
the same tensor, and a summary of every submodule's non-tensor state. Specs
compare contexts, so ``ep.module()``'s structure check refuses a module whose
state differs, naming the input and the attribute.

Values are summarised by value where they are plain data (numbers, strings,
dtypes, devices, containers of those, tensors by content); functions, classes
and objects that cannot be compared by value (cycles, deep or slotted
objects) by identity, the conservative side. Which classes are nodes is scoped
(:func:`module_nodes`): ``export`` makes the classes of its example module
inputs nodes while it runs, as torch does; a spec that contains a module node
makes its class a node while inputs are matched against it.
"""

from __future__ import annotations

import copy
import enum
import types
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch

#: The module classes flattened as nodes in the current scope (empty: none).
_MODULE_CLASSES: ContextVar[frozenset[type]] = ContextVar("module_classes", default=frozenset())

#: Attributes whose value is the structure itself (leaves and submodules), or torch's
#: bookkeeping of hooks: forward hooks are summarised apart (``_hook_summary``), and
#: the other hooks do not change what forward computes.
_STRUCTURE = frozenset({"_parameters", "_buffers", "_modules"})
_FORWARD_HOOKS = {
    "_forward_hooks": ("_forward_hooks_with_kwargs", "_forward_hooks_always_called"),
    "_forward_pre_hooks": ("_forward_pre_hooks_with_kwargs",),
}
_IGNORED = frozenset({
    "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks",
    "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
    "_load_state_dict_post_hooks", "_is_full_backward_hook",
})  # fmt: skip
_PLAIN = (type(None), bool, int, str, bytes, complex, torch.dtype, torch.device, torch.layout,
          torch.memory_format, enum.Enum)  # fmt: skip
_BY_IDENTITY = (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType,
                torch.nn.Module)  # fmt: skip
MAX_DEPTH = 6


@contextmanager
def module_nodes(classes: frozenset[type]) -> Iterator[None]:
    """Within this block, modules of exactly these classes flatten as nodes."""
    token = _MODULE_CLASSES.set(_MODULE_CLASSES.get() | classes)
    try:
        yield
    finally:
        _MODULE_CLASSES.reset(token)


def current_module_classes() -> frozenset[type]:
    return _MODULE_CLASSES.get()


def module_input_classes(values: Any) -> frozenset[type]:
    """The classes of the modules among ``values`` (nested in tuples, lists, dicts)."""
    found: set[type] = set()
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, torch.nn.Module):
            found.add(type(value))
        elif type(value) in (tuple, list):
            stack.extend(value)
        elif type(value) is dict:
            stack.extend(value.values())
    return frozenset(found)


# --- the context ---------------------------------------------------------------------------


class Same:
    """An object compared by identity (a function, a shared config, a class): equal
    only to a ``Same`` of the very same object. Also block reuse's key element."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Same) and self.value is other.value

    def __hash__(self) -> int:
        return id(self.value)

    def __repr__(self) -> str:
        return f"<{type(self.value).__name__} {getattr(self.value, '__qualname__', '')}>".replace(
            " >", ">"
        )


@dataclass(frozen=True, eq=False)
class _TensorValue:
    """A plain tensor attribute (not a parameter or buffer): compared by content."""

    tensor: torch.Tensor

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _TensorValue):
            return False
        a, b = self.tensor, other.tensor
        return (a.dtype, a.shape, a.device) == (b.dtype, b.shape, b.device) and bool(
            torch.equal(a, b)
        )

    def __hash__(self) -> int:
        return hash((self.tensor.dtype, tuple(self.tensor.shape)))

    def __repr__(self) -> str:
        return f"tensor({list(self.tensor.shape)}, {self.tensor.dtype})"


@dataclass(frozen=True, eq=False)
class ModuleState:
    """The context of a module node: what must be the same for the program to
    compute what it computed for the example module."""

    cls: type
    names: tuple[str, ...]  # the leaves: parameters, then buffers (duplicates kept)
    ties: tuple[int, ...]  # per leaf, the index of the first leaf that is the same tensor
    state: tuple[tuple[str, Any], ...]  # ("sub.attribute", summary), every submodule
    prototype: Any = None  # a weak reference to the example module (for unflattening)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ModuleState)
            and (self.cls, self.names, self.ties) == (other.cls, other.names, other.ties)
            and self.state == other.state
        )

    def __hash__(self) -> int:
        return hash((self.cls, self.names, self.ties))

    def __repr__(self) -> str:
        return f"{self.cls.__name__}(leaves={list(self.names)})"

    def difference(self, other: ModuleState) -> str | None:
        """How ``other`` differs, in words (None if it does not)."""
        name = self.cls.__qualname__
        if self.names != other.names:
            return (
                f"a {name} with parameters and buffers {list(self.names)}, got {list(other.names)}"
            )
        if self.ties != other.ties:
            return f"a {name} whose tied parameters differ from the exported module's"
        mine, theirs = dict(self.state), dict(other.state)
        for key in [*mine, *(k for k in theirs if k not in mine)]:
            if key not in mine or key not in theirs or mine[key] != theirs[key]:
                was, now = mine.get(key, "absent"), theirs.get(key, "absent")
                return (
                    f"a {name} whose attribute {key!r} was {_short(was)} when exported, got "
                    f"{_short(now)}; the program computed with the exported value (export "
                    "again with this module)"
                )
        return None


def _short(summary: Any) -> str:
    """A summary as the value it stands for, shortened."""
    text = repr(_shown(summary))
    return text if len(text) <= 80 else text[:77] + "..."


def _shown(summary: Any) -> Any:
    if isinstance(summary, tuple) and len(summary) == 2 and isinstance(summary[0], type):
        kind, value = summary
        if kind is float:
            return float.fromhex(value)
        if isinstance(value, tuple):
            return (
                kind(_shown(item) for item in value)
                if kind is not dict
                else dict((_shown(k), _shown(v)) for k, v in value)
            )
        return value
    return summary


# --- flatten and unflatten ---------------------------------------------------------------


def flatten_module(module: torch.nn.Module) -> tuple[list[Any], ModuleState]:
    """The module's parameters and buffers, and its context."""
    named = [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]
    first: dict[int, int] = {}
    ties = tuple(first.setdefault(id(tensor), index) for index, (_, tensor) in enumerate(named))
    state: list[tuple[str, Any]] = []
    for prefix, sub in module.named_modules(remove_duplicate=False):
        state += _module_summary(prefix, sub)
    context = ModuleState(
        type(module),
        tuple(name for name, _ in named),
        ties,
        tuple(state),
        weakref.ref(module),
    )
    return [tensor for _, tensor in named], context


def unflatten_module(leaves: list[Any], context: ModuleState) -> torch.nn.Module:
    """The example module with ``leaves`` as its parameters and buffers: the very
    module when they are its own, else a structural copy (the original is never
    changed)."""
    module: torch.nn.Module | None = context.prototype() if context.prototype is not None else None
    if module is None:
        raise ReferenceError(
            f"cannot rebuild the {context.cls.__qualname__} input: the example module is gone"
        )
    current, _ = flatten_module(module)
    if len(current) == len(leaves) and all(a is b for a, b in zip(current, leaves)):
        return module
    twin = _structural_copy(module)
    for name, leaf in zip(context.names, leaves):
        owner_path, _, attribute = name.rpartition(".")
        owner = twin.get_submodule(owner_path)
        table = owner._parameters if attribute in owner._parameters else owner._buffers
        table[attribute] = leaf
    return twin


def _structural_copy(module: torch.nn.Module) -> torch.nn.Module:
    twin = copy.copy(module)
    twin.__dict__ = dict(module.__dict__)
    twin._parameters = dict(module._parameters)
    twin._buffers = dict(module._buffers)
    twin._modules = {
        name: None if child is None else _structural_copy(child)
        for name, child in module._modules.items()
    }
    return twin


# --- summaries -----------------------------------------------------------------------------


def _module_summary(prefix: str, module: torch.nn.Module) -> list[tuple[str, Any]]:
    """``(path, summary)`` per non-tensor attribute of one module (not its children)."""
    where = f"{prefix}." if prefix else ""
    found: list[tuple[str, Any]] = [(f"{where}<class>", Same(type(module)))]
    for table in ("_parameters", "_buffers", "_modules"):
        keys = getattr(module, table, {})
        found.append((f"{where}<{table[1:]}>", tuple(k for k in keys)))
        found.append((f"{where}<{table[1:]} None>", tuple(k for k, v in keys.items() if v is None)))
    for attribute, value in vars(module).items():
        if attribute in _STRUCTURE or attribute in _IGNORED:
            continue
        if attribute in _FORWARD_HOOKS:
            found.append((f"{where}{attribute}", _hook_summary(module, attribute)))
        else:
            found.append((f"{where}{attribute}", summarize(value)))
    return found


def _hook_summary(module: torch.nn.Module, attribute: str) -> tuple[Any, ...]:
    """Forward hooks by identity and flags, not by their handles' (global) ids."""
    hooks = getattr(module, attribute)
    flags = [getattr(module, name, {}) for name in _FORWARD_HOOKS[attribute]]
    return tuple(
        (summarize(hook), tuple(key in flag for flag in flags)) for key, hook in hooks.items()
    )


def summarize(value: Any, depth: int = 0, seen: frozenset[int] = frozenset()) -> Any:
    """A value that compares equal exactly when the two values would make the
    traced forward compute the same (by value, else by identity)."""
    if isinstance(value, float):
        return (float, value.hex())  # distinguishes -0.0, and nan equals nan
    if isinstance(value, _PLAIN):
        return (type(value), value)
    if isinstance(value, torch.Tensor):
        return _TensorValue(value.detach().clone())
    if isinstance(value, _BY_IDENTITY) or depth >= MAX_DEPTH or id(value) in seen:
        return Same(value)
    if isinstance(value, types.MethodType):
        return ("method", Same(value.__func__), Same(value.__self__))
    inner = seen | {id(value)}
    if type(value) in (tuple, list, set, frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return (type(value), tuple(summarize(item, depth + 1, inner) for item in items))
    if isinstance(value, dict):
        return (
            type(value),
            tuple((summarize(k, depth + 1, inner), summarize(v, depth + 1, inner))
                  for k, v in value.items()),
        )  # fmt: skip
    attributes = getattr(value, "__dict__", None)
    if attributes is None or getattr(type(value), "__slots__", None):
        return Same(value)
    return (Same(type(value)), summarize(dict(attributes), depth + 1, inner))
