"""The command line: the demo is the README's first Quickstart command."""

from __future__ import annotations

import subprocess
import sys

from rich.console import Console

from graphlift import cli


def test_demo_traces_the_example_and_matches_eager() -> None:
    console = Console(record=True, width=120)
    assert cli.run_demo(console) == 0
    text = console.export_text()
    assert "graph(tokens):" in text
    assert "def forward(self, tokens):" in text
    assert "ExportedProgram:" in text and "tokens: USER_INPUT" in text
    assert "InputMismatchError: input 'tokens'" in text and "(2, 33)" in text
    assert "Range constraints: {s0: [2, 64], s1: [2, 31]}" in text
    assert "ConstraintViolationError" in text and "refine_dynamic_shapes ->" in text
    assert text.count("match") >= 4 and "MISMATCH" not in text
    assert "every check passed" in text


def test_demo_reports_a_mismatch() -> None:
    """The check can fail: a traced program that is off by a little is reported."""
    model, _ = cli.make_example()
    traced = cli.graphlift.symbolic_trace(model)
    console = Console(record=True, width=120)
    shapes = ((2, 16), (1, 5))
    assert (
        cli._check_against_eager(console, model, lambda tokens: traced(tokens) + 1e-3, shapes) == 2
    )
    assert "MISMATCH" in console.export_text()


def test_command_line_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "graphlift", "demo", "--no-code"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "every check passed" in result.stdout
    assert "def forward" not in result.stdout


def test_show_prints_a_saved_program(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model, (tokens,) = cli.make_example()
    ep = cli.graphlift.export(model, (tokens,))
    path = tmp_path / "tiny_gpt.gl"
    cli.graphlift.save(ep, path)
    console = Console(record=True, width=400)
    assert cli.run_show(console, str(path), show_checks=True) == 0
    text = console.export_text()
    assert str(ep).splitlines()[1].strip() in text and "def check_inputs(tokens):" in text
    path.write_bytes(path.read_bytes()[:100])
    console = Console(record=True, width=200)
    assert cli.run_show(console, str(path)) == 1
    assert "ArchiveError" in console.export_text()
