"""The ``graphlift`` command line.

    graphlift export FILE.py[:factory] -o model.gl [--dynamic SPEC | --auto] [--decompose] [--refine]
    graphlift run model.gl [--inputs FILE.safetensors | --random x=2x16] [--check-against FILE.py]
    graphlift show model.gl [--html OUT.html | --svg OUT.svg] [--checks] [--core]
    graphlift report model.gl
    graphlift diff a.gl b.gl
    graphlift demo [--verbose]

Every command takes ``--json`` and then prints one JSON object (schemas in
``graphlift/cli/schemas.py``). Exit codes: 0 success, 1 a failure the output
explains (or, for ``diff``, the programs differ), 2 a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

import graphlift
from graphlift.cli import demo, export_command, inspect_commands, run_command
from graphlift.cli.output import Output

#: Command name -> the function that runs it.
COMMANDS = {
    "export": export_command.run,
    "run": run_command.run,
    "show": inspect_commands.run_show,
    "report": inspect_commands.run_report,
    "diff": inspect_commands.run_diff,
    "demo": demo.run,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphlift",
        description="Capture PyTorch programs into sound, portable, readable graphs.",
        epilog="Run 'graphlift COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"graphlift {graphlift.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    export_command.add_parser(commands)
    run_command.add_parser(commands)
    inspect_commands.add_parsers(commands)
    demo.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, console: Console | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(console or Console(highlight=False), as_json=args.json)
    return out.finish(COMMANDS[args.command](args, out))


if __name__ == "__main__":
    sys.exit(main())
