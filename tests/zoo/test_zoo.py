"""Every zoo case builds offline, runs eagerly at two shapes, and is deterministic.

These are the zoo's own checks; nothing here involves graphlift or any exporter.
"""

from __future__ import annotations

import functools
import inspect
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch.utils import _pytree as pytree

from .case import ModelCase
from .models import CASES, get_case, select

REQUIRED = {
    "bert", "gpt2", "llama", "t5", "vit", "whisper", "resnet", "swin", "mixtral",
    "nn_transformer_encoder", "nn_transformer", "nn_lstm", "nn_gru",
    "nn_multihead_attention", "nn_conv_bn", "nn_mlp",
}  # fmt: skip

by_name = pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)


def run(model: torch.nn.Module, case: ModelCase, which: str) -> list[torch.Tensor]:
    args, kwargs = case.make_inputs(**case.sizes(which))
    with torch.no_grad():
        return pytree.tree_leaves(model(*args, **kwargs))


def input_tensors(case: ModelCase, model: torch.nn.Module, which: str) -> dict[str, Any]:
    """Forward-parameter name -> value, as ``forward`` would bind the case's inputs."""
    args, kwargs = case.make_inputs(**case.sizes(which))
    return dict(inspect.signature(model.forward).bind(*args, **kwargs).arguments)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Make every outgoing connection fail, recording the addresses tried."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError(f"zoo tests are offline; tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    yield attempts


def test_registry_has_every_required_family() -> None:
    assert REQUIRED <= {case.name for case in CASES}
    assert get_case("gpt2").name == "gpt2"
    assert {case.name for case in select("transformers")} >= {"bert", "mixtral", "whisper"}
    with pytest.raises(KeyError, match="known: bert"):
        get_case("no-such-model")


def test_models_build_without_network(no_network: list[Any]) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    for case in CASES:
        case.make_model()
    assert no_network == []


# A zoo model builds and runs in ~0.05 s; the bound only catches a config made
# 100x too big, not a busy machine (CI shares 2 cores between test workers).
TOO_SLOW_SECONDS = 5.0


def best_seconds(action: Callable[[], object], attempts: int = 3) -> float:
    """The fastest of a few wall-clock timings: the machine is shared, so one slow
    attempt says more about the neighbours than about the model."""
    timings = []
    for _ in range(attempts):
        start = time.perf_counter()
        action()
        timings.append(time.perf_counter() - start)
    return min(timings)


@by_name
def test_builds_fast_in_eval_mode(case: ModelCase) -> None:
    model = case.make_model()  # the first build may pay for lazy imports inside transformers
    assert isinstance(model, torch.nn.Module)
    assert not any(module.training for module in model.modules())
    assert best_seconds(case.make_model) < TOO_SLOW_SECONDS


@by_name
def test_runs_eagerly_at_two_shapes(case: ModelCase) -> None:
    model = case.make_model()
    shapes = []
    for which in ("example", "other"):
        outputs = run(model, case, which)
        assert best_seconds(functools.partial(run, model, case, which)) < TOO_SLOW_SECONDS
        assert outputs and all(isinstance(output, torch.Tensor) for output in outputs)
        assert all(output.isfinite().all() for output in outputs if output.is_floating_point())
        shapes.append([output.shape for output in outputs])
    assert shapes[0] != shapes[1], "changing the dynamic dims should change some output shape"


@by_name
def test_dynamic_dims_name_forward_parameters_and_real_axes(case: ModelCase) -> None:
    model = case.make_model()
    for which in ("example", "other"):
        sizes = case.sizes(which)
        bound = input_tensors(case, model, which)
        for parameter, axes in case.dynamic_dims.items():
            assert parameter in bound, f"{parameter} is not an input of {case.name}"
            for axis, dim in axes.items():
                assert bound[parameter].shape[axis] == sizes[dim.name], (parameter, axis)


@by_name
def test_dynamic_shapes_share_one_dim_per_name(case: ModelCase) -> None:
    made: list[tuple[str, int, int]] = []

    def make_dim(name: str, *, min: int, max: int) -> tuple[str, int, int]:
        made.append((name, min, max))
        return (name, min, max)

    shapes = case.dynamic_shapes(make_dim)
    assert [name for name, _, _ in made] == [dim.name for dim in case.dims]
    assert set(shapes) == set(case.dynamic_dims)
    for parameter, axes in case.dynamic_dims.items():
        assert {axis: spec[0] for axis, spec in shapes[parameter].items()} == {
            axis: dim.name for axis, dim in axes.items()
        }


@by_name
def test_same_seed_same_model_same_output(case: ModelCase) -> None:
    rng_before = torch.get_rng_state()
    first, second = case.make_model(), case.make_model()
    assert torch.equal(torch.get_rng_state(), rng_before), "building must not move the global RNG"
    first_state, second_state = first.state_dict(), second.state_dict()
    assert first_state.keys() == second_state.keys()
    assert all(torch.equal(first_state[key], second_state[key]) for key in first_state)
    for left, right in zip(run(first, case, "example"), run(second, case, "example")):
        assert torch.equal(left, right)


@by_name
def test_inputs_are_deterministic(case: ModelCase) -> None:
    first, second = case.make_inputs(), case.make_inputs()
    assert pytree.tree_structure(first) == pytree.tree_structure(second)
    for left, right in zip(pytree.tree_leaves(first), pytree.tree_leaves(second)):
        assert torch.equal(left, right)


def test_mixtral_expert_implementations_agree() -> None:
    """The two Mixtral cases differ only in how experts run, so later work can compare
    data-dependent routing (eager) with its gather-based form (batched_mm)."""
    args, kwargs = get_case("mixtral").make_inputs()
    with torch.no_grad():
        looped = get_case("mixtral").make_model()(*args, **kwargs)[0]
        batched = get_case("mixtral_batched").make_model()(*args, **kwargs)[0]
    torch.testing.assert_close(looped, batched)
