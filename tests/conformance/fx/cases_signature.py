"""Tracing cases about signatures: defaults, concrete_args, annotations and
structured (PH) inputs; rewritten from torch's test/test_fx.py (``TestFX.test_<name>``)."""

from typing import List  # noqa: UP035 (annotations as torch's tests write them)

import torch
import torch.utils._pytree as pytree

from .adapter import Raised, case, ops
from .cases_trace import Foo, Pair, Point


@case("test_single_default_arg")
def single_default_arg(fx):
    class M(torch.nn.Module):
        def forward(self, y=1):
            return y

    gm = fx.symbolic_trace(M())
    return gm(), gm(3)


@case("test_multiple_default_args")
def multiple_default_args(fx):
    class M(torch.nn.Module):
        def forward(self, y=1, z=2):
            return y + z

    gm = fx.symbolic_trace(M())
    return gm(), gm(3), gm(3, 4)


@case("test_regular_and_default_args")
def regular_and_default_args(fx):
    class M(torch.nn.Module):
        def forward(self, x, y=1):
            return x + y

    gm = fx.symbolic_trace(M())
    return gm(2), gm(2, 3)


@case("test_string_literal_return")
def string_literal_return(fx):
    class M(torch.nn.Module):
        def forward(self):
            return "foo"

    return fx.symbolic_trace(M())()


@case("test_namedtuple_return_trace")
def namedtuple_return_trace(fx):
    class NamedTupReturn(torch.nn.Module):
        def forward(self, x):
            return Pair(x, x)

    inp = torch.rand(3, 4)
    out = fx.symbolic_trace(NamedTupReturn())(inp)
    return out, type(out) is Pair


@case("test_snake_case")
def snake_case(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.activations = torch.nn.ModuleDict(
                [["snake_case", torch.nn.ReLU()], ["PascalCase", torch.nn.LeakyReLU()],
                 ["ALL_CAPS", torch.nn.PReLU()]]
            )  # fmt: skip

        def forward(self, x):
            a = self.activations["snake_case"](x)
            b = self.activations["PascalCase"](x)
            c = self.activations["ALL_CAPS"](x)
            return a, b, c

    traced = fx.symbolic_trace(M())
    return [(n.name, n.target) for n in traced.graph.nodes if n.op == "call_module"]


@case("test_partial_trace")
def partial_trace(fx):
    class Foo(torch.nn.Module):
        def forward(self, x, y):
            return 2 * x if y else x

    mod_true = fx.symbolic_trace(Foo(), concrete_args={"y": True})
    mod_false = fx.symbolic_trace(Foo(), concrete_args={"y": False})
    has_assert = any(n.target == torch._assert for n in mod_true.graph.nodes)
    return mod_true(3, True), mod_false(3, False), has_assert


@case("test_partial_trace (a specialized input gets another value)", raises=True)
def partial_trace_mismatch(fx):
    class Foo(torch.nn.Module):
        def forward(self, x, y):
            return 2 * x if y else x

    return fx.symbolic_trace(Foo(), concrete_args={"y": True})(3, False)


@case("test_partial_trace (higher-order concrete arg)")
def partial_trace_higher_order(fx):
    def f_higher(a, f):
        return f(a)

    nf = fx.symbolic_trace(f_higher, concrete_args={"f": lambda x: x * 2})
    return nf(3, lambda x: x * 2)


class Doubler:
    def __call__(self, x: torch.Tensor):
        return torch.add(x, x)


class PlainAnnotations(torch.nn.Module):
    def forward(self, x: torch.Tensor, a: Doubler) -> torch.Tensor:
        return a(x)


class ForwardReferences(torch.nn.Module):
    def forward(self, x: "torch.Tensor", a: "Doubler") -> "torch.Tensor":
        return a(x)


class InternalForwardReferences(torch.nn.Module):
    def forward(self, x: List["torch.Tensor"], a: Doubler) -> "torch.Tensor":  # noqa: UP006
        return a(x)[0]


@case("test_annotations_with_no_forward_references")
def annotations_no_forward_references(fx):
    return fx.symbolic_trace(PlainAnnotations())(torch.rand(2, 3), Doubler())


@case("test_annotations_with_forward_references")
def annotations_forward_references(fx):
    gm = fx.symbolic_trace(ForwardReferences())
    return gm(torch.rand(2, 3), Doubler()), [str(n.type) for n in gm.graph.nodes]


@case("test_annotations_with_non_torch_reference_and_internal_forward_references")
def annotations_internal_forward_references(fx):
    return fx.symbolic_trace(InternalForwardReferences())(torch.rand(2, 3), Doubler())


def f_sum(x):
    return sum(x)


def f_sum_dict(x):
    out = 0
    for _, v in x.items():
        out += v
    return out


def f_dict_list_map(x):
    return {k: [i + 1 for i in v] for k, v in x.items()}


def f_dict_add(x):
    return x["a"] + sum(x["z"])


def f_namedtuple_add(x):
    return x.x + x.y


def f_custom(x):
    return x.a + x.b


def f_custom_dict(x):
    return f_sum_dict(x.a) + x.b


def pytree_case(fn, make_structure):
    """test_pytree: PH leaves become placeholders; the traced function, its
    retrace and a retrace with the same concrete_args all compute ``fn``."""

    def run(fx):
        structure = make_structure(fx.PH)
        leaves = pytree.tree_leaves(structure, is_leaf=lambda v: v is fx.PH)
        value = pytree.tree_map(
            lambda v: torch.randn(3) if v is fx.PH else v, structure,
            is_leaf=lambda v: v is fx.PH,
        )  # fmt: skip
        nf = fx.symbolic_trace(fn, concrete_args={"x": structure})
        placeholders = sum(n.op == "placeholder" for n in nf.graph.nodes)
        retraced = fx.symbolic_trace(nf)
        again = fx.symbolic_trace(retraced, concrete_args={"x": structure})
        return (nf(value), retraced(value), again(value), fn(value),
                placeholders == len(leaves) or not leaves)  # fmt: skip

    return run


PYTREE_CASES = {
    "sum_list": (f_sum, lambda PH: [PH, PH, PH]),
    "sum_dict": (f_sum_dict, lambda PH: {"a": PH, "b": PH, "c": PH}),
    "dict_list_map": (f_dict_list_map, lambda PH: {"a": (PH, PH), "b": [PH], "c": []}),
    "dict_int_keys": (f_dict_list_map, lambda PH: {5: (PH, PH, PH)}),
    "dict_add": (f_dict_add, lambda PH: {"a": PH, "z": (PH, PH, PH)}),
    "dict_add_empty": (f_dict_add, lambda PH: {"a": PH, "z": []}),
    "custom": (f_custom, lambda PH: Foo(PH, PH)),
    "custom_constant_leaf": (f_custom, lambda PH: Foo(PH, 3)),
    "custom_dict": (f_custom_dict, lambda PH: Foo({"a": PH, "b": PH}, PH)),
    "namedtuple": (f_namedtuple_add, lambda PH: Point(PH, PH)),
}
for _name, (_fn, _make) in PYTREE_CASES.items():
    case(f"test_pytree ({_name})", name=f"pytree_{_name}")(pytree_case(_fn, _make))


@case("test_pytree_concrete")
def pytree_concrete(fx):
    def f(b, a):
        return a["a"] if b else a["z"]

    inp = {"a": {"a": fx.PH, "z": fx.PH}, "b": True}
    nf = fx.symbolic_trace(f, concrete_args=inp)
    val = {"a": {"a": torch.randn(3), "z": torch.randn(3)}, "b": True}
    return nf(**val), fx.symbolic_trace(nf)(**val), f(**val)


@case("test_pytree (a structure without a traced key is refused)", raises=True)
def pytree_missing_key(fx):
    nf = fx.symbolic_trace(f_sum_dict, concrete_args={"x": {"a": fx.PH, "b": fx.PH}})
    return nf({"a": torch.ones(1), "c": torch.ones(1)})


@case(
    "test_pytree (a structure with an extra key)",
    eager=lambda: Raised(ValueError, "refused"),
    why="torch.fx's tree_flatten_spec reads the traced keys and ignores the rest: "
    "summing {a, b, c} traced with {a, b} silently returns a + b",
)
def pytree_extra_key(fx):
    nf = fx.symbolic_trace(f_sum_dict, concrete_args={"x": {"a": fx.PH, "b": fx.PH}})
    return nf({"a": torch.ones(1), "b": torch.ones(1), "c": torch.ones(1)})


@case("test_pytree (a list with fewer items)", raises=True)
def pytree_fewer_items(fx):
    nf = fx.symbolic_trace(f_sum, concrete_args={"x": [fx.PH, fx.PH]})
    return nf([torch.ones(1)])


@case(
    "test_pytree (a list with more items)",
    eager=lambda: Raised(ValueError, "refused"),
    why="torch.fx reads the traced number of items and ignores the rest: "
    "sum([a, b, c]) traced with two items silently returns a + b",
)
def pytree_more_items(fx):
    nf = fx.symbolic_trace(f_sum, concrete_args={"x": [fx.PH, fx.PH]})
    return nf([torch.ones(1), torch.ones(1), torch.ones(1)])


def scale_by_weight(x):
    return x["a"] * x["w"]


@case(
    "test_pytree (a tensor leaf that is not PH)",
    eager=lambda: Raised(ValueError, "refused"),
    why="torch.fx bakes the traced tensor in with a warning: later calls with "
    "another tensor silently compute with the old one",
)
def pytree_tensor_leaf(fx):
    structure = {"a": fx.PH, "w": torch.ones(2)}
    nf = fx.symbolic_trace(scale_by_weight, concrete_args={"x": structure})
    return nf({"a": torch.ones(2), "w": torch.zeros(2)})


@case("test_tensor_constant (custom tracer, GraphModule(tracer.root, graph))")
def custom_tracer_constant(fx):
    class ConstTensor(torch.nn.Module):
        def forward(self, x):
            return x + torch.arange(4.0)

    root = ConstTensor()
    tracer = fx.Tracer()
    graph = tracer.trace(root)
    gm = fx.GraphModule(tracer.root, graph)
    x = torch.randn(4)
    return gm(x), root(x), ops(gm)


@case("test_concrete_arg_none_assert", raises=True)
def concrete_arg_none_assert(fx):
    class Foo(torch.nn.Module):
        def forward(self, x, val=None):
            return x if val is None else x + val

    f = Foo()
    traced = fx.symbolic_trace(f, concrete_args={"val": None})
    x = torch.randn(5)
    return traced(x, None), traced(x, torch.randn(5))


@case("test_ph_subclass_metadata")
def ph_subclass_metadata(fx):
    class PHWithMeta(fx.PHBase):
        def __init__(self, ph_key=None):
            super().__init__()
            self.ph_key = ph_key

    def f(a, b):
        return a + b

    traced = fx.symbolic_trace(f, concrete_args={"a": PHWithMeta(ph_key="a"), "b": PHWithMeta("b")})
    keys = [getattr(n, "ph_key", None) for n in traced.graph.nodes if n.op == "placeholder"]
    return keys, traced(torch.ones(2), torch.ones(2))


@case("test_proxy_iteration (for loop over a traced value)", raises=True)
def proxy_iteration(fx):
    def f(x):
        return [t + 1 for t in x]

    return fx.symbolic_trace(f)


@case("test_proxy_control_flow", raises=True)
def proxy_control_flow(fx):
    def f(x):
        if x.sum() > 0:
            return x
        return -x

    return fx.symbolic_trace(f)


@case("test_proxy_repr_and_graph_membership")
def proxy_in_graph(fx):
    graph = fx.Graph()
    x = fx.Proxy(graph.placeholder("x"))
    y = (x * 2).sum(dim=0, keepdim=True)
    graph.output(y.node)
    return y.node.graph is graph, ops(graph)
