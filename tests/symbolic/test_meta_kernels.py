"""Our SymInts through ATen meta kernels, torch._refs and prims (python dispatcher on).

Each case runs once with symbolic sizes and once concretely; the symbolic output
shapes, evaluated on the example sizes, must equal the concrete ones. The full
op_db sweep is ``tools/op_coverage.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch._dispatch.python import enable_python_dispatcher

from graphlift.symbolic import ShapeEnv

Case = Callable[[list[torch.Tensor]], torch.Tensor | tuple[torch.Tensor, ...]]

CASES: dict[str, tuple[list[tuple[int, ...]], Case]] = {
    "linear": ([(4, 6), (5, 6)], lambda t: torch.ops.aten.linear.default(t[0], t[1])),
    "cat": ([(4, 6), (3, 6)], lambda t: torch.cat(t, 0)),
    "view": ([(4, 6)], lambda t: t[0].view(2, -1)),
    "reshape_flat": ([(4, 6, 2)], lambda t: t[0].reshape(-1)),
    "expand": ([(1, 6)], lambda t: t[0].expand(3, 6)),
    "matmul": ([(4, 6), (6, 5)], lambda t: torch.matmul(t[0], t[1])),
    "bmm_broadcast": ([(2, 4, 6), (6, 5)], lambda t: t[0] @ t[1]),
    "conv2d": ([(1, 3, 9, 8), (4, 3, 3, 3)], lambda t: F.conv2d(t[0], t[1], stride=2, padding=1)),
    "max_pool2d": ([(1, 3, 9, 8)], lambda t: F.max_pool2d(t[0], 2)),
    "index_select": (
        [(4, 6)],
        lambda t: torch.index_select(t[0], 0, torch.zeros(3, dtype=torch.long, device="meta")),
    ),
    "slice_step": ([(7, 6)], lambda t: t[0][1:, ::2]),
    "sum": ([(4, 6)], lambda t: t[0].sum(1)),
    "softmax": ([(4, 6)], lambda t: torch.softmax(t[0], -1)),
    "transpose_contiguous": ([(4, 6)], lambda t: t[0].t().contiguous()),
    "permute_reshape": ([(2, 3, 4)], lambda t: t[0].permute(2, 0, 1).reshape(4, -1)),
    "broadcast_add": ([(4, 1), (1, 6)], lambda t: t[0] + t[1]),
    "split": ([(7, 6)], lambda t: torch.split(t[0], 3)),
    "chunk": ([(7, 6)], lambda t: torch.chunk(t[0], 3)),
    "unfold": ([(10,)], lambda t: t[0].unfold(0, 3, 2)),
    "pad": ([(2, 5)], lambda t: F.pad(t[0], (1, 2))),
    "interpolate": ([(1, 2, 5, 6)], lambda t: F.interpolate(t[0], scale_factor=2.0)),
    "layer_norm": ([(4, 6)], lambda t: F.layer_norm(t[0], (6,))),
    "embedding": (
        [(10, 3)],
        lambda t: F.embedding(torch.zeros(4, 5, dtype=torch.long, device="meta"), t[0]),
    ),
    "repeat": ([(2, 3)], lambda t: t[0].repeat(2, 3)),
    "flatten": ([(2, 3, 4)], lambda t: t[0].flatten(1)),
    "stack": ([(2, 3), (2, 3)], lambda t: torch.stack(t, 1)),
    "topk": ([(4, 6)], lambda t: torch.topk(t[0], 2)),
    "narrow": ([(8, 3)], lambda t: t[0].narrow(0, 2, 3)),
}


def _shapes(out: torch.Tensor | tuple[torch.Tensor, ...]) -> list[torch.Size]:
    return [o.shape for o in (out if isinstance(out, tuple | list) else (out,))]


def _symbolic(env: ShapeEnv, shape: tuple[int, ...], arg: int) -> torch.Tensor:
    sizes = [env.create_symbol(d, min=0, source=f"t{arg}.size()[{i}]") for i, d in enumerate(shape)]
    strides: list[torch.SymInt | int] = []
    running: torch.SymInt | int = 1
    for size in reversed(sizes):
        strides.insert(0, running)
        running = running * size
    with env.suppress_guards():
        return torch.empty_strided(sizes, strides, device="meta")


@pytest.mark.parametrize("name", sorted(CASES))
def test_symbolic_shapes_match_concrete(name: str) -> None:
    shapes, case = CASES[name]
    want = _shapes(case([torch.empty(s, device="meta") for s in shapes]))
    env = ShapeEnv()
    with enable_python_dispatcher():
        out = case([_symbolic(env, s, i) for i, s in enumerate(shapes)])
    got = [
        torch.Size(
            int(env.hint_of(d.node.symbolic_expr)) if isinstance(d, torch.SymInt) else d
            for d in shape
        )  # type: ignore[arg-type]
        for shape in _shapes(out)
    ]
    assert got == want
    for guard in env.guards:  # every guard holds on the example inputs
        assert env.hint_of(guard.expr) is True, guard


def test_reshape_keeps_sizes_symbolic() -> None:
    env = ShapeEnv()
    x = _symbolic(env, (4, 6), 0)
    with enable_python_dispatcher():
        y = x.reshape(-1)
        z = torch.cat([x, x], 0)
    assert str(y.shape[0]) == "s0*s1"
    assert str(z.shape[0]) == "2*s0"
