"""The layer stack: dropout -> halo exchange -> layer, for every layer.

The model never imports ``gnnsys.comm``: it receives an ``exchange(h_own, layer) -> h_src``
callable from the engine, which returns the owned rows followed by the halo rows. In one
process the callable is the identity, so the same model is the single-process model.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor, nn

from gnnsys.config import TrainConfig
from gnnsys.nn.block import Block
from gnnsys.nn.dropout import hashed_dropout
from gnnsys.nn.registry import build_layer

Exchange = Callable[[Tensor, int], Tensor]


class GNN(nn.Module):
    """A stack of GNN layers with ReLU between them and rank-independent dropout.

    Args:
        layers: the layers, each called as ``layer(block, h_src) -> h_dst``.
        dropout: dropout probability applied to the input of every layer.
        seed: the seed of the dropout masks.
    """

    def __init__(self, layers: list[nn.Module], dropout: float = 0.5, seed: int = 0):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = dropout
        self.seed = seed

    def forward(self, block: Block, h_own: Tensor, global_ids: Tensor, epoch: int,
                exchange: Optional[Exchange] = None) -> Tensor:
        """Return the logits ``[num_dst, classes]`` of the owned rows.

        Takes the block, the owned input rows ``h_own [num_dst, F]``, their global node IDs
        (keys of the dropout masks), the epoch (part of the dropout key) and the exchange
        callable (identity when None).
        """
        for index, layer in enumerate(self.layers):
            if self.training and self.dropout > 0:
                h_own = hashed_dropout(h_own, global_ids, self.dropout, self.seed, epoch, index)
            h_src = exchange(h_own, index) if exchange is not None else h_own
            h_own = layer(block, h_src)
            if index < len(self.layers) - 1:
                h_own = torch.relu(h_own)
        return h_own


def build_model(cfg: TrainConfig, in_dim: int, num_classes: int) -> GNN:
    """Build the :class:`GNN` described by ``cfg`` for ``in_dim`` features and ``num_classes``.

    Weights are drawn from ``torch.manual_seed(cfg.seed)``, so every rank builds the same model.
    """
    torch.manual_seed(cfg.seed)
    spec = cfg.layer or cfg.model
    dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [num_classes]
    layers = []
    for index in range(cfg.layers):
        last = index == cfg.layers - 1
        if spec == "gat" and not last:
            layers.append(build_layer(spec, dims[index], dims[index + 1] // cfg.heads,
                                      heads=cfg.heads))
        else:
            layers.append(build_layer(spec, dims[index], dims[index + 1]))
    return GNN(layers, dropout=cfg.dropout, seed=cfg.seed)
