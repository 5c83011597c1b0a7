"""Speed of graphlift's ShapeEnv against torch's, on the same symbolic workload.

The workload is what meta kernels do with sizes: short chains of arithmetic on
SymInts (add, sub, mul, floordiv, mod, max, min with constants and other
sizes) and shape questions about the results (``bool(a < b)`` that guards,
``statically_known_true``, ``guard_or_false``). A seeded generator drives both
engines through the identical sequence in one process; the chain restarts from
the input sizes every few steps, as shape code does per op.

    python benchmarks/symbolic_speed.py [--ops 100000] [--symbols 8] [--seed 0]

torch's machinery is used here only as the yardstick.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphlift.symbolic import ShapeEnv

ARITHMETIC: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("floordiv", lambda a, b: a // b),
    ("mod", lambda a, b: a % b),
    ("max", torch.sym_max),
    ("min", torch.sym_min),
]


def graphlift_inputs(
    hints: list[int],
) -> tuple[list[Any], Callable[[Any], bool], Callable[[Any], bool]]:
    env = ShapeEnv()
    sizes = [env.create_symbol(h, min=2, source=f"x.size()[{i}]") for i, h in enumerate(hints)]
    return sizes, statically_known_true, guard_or_false


def torch_inputs(
    hints: list[int],
) -> tuple[list[Any], Callable[[Any], bool], Callable[[Any], bool]]:
    from torch._dynamo.source import ConstantSource
    from torch.fx.experimental.symbolic_shapes import DimDynamic
    from torch.fx.experimental.symbolic_shapes import ShapeEnv as TorchShapeEnv

    env = TorchShapeEnv(duck_shape=False, specialize_zero_one=False)
    sizes = []
    for i, hint in enumerate(hints):
        source = ConstantSource(f"x_size_{i}")
        symbol = env.create_symbol(hint, source, dynamic_dim=DimDynamic.DYNAMIC)
        env.var_to_range[symbol] = env.var_to_range[symbol] & _torch_range(2)
        sizes.append(env.create_symintnode(symbol, hint=hint, source=source))
    return sizes, statically_known_true, guard_or_false


def _torch_range(lower: int) -> Any:
    from torch.utils._sympy.value_ranges import ValueRanges

    return ValueRanges(lower, ValueRanges.unknown_int().upper)


def statically_known_true(x: Any) -> bool:
    from torch.fx.experimental.symbolic_shapes import statically_known_true as known

    return bool(known(x))


def guard_or_false(x: Any) -> bool:
    from torch.fx.experimental.symbolic_shapes import guard_or_false as guard

    return bool(guard(x))


def workload(
    make: Callable[[list[int]], tuple[list[Any], Callable[[Any], bool], Callable[[Any], bool]]],
    ops: int,
    symbols: int,
    seed: int,
) -> tuple[float, int, int]:
    """CPU seconds spent, and a checksum of the answers that do not depend on the engine.

    Guarded answers (``bool``, ``guard_or_false`` on backed sizes) are the
    example values' answers, so both engines must agree on them;
    ``statically_known_true`` measures how much an engine can prove, which
    differs, so it is counted separately.
    """
    rng = random.Random(seed)
    hints = [rng.randint(2, 64) for _ in range(symbols)]
    start = time.process_time()
    sizes, known, guard_or = make(hints)
    checksum = proved = 0
    pool = list(sizes)
    for step in range(ops):
        if step % 12 == 0:
            pool = list(sizes)
        kind = rng.random()
        a = rng.choice(pool)
        b = rng.choice(pool) if rng.random() < 0.5 else rng.randint(1, 8)
        if kind < 0.7:
            name, fn = ARITHMETIC[rng.randrange(len(ARITHMETIC))]
            if name in ("floordiv", "mod"):
                b = rng.randint(1, 8)  # symbolic divisors would guard b != 0 each time
            pool.append(fn(a, b))
            continue
        question = a < b if rng.random() < 0.5 else a >= b + 1
        if kind < 0.8:
            answer = bool(question)
        elif kind < 0.9:
            proved += known(question)
            continue
        else:
            answer = guard_or(question)
        checksum = (checksum * 31 + int(answer) + step) % 1_000_000_007
    return time.process_time() - start, checksum, proved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    workload(graphlift_inputs, 500, options.symbols, options.seed + 1)  # warm up imports
    workload(torch_inputs, 500, options.symbols, options.seed + 1)
    theirs, torch_sum, torch_proved = workload(
        torch_inputs, options.ops, options.symbols, options.seed
    )
    ours, our_sum, our_proved = workload(
        graphlift_inputs, options.ops, options.symbols, options.seed
    )
    print(f"{options.ops} mixed symbolic operations and guard queries, {options.symbols} symbols")
    print(f"torch ShapeEnv:     {theirs:8.2f} s CPU")
    print(f"graphlift ShapeEnv: {ours:8.2f} s CPU ({ours / theirs:.2f}x torch's time)")
    print(f"guarded answers agree: {our_sum == torch_sum}")
    print(f"statically_known_true proved: torch {torch_proved}, graphlift {our_proved}")


if __name__ == "__main__":
    main()
