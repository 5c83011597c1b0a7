"""`GraphModule`: an ``nn.Module`` whose ``forward`` is generated from a Graph.

It owns exactly the submodules, parameters, buffers and tensor attributes its
graph refers to (copied by qualified name from the root it was built from).
Each instance gets its own subclass so that ``recompile()`` can install the
generated ``forward`` on the class, where ``nn.Module.__call__`` looks for it,
without touching other instances.

Setting ``graph`` defers code generation until ``forward`` or ``code`` is first
read (as torch.fx's ``_LazyGraphModule`` does): most programs an export makes
are never run as Python (the exported program's own module, shared block
bodies), and generating and compiling their code was a tenth of a static
export. The code then reflects the graph when first read; an explicit
``recompile()`` generates at once.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any

import torch

from graphlift.errors import GraphError, MissingAttributeError
from graphlift.ir.codegen import PythonCode, compile_forward
from graphlift.ir.graph import Graph


class GraphModule(torch.nn.Module):
    """``GraphModule(root, graph, class_name="GraphModule")``.

    ``root`` is the module the graph's ``get_attr``/``call_module`` targets are
    copied from, or a dict from qualified name to the object to install.
    """

    _per_instance_class = False

    def __new__(cls, *args: Any, **kwargs: Any) -> GraphModule:
        base = next(c for c in cls.__mro__ if not c.__dict__.get("_per_instance_class"))
        instance_class = type(base.__name__, (base,), {"_per_instance_class": True})
        return super().__new__(instance_class)

    def __init__(
        self,
        root: torch.nn.Module | dict[str, Any],
        graph: Graph,
        class_name: str = "GraphModule",
    ) -> None:
        super().__init__()
        type(self).__name__ = type(self).__qualname__ = class_name
        self.meta: dict[str, Any] = {}
        self._code: str | None = None
        if isinstance(root, torch.nn.Module):
            self.training = root.training
            for target in _referenced_attributes(graph):
                copy_attribute(root, self, target)
        elif isinstance(root, dict):
            for target in _referenced_attributes(graph):
                if target not in root:
                    raise GraphError(
                        f"the graph refers to {target!r}, but the dict given as root has no such key"
                    )
                _install_attribute(self, target, root[target], as_buffer=True)
        else:
            raise GraphError(
                f"GraphModule root must be an nn.Module or a dict, got {type(root).__name__}"
            )
        self.graph = graph

    @property
    def graph(self) -> Graph:
        return self._graph

    @graph.setter
    def graph(self, graph: Graph) -> None:
        self._graph = graph
        graph.owning_module = self
        self._code = None
        own_class: Any = type(self)  # this instance's own class
        own_class.forward = _COMPILE_ON_FIRST_READ
        own_class._instance = weakref.ref(self)

    @property
    def code(self) -> str:
        """The Python source of ``forward``."""
        if self._code is None:
            return self.recompile().src
        return self._code

    def recompile(self) -> PythonCode:
        """Regenerate ``forward`` from the graph; call after editing the graph."""
        code = self._graph.python_code("self")
        self._code = code.src
        type(self).forward = compile_forward(code)
        return code

    def print_readable(self, print_output: bool = True) -> str:
        """The module as a class definition with its generated forward."""
        body = "".join(f"    {line}\n" for line in self.code.splitlines())
        text = f"class {type(self).__name__}(torch.nn.Module):\n{body}"
        if print_output:
            print(text)
        return text

    # --- submodules ------------------------------------------------------------------

    def add_submodule(self, target: str, module: torch.nn.Module) -> None:
        """Install ``module`` at the dotted path ``target``, creating parents as needed."""
        _install_attribute(self, target, module, as_buffer=False)

    def delete_submodule(self, target: str) -> bool:
        """Remove the submodule at ``target``; False if there was none."""
        *parents, leaf = target.split(".")
        owner: Any = self
        for atom in parents:
            owner = getattr(owner, atom, None)
            if not isinstance(owner, torch.nn.Module):
                return False
        if not isinstance(getattr(owner, leaf, None), torch.nn.Module):
            return False
        delattr(owner, leaf)
        return True

    def delete_all_unused_submodules(self) -> None:
        """Remove submodules that no node calls or reads (parents of used ones stay)."""
        used: set[str] = set()
        for target in _referenced_attributes(self._graph):
            atoms = target.split(".")
            used.update(".".join(atoms[:i]) for i in range(1, len(atoms) + 1))
        for node in self._graph.find_nodes(op="call_module"):  # a called module keeps its children
            called = self.get_submodule(str(node.target))
            used.update(f"{node.target}.{name}" for name, _ in called.named_modules() if name)
        for name, _ in list(self.named_modules()):
            if name and name not in used:
                self.delete_submodule(name)

    # --- copying -----------------------------------------------------------------------

    def __deepcopy__(self, memo: dict[int, Any]) -> GraphModule:
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        type(copied).__name__ = type(copied).__qualname__ = type(self).__name__
        copied.graph = copied._graph
        return copied

    def __copy__(self) -> GraphModule:
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        type(copied).__name__ = type(copied).__qualname__ = type(self).__name__
        copied.graph = copy.deepcopy(self._graph)
        return copied

    def _replicate_for_data_parallel(self) -> GraphModule:
        """nn.DataParallel's replica: a copy with its own graph and forward."""
        replica = self.__copy__()
        object.__setattr__(replica, "_is_replica", True)
        return replica

    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items() if k != "_code"}
        base = type(self).__mro__[1]
        return (_rebuild, (base, type(self).__name__, state))

    def __str__(self) -> str:
        return f"{super().__str__()}\n\n{self.code}"


class _CompileOnFirstRead:
    """The class's ``forward`` until it is first read, on the instance or on its
    own class (tracers read ``type(module).forward``): reading it generates the
    code (``recompile`` installs the real ``forward`` on the class) and returns
    the real one, so calls, ``inspect.signature`` and subclasses' wrappers all
    see generated code."""

    def __get__(self, instance: GraphModule | None, owner: type) -> Any:
        module = instance
        if module is None:
            reference = owner.__dict__.get("_instance")
            module = reference() if reference is not None else None
        if module is None:
            return self
        module.recompile()
        compiled: Any = owner if instance is None else instance
        return compiled.forward


_COMPILE_ON_FIRST_READ = _CompileOnFirstRead()


def _rebuild(base: type[GraphModule], class_name: str, state: dict[str, Any]) -> GraphModule:
    module = base.__new__(base)
    module.__dict__.update(state)
    type(module).__name__ = type(module).__qualname__ = class_name
    module.graph = module._graph
    return module


def _referenced_attributes(graph: Graph) -> list[str]:
    return [str(n.target) for n in graph.nodes if n.op in ("get_attr", "call_module")]


def copy_attribute(source: torch.nn.Module, destination: torch.nn.Module, target: str) -> None:
    """Copy ``source.<target>`` to ``destination.<target>``, keeping buffers buffers."""
    *parents, leaf = target.split(".")
    owner: Any = source
    for atom in parents:
        owner = getattr(owner, atom)
    if not hasattr(owner, leaf):
        raise MissingAttributeError(
            f"the graph refers to {target!r}, but the root module has no such attribute"
        )
    value = getattr(owner, leaf)
    persistent = leaf not in getattr(owner, "_non_persistent_buffers_set", ())
    _install_attribute(destination, target, value, as_buffer=True, persistent=persistent)


def _install_attribute(
    root: torch.nn.Module, target: str, value: Any, *, as_buffer: bool, persistent: bool = True
) -> None:
    *parents, leaf = target.split(".")
    owner = root
    for atom in parents:
        child = getattr(owner, atom, None)
        if child is None:
            child = torch.nn.Module()
            owner.add_module(atom, child)
        owner = child
    # A plain tensor attribute becomes a buffer, so it moves with .to() and
    # shows in state_dict (torch.fx does the same).
    if as_buffer and isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
        owner.register_buffer(leaf, value, persistent=persistent)
    else:
        setattr(owner, leaf, value)
