"""GraphSAGE with mean aggregation on a block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnsys.nn.block import Block
from gnnsys.nn.functional import transform_aggregate


class SAGEConv(nn.Module):
    r"""The GraphSAGE operator of `"Inductive Representation Learning on Large Graphs"
    <https://arxiv.org/abs/1706.02216>`_ (Hamilton et al., NeurIPS 2017), mean aggregator with a
    root weight:

    .. math::
        \mathbf{x}'_i = \mathbf{W}_1 \mathbf{x}_i + \mathbf{W}_2 \cdot
        \mathrm{mean}_{j \in \mathcal{N}(i)} \mathbf{x}_j + \mathbf{b}

    Parameters follow PyG's ``SAGEConv``: ``lin_l`` (:math:`\mathbf{W}_2`, with the bias) acts
    on the aggregated neighbours, ``lin_r`` (:math:`\mathbf{W}_1`, no bias) on the node itself.
    A node without in-edges aggregates to 0. The weight is applied before aggregating when
    ``out_dim < in_dim``. When ``2 * out_dim < in_dim`` both weights are the layer's
    :meth:`pre_exchange` (``[rows, 2 * out_dim]``: neighbour part, then root part), so the halo
    exchange carries ``2 * out_dim`` columns instead of ``in_dim``.

    Args:
        in_dim (int): input feature width.
        out_dim (int): output feature width.
        bias (bool, optional): learn an additive bias (in ``lin_l``). (default: :obj:`True`)

    Shapes:
        - **input:** block, ``h`` :math:`(|\mathcal{V}_s|, F_{in})`
        - **output:** :math:`(|\mathcal{V}_d|, F_{out})`
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.lin_l = nn.Linear(in_dim, out_dim, bias=bias)
        self.lin_r = nn.Linear(in_dim, out_dim, bias=False)

    def _projects_first(self) -> bool:
        return 2 * self.out_dim < self.in_dim

    def pre_exchange(self, h: Tensor) -> Tensor:
        """Row-wise part run before the halo exchange: ``cat(h @ W_2.T, h @ W_1.T)``
        ``[rows, 2 * out_dim]`` (one matrix product) when ``2 * out_dim < in_dim``, else ``h``."""
        if not self._projects_first():
            return h
        return F.linear(h, torch.cat([self.lin_l.weight, self.lin_r.weight]))

    def forward(self, block: Block, h: Tensor, pre_exchanged: bool = False) -> Tensor:
        """Return ``[num_dst, out_dim]`` from ``h`` ``[num_src, in_dim]``, or from
        ``pre_exchange(h)`` when ``pre_exchanged``."""
        if pre_exchanged and self._projects_first():
            out = block.aggregate(h[:, : self.out_dim], "mean")
            out = out if self.lin_l.bias is None else out + self.lin_l.bias
            return out + h[: block.num_dst, self.out_dim:]
        out = transform_aggregate(h, self.lin_l.weight, lambda x: block.aggregate(x, "mean"),
                                  self.lin_l.bias)
        return out + self.lin_r(block.dst_rows(h))
