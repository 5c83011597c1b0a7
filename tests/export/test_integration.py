"""Capabilities together: decompositions and unflatten of programs that mutate
state or hold control-flow bodies (each capability is tested alone elsewhere)."""

from __future__ import annotations

import copy

import torch

import graphlift as gl
from tests.capability_models import CondLinear, TrainBatchNorm


def test_decomposed_cond_program_takes_both_branches_like_eager() -> None:
    model = CondLinear()
    core = gl.export(model, (torch.randn(3, 4),)).run_decompositions()
    assert any(n.op == "get_attr" for n in core.graph.nodes)
    module = core.module()
    for x in (torch.ones(3, 4), -torch.ones(3, 4)):
        torch.testing.assert_close(module(x), model(x))


def test_decomposed_training_batch_norm_updates_state_like_eager() -> None:
    model = TrainBatchNorm().train()
    reference = copy.deepcopy(model)
    ep = gl.export(
        copy.deepcopy(model), (torch.randn(5, 4),), dynamic_shapes=({0: gl.Dim("b", min=2)},)
    )
    core = ep.run_decompositions()
    kinds = [s.kind.name for s in core.graph_signature.output_specs]
    assert kinds.count("BUFFER_MUTATION") == 3
    module = core.module()
    for batch in (5, 7, 2):
        x = torch.randn(batch, 4)
        torch.testing.assert_close(module(x), reference(x))
    for name, buffer in reference.named_buffers():
        torch.testing.assert_close(module.get_buffer(name), buffer)


def test_unflattened_training_batch_norm_writes_back_its_state() -> None:
    model = TrainBatchNorm().train()
    reference = copy.deepcopy(model)
    unflat = gl.unflatten(gl.export(copy.deepcopy(model), (torch.randn(5, 4),)))
    for _ in range(2):
        x = torch.randn(5, 4)
        torch.testing.assert_close(unflat(x), reference(x))
    torch.testing.assert_close(unflat.state_dict()["bn.running_mean"], reference.bn.running_mean)
