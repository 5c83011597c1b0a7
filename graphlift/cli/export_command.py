"""``graphlift export FILE.py[:factory] -o model.gl``: a model file to a saved program."""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.markup import escape
from rich.table import Table

import graphlift as gl
from graphlift.cli.model_file import ModelFile, auto_dynamic, load_model_file, parse_dynamic
from graphlift.cli.output import Output
from graphlift.errors import ConstraintViolationError, GraphliftError

#: --refine applies err.fixes and exports again, at most this many times.
MAX_REFINEMENTS = 4


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "export",
        help="export a model file's model to an archive",
        description="Export the model a Python file defines (FILE.py, with make_example() "
        "returning (model, args[, kwargs]); or FILE.py:factory) and save it.",
        epilog='example: graphlift export model.py -o model.gl --dynamic "x:0=batch[1,64],1=seq"',
    )
    parser.add_argument("model", help="FILE.py or FILE.py:factory")
    parser.add_argument("-o", "--output", required=True, help="archive to write (e.g. model.gl)")
    shapes = parser.add_mutually_exclusive_group()
    shapes.add_argument(
        "--dynamic",
        action="append",
        default=[],
        metavar="SPEC",
        help='dynamic dims of one input, e.g. "x:0=batch[1,64],1=seq" (repeatable; '
        "a name used twice is one Dim; auto/dynamic/static are Dim.AUTO/DYNAMIC/STATIC)",
    )
    shapes.add_argument("--auto", action="store_true", help="every input dim Dim.AUTO")
    parser.add_argument("--decompose", action="store_true", help="save the core ATen program")
    parser.add_argument("--strict", action="store_true", help="bytecode-level capture")
    parser.add_argument(
        "--refine", action="store_true", help="apply a constraint violation's suggested fixes"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, out: Output) -> int:
    try:
        with out.step(f"importing {args.model}"):
            model_file = load_model_file(args.model)
        spec = auto_dynamic(model_file) if args.auto else parse_dynamic(args.dynamic) or None
        program, spec = _export(model_file, spec, args, out)
        if program is None:
            return 1
        if args.decompose:
            with out.step("decomposing to core ATen"):
                program = program.run_decompositions()
        with out.step(f"saving {args.output}"):
            gl.save(program, args.output)
    except (GraphliftError, OSError) as error:
        return out.fail(error)
    nodes = sum(n.op == "call_function" for n in program.graph.nodes)
    out.result.update(
        output=args.output,
        nodes=nodes,
        dynamic_shapes=_spec_text(spec),
        range_constraints={k: str(v) for k, v in program.range_constraints.items()},
        specializations=[str(s) for s in program.specializations],
    )
    ranges = ", ".join(f"{k}: {v}" for k, v in program.range_constraints.items()) or "none"
    out.say(f"[green]saved[/green] {escape(args.output)}: {nodes} calls, ranges {{{ranges}}}")
    for specialization in program.specializations:
        out.say(f"  specialized: {escape(str(specialization))}")
    return 0


def _export(
    model_file: ModelFile, spec: Any, args: argparse.Namespace, out: Output
) -> tuple[gl.ExportedProgram | None, Any]:
    """Export, applying fixes under --refine; (None, spec) after a violation without it."""
    refinements: list[str] = []
    out.result["refinements"] = refinements
    for _ in range(MAX_REFINEMENTS + 1):
        start = time.perf_counter()
        try:
            with out.step("exporting"):
                program = gl.export(
                    model_file.model,
                    model_file.args,
                    model_file.kwargs,
                    dynamic_shapes=spec,
                    strict=args.strict,
                )
        except ConstraintViolationError as error:
            _print_fixes(out, error)
            spec = gl.refine_dynamic_shapes(
                spec, error, model_file.model, model_file.args, model_file.kwargs
            )
            if not args.refine:
                out.result["error"] = {
                    "type": type(error).__name__,
                    "message": str(error),
                    "fixes": _fixes_text(error),
                    "hint": f"rerun with --refine, or with {as_flags(spec)}",
                }
                out.say(f"rerun with --refine, or with {escape(as_flags(spec))}")
                return None, spec
            refinements.append(as_flags(spec))
            out.say(f"refined: {escape(as_flags(spec))}")
            continue
        out.result["seconds"] = round(time.perf_counter() - start, 3)
        out.say(f"exported in {out.result['seconds']:.2f} s")
        return program, spec
    raise GraphliftError(f"still violating after {MAX_REFINEMENTS} refinements: {spec}")


def _print_fixes(out: Output, error: ConstraintViolationError) -> None:
    out.say(
        "[yellow]constraint violation[/yellow] (the program works for fewer sizes than "
        f"declared):\n{escape(str(error))}"
    )
    table = Table("dim", "suggested")
    for source, fix in _fixes_text(error).items():
        table.add_row(source, fix)
    out.say(table)


def _fixes_text(error: ConstraintViolationError) -> dict[str, str]:
    fixes = error.fixes if isinstance(error.fixes, dict) else {}
    return {source: "static" if fix is None else str(fix) for source, fix in fixes.items()}


def _spec_text(spec: Any) -> str:
    return "none" if spec is None else repr(spec)


def as_flags(spec: Any) -> str:
    """A ``{input: {dim: Dim}}`` spec as the ``--dynamic`` flags that declare it."""
    flags = []
    for name, dims in (spec or {}).items():
        items = []
        for index, dim in (dims or {}).items():
            if dim is None:
                continue
            name_of = getattr(dim, "name", None) or str(dim).rpartition(".")[2].lower()
            low, high = getattr(dim, "min", None), getattr(dim, "max", None)
            bounds = "" if low is None and high is None else f"[{low or ''},{high or ''}]"
            items.append(f"{index}={name_of}{bounds}")
        if items:
            flags.append(f'--dynamic "{name}:{",".join(items)}"')
    return " ".join(flags) or "no --dynamic"
