"""The input checks of ``ep.module()``: a generated Python prologue.

Each flat input gets the checks the trace relied on — that it is a tensor,
its dtype and sizes, or the exact value of a specialized Python input — as
plain readable code (``print(ep.module().input_checks)`` shows it). A failed
check raises InputMismatchError naming the input and what was expected,
before any computation runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from graphlift.errors import InputMismatchError


def input_check_source(names: list[str], values: list[Any]) -> str:
    """Source of ``check_inputs(<names>)`` for example ``values`` (TraceTensors or constants)."""
    lines = [f"def check_inputs({', '.join(names)}):"]
    for name, value in zip(names, values):
        if isinstance(value, torch.Tensor):
            shape = tuple(int(d) for d in value.shape)
            lines += [
                f"    if not isinstance({name}, Tensor): fail({name!r}, 'a tensor', {name})",
                f"    if {name}.dtype is not {value.dtype}: fail({name!r}, 'dtype {value.dtype}', {name}.dtype)",
                f"    if {name}.shape != {shape}: fail({name!r}, 'shape {list(shape)}', list({name}.shape))",
            ]
        elif value is None:
            lines.append(f"    if {name} is not None: fail({name!r}, None, {name})")
        else:  # exact type: 1 must not pass for True, nor 2 for 2.0
            kind = type(value).__name__
            lines.append(
                f"    if type({name}) is not {kind} or {name} != {value!r}: fail({name!r}, {value!r}, {name})"
            )
    if len(lines) == 1:
        lines.append("    pass")
    return "\n".join(lines) + "\n"


def fail(name: str, expected: Any, got: Any) -> None:
    if isinstance(got, torch.Tensor):
        got = f"a tensor of dtype {got.dtype} and shape {list(got.shape)}"
    raise InputMismatchError(
        f"input {name!r} does not match the exported program: expected {expected}, got {got}. "
        "The program was exported for these exact sizes and values; export with dynamic_shapes "
        "for other sizes"
    )


def compile_checks(source: str) -> Callable[..., None]:
    namespace: dict[str, Any] = {"Tensor": torch.Tensor, "torch": torch, "fail": fail}
    exec(compile(source, "<graphlift-input-checks>", "exec"), namespace)
    return namespace["check_inputs"]  # type: ignore[no-any-return]
