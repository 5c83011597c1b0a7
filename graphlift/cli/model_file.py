"""What the command line reads: model files, ``--dynamic`` specs and ``--random`` inputs.

A model file is a Python file that defines a factory, ``make_example()`` unless
``FILE.py:factory`` names another, returning ``(model, args)`` or
``(model, args, kwargs)``: the model and example inputs to export it with. The
file is imported with its directory first on ``sys.path``, so the source lines
recorded in the program name it relative to that directory.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import graphlift as gl
from graphlift.errors import GraphliftError

DEFAULT_FACTORY = "make_example"


class CommandLineError(GraphliftError, ValueError):
    """A command-line argument (model file, ``--dynamic``, ``--random``, inputs) is wrong."""


@dataclass(frozen=True)
class ModelFile:
    """A model and its example inputs, from a model file's factory."""

    path: Path
    factory: str
    model: torch.nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def load_model_file(reference: str) -> ModelFile:
    """Import ``FILE.py[:factory]`` and call the factory."""
    file_name, _, factory = reference.partition(":")
    path = Path(file_name).resolve()
    if not path.is_file():
        raise CommandLineError(f"no model file {file_name!r}")
    factory = factory or DEFAULT_FACTORY
    module = _import_file(path)
    make = getattr(module, factory, None)
    if not callable(make):
        raise CommandLineError(
            f"{file_name} defines no function {factory}(); define one returning "
            "(model, args) or (model, args, kwargs), or name it as FILE.py:factory"
        )
    made = make()
    if not (isinstance(made, tuple) and len(made) in (2, 3)):
        raise CommandLineError(
            f"{file_name}:{factory}() returned {type(made).__name__}; "
            "return (model, args) or (model, args, kwargs)"
        )
    model, args, kwargs = made if len(made) == 3 else (*made, {})
    if not isinstance(model, torch.nn.Module):
        raise CommandLineError(f"{file_name}:{factory}() returned no torch.nn.Module first")
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    return ModelFile(path, factory, model, args, dict(kwargs or {}))


def _import_file(path: Path) -> Any:
    directory = str(path.parent)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    name = path.stem if path.stem not in sys.modules else f"graphlift_model_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"cannot import {path}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --- --dynamic "x:0=batch[1,64],1=seq" ------------------------------------------------

_DIM = r"(\d+)=([A-Za-z_]\w*)(?:\[(\d*),(\d*)\])?"
_DIMS = re.compile(rf"^{_DIM}(?:,{_DIM})*$")
#: Dim names that mean one of torch's hints rather than a named Dim.
_HINTS = {"auto": gl.Dim.AUTO, "dynamic": gl.Dim.DYNAMIC, "static": gl.Dim.STATIC}


def parse_dynamic(texts: list[str]) -> dict[str, dict[int, Any]]:
    """``["x:0=batch[1,64],1=seq"]`` -> ``{"x": {0: Dim("batch", min=1, max=64), 1: Dim("seq")}}``.

    A name used twice is the same Dim (the dims must be equal); ``auto``,
    ``dynamic`` and ``static`` are ``Dim.AUTO``/``DYNAMIC``/``STATIC``.
    """
    named: dict[str, Any] = {}
    spec: dict[str, dict[int, Any]] = {}
    for text in texts:
        input_name, colon, dims = text.partition(":")
        if not colon or not input_name.isidentifier():
            raise CommandLineError(
                f"--dynamic {text!r}: expected INPUT:DIM=NAME[MIN,MAX],... as in x:0=batch[1,64],1=seq"
            )
        dims = dims.replace(" ", "")
        if not _DIMS.match(dims):
            raise CommandLineError(
                f"--dynamic {text!r}: after 'INPUT:' expected DIM=NAME or DIM=NAME[MIN,MAX], "
                "separated by commas"
            )
        for index, name, low, high in re.findall(_DIM, dims):
            spec.setdefault(input_name, {})[int(index)] = _dim(name, low, high, named, text)
    return spec


def _dim(name: str, low: str, high: str, named: dict[str, Any], text: str) -> Any:
    if name.lower() in _HINTS:
        return _HINTS[name.lower()]
    bounds = (int(low) if low else None, int(high) if high else None)
    if name in named:
        if bounds != (None, None) and named[name][1] != bounds:
            raise CommandLineError(
                f"--dynamic {text!r}: {name} is declared twice with other bounds"
            )
        return named[name][0]
    dim = (
        gl.Dim(name, max=bounds[1])
        if bounds[0] is None
        else gl.Dim(name, min=bounds[0], max=bounds[1])
    )
    named[name] = (dim, bounds)
    return named[name][0]


def auto_dynamic(model_file: ModelFile) -> dict[str, Any]:
    """Every dim of every tensor input ``Dim.AUTO`` (``--auto``)."""
    names = forward_arg_names(model_file.model, model_file.args)
    spec: dict[str, Any] = {}
    for name, value in [*zip(names, model_file.args), *model_file.kwargs.items()]:
        if isinstance(value, torch.Tensor):
            spec[name] = {dim: gl.Dim.AUTO for dim in range(value.dim())}
    return spec


def forward_arg_names(model: torch.nn.Module, args: tuple[Any, ...]) -> list[str]:
    parameters = list(inspect.signature(model.forward).parameters)
    if len(parameters) < len(args):
        raise CommandLineError(
            f"{type(model).__name__}.forward takes {len(parameters)} arguments, "
            f"the example has {len(args)}"
        )
    return parameters[: len(args)]


# --- --random "x=2x16" ----------------------------------------------------------------

_SHAPE = re.compile(r"^([A-Za-z_]\w*)=(\d+(?:x\d+)*|scalar)$")


def parse_random(texts: list[str]) -> dict[str, tuple[int, ...]]:
    """``["x=2x16", "y=scalar"]`` -> ``{"x": (2, 16), "y": ()}``."""
    shapes: dict[str, tuple[int, ...]] = {}
    for text in texts:
        match = _SHAPE.match(text.strip())
        if match is None:
            raise CommandLineError(
                f"--random {text!r}: expected NAME=SHAPE as in x=2x16 (or NAME=scalar)"
            )
        name, shape = match.groups()
        shapes[name] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return shapes
