"""Subgraph rewriter and split_module cases, rewritten from torch's
test/fx/test_subgraph_rewriter.py and test/test_fx_experimental.py."""

import operator

import torch
import torch.fx

import graphlift.fx

from .adapter import case, ops


def wrapped_gemm_bias_mul(a, b, bias):
    lin_res = torch.nn.functional.linear(a, b, bias=bias)
    return lin_res, a * lin_res


def wrapped_gemm_bias_mul_with_c(a, b, bias, c):
    lin_res = torch.nn.functional.linear(a, b, bias=bias)
    return lin_res, c * lin_res


for _library in (torch.fx, graphlift.fx):
    _library.wrap("wrapped_gemm_bias_mul")
    _library.wrap("wrapped_gemm_bias_mul_with_c")

# --- subgraph rewriter (test/fx/test_subgraph_rewriter.py) ---------------------------


@case("test_subgraph_rewriter_preserves_logic")
def rewriter_preserves_logic(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            val = torch.neg(x) + torch.relu(x)
            return torch.add(val, val)

    def pattern(x):
        return torch.neg(x) + torch.relu(x)

    traced = fx.symbolic_trace(M())
    x = torch.rand(1, 3)
    ref = traced(x)
    matches = fx.replace_pattern(traced, pattern, pattern)
    traced.graph.lint()
    return traced(x), ref, len(matches), ops(traced)


@case("test_subgraph_rewriter_with_oneliner_pattern")
def rewriter_oneliner(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            val = torch.neg(x)
            return torch.add(val, val)

    def pattern(x):
        return torch.neg(x)

    def replacement(x):
        return torch.relu(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    x = torch.randn(4, 4)
    return traced(x), torch.add(torch.relu(x), torch.relu(x)), ops(traced)


@case("test_subgraph_rewriter_single_pattern_match")
def rewriter_single_pattern_match(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            val = torch.neg(x) + torch.relu(x)
            return torch.add(val, val)

    def pattern(x):
        return torch.neg(x) + torch.relu(x)

    def replacement(x):
        return torch.relu(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(4, 4)
    return traced(x), torch.add(torch.relu(x), torch.relu(x)), ops(traced)


@case("test_subgraph_rewriter_multiple_pattern_match")
def rewriter_multiple_pattern_match(fx):
    class M(torch.nn.Module):
        def forward(self, x, w1, w2):
            m1 = torch.cat([w1, w2]).sum()
            m2 = torch.cat([w1, w2]).sum()
            return x + torch.max(m1) + torch.max(m2)

    def pattern(w1, w2):
        return torch.cat([w1, w2]).sum()

    def replacement(w1, w2):
        return torch.stack([w1, w2])

    traced = fx.symbolic_trace(M())
    matches = fx.replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    x, w1, w2 = torch.rand(1, 3), torch.rand(1, 3), torch.rand(1, 3)
    expected = x + torch.max(torch.stack([w1, w2])) + torch.max(torch.stack([w1, w2]))
    return traced(x, w1, w2), expected, len(matches), ops(traced)


@case("test_subgraph_rewriter_graph_argument_order")
def rewriter_argument_order(fx):
    class M(torch.nn.Module):
        def forward(self, x, y):
            return torch.mm(x, y)

    def pattern(x, y):
        return torch.mm(x, y)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, pattern)
    x, y = torch.randn(3, 4), torch.randn(4, 5)
    return traced(x, y), torch.mm(x, y)


@case("test_subgraph_rewriter_correct_output_replacement")
def rewriter_output_replacement(fx):
    class M(torch.nn.Module):
        def forward(self, x, y):
            val = torch.neg(y) + torch.relu(x)
            return torch.add(val, val)

    def pattern(x):
        return torch.relu(x)

    def replacement(x):
        return torch.neg(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x, y = torch.randn(4, 4), torch.randn(4, 4)
    val = torch.neg(y) + torch.neg(x)
    return traced(x, y), val + val


@case("test_subgraph_rewriter_traced_as_callable")
def rewriter_traced_as_callable(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            val = torch.neg(x) + torch.relu(x)
            return torch.add(val, val)

    class Pattern(torch.nn.Module):
        def forward(self, x):
            return torch.neg(x) + torch.relu(x)

    class Replacement(torch.nn.Module):
        def forward(self, x):
            return torch.sigmoid(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, fx.symbolic_trace(Pattern()), fx.symbolic_trace(Replacement()))
    x = torch.randn(3, 4)
    return traced(x), torch.add(torch.sigmoid(x), torch.sigmoid(x))


@case("test_subgraph_rewriter_pattern_is_entire_graph")
def rewriter_entire_graph(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            a = torch.neg(x)
            return torch.add(a, a)

    def pattern(x):
        a = torch.neg(x)
        return torch.add(a, a)

    def replacement(x):
        a = torch.sigmoid(x)
        return torch.cat([a, a])

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3, 4)
    return traced(x), torch.cat([torch.sigmoid(x), torch.sigmoid(x)])


@case("test_subgraph_rewriter_pattern_output_pattern_node_can_have_users_that_are_not_matched")
def rewriter_output_with_outside_users(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            y = torch.relu(x)
            return torch.neg(y) - y

    def pattern(x):
        return torch.relu(x)

    def replacement(x):
        return torch.sigmoid(x)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3, 4)
    return traced(x), torch.neg(torch.sigmoid(x)) - torch.sigmoid(x)


@case("test_subgraph_rewriter_internal_pattern_nodes_cannot_have_users_that_are_not_matched")
def rewriter_internal_users_block_match(fx):
    class M(torch.nn.Module):
        def forward(self, x, w1, w2, b1, b2):
            m0 = torch.cat([w1, w2])  # noqa: F841 (as in torch's test)
            m1 = torch.cat([w1, w2])
            m2 = torch.cat([x, b2])
            t0 = torch.addmm(b1, m1, m2.t())  # noqa: F841
            t1 = torch.sum(w1, 1)
            t2 = torch.addmm(b1, m1, m2.t())
            return torch.sum(t1), torch.sum(t2)

    def pattern(x, w1, w2, b1, b2):
        m1 = torch.cat([w1, w2])
        m2 = torch.cat([x, b2])
        return torch.addmm(b1, m1, m2.t())

    def replacement(x, w1, w2, b1, b2):
        return torch.cat([x, w1, w2])

    traced = fx.symbolic_trace(M())
    matches = fx.replace_pattern(traced, pattern, replacement)
    return len(matches), ops(traced)


@case("test_subgraph_rewriter_replaces_referenced_submodules")
def rewriter_referenced_submodules(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sigmoid = torch.nn.Sigmoid()
            self.submod = torch.nn.ReLU()

        def forward(self, x):
            return self.submod(self.sigmoid(x + 1))

    class Pattern(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sigmoid = torch.nn.Sigmoid()
            self.submod = torch.nn.ReLU()

        def forward(self, x):
            return self.submod(self.sigmoid(x))

    class Replacement(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.tanh = torch.nn.Tanh()
            self.submod = torch.nn.ReLU()

        def forward(self, x):
            return self.submod(self.tanh(x))

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, Pattern(), Replacement())
    traced.graph.lint()
    x = torch.randn(3, 3)
    return traced(x), torch.relu(torch.tanh(x + 1)), ops(traced)


@case("test_subgraph_rewriter_literals")
def rewriter_literals(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            return x + 1, x + 2

    def pattern(x):
        return x + 1

    def replacement(x):
        return x - 1

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3)
    return traced(x), (x - 1, x + 2)


@case("test_subgraph_rewriter_placeholder_matching")
def rewriter_placeholder_matching(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            x += 3
            x = x.dequantize()
            x = torch.sigmoid(x)
            return x.to(torch.float16)

    def pattern(x):
        x = x.dequantize()
        x = torch.sigmoid(x)
        return x.to(torch.float16)

    def replacement(x):
        return x

    traced = fx.symbolic_trace(M())
    matches = fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3)
    return traced(x.clone()), x + 3, len(matches)


@case("test_subgraph_rewriter_multiple_outputs")
def rewriter_multiple_outputs(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            y = torch.sigmoid(x)
            z = torch.relu(x)
            return y * z, y + z

    def pattern(a):
        return torch.sigmoid(a), torch.relu(a)

    def replacement(a):
        return torch.exp(a), torch.abs(a)

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    x = torch.randn(3)
    return traced(x), (torch.exp(x) * torch.abs(x), torch.exp(x) + torch.abs(x))


@case("test_subgraph_rewriter (placeholder count mismatch)", raises=True)
def rewriter_count_mismatch(fx):
    def pattern(x):
        return torch.relu(x)

    def replacement(x, y):
        return x + y

    traced = fx.symbolic_trace(lambda x: torch.relu(x) * 2)
    return fx.replace_pattern(traced, pattern, replacement)


@case("test_subgraph_rewriter_with_overlapping_matches")
def rewriter_overlapping_matches(fx):
    def f(x):
        return torch.sigmoid(torch.sigmoid(torch.sigmoid(torch.sigmoid(x))))

    def pattern(x):
        return torch.sigmoid(torch.sigmoid(x))

    def replacement(x):
        return torch.neg(x)

    traced = fx.symbolic_trace(f)
    matches = fx.replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    x = torch.randn(3, 4)
    return traced(x), torch.neg(torch.neg(x)), len(matches), ops(traced)


@case("test_subgraph_rewriter_replace_with_duplicated_outputs")
def rewriter_duplicated_outputs(fx):
    def f(x1, x2):
        x = x1 - x2
        return torch.sigmoid(x) + torch.relu(x)

    def pattern(a1, a2):
        a = a1 - a2
        return torch.sigmoid(a), torch.relu(a), a

    def replacement(x1, x2):
        y1 = torch.exp(x1)
        y2 = torch.abs(x2)
        return y2, y2, y1

    traced = fx.symbolic_trace(f)
    fx.replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    x1, x2 = torch.randn(3, 4), torch.randn(3, 4)
    return traced(x1, x2), torch.abs(x2) + torch.abs(x2), ops(traced)


@case("test_subgraph_rewriter_with_unused_args")
def rewriter_unused_args(fx):
    class M(torch.nn.Module):
        def forward(self, x, y, z):
            return x + y

    def pattern(x, y):
        return x + y

    def replacement(x, y):
        return x - y

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    x1, x2, x3 = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    placeholders = sum(n.op == "placeholder" for n in traced.graph.nodes)
    return traced(x1, x2, x3), x1 - x2, placeholders


@case("test_subgraph_rewriter_call_method")
def rewriter_call_method(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            return x.dequantize().sigmoid().to(torch.float16)

    def pattern(x):
        return x.dequantize().sigmoid().to(torch.float16)

    def replacement(x):
        return x

    traced = fx.symbolic_trace(M())
    fx.replace_pattern(traced, pattern, replacement)
    traced.graph.lint()
    x = torch.randn(3, 4)
    return traced(x), x, ops(traced)


class LinearMul(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w0 = torch.nn.Parameter(torch.randn(8, 8))
        self.b0 = torch.nn.Parameter(torch.randn(8))

    def forward(self, in0):
        lin_res = torch.nn.functional.linear(in0, self.w0, bias=self.b0)
        return in0 * lin_res + in0


def gemm_bias_mul_pattern(a, b, bias):
    lin_res = torch.nn.functional.linear(a, b, bias=bias)
    return lin_res, a * lin_res


def gemm_bias_mul_replacement(a, b, bias):
    lin_res, mul_res = wrapped_gemm_bias_mul(a, b, bias)
    return lin_res, mul_res


@case("test_subgraph_rewriter_nodes_with_kwargs")
def rewriter_nodes_with_kwargs(fx):
    model = LinearMul()
    traced = fx.symbolic_trace(model)
    matches = fx.replace_pattern(traced, gemm_bias_mul_pattern, gemm_bias_mul_replacement)
    x = torch.randn(2, 8)
    found = any(node.target is wrapped_gemm_bias_mul for node in traced.graph.nodes)
    return len(matches), found, traced(x), model(x)


class ThreeAnchors(torch.nn.Module):
    def __init__(self):
        super().__init__()
        for i in range(5):
            setattr(self, f"w{i}", torch.nn.Parameter(torch.randn(8, 8) / 3))
            setattr(self, f"b{i}", torch.nn.Parameter(torch.randn(8)))

    def forward(self, in0, in1):
        linear = torch.nn.functional.linear
        lin_res_2 = linear(linear(in1, self.w0, bias=self.b0), self.w1, bias=self.b1)
        sum_res_1 = in1 * lin_res_2 + in1  # a match
        lin_res_3 = linear(sum_res_1, self.w2, bias=self.b2)
        mul_res_2 = lin_res_3 * torch.sigmoid(lin_res_3)  # not a match
        lin_res_5 = linear(linear(in0, self.w3, bias=self.b3), self.w4, bias=self.b4)
        sum_res_2 = in0 * lin_res_5 + in0  # a match
        return torch.cat([mul_res_2, sum_res_2], dim=1)


def gemm_bias_mul_pattern_with_c(a, b, bias, c):
    lin_res = torch.nn.functional.linear(a, b, bias=bias)
    return lin_res, c * lin_res


def gemm_bias_mul_replacement_with_c(a, b, bias, c):
    lin_res, mul_res = wrapped_gemm_bias_mul_with_c(a, b, bias, c)
    return lin_res, mul_res


@case("test_subgraph_rewriter_local_revert")
def rewriter_local_revert(fx):
    model = ThreeAnchors()
    traced = fx.symbolic_trace(model)
    matches = fx.replace_pattern(
        traced, gemm_bias_mul_pattern_with_c, gemm_bias_mul_replacement_with_c
    )
    x0, x1 = torch.randn(2, 8), torch.randn(2, 8)
    replaced = sum(node.target is wrapped_gemm_bias_mul_with_c for node in traced.graph.nodes)
    return len(matches), replaced, traced(x0, x1), model(x0, x1)


class QuantizedAddRelu(torch.nn.Module):
    def forward(self, x, scale, zero_point):
        x = x.dequantize()
        x = torch.add(x, 2)  # a match: the second input is a scalar
        x = x.relu()
        x = torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)
        y = x + 1
        x = x.dequantize()
        x = torch.add(x, y)  # not a match with the filter
        x = x.relu()
        return torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)


def binary_op_scalar_relu_pattern(x, num, scale, zero_point):
    x = x.dequantize()
    x = torch.add(x, num)
    x = x.relu()
    return torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)


def binary_op_scalar_relu_replacement(x, num, scale, zero_point):
    return torch.mul(x, num)


def second_input_is_scalar(match, original_graph, pattern_graph):
    placeholders = [n for n in pattern_graph.nodes if n.op == "placeholder"]
    return isinstance(match.nodes_map[placeholders[1]], int | float)


@case("test_replace_pattern_with_filters")
def rewriter_with_filters(fx):
    counts = []
    for filters in (None, [second_input_is_scalar]):
        traced = fx.symbolic_trace(QuantizedAddRelu())
        matches = fx.replace_pattern_with_filters(
            traced, binary_op_scalar_relu_pattern, binary_op_scalar_relu_replacement, filters
        )
        in_graph = [n.name for n in traced.graph.nodes if n.target == torch.mul]
        reported = [r.name for m in matches for r in m.replacements]
        counts.append((len(matches), in_graph == reported, len(in_graph)))
    return counts


@case("test_replace_pattern_with_filters (ignore_literals)")
def rewriter_ignore_literals(fx):
    def f(x):
        return torch.add(x, 2) * torch.add(x, 5)

    def pattern(x):
        return torch.add(x, 1)

    def replacement(x):
        return torch.sub(x, 1)

    counts = []
    for ignore in (False, True):
        traced = fx.symbolic_trace(f)
        matches = fx.replace_pattern_with_filters(
            traced, pattern, replacement, None, ignore_literals=ignore
        )
        counts.append((len(matches), ops(traced)))
    return counts


@case("test_matching_pattern_with_list_type_arg")
def rewriter_list_type_arg(fx):
    class M(torch.nn.Module):
        def forward(self, x):
            return torch.ops.aten._reshape_alias_copy.default(x, [1, 2], [3, 4])

    def pattern(x, arg0, arg1):
        return torch.ops.aten._reshape_alias_copy.default(x, arg0, arg1)

    def replacement(x, arg0, arg1):
        return torch.ops.aten._reshape_alias_copy.default(x, arg1, arg0)

    traced = fx.symbolic_trace(M())
    matches = fx.replace_pattern(traced, pattern, replacement)
    call = next(n for n in traced.graph.nodes if n.op == "call_function")
    return len(matches), call.args[1:]


@case("test_replacement_with_attrs")
def rewriter_replacement_with_attrs(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.tensor([1])
            self.b = torch.tensor([2])

        def forward(self, x):
            return x + self.a - self.b

    class Pattern(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.tensor([1])

        def forward(self, x):
            return x + self.a

    class Replacement(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = torch.tensor([3])

        def forward(self, x):
            return x - self.c

    traced = fx.symbolic_trace(M())
    matches = fx.replace_pattern(traced, Pattern(), Replacement())
    x = torch.tensor([10])
    return len(matches), traced(x)


# --- split_module (test/test_fx_experimental.py) -----------------------------------


@case("test_split_module")
def split_module_basic(fx):
    class MyModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.param = torch.nn.Parameter(torch.rand(3, 4))
            self.linear = torch.nn.Linear(4, 5)

        def forward(self, x, y):
            z = self.linear(x + self.param).clamp(min=0.0, max=1.0)
            w = self.linear(y).clamp(min=0.0, max=1.0)
            return z + w

    my_module = MyModule()
    traced = fx.symbolic_trace(my_module)
    partition_counter = 0
    partitions = 3

    def mod_partition(node):
        nonlocal partition_counter
        partition = partition_counter % partitions
        partition_counter = (partition_counter + 1) % partitions
        return partition

    qualname_map = {}
    split = fx.split_module(traced, my_module, mod_partition, qualname_map)
    x, y = torch.rand(3, 4), torch.rand(3, 4)
    submodules = sorted(n for n, m in split.named_children())
    return split(x, y), traced(x, y), ops(split), submodules, sorted(qualname_map.items())


@case("test_split_module (kwargs and multiple outputs)")
def split_module_multiple_outputs(fx):
    def f(x, y):
        a = torch.relu(x)
        b = torch.neg(y)
        c = a + b
        return torch.sigmoid(c), a * 2

    traced = fx.symbolic_trace(f)
    split = fx.split_module(traced, None, lambda node: 0 if node.name in ("relu", "neg") else 1)
    x, y = torch.randn(3), torch.randn(3)
    return split(x, y), f(x, y), ops(split), ops(split.submod_0)


@case("test_split_module (get_attr used in a partition)")
def split_module_get_attr(fx):
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(3))

        def forward(self, x):
            return torch.relu(x) * self.weight + 1

    m = M()
    traced = fx.symbolic_trace(m)
    split = fx.split_module(traced, m, lambda node: 0 if node.target is torch.relu else 1)
    x = torch.randn(3)
    return split(x), m(x), ops(split), ops(split.submod_1)


@case("test_split_module (operator.getitem across partitions)")
def split_module_getitem(fx):
    def f(x):
        a, b = x.chunk(2)
        return operator.add(a.relu(), b)

    traced = fx.symbolic_trace(f)
    split = fx.split_module(traced, None, lambda node: 0 if node.name == "chunk" else 1)
    x = torch.randn(4)
    return split(x), f(x)
