"""``graphlift demo``: the main job on the bundled example model, step by step.

It traces a small GPT-style decoder (the Python-level graph), exports it with
dynamic batch and sequence dims (the ATen program), checks ``module()``
against eager PyTorch on inputs the trace never saw, shows an input the
program was not exported for being refused, then decomposes, saves and loads
it. By default each step prints a summary; ``--verbose`` prints the full
graphs, generated code and input checks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

import graphlift
import graphlift.errors
from graphlift.cli.output import Output
from graphlift.examples.tiny_gpt import TinyGPT, make_example


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo", help="capture the bundled example model and check it against eager"
    )
    demo.add_argument("--verbose", action="store_true", help="print full graphs and code")
    demo.add_argument("--no-code", action="store_true", help="(with --verbose) no generated code")
    demo.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace, out: Output) -> int:
    console = Console(quiet=True) if out.as_json else out.console
    failures = run_demo(console, verbose=args.verbose, show_code=not args.no_code)
    out.result["failures"] = failures
    return 1 if failures else 0


def run_demo(console: Console, verbose: bool = False, show_code: bool = True) -> int:
    """Run every step; the number of failed checks (0 when all pass)."""
    model, (tokens,) = make_example()
    console.rule("[bold]graphlift demo[/bold]: TinyGPT (bundled example model)")
    parameters = sum(p.numel() for p in model.parameters())
    console.print(
        f"model: {type(model).__name__}, {parameters:,} parameters, example input {tuple(tokens.shape)}"
    )
    failures = _demo_symbolic_trace(console, model, verbose, show_code)
    program, export_failures = _demo_export(console, model, tokens, verbose)
    failures = failures + export_failures
    failures += _demo_decompose_save_load(console, model, program)
    console.rule("result")
    if failures:
        console.print(f"[red]{failures} check(s) failed[/red]")
        return failures
    console.print("[green]every check passed[/green]")
    return 0


def _print_program_text(console: Console, text: str, verbose: bool, head: int = 6) -> None:
    """All of ``text`` with --verbose, else its first lines and how many more there are."""
    lines = text.splitlines()
    shown = lines if verbose or len(lines) <= head + 2 else lines[:head]
    # in the summary, a long line (the 32 parameters of graph(...)) ends in an ellipsis
    console.print(
        "\n".join(shown), markup=False, highlight=False,
        no_wrap=None if verbose else True, overflow=None if verbose else "ellipsis",
    )  # fmt: skip
    if len(shown) < len(lines):
        console.print(f"    ... {len(lines) - len(shown)} more lines (graphlift demo --verbose)")


def _demo_symbolic_trace(console: Console, model: TinyGPT, verbose: bool, show_code: bool) -> int:
    console.rule("1. symbolic_trace: the Python-level graph (torch.fx style)")
    start = time.perf_counter()
    traced = graphlift.symbolic_trace(model)
    elapsed = time.perf_counter() - start
    ops = {
        op: sum(n.op == op for n in traced.graph.nodes)
        for op in ("call_module", "call_function", "call_method")
    }
    console.print(f"{len(traced.graph.nodes)} nodes in {elapsed * 1e3:.1f} ms ({ops})")
    _print_program_text(console, str(traced.graph), verbose)
    if verbose and show_code:
        console.print("generated code:")
        console.print(Syntax(traced.code, "python", theme="ansi_dark", word_wrap=True))
    return _check_against_eager(console, model, traced, ((2, 16), (1, 5), (3, 32)))


def _demo_export(
    console: Console, model: TinyGPT, tokens: torch.Tensor, verbose: bool
) -> tuple[graphlift.ExportedProgram, int]:
    console.rule(
        "2. export with dynamic batch and sequence: the ATen-level program (torch.export style)"
    )
    batch = graphlift.Dim("batch", min=2, max=64)
    seq = graphlift.Dim("seq", min=2, max=model.config.max_len)
    spec: Any = {"tokens": {0: batch, 1: seq}}
    start = time.perf_counter()
    try:
        program = graphlift.export(model, (tokens,), dynamic_shapes=spec)
    except graphlift.errors.ConstraintViolationError as error:
        # At the full length the causal-mask slice is the whole buffer, which
        # takes another path; export says so and suggests a range instead of guessing.
        # That is the expected flow of this demo, not a failure.
        console.print(
            "export found that seq == 32 takes another path and said so "
            "(ConstraintViolationError, with a suggested fix):"
        )
        _print_program_text(console, str(error), verbose, head=3)
        spec = graphlift.refine_dynamic_shapes(spec, error, model, (tokens,))
        console.print(f"refine_dynamic_shapes applied the fix -> {spec}")
        program = graphlift.export(model, (tokens,), dynamic_shapes=spec)
    elapsed = time.perf_counter() - start
    console.print(f"exported in {elapsed * 1e3:.1f} ms")
    _print_program_text(console, str(program), verbose)
    ranges = ", ".join(f"{name}: {r}" for name, r in program.range_constraints.items())
    console.print(f"Range constraints: {{{ranges}}}", markup=False, highlight=False)
    module = program.module()
    failures = _check_against_eager(console, model, module, ((2, 16), (5, 3), (64, 31)))
    if verbose:
        console.print("input checks of ep.module():")
        console.print(Syntax(module.input_checks, "python", theme="ansi_dark", word_wrap=True))
    try:
        module(torch.zeros(2, 33, dtype=torch.long))
    except graphlift.GraphliftError as error:
        console.print(
            f"a (2, 33) input is refused, not silently mis-computed:\n  {type(error).__name__}: {escape(str(error))}"
        )
    else:
        console.print("[red]a (2, 33) input was accepted by a program exported for seq <= 31[/red]")
        failures += 1
    return program, failures


def _demo_decompose_save_load(
    console: Console, model: TinyGPT, program: graphlift.ExportedProgram
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
        # what was just saved: a program, not a package
        loaded = cast(graphlift.ExportedProgram, graphlift.load(path))
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
    model: TinyGPT,
    run: Callable[[torch.Tensor], torch.Tensor],
    shapes: Sequence[tuple[int, int]],
) -> int:
    table = Table("input", "max |graph - eager|", "result")
    failures = 0
    generator = torch.Generator().manual_seed(1)
    for batch, length in shapes:
        tokens = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)
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
