"""Graph convolution (Kipf & Welling) on a block."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnnsys.nn.block import Block
from gnnsys.nn.functional import transform_aggregate


class GCNConv(nn.Module):
    r"""The graph convolution of `"Semi-supervised Classification with Graph Convolutional
    Networks" <https://arxiv.org/abs/1609.02907>`_ (Kipf & Welling, ICLR 2017), with self-loops:

    .. math::
        \mathbf{x}'_i = \sum_{j \in \mathcal{N}(i) \cup \{ i \}}
        \frac{1}{\sqrt{(d_i + 1)(d_j + 1)}} \mathbf{W} \mathbf{x}_j + \mathbf{b}

    where :math:`d_i` is the GLOBAL in-degree of node :math:`i` (PyG's ``gcn_norm``: both
    endpoints use in-degree + 1), so a shard computes exactly what the whole graph would.
    The weight is applied before aggregating when ``out_dim < in_dim``; it is then also the
    layer's :meth:`pre_exchange`, so the halo exchange carries ``out_dim`` columns.

    Args:
        in_dim (int): input feature width.
        out_dim (int): output feature width.
        bias (bool, optional): learn an additive bias. (default: :obj:`True`)

    Shapes:
        - **input:** block with ``num_src`` / ``num_dst`` rows, ``h`` :math:`(|\mathcal{V}_s|,
          F_{in})`
        - **output:** :math:`(|\mathcal{V}_d|, F_{out})`
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weight (as PyG), zero bias."""
        nn.init.xavier_uniform_(self.lin.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def pre_exchange(self, h: Tensor) -> Tensor:
        """Row-wise part run before the halo exchange: ``h @ W.T`` ``[rows, out_dim]`` when
        the layer narrows (``out_dim < in_dim``), else ``h`` itself."""
        return F.linear(h, self.lin.weight) if self.out_dim < self.in_dim else h

    def control_aggregate(self, block: Block, h: Tensor) -> Tensor:
        r"""Return the normalised neighbourhood sum ``[num_dst, d]`` of ``h`` ``[num_src, d]``
        before the weight: :math:`\sum_{j \in \mathcal{N}(i) \cup \{i\}} x_j /
        \sqrt{(d_i + 1)(d_j + 1)}` (linear in ``h``). On a full block this is the exact
        aggregate that :meth:`forward`'s ``control`` takes."""
        return self._propagate(block, h, zero_mean=False)

    def forward(self, block: Block, h: Tensor, pre_exchanged: bool = False,
                control: Optional[Tensor] = None) -> Tensor:
        """Return ``[num_dst, out_dim]`` from ``h`` ``[num_src, in_dim]``, or from
        ``pre_exchange(h)`` when ``pre_exchanged``.

        ``control`` (``[num_dst, in_dim]``, optional) turns on the control variate of a sampled
        input layer (VR-GCN, Chen et al., ICML 2018): ``control`` is the EXACT aggregate
        :meth:`control_aggregate` of the clean input ``x`` over full neighbourhoods, and ``h`` is the
        dropout noise ``dropout(x) - x``; the layer returns ``(control + A_s h) W + b``. Its mean
        is the full-graph layer's, and as the noise terms are independent with mean zero the
        sampled sum weighs them by ``sqrt(deg_i / k_i)`` (:meth:`Block.gcn_norm_weights`), so its
        variance is the full-graph dropout's: the sampling adds no variance to this layer.
        """
        zero_mean = control is not None

        def propagate(x: Tensor) -> Tensor:
            return self._propagate(block, x, zero_mean)

        projected = pre_exchanged and self.out_dim < self.in_dim
        if control is None and not projected:
            return transform_aggregate(h, self.lin.weight, propagate, self.bias)
        out = propagate(h) if projected else transform_aggregate(h, self.lin.weight, propagate)
        if control is not None:
            out = out + F.linear(control, self.lin.weight)
        return out if self.bias is None else out + self.bias

    @staticmethod
    def _propagate(block: Block, x: Tensor, zero_mean: bool) -> Tensor:
        edge_w = block.gcn_norm_weights(x.dtype, zero_mean=zero_mean)
        self_w = block.gcn_self_weights(x.dtype).unsqueeze(-1)
        return block.spmm(x, edge_w) + self_w * block.dst_rows(x)
