"""User layers that misbehave, named on the command line as tests/reliability/_layers.py:Class."""
import os

import torch


def _my_rank() -> int:
    return int(os.environ.get("OMPI_COMM_WORLD_RANK", "0"))


class Linear(torch.nn.Module):
    """A plain mean-aggregation layer (the base of the faulty ones)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.lin = torch.nn.Linear(in_dim, out_dim)
        self.calls = 0

    def forward(self, block, h):
        self.calls += 1
        return block.aggregate(self.lin(h), "mean")


class RaisesOnRank1(Linear):
    """Raises ValueError on world rank 1 at its 4th call (mid-training)."""

    def forward(self, block, h):
        if self.calls == 3 and _my_rank() == 1:
            raise ValueError("boom in the user's layer")
        return super().forward(block, h)


class RaisesInInit(torch.nn.Module):
    """Fails while being built, on every rank."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        raise RuntimeError("cannot build this layer")


class GoesNaN(Linear):
    """Returns NaN from its 3rd call on, on every rank (a diverging model)."""

    def forward(self, block, h):
        out = super().forward(block, h)
        return out * float("nan") if self.calls >= 3 else out
