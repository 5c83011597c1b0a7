"""Subgraph rewriter and split_module cases, rewritten from torch's
test/fx/test_subgraph_rewriter.py and test/test_fx_experimental.py."""

import operator

import torch

from .adapter import case, ops

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
