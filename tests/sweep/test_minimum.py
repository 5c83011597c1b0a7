"""The smallest-size check of the model sweep (``tests/sweep/minimum.py``) can fail.

The sweep runs it over every dynamic cell (slow tier); here it is run on one
small real program and on stand-in programs that misbehave in each way the rule
forbids, so a check that always says ``ok`` cannot go unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import graphlift as gl
from graphlift.errors import InputMismatchError
from tests.sweep.minimum import check_minimums, minimum_sizes, run_graphlift_cell
from tests.zoo.case import DimSpec, Inputs, ModelCase, build, generator

BATCH = DimSpec("batch", min=1, max=16, example=4, other=3)
SEQ = DimSpec("seq", min=2, max=32, example=8, other=5)
TOKENS = DimSpec("seq", min=4, max=32, example=8, other=12, multiple=4)


def inputs(batch: int = BATCH.example, seq: int = SEQ.example) -> Inputs:
    return (torch.randn(batch, seq, 3, generator=generator(batch, seq)),), {}


def case(seq: DimSpec = SEQ) -> ModelCase:
    return ModelCase(
        "linear", lambda: build(lambda: nn.Linear(3, 2)), inputs, {"input": {0: BATCH, 1: seq}}
    )


def test_named_cells_run_every_dim_at_its_min_and_batch_alone_at_its_min() -> None:
    assert minimum_sizes(case(), "named") == [{"batch": 1, "seq": 2}, {"batch": 1, "seq": 8}]
    assert minimum_sizes(case(TOKENS), "named") == [{"batch": 1, "seq": 4}, {"batch": 1, "seq": 8}]


def test_auto_cells_run_batch_one_and_zero_and_static_cells_nothing() -> None:
    assert minimum_sizes(case(), "auto") == [{"batch": 1, "seq": 8}, {"batch": 0, "seq": 8}]
    assert minimum_sizes(case(), "static") == []


def test_a_sound_program_passes_in_every_stage() -> None:
    for mode in ("named", "auto"):
        results = run_graphlift_cell(case(), mode)
        assert {r.status for r in results.values()} == {"ok"}, results


@dataclass(frozen=True)
class StandIn:
    """A program whose module() does ``behave`` and announces ``specializations``."""

    behave: Callable[[torch.Tensor], Any]
    specializations: tuple[str, ...] = ()

    def module(self) -> Callable[[torch.Tensor], Any]:
        return self.behave


def verdict(program: StandIn) -> str:
    ep = gl.export(nn.Linear(3, 2), *inputs(), dynamic_shapes={"input": {0: gl.Dim.AUTO}})
    stand_in = StandIn(program.behave, tuple(ep.specializations) + program.specializations)
    return str(check_minimums(case(), "named", stand_in, {"decompose": stand_in}))


def refuse(x: torch.Tensor) -> Any:
    raise InputMismatchError("size 1 not supported")


def test_an_unannounced_refusal_a_raw_error_and_a_wrong_answer_are_violations() -> None:
    linear = build(lambda: nn.Linear(3, 2))
    assert verdict(StandIn(lambda x: linear(x))) == "ok"
    assert verdict(StandIn(refuse)).startswith("refused (decompose at {'batch': 1, 'seq': 2}")
    assert verdict(StandIn(lambda x: torch.mm(x, x))).startswith("fail (decompose at")
    assert verdict(StandIn(lambda x: linear(x) + 1)).startswith("wrong (decompose at")


def test_a_refusal_is_sound_when_export_announced_the_refused_size() -> None:
    announced = (
        "input.size()[0]: range [2, 16] (declared [1, 16])",
        "input.size()[0]: static: 4 (at model.py:3 in forward)",
        "input.size()[0]: range [1, 16] (declared [0, 16]), size 1 not supported",
        "input.size()[0]: sizes 0, 1, ... not supported",
        "input.size()[0]: must satisfy (input.size()[0] != 1) (a relation between dims)",
    )
    for entry in announced:
        assert verdict(StandIn(refuse, (entry,))) == "ok", entry


def test_a_refusal_is_unsound_when_the_announcement_allows_the_refused_size() -> None:
    allowing = (
        "y.size()[0]: range [2, 16]",
        "input.size()[0]: range [1, 16] (at model.py:3 in forward)",
        "input.size()[0]: static: 1",
        "input.size()[0]: sizes 0, 2 not supported",
        "input.size()[2]: must satisfy (input.size()[2] != 3)",
    )
    for entry in allowing:
        assert verdict(StandIn(refuse, (entry,))).startswith("refused"), entry
