"""Graph isomorphism network layer on a block."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnsys.nn.block import Block
from gnnsys.nn.functional import transform_aggregate


class GINConv(nn.Module):
    r"""The graph isomorphism operator of `"How Powerful are Graph Neural Networks?"
    <https://arxiv.org/abs/1810.00826>`_ (Xu et al., ICLR 2019):

    .. math::
        \mathbf{x}'_i = \mathrm{MLP}\Big((1 + \epsilon) \mathbf{x}_i +
        \sum_{j \in \mathcal{N}(i)} \mathbf{x}_j\Big),
        \qquad \mathrm{MLP}(\mathbf{z}) = \mathbf{W}_2\, \mathrm{ReLU}(\mathbf{W}_1 \mathbf{z}
        + \mathbf{b}_1) + \mathbf{b}_2

    The first linear map of the MLP commutes with the sum, so it is applied before aggregating
    when ``out_dim < in_dim``; its weight is then also the layer's :meth:`pre_exchange`, so the
    halo exchange carries ``out_dim`` columns.

    Args:
        in_dim (int): input feature width.
        out_dim (int): output width (also the MLP's hidden width).
        eps (float, optional): initial :math:`\epsilon`. (default: :obj:`0.0`)
        train_eps (bool, optional): learn :math:`\epsilon`. (default: :obj:`False`)

    Shapes:
        - **input:** block, ``h`` :math:`(|\mathcal{V}_s|, F_{in})`
        - **output:** :math:`(|\mathcal{V}_d|, F_{out})`
    """

    def __init__(self, in_dim: int, out_dim: int, eps: float = 0.0, train_eps: bool = False) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.train_eps = train_eps
        self.lin1 = nn.Linear(in_dim, out_dim)
        self.lin2 = nn.Linear(out_dim, out_dim)
        if train_eps:
            self.eps = nn.Parameter(torch.tensor([float(eps)]))
        else:
            self.register_buffer("eps", torch.tensor([float(eps)]))

    def pre_exchange(self, h: Tensor) -> Tensor:
        """Row-wise part run before the halo exchange: ``h @ W_1.T`` ``[rows, out_dim]`` when
        the layer narrows (``out_dim < in_dim``), else ``h`` itself."""
        return F.linear(h, self.lin1.weight) if self.out_dim < self.in_dim else h

    def forward(self, block: Block, h: Tensor, pre_exchanged: bool = False) -> Tensor:
        """Return ``[num_dst, out_dim]`` from ``h`` ``[num_src, in_dim]``, or from
        ``pre_exchange(h)`` when ``pre_exchanged``."""
        def propagate(x: Tensor) -> Tensor:
            return block.aggregate(x, "sum") + (1.0 + self.eps.to(x.dtype)) * block.dst_rows(x)

        if pre_exchanged and self.out_dim < self.in_dim:
            z = propagate(h) + self.lin1.bias
        else:
            z = transform_aggregate(h, self.lin1.weight, propagate, self.lin1.bias)
        return self.lin2(torch.relu(z))
