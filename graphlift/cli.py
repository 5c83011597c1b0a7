"""The ``graphlift`` command line.

``graphlift demo`` runs the main job on the bundled example model (a small
GPT-style decoder) and shows each step: the Python-level trace and its
generated code, the exported ATen program with its signature, ``module()``
checked against eager PyTorch on inputs the trace never saw, and an input the
program was not exported for being refused. The demo grows with each
capability (dynamic shapes, save, load).

``graphlift show model.gl`` prints a program saved with ``graphlift.save``
(no model code needed; ``--checks`` adds the input checks ``module()`` runs).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

import graphlift
import graphlift.errors
from graphlift.examples.tiny_gpt import make_example


def run_demo(console: Console, show_code: bool = True) -> int:
    model, (tokens,) = make_example()
    console.rule("[bold]graphlift demo[/bold]: TinyGPT (bundled example model)")
    parameters = sum(p.numel() for p in model.parameters())
    console.print(
        f"model: {type(model).__name__}, {parameters:,} parameters, example input {tuple(tokens.shape)}"
    )
    failures = _demo_symbolic_trace(console, model, show_code)
    program, export_failures = _demo_export(console, model, tokens)
    failures = failures + export_failures
    failures += _demo_decompose_save_load(console, model, program)
    console.rule("result")
    if failures:
        console.print(f"[red]{failures} check(s) failed[/red]")
        return 1
    console.print("[green]every check passed[/green]")
    return 0


def _demo_symbolic_trace(console: Console, model: torch.nn.Module, show_code: bool) -> int:
    console.rule("1. symbolic_trace: the Python-level graph (torch.fx style)")
    start = time.perf_counter()
    traced = graphlift.symbolic_trace(model)
    elapsed = time.perf_counter() - start
    ops = {
        op: sum(n.op == op for n in traced.graph.nodes)
        for op in ("call_module", "call_function", "call_method")
    }
    console.print(f"{len(traced.graph.nodes)} nodes in {elapsed * 1e3:.1f} ms ({ops})")
    console.print(str(traced.graph), markup=False, highlight=False)
    if show_code:
        console.print("generated code:")
        console.print(Syntax(traced.code, "python", theme="ansi_dark", word_wrap=True))
    return _check_against_eager(console, model, traced, ((2, 16), (1, 5), (3, 32)))


def _demo_export(
    console: Console, model: torch.nn.Module, tokens: torch.Tensor
) -> tuple[graphlift.ExportedProgram, int]:
    console.rule(
        "2. export with dynamic batch and sequence: the ATen-level program (torch.export style)"
    )
    batch = graphlift.Dim("batch", min=2, max=64)
    seq = graphlift.Dim("seq", min=2, max=model.config.max_len)  # type: ignore[union-attr]
    spec: Any = {"tokens": {0: batch, 1: seq}}
    start = time.perf_counter()
    try:
        program = graphlift.export(model, (tokens,), dynamic_shapes=spec)
    except graphlift.errors.ConstraintViolationError as error:
        # At the full length the causal-mask slice is the whole buffer, which
        # takes another path; export says so and suggests a range instead of guessing.
        console.print(f"[yellow]ConstraintViolationError[/yellow]: {escape(str(error))}")
        spec = graphlift.refine_dynamic_shapes(spec, error, model, (tokens,))
        console.print(f"refine_dynamic_shapes -> {spec}")
        program = graphlift.export(model, (tokens,), dynamic_shapes=spec)
    elapsed = time.perf_counter() - start
    console.print(f"exported in {elapsed * 1e3:.1f} ms")
    console.print(str(program), markup=False, highlight=False)
    module = program.module()
    failures = _check_against_eager(console, model, module, ((2, 16), (5, 3), (64, 31)))
    console.print("input checks of ep.module():")
    console.print(Syntax(module.input_checks, "python", theme="ansi_dark", word_wrap=True))
    try:
        module(torch.zeros(2, 33, dtype=torch.long))
    except graphlift.GraphliftError as error:
        console.print(
            f"a (2, 33) input is refused, not silently mis-computed:\n  [yellow]{type(error).__name__}[/yellow]: {escape(str(error))}"
        )
    else:
        console.print("[red]a (2, 33) input was accepted by a program exported for seq <= 31[/red]")
        failures += 1
    return program, failures


def _demo_decompose_save_load(
    console: Console, model: torch.nn.Module, program: graphlift.ExportedProgram
) -> int:
    console.rule("3. run_decompositions, save, load: core ATen in a portable archive")
    start = time.perf_counter()
    core = program.run_decompositions()
    elapsed = time.perf_counter() - start
    count = sum(n.op == "call_function" for n in core.graph.nodes)
    console.print(f"core ATen program: {count} calls, decomposed in {elapsed * 1e3:.1f} ms")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tiny_gpt.gl"
        start = time.perf_counter()
        graphlift.save(core, path)
        saved = time.perf_counter() - start
        start = time.perf_counter()
        loaded = graphlift.load(path)
        console.print(
            f"saved {path.stat().st_size:,} bytes in {saved * 1e3:.1f} ms, loaded in "
            f"{(time.perf_counter() - start) * 1e3:.1f} ms (JSON + safetensors, no pickle)"
        )
    module = loaded.module()
    failures = _check_against_eager(console, model, module, ((3, 9), (2, 31)))
    try:
        module(torch.zeros(2, 33, dtype=torch.long))
    except graphlift.GraphliftError:
        console.print("the loaded program still refuses a (2, 33) input")
    else:
        console.print("[red]the loaded program accepted a (2, 33) input[/red]")
        failures += 1
    return failures


def _check_against_eager(
    console: Console,
    model: torch.nn.Module,
    run: Callable[[torch.Tensor], torch.Tensor],
    shapes: Sequence[tuple[int, int]],
) -> int:
    table = Table("input", "max |graph - eager|", "result")
    failures = 0
    generator = torch.Generator().manual_seed(1)
    for batch, length in shapes:
        tokens = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)  # type: ignore[union-attr]
        with torch.no_grad():
            expected, actual = model(tokens), run(tokens)
        error = (expected - actual).abs().max().item()
        ok = error <= 1e-5
        failures += not ok
        table.add_row(
            f"tokens{(batch, length)}",
            f"{error:.2e}",
            "[green]match[/green]" if ok else "[red]MISMATCH[/red]",
        )
    console.print(table)
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graphlift", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"graphlift {graphlift.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="capture the bundled example model and check it against eager"
    )
    demo.add_argument("--no-code", action="store_true", help="do not print the generated code")
    show = commands.add_parser("show", help="print a program saved with graphlift.save")
    show.add_argument("archive", help="path of the archive (e.g. model.gl)")
    show.add_argument("--checks", action="store_true", help="also print module()'s input checks")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    if args.command == "demo":
        return run_demo(console, show_code=not args.no_code)
    if args.command == "show":
        return run_show(console, args.archive, show_checks=args.checks)
    return 2


def run_show(console: Console, path: str, show_checks: bool = False) -> int:
    """Load an archive (no model code needed) and print the program; 1 if it is not valid."""
    try:
        program = graphlift.load(path)
    except (graphlift.ArchiveError, OSError) as error:
        console.print(f"[red]{type(error).__name__}[/red]: {escape(str(error))}")
        return 1
    console.print(str(program), markup=False, soft_wrap=True)
    if show_checks:  # a package (graphlift.export_methods) has one program per method
        programs = program.values() if isinstance(program, graphlift.ExportPackage) else [program]
        for each in programs:
            console.print(each.module().input_checks, markup=False, soft_wrap=True)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
