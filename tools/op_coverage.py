"""Coverage of graphlift's symbolic shapes over torch's own op table (op_db).

For each OpInfo in ``torch.testing._internal.common_methods_invocations.op_db``
and its first few CPU sample inputs, every dimension of every tensor input is
made symbolic; the op runs on meta tensors under a TorchDispatchMode with the
python dispatcher enabled. An op *passes* when, for every sample that runs
concretely on meta tensors, the symbolic output shapes with the example values
substituted equal the concrete output shapes.

The same samples also run under torch's own engine (FakeTensorMode + its
ShapeEnv, configured like ours: no 0/1 specialization, no duck sizing), side
by side. torch's machinery is used in this script only, as the yardstick.

    python tools/op_coverage.py [--samples 3] [--ops add,view] [--json out.json]

Needs the ``expecttest`` package (torch's test utilities import it).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch._dispatch.python import enable_python_dispatcher
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_map

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphlift.symbolic import ShapeEnv

Shapes = list[tuple[int, ...]]
Run = tuple[Shapes, int]  # output shapes, and how many input dims were specialized


class Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: object) -> None:
    raise Timeout


class Redispatch(TorchDispatchMode):
    """What the tracer will do, minus recording: see every ATen call, run its meta kernel.

    Kernels that are not SymInt-aware call ``sizes()``/``strides()`` on a tensor
    with symbolic sizes; that arrives here as ``aten.size.default`` (etc.) and,
    as in torch's FakeTensorMode, is answered with concrete values, guarding
    (specializing) each symbolic size.
    """

    CONCRETE = {
        torch.ops.aten.size.default: lambda t: [int(s) for s in t.shape],
        torch.ops.aten.stride.default: lambda t: [int(s) for s in t.stride()],
        torch.ops.aten.storage_offset.default: lambda t: int(t.storage_offset()),
    }

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in self.CONCRETE:
            return self.CONCRETE[func](args[0])
        if torch._C._dispatch_has_kernel_for_dispatch_key(
            func.name(), torch._C.DispatchKey.CompositeImplicitAutograd
        ):
            # A composite op reached the mode (the python dispatcher routes some
            # here): run its C++ decomposition, as FakeTensorMode does, rather
            # than a Python ref that expects Python-level arguments.
            with self:
                result = func.decompose(*args, **kwargs)
            if result is not NotImplemented:
                return result
        return func(*args, **kwargs)


def sample_calls(
    op: Any, limit: int
) -> Iterator[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
    dtypes = op.supported_dtypes("cpu")
    dtype = torch.float32 if torch.float32 in dtypes else sorted(dtypes, key=str)[0]
    samples = op.sample_inputs("cpu", dtype, requires_grad=False)
    for index, sample in enumerate(samples):
        if index >= limit:
            break
        yield op.op, (sample.input, *sample.args), dict(sample.kwargs)


def to_meta(value: Any) -> Any:
    def convert(t: Any) -> Any:
        if isinstance(t, torch.Tensor):
            return torch.empty(t.shape, dtype=t.dtype, device="meta")
        return t

    return tree_map(convert, value)


def output_shapes(out: Any, size_of: Callable[[Any], int]) -> Shapes:
    leaves, _ = tree_flatten(out)
    return [tuple(size_of(s) for s in t.shape) for t in leaves if isinstance(t, torch.Tensor)]


def run_concrete(fn: Callable[..., Any], args: Any, kwargs: Any) -> Shapes:
    out = fn(*to_meta(args), **to_meta(kwargs))
    return output_shapes(out, int)


def _contiguous_strides(sizes: list[Any]) -> list[Any]:
    strides: list[Any] = []
    running: Any = 1
    for size in reversed(sizes):
        strides.append(running)
        running = running * size
    return list(reversed(strides))


BACKED_SIZE_OBLIVIOUS = False  # --backed-size-oblivious: as graphlift's export runs it


def run_graphlift(fn: Callable[..., Any], args: Any, kwargs: Any) -> Run:
    env = ShapeEnv(backed_size_oblivious=BACKED_SIZE_OBLIVIOUS)
    counter = iter(range(10_000))

    def convert(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        arg = next(counter)
        sizes = [
            env.create_symbol(d, min=0, source=f"a{arg}.size()[{i}]") for i, d in enumerate(t.shape)
        ]
        with env.suppress_guards():  # building an input asks about its storage size only
            return torch.empty_strided(
                sizes, _contiguous_strides(sizes), dtype=t.dtype, device="meta"
            )

    sym_args, sym_kwargs = tree_map(convert, args), tree_map(convert, kwargs)
    with enable_python_dispatcher(), Redispatch():
        out = fn(*sym_args, **sym_kwargs)

    def hint(size: Any) -> int:
        if isinstance(size, torch.SymInt):
            value = env.hint_of(size.node.symbolic_expr)
            assert isinstance(value, int), f"no hint for {size}"
            return value
        return int(size)

    return output_shapes(out, hint), len(env.specializations)


def run_torch(fn: Callable[..., Any], args: Any, kwargs: Any) -> Run:
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, StatelessSymbolicContext
    from torch.fx.experimental.symbolic_shapes import ShapeEnv as TorchShapeEnv

    shape_env = TorchShapeEnv(specialize_zero_one=False, duck_shape=False)
    mode = FakeTensorMode(shape_env=shape_env, allow_non_fake_inputs=False)

    def convert(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return t
        context = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC] * t.dim())
        return mode.from_tensor(t.contiguous(), symbolic_context=context)

    fake_args, fake_kwargs = tree_map(convert, args), tree_map(convert, kwargs)
    with enable_python_dispatcher(), mode:  # as torch.export runs it
        out = fn(*fake_args, **fake_kwargs)

    def hint(size: Any) -> int:
        if isinstance(size, torch.SymInt):
            return int(shape_env.size_hint(size.node.expr))
        return int(size)

    specialized = sum(1 for value in shape_env.replacements.values() if value.is_number)
    return output_shapes(out, hint), specialized


def check(
    engine: Callable[..., Run], fn: Any, args: Any, kwargs: Any, want: Shapes
) -> tuple[str, int]:
    """("ok", dims specialized), or a short reason."""
    signal.alarm(20)
    try:
        got, specialized = engine(fn, args, kwargs)
    except Timeout:
        return "timeout", 0
    except Exception as error:  # a census records every failure
        return (
            f"{type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else ''}",
            0,
        )
    finally:
        signal.alarm(0)
    return ("ok" if got == want else f"shape mismatch: {got} != {want}"), specialized


def measure_op(op: Any, limit: int) -> dict[str, Any] | None:
    results: dict[str, list[str]] = {"graphlift": [], "torch": []}
    specialized = {"graphlift": 0, "torch": 0}
    for fn, args, kwargs in sample_calls(op, limit):
        try:
            want = run_concrete(fn, args, kwargs)
        except Exception:
            continue
        for engine, run in (("graphlift", run_graphlift), ("torch", run_torch)):
            status, count = check(run, fn, args, kwargs, want)
            results[engine].append(status)
            specialized[engine] += count
    if not results["graphlift"]:
        return None
    return {
        "samples": len(results["graphlift"]),
        "graphlift": next((r for r in results["graphlift"] if r != "ok"), "ok"),
        "torch": next((r for r in results["torch"] if r != "ok"), "ok"),
        "specialized": specialized,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3, help="sample inputs per op")
    parser.add_argument("--ops", default="", help="comma-separated op names (default: all)")
    parser.add_argument("--json", default="", help="write per-op results here")
    parser.add_argument(
        "--backed-size-oblivious",
        action="store_true",
        help="run graphlift's ShapeEnv as export does (torch's side unchanged)",
    )
    options = parser.parse_args()
    global BACKED_SIZE_OBLIVIOUS
    BACKED_SIZE_OBLIVIOUS = options.backed_size_oblivious
    warnings.filterwarnings("ignore")
    signal.signal(signal.SIGALRM, _alarm)
    from torch.testing._internal.common_methods_invocations import op_db

    wanted = set(filter(None, options.ops.split(",")))
    per_op: dict[str, Any] = {}
    start = time.perf_counter()
    for op in op_db:
        key = op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")
        if wanted and op.name not in wanted and key not in wanted:
            continue
        try:
            result = measure_op(op, options.samples)
        except Exception as error:
            result = None
            print(f"skip {key}: {type(error).__name__}", file=sys.stderr)
        if result is not None:
            per_op[key] = result
    report(per_op, time.perf_counter() - start)
    if options.json:
        Path(options.json).write_text(json.dumps(per_op, indent=1, sort_keys=True))


def report(per_op: dict[str, Any], seconds: float) -> None:
    ours = {k for k, r in per_op.items() if r["graphlift"] == "ok"}
    theirs = {k for k, r in per_op.items() if r["torch"] == "ok"}
    print(f"ops with a meta kernel on their samples: {len(per_op)}  ({seconds:.0f} s)")
    print(f"graphlift ShapeEnv: {len(ours)} ops correct")
    print(f"torch ShapeEnv:     {len(theirs)} ops correct")
    both = ours & theirs
    ratio = len(both) / max(len(theirs), 1)
    print(f"of torch's {len(theirs)}, graphlift handles {len(both)} ({100 * ratio:.1f}%)")
    print(f"graphlift only: {len(ours - theirs)}; torch only: {len(theirs - ours)}")
    for key in sorted(theirs - ours):
        print(f"  torch only: {key}: {per_op[key]['graphlift']}")
    spec = {e: sum(per_op[k]["specialized"][e] for k in both) for e in ("graphlift", "torch")}
    print(
        f"input dims specialized on the ops both handle: graphlift {spec['graphlift']}, torch {spec['torch']}"
    )
    more = [
        k
        for k in sorted(both)
        if per_op[k]["specialized"]["graphlift"] > per_op[k]["specialized"]["torch"]
    ]
    print(f"ops where graphlift specializes more dims than torch: {len(more)}")
    for key in more:
        print(
            f"  {key}: graphlift {per_op[key]['specialized']['graphlift']}, torch {per_op[key]['specialized']['torch']}"
        )


if __name__ == "__main__":
    main()
