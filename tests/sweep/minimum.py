"""The sweep's smallest sizes: every dynamic program at each dim's declared minimum.

A program that is right at the example sizes can still be wrong, raise a raw
kernel error, or refuse without warning at batch 1 or 0 (diffusers' decomposed
UNets raised at batch 1 and no example size saw it). For a dynamic cell this
runs the exported, the decomposed and the loaded program at

- ``named``: every dim at its declared ``min``, and batch alone at its ``min``
  with the other dims at their examples;
- ``auto``: batch 1 and batch 0, the other dims at their examples;

and applies the fuzzers' soundness rule (no torch oracle needed): the answer
equals eager's, or the program refuses with a typed :class:`GraphliftError`
naming a size export announced (a ``ep.specializations`` entry on an axis that
carries a changed dim). Sizes eager itself cannot run are skipped. Anything else
is a violation: ``wrong``, ``fail`` (a raw or untyped error) or ``refused`` (an
unannounced refusal).
"""

from __future__ import annotations

import re
from typing import Any

import torch

from graphlift.errors import GraphliftError
from tests.sweep.runner import GRAPHLIFT, StageResult, eager, run_stages, same, short
from tests.zoo.case import ModelCase

BATCH = "batch"
AUTO_BATCHES = (1, 0)
"""Batch sizes an AUTO program is run at (eager decides whether the model takes them)."""


def minimum_sizes(case: ModelCase, mode: str) -> list[dict[str, int]]:
    """The smallest sizes to run ``case`` at in ``mode``, each a multiple of its dim's
    ``multiple`` and (for named Dims) inside the declared range."""
    example = case.sizes("example")
    batch = next((dim for dim in case.dims if dim.name == BATCH), None)
    if mode == "named":
        sizes = [{dim.name: dim.min for dim in case.dims}]
        if batch is not None:
            sizes.append({**example, BATCH: batch.min})
    elif mode == "auto" and batch is not None:
        multiple = batch.multiple
        sizes = [{**example, BATCH: size} for size in AUTO_BATCHES if size % multiple == 0]
    else:
        return []
    unique: list[dict[str, int]] = []
    for size in sizes:
        if size not in unique and size != example:
            unique.append(size)
    return unique


def run_graphlift_cell(case: ModelCase, mode: str) -> dict[str, StageResult]:
    """graphlift's stages of the cell, plus ``minimum``: :func:`check_minimums` over the
    programs the stages made (``skipped`` for a static cell or when export failed)."""
    results, programs = run_stages(GRAPHLIFT, case, mode)
    minimum = StageResult("skipped")
    if mode != "static" and programs:
        minimum = check_minimums(case, mode, programs["run"], programs)
    return {**results, MINIMUM: minimum}


MINIMUM = "minimum"


def check_minimums(case: ModelCase, mode: str, ep: Any, programs: dict[str, Any]) -> StageResult:
    """The first violation over ``programs`` (stage -> program) at ``minimum_sizes``,
    or ok. Refusals are judged against ``ep``'s announcements at export."""
    exported = [str(entry) for entry in ep.specializations]
    example = case.sizes("example")
    for size in minimum_sizes(case, mode):
        try:
            expected = eager(case, size)
        except Exception:
            continue  # the model itself does not take this size
        changed = changed_sources(case, example, size)
        for stage, program in programs.items():
            announced = exported + [str(entry) for entry in program.specializations]
            verdict = check_one(case, program, size, expected, announced, changed)
            if verdict is not None:
                return StageResult(verdict.status, f"{stage} at {size}: {verdict.detail}")
    return StageResult("ok")


def check_one(
    case: ModelCase,
    program: Any,
    size: dict[str, int],
    expected: Any,
    announced: list[str],
    changed: dict[str, int],
) -> StageResult | None:
    """None when ``program`` at ``size`` is sound, else the violation."""
    args, kwargs = case.make_inputs(**size)
    try:
        with torch.no_grad():
            got = program.module()(*args, **kwargs)
    except GraphliftError as error:
        if any(
            excludes(entry, source, value)
            for entry in announced
            for source, value in changed.items()
        ):
            return None
        return StageResult("refused", f"unannounced: {short(error)}; announced: {announced}")
    except Exception as error:
        return StageResult("fail", short(error))
    return None if same(got, expected) else StageResult("wrong", "differs from eager")


def changed_sources(
    case: ModelCase, example: dict[str, int], size: dict[str, int]
) -> dict[str, int]:
    """The input axes (``name.size()[axis]``) whose size differs from the example -> size."""
    return {
        f"{param}.size()[{axis}]": size[dim.name]
        for param, axes in case.dynamic_dims.items()
        for axis, dim in axes.items()
        if size[dim.name] != example[dim.name]
    }


RANGE = re.compile(r"range \[(\d+), (\d+|inf)\]")
STATIC = re.compile(r"static: (\d+)")
NOT_SUPPORTED = re.compile(r"sizes? ([\d, .]+?) not supported")


def excludes(entry: str, source: str, value: int) -> bool:
    """Whether the announcement ``entry`` (``str`` of a specialization: ``source:
    change (at where)``) says ``source`` may not be ``value``: a range without it, a
    static other size, ``value`` among the sizes not supported, or a relation between
    dims (checked at run time, its clauses named in the entry)."""
    named, _, change = entry.partition(": ")
    if named != source:
        return False
    change = change.split(" (at ")[0]
    narrowed = RANGE.search(change)
    if narrowed and not int(narrowed[1]) <= value <= float(narrowed[2]):
        return True
    static = STATIC.search(change)
    if static and int(static[1]) != value:
        return True
    listed = NOT_SUPPORTED.search(change)
    if listed and (str(value) in listed[1].split(", ") or "..." in listed[1]):
        return True
    return "must satisfy" in change
