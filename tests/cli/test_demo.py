"""``graphlift demo``: the README's first Quickstart command."""

from __future__ import annotations

import pytest
from rich.console import Console

from graphlift.cli import demo
from tests.cli.harness import run_graphlift, validate


@pytest.mark.slow
def test_demo_is_short_by_default_and_matches_eager() -> None:
    console = Console(record=True, width=120)
    assert demo.run_demo(console) == 0
    text = console.export_text()
    assert "graph(tokens):" in text and "more lines (graphlift demo --verbose)" in text
    assert "def forward(self, tokens):" not in text
    assert "InputMismatchError: input 'tokens'" in text and "(2, 33)" in text
    assert "Range constraints: {s0: [2, 64], s1: [2, 31]}" in text
    assert "ConstraintViolationError" in text and "refine_dynamic_shapes applied the fix" in text
    assert text.count("match") >= 4 and "MISMATCH" not in text
    assert "every check passed" in text
    assert len(text.splitlines()) < 110


@pytest.mark.slow
def test_demo_verbose_prints_the_full_graphs() -> None:
    console = Console(record=True, width=120)
    assert demo.run_demo(console, verbose=True) == 0
    text = console.export_text()
    assert "def forward(self, tokens):" in text and "ExportedProgram:" in text
    assert "tokens: USER_INPUT" in text and "def check_inputs(tokens):" in text
    assert "more lines" not in text


def test_demo_reports_a_mismatch() -> None:
    """The check can fail: a traced program that is off by a little is reported."""
    model, _ = demo.make_example()
    traced = demo.graphlift.symbolic_trace(model)
    console = Console(record=True, width=120)
    shapes = ((2, 16), (1, 5))
    failures = demo._check_against_eager(
        console, model, lambda tokens: traced(tokens) + 1e-3, shapes
    )
    assert failures == 2
    assert "MISMATCH" in console.export_text()


@pytest.mark.slow
def test_command_line_entry_point(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_graphlift(tmp_path, "demo", "--json")
    assert result.returncode == 0, result.stderr
    assert validate("demo", result.stdout) == {"ok": True, "failures": 0}
