"""The model sweep's pass matrix: graphlift and torch.export on the same models, in one run.

For every case of ``tests/sweep/models.py`` (the zoo plus transformers
architectures from small configs) and every spec mode (``static``; ``named``:
the case's Dims; ``auto``: ``Dim.AUTO`` on every dim of every input), each
exporter goes through export, run against eager (several sizes), decompose and
save/load (``tests/sweep/runner.py``). Prints one row per case and mode and the
totals per stage; writes ``benchmarks/results/model_sweep.json``.

    python benchmarks/model_sweep.py [--cases bert,gpt2] [--modes static,auto]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.sweep.models import CASES, CASES_BY_NAME  # noqa: E402
from tests.sweep.runner import GRAPHLIFT, MODES, STAGES, TORCH, run_cell  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "model_sweep.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--output", default=str(RESULTS))
    options = parser.parse_args()
    cases = [CASES_BY_NAME[n] for n in options.cases.split(",")] if options.cases else CASES
    modes = options.modes.split(",")
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    rows = []
    print(f"{'case':<24}{'mode':<8}" + "".join(f"{s:>22}" for s in STAGES))
    for case in cases:
        for mode in modes:
            cell = {e.name: run_cell(e, case, mode) for e in (GRAPHLIFT, TORCH)}
            rows.append({"case": case.name, "mode": mode,
                         **{e: {s: str(r) for s, r in stages.items()} for e, stages in cell.items()}})  # fmt: skip
            marks = [
                f"{cell['graphlift'][s].status}/{cell['torch.export'][s].status}" for s in STAGES
            ]
            print(f"{case.name:<24}{mode:<8}" + "".join(f"{m:>22}" for m in marks), flush=True)
            Path(options.output).write_text(json.dumps(rows, indent=1) + "\n")
    print_totals(rows)


def print_totals(rows: list[dict]) -> None:
    print("\nok counts (graphlift / torch.export), and cells where one is ok and the other not:")
    for stage in STAGES:
        ours = sum(r["graphlift"][stage] == "ok" for r in rows)
        theirs = sum(r["torch.export"][stage] == "ok" for r in rows)
        behind = sum(
            r["torch.export"][stage] == "ok" and r["graphlift"][stage] != "ok" for r in rows
        )
        ahead = sum(
            r["graphlift"][stage] == "ok" and r["torch.export"][stage] != "ok" for r in rows
        )
        wrong = sum(r["graphlift"][stage].startswith("wrong") for r in rows)
        print(f"  {stage:<10} {ours:>3} / {theirs:<3} of {len(rows)}   graphlift behind: {behind:>2}"
              f"   ahead: {ahead:>2}   graphlift wrong answers: {wrong}")  # fmt: skip


if __name__ == "__main__":
    main()
