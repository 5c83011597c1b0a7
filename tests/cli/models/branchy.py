"""A model file for the command-line tests: a small MLP with a shape-dependent branch.

``x.shape[1] > 3`` makes the program valid only for seq >= 4, so exporting with
``seq[2,32]`` is a constraint violation that ``--refine`` fixes.
"""

import torch


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU())
        self.head = torch.nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if x.shape[1] > 3:
            h = h * 2
        return self.head(h).softmax(-1)


def make_example() -> tuple[torch.nn.Module, tuple[torch.Tensor]]:
    torch.manual_seed(0)
    return Net(), (torch.randn(2, 5, 16),)


def make_other() -> tuple[torch.nn.Module, tuple[torch.Tensor], dict[str, torch.Tensor]]:
    """A named factory (``branchy.py:make_other``) returning (model, args, kwargs)."""
    torch.manual_seed(1)
    return Net(), (), {"x": torch.randn(3, 6, 16)}


def make_nothing() -> int:
    return 3
