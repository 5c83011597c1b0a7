"""Differential checks of ``graphlift.unflatten`` against ``torch.export.unflatten``.

:func:`compare` exports a model with both libraries, unflattens both, and
checks graphlift's tree against eager and against torch's tree: outputs on
every input set, buffers after each call, ``state_dict`` keys, the list of
submodule names (``named_modules(remove_duplicate=False)``) and which names
share one module object. torch's own outcome is recorded in the result
(:class:`Outcome`), so a case can say where torch fails and graphlift does not.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

import graphlift as gl

Inputs = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass
class Outcome:
    """What happened on each side; ``torch_error`` is None when torch passed."""

    graphlift: torch.nn.Module
    torch_error: str | None = None
    torch_unflat: torch.nn.Module | None = None
    notes: list[str] = field(default_factory=list)


def _leaves(value: Any) -> list[Any]:
    return torch.utils._pytree.tree_leaves(value)


def assert_same(actual: Any, expected: Any) -> None:
    a, e = _leaves(actual), _leaves(expected)
    assert len(a) == len(e), f"{len(a)} outputs, expected {len(e)}"
    for x, y in zip(a, e):
        if isinstance(y, torch.Tensor):
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
        else:
            assert x == y


def _run(module: torch.nn.Module, inputs: Inputs) -> Any:
    args, kwargs = copy.deepcopy(inputs)
    with torch.no_grad():
        return module(*args, **kwargs)


def module_names(module: torch.nn.Module) -> list[str]:
    return [name for name, _ in module.named_modules(remove_duplicate=False)]


def shared_names(module: torch.nn.Module) -> set[frozenset[str]]:
    """Groups of names that are one module object."""
    groups: dict[int, set[str]] = {}
    for name, sub in module.named_modules(remove_duplicate=False):
        groups.setdefault(id(sub), set()).add(name)
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def compare(
    make_model: Callable[[], torch.nn.Module],
    example: Inputs,
    runs: Sequence[Inputs] = (),
    *,
    dynamic_shapes: Any = None,
    torch_dynamic_shapes: Any = None,
    preserve: tuple[str, ...] = (),
    adapter: Any = None,
) -> Outcome:
    """Export, unflatten and run on both sides (see the module docstring).
    ``runs`` are further inputs; the example is always run first."""
    eager = make_model()
    ours_model, torch_model = copy.deepcopy(eager), copy.deepcopy(eager)
    args, kwargs = example
    ep = gl.export(ours_model, args, kwargs, dynamic_shapes=dynamic_shapes,
                   preserve_module_call_signature=preserve)  # fmt: skip
    ours = gl.unflatten(ep, flat_args_adapter=adapter)
    outcome = Outcome(ours)
    try:
        torch_ep = torch.export.export(
            torch_model, args, kwargs, strict=False,
            dynamic_shapes=torch_dynamic_shapes if torch_dynamic_shapes is not None
            else dynamic_shapes, preserve_module_call_signature=preserve,
        )  # fmt: skip
        outcome.torch_unflat = torch.export.unflatten(torch_ep)
    except Exception as error:
        outcome.torch_error = f"{type(error).__name__}: {str(error)[:200]}"
    _check_tree(eager, ours, outcome)
    for inputs in (example, *runs):
        expected = _run(eager, inputs)
        assert_same(_run(ours, inputs), expected)
        _check_state(eager, ours)
        if outcome.torch_unflat is not None:
            try:
                assert_same(_run(outcome.torch_unflat, inputs), expected)
            except Exception as error:
                outcome.torch_error = f"run: {type(error).__name__}: {str(error)[:200]}"
                outcome.torch_unflat = None
    return outcome


def _check_tree(eager: torch.nn.Module, ours: torch.nn.Module, outcome: Outcome) -> None:
    assert sorted(ours.state_dict()) == sorted(eager.state_dict())
    assert module_names(ours) == module_names(eager), (module_names(ours), module_names(eager))
    assert shared_names(ours) == shared_names(eager)
    if outcome.torch_unflat is not None and module_names(outcome.torch_unflat) != module_names(
        eager
    ):
        outcome.notes.append("torch's tree differs from the model's")


def _check_state(eager: torch.nn.Module, ours: torch.nn.Module) -> None:
    state = ours.state_dict()
    for name, value in eager.state_dict().items():
        torch.testing.assert_close(state[name], value, msg=f"state {name} differs after a call")
