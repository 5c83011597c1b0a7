"""Strict against non-strict export of the same zoo models, graphlift's and
torch.export's, all in one run.

    nice python benchmarks/strict_speed.py

Prints, per model, the best of three export times of graphlift non-strict,
graphlift strict, torch.export non-strict and torch.export strict (Dynamo),
with each library's strict / non-strict ratio, then the median ratios over the
models both modes of a library export (issue 21's target: graphlift's ratio
<= 1.5; torch's is about 2). A mode that fails prints its error type; Mixtral's
eager expert loop is data-dependent, so only graphlift's strict mode exports it.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import graphlift as gl
from tests.zoo.models import CASES

REPEATS = 3


def best_of(count: int, run: Callable[[], Any]) -> float | str:
    """The best wall time of ``count`` runs, or the error type of a failing run."""
    best = float("inf")
    for _ in range(count):
        start = time.perf_counter()
        try:
            run()
        except Exception as error:  # a failing mode is a result here
            return type(error).__name__
        best = min(best, time.perf_counter() - start)
    return best


def torch_export(model: Any, args: Any, kwargs: Any, *, strict: bool) -> Any:
    torch._dynamo.reset()  # no Dynamo cache carried from one run to the next
    return torch.export.export(model, args, kwargs, strict=strict)


def cell(value: float | str) -> str:
    return f"{value * 1e3:9.0f}ms" if isinstance(value, float) else f"{value[:11]:>11s}"


def ratio(strict: float | str, loose: float | str) -> float | None:
    both = isinstance(strict, float) and isinstance(loose, float)
    return strict / loose if both else None  # type: ignore[operator]


def main() -> None:
    ours: list[float] = []
    theirs: list[float] = []
    print(f"{'model':24s} {'gl':>11s} {'gl strict':>11s} {'ratio':>6s} "
          f"{'torch':>11s} {'torch strict':>11s} {'ratio':>6s}")  # fmt: skip
    for case in CASES:
        model = case.make_model()
        args, kwargs = case.make_inputs()
        with torch.no_grad():
            times = [
                best_of(REPEATS, functools.partial(gl.export, model, args, kwargs)),
                best_of(REPEATS, functools.partial(gl.export, model, args, kwargs, strict=True)),
                best_of(
                    REPEATS, functools.partial(torch_export, model, args, kwargs, strict=False)
                ),
                best_of(REPEATS, functools.partial(torch_export, model, args, kwargs, strict=True)),
            ]
        mine, torchs = ratio(times[1], times[0]), ratio(times[3], times[2])
        ours += [mine] if mine is not None else []
        theirs += [torchs] if torchs is not None else []
        shown = [f"{r:6.2f}" if r is not None else f"{'-':>6s}" for r in (mine, torchs)]
        print(f"{case.name:24s} {cell(times[0])} {cell(times[1])} {shown[0]} "
              f"{cell(times[2])} {cell(times[3])} {shown[1]}", flush=True)  # fmt: skip
    print(f"median strict / non-strict: graphlift {statistics.median(ours):.2f} "
          f"({len(ours)} models), torch.export {statistics.median(theirs):.2f} "
          f"({len(theirs)} models)")  # fmt: skip


if __name__ == "__main__":
    main()
