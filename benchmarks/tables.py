"""What the benchmark scripts share: the table printer (rich is a graphlift
dependency) and the JSON record writer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A wide table: the first column (the case name) left-aligned, numbers right-aligned."""
    table = Table(title=title)
    for index, column in enumerate(header):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def write_results(path: str | Path, record: Any) -> None:
    """Write a benchmark's record as sorted, indented JSON (diffs stay readable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")
