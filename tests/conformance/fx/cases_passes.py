"""Real-world fx passes from public projects, rewritten here, run unchanged on
torch.fx graphs and on graphlift graphs (issue #17's acceptance).

- an op counter and an op replacer: MosaicML Composer's
  ``composer.utils.fx_utils.count_op_instances`` / ``replace_op``;
- a structural rewrite: Composer's ``fuse_parallel_linears``;
- a quantization-style rewrite: the PyTorch tutorial's Conv/BatchNorm fuser
  ("Building a Convolution/Batch Norm fuser in FX", the step that precedes
  quantization), and inserting quantize/dequantize pairs with the subgraph
  rewriter, as reference-quantized graphs have them;
- a module splitter: cutting a model into pipeline stages by module path with
  ``split_module``, as pipeline-parallel libraries do.

The pass functions only use the public graph API; the library is the ``fx``
namespace the case receives (for ``replace_pattern``/``split_module``).
"""

import copy
import operator

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .adapter import case, ops

# --- the passes -------------------------------------------------------------------


def count_op_instances(gm, targets):
    """How many nodes call one of ``targets`` (functions, method names, or module classes)."""
    modules = dict(gm.named_modules())
    count = 0
    for node in gm.graph.nodes:
        for target in targets:
            if node.target == target:
                count += 1
            elif node.op == "call_module" and isinstance(target, type):
                count += isinstance(modules[node.target], target)
    return count


def replace_op(gm, sources, replacement):
    """Replace every call of one of ``sources`` with a call of ``replacement``."""
    for node in list(gm.graph.nodes):
        if any(node.target == source for source in sources):
            with gm.graph.inserting_after(node):
                new = gm.graph.call_function(replacement, node.args, node.kwargs)
            node.replace_all_uses_with(new)
            gm.graph.erase_node(node)
    gm.recompile()
    return gm


def fuse_parallel_linears(gm):
    """Linears reading the same value become one wide Linear and a split."""
    modules = dict(gm.named_modules())
    fused = 0
    for node in list(gm.graph.nodes):
        linears = [
            u
            for u in node.users
            if u.op == "call_module" and isinstance(modules[u.target], nn.Linear)
        ]
        if len(linears) < 2 or len({modules[u.target].bias is None for u in linears}) != 1:
            continue
        parts = [modules[u.target] for u in linears]
        wide = nn.Linear(
            parts[0].in_features, sum(p.out_features for p in parts), bias=parts[0].bias is not None
        )
        with torch.no_grad():
            wide.weight.copy_(torch.cat([p.weight for p in parts]))
            if wide.bias is not None:
                wide.bias.copy_(torch.cat([p.bias for p in parts]))
        name = f"fused_linear_{fused}"
        gm.add_submodule(name, wide)
        with gm.graph.inserting_after(node):
            wide_node = gm.graph.call_module(name, (node,))
        with gm.graph.inserting_after(wide_node):
            split = gm.graph.call_function(
                torch.split,
                (wide_node,),
                {"split_size_or_sections": [p.out_features for p in parts], "dim": -1},
            )
        anchor = split
        for index, linear in enumerate(linears):
            with gm.graph.inserting_after(anchor):
                item = gm.graph.call_function(operator.getitem, (split, index))
            linear.replace_all_uses_with(item)
            gm.graph.erase_node(linear)
            anchor = item
        fused += 1
    gm.graph.lint()
    gm.recompile()
    return gm


def _replace_module(modules, node, new_module):
    parent, _, name = node.target.rpartition(".")
    setattr(modules[parent], name, new_module)
    modules[node.target] = new_module


def fuse_conv_bn(gm):
    """Fold an eval-mode BatchNorm into the Conv before it (the tutorial's fuser)."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        conv_node = node.args[0]
        if getattr(conv_node, "op", None) != "call_module" or not isinstance(
            modules[conv_node.target], nn.Conv2d
        ):
            continue
        if len(conv_node.users) > 1:
            continue
        fused = fuse_conv_bn_eval(modules[conv_node.target], modules[node.target])
        _replace_module(modules, conv_node, fused)
        node.replace_all_uses_with(conv_node)
        gm.graph.erase_node(node)
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def linear_pattern(x, weight, bias):
    return torch.nn.functional.linear(x, weight, bias)


def quantized_linear(x, weight, bias):
    x = torch.dequantize(torch.quantize_per_tensor(x, 0.05, 128, torch.quint8))
    weight = torch.dequantize(torch.quantize_per_tensor(weight, 0.01, 0, torch.qint8))
    return torch.nn.functional.linear(x, weight, bias)


def insert_quant_dequant(gm, replace_pattern):
    """Every F.linear reads quantize/dequantize-rounded activations and weights."""
    return replace_pattern(gm, linear_pattern, quantized_linear)


def split_into_stages(gm, root, stage_starts, split_module):
    """One submodule per pipeline stage: a stage starts at the first call of a
    module whose path begins with its entry of ``stage_starts``; every node
    belongs to the stage current where it is."""
    stage = 0
    assignment = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            for index, prefix in enumerate(stage_starts):
                if index > stage and node.target.startswith(prefix):
                    stage = index
        assignment[node] = stage
    return split_module(gm, root, lambda node: assignment[node])


# --- models -----------------------------------------------------------------------


class Adds(nn.Module):
    def forward(self, x, y):
        return x + y, torch.add(x, y), x.add(y)


class ParallelHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(8, 8)
        self.key = nn.Linear(8, 4)
        self.value = nn.Linear(8, 6)

    def forward(self, x):
        h = torch.tanh(x)
        return self.query(h).sum(-1) + self.key(h).sum(-1) * self.value(h).mean(-1)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(x)) + x


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(16, 8) / 4)
        self.b1 = nn.Parameter(torch.zeros(16))
        self.w2 = nn.Parameter(torch.randn(4, 16) / 4)

    def forward(self, x):
        h = torch.nn.functional.linear(x, self.w1, self.b1).relu()
        return torch.nn.functional.linear(h, self.w2, None)


class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), nn.GELU()) for _ in range(4)
        )
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        x = self.embed(x)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


def seeded(make):
    torch.manual_seed(0)
    return make()


# --- cases --------------------------------------------------------------------------


@case("Composer fx_utils.count_op_instances")
def composer_count_ops(fx):
    traced = fx.symbolic_trace(Adds())
    heads = fx.symbolic_trace(seeded(ParallelHeads))
    return (count_op_instances(traced, [torch.add]), count_op_instances(traced, [operator.add, torch.add, "add"]),
            count_op_instances(heads, [nn.Linear]), count_op_instances(heads, [torch.tanh, "sum", "mean"]))  # fmt: skip


@case("Composer fx_utils.replace_op")
def composer_replace_op(fx):
    traced = replace_op(fx.symbolic_trace(Adds()), [operator.add, torch.add, "add"], torch.mul)
    x, y = torch.randn(3), torch.randn(3)
    return traced(x, y), count_op_instances(traced, [torch.mul]), ops(traced)


@case("Composer fx_utils.fuse_parallel_linears")
def composer_fuse_parallel_linears(fx):
    model = seeded(ParallelHeads)
    x = torch.randn(5, 8)
    expected = model(x)
    gm = fuse_parallel_linears(fx.symbolic_trace(copy.deepcopy(model)))
    return gm(x), expected, count_op_instances(gm, [nn.Linear]), ops(gm)


@case("PyTorch tutorial: Conv/BatchNorm fuser")
def tutorial_conv_bn_fuser(fx):
    model = seeded(ConvNet).eval()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 8, 8)
    gm = fuse_conv_bn(fx.symbolic_trace(copy.deepcopy(model)))
    return (
        gm(x),
        model(x),
        count_op_instances(gm, [nn.BatchNorm2d]),
        sorted(n for n, _ in gm.named_modules()),
    )


@case("quantize/dequantize insertion with the subgraph rewriter")
def quant_dequant_insertion(fx):
    model = seeded(MLP)
    gm = fx.symbolic_trace(model)
    matches = insert_quant_dequant(gm, fx.replace_pattern)
    x = torch.randn(3, 8)
    reference = quantized_linear(quantized_linear(x, model.w1, model.b1).relu(), model.w2, None)
    return len(matches), gm(x), reference, count_op_instances(gm, [torch.quantize_per_tensor])


@case("pipeline stages with split_module")
def pipeline_stages(fx):
    model = seeded(Tower)
    gm = fx.symbolic_trace(model)
    stages = split_into_stages(gm, model, ["embed", "blocks.2", "head"], fx.split_module)
    x = torch.randn(3, 6)
    return stages(x), model(x), ops(stages), [ops(getattr(stages, f"submod_{i}")) for i in range(3)]
