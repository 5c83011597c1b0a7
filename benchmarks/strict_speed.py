"""Strict capture against non-strict export of the same zoo models, in one run.

    python benchmarks/strict_speed.py

Prints, per model, the best of three export times in each mode and their
ratio, then the median ratio (issue 21's target: strict <= 1.5x non-strict).
Mixtral is left out: its eager expert loop is data-dependent in both modes.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import graphlift as gl
from tests.zoo.models import CASES


def best_of(count: int, run) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(count):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ratios = []
    print(f"{'model':26s} {'non-strict':>12s} {'strict':>12s} {'ratio':>7s}")
    for case in CASES:
        if case.name == "mixtral":
            continue
        model = case.make_model()
        args, kwargs = case.make_inputs()
        with torch.no_grad():
            loose = best_of(3, functools.partial(gl.export, model, args, kwargs))
            strict = best_of(3, functools.partial(gl.export, model, args, kwargs, strict=True))
        ratios.append(strict / loose)
        print(f"{case.name:26s} {loose * 1e3:10.1f}ms {strict * 1e3:10.1f}ms {strict / loose:7.2f}")
    print(f"median strict / non-strict: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
