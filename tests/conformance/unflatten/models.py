"""Models of torch's ``test/export/test_unflatten.py``, written again for the
differential tests (one factory per case; what each exercises is its name)."""

from __future__ import annotations

import torch
from torch import nn


class NestedChild(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / x


class Child1(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.nested = NestedChild()
        self.child1param = nn.Parameter(torch.ones(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nested(x) + self.child1param


class Child2(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.child2buffer = nn.Buffer(torch.ones(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.child2buffer


class Nested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.foo = Child1()
        self.bar = Child2()
        self.rootparam = nn.Parameter(torch.ones(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bar(self.foo(x * self.rootparam))


class MutatingChild(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.child2buffer = nn.Buffer(torch.ones(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.child2buffer.add_(x)
        return x - self.child2buffer


class BufferMutation(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.foo = MutatingChild()
        self.rootparam = nn.Parameter(torch.ones(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.foo(x) * self.rootparam


class NestedAccess(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.foo = Child2()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.foo(x + self.foo.child2buffer)


class SharedSubmodule(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        norm = nn.LayerNorm(10)
        self.sub_net = nn.Sequential(norm, nn.ReLU(), norm, nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sub_net(x)


class DictChild(nn.Module):
    def forward(self, zx: tuple[torch.Tensor, torch.Tensor], y: dict) -> dict:
        return {"x": y["key"] + zx[1], "w": y["key"] * zx[1]}


class StructuredChild(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.nested = DictChild()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = torch.ones_like(x)
        xw = self.nested((z, x), y={"key": y})
        return xw["w"] + z - xw["x"]


class MinusOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - 1


class PreserveSignature(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.foo = StructuredChild()
        self.bar = MinusOne()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.bar(self.foo(x, y))


class ParamListDict(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.param_list = nn.ParameterList([nn.Parameter(torch.randn(2, 3)) for _ in range(2)])
        self.param_dict = nn.ParameterDict(
            {f"key_{i}": nn.Parameter(torch.randn(2, 3)) for i in range(2)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(2):
            x = x + self.param_list[i] + self.param_dict[f"key_{i}"]
        return x


class PairChild(nn.Module):
    def forward(self, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple:
        return x + a, b


class UnusedInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.m1 = PairChild()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = torch.topk(y, 2)
        return self.m1(x, a, b)[0]


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class Difference(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.subsubmod = Square()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x


class DoubleNested(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.submod = Difference()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.submod.subsubmod(x)  # submod itself is never called


class Leaf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class Bar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.leaf = Leaf()
        self.buffer = nn.Buffer(torch.randn(4, 4))

    def forward(self, x: torch.Tensor, z: list) -> torch.Tensor:
        return self.buffer.sum() + self.leaf(x).sum() + z[0].sum() + z[1].sum()


class ContainerType(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bar = Bar()

    def forward(self, x: torch.Tensor, z: list) -> torch.Tensor:
        y = self.bar.buffer + x + z[0] + z[1]
        return self.bar(x, z) + y.sum()


class TwoOutputs(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple:
        return x + x, x * x


class SumOfOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.submod = TwoOutputs()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + sum(self.submod(x))


class ConvTranspose(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).transpose(0, 1)


class TensorConstant(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.tensor(0.1)


class ConstantParent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.submod = TensorConstant()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.submod(x)


class PlusOne(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


class PlusTwo(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.leaf = PlusOne()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.leaf(x) + 2


class NestedLeaf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.nested = PlusTwo()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nested(x) + 3


class AddState(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.buffer = nn.Buffer(torch.rand(3, 4))
        self.param = nn.Parameter(torch.rand(3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.buffer + self.param


class SubmoduleOrdering(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.mod2 = AddState()
        self.mod3 = self.mod2
        self.mod1 = AddState()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mod3(self.mod2(self.mod1(x)))


class DuplicatePlaceholder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        norm = nn.LayerNorm([2, 2, 3])
        self.norms = nn.ModuleList([norm, norm, norm])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for norm in self.norms:
            x = norm(x)
        return x


class SimpleAlias(nn.Module):
    def __init__(self, use_alias: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(4))
        self.m = nn.Linear(4, 4)
        self.m.bias = self.bias
        self.use_alias = use_alias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.m(x) + self.bias if self.use_alias else self.m(x)


class AddConst(nn.Module):
    def forward(self, x: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
        return x + const


class AttrAsInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.const = nn.Buffer(torch.ones(4, 8))
        self.layers = nn.ModuleList([AddConst() for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, self.const)
        return x


class HalfSlice(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y[: x.size(0) // 2]


class DedupSymSize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.m1 = HalfSlice()
        self.m2 = HalfSlice()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d = x.size(0) // 2
        return y[d:] + self.m1(x, y) + self.m2(x, y)


class Cosine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sin()


class SkipCaller(nn.Module):
    def __init__(self, target: nn.Module) -> None:
        super().__init__()
        self._target = [target]  # not a submodule: C calls A.d through a closure

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._target[0](x.cos())


class SkipB(nn.Module):
    def __init__(self, target: nn.Module) -> None:
        super().__init__()
        self.c = SkipCaller(target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(x) + x


class SkippedCallModule(nn.Module):
    """A -> B -> C -> A.d: a submodule called from inside another one."""

    def __init__(self) -> None:
        super().__init__()
        d = Cosine()
        self.b = SkipB(d)
        self.d = d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(x)
