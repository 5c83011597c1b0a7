"""Property test: random module trees are traced with torch.fx's leaves and paths.

Hypothesis builds a tree of modules: torch.nn leaves (Linear, ReLU, Tanh,
Identity, LayerNorm), ``nn.Sequential`` (traced through), and user containers
that hold their children in an ``nn.ModuleList``, an ``nn.ModuleDict`` or as
plain attributes; a leaf may be reused in several places (one instance, many
paths). The library under test must record the same ``call_module`` targets
(qualified names, first path wins) and ops as torch.fx, and compute what eager
computes.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from .harness import call_targets
from .subject import ORACLE

WIDTH = 4
LEAVES = {
    "linear": lambda: nn.Linear(WIDTH, WIDTH),
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
    "layernorm": lambda: nn.LayerNorm(WIDTH),
}


class InList(nn.Module):
    def __init__(self, children: list[nn.Module]) -> None:
        super().__init__()
        self.items = nn.ModuleList(children)

    def forward(self, x):
        for item in self.items:
            x = item(x)
        return x


class InDict(nn.Module):
    def __init__(self, children: list[nn.Module]) -> None:
        super().__init__()
        self.items = nn.ModuleDict({f"k{i}": child for i, child in enumerate(children)})

    def forward(self, x):
        for key in self.items:
            x = self.items[key](x) + 0.5
        return x


class AsAttributes(nn.Module):
    def __init__(self, children: list[nn.Module]) -> None:
        super().__init__()
        self.order = [f"part_{i}" for i in range(len(children))]
        for name, child in zip(self.order, children):
            setattr(self, name, child)

    def forward(self, x):
        skip = x
        for name in self.order:
            x = getattr(self, name)(x)
        return x + skip


CONTAINERS = {
    "sequential": lambda children: nn.Sequential(*children),
    "list": InList,
    "dict": InDict,
    "attributes": AsAttributes,
}


@st.composite
def module_trees(draw, depth: int = 3) -> nn.Module:
    pool: list[nn.Module] = []  # leaves built so far, for sharing

    def leaf() -> nn.Module:
        if pool and draw(st.integers(0, 4)) == 0:
            return draw(st.sampled_from(pool))  # the same instance under a second path
        module = LEAVES[draw(st.sampled_from(sorted(LEAVES)))]()
        pool.append(module)
        return module

    def tree(level: int) -> nn.Module:
        if level == 0 or draw(st.integers(0, 3)) == 0:
            return leaf()
        children = [tree(level - 1) for _ in range(draw(st.integers(1, 3)))]
        return CONTAINERS[draw(st.sampled_from(sorted(CONTAINERS)))](children)

    torch.manual_seed(draw(st.integers(0, 1000)))
    return tree(depth)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(module_trees())
def test_module_trees_trace_like_torch_fx(subject, module):
    module.eval()
    gm = subject.symbolic_trace(module)
    reference = ORACLE.symbolic_trace(module)
    modules = [(n.op, n.target) for n in gm.graph.nodes if n.op == "call_module"]
    expected = [(n.op, n.target) for n in reference.graph.nodes if n.op == "call_module"]
    assert modules == expected, f"\n{gm.code}\ntorch.fx:\n{reference.code}"
    assert call_targets(gm) == call_targets(reference)
    x = torch.randn(2, WIDTH)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), module(x))
        torch.testing.assert_close(reference(x), module(x))


def test_module_tree_strategy_is_not_vacuous():
    """Over the same sample: shared instances, depth, and every container kind occur."""
    shared = deep = 0
    kinds: set[str] = set()

    @settings(max_examples=25, deadline=None, derandomize=True, database=None)
    @given(module_trees())
    def collect(module):
        nonlocal shared, deep
        every = list(module.named_modules(remove_duplicate=False))
        shared += len(every) > len(list(module.named_modules()))
        deep += max(name.count(".") for name, _ in every) >= 3
        kinds.update(type(m).__name__ for _, m in every)

    collect()
    assert shared >= 3 and deep >= 5
    assert {"Sequential", "InList", "InDict", "AsAttributes", "Linear"} <= kinds
