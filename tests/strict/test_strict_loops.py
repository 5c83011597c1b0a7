"""Strict capture turns data-dependent Python loops into graph control flow:
``for x in <tensor of data-dependent length>`` becomes ``scan``, ``while <tensor>``
becomes ``while_loop``, ``if <tensor>: continue`` in such a loop becomes a ``cond``
over the rest of the iteration. The oracle is eager PyTorch, on inputs that make
the loops run different numbers of times (zero included); non-strict export, which
runs Python for real, must refuse these models."""

from __future__ import annotations

import collections
import pathlib

import pytest
import torch
from torch import nn

import graphlift as gl
from graphlift.errors import DataDependentError, StrictCaptureError, TraceError
from tests.zoo.models import CASES

torch.manual_seed(0)

HIDDEN, EXPERTS = 8, 4


class TopTwoMoE(nn.Module):
    """A top-2 mixture of experts with Mixtral's eager loop over the experts hit."""

    def __init__(self, skip_expert: int = 2) -> None:
        super().__init__()
        self.router = nn.Linear(HIDDEN, EXPERTS, bias=False)
        self.experts = nn.Parameter(torch.randn(EXPERTS, HIDDEN, HIDDEN) * 0.3)
        self.skip_expert = skip_expert
        with torch.no_grad():  # expert e is chosen by feature e: routing is easy to steer
            self.router.weight.copy_(torch.eye(EXPERTS, HIDDEN) * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, chosen = torch.topk(self.router(x).softmax(-1), 2, dim=-1)
        out = torch.zeros_like(x)
        mask = torch.nn.functional.one_hot(chosen, EXPERTS).permute(2, 1, 0)
        hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
        for expert in hit:
            expert = expert[0]
            if expert == self.skip_expert:  # a disabled expert: skip it
                continue
            position, tokens = torch.where(mask[expert])
            y = torch.relu(x[tokens] @ self.experts[expert])
            out.index_add_(0, tokens, y * weights[tokens, position, None])
        return out


def routed_to(first: int, second: int, tokens: int) -> torch.Tensor:
    """Tokens that all pick experts ``first`` and ``second``: the others get none."""
    x = torch.randn(tokens, HIDDEN) * 0.1
    x[:, first] += 3
    x[:, second] += 2
    return x


def experts_hit(x: torch.Tensor) -> set[int]:
    return set(torch.topk(x[:, :EXPERTS], 2, dim=-1).indices.flatten().tolist())


TOKENS = gl.Dim("tokens", min=2, max=64)


def test_a_top2_moe_loop_over_hit_experts_becomes_scan_and_follows_the_routing() -> None:
    model = TopTwoMoE()
    x = torch.randn(6, HIDDEN)
    with pytest.raises(DataDependentError):
        gl.export(model, (x,), dynamic_shapes={"x": {0: TOKENS}})  # non-strict runs the loop
    ep = gl.export(model, (x,), dynamic_shapes={"x": {0: TOKENS}}, strict=True)
    targets = [getattr(n.target, "__name__", "") for n in ep.graph.nodes]
    assert "scan" in targets
    inputs = [
        torch.randn(6, HIDDEN),
        routed_to(0, 1, 9),
        routed_to(2, 3, 3),
        torch.randn(17, HIDDEN),
    ]
    assert experts_hit(inputs[1]) == {0, 1} and experts_hit(inputs[2]) == {2, 3}
    for data in inputs:
        torch.testing.assert_close(ep.module()(data), model(data))


def test_the_moe_program_saves_loads_and_decomposes(tmp_path: pathlib.Path) -> None:
    model = TopTwoMoE()
    ep = gl.export(model, (torch.randn(6, HIDDEN),), dynamic_shapes={"x": {0: TOKENS}},
                   strict=True)  # fmt: skip
    gl.save(ep, tmp_path / "moe.gl")
    loaded = gl.load(tmp_path / "moe.gl")
    core = ep.run_decompositions()
    for data in (routed_to(1, 3, 5), torch.randn(11, HIDDEN)):
        want = model(data)
        torch.testing.assert_close(loaded.module()(data), want)
        torch.testing.assert_close(core.module()(data), want)


class CountHalvings(nn.Module):
    """A while loop on a tensor's value, carrying two tensors."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps = torch.zeros((), dtype=torch.long)
        while x.abs().max() > 1:
            x = x / 2
            steps = steps + 1
        return x, steps


def test_a_while_on_a_tensor_becomes_while_loop() -> None:
    model = CountHalvings()
    ep = gl.export(model, (torch.randn(3) * 10,), strict=True)
    assert "while_loop" in [getattr(n.target, "__name__", "") for n in ep.graph.nodes]
    for data in (torch.randn(3) * 10, torch.full((3,), 0.5), torch.tensor([300.0, 1.0, -2.0])):
        for got, want in zip(ep.module()(data), model(data)):
            torch.testing.assert_close(got, want)


class SumOfHits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros(2)
        for row in x[x.sum(-1) > 0]:  # boolean mask: data-dependent length
            total = total + row
        return total


def test_a_loop_that_runs_zero_times_keeps_the_initial_value() -> None:
    model = SumOfHits()
    ep = gl.export(model, (torch.randn(5, 2),), strict=True)
    for data in (torch.randn(5, 2), -torch.ones(5, 2), torch.ones(5, 2)):
        torch.testing.assert_close(ep.module()(data), model(data))


def test_gl_capture_converts_a_loop_in_a_plain_function() -> None:
    def running_max(x: torch.Tensor) -> torch.Tensor:
        best = x.new_full((), -1.0)
        for value in x[x > 0]:
            best = torch.maximum(best, value)
        return best

    ep = gl.capture(running_max)(torch.randn(6))
    for data in (torch.randn(6), -torch.ones(6), torch.arange(6.0)):
        torch.testing.assert_close(ep.module()(data), running_max(data))


def per_class_mean(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(4, x.shape[1])
    for label in torch.unique(labels):  # the classes present: data-dependent
        out[label] = x[labels == label].mean(0)
    return out


def newton_sqrt(x: torch.Tensor) -> torch.Tensor:
    y = x.clone()
    while (y * y - x).abs().max() > 1e-4:
        y = 0.5 * (y + x / y)
    return y


def nested_sums(x: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(())
    for row in x[x.sum(-1) > 0]:
        for value in row[row > 0]:  # a scan inside a scan
            total = total + value
    return total


@pytest.mark.parametrize(
    ("fn", "example", "others"),
    [
        (per_class_mean, (torch.randn(10, 3), torch.tensor([0, 1, 1, 3, 0, 0, 1, 3, 3, 0])),
         [(torch.randn(10, 3), torch.full((10,), 2)), (torch.randn(10, 3), torch.arange(10) % 4)]),
        (newton_sqrt, (torch.rand(5) + 1,), [(torch.ones(5),), (torch.rand(5) * 100 + 1,)]),
        (nested_sums, (torch.randn(4, 3),), [(-torch.ones(4, 3),), (torch.ones(4, 3),)]),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)  # fmt: skip
def test_loops_a_new_user_writes(fn, example, others) -> None:  # type: ignore[no-untyped-def]
    ep = gl.capture(fn)(*example)
    for args in (example, *others):
        torch.testing.assert_close(ep.module()(*args), fn(*args))


def more_than_two_hits(x: torch.Tensor) -> torch.Tensor:
    hits = x.nonzero().shape[0]  # an unbacked size: no example value
    y = x + 1
    if hits > 2:
        y = y * 2
    return y


def at_least_no_hits(x: torch.Tensor) -> torch.Tensor:
    if x.nonzero().shape[0] >= 0:  # always true: decided, no branch
        return x * 2
    return x


def test_an_if_on_an_unbacked_value_becomes_cond() -> None:
    decided = gl.capture(at_least_no_hits)(torch.ones(3))
    assert "cond" not in [getattr(n.target, "__name__", "") for n in decided.graph.nodes]
    with pytest.raises(DataDependentError):
        gl.export(more_than_two_hits, (torch.tensor([1.0, 0.0, 2.0, 3.0]),))
    ep = gl.capture(more_than_two_hits)(torch.tensor([1.0, 0.0, 2.0, 3.0]))
    assert "cond" in [getattr(n.target, "__name__", "") for n in ep.graph.nodes]
    for data in (torch.tensor([1.0, 0.0, 2.0, 3.0]), torch.tensor([1.0, 0.0, 0.0, 0.0])):
        torch.testing.assert_close(ep.module()(data), more_than_two_hits(data))


# --- refused with the reason and the line ----------------------------------------------------


def breaks(x: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(())
    for value in x[x > 0]:
        total = total + value
        break
    return total


def counts(x: torch.Tensor) -> torch.Tensor:
    count = 0
    for _ in x[x > 0]:
        count += 1
    return x * count


def appends(x: torch.Tensor) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in x[x > 0]:
        found.append(value)
    return found


def grows(x: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(1)
    for value in x[x > 0]:
        total = torch.cat([total, value.reshape(1)])
    return total


def comprehends(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([value * 2 for value in x[x > 0]])


def while_breaks(x: torch.Tensor) -> torch.Tensor:
    while x.sum() > 0:
        x = x - 1
        if x.max() > 5:
            break
    return x


def last_value(x: torch.Tensor) -> torch.Tensor:
    value = None
    for value in x[x > 0]:  # noqa: B007 - read after the loop, which is the point
        pass
    return value


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (while_breaks, r"while loop on a tensor's value jumps out of the loop \(break\)"),
        (last_value, r"assigns 'value', which holds a NoneType before the loop and is read"),
        (comprehends, r"iterated outside a for statement \(by a comprehension"),
        (breaks, r"leaves the loop early \(break\)"),
        (counts, r"assigns 'count', which holds a int before the loop"),
        (appends, r"changes a Python object \(list\) made before it"),
        (grows, r"carries 'total'.*changes from float32\[1\] to float32\[2\]"),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_a_loop_that_cannot_become_graph_control_flow_is_refused(fn, reason) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StrictCaptureError, match=reason) as info:
        gl.capture(fn)(torch.randn(5))
    assert "test_strict_loops.py" in str(info.value)


def test_an_in_place_update_the_interpreter_cannot_carry_is_an_error_not_a_lost_write() -> None:
    def scale(t: torch.Tensor) -> None:
        t.mul_(2)  # through a call: no `acc.mul_` in the loop body's own code

    class Hidden(nn.Module):
        def forward(self, x):
            acc = torch.ones(3)
            for _ in x[x > 0]:
                scale(acc)
            return acc

    with pytest.raises(TraceError, match="in-place update of a tensor from outside"):
        gl.export(Hidden(), (torch.randn(5),), strict=True)


def test_an_in_place_update_in_an_if_on_a_tensor_reaches_the_result() -> None:
    class Update(nn.Module):
        def forward(self, x):
            y = x + 1
            if x.sum() > 0:
                y.mul_(2)
            return y

    model = Update()
    ep = gl.export(model, (torch.randn(3),), strict=True)
    for data in (torch.ones(3), -torch.ones(3)):
        torch.testing.assert_close(ep.module()(data), model(data))


# --- transformers' Mixtral with eager experts ---------------------------------------------


def _mixtral_routing(model: nn.Module, args: tuple, kwargs: dict) -> list[collections.Counter]:
    """Tokens per expert in each layer, as eager routes them."""
    counts: list[collections.Counter] = []

    def record(module, inputs, output):  # type: ignore[no-untyped-def]
        counts.append(collections.Counter(output[2].flatten().tolist()))

    routers = [m for m in model.modules() if type(m).__name__ == "MixtralTopKRouter"]
    handles = [r.register_forward_hook(record) for r in routers]
    try:
        model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return counts


@pytest.mark.slow
def test_mixtral_with_eager_experts_exports_strict_and_follows_every_routing(
    tmp_path: pathlib.Path,
) -> None:
    case = next(c for c in CASES if c.name == "mixtral")
    model = case.make_model()
    args, kwargs = case.make_inputs()
    # batch from 2: batch 1 is specialized in transformers' masking code (another issue)
    dynamic = case.dynamic_shapes(lambda name, min, max: gl.Dim(name, min=2, max=max))
    with pytest.raises(DataDependentError, match=r"modeling_mixtral\.py"):
        gl.export(model, args, kwargs, dynamic_shapes=dynamic)
    with torch.no_grad():
        ep = gl.export(model, args, kwargs, dynamic_shapes=dynamic, strict=True)
    same_token = {"input_ids": torch.full((2, 5), 7, dtype=torch.long)}
    inputs = [kwargs, case.make_inputs(batch=3, seq=13)[1], same_token]
    starved = _mixtral_routing(model, (), same_token)[0]
    assert len(starved) < 4  # one token everywhere: some experts get no tokens
    gl.save(ep, tmp_path / "mixtral.gl")
    programs = [ep, gl.load(tmp_path / "mixtral.gl"), ep.run_decompositions()]
    with torch.no_grad():
        for data in inputs:
            want = model(**data)
            for program in programs:
                got = program.module()(**data)
                for a, b in zip(torch.utils._pytree.tree_leaves(got),
                                torch.utils._pytree.tree_leaves(want)):  # fmt: skip
                    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_advancing_an_iterator_made_before_a_loop_body_is_refused() -> None:
    def zips(x: torch.Tensor) -> torch.Tensor:
        scales = iter([1.0, 2.0, 3.0])
        total = torch.zeros(())
        for value in x[x > 0]:
            total = total + value * next(scales)  # would advance once, at export
        return total

    with pytest.raises(StrictCaptureError, match=r"changes a Python object \(list_iterator\)"):
        gl.capture(zips)(torch.randn(5))


# --- user classes, properties and yield from, interpreted --------------------------------------

CALLS: list[str] = []


class Scaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.factor = 3.0

    @property
    def scale(self) -> float:
        CALLS.append("scale")  # a side effect: interpreted, so caught and undone
        return self.factor * 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def test_a_user_property_is_interpreted_so_its_side_effects_are_caught() -> None:
    from graphlift.errors import SideEffectError

    with pytest.raises(SideEffectError, match="list"):
        gl.export(Scaled(), (torch.randn(2),), strict=True)
    assert CALLS == []  # undone


class Pure(nn.Module):
    @property
    def offset(self) -> torch.Tensor:
        return torch.ones(2) * OFFSET_SCALE

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.offset


OFFSET_SCALE = 2.0


def test_a_global_a_user_property_reads_is_guarded() -> None:
    global OFFSET_SCALE
    ep = gl.export(Pure(), (torch.randn(2),), strict=True)
    assert [g.name for g in ep.python_guards] == ["OFFSET_SCALE"]
    torch.testing.assert_close(ep.module()(torch.zeros(2)), torch.full((2,), 2.0))
    OFFSET_SCALE = 5.0
    try:
        with pytest.raises(gl.errors.StaleGlobalError):
            ep.module()(torch.zeros(2))
    finally:
        OFFSET_SCALE = 2.0


def test_a_class_statement_and_yield_from_inside_forward() -> None:
    class Local(nn.Module):
        def forward(self, x):
            class Doubler:
                factor = 2

                def __init__(self, bias):
                    self.bias = bias

                def apply(self, t):
                    return t * self.factor + self.bias

            def pieces(t):
                yield from t.chunk(2)
                yield t.sum(0, keepdim=True)

            return torch.cat([Doubler(1.0).apply(p) for p in pieces(x)])

    model = Local()
    x = torch.randn(4, 3)
    ep = gl.export(model, (x,), strict=True)
    torch.testing.assert_close(ep.module()(x), model(x))


# --- other transformers MoE models with the same eager expert loop ------------------------------

SMALL = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
             use_cache=False, pad_token_id=0, experts_implementation="eager")  # fmt: skip
OTHER_MOE = {
    "Qwen2Moe": dict(
        num_experts=4,
        num_experts_per_tok=2,
        moe_intermediate_size=16,
        shared_expert_intermediate_size=16,
    ),
    "Olmoe": dict(num_experts=4, num_experts_per_tok=2, eos_token_id=2),
    "Qwen3Moe": dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, head_dim=8),
}


class LogitsOf(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, return_dict=False)[0]


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(OTHER_MOE))
def test_other_transformers_moe_models_export_strict(family: str) -> None:
    import transformers

    config = getattr(transformers, f"{family}Config")(**SMALL, **OTHER_MOE[family])
    torch.manual_seed(0)
    model = LogitsOf(getattr(transformers, f"{family}ForCausalLM")(config)).eval()
    ids = torch.randint(0, 128, (2, 8))
    with torch.no_grad():
        ep = gl.export(model, (ids,), strict=True)
        assert sum(getattr(n.target, "__name__", "") == "scan" for n in ep.graph.nodes) == 2
        for data in (ids, torch.full((2, 8), 7), torch.randint(0, 128, (2, 8))):
            torch.testing.assert_close(ep.module()(data), model(data), rtol=1e-4, atol=1e-5)
