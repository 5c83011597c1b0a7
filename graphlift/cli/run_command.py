"""``graphlift run model.gl``: run a saved program, print its outputs, compare with eager.

Inputs come from ``--inputs FILE.safetensors`` (tensors named like the
forward's arguments), ``--random NAME=SHAPE`` (dtype from the program), or
else the example inputs saved with the program.
"""

from __future__ import annotations

import argparse
from typing import Any

import safetensors.torch
import torch
import torch.utils._pytree as pytree
from rich.markup import escape
from rich.table import Table

import graphlift as gl
from graphlift.cli.inspect_commands import load
from graphlift.cli.model_file import CommandLineError, load_model_file, parse_random
from graphlift.cli.output import Output
from graphlift.errors import GraphliftError

#: Eager and program outputs agree when torch.allclose holds with these tolerances.
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "run",
        help="run a saved program on example, random or given inputs",
        description="Run an archive (no model code needed) and print its outputs.",
        epilog='example: graphlift run model.gl --random "x=2x16" --check-against model.py',
    )
    parser.add_argument("archive", help="the archive (e.g. model.gl)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--inputs", metavar="FILE", help="a safetensors file of named inputs")
    source.add_argument(
        "--random", action="append", default=[], metavar="NAME=SHAPE", help='e.g. "x=2x16"'
    )
    parser.add_argument(
        "--check-against",
        metavar="FILE.py[:factory]",
        help="run the model file's model (with the archive's weights) and compare",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, out: Output) -> int:
    try:
        program = load(args.archive, out)  # a package of methods is refused (ArchiveError)
        inputs, origin = _inputs(program, args)
        with out.step("running"):
            outputs = pytree.tree_leaves(program.module()(*inputs[0], **inputs[1]))
    except (GraphliftError, OSError) as error:
        return out.fail(error)
    out.result["inputs"] = origin
    out.result["outputs"] = [_stats(f"output[{i}]", v) for i, v in enumerate(outputs)]
    out.say(f"inputs: {origin}")
    out.say(_stats_table(out.result["outputs"]))
    if not args.check_against:
        return 0
    try:
        with out.step(f"running {args.check_against} eagerly"):
            expected = _eager_outputs(args.check_against, program, inputs)
    except (GraphliftError, OSError) as error:
        return out.fail(error)
    return _compare(out, expected, outputs)


def _inputs(program: gl.ExportedProgram, args: argparse.Namespace) -> tuple[Any, str]:
    if args.inputs:
        tensors = safetensors.torch.load_file(args.inputs)
        return _replace_examples(program, tensors, args.inputs), args.inputs
    if args.random:
        shapes = parse_random(args.random)
        tensors = _random(_examples_by_name(program), shapes)
        return _replace_examples(program, tensors, "--random"), "random"
    example = program.example_inputs
    if not example or (not (example[0] or example[1]) and program.graph_signature.user_inputs):
        raise CommandLineError(
            f"{args.archive} has no example inputs saved with it; pass --inputs or --random"
        )
    return example, "example inputs saved with the program"


def _examples_by_name(program: gl.ExportedProgram) -> dict[str, Any]:
    """The saved example inputs by the forward's argument names (keywords by theirs)."""
    example_args, example_kwargs = program.example_inputs or ((), {})
    names = program.module_call_graph[0].forward_arg_names
    return dict(zip(names, example_args)) | dict(example_kwargs)


def _replace_examples(
    program: gl.ExportedProgram, tensors: dict[str, Any], origin: str
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The example inputs with the named ones replaced, passed as the example passed them."""
    example_args, example_kwargs = program.example_inputs or ((), {})
    names = list(program.module_call_graph[0].forward_arg_names)
    positional, keywords = list(example_args), dict(example_kwargs)
    for name, value in tensors.items():
        if name in keywords:
            keywords[name] = value
        elif name in names[: len(positional)]:
            positional[names.index(name)] = value
        else:
            known = [*names[: len(positional)], *keywords]
            raise CommandLineError(f"{origin}: no input named {name!r}; inputs: {known}")
    return tuple(positional), keywords


def _random(
    examples: dict[str, Any], shapes: dict[str, tuple[int, ...]]
) -> dict[str, torch.Tensor]:
    """Random tensors of the examples' dtypes; integers within the example's range."""
    generator = torch.Generator().manual_seed(0)
    tensors = {}
    for name, shape in shapes.items():
        example = examples.get(name)
        dtype = example.dtype if isinstance(example, torch.Tensor) else torch.float32
        if dtype.is_floating_point:
            tensors[name] = torch.randn(shape, generator=generator, dtype=dtype)
        elif dtype == torch.bool:
            tensors[name] = torch.randint(0, 2, shape, generator=generator).bool()
        else:
            high = int(example.max()) + 1 if example is not None and example.numel() else 2
            tensors[name] = torch.randint(0, max(high, 1), shape, generator=generator, dtype=dtype)
    return tensors


def _eager_outputs(reference: str, program: gl.ExportedProgram, inputs: Any) -> list[Any]:
    model = load_model_file(reference).model
    state = dict(program.named_parameters()) | dict(program.named_buffers())
    with torch.no_grad():
        for name, value in state.items():
            owner, _, attribute = name.rpartition(".")
            target = getattr(model.get_submodule(owner), attribute, None)
            if not isinstance(target, torch.Tensor) or target.shape != value.shape:
                raise CommandLineError(
                    f"{reference}: its model has no {name} of {tuple(value.shape)}"
                )
            target.copy_(value)
        return pytree.tree_leaves(model(*inputs[0], **inputs[1]))


def _compare(out: Output, expected: list[Any], actual: list[Any]) -> int:
    rows: list[dict[str, Any]] = []
    for index, (want, got) in enumerate(zip(expected, actual)):
        if isinstance(want, torch.Tensor):
            same_shape = want.shape == got.shape
            error = (
                (want.double() - got.double()).abs().max().item()
                if same_shape and want.numel()
                else 0.0
            )
            match = same_shape and torch.allclose(want, got, **TOLERANCE, equal_nan=True)
        else:
            error, match = 0.0, want == got
        rows.append({"name": f"output[{index}]", "max_abs_error": error, "match": bool(match)})
    matched = len(expected) == len(actual) and all(row["match"] for row in rows)
    out.result["check"] = {"match": matched, "outputs": rows}
    table = Table("output", "max |program - eager|", "result")
    for row in rows:
        verdict = "[green]match[/green]" if row["match"] else "[red]MISMATCH[/red]"
        table.add_row(row["name"], f"{row['max_abs_error']:.2e}", verdict)
    out.say(table)
    return 0 if matched else 1


def _stats(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, torch.Tensor):
        return {"name": name, "value": repr(value)}
    stats: dict[str, Any] = {"name": name, "shape": list(value.shape), "dtype": str(value.dtype)}
    if value.numel() and (value.dtype.is_floating_point or not value.dtype.is_complex):
        data = value.detach().double()
        stats.update(min=data.min().item(), max=data.max().item(), mean=data.mean().item())
    return stats


def _stats_table(rows: list[dict[str, Any]]) -> Table:
    table = Table("output", "shape", "dtype", "min", "max", "mean")
    for row in rows:
        numbers = [f"{row[key]:.4g}" if key in row else "" for key in ("min", "max", "mean")]
        table.add_row(
            str(row["name"]),
            str(tuple(row.get("shape", ()))),
            escape(str(row.get("dtype", row.get("value", "")))),
            *numbers,
        )
    return table
