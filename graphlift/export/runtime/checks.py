"""The input checks of ``ep.module()``: a generated Python prologue.

Each flat input gets the checks the trace relied on, as plain readable code
(``print(ep.module().input_checks)`` shows it):

- that it is a tensor of the traced dtype and rank;
- each static size; for each dynamic size, its range, or its equality with the
  input dimension it was tied to;
- for a size that defines a phantom root (``{2: 32 * h}``, ``h`` on no input):
  that it is exactly ``32*h`` for an integer ``h`` in ``h``'s range, first,
  since every later check reads ``h`` back from it as ``(x.size()[2] // 32)``;
- every guard the trace recorded (``x.size()[1] >= 9``), with the user line
  that made the assumption;
- the exact value (and type) of a specialized Python input.

A failed check raises InputMismatchError naming the input, what was expected
and why, before any computation runs. An input may be named like a builtin
(``input``, ``type``, ``torch``, as torch.export names them): the compiled
checks read every global through one helper name no input has.
"""

from __future__ import annotations

import ast
import builtins
import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import torch

from graphlift.errors import InputMismatchError, InputStructureError
from graphlift.export.spec.symbols import parse_phantom_source
from graphlift.symbolic import ShapeEnv
from graphlift.symbolic import algebra as E
from graphlift.symbolic.expr import as_int, as_symbol


def input_check_source(
    names: list[str], values: list[Any], shape_env: ShapeEnv | None = None
) -> str:
    """Source of ``check_inputs(<names>)`` for traced ``values`` (TraceTensors or constants)."""
    lines = [f"def check_inputs({', '.join(names)}):"]
    for name, value in zip(names, values):
        if isinstance(value, torch.Tensor):
            lines += _tensor_checks(name, value, shape_env)
        elif isinstance(value, torch.SymInt) and shape_env is not None:
            lines += _int_checks(name, value, shape_env)
        elif value is None:
            lines.append(f"    if {name} is not None: fail_structure({name!r}, {name})")
        else:  # exact type: 1 must not pass for True, nor 2 for 2.0
            kind = type(value).__name__
            lines.append(
                f"    if type({name}) is not {kind} or {name} != {value!r}: fail({name!r}, {value!r}, {name})"
            )
    if shape_env is not None:
        for guard in shape_env.guards:
            lines += _guard_check(
                guard.code, str(guard.where).split("\n")[0] if guard.where else None
            )
    if len(lines) == 1:
        lines.append("    pass")
    return "\n".join(lines) + "\n"


def _guard_check(code: str, where: str | None) -> list[str]:
    """``if not (code): fail_guard(...)``. A guard that divides by a size
    (``s0 % (s0*s1) != 0``) is undefined where that size is 0: it does not hold
    there, so the division error becomes the same refusal."""
    check = f"if not ({code}): fail_guard({code!r}, {where!r})"
    if "%" not in code and "/" not in code:
        return [f"    {check}"]
    return [
        "    try:",
        f"        {check}",
        "    except ZeroDivisionError:",
        f"        fail_guard({code!r}, {where!r})",
    ]


def _tensor_checks(name: str, value: torch.Tensor, shape_env: ShapeEnv | None) -> list[str]:
    lines = [
        f"    if not isinstance({name}, Tensor): fail({name!r}, 'a tensor', {name})",
        f"    if {name}.dtype is not {value.dtype}: fail({name!r}, 'dtype {value.dtype}', {name}.dtype)",
    ]
    sizes = [_static_size(size, shape_env) for size in value.shape]
    if shape_env is None or all(isinstance(size, int) for size in sizes):
        shape = tuple(sizes)
        lines.append(
            f"    if {name}.shape != {shape}: fail({name!r}, 'shape {list(shape)}', list({name}.shape))"
        )
        return lines
    lines.append(
        f"    if {name}.dim() != {len(sizes)}: fail({name!r}, '{len(sizes)} dims', {name}.dim())"
    )
    for dim, size in enumerate(sizes):
        source = f"{name}.size()[{dim}]"
        if isinstance(size, int):
            lines.append(
                f"    if {source} != {size}: fail({name!r}, 'size {size} at dim {dim}', {source})"
            )
        else:
            phantom, exact = _phantom_root_checks(name, dim, size, shape_env)
            lines += phantom
            if not exact:
                lines.append(_dynamic_size_check(name, dim, size, shape_env))
    return lines


def _phantom_root_checks(
    name: str, dim: int, size: Any, shape_env: ShapeEnv
) -> tuple[list[str], bool]:
    """Checks that this size is ``scale*root + offset`` for each phantom root read
    from it, and whether they already check that the size is ``size`` exactly."""
    source = f"{name}.size()[{dim}]"
    lines = []
    exact = False
    for info in shape_env.symbols:
        parsed = parse_phantom_source(info.source)
        if parsed is None or parsed[0] != source:
            continue
        _, scale, offset = parsed
        root = info.source
        form = f"{scale}*k" if scale != 1 else "k"
        bounds = shape_env.range_of(info.name)
        # (size - offset) // scale floors: the size is of the form iff it equals the form again
        tail = f" + {offset}" if offset > 0 else f" - {-offset}" if offset else ""
        checks = [f"{source} != {scale}*{root}{tail}"]
        checks = checks if scale != 1 else []  # scale 1: every size is root + offset
        checks += _outside(root, bounds)
        expected = f"size {form}{tail} at dim {dim} for an integer k in {bounds}"
        lines.append(f"    if {' or '.join(checks)}: fail({name!r}, {expected!r}, {source})")
        exact |= size == E.add(E.scale(E.symbol(info.name), scale), E.integer(offset))
    return lines, exact


def _int_checks(name: str, value: torch.SymInt, shape_env: ShapeEnv) -> list[str]:
    """A dynamic int input: an int (not a bool), in its range or equal to what it was tied to."""
    lines = [f"    if type({name}) is not int: fail({name!r}, 'an int', {name})"]
    expr = shape_env.simplify(value.node.symbolic_expr)
    symbol = as_symbol(expr)
    if symbol is None or shape_env.format(expr) != name:
        other = shape_env.format(expr)
        lines.append(f"    if {name} != {other}: fail({name!r}, {other!r}, {name})")
        return lines
    bounds = shape_env.range_of(symbol)
    checks = _outside(name, bounds)
    if checks:
        lines.append(f"    if {' or '.join(checks)}: fail({name!r}, 'a value in {bounds}', {name})")
    return lines


def _outside(text: str, bounds: Any) -> list[str]:
    """Conditions (Python over ``text``) that hold when the value is outside ``bounds``."""
    checks = [f"{text} < {int(bounds.lower)}"] if not math.isinf(bounds.lower) else []
    return checks + ([f"{text} > {int(bounds.upper)}"] if not math.isinf(bounds.upper) else [])


def _static_size(size: Any, shape_env: ShapeEnv | None) -> Any:
    if not isinstance(size, torch.SymInt) or shape_env is None:
        return int(size)
    expr = shape_env.simplify(size.node.symbolic_expr)
    value = as_int(expr)
    return value if value is not None else expr


def _dynamic_size_check(name: str, dim: int, expr: Any, shape_env: ShapeEnv) -> str:
    source = f"{name}.size()[{dim}]"
    symbol = as_symbol(expr)
    if symbol is None or shape_env.format(expr) != source:  # not the symbol this size defines
        other = shape_env.format(expr)
        return f"    if {source} != {other}: fail({name!r}, 'size {other} at dim {dim}', {source})"
    bounds = shape_env.range_of(symbol)
    lower, upper = int(bounds.lower), bounds.upper
    if math.isinf(upper):
        return (
            f"    if {source} < {lower}: fail({name!r}, 'size >= {lower} at dim {dim}', {source})"
        )
    upper = int(upper)
    return (
        f"    if not {lower} <= {source} <= {upper}: "
        f"fail({name!r}, 'size in [{lower}, {upper}] at dim {dim}', {source})"
    )


def fail(name: str, expected: Any, got: Any) -> None:
    if isinstance(got, torch.Tensor):
        got = f"a tensor of dtype {got.dtype} and shape {list(got.shape)}"
    raise InputMismatchError(
        f"input {name!r} does not match the exported program: expected {expected}, got {got}. "
        "Sizes and values outside what the program was exported for are refused; export with "
        "dynamic_shapes (or a wider Dim range) for other sizes"
    )


def fail_structure(name: str, got: Any) -> None:
    """None is part of an input's structure (as in torch's pytrees): a value where
    None was exported is a structure mismatch (ValueError), not a guard failure."""
    if isinstance(got, torch.Tensor):
        got = f"a tensor of shape {list(got.shape)}"
    raise InputStructureError(
        f"input {name!r} was None in the exported program, got {got}; export with an example "
        "that has a value there to run with one"
    )


def fail_guard(code: str, where: str | None) -> None:
    reason = f" (the program assumes it because of {where})" if where else ""
    raise InputMismatchError(f"the inputs violate the exported program's assumption {code}{reason}")


def compile_checks(source: str) -> Callable[..., None]:
    tree = ast.parse(source)
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef)
    params = {arg.arg for arg in function.args.args}
    helper = next(name for name in (f"_gl{'_' * k}" for k in range(len(params) + 1))
                  if name not in params)  # fmt: skip
    tree = ast.fix_missing_locations(_GlobalsThroughHelper(params, helper).visit(tree))
    namespace: dict[str, Any] = {helper: SimpleNamespace(**vars(builtins), **_CHECK_GLOBALS)}
    exec(compile(tree, "<graphlift-input-checks>", "exec"), namespace)
    check_inputs: Callable[..., None] = namespace["check_inputs"]
    return check_inputs


_CHECK_GLOBALS: dict[str, Any] = {
    "Tensor": torch.Tensor,
    "torch": torch,
    "math": math,  # the guard printer writes math.ceil/floor/trunc (symbolic/printer.py)
    "fail": fail,
    "fail_guard": fail_guard,
    "fail_structure": fail_structure,
}

#: Attributes the checks read from an input (``x.size()``), never from a module.
_INPUT_ATTRIBUTES = frozenset({"size", "dim", "dtype", "shape"})


class _GlobalsThroughHelper(ast.NodeTransformer):
    """``isinstance(x, Tensor)`` -> ``_gl.isinstance(x, _gl.Tensor)``: a global
    is anything the checks call, or a name that is not an input."""

    def __init__(self, params: set[str], helper: str) -> None:
        self.params, self.helper = params, helper

    def _through_helper(self, name: ast.Name) -> ast.Attribute:
        owner = ast.Name(self.helper, ast.Load())
        return ast.copy_location(ast.Attribute(owner, name.id, ast.Load()), name)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        called = node.func
        node.func = (
            self._through_helper(called)
            if isinstance(called, ast.Name)
            else cast(ast.expr, self.visit(called))
        )
        node.args = [self.visit(arg) for arg in node.args]
        node.keywords = [self.visit(keyword) for keyword in node.keywords]
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        base = node.value
        if isinstance(base, ast.Name) and node.attr not in _INPUT_ATTRIBUTES:
            node.value = self._through_helper(base)  # math.floor, torch.float32
            return node
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and node.id not in self.params:
            return self._through_helper(node)
        return node
