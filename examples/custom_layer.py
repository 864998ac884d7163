"""A user's GNN layer in about 20 lines: gated mean aggregation, using only the block helpers.

Run it with ``gnnsys train ... --layer examples/custom_layer.py:GatedMeanConv``.
"""
import torch
from torch import nn


class GatedMeanConv(nn.Module):
    """x'_i = g_i * W_n mean_{j in N(i)} x_j + (1 - g_i) * W_s x_i, g_i = sigmoid(a . x_i).

    Args: in_dim, out_dim (positional, as gnnsys passes them). Shapes: ``h`` [num_src, in_dim]
    -> [num_dst, out_dim].
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.neigh = nn.Linear(in_dim, out_dim)
        self.self_lin = nn.Linear(in_dim, out_dim, bias=False)
        self.gate = nn.Linear(in_dim, 1)

    def forward(self, block, h: torch.Tensor) -> torch.Tensor:
        h_dst = h[: block.num_dst]                     # destination i is source row i
        neigh = self.neigh(block.aggregate(h, "mean"))  # exact: every in-edge is local
        g = torch.sigmoid(self.gate(h_dst))
        return g * neigh + (1 - g) * self.self_lin(h_dst)


MyLayer = GatedMeanConv
