"""The ``graphlift`` command line.

``graphlift demo`` runs the main job on the bundled example model (a small
GPT-style decoder) and shows each step: capture, the graph, the generated
code, and a check against eager PyTorch on inputs the trace never saw.
The demo grows with each capability (export, save, load).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import torch
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

import graphlift
from graphlift.examples.tiny_gpt import make_example


def run_demo(console: Console, show_code: bool = True) -> int:
    model, (tokens,) = make_example()
    console.rule("[bold]graphlift demo[/bold]: TinyGPT (bundled example model)")
    parameters = sum(p.numel() for p in model.parameters())
    console.print(f"model: {type(model).__name__}, {parameters:,} parameters, example input {tuple(tokens.shape)}")

    start = time.perf_counter()
    traced = graphlift.symbolic_trace(model)
    elapsed = time.perf_counter() - start
    ops = {op: sum(n.op == op for n in traced.graph.nodes) for op in ("call_module", "call_function", "call_method")}
    console.print(f"symbolic_trace: {len(traced.graph.nodes)} nodes in {elapsed * 1e3:.1f} ms ({ops})")

    console.rule("graph")
    console.print(str(traced.graph), markup=False, highlight=False)
    if show_code:
        console.rule("generated code")
        console.print(Syntax(traced.code, "python", theme="ansi_dark", word_wrap=True))

    console.rule("check against eager PyTorch")
    return _check_against_eager(console, model, traced)


def _check_against_eager(console: Console, model: torch.nn.Module, traced: torch.nn.Module) -> int:
    table = Table("input", "max |graph - eager|", "result")
    failures = 0
    generator = torch.Generator().manual_seed(1)
    for batch, length in ((2, 16), (1, 5), (3, 32)):
        tokens = torch.randint(0, model.config.vocab_size, (batch, length), generator=generator)  # type: ignore[union-attr]
        with torch.no_grad():
            expected, actual = model(tokens), traced(tokens)
        error = (expected - actual).abs().max().item()
        ok = error <= 1e-5
        failures += not ok
        table.add_row(f"tokens{(batch, length)}", f"{error:.2e}", "[green]match[/green]" if ok else "[red]MISMATCH[/red]")
    console.print(table)
    if failures:
        console.print(f"[red]{failures} input(s) differ from eager[/red]")
        return 1
    console.print("[green]the traced program matches eager on every input[/green]")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="graphlift", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"graphlift {graphlift.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="capture the bundled example model and check it against eager")
    demo.add_argument("--no-code", action="store_true", help="do not print the generated code")
    args = parser.parse_args(argv)
    console = Console(highlight=False)
    if args.command == "demo":
        return run_demo(console, show_code=not args.no_code)
    return 2


if __name__ == "__main__":
    sys.exit(main())
