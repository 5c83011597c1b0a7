"""One op-sweep cell: an op_db sample, wrapped as a module, through one exporter.

A sample of an OpInfo (``op.sample_inputs("cpu", dtype)``, float32 where the op
supports it) becomes a module whose inputs are the sample's tensors and whose
constants are everything else; every dim of every tensor input is
``Dim.AUTO``. The stages are ``export``; ``run`` (``ep.module()`` against eager
on the sample and, when eager accepts it, on a resized sample: every size >= 2
grows by one, equal sizes staying equal); ``decompose`` (``run_decompositions()``,
then the same runs). Each ends ``ok``, ``wrong`` (a different answer: never
acceptable), ``refused`` (an input check refused the resized sample), ``fail``
(raised, or took longer than ``TIMEOUT`` seconds) or ``skipped``. The same code
drives graphlift and torch.export, so both columns of ``benchmarks/op_sweep.py``
are measured alike.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.export as te
from torch.utils._pytree import tree_flatten, tree_leaves, tree_unflatten

import graphlift as gl
from tests.sweep.runner import StageResult, failure, short

STAGES = ("export", "run", "decompose")
ORACLE_PATH = Path(__file__).parent / "torch_oracle.json"  # torch's column, one sample per op
TIMEOUT = 30  # seconds per stage; a hung meta kernel is a failure, not a hung suite

#: Ops whose values are random or uninitialized: only shapes and dtypes are compared.
NONDETERMINISTIC = frozenset(
    {
        "bernoulli", "cauchy", "empty", "empty_like", "empty_permuted", "empty_strided",
        "exponential", "geometric", "log_normal", "multinomial", "new_empty",
        "new_empty_strided", "nn.functional.alpha_dropout", "nn.functional.dropout",
        "nn.functional.dropout2d", "nn.functional.dropout3d",
        "nn.functional.feature_alpha_dropout", "nn.functional.rrelu", "normal",
        "pca_lowrank", "svd_lowrank",  # randomized: they draw random projections
        "rand_like", "randint", "randint_like", "randn", "randn_like", "uniform",
        "torch._C._nn._test_warn_in_autograd",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Exporter:
    name: str
    export: Callable[..., Any]
    auto: Any
    refusals: tuple[type[BaseException], ...]  # what its module() raises for a size it refuses


GRAPHLIFT = Exporter("graphlift", gl.export, gl.Dim.AUTO, (gl.errors.InputMismatchError,))
TORCH = Exporter("torch.export", te.export, te.Dim.AUTO, (AssertionError, RuntimeError))


@dataclass(frozen=True)
class Sample:
    """One op_db sample as a module's inputs: tensors in, everything else constant."""

    key: str
    function: Callable[..., Any]
    leaves: tuple[Any, ...]  # the flattened (args, kwargs), tensors included
    structure: Any  # their pytree spec
    deterministic: bool

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(leaf for leaf in self.leaves if isinstance(leaf, torch.Tensor))

    def call(self, tensors: tuple[torch.Tensor, ...]) -> Any:
        supply = iter(tensors)
        leaves = [next(supply) if isinstance(leaf, torch.Tensor) else leaf for leaf in self.leaves]
        args, kwargs = tree_unflatten(leaves, self.structure)
        return self.function(*args, **kwargs)


class SampleModule(torch.nn.Module):
    """``forward(*tensors)`` calls the op with the sample's constants around them."""

    def __init__(self, sample: Sample) -> None:
        super().__init__()
        self.sample = sample

    def forward(self, *tensors: torch.Tensor) -> Any:
        return self.sample.call(tensors)


def op_key(op: Any) -> str:
    return op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")


def sample_dtype(op: Any) -> torch.dtype | None:
    """float32 where the op supports it, else its first CPU dtype (None: no CPU kernel)."""
    dtypes = op.supported_dtypes("cpu")
    if not dtypes:
        return None
    return torch.float32 if torch.float32 in dtypes else sorted(dtypes, key=str)[0]


def samples_of(op: Any, limit: int) -> Iterator[Sample]:
    """The first ``limit`` samples of ``op`` (fixed seed, so both exporters see the same)."""
    dtype = sample_dtype(op)
    if dtype is None:
        return
    torch.manual_seed(0)
    inputs = op.sample_inputs("cpu", dtype, requires_grad=False)
    taken = 0
    for sample in inputs:
        if taken >= limit:
            return
        leaves, structure = tree_flatten(((sample.input, *sample.args), dict(sample.kwargs)))
        candidate = Sample(
            op_key(op), op.op, tuple(leaves), structure, op.name not in NONDETERMINISTIC
        )
        if usable(candidate):
            taken += 1
            yield candidate


def usable(sample: Sample) -> bool:
    """Dense tensors only (sparse layouts are not exportable by either), and eager runs it."""
    if any(t.layout != torch.strided for t in sample.tensors):
        return False
    try:
        eager(sample, sample.tensors)
    except Exception:
        return False
    return True


def resized(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Every size >= 2 grows by one (equal sizes stay equal); values drawn from the original's."""
    generator = torch.Generator().manual_seed(0)

    def grow(t: torch.Tensor) -> torch.Tensor:
        shape = [s + 1 if s >= 2 else s for s in t.shape]
        flat = t.detach().reshape(-1)
        if flat.numel() == 0:
            return torch.zeros(shape, dtype=t.dtype)
        picks = torch.randint(flat.numel(), shape, generator=generator)
        return flat[picks].clone()

    return tuple(grow(t) for t in tensors)


def run_cell(exporter: Exporter, sample: Sample) -> dict[str, StageResult]:
    """Every stage of ``sample`` exported by ``exporter`` with ``Dim.AUTO`` on every dim."""
    results: dict[str, StageResult] = dict.fromkeys(STAGES, StageResult("skipped"))
    tensors = sample.tensors
    # forward(*tensors): the varargs are one input, so its spec is one tuple
    spec = (tuple({axis: exporter.auto for axis in range(t.dim())} for t in tensors),)
    try:
        with time_limit():
            ep = exporter.export(SampleModule(sample), tensors, dynamic_shapes=spec)
    except Exception as error:
        results["export"] = failure(error)
        return results
    results["export"] = StageResult("ok")
    inputs = inputs_to_run(sample)
    results["run"] = check_runs(exporter, sample, ep, inputs)
    if results["run"].status != "ok":
        return results
    try:
        with time_limit():
            core = ep.run_decompositions()
    except Exception as error:
        results["decompose"] = failure(error)
    else:
        results["decompose"] = check_runs(exporter, sample, core, inputs)
    return results


def inputs_to_run(sample: Sample) -> list[tuple[tuple[torch.Tensor, ...], Any]]:
    """(inputs, eager output) pairs: the sample, and the resized sample when eager takes it."""
    runs = [(sample.tensors, eager(sample, sample.tensors))]
    try:
        bigger = resized(sample.tensors)
        if [t.shape for t in bigger] != [t.shape for t in sample.tensors]:
            runs.append((bigger, eager(sample, bigger)))
    except Exception:  # eager refuses the resized sample: only the sample is run
        pass
    return runs


def eager(sample: Sample, tensors: tuple[torch.Tensor, ...]) -> Any:
    with torch.no_grad():
        return sample.call(tuple(t.clone() for t in tensors))


def check_runs(
    exporter: Exporter, sample: Sample, ep: Any, runs: list[tuple[tuple[torch.Tensor, ...], Any]]
) -> StageResult:
    module = ep.module()
    for index, (tensors, expected) in enumerate(runs):
        try:
            with time_limit():
                got = module(*(t.clone() for t in tensors))
        except exporter.refusals as error:
            if index == 0:
                return failure(error)
            return StageResult("refused", short(error))
        except Exception as error:
            return failure(error)
        if not same(got, expected, sample.deterministic):
            return StageResult("wrong", "sample" if index == 0 else "resized sample")
    return StageResult("ok")


def same(got: Any, expected: Any, compare_values: bool) -> bool:
    ours, theirs = tree_leaves(got), tree_leaves(expected)
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs):
        if isinstance(b, torch.Tensor):
            if not isinstance(a, torch.Tensor) or a.shape != b.shape or a.dtype != b.dtype:
                return False
            if compare_values and not close(a, b):
                return False
        elif compare_values and a != b:
            return False
    return True


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_complex() or b.is_complex():
        a, b = torch.view_as_real(a.resolve_conj()), torch.view_as_real(b.resolve_conj())
    return torch.allclose(a.double(), b.double(), rtol=1e-3, atol=1e-4, equal_nan=True)


class _Timeout(Exception):
    pass


class time_limit:
    """Raise ``_Timeout`` in the block after ``TIMEOUT`` seconds (SIGALRM; main thread)."""

    def __enter__(self) -> None:
        signal.signal(signal.SIGALRM, self._expire)
        signal.alarm(TIMEOUT)

    def __exit__(self, *exc: object) -> None:
        signal.alarm(0)

    @staticmethod
    def _expire(_signum: int, _frame: object) -> None:
        raise _Timeout(f"took more than {TIMEOUT} s")


def op_table() -> dict[str, Any]:
    """op_db by key (``name`` or ``name.variant``); importing it takes seconds, so on demand."""
    from torch.testing._internal.common_methods_invocations import op_db  # optional: test utils

    return {op_key(op): op for op in op_db}
