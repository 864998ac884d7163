"""One epoch of sampled minibatch steps (``--batch-size N`` and/or ``--fanouts``).

Per step every worker takes its seeds from the :class:`~gnnsys.train.batcher.BatchSchedule`,
samples its blocks top-down (:class:`~gnnsys.train.sampler.NeighborSampler`, halo sources
requested from their owners with one ID all-to-all per layer), runs
:func:`~gnnsys.train.minibatch.minibatch_forward` with a halo exchange whose plan is the step's
(only the rows the batch needs move), and takes an optimizer step on the weight gradients
all-reduced over every rank. The loss is the summed cross-entropy of the step's seeds divided
by the number of seeds of that step over ALL ranks, so each step is one global minibatch.
Every rank runs the same number of steps (empty ones where its server has fewer batches).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from gnnsys.comm.allreduce import allreduce_gradients
from gnnsys.comm.bootstrap import DistContext
from gnnsys.comm.exchange import HaloExchange
from gnnsys.comm.plan import ExchangePlan
from gnnsys.comm.requests import alltoall_arrays
from gnnsys.train.backward import backward_mean
from gnnsys.train.batcher import BatchSchedule
from gnnsys.train.minibatch import minibatch_forward
from gnnsys.train.model import GNN
from gnnsys.train.sampler import LocalGraph, NeighborSampler, SampledBatch

#: key offset so the codec's random streams differ between the steps of one epoch.
_STEPS_PER_EPOCH_KEY = 1 << 20


class MinibatchEpochs:
    """Runs sampled minibatch epochs for one worker.

    Args:
        ctx: the distributed context.
        shard: the worker's shard (a :class:`~gnnsys.partition.format.Shard` or a preload
            worker's :class:`~gnnsys.train.preload_shard.PreloadShard`).
        server_of_part: logical server of every part (the batches are per server).
        batch_size: seeds per server per step, None = all train nodes in one step.
        fanouts: per layer, -1 = all in-neighbours.
        exchange: the worker's full-graph :class:`HaloExchange` (transport, codecs, counters).
        seed: the run's seed (batches and samples are keyed by it).
    """

    def __init__(self, ctx: DistContext, shard, server_of_part: np.ndarray,
                 batch_size, fanouts: list[int], exchange: HaloExchange, seed: int) -> None:
        self.ctx = ctx
        self.graph = LocalGraph.from_shard(shard)
        self.sampler = NeighborSampler(self.graph, fanouts, seed)
        self.exchange = exchange
        self.request = partial(alltoall_arrays, ctx)
        train_mask = np.asarray(shard.train_mask)
        train = np.asarray(shard.owned)[np.flatnonzero(train_mask)]
        same_server = np.asarray(server_of_part) == server_of_part[ctx.rank]
        server_train = self.request([train if same else train[:0] for same in same_server])
        part_owned = np.asarray(shard.owned)[:getattr(shard, "num_part_owned", len(train_mask))]
        self.schedule = BatchSchedule(np.concatenate(server_train), part_owned, batch_size,
                                      seed, partial(_max_over_ranks, ctx))
        self.links = [ctx.link_of(peer) for peer in range(ctx.size)]

    def run(self, model: GNN, optimizer: torch.optim.Optimizer, feat: torch.Tensor,
            label: torch.Tensor, global_ids: torch.Tensor, epoch: int, backend: str,
            beat: Callable[[str], None], input_aggregate: Optional[torch.Tensor] = None) -> dict:
        """Train one epoch; return ``{"loss_sum", "correct", "seeds", "steps",
        "sampled_edges"}`` of this rank (sums over its steps). ``input_aggregate``: the input
        layer's control variate (see :func:`~gnnsys.train.minibatch.minibatch_forward`)."""
        steps = self.schedule.steps(epoch)
        totals = self.ctx.allreduce_sum(np.array([len(s) for s in steps], dtype=np.int64))
        out = {"loss_sum": 0.0, "correct": 0, "seeds": 0, "steps": len(steps),
               "sampled_edges": 0}
        for step, seeds in enumerate(steps):
            beat(f"epoch {epoch} step {step} sampling")
            batch = self.sampler.sample(seeds, epoch, step, self.request)
            out["sampled_edges"] += batch.num_edges
            optimizer.zero_grad(set_to_none=True)
            rows = torch.from_numpy(batch.rows[0]).to(feat.device)
            key = epoch * _STEPS_PER_EPOCH_KEY + step
            logits = minibatch_forward(model, batch, feat[rows], global_ids, epoch,
                                       partial(self._exchange, batch, key, beat),
                                       input_aggregate)
            target = label[torch.from_numpy(batch.seeds).to(label.device)]
            loss_sum = F.cross_entropy(logits, target, reduction="sum")
            backward_mean(loss_sum, int(totals[step]), model.parameters())
            beat(f"epoch {epoch} step {step} backward")
            allreduce_gradients(model.parameters(), self.ctx, self.exchange.counters,
                                backend=backend)
            optimizer.step()
            out["loss_sum"] += float(loss_sum.detach())
            out["correct"] += int((logits.argmax(1) == target).sum())
            out["seeds"] += len(seeds)
        return out

    def _exchange(self, batch: SampledBatch, key: int, beat: Callable[[str], None],
                  h: torch.Tensor, layer: int) -> torch.Tensor:
        """Source rows of ``layer``: the owned prefix of ``h``, then the halo rows received."""
        beat(f"step exchange layer {layer}")
        send = batch.send[layer]
        send_offsets = np.concatenate([[0], np.cumsum([len(s) for s in send])])
        halo_offsets = np.concatenate([[0], np.cumsum(batch.recv_counts[layer])])
        plan = ExchangePlan.from_arrays(self.ctx.rank, h.shape[0], halo_offsets,
                                        np.concatenate(send).astype(np.int64), send_offsets,
                                        self.links)
        full = self.exchange.with_plan(plan)(h, layer, key)
        n_own_src, n_rows = batch.num_owned_src[layer], h.shape[0]
        if n_own_src == n_rows:
            return full
        return torch.cat([full[:n_own_src], full[n_rows:]])


def _max_over_ranks(ctx: DistContext, value: int) -> int:
    return int(ctx.allreduce_max(np.array([value], dtype=np.int64))[0])
