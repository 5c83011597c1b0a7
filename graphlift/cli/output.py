"""Where a command's results go: a rich console for people, one JSON object for scripts.

Every command builds a JSON-able ``result`` dict (its schema is in
``graphlift/cli/schemas.py``) and prints human-readable text as it goes. With
``--json`` the human text is suppressed (progress still goes to stderr) and the
result is printed once, at the end, as the only thing on stdout.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape


@dataclass
class Output:
    """The console of one command run, and the JSON result it is building."""

    console: Console
    as_json: bool = False
    result: dict[str, Any] = field(default_factory=dict)
    progress: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    def say(self, text: Any, **options: Any) -> None:
        """Print for people (suppressed under ``--json``)."""
        if not self.as_json:
            self.console.print(text, **options)

    def plain(self, text: str) -> None:
        """Print program text exactly as it is (no markup, no highlighting, no wrapping)."""
        if not self.as_json:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """A spinner on stderr while a long step runs (only on a terminal)."""
        if self.progress.is_terminal:
            with self.progress.status(what):
                yield
        else:
            yield

    def fail(self, error: BaseException, hint: str | None = None) -> int:
        """Report ``error`` (a GraphliftError or OSError the user can act on); exit code 1."""
        self.result["error"] = {"type": type(error).__name__, "message": str(error)}
        if hint:
            self.result["error"]["hint"] = hint
        if not self.as_json:
            self.console.print(f"[red]{type(error).__name__}[/red]: {escape(str(error))}")
            if hint:
                self.console.print(hint)
        return 1

    def finish(self, code: int) -> int:
        """Print the JSON result (under ``--json``) and return the exit code."""
        if self.as_json:
            self.result.setdefault("ok", code == 0)
            json.dump(self.result, sys.stdout, indent=2, sort_keys=True)
            sys.stdout.write("\n")
        return code
