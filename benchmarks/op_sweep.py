"""The op sweep's counts: graphlift and torch.export on every op of torch's op_db, in one run.

Each OpInfo's first ``--samples`` CPU samples (float32 where supported) become
modules with ``Dim.AUTO`` on every dim of every tensor input
(``tests/opsweep/runner.py``); both exporters go through export, run against
eager (the sample and a resized sample) and ``run_decompositions()`` + run. An
op is ok at a stage when all its samples are. Prints the ops where graphlift
and torch differ and the totals per stage; writes
``benchmarks/results/op_sweep.json``. With ``--record`` (one sample, all ops)
it also writes torch's column to ``tests/opsweep/torch_oracle.json``, which the
default test tier compares against instead of running torch.export (170 s).

    python benchmarks/op_sweep.py [--samples 1] [--ops add,view] [--record]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.opsweep.runner import (  # noqa: E402
    GRAPHLIFT,
    ORACLE_PATH,
    STAGES,
    TORCH,
    op_table,
    run_cell,
    samples_of,
)

RESULTS = REPO / "benchmarks" / "results" / "op_sweep.json"


def worst(cells: list[dict[str, str]]) -> dict[str, str]:
    """Per stage, the first non-ok result over an op's samples (ok when all are)."""
    return {s: next((c[s] for c in cells if c[s] != "ok"), "ok") for s in STAGES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument("--ops", help="comma-separated op keys (default: all)")
    parser.add_argument("--record", action="store_true", help="write torch's column as the oracle")
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="torch's column from the recorded oracle (one sample): graphlift only",
    )
    parser.add_argument("--resume", action="store_true", help="keep the ops --output has")
    parser.add_argument("--output", default=str(RESULTS))
    options = parser.parse_args()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    ops = op_table()
    keys = options.ops.split(",") if options.ops else sorted(ops)
    seconds = dict.fromkeys((GRAPHLIFT.name, TORCH.name), 0.0)
    output = Path(options.output)
    rows: dict[str, dict[str, dict[str, str]]] = (
        json.loads(output.read_text()) if options.resume and output.exists() else {}
    )
    oracle = json.loads(ORACLE_PATH.read_text()) if options.oracle else None
    for key in keys:
        if key in rows or (oracle is not None and key not in oracle):
            continue
        cells = measure(ops[key], options.samples, seconds, oracle is None)
        if not cells[GRAPHLIFT.name]:
            continue
        rows[key] = {name: worst(per_sample) for name, per_sample in cells.items()}
        if oracle is not None:
            rows[key][TORCH.name] = oracle[key]
        report_row(key, rows[key])
        output.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
    if options.record and options.samples == 1 and not options.ops and oracle is None:
        oracle = {key: row[TORCH.name] for key, row in rows.items()}
        ORACLE_PATH.write_text(json.dumps(oracle, indent=1, sort_keys=True) + "\n")
    print_totals(rows, options.samples, seconds)


def measure(op: object, samples: int, seconds: dict, with_torch: bool) -> dict[str, list]:
    """Each exporter's stage results on each of ``op``'s first ``samples`` samples."""
    exporters = (GRAPHLIFT, TORCH) if with_torch else (GRAPHLIFT,)
    cells: dict[str, list[dict[str, str]]] = {GRAPHLIFT.name: [], TORCH.name: []}
    try:
        for sample in samples_of(op, samples):
            for exporter in exporters:
                start = time.process_time()
                result = run_cell(exporter, sample)
                seconds[exporter.name] += time.process_time() - start
                cells[exporter.name].append({s: str(r) for s, r in result.items()})
    except Exception as error:  # the sample generator itself: reported, the sweep goes on
        print(f"{getattr(op, 'name', op)}: samples failed: {type(error).__name__}: {error}")
        return {GRAPHLIFT.name: [], TORCH.name: []}
    return cells


def report_row(key: str, row: dict[str, dict[str, str]]) -> None:
    ours, theirs = row[GRAPHLIFT.name], row[TORCH.name]
    if all(ours[s].split()[0] == theirs[s].split()[0] for s in STAGES):
        return
    marks = " ".join(f"{s}={ours[s].split()[0]}/{theirs[s].split()[0]}" for s in STAGES)
    first = next((ours[s] for s in STAGES if ours[s] not in ("ok", "skipped")), "")
    print(f"{key:<42} {marks}  {first[:150]}", flush=True)


def print_totals(rows: dict[str, dict[str, dict[str, str]]], samples: int, seconds: dict) -> None:
    print(f"\n{len(rows)} ops, {samples} sample(s) each; CPU s: "
          + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))  # fmt: skip
    print("ops ok per stage (graphlift / torch.export), and ops where one is ok and the other not:")
    for stage in STAGES:
        ours = {k for k, r in rows.items() if r[GRAPHLIFT.name][stage] == "ok"}
        theirs = {k for k, r in rows.items() if r[TORCH.name][stage] == "ok"}
        wrong = sum(r[GRAPHLIFT.name][stage].startswith("wrong") for r in rows.values())
        print(f"  {stage:<10} {len(ours):>4} / {len(theirs):<4}  graphlift behind: "
              f"{len(theirs - ours):>3}   ahead: {len(ours - theirs):>3}   graphlift wrong: {wrong}")  # fmt: skip


if __name__ == "__main__":
    main()
