"""GraphSAGE with mean aggregation on a block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnsys.nn.block import Block


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

    def _project_both(self, h: Tensor) -> Tensor:
        """``cat(h @ W_2.T, h @ W_1.T)`` ``[rows, 2 * out_dim]`` in one matrix product."""
        return F.linear(h, torch.cat([self.lin_l.weight, self.lin_r.weight]))

    def pre_exchange(self, h: Tensor) -> Tensor:
        """Row-wise part run before the halo exchange: :meth:`_project_both` when
        ``2 * out_dim < in_dim``, else ``h``."""
        return self._project_both(h) if self._projects_first() else h

    def forward(self, block: Block, h: Tensor, pre_exchanged: bool = False) -> Tensor:
        """Return ``[num_dst, out_dim]`` from ``h`` ``[num_src, in_dim]``, or from
        ``pre_exchange(h)`` when ``pre_exchanged``.

        A narrowing layer (``out_dim < in_dim``) applies both weights in one matrix product and
        aggregates ``out_dim`` columns; otherwise it aggregates ``h`` and accumulates the
        neighbour product into the root product (one ``addmm``, no separate sum).
        """
        projected = pre_exchanged and self._projects_first()
        if projected or self.out_dim < self.in_dim:
            both = h if projected else self._project_both(h)
            out = block.aggregate(both[:, : self.out_dim], "mean")
            out = out if self.lin_l.bias is None else out + self.lin_l.bias
            return out + both[: block.num_dst, self.out_dim:]
        root = F.linear(block.dst_rows(h), self.lin_r.weight, self.lin_l.bias)
        return torch.addmm(root, block.aggregate(h, "mean"), self.lin_l.weight.t())
