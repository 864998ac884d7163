"""Graph attention (multi-head) on a block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnsys.nn.block import Block


class GATConv(nn.Module):
    r"""The graph attention operator of `"Graph Attention Networks"
    <https://arxiv.org/abs/1710.10903>`_ (Veličković et al., ICLR 2018), with a self-loop on
    every destination (as PyG's ``GATConv`` with ``add_self_loops=True``):

    .. math::
        \mathbf{x}'_i = \big\Vert_{k=1}^{H} \sum_{j \in \mathcal{N}(i) \cup \{ i \}}
        \alpha^k_{i,j} \mathbf{W}^k \mathbf{x}_j + \mathbf{b},
        \qquad
        \alpha^k_{i,j} = \operatorname{softmax}_{j}\Big(\mathrm{LeakyReLU}\big(
        \mathbf{a}^{k\top}_{s} \mathbf{W}^k \mathbf{x}_j +
        \mathbf{a}^{k\top}_{d} \mathbf{W}^k \mathbf{x}_i\big)\Big)

    (heads concatenated, or averaged when ``concat=False``). The softmax runs over the in-edges
    of a destination plus its self-loop, all local to a shard, so it is exact. Parameter names
    follow PyG (``lin``, ``att_src``, ``att_dst``, ``bias``). When ``heads * out_dim < in_dim``
    the projection :math:`\mathbf{W}\mathbf{x}` is the layer's :meth:`pre_exchange`, so the halo
    exchange carries ``heads * out_dim`` columns instead of ``in_dim``.

    Args:
        in_dim (int): input feature width.
        out_dim (int): output width PER HEAD.
        heads (int, optional): number of attention heads. (default: :obj:`1`)
        concat (bool, optional): concatenate the heads (output ``heads * out_dim``) instead of
            averaging them (output ``out_dim``). (default: :obj:`True`)
        negative_slope (float, optional): LeakyReLU slope. (default: :obj:`0.2`)
        bias (bool, optional): learn an additive bias. (default: :obj:`True`)

    Shapes:
        - **input:** block, ``h`` :math:`(|\mathcal{V}_s|, F_{in})`
        - **output:** :math:`(|\mathcal{V}_d|, H F_{out})` if ``concat`` else
          :math:`(|\mathcal{V}_d|, F_{out})`
    """

    def __init__(self, in_dim: int, out_dim: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, bias: bool = True) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.heads = in_dim, out_dim, heads
        self.concat, self.negative_slope = concat, negative_slope
        self.lin = nn.Linear(in_dim, heads * out_dim, bias=False)
        self.att_src = nn.Parameter(torch.empty(1, heads, out_dim))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_dim))
        width = heads * out_dim if concat else out_dim
        self.bias = nn.Parameter(torch.zeros(width)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weights and attention vectors (as PyG), zero bias."""
        nn.init.xavier_uniform_(self.lin.weight)
        nn.init.xavier_uniform_(self.att_src)
        nn.init.xavier_uniform_(self.att_dst)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def _projects_first(self) -> bool:
        return self.heads * self.out_dim < self.in_dim

    def pre_exchange(self, h: Tensor) -> Tensor:
        """Row-wise part run before the halo exchange: ``h @ W.T`` ``[rows, heads * out_dim]``
        when ``heads * out_dim < in_dim``, else ``h``."""
        return self.lin(h) if self._projects_first() else h

    def forward(self, block: Block, h: Tensor, pre_exchanged: bool = False) -> Tensor:
        """Return ``[num_dst, heads * out_dim]`` (or ``[num_dst, out_dim]``) from ``h``
        ``[num_src, in_dim]``, or from ``pre_exchange(h)`` when ``pre_exchanged``."""
        loops = block.with_self_loops()
        projected = h if pre_exchanged and self._projects_first() else self.lin(h)
        x = projected.view(-1, self.heads, self.out_dim)
        a_src = (x * self.att_src).sum(-1)
        a_dst = (block.dst_rows(x) * self.att_dst).sum(-1)
        scores = F.leaky_relu(a_src[loops.edge_src] + a_dst[loops.edge_dst], self.negative_slope)
        alpha = loops.edge_softmax(scores)
        out = torch.stack([loops.spmm(x[:, k], alpha[:, k]) for k in range(self.heads)], dim=1)
        out = out.reshape(block.num_dst, -1) if self.concat else out.mean(dim=1)
        return out + self.bias if self.bias is not None else out
