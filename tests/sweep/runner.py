"""One sweep cell: a model, a spec mode and an exporter, through every stage.

The stages are what a user does with an exported program: ``export``; ``run``
(``ep.module()`` against eager at the example sizes and, for dynamic specs, at
other sizes and the declared minimum); ``decompose`` (``run_decompositions()``,
then run again); ``save_load`` (archive round trip, then run). Each stage ends
``ok``, ``wrong`` (ran, different answer: never acceptable), ``refused`` (an
input check refused a size the spec declared), ``fail`` (raised) or ``skipped``
(an earlier stage failed). The same code drives graphlift and torch.export, so
the two columns of ``benchmarks/model_sweep.py`` are measured alike.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.export as te
from torch.utils._pytree import tree_leaves

import graphlift as gl
from tests.zoo.case import ModelCase

STAGES = ("export", "run", "decompose", "save_load")
MODES = ("static", "named", "auto")


@dataclass(frozen=True)
class Exporter:
    name: str
    export: Callable[..., Any]
    make_dim: Callable[..., Any]
    auto: Any
    save: Callable[..., Any]
    load: Callable[..., Any]
    refusals: tuple[
        type[BaseException], ...
    ]  # what its module() raises for a size it does not take


GRAPHLIFT = Exporter(
    "graphlift", gl.export, gl.Dim, gl.Dim.AUTO, gl.save, gl.load, (gl.errors.InputMismatchError,)
)
TORCH = Exporter(
    "torch.export", te.export, te.Dim, te.Dim.AUTO, te.save, te.load, (AssertionError, RuntimeError)
)


@dataclass(frozen=True)
class StageResult:
    status: str  # ok | wrong | refused | fail | skipped
    detail: str = ""

    def __str__(self) -> str:
        return self.status + (f" ({self.detail})" if self.detail else "")


def run_cell(exporter: Exporter, case: ModelCase, mode: str) -> dict[str, StageResult]:
    """Every stage of ``case`` exported by ``exporter`` with spec ``mode``."""
    return run_stages(exporter, case, mode)[0]


Programs = dict[str, Any]
"""Stage -> the program it made (``run``: the export; ``decompose``; ``save_load``)."""


def run_stages(
    exporter: Exporter, case: ModelCase, mode: str
) -> tuple[dict[str, StageResult], Programs]:
    """:func:`run_cell`, plus the programs the stages made, for further checks."""
    results: dict[str, StageResult] = dict.fromkeys(STAGES, StageResult("skipped"))
    programs: Programs = {}
    args, kwargs = case.make_inputs()
    model = case.make_model()
    try:
        ep = exporter.export(
            model, args, kwargs, dynamic_shapes=spec(exporter, case, mode, args, kwargs)
        )
    except Exception as error:
        results["export"] = failure(error)
        return results, programs
    results["export"] = StageResult("ok")
    programs["run"] = ep
    sizes = sizes_to_run(case, mode)
    results["run"] = check_runs(exporter, case, ep, sizes)
    if results["run"].status != "ok":
        return results, programs
    try:
        core = ep.run_decompositions()
    except Exception as error:
        results["decompose"] = failure(error)
    else:
        programs["decompose"] = core
        results["decompose"] = check_runs(exporter, case, core, sizes)
    try:
        buffer = io.BytesIO()
        exporter.save(ep, buffer)
        buffer.seek(0)
        loaded = exporter.load(buffer)
    except Exception as error:
        results["save_load"] = failure(error)
    else:
        programs["save_load"] = loaded
        results["save_load"] = check_runs(exporter, case, loaded, sizes[:1])
    return results, programs


def spec(
    exporter: Exporter, case: ModelCase, mode: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if mode == "static":
        return None
    if mode == "named":
        return case.dynamic_shapes(exporter.make_dim)
    every = {
        name: {axis: exporter.auto for axis in range(value.dim())}
        for name, value in kwargs.items()
        if isinstance(value, torch.Tensor)
    }
    if args:
        return tuple({axis: exporter.auto for axis in range(a.dim())} for a in args)
    return every


def sizes_to_run(case: ModelCase, mode: str) -> list[dict[str, int]]:
    if mode == "static":
        return [case.sizes("example")]
    sizes = [case.sizes("example"), case.sizes("other")]
    if mode == "named":
        sizes.append({dim.name: dim.min for dim in case.dims})
    return sizes


def eager(case: ModelCase, size: dict[str, int]) -> Any:
    """Eager's answer at ``size``, from a freshly built model; computed once per case
    and size and shared by every mode, exporter and stage (building and running the
    model seven times per cell was a third of the sweep's cost)."""
    key = (case.name, tuple(sorted(size.items())))
    if key not in EAGER_ANSWERS:
        args, kwargs = case.make_inputs(**size)
        with torch.no_grad():
            EAGER_ANSWERS[key] = case.make_model()(*args, **kwargs)
    return EAGER_ANSWERS[key]


EAGER_ANSWERS: dict[tuple[str, tuple[tuple[str, int], ...]], Any] = {}


def check_runs(
    exporter: Exporter, case: ModelCase, ep: Any, sizes: list[dict[str, int]]
) -> StageResult:
    module = ep.module()
    for size in sizes:
        expected = eager(case, size)
        args, kwargs = case.make_inputs(**size)  # fresh: a module() must not see another's writes
        try:
            got = module(*args, **kwargs)
        except exporter.refusals as error:
            return StageResult("refused", f"{size}: {short(error)}")
        except Exception as error:
            return failure(error)
        if not same(got, expected):
            return StageResult("wrong", str(size))
    return StageResult("ok")


def same(got: Any, expected: Any) -> bool:
    ours, theirs = tree_leaves(got), tree_leaves(expected)
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs):
        if isinstance(b, torch.Tensor):
            if not isinstance(a, torch.Tensor) or a.shape != b.shape:
                return False
            if not torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4, equal_nan=True):
                return False
        elif a != b:
            return False
    return True


def failure(error: BaseException) -> StageResult:
    return StageResult("fail", short(error))


def short(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first[:140]}"
