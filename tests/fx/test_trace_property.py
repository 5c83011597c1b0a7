"""Property test: random Python expressions over Proxies trace exactly as in torch.fx.

Hypothesis writes the body of a small function — Python operators (including
reflected ones with int/float constants on the left), comparisons, logical ops
on masks, tensor methods and torch functions — compiles it, and traces it with
the library under test and with torch.fx. The two graphs must record the same
nodes with the same arguments, and both must compute what the function computes.
"""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from .corpus import DELIBERATE_TARGET_DIFFERENCES
from .subject import ORACLE

BINARY = ("+", "-", "*", "/", "//", "%", "**")
COMPARE = ("<", "<=", ">", ">=", "==", "!=")
LOGICAL = ("&", "|", "^")
METHODS = (
    "relu()",
    "abs()",
    "sum(-1, keepdim=True)",
    "mean(dim=0)",
    "t()",
    "neg()",
    "exp().log1p()",
    "clamp(min=-1.0, max=1.0)",
    "softmax(-1)",
    "float()",
)
FUNCTIONS = ("torch.tanh({})", "torch.sigmoid({})", "torch.nn.functional.gelu({})")
CONSTANTS = st.sampled_from(["2", "3", "-1", "0.5", "1.5"])


def float_expressions(depth: int):
    """Python source for a float tensor of shape (3, 3) over x and y."""
    leaves = st.sampled_from(["x", "y"])
    if depth == 0:
        return leaves
    smaller = float_expressions(depth - 1)
    return st.one_of(
        leaves,
        st.tuples(smaller, st.sampled_from(BINARY), smaller).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(CONSTANTS, st.sampled_from(BINARY), smaller).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"  # reflected: constant on the left
        ),
        st.tuples(smaller, st.sampled_from(BINARY), CONSTANTS).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["-", "+", "abs"]), smaller).map(
            lambda t: f"abs({t[1]})" if t[0] == "abs" else f"({t[0]}{t[1]})"
        ),
        st.tuples(smaller, st.sampled_from(METHODS)).map(
            lambda t: (
                f"{t[0]}.{t[1]}"
                if "sum" not in t[1] and "mean" not in t[1]
                else f"({t[0]}.{t[1]} + x)"
            )  # keep the shape (3, 3) by broadcasting back
        ),
        st.tuples(st.sampled_from(FUNCTIONS), smaller).map(lambda t: t[0].format(t[1])),
        st.tuples(mask_expressions(smaller), smaller, smaller).map(
            lambda t: f"torch.where({t[0]}, {t[1]}, {t[2]})"
        ),
        st.tuples(mask_expressions(smaller)).map(lambda t: f"{t[0]}.float()"),
        st.tuples(smaller, smaller).map(lambda t: f"({t[0]} @ {t[1]})"),
    )


def mask_expressions(operands):
    comparison = st.tuples(operands, st.sampled_from(COMPARE), operands | CONSTANTS).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    combined = st.tuples(comparison, st.sampled_from(LOGICAL), comparison).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    return st.one_of(comparison, combined, comparison.map(lambda c: f"(~{c})"))


def compile_function(body: str):
    namespace = {"torch": torch}
    exec(f"def traced(x, y):\n    return {body}\n", namespace)
    return namespace["traced"]


def structure(gm) -> list[tuple]:
    """Nodes as (op, target, args, kwargs) with other nodes by position."""
    index = {node: i for i, node in enumerate(gm.graph.nodes)}

    def arg(a):
        if hasattr(a, "op") and a in index:
            return ("node", index[a])
        if isinstance(a, (tuple, list)):
            return type(a)(arg(item) for item in a)
        if isinstance(a, dict):
            return {key: arg(value) for key, value in a.items()}
        return a

    return [
        (
            node.op,
            DELIBERATE_TARGET_DIFFERENCES.get(node.target, node.target),
            arg(tuple(node.args)),
            arg(dict(node.kwargs)),
        )
        for node in gm.graph.nodes
    ]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(float_expressions(depth=3))
def test_random_expressions_trace_like_torch_fx(subject, body):
    fn = compile_function(body)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(3, 3, generator=gen), torch.randn(3, 3, generator=gen)
    try:
        expected = fn(x, y)
    except RuntimeError:  # not a valid program in eager PyTorch either
        assume(False)
    gm = subject.symbolic_trace(fn)
    reference = ORACLE.symbolic_trace(fn)
    assert structure(gm) == structure(reference), f"{body}\n{gm.code}\ntorch.fx:\n{reference.code}"
    torch.testing.assert_close(gm(x, y), expected, equal_nan=True)
    torch.testing.assert_close(reference(x, y), expected, equal_nan=True)


def test_expression_strategy_reaches_reflected_and_logical_operators():
    """Not vacuous: the sample contains reflected operators, masks and matmul."""
    bodies: list[str] = []

    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(float_expressions(depth=3))
    def collect(body):
        bodies.append(body)

    collect()
    text = "\n".join(bodies)
    for needle in ("(2 ", "(0.5 ", "torch.where", " & ", " @ ", "~", "**", "//"):
        assert needle in text, needle
