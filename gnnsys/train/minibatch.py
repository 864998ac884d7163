"""The forward pass of one minibatch step over the sampled blocks of a :class:`SampledBatch`.

Layer ``l`` reads one row per ``batch.rows[l]`` (``rows[0]``: the input feature rows), applies
the model's rank-independent dropout (keyed by the rows' global IDs, so a node is dropped as in
full-graph training), forms its source rows (the owned prefix, then the halo rows from the
``exchange`` callable) and runs the layer on ``batch.blocks[l]`` (through
:func:`~gnnsys.train.model.apply_layer`: a layer's ``pre_exchange`` runs before the exchange).
With fanouts ``-1`` the seeds' logits equal those of the full-graph forward (tested in float64).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from gnnsys.nn.dropout import hashed_dropout
from gnnsys.train.model import GNN, apply_layer
from gnnsys.train.sampler import SampledBatch

#: ``exchange(h_rows, layer) -> h_src``: the source rows of layer ``layer`` (the owned prefix of
#: ``h_rows``, then the received halo rows). None in one process (no halo rows).
BatchExchange = Callable[[Tensor, int], Tensor]


def minibatch_forward(model: GNN, batch: SampledBatch, h_in: Tensor, global_ids: Tensor,
                      epoch: int, exchange: Optional[BatchExchange] = None,
                      input_aggregate: Optional[Tensor] = None) -> Tensor:
    """Return the logits ``[len(batch.seeds), classes]`` of the seed rows (ascending).

    Args:
        model: the layer stack (its ``layers``, ``dropout`` and ``seed`` are used).
        batch: the sampled blocks of the step on this worker.
        h_in: ``[len(batch.rows[0]), F]`` input features of ``batch.rows[0]``.
        global_ids: ``int64 [local rows]`` global ID of every local row of the worker.
        epoch: the epoch (part of the dropout key).
        exchange: see :data:`BatchExchange`.
        input_aggregate: ``[local owned rows, F]``, optional: the input layer's EXACT
            aggregate of the clean features over full neighbourhoods (``control_aggregate`` on
            the shard). Given, the input layer runs with a control variate: it receives the
            dropout noise ``dropout(x) - x`` (zeros in eval mode) on the sampled edges plus
            ``control = input_aggregate[rows[1]]``, so sampling adds no variance of its own (see
            :meth:`gnnsys.nn.gcn.GCNConv.forward`).
    """
    h = h_in
    last = len(model.layers) - 1
    for index, layer in enumerate(model.layers):
        control = None
        if index == 0 and input_aggregate is not None:
            control = input_aggregate[torch.from_numpy(batch.rows[1]).to(h.device)]
        if model.training and model.dropout > 0:
            rows = torch.from_numpy(batch.rows[index]).to(global_ids.device)
            dropped = hashed_dropout(h, global_ids[rows], model.dropout, model.seed, epoch, index)
            h = dropped if control is None else dropped - h
        elif control is not None:
            h = torch.zeros_like(h)
        owned = batch.num_owned_src[index]
        h = apply_layer(layer, batch.blocks[index], h,
                        (lambda x, index=index: exchange(x, index)) if exchange is not None
                        else (lambda x, owned=owned: x[:owned]), model.project_before_exchange,
                        control)
        if index < last:
            h = torch.relu(h)
    return h
