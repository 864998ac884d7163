"""The layer stack: dropout -> [pre_exchange] -> halo exchange -> layer, for every layer (or,
for a layer that exchanges its input rows as they are, halo exchange -> dropout -> layer).

The model never imports ``gnnsys.comm``: it receives an ``exchange(h_own, layer) -> h_src``
callable from the engine, which returns the owned rows followed by the halo rows. In one
process the callable is the identity, so the same model is the single-process model. A layer
with a ``pre_exchange`` method (see :func:`apply_layer`) has its row-wise part applied to the
owned rows before the exchange, so narrower rows travel and are held.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from gnnsys.config import TrainConfig
from gnnsys.nn.block import Block
from gnnsys.nn.dropout import hashed_dropout
from gnnsys.nn.registry import build_layer

Exchange = Callable[[Tensor, int], Tensor]


@dataclass
class SelectedRows:
    """A layer's block restricted to some owned destination rows (halo pruning computes only
    the rows a training pass reads, :mod:`gnnsys.comm.pruning`).

    Layers keep their convention (destination ``i`` is source ``i``): the layer sees ``block``
    over the source rows ``src_order`` picks (the computed rows first, then the rows they read),
    and its output row ``i`` is owned row ``rows[i]``; the other owned rows are zeros in the
    next layer's input.

    Attributes:
        block: the restricted block (``num_dst = len(rows)``, sources in ``src_order``).
        src_order: int64 ``[block.num_src]``: the local source rows ``block`` sees, in order.
        rows: int64 ``[k]``: the owned rows computed (``src_order[:k]``).
    """

    block: Block
    src_order: Tensor
    rows: Tensor


def select_rows(block: Block, rows: np.ndarray) -> SelectedRows:
    """Return ``block`` restricted to the owned destination ``rows`` (local, ascending).

    Its sources are the computed rows, then the other rows their in-edges read (ascending): a
    row no computed row reads is left out. Each computed row keeps its in-edges in their order,
    so its aggregation sums the same terms in the same order; degrees follow their rows.
    """
    rows_t = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=block.device)
    starts = block.indptr[rows_t]
    counts = block.indptr[rows_t + 1] - starts
    indptr = torch.zeros(rows_t.numel() + 1, dtype=torch.int64, device=block.device)
    torch.cumsum(counts, 0, out=indptr[1:])
    edge = (torch.repeat_interleave(starts - indptr[:-1], counts)
            + torch.arange(int(indptr[-1]), device=block.device))
    sources = block.indices[edge]
    read = torch.zeros(block.num_src, dtype=torch.bool, device=block.device)
    read[sources] = True
    read[rows_t] = False
    order = torch.cat([rows_t, torch.nonzero(read).flatten()])
    position = torch.full((block.num_src,), -1, dtype=torch.int64, device=block.device)
    position[order] = torch.arange(order.numel(), device=block.device)
    sub = Block(indptr, position[sources], order.numel(), block.in_deg[order],
                block.out_deg[order])
    return SelectedRows(block=sub, src_order=order, rows=rows_t)


class GNN(nn.Module):
    """A stack of GNN layers with ReLU between them and rank-independent dropout.

    Args:
        layers: the layers, each called as ``layer(block, h_src) -> h_dst``.
        dropout: dropout probability applied to the input of every layer.
        seed: the seed of the dropout masks.

    ``input_halo_cached`` (default False) tells the model that the exchange serves the input
    layer's halo rows from a cache of the (constant) features, so that layer always makes the
    plain call on feature rows, never a pre-exchange projection.

    ``project_before_exchange`` (default True) lets layers with a ``pre_exchange`` run it before
    the exchange (see :func:`apply_layer`), exact or quantized: a narrowing layer's rows then
    travel at its output width, the fewer bytes. Off, every layer exchanges its input rows, as
    in Sylvie/AdaQP; the trainer turns it off when halo rows may be stale (``--staleness``,
    ``--pipeline``), so that a stale row meets the current weight on arrival (README,
    Communication options).
    """

    def __init__(self, layers: list[nn.Module], dropout: float = 0.5, seed: int = 0):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = dropout
        self.seed = seed
        self.project_before_exchange = True
        self.input_halo_cached = False

    def forward(self, block: Union[Block, Sequence[Union[Block, SelectedRows]]], h_own: Tensor,
                global_ids: Tensor, epoch: int, exchange: Optional[Exchange] = None,
                source_ids: Optional[Tensor] = None) -> Tensor:
        """Return the logits ``[num_dst, classes]`` of the last block's destination rows.

        Takes the block (one for every layer, or one per layer), the owned input rows
        ``h_own [n_own, F]``, their global node IDs (keys of the dropout masks), the epoch
        (part of the dropout key) and the exchange callable (identity when None). A layer's
        block may have fewer destinations than ``n_own``, a prefix of the owned rows (a preload
        worker skips its outer-hop rows that no later layer reads), or be a
        :class:`SelectedRows` (halo pruning): the rows it does not compute are zeros in the next
        layer's input.

        ``source_ids`` (optional, ``int64 [n_own + n_halo]``): the global IDs of the rows the
        exchange returns, owned then halo. Given, a layer that exchanges its input rows (no
        pre-exchange projection) gets them undropped and applies dropout to all its source
        rows after the exchange: the same masks (they are keyed by global ID), so the same
        result, but a halo row always travels clean and its gradient returns through the
        receiver's mask of the epoch that used it. That keeps a stale halo row (``--staleness``)
        and its stale gradient consistent with the mask of the epoch that uses them.
        """
        n_own = h_own.shape[0]
        dropping = self.training and self.dropout > 0
        for index, layer in enumerate(self.layers):
            layer_block = block[index] if isinstance(block, (list, tuple)) else block
            selected = layer_block if isinstance(layer_block, SelectedRows) else None
            project = (self.project_before_exchange and hasattr(layer, "pre_exchange")
                       and not (index == 0 and self.input_halo_cached))
            drop_after = dropping and source_ids is not None and not project
            if dropping and not drop_after:
                h_own = hashed_dropout(h_own, global_ids, self.dropout, self.seed, epoch, index)
            source_rows = self._source_rows(exchange, index, epoch,
                                            source_ids if drop_after else None,
                                            None if selected is None else selected.src_order)
            h_own = apply_layer(layer, layer_block if selected is None else selected.block,
                                h_own, source_rows, project)
            last = index == len(self.layers) - 1
            if not last:  # before the zero rows are added: ReLU and its backward touch only
                h_own = torch.relu(h_own)  # the computed rows (measured: lower peak memory)
            if selected is not None:  # in place on fresh zeros: no second full-size copy
                h_own = h_own.new_zeros(n_own, *h_own.shape[1:]).index_copy_(
                    0, selected.rows, h_own)
            elif h_own.shape[0] < n_own and not last:
                h_own = torch.cat([h_own, h_own.new_zeros(n_own - h_own.shape[0],
                                                          *h_own.shape[1:])])
        return h_own

    def _source_rows(self, exchange: Optional[Exchange], index: int, epoch: int,
                     drop_ids: Optional[Tensor],
                     order: Optional[Tensor] = None) -> Callable[[Tensor], Tensor]:
        """The ``source_rows`` callable of layer ``index`` for :func:`apply_layer`: the
        exchange (identity when None), then the rows ``order`` picks when given (a
        :class:`SelectedRows` block), then dropout keyed by the rows' ``drop_ids`` when given."""
        def source_rows(h: Tensor) -> Tensor:
            rows = exchange(h, index) if exchange is not None else h
            ids = drop_ids
            if order is not None:
                rows = rows.index_select(0, order)
                ids = None if ids is None else ids[order]
            if ids is None:
                return rows
            return hashed_dropout(rows, ids, self.dropout, self.seed, epoch, index)
        return source_rows


def apply_layer(layer: nn.Module, block: Block, h: Tensor,
                source_rows: Callable[[Tensor], Tensor], project: bool = True,
                control: Optional[Tensor] = None) -> Tensor:
    """Run one layer on the source rows made from ``h``; return its ``[num_dst, out]`` rows.

    ``source_rows(x)`` turns rows like ``h`` into the layer's source rows (the halo exchange:
    owned rows followed by halo rows). A plain layer gets ``layer(block, source_rows(h))``. A
    layer with a ``pre_exchange(h) -> h'`` method (a row-wise map, e.g. ``h @ W.T``, so it
    commutes with selecting and exchanging rows) gets
    ``layer(block, source_rows(layer.pre_exchange(h)), pre_exchanged=True)``, which equals the
    plain call: narrowing layers exchange and hold ``[rows, out]`` instead of ``[rows, in]``.
    No reference to the source rows outlives the call, so they are freed with the layer's
    temporaries. ``project=False`` always makes the plain call. ``control`` (the exact
    aggregate of a control variate, see :meth:`gnnsys.nn.gcn.GCNConv.forward`) is passed on as
    ``control=`` when given.
    """
    extra = {} if control is None else {"control": control}
    pre = getattr(layer, "pre_exchange", None) if project else None
    if pre is None:
        return layer(block, source_rows(h), **extra)
    return layer(block, source_rows(pre(h)), pre_exchanged=True, **extra)


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
