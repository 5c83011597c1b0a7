"""``unflatten`` cost against the number of module calls (issue #16: linear).

A stack of N small blocks (each a Linear, a LayerNorm with a buffer update and
a nested activation module, so every block is three calls deep) is exported
once per N; ``graphlift.unflatten`` and ``torch.export.unflatten`` are timed
on it (median of ``--repeat`` runs). The line to read is microseconds per
call: flat when the cost is linear in the number of calls. One preserved
block per program exercises the signature path too.

    python benchmarks/unflatten_speed.py [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import graphlift  # noqa: E402
from benchmarks import tables  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "unflatten_speed.json"
SIZES = (8, 32, 128, 256)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.act = nn.GELU()
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.add_(1)
        return x + self.act(self.norm(self.linear(x)))


class Stack(nn.Module):
    def __init__(self, blocks: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block() for _ in range(blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


def median_seconds(run: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=str(RESULTS))
    options = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    rows, record = [], {}
    for blocks in SIZES:
        model, x = Stack(blocks), torch.randn(4, 8)
        preserve = ("blocks.0",)
        ours = graphlift.export(model, (x,), preserve_module_call_signature=preserve)
        theirs = torch.export.export(model, (x,), strict=False,
                                     preserve_module_call_signature=preserve)  # fmt: skip
        calls = sum(1 for e in ours.module_call_graph if e.signature is not None) - 1
        ours_s = median_seconds(lambda ep=ours: graphlift.unflatten(ep), options.repeat)
        theirs_s = median_seconds(lambda ep=theirs: torch.export.unflatten(ep), options.repeat)
        record[str(blocks)] = {"calls": calls, "graphlift_s": ours_s, "torch_s": theirs_s}
        rows.append([str(blocks), str(calls), f"{ours_s * 1e3:.1f}", f"{ours_s / calls * 1e6:.0f}",
                     f"{theirs_s * 1e3:.1f}", f"{theirs_s / calls * 1e6:.0f}"])  # fmt: skip
    tables.print_table(
        "unflatten time vs module calls",
        ["blocks", "calls", "graphlift ms", "graphlift us/call", "torch ms", "torch us/call"],
        rows,
    )
    tables.write_results(options.json, record)


if __name__ == "__main__":
    main()
