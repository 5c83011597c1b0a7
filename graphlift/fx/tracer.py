"""`Tracer` and `symbolic_trace`: record a module's Python-level operations.

The root's ``forward`` runs once with Proxies for its inputs. While it runs,
one `Patcher` redirects ``nn.Module.__call__`` (so that leaf modules become
``call_module`` nodes and others are traced through), ``nn.Module.__getattr__``
(so that parameters and buffers become ``get_attr`` nodes), functions marked
with `wrap` and the functions of ``autowrap_modules`` (``math``). Everything is
restored when tracing ends, also on error.

The methods documented as hooks are the ones subclasses override, as in
torch.fx: ``is_leaf_module``, ``call_module``, ``getattr``, ``create_arg``,
``create_node``, ``create_proxy``, ``iter``, ``keys``, ``to_bool``, ``trace``.
"""

from __future__ import annotations

import builtins
import copy
import inspect
import math
from collections.abc import Callable
from types import FunctionType, ModuleType
from typing import Any

import torch
import torch.utils._pytree as torch_pytree

from graphlift.errors import (
    FxArgumentError,
    TraceError,
    UnknownAttributeError,
    UnsupportedTraceError,
)
from graphlift.fx.proxy import Proxy, TracerBase, _proxies_in
from graphlift.fx.proxyable import PROXYABLE_CLASSES
from graphlift.fx.wrapping import (
    WRAPPED_FUNCTIONS,
    recording_wrapper,
    wrapped_builtins,
    wrapped_function_ids,
)
from graphlift.ir.codegen import is_generated_code
from graphlift.ir.effects import register_side_effect
from graphlift.ir.graph import Graph
from graphlift.ir.graph_module import GraphModule
from graphlift.ir.input_structure import META_KEY as INPUT_META_KEY
from graphlift.ir.input_structure import FlattenedInput
from graphlift.ir.node import Argument, Node
from graphlift.patching import Patcher
from graphlift.source import user_where


class PHBase:
    """Marks an input in ``concrete_args`` that stays a graph input."""

    def __repr__(self) -> str:
        return "PH"


PH = PHBase()


class Tracer(TracerBase):
    """Turns a module or function into a Graph by running it on Proxies.

    ``autowrap_modules``: modules whose functions are recorded as single calls
    when given Proxies (default: ``math``). ``autowrap_functions``: individual
    functions treated the same way. ``param_shapes_constant``: read the shape
    of parameters directly instead of recording ``getattr(weight, "shape")``.
    """

    def __init__(
        self,
        autowrap_modules: tuple[ModuleType, ...] = (math,),
        autowrap_functions: tuple[Callable[..., Any], ...] = (),
        param_shapes_constant: bool = False,
    ) -> None:
        self.autowrap_modules = autowrap_modules
        self.autowrap_functions = autowrap_functions
        self.param_shapes_constant = param_shapes_constant
        self.record_stack_traces = True
        self.proxy_buffer_attributes = True
        self.traced_func_name = "forward"  # the root's method that trace() records
        self.graph = Graph()
        self.root: torch.nn.Module = torch.nn.Module()
        self.tensor_constants: dict[str, torch.Tensor] = {}
        self.object_constants: dict[str, Any] = {}
        self.module_stack: dict[str, tuple[str, type]] = {}
        self._tensor_attributes: dict[int, str] = {}
        self._module_paths: dict[int, str] = {}
        self._attribute_proxies: dict[str, Proxy] = {}
        self._patcher: Patcher | None = None
        self._wrapped_ids: set[int] = set()
        self._autowrapped_ids: set[int] = set()
        self._wrapped_builtins: set[str] = set()

    # --- hooks -------------------------------------------------------------------------

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        """Leaf modules are recorded as one ``call_module`` node instead of being
        traced through. Default, as torch.fx: modules defined in ``torch.nn``
        (and ``torch.ao.nn``), except ``Sequential``; and TorchScript modules,
        whose compiled forward cannot run on Proxies."""
        if isinstance(m, torch.jit.ScriptModule):
            return True
        module = type(m).__module__
        return module.startswith(("torch.nn", "torch.ao.nn")) and not isinstance(
            m, torch.nn.Sequential
        )

    def path_of_module(self, mod: torch.nn.Module) -> str:
        """The qualified name of ``mod`` in the root module."""
        path = self._module_paths.get(id(mod))
        if path is None:
            raise TraceError(
                f"module {type(mod).__name__} is called in forward but is not a submodule of the "
                "traced module; assign it to an attribute in __init__ (self.name = ...) so the "
                "graph can refer to it",
                where=user_where(),
            )
        return path

    def call_module(
        self,
        m: torch.nn.Module,
        forward: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Record ``m(*args, **kwargs)``: a ``call_module`` node for a leaf,
        otherwise trace through ``forward``."""
        qualified_name = self.path_of_module(m)
        saved = dict(self.module_stack)
        self.module_stack[qualified_name] = (qualified_name, type(m))
        try:
            if not self.is_leaf_module(m, qualified_name):
                return forward(*args, **kwargs)
            return self.create_proxy("call_module", qualified_name, args, kwargs)
        finally:
            self.module_stack = saved

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict[str, Any]) -> Any:
        """What ``module.<attr>`` evaluates to while tracing: a ``get_attr`` proxy
        for parameters (and buffers), the value itself otherwise."""
        is_parameter = isinstance(attr_val, torch.nn.Parameter)
        is_buffer = self.proxy_buffer_attributes and isinstance(attr_val, torch.Tensor)
        if not (is_parameter or is_buffer):
            return attr_val
        qualified_name = self._tensor_attributes.get(id(attr_val))
        if qualified_name is None:
            return attr_val
        if qualified_name not in parameter_proxy_cache:
            proxy = self.create_proxy("get_attr", qualified_name, (), {})
            if is_parameter and self.param_shapes_constant:
                proxy = ConstantShapeProxy(proxy.node, self, attr_val)
            parameter_proxy_cache[qualified_name] = proxy
        return parameter_proxy_cache[qualified_name]

    def create_arg(self, a: Any) -> Argument:
        """Turn a value the traced code passes to an operation into a node
        argument; tensors become ``get_attr`` nodes (see TracerBase for the rest)."""
        if isinstance(a, torch.nn.Parameter | torch.Tensor):
            return self._tensor_argument(a)
        if isinstance(a, torch.nn.Module):
            path = self._module_paths.get(id(a))
            if path is None:
                raise UnknownAttributeError(
                    f"a module ({type(a).__name__}) that is not part of the traced module is "
                    "passed to an operation; assign it to an attribute in __init__",
                    where=user_where(),
                )
            return self.create_node("get_attr", path, (), {})
        if type(a) in PROXYABLE_CLASSES:
            return self.create_node("get_attr", self._constant_name(a), (), {})
        return super().create_arg(a)

    def _constant_name(self, value: Any) -> str:
        """Where a constant object the trace uses lives on the GraphModule."""
        for name, known in self.object_constants.items():
            if known is value:
                return name
        index = 0
        while f"_{type(value).__name__}_constant_{index}" in self.object_constants:
            index += 1
        name = f"_{type(value).__name__}_constant_{index}"
        self.object_constants[name] = value
        return name

    # --- tracing -------------------------------------------------------------------------

    def trace(
        self,
        root: torch.nn.Module | Callable[..., Any],
        concrete_args: dict[str, Any] | tuple[Any, ...] | None = None,
    ) -> Graph:
        """Run ``root`` on Proxies and return the recorded Graph."""
        if isinstance(root, torch.nn.Module):
            self.root = root
            fn = getattr(type(root), self.traced_func_name, None)
            if fn is None:
                raise FxArgumentError(
                    f"traced_func_name={self.traced_func_name} doesn't exist in "
                    f"{type(root).__name__}; set tracer.traced_func_name to one of its methods"
                )
        else:
            self.root = torch.nn.Module()
            fn = root
        self.graph = Graph(tracer_cls=type(self))
        self.tensor_constants = {}
        self.object_constants = {}
        self.module_stack = {}
        self._attribute_proxies = {}
        self._module_paths = {}
        for name, module in self.root.named_modules(remove_duplicate=False):
            self._module_paths.setdefault(id(module), name)
        self._tensor_attributes = _tensor_attribute_names(self.root)
        with Patcher() as patcher:
            self._patcher = patcher
            try:
                fn, args, kwargs = self._placeholders(
                    fn, isinstance(root, torch.nn.Module), concrete_args or {}
                )
                self._patch_globals(patcher, fn)
                result = fn(*args, **kwargs)
                self.create_node("output", "output", (self.create_arg(result),), {},
                                 type_expr=fn.__annotations__.get("return"))  # fmt: skip
            finally:
                self._patcher = None
        # Constants made while tracing live on a shallow copy of the root, so
        # that GraphModule(tracer.root, graph) finds them and the user's module
        # is never modified.
        self.root = _root_with_constants(self)
        return self.graph

    def __deepcopy__(self, memo: dict[int, Any]) -> Tracer:
        """A copy with its own graph and state; modules it refers to (``math``) are shared."""
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        for key, value in vars(self).items():
            shared = key in ("autowrap_modules", "_patcher")
            copied.__dict__[key] = value if shared else copy.deepcopy(value, memo)
        return copied

    def _placeholders(
        self,
        fn: Callable[..., Any],
        is_method: bool,
        concrete_args: dict[str, Any] | tuple[Any, ...],
    ) -> tuple[Callable[..., Any], list[Any], dict[str, Any]]:
        """One placeholder per parameter; returns the function to call and its
        positional and keyword arguments.

        As in torch.fx, parameters are read from the undecorated function
        (``inspect.unwrap``) and the decorated one is called. Without a
        decorator, ``*args``/``**kwargs``/keyword-only parameters become
        ordinary parameters so that one placeholder can stand for each.
        """
        analysis, original = inspect.unwrap(fn), fn
        parameters = inspect.signature(analysis).parameters
        names = [_placeholder_name(p) for p in parameters.values()]
        if is_method:
            _check_self_parameter(list(parameters.values()))
            names = names[1:]
        call_order = names
        keyword_only = {p.name for p in parameters.values() if p.kind is p.KEYWORD_ONLY}
        if analysis is fn:  # called positionally, in the order of its code object
            fn, call_order = _positional_form(fn)
            call_order = call_order[1:] if is_method else call_order
            keyword_only = set()
        if isinstance(concrete_args, tuple):
            if all(name.startswith("*") for name in names) and concrete_args:
                return original, self._variadic_inputs(is_method, concrete_args), {}
            concrete_args = _by_name(names, concrete_args)
        unknown = set(concrete_args) - {name.lstrip("*") for name in names}
        if unknown:
            raise TraceError(
                f"concrete_args names {sorted(unknown)}, which forward does not take; "
                f"its parameters are {names}"
            )
        values = {name: self._input(name, parameters[name.lstrip("*")], analysis, concrete_args)
                  for name in names}  # fmt: skip
        args: list[Any] = [self.root] if is_method else []
        args += [values[name] for name in call_order if name.lstrip("*") not in keyword_only]
        kwargs = {name: values[name] for name in names if name in keyword_only}
        return fn, args, kwargs

    def _variadic_inputs(self, is_method: bool, concrete_args: tuple[Any, ...]) -> list[Any]:
        """``forward(*args, **kwargs)`` traced with a tuple of ``concrete_args``:
        one placeholder per item (``input_0``...), passed positionally, as torch.fx does."""
        args: list[Any] = [self.root] if is_method else []
        for index, marker in enumerate(concrete_args):
            proxy = self.create_proxy("placeholder", f"input_{index}", (), {})
            for attribute, value in vars(marker).items() if isinstance(marker, PHBase) else ():
                setattr(proxy.node, attribute, value)
            args.append(proxy)
        return args

    def _input(
        self,
        name: str,
        param: inspect.Parameter,
        analysis: Callable[..., Any],
        concrete_args: dict[str, Any],
    ) -> Any:
        """The value the traced function gets for parameter ``name``."""
        default = () if param.default is inspect.Parameter.empty else (param.default,)
        if param.name in concrete_args:
            return self._concrete_input(name, concrete_args[param.name], default)
        annotation = analysis.__annotations__.get(param.name)
        return self.create_proxy("placeholder", name, default, {}, type_expr=annotation)

    def _concrete_input(self, name: str, value: Any, default: tuple[Any, ...]) -> Any:
        """An input fixed by ``concrete_args``: the graph keeps the input (its
        default is the concrete value) and checks it at run time; ``PH`` leaves
        inside a container stay graph values."""
        if _contains_placeholder(value):  # also a bare PH: placeholder x_1, as torch.fx names it
            return self._structured_input(name, value)
        if _proxies_in(value):
            placeholder = self.create_proxy("placeholder", name, default, {})
            return _substitute_placeholders(value, placeholder)
        placeholder = self.create_proxy(
            "placeholder", name, (value,), {}
        )  # defaults to the traced value
        if value is None:
            self.create_proxy(
                "call_function", _assert_is_none, (placeholder, _specialized(name, value)), {}
            )
        elif _is_plain_constant(value):
            torch._assert(placeholder == value, _specialized(name, value))  # type: ignore[no-untyped-call]  # torch's is unannotated
        return value

    def _ph_input(self, name: str, marker: PHBase, default: tuple[Any, ...]) -> Proxy:
        """A placeholder for a PH; attributes set on a PHBase subclass instance
        are copied to the node, as torch.fx does."""
        proxy = self.create_proxy("placeholder", name, default, {})
        for attribute, attribute_value in vars(marker).items():
            setattr(proxy.node, attribute, attribute_value)
        return proxy

    def _structured_input(self, name: str, value: Any) -> Any:
        """One placeholder per leaf of a structure holding PHs (``x_1``, ``x_2``...,
        as torch.fx names them); constant leaves are checked at run time."""
        leaves, spec = torch_pytree.tree_flatten(value, is_leaf=lambda v: isinstance(v, PHBase))
        values = []
        for index, leaf in enumerate(leaves):
            leaf_name = f"{name}_{index + 1}"
            if isinstance(leaf, PHBase):
                proxy = self._ph_input(leaf_name, leaf, ())
            else:
                proxy = self._concrete_leaf(leaf_name, leaf)
            proxy.node.meta[INPUT_META_KEY] = FlattenedInput(name, index, spec)
            values.append(proxy if isinstance(leaf, PHBase) else leaf)
        return torch_pytree.tree_unflatten(values, spec)

    def _concrete_leaf(self, name: str, value: Any) -> Proxy:
        placeholder = self.create_proxy("placeholder", name, (), {})
        if value is None:
            self.create_proxy(
                "call_function", _assert_is_none, (placeholder, _specialized(name, value)), {}
            )
        elif _is_plain_constant(value):
            torch._assert(placeholder == value, _specialized(name, value))  # type: ignore[no-untyped-call]  # torch's is unannotated
        else:
            raise TraceError(
                f"concrete_args fixes {name} to a {type(value).__name__}, which cannot be "
                "checked at run time; pass PH for it so that it stays a graph input",
                where=user_where(),
            )
        return placeholder

    def _patch_globals(self, patcher: Patcher, fn: Callable[..., Any]) -> None:
        # Identify the functions to record before any of them is patched away.
        self._wrapped_ids = wrapped_function_ids()
        self._wrapped_builtins = wrapped_builtins()
        self._autowrapped_ids = {id(f) for f in self.autowrap_functions} | {
            id(v) for m in self.autowrap_modules for v in vars(m).values() if callable(v)
        }
        patcher.patch_attribute(torch.nn.Module, "__getattr__", self._module_getattr())
        patcher.patch_attribute(torch.nn.Module, "__call__", self._module_call())
        for namespace, name in WRAPPED_FUNCTIONS:
            target = namespace.get(name, getattr(builtins, name, None))  # wrap("len") works too
            if target is not None:
                patcher.patch_item(namespace, name, recording_wrapper(target))
        for module in self.autowrap_modules:
            for name, value in list(vars(module).items()):
                if callable(value) and not name.startswith("_"):
                    patcher.patch_attribute(module, name, recording_wrapper(value))
        self._autowrap_globals(patcher, getattr(fn, "__globals__", {}))
        if is_generated_code(fn):  # a GraphModule's code calls wrapped builtins by name
            namespace = fn.__globals__
            for name in self._wrapped_builtins - set(namespace):
                patcher.patch_item(namespace, name, recording_wrapper(getattr(builtins, name)))

    def _autowrap_globals(self, patcher: Patcher, namespace: dict[str, Any]) -> None:
        """Wrap the names in a module's globals that are bound to functions to
        record: autowrapped ones (``from math import sqrt``) and wrap()-ed ones,
        also under a GraphModule's generated names (``_clip``), so that
        retracing generated code records them again."""
        for name, value in list(namespace.items()):
            wrapped = id(value) in self._wrapped_ids
            if wrapped or (id(value) in self._autowrapped_ids and not name.startswith("_")):
                patcher.patch_item(namespace, name, recording_wrapper(value))

    def _module_getattr(self) -> Callable[..., Any]:
        original = _ORIGINAL_MODULE_GETATTR

        def module_getattr(module: torch.nn.Module, attr: str) -> Any:
            return self.getattr(attr, original(module, attr), self._attribute_proxies)

        return module_getattr

    def _module_call(self) -> Callable[..., Any]:
        original = _ORIGINAL_MODULE_CALL

        def module_call(module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
            def forward(*args: Any, **kwargs: Any) -> Any:
                return original(module, *args, **kwargs)

            if self._patcher is not None:
                forward_function = inspect.getattr_static(type(module), "forward", None)
                self._autowrap_globals(self._patcher, getattr(forward_function, "__globals__", {}))
            return self.call_module(module, forward, args, kwargs)

        return module_call

    def _tensor_argument(self, tensor: torch.Tensor) -> Node:
        """A tensor used directly by the traced code: an attribute of the root
        (by identity) or a constant made while tracing. A parameter from
        outside the root cannot be referred to (torch.fx: NameError)."""
        qualified_name = self._tensor_attributes.get(id(tensor))
        if qualified_name is None and isinstance(tensor, torch.nn.Parameter):
            raise UnknownAttributeError(
                "a parameter that is not part of the traced module is used; register it on "
                "the module (self.weight = nn.Parameter(...)) so the graph can refer to it",
                where=user_where(),
            )
        if qualified_name is None:
            qualified_name = f"_tensor_constant{len(self.tensor_constants)}"
            self.tensor_constants[qualified_name] = tensor
            self._tensor_attributes[id(tensor)] = qualified_name
        return self.create_node("get_attr", qualified_name, (), {})


class ConstantShapeProxy(Proxy):
    """A parameter whose ``shape``/``size()``/``dim()`` are read from the real
    parameter (``Tracer(param_shapes_constant=True)``)."""

    def __init__(self, node: Node, tracer: Tracer, parameter: torch.nn.Parameter) -> None:
        super().__init__(node, tracer)
        self.parameter = parameter

    def __getattr__(self, name: str) -> Any:
        if name == "shape":
            return self.parameter.shape
        if name in ("size", "dim", "ndim", "nelement", "numel"):
            return getattr(self.parameter, name)
        return super().__getattr__(name)


_ORIGINAL_MODULE_GETATTR = torch.nn.Module.__getattr__
_ORIGINAL_MODULE_CALL = torch.nn.Module.__call__


def _check_self_parameter(parameters: list[inspect.Parameter]) -> None:
    """A module's forward must take ``self`` as an ordinary first parameter."""
    if not parameters or parameters[0].kind is inspect.Parameter.VAR_POSITIONAL:
        raise UnsupportedTraceError(
            "``self`` argument cannot be part of *args expansion: forward must take "
            "self as its first parameter (def forward(self, ...))",
            where=user_where(),
        )


def _by_name(names: list[str], concrete_args: tuple[Any, ...]) -> dict[str, Any]:
    """``concrete_args`` given positionally, one per parameter (torch.fx: RuntimeError otherwise)."""
    if len(names) != len(concrete_args):
        raise UnsupportedTraceError(
            f"tracing expected {len(names)} arguments but got {len(concrete_args)} concrete "
            "arguments; pass one per parameter, or a dict by name"
        )
    return {name.lstrip("*"): value for name, value in zip(names, concrete_args)}


def _placeholder_name(parameter: inspect.Parameter) -> str:
    kind = parameter.kind
    stars = (
        "*" if kind is parameter.VAR_POSITIONAL else "**" if kind is parameter.VAR_KEYWORD else ""
    )
    return stars + parameter.name


@register_side_effect
def _assert_is_none(value: Any, message: str) -> Any:
    """Runtime check of an input that ``concrete_args`` fixed to None (recorded
    again, not run, when a GraphModule containing it is traced)."""
    if isinstance(value, Proxy):
        return value.tracer.create_proxy("call_function", _assert_is_none, (value, message), {})
    if value is not None:
        raise AssertionError(message)
    return None


def _is_plain_constant(value: Any) -> bool:
    """bool/int/float/str, or a tuple, list or dict of them: compared for equality at run time."""
    if isinstance(value, tuple | list):
        return all(_is_plain_constant(v) for v in value)
    if isinstance(value, dict):
        return all(_is_plain_constant(v) for v in value.values())
    return type(value) in (bool, int, float, str)


def _specialized(name: str, value: Any) -> str:
    return f"input {name!r} was fixed to {value!r} by concrete_args when tracing, but got another value"


def _contains_placeholder(value: Any) -> bool:
    leaves = torch_pytree.tree_leaves(value, is_leaf=lambda v: isinstance(v, PHBase))
    return any(isinstance(leaf, PHBase) for leaf in leaves)


def _substitute_placeholders(value: Any, source: Proxy) -> Any:
    """Rebuild ``value`` with each proxy-free item read from ``source``."""
    if isinstance(value, dict):
        return {k: _substitute_placeholders(v, source[k]) for k, v in value.items()}
    if isinstance(value, tuple | list):
        items = [_substitute_placeholders(v, source[i]) for i, v in enumerate(value)]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def _positional_form(fn: Callable[..., Any]) -> tuple[Callable[..., Any], list[str]]:
    """``fn`` with keyword-only parameters, ``*args`` and ``**kwargs`` turned
    into ordinary positional parameters (so that one placeholder can stand for
    each and the function can be called positionally), and the placeholder
    names in parameter order (``*args`` and ``**kwargs`` spelled with stars)."""
    code = fn.__code__
    count = code.co_argcount + code.co_kwonlyargcount
    names = list(code.co_varnames[:count])
    variadic = code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    if not variadic and not code.co_kwonlyargcount:
        return fn, names
    if code.co_flags & inspect.CO_VARARGS:
        names.append("*" + code.co_varnames[len(names)])
    if code.co_flags & inspect.CO_VARKEYWORDS:
        names.append("**" + code.co_varnames[len(names)])
    plain = code.replace(
        co_flags=code.co_flags & ~variadic, co_argcount=len(names), co_kwonlyargcount=0
    )
    patched = FunctionType(plain, fn.__globals__, fn.__name__, None, fn.__closure__)
    return patched, names


def _tensor_attribute_names(root: torch.nn.Module) -> dict[int, str]:
    """id -> qualified name of every tensor held by the module tree: parameters,
    buffers and plain tensor attributes (first name wins, like named_parameters)."""
    names: dict[int, str] = {}
    for prefix, module in root.named_modules(remove_duplicate=False):
        dotted = f"{prefix}." if prefix else ""
        for name, value in vars(module).items():
            if isinstance(value, torch.Tensor):
                names.setdefault(id(value), dotted + name)
        for name, value in [*module._parameters.items(), *module._buffers.items()]:
            if value is not None:
                names.setdefault(id(value), dotted + name)
    return names


def symbolic_trace(
    root: torch.nn.Module | Callable[..., Any],
    concrete_args: dict[str, Any] | tuple[Any, ...] | None = None,
) -> GraphModule:
    """Trace ``root`` into a GraphModule (torch.fx.symbolic_trace's contract).

    The user's module is not modified: constants made while tracing are
    installed on the returned GraphModule only.
    """
    tracer = Tracer()
    graph = tracer.trace(root, concrete_args)
    name = type(root).__name__ if isinstance(root, torch.nn.Module) else root.__name__
    return GraphModule(tracer.root, graph, name)


def _root_with_constants(tracer: Tracer) -> torch.nn.Module:
    """A shallow copy of the traced root that also holds the tracing constants."""
    if not tracer.tensor_constants and not tracer.object_constants:
        return tracer.root
    shell = copy.copy(tracer.root)
    shell._buffers = dict(shell._buffers)
    for name, tensor in tracer.tensor_constants.items():
        shell._buffers[name] = tensor
    shell.__dict__.update(tracer.object_constants)
    return shell
