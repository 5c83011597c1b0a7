"""Python source for a Graph: a readable ``forward`` method, and compiling it.

The generated code is meant to be read: operators print infix (``x + y``),
indexing prints as subscripts (``x[:, 0]``), well-known functions by their
public path (``torch.relu``, ``torch.ops.aten.add.Tensor``). Anything else a
node refers to becomes a named global of the code. A value is dropped
(``x = None``) right after its last use, so running the code does not keep
intermediates alive longer than needed.

Compiled code is registered with ``linecache`` under a unique file name, so a
traceback through a GraphModule shows the generated line that failed.
"""

from __future__ import annotations

import builtins
import enum
import itertools
import keyword
import linecache
import math
import operator
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import torch

from graphlift.errors import GraphError
from graphlift.ir.custom_codegen import overrides
from graphlift.ir.input_structure import META_KEY as INPUT_META_KEY
from graphlift.ir.input_structure import flatten_input, structured_parameters
from graphlift.ir.node import Argument, Node, last_uses

if TYPE_CHECKING:
    from graphlift.ir.graph import Graph

INFIX_OPERATORS = {
    operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/",
    operator.floordiv: "//", operator.mod: "%", operator.pow: "**", operator.matmul: "@",
    operator.lshift: "<<", operator.rshift: ">>", operator.and_: "&", operator.or_: "|",
    operator.xor: "^", operator.eq: "==", operator.ne: "!=", operator.lt: "<",
    operator.le: "<=", operator.gt: ">", operator.ge: ">=",
}  # fmt: skip
PREFIX_OPERATORS = {
    operator.neg: "-",
    operator.pos: "+",
    operator.invert: "~",
    operator.not_: "not ",
}

# Names generated code relies on; no node or parameter may shadow them.
RESERVED_NAMES = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {
    "self", "torch", "operator", "math", "inf", "nan",
}  # fmt: skip

# Names even a graph input may not take. An input may be named like a builtin
# or a module the code uses (``input``, ``len``, ``torch``), as torch.export
# names them after the forward's parameters: the body reaches that global
# through an alias (``_CodeWriter._global``).
INPUT_RESERVED_NAMES = frozenset(keyword.kwlist) | {"self"}

# Modules whose public functions generated code names by path.
_PATH_MODULES = ("torch", "torch.nn.functional", "torch.Tensor", "operator", "math")


@dataclass(frozen=True)
class PythonCode:
    """Generated source of a ``forward`` method and the globals it refers to."""

    src: str
    globals: dict[str, Any] = field(default_factory=dict)


def generate_python(graph: Graph, root_module: str = "self") -> PythonCode:
    _refuse_foreign_nodes(graph)
    return _CodeWriter(graph, root_module).write()


def _refuse_foreign_nodes(graph: Graph) -> None:
    """Code that reads a node of another graph would read whatever value has
    that name here (torch.fx generates it anyway): refuse, as lint() does."""
    for node in graph.nodes:
        for used in node.all_input_nodes:
            if used.graph is not graph:
                raise GraphError(
                    f"node {node.name!r} uses {used.name!r}, which belongs to another graph, so "
                    "no code can be generated; map arguments when copying nodes "
                    "(node_copy's arg_transform), graph.lint() lists every such use"
                )


class _CodeWriter:
    def __init__(self, graph: Graph, root_module: str) -> None:
        self.graph = graph
        self.root = root_module
        self.globals: dict[str, Any] = {"torch": torch, "operator": operator, "math": math}
        self._global_names: dict[int, str] = {}
        self._used_names = {n.name for n in graph.nodes} | set(self.globals) | {root_module}
        self._shadowed: set[str] = set()
        self._aliases: dict[str, str] = {}
        # namespace -> packet -> overload -> the op's C++ entry point
        self._op_namespaces: dict[str, dict[str, dict[str, Any]]] = {}

    def write(self) -> PythonCode:
        code = self._write()
        for namespace, packets in self._op_namespaces.items():
            self.globals[namespace] = SimpleNamespace(
                **{name: SimpleNamespace(**overloads) for name, overloads in packets.items()}
            )
        return code

    def _write(self) -> PythonCode:
        codegen = self.graph._codegen
        params, body = self._signature(codegen.reads_input_structure)
        frees = _values_to_free(self.graph)
        for node in self.graph.nodes:
            if node.op == "placeholder":
                continue
            if node.op == "output" and overrides(codegen, "generate_output"):
                body.append(codegen.generate_output(node.args[0]))
                continue
            line = self._statement(node)
            dead = frees.get(node, [])
            if dead and node.op != "output":
                line += ";  " + "; ".join(f"{name} = None" for name in dead)
            body.append(line)
        if self.graph.find_nodes(op="output") == []:
            body.append("return None")
        if codegen._body_transformer is not None:
            body = [
                line.rstrip("\n") for line in codegen._body_transformer([f"{b}\n" for b in body])
            ]
        self.globals.update(codegen.additional_globals())
        params = _legal_parameter_order(params)
        head = (
            codegen.gen_fn_def(params, "")
            if overrides(codegen, "gen_fn_def")
            else f"def forward({', '.join([self.root, *params])}):"
        )
        lines = [line for statement in body for line in statement.split("\n")]
        return PythonCode(head + "\n" + "".join(f"    {line}\n" for line in lines), self.globals)

    def _signature(self, structured: bool) -> tuple[list[str], list[str]]:
        """One parameter per placeholder, or per structured input when ``structured``;
        and the body lines that bind the placeholders to them."""
        params: list[str] = []
        body: list[str] = []
        placeholders = [node for node in self.graph.nodes if node.op == "placeholder"]
        groups = (
            structured_parameters(placeholders) if structured else [("", [n]) for n in placeholders]
        )
        taken: set[str] = set()
        for parameter, nodes in groups:
            if parameter:  # leaves of one structured input (concrete_args with PH)
                name = _unique(parameter, taken | self._used_names)
                params.append(name)
                body.append(self._flattening(name, nodes))
                taken.add(name)
                continue
            name = self._parameter_name(nodes[0], taken)
            taken.add(name)
            params.append(self._parameter(nodes[0], name))
            if name != nodes[0].name:
                body.append(f"{nodes[0].name} = {name}")
        # A parameter or input named like a global the body needs (torch,
        # float, len, ...) keeps its name; the body reaches that global
        # through an alias.
        self._shadowed = taken | {node.name for node in placeholders}
        self._used_names |= taken
        return params, body

    def _flattening(self, parameter: str, leaves: list[Node]) -> str:
        """``x_1, x_2, = flatten_input(x, spec, 'x')`` for a structured input."""
        spec = leaves[0].meta[INPUT_META_KEY].spec
        targets = ", ".join(leaf.name for leaf in leaves)
        call = (
            f"{self.reference(flatten_input)}({parameter}, {self.reference(spec)}, {parameter!r})"
        )
        return f"{targets}, = {call}"

    def _parameter_name(self, node: Node, taken: set[str]) -> str:
        """The target (so callers can pass it by keyword, as in torch.fx) unless
        it is not a usable Python name here; then the node's unique name."""
        target = str(node.target).lstrip("*")
        usable = target.isidentifier() and not keyword.iskeyword(target)
        if usable and target != self.root and target not in taken:
            return target
        return node.name

    def _global(self, name: str) -> str:
        """How the body names the global ``name`` (a module such as ``torch`` or a
        builtin): itself, or an alias when a parameter shadows it."""
        if name not in self._shadowed:
            return name
        alias = self._aliases.get(name)
        if alias is None:
            alias = _unique(f"{name}_global", self._used_names)
            self._aliases[name] = alias
            self.globals[alias] = self.globals.get(name) or getattr(builtins, name)
        return alias

    def _parameter(self, node: Node, name: str) -> str:
        target = str(node.target)
        stars = target[: len(target) - len(target.lstrip("*"))]
        if node.args and not stars:
            return f"{name}={self.value(node.args[0])}"
        return stars + name

    def _statement(self, node: Node) -> str:
        if node.op == "output":
            return f"return {self.value(node.args[0])}"
        if node.op == "get_attr":
            return f"{node.name} = {self.attribute_path(str(node.target))}"
        if node.op == "call_module":
            call = (
                f"{self.attribute_path(str(node.target))}({self.call_args(node.args, node.kwargs)})"
            )
            return f"{node.name} = {call}"
        if node.op == "call_method":
            receiver = self.operand(node.args[0])
            return f"{node.name} = {receiver}.{node.target}({self.call_args(node.args[1:], node.kwargs)})"
        return f"{node.name} = {self.function_call(node)}"

    def function_call(self, node: Node) -> str:
        target, args, kwargs = node.target, node.args, node.kwargs
        if not kwargs:
            if target in INFIX_OPERATORS and len(args) == 2:
                return f"{self.operand(args[0])} {INFIX_OPERATORS[target]} {self.operand(args[1])}"
            if target in PREFIX_OPERATORS and len(args) == 1:
                return f"{PREFIX_OPERATORS[target]}{self.operand(args[0])}"
            if target is operator.getitem and len(args) == 2:
                return f"{self.operand(args[0])}[{self.subscript(args[1])}]"
            if target is builtins.getattr and len(args) == 2 and _is_identifier(args[1]):
                return f"{self.operand(args[0])}.{args[1]}"
        return f"{self.reference(target)}({self.call_args(args, kwargs)})"

    # --- values ----------------------------------------------------------------------

    def call_args(self, args: tuple[Argument, ...], kwargs: dict[str, Argument]) -> str:
        parts = [self.value(a) for a in args]
        for key, value in kwargs.items():
            parts.append(
                f"{key}={self.value(value)}"
                if key.isidentifier()
                else f"**{{{key!r}: {self.value(value)}}}"
            )
        return ", ".join(parts)

    def operand(self, arg: Argument) -> str:
        """A value used next to an operator: parenthesized unless it is atomic."""
        text = self.value(arg)
        non_negative = type(arg) in (int, float) and arg >= 0 and math.isfinite(arg)
        atomic = isinstance(arg, Node) or non_negative or text.isidentifier()
        return text if atomic else f"({text})"

    def subscript(self, index: Argument) -> str:
        if isinstance(index, tuple) and not hasattr(index, "_fields") and index:
            parts = [self._index_part(i) for i in index]
            return ", ".join(parts) + ("," if len(parts) == 1 else "")
        return self._index_part(index)

    def _index_part(self, index: Argument) -> str:
        if isinstance(index, slice):
            bounds = [
                ("" if b is None else self.value(b)) for b in (index.start, index.stop, index.step)
            ]
            return ":".join(bounds if index.step is not None else bounds[:2])
        return self.value(index)

    def value(self, arg: Argument) -> str:
        if isinstance(arg, Node):
            return arg.name
        if arg is None or type(arg) in (bool, int, str, bytes):  # not IntEnum & co.
            return repr(arg)
        if arg is Ellipsis:
            return "..."
        if type(arg) is float:
            return repr(arg) if math.isfinite(arg) else f"{self._global('float')}({str(arg)!r})"
        if type(arg) is complex:
            return repr(arg)
        if isinstance(arg, tuple):
            return self._tuple(arg)
        if isinstance(arg, list):
            return "[" + ", ".join(self.value(a) for a in arg) + "]"
        if isinstance(arg, dict):
            return (
                "{" + ", ".join(f"{self.value(k)}: {self.value(v)}" for k, v in arg.items()) + "}"
            )
        if isinstance(arg, slice):
            return f"{self._global('slice')}({self.value(arg.start)}, {self.value(arg.stop)}, {self.value(arg.step)})"
        if isinstance(arg, torch.dtype | torch.layout | torch.memory_format):
            return self._global("torch") + str(arg).removeprefix("torch")
        if isinstance(arg, torch.device):
            return f"{self._global('torch')}.device({str(arg)!r})"
        if isinstance(arg, torch._ops.OpOverload):  # an op passed as a value, not its C++ entry
            return f"{self._global('torch')}.ops.{arg}"
        return self.reference(arg)

    def _tuple(self, arg: tuple[Any, ...]) -> str:
        items = ", ".join(self.value(a) for a in arg)
        if hasattr(arg, "_fields"):  # namedtuple
            return f"{self.reference(type(arg))}({items})"
        if hasattr(type(arg), "n_fields"):  # structseq such as torch.return_types.max
            return f"{self.reference(type(arg))}(({items},))"
        return f"({items},)" if len(arg) == 1 else f"({items})"

    def attribute_path(self, qualified_name: str) -> str:
        path = self.root
        for atom in qualified_name.split("."):
            plain = atom.isidentifier() and not keyword.iskeyword(atom)  # self.class is not Python
            path = f"{path}.{atom}" if plain else f"{self._global('getattr')}({path}, {atom!r})"
        return path

    def reference(self, obj: Any) -> str:
        """A name in generated code for a function, class or other object."""
        if isinstance(obj, torch._ops.OpOverload):
            fast = self._op_reference(obj)
            if fast is not None:
                return fast
        public = public_path(obj)
        if public is not None:
            head, dot, rest = public.partition(".")
            return self._global(head) + dot + rest
        key = id(obj)
        if key not in self._global_names:
            base = getattr(obj, "__name__", None) or type(obj).__name__.lower()
            base = re.sub(r"\W", "_", str(base))  # <lambda> -> _lambda_
            name = _unique(f"_{base}" if not base.startswith("_") else base, self._used_names)
            self._global_names[key] = name
            self.globals[name] = obj
        return self._global_names[key]

    def _op_reference(self, op: torch._ops.OpOverload) -> str | None:
        """``aten.linear.default``: reads like torch's path, but the generated
        code's ``aten`` global holds each op's C++ entry point, which skips the
        Python ``OpOverload.__call__`` wrapper and three attribute lookups."""
        namespace, packet, overload = (
            op.namespace,
            op._schema.name.split("::")[-1],
            op._overloadname,
        )
        if not all(
            p.isidentifier() and not keyword.iskeyword(p) for p in (namespace, packet, overload)
        ):
            return None
        if namespace not in self._op_namespaces:
            if namespace in self._used_names or namespace in self._shadowed:
                return None
            self._used_names.add(namespace)
            self._op_namespaces[namespace] = {}
        self._op_namespaces[namespace].setdefault(packet, {})[overload] = op._op
        return f"{namespace}.{packet}.{overload}"


def public_path(obj: Any) -> str | None:
    """``torch.relu``, ``torch.ops.aten.add.Tensor``, ``len``... when ``obj`` is
    reachable that way from the globals every generated module has."""
    if isinstance(obj, torch._ops.OpOverload | torch._ops.OpOverloadPacket):
        return f"torch.ops.{obj}"
    if isinstance(obj, enum.Enum):
        return None
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str) or not name.isidentifier():
        return None
    if getattr(builtins, name, None) is obj:
        return name
    for path in _PATH_MODULES:
        owner = torch.Tensor if path == "torch.Tensor" else sys.modules[path]
        if getattr(owner, name, None) is obj:
            return f"{path}.{name}"
    return None


def _legal_parameter_order(params: list[str]) -> list[str]:
    """Drop the defaults Python would reject: a positional parameter without a
    default may not follow one with a default (``concrete_args`` can fix an
    early parameter and leave a later one free). After ``*args`` every
    parameter is keyword-only, where any order is legal."""
    star = next((i for i, p in enumerate(params) if p.startswith("*")), len(params))
    positional = params[:star]
    last_required = max((i for i, p in enumerate(positional) if "=" not in p), default=-1)
    kept = [p.split("=", 1)[0] if i < last_required else p for i, p in enumerate(positional)]
    return kept + params[star:]


def _unique(base: str, used: set[str]) -> str:
    name = base
    for suffix in itertools.count(1):
        if name not in used:
            break
        name = f"{base}_{suffix}"
    used.add(name)
    return name


def _is_identifier(arg: Argument) -> bool:
    return isinstance(arg, str) and arg.isidentifier()


def _values_to_free(graph: Graph) -> dict[Node, list[str]]:
    """For each node, the names of the values whose last use it is."""
    return {
        user: [value.name for value in values] for user, values in last_uses(graph.nodes).items()
    }


_counter = itertools.count()
_GENERATED_PREFIX = "<graphlift-generated-"


def is_generated_code(fn: Any) -> bool:
    """True for a function compiled by :func:`compile_forward`."""
    code = getattr(fn, "__code__", None)
    return code is not None and code.co_filename.startswith(_GENERATED_PREFIX)


def compile_forward(code: PythonCode) -> Callable[..., Any]:
    """Turn generated source into a function; tracebacks show its lines."""
    filename = f"{_GENERATED_PREFIX}{next(_counter)}>"
    linecache.cache[filename] = (len(code.src), None, code.src.splitlines(True), filename)
    namespace = dict(code.globals)
    exec(compile(code.src, filename, "exec"), namespace)
    forward: Callable[..., Any] = namespace["forward"]
    return forward
