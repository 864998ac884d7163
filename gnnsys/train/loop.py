"""The distributed full-graph training loop: one rank per part, exact by construction.

Each rank loads its shard, builds the exchange plan and the local block, and per epoch runs
forward (dropout -> halo exchange -> layer, per layer), the loss over its train rows divided
by the GLOBAL train count, backward (halo gradients return to their owners), the weight
gradient all-reduce and the optimizer step. Every rank holds the same weights throughout.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gnnsys.allocator import set_malloc_policy
from gnnsys.comm.allreduce import allreduce_gradients, allreduce_scalars
from gnnsys.comm.bootstrap import DistContext
from gnnsys.comm.codec import Codec
from gnnsys.comm.counters import ByteCounters
from gnnsys.comm.exchange import HaloExchange
from gnnsys.comm.pipeline import CommWorker
from gnnsys.comm.requests import alltoall_arrays
from gnnsys.comm.plan import ExchangePlan
from gnnsys.comm.pruning import training_reach
from gnnsys.comm.staleness import StaleHaloExchange
from gnnsys.comm.watchdog import Watchdog
from gnnsys.config import TrainConfig
from gnnsys.data.transforms import normalize_features
from gnnsys.errors import RuntimeFailure, UserError
from gnnsys.nn.block import Block
from gnnsys.partition.format import check_file, load_manifest, open_shard
from gnnsys.partition.preload import open_preload
from gnnsys.train import checkpoint
from gnnsys.train.backward import backward_mean
from gnnsys.train.batched import MinibatchEpochs
from gnnsys.train.metrics import MetricsWriter, epoch_record, final_line
from gnnsys.train.model import GNN, SelectedRows, build_model, select_rows

#: A pruned training pass restricts a layer to the rows it reads only when they are fewer than
#: this share of its rows; above it, the rows saved are few and the gather still copies them.
SELECT_BELOW = 0.9


class AgreedFailure(RuntimeFailure):
    """A run-time failure every rank detects at the same step (e.g. a non-finite global loss).

    Raised on all ranks together, so the job can end without aborting: rank 0 reports it.
    """


@dataclass
class TrainResult:
    """What a finished run returns: final accuracies, epochs run, wall time, per-epoch records."""

    test_acc: float
    val_acc: float
    train_acc: float
    epochs: int
    time_s: float
    history: list = field(default_factory=list)
    model: Optional[GNN] = None


class Trainer:
    """Runs :class:`TrainConfig` on the rank described by ``ctx``.

    Args:
        cfg: the validated options.
        ctx: the distributed context (world size must equal the partition's part count).
        model: an already built :class:`GNN` (Python API); built from ``cfg`` when None.
    """

    def __init__(self, cfg: TrainConfig, ctx: DistContext, model: Optional[GNN] = None):
        self.cfg, self.ctx = cfg, ctx
        manifest = load_manifest(cfg.partition)
        parts = int(manifest["parts"])
        if parts != ctx.size:
            how = "run it without mpirun" if parts == 1 else f"launch with mpirun -n {parts}"
            raise UserError(f"partition {cfg.partition} has {parts} parts but {ctx.size} "
                            f"rank(s) were started: {how}")
        if int(manifest["servers"]) > 1 and ctx.num_servers > 1:
            ctx.check_placement(np.asarray(manifest["part_server"]))
        self.device = torch.device(cfg.device)
        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda given but no CUDA device is available")
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        set_malloc_policy(cfg.malloc)
        _set_threads(cfg, ctx)
        shard = open_shard(cfg.partition, ctx.rank, verify=True, manifest=manifest)
        self.preload_stats = {}
        if cfg.mode == "preload":
            shard = self._preload_shard(shard, manifest)
        self.global_train = int(manifest["dataset"]["num_train"])
        if self.global_train == 0:
            raise UserError(f"partition {cfg.partition} has no training nodes")
        self._load_shard(shard, int(manifest["dataset"]["num_classes"]))
        self.counters = ByteCounters()
        self.worker = CommWorker(ctx, cfg.backend) if cfg.pipeline and ctx.size > 1 else None
        codecs = {"intra": Codec(cfg.intra_bits or cfg.bits),
                  "inter": Codec(cfg.inter_bits or cfg.bits)}
        self.exchange = HaloExchange(ctx, self._plan(shard), self.counters, backend=cfg.backend,
                                     codecs=codecs, seed=cfg.seed, worker=self.worker)
        self._prune_training(shard)
        self.stale = (StaleHaloExchange(self.train_exchange, cfg.staleness, cfg.stale_grads)
                      if cfg.staleness else None)
        self.batches = (MinibatchEpochs(ctx, shard, np.asarray(manifest["part_server"]),
                                        cfg.batch_seeds, cfg.fanout_list, self.exchange, cfg.seed)
                        if cfg.minibatch else None)
        self.epoch = 0
        self._control: Optional[Tensor] = None
        self._input_halo: Optional[Tensor] = None  # see _feature_halo
        self.watchdog = Watchdog(cfg.timeout if ctx.size > 1 else 0, ctx.rank)
        self.model = (model or build_model(cfg, self.feat.shape[1], self.num_classes))
        self.model = self.model.to(device=self.device, dtype=self.dtype)
        # A stale projected row is H(t-1) W(t-1); a stale input row meets the current W(t) on
        # arrival. So project before the exchange only when the rows are fresh.
        self.model.project_before_exchange = not cfg.staleness
        self._broadcast_parameters()
        self.optimizer = _build_optimizer(cfg, self.model)
        self.start_epoch = 0
        if cfg.resume:
            self._resume()

    def _load_shard(self, shard, num_classes: int) -> None:
        dev, dt = self.device, self.dtype
        tensor = _owned_tensor
        self.num_classes = num_classes
        self.feat = tensor(shard.feat)
        if not torch.isfinite(self.feat).all():
            raise UserError(f"{shard.folder}/part-{shard.part}/feat.npy: features contain NaN "
                            "or Inf; fix the input graph and partition it again")
        self.feat = normalize_features(self.feat, self.cfg.normalize_features)
        self.feat = self.feat.to(device=dev, dtype=dt)
        self.label = tensor(shard.label).to(dev)
        self.masks = {k: tensor(getattr(shard, f"{k}_mask")).to(dev)
                      for k in ("train", "val", "test")}
        self.global_ids = tensor(shard.owned).to(dev)
        self._source_ids = torch.cat([self.global_ids, tensor(shard.halo).to(dev)])
        self.orig_ids = np.asarray(shard.orig_ids)
        n_src = shard.owned.shape[0] + shard.halo.shape[0]
        indptr, indices = tensor(shard.indptr), tensor(shard.indices)
        in_deg, out_deg = tensor(shard.in_deg), tensor(shard.out_deg)
        if getattr(shard, "hop", None) is None:
            self.block = Block(indptr, indices, n_src, in_deg, out_deg).to(device=dev, dtype=dt)
        else:  # a preload worker: layer l computes only its rows at hop <= layers - 1 - l
            from gnnsys.train.preload_shard import layer_row_counts

            self.block = [Block(indptr[:rows + 1], indices[:int(indptr[rows])], n_src, in_deg,
                                out_deg).to(device=dev, dtype=dt)
                          for rows in layer_row_counts(np.asarray(shard.hop), self.cfg.layers)]
        self.train_idx = torch.nonzero(self.masks["train"]).flatten()

    def _preload_shard(self, shard, manifest: dict):
        """Return this worker's :class:`PreloadShard` (collective) and set ``preload_stats``."""
        from gnnsys.train.preload_shard import build_preload_shard

        folder = self.cfg.partition
        pre = open_preload(folder, shard.server, verify=True, manifest=manifest)
        if pre.hops < self.cfg.layers:
            raise UserError(f"partition {folder} preloads {pre.hops} hop(s) but the model has "
                            f"{self.cfg.layers} layers: partition again with --preload-hops "
                            f"{self.cfg.layers}")
        check_file(folder, "assignment.npy", manifest["files"]["assignment.npy"])
        assignment = np.load(os.path.join(folder, "assignment.npy"), mmap_mode="r")
        local = build_preload_shard(shard, pre, assignment, partial(alltoall_arrays, self.ctx))
        rows = len(local.preload_rows)
        totals = self.ctx.allreduce_sum(np.array([rows, rows * pre.feat.shape[1] * 4],
                                                 dtype=np.int64))
        self.preload_stats = {"preload_rows": int(totals[0]), "preload_bytes": int(totals[1])}
        return local

    def _plan(self, shard) -> ExchangePlan:
        links = [self.ctx.link_of(peer) for peer in range(self.ctx.size)]
        return ExchangePlan.from_arrays(self.ctx.rank, int(shard.owned.shape[0]),
                                        np.asarray(shard.halo_offsets),
                                        np.asarray(shard.send_index),
                                        np.asarray(shard.send_offsets), links)

    def _prune_training(self, shard) -> None:
        """Set :attr:`train_exchange` and :attr:`train_block`, the exchange and the blocks of
        training passes. With ``--halo-pruning`` (full batches, several ranks) they move only
        the halo rows the loss reads and compute only the owned rows it reads
        (:mod:`gnnsys.comm.pruning`; collective); else they are :attr:`exchange` and
        :attr:`block`. A layer that would compute nearly every row keeps its whole block."""
        cfg = self.cfg
        self.train_exchange, self.train_block = self.exchange, self.block
        self.pruning_stats = {}
        if not cfg.halo_pruning or cfg.minibatch or self.ctx.size == 1:
            return
        reach = training_reach(self.exchange.plan, np.asarray(shard.indptr),
                               np.asarray(shard.indices),
                               np.flatnonzero(np.asarray(shard.train_mask)), cfg.layers,
                               partial(alltoall_arrays, self.ctx))
        self.train_exchange = self.exchange.pruned(reach.halo)
        blocks = self.block if isinstance(self.block, list) else [self.block] * cfg.layers
        self.train_block = []
        for layer, block in enumerate(blocks):
            rows = reach.computed[layer]
            if len(rows) == 0:
                # Every rank calls every layer (its exchange is collective), on non-empty rows.
                rows = np.zeros(min(1, block.num_dst), dtype=np.int64)
            self.train_block.append(select_rows(block, rows)
                                    if len(rows) < SELECT_BELOW * block.num_dst else block)
        computed = [b.block.num_dst if isinstance(b, SelectedRows) else b.num_dst
                    for b in self.train_block]
        self.pruning_stats = {"computed_rows": [int(c) for c in self.ctx.allreduce_sum(
            np.array(computed, dtype=np.int64))]}

    def _broadcast_parameters(self) -> None:
        if self.ctx.size == 1:
            return
        flat = torch.cat([p.detach().reshape(-1).cpu() for p in self.model.parameters()])
        buf = flat.numpy().copy()
        self.ctx.comm.Bcast(buf, root=0)
        offset = 0
        with torch.no_grad():
            for p in self.model.parameters():
                n = p.numel()
                p.copy_(torch.from_numpy(buf[offset:offset + n]).view_as(p))
                offset += n

    def _exchange(self, h: Tensor, layer: int) -> Tensor:
        self.watchdog.beat(f"epoch {self.epoch} layer {layer}")
        if layer == 0 and self.model.input_halo_cached:
            return torch.cat([h, self._input_halo])
        if self.stale is not None and self.model.training:
            return self.stale(h, layer)
        if self.model.training:
            return self.train_exchange(h, layer, self.epoch)
        return self.exchange(h, layer, self.epoch, exact=True)

    def _is_sync_epoch(self, epoch: int) -> bool:
        every = self.cfg.sync_every
        return epoch == self.start_epoch or bool(every and epoch % every == 0)

    def train_epoch(self, epoch: int) -> dict:
        """Run one epoch (one full-graph step, or the sampled minibatch steps); return loss,
        train accuracy, times and bytes."""
        self.model.train()
        self.counters.reset()
        self.epoch = epoch
        start = time.perf_counter()
        if self.batches is not None:
            return self._minibatch_epoch(epoch, start)
        if self.stale is not None:
            self.stale.begin_epoch(epoch, sync=self._is_sync_epoch(epoch))
        self._cache_input_halo()
        self.optimizer.zero_grad(set_to_none=True)
        logits = self.model(self.train_block, self.feat, self.global_ids, epoch, self._exchange,
                            self._source_ids)
        out = logits[self.train_idx]
        target = self.label[self.train_idx]
        loss_sum = F.cross_entropy(out, target, reduction="sum")
        backward_mean(loss_sum, self.global_train, self.model.parameters())
        self.watchdog.beat(f"epoch {epoch} backward")
        allreduce_gradients(self.model.parameters(), self.ctx, self.counters,
                            backend=self.cfg.backend)
        self.optimizer.step()
        epoch_s = time.perf_counter() - start
        correct = (out.argmax(1) == target).sum().item()
        loss_total, correct_total = allreduce_scalars(
            np.array([loss_sum.item(), correct], dtype=np.float64), self.ctx)
        if not np.isfinite(loss_total):
            raise AgreedFailure(f"loss is {loss_total} at epoch {epoch}: lower --lr or check "
                                 "the features")
        stats = self._epoch_stats(epoch_s, loss_total / self.global_train,
                                  correct_total / self.global_train)
        if self.stale is not None:
            stats["staleness"] = self.stale.epoch_max_age
            stats["sync"] = self.stale.sync
        return stats

    def _minibatch_epoch(self, epoch: int, start: float) -> dict:
        """Run the sampled steps of one epoch; return the stats of :meth:`train_epoch` plus
        ``steps`` and ``sampled_edges`` (per step, summed over ranks)."""
        out = self.batches.run(self.model, self.optimizer, self.feat, self.label,
                               self.global_ids, epoch, self.cfg.backend, self.watchdog.beat,
                               self._input_aggregate())
        epoch_s = time.perf_counter() - start
        loss, correct, seeds, edges = allreduce_scalars(
            np.array([out["loss_sum"], out["correct"], out["seeds"], out["sampled_edges"]],
                     dtype=np.float64), self.ctx)
        if not np.isfinite(loss):
            raise AgreedFailure(f"loss is {loss} at epoch {epoch}: lower --lr or check the "
                                 "features")
        stats = self._epoch_stats(epoch_s, loss / max(seeds, 1), correct / max(seeds, 1))
        stats.update(steps=out["steps"], sampled_edges=int(edges) // max(out["steps"], 1))
        return stats

    @torch.no_grad()
    def _feature_halo(self) -> Tensor:
        """The halo rows of the input features, fetched once (collective, exact whatever
        ``--bits`` says; counted in the bytes of the epoch that fetches them) and kept: the
        features never change."""
        if self._input_halo is None:
            self.watchdog.beat(f"epoch {self.epoch} feature halo")
            n_own = self.feat.shape[0]
            self._input_halo = self.exchange(self.feat, 0, self.epoch, exact=True)[n_own:].clone()
        return self._input_halo

    def _cache_input_halo(self) -> None:
        """Serve the input layer's halo rows from :meth:`_feature_halo` when
        ``--input-halo-cache`` applies (full-graph exchange mode on several ranks). The dropout
        masks are a hash of global IDs, so :meth:`_exchange` rebuilds, for every epoch, exactly
        the rows an fp32 exchange would deliver, and the input layer moves no byte: no
        quantization noise, no staleness, no projection or gradient exchange."""
        if self.cfg.input_halo_cache and self.ctx.size > 1 and isinstance(self.block, Block):
            self._feature_halo()
            self.model.input_halo_cached = True

    @torch.no_grad()
    def _input_aggregate(self) -> Optional[Tensor]:
        """The input layer's control variate for sampled steps (collective, computed once):
        its exact aggregate of the features over the shard's full neighbourhoods, or None when
        the input layer is not sampled, has no ``control_aggregate``, ``--no-control-variate``
        is set or the worker holds a preload."""
        layer = self.model.layers[0]
        if (not self.cfg.control_variate or self.cfg.fanout_list[0] == -1
                or not hasattr(layer, "control_aggregate") or not isinstance(self.block, Block)):
            return None
        if self._control is None:
            self._control = layer.control_aggregate(
                self.block, torch.cat([self.feat, self._feature_halo()]))
        return self._control

    def _epoch_stats(self, epoch_s: float, loss: float, train_acc: float) -> dict:
        """The metrics record of an epoch: times (maxima over ranks), bytes (sums), memory."""
        c = self.counters
        times = self.ctx.allreduce_max(np.array([epoch_s, c.comm_wait_s, c.comm_s, c.codec_s,
                                                 epoch_s - c.comm_wait_s - c.codec_s, _rss_mb()],
                                                dtype=np.float64))
        return {"loss": loss, "train_acc": train_acc,
                "epoch_s": times[0], "compute_s": max(0.0, times[4]), "comm_s": times[2],
                "comm_wait_s": times[1], "codec_s": times[3], "bytes": c.reduce_sum(self.ctx),
                "rss_mb": times[5], **self.preload_stats, **self.pruning_stats}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Fresh full-precision synchronous forward; return global train/val/test accuracy."""
        self.model.eval()
        logits = self.model(self.block, self.feat, self.global_ids, 0, self._exchange)
        pred = logits.argmax(1)
        counts = []
        for key in ("train", "val", "test"):
            mask = self.masks[key]
            counts += [float((pred[mask] == self.label[mask]).sum()), float(mask.sum())]
        totals = allreduce_scalars(np.array(counts, dtype=np.float64), self.ctx)
        self.last_pred = pred
        return {f"{k}_acc": (totals[2 * i] / totals[2 * i + 1] if totals[2 * i + 1] else None)
                for i, k in enumerate(("train", "val", "test"))}

    def run(self) -> TrainResult:
        """Train for ``cfg.epochs`` epochs (from the resumed epoch); return the result."""
        cfg, is_root = self.cfg, self.ctx.rank == 0
        writer = (MetricsWriter(cfg.metrics, cfg.to_dict(), append=cfg.resume)
                  if (is_root and cfg.metrics) else None)
        bar = _progress(cfg, is_root, self.start_epoch)
        history, evaluation, start = [], {}, time.perf_counter()
        self.watchdog.start()
        try:
            evaluation = self._epochs(writer, bar, history)
            self.watchdog.beat("the end of training")
            self.close_exchange()
            if not evaluation:
                evaluation = self.evaluate()
            if cfg.save_predictions:
                self._save_predictions(cfg.save_predictions)
        finally:
            self.watchdog.stop()
            if bar is not None:
                bar.close()
            if writer:
                writer.close()
        result = TrainResult(test_acc=evaluation["test_acc"] or 0.0,
                             val_acc=evaluation["val_acc"] or 0.0,
                             train_acc=evaluation["train_acc"] or 0.0,
                             epochs=cfg.epochs - self.start_epoch,
                             time_s=time.perf_counter() - start, history=history,
                             model=self.model)
        if is_root:
            print(final_line(result), flush=True)
        return result

    def _epochs(self, writer, bar, history: list) -> dict:
        """Run the epochs from ``start_epoch``; return the last evaluation (maybe empty)."""
        cfg, evaluation = self.cfg, {}
        for epoch in range(self.start_epoch, cfg.epochs):
            stats = self.train_epoch(epoch)
            self.watchdog.epoch_done(stats["epoch_s"])
            last = epoch == cfg.epochs - 1
            self.watchdog.beat(f"epoch {epoch} evaluation")
            evaluation = (self.evaluate() if (epoch + 1) % cfg.eval_every == 0 or last
                          else {})
            record = epoch_record(epoch, stats, evaluation)
            history.append(record)
            if writer:
                writer.write(record)
            if cfg.checkpoint_dir and (last or (cfg.checkpoint_every and
                                                (epoch + 1) % cfg.checkpoint_every == 0)):
                self.watchdog.beat(f"epoch {epoch} checkpoint")
                self._save(epoch)
            if bar is not None:
                bar.set_postfix(loss=f"{record['loss']:.4f}",
                                val=_fmt(record["val_acc"]), s_ep=f"{record['epoch_s']:.3f}")
                bar.update(1)
        return evaluation

    def close_exchange(self) -> None:
        """Finish the swaps still in flight and stop the communication thread (collective)."""
        if self.stale is not None:
            self.stale.close()
        if self.worker is not None:
            self.worker.close()
            self.worker = self.exchange.worker = self.train_exchange.worker = None

    def _save(self, epoch: int) -> None:
        if self.ctx.rank == 0:
            state = {"epoch": epoch, "model": self.model.state_dict(),
                     "optimizer": self.optimizer.state_dict(),
                     "torch_rng": torch.get_rng_state(), "config": self.cfg.to_dict()}
            checkpoint.save_checkpoint(self.cfg.checkpoint_dir, epoch, state)
        if self.ctx.size > 1:
            self.ctx.comm.Barrier()

    def _resume(self) -> None:
        found = None
        if self.ctx.rank == 0:
            found = checkpoint.newest_checkpoint_bytes(self.cfg.checkpoint_dir)
        data = _broadcast_bytes(self.ctx, found[1] if found else b"")
        if not data:
            if self.ctx.rank == 0:
                print(f"gnnsys: no checkpoint in {self.cfg.checkpoint_dir}; starting fresh",
                      flush=True)
            return
        state = checkpoint.load_bytes(data, self.cfg.checkpoint_dir)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(f"checkpoint in {self.cfg.checkpoint_dir} does not match this model:"
                            f" {str(exc).splitlines()[0]}") from None
        torch.set_rng_state(state["torch_rng"])
        self.start_epoch = int(state["epoch"]) + 1
        if self.ctx.rank == 0:
            print(f"gnnsys: resumed from {found[0].name} (epoch {self.start_epoch})", flush=True)

    def _save_predictions(self, path: str) -> None:
        pred = self.last_pred[: len(self.orig_ids)].cpu().numpy()  # preloaded rows are not ours
        local = np.stack([self.orig_ids, pred]).astype(np.int64)
        if self.ctx.size > 1:
            gathered = self.ctx.comm.gather(local, root=0)
            if self.ctx.rank != 0:
                return
            local = np.concatenate(gathered, axis=1)
        pred = np.full(int(local[0].max()) + 1 if local.size else 0, -1, dtype=np.int64)
        pred[local[0]] = local[1]
        tmp = f"{path}.tmp-{os.getpid()}.npy"
        np.save(tmp, pred)
        os.replace(tmp, path)


def _owned_tensor(array: np.ndarray) -> Tensor:
    """Return ``array`` as a tensor this process owns: memory maps (and read-only arrays) are
    copied, arrays already in private memory (a preload worker's layout) are wrapped as they are."""
    if isinstance(array, np.memmap) or not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array)
    return torch.from_numpy(array)


def _broadcast_bytes(ctx: DistContext, data: bytes) -> bytes:
    if ctx.size == 1:
        return data
    size = np.array([len(data)], dtype=np.int64)
    ctx.comm.Bcast(size, root=0)
    buf = np.frombuffer(data, dtype=np.uint8).copy() if ctx.rank == 0 else \
        np.empty(int(size[0]), dtype=np.uint8)
    ctx.comm.Bcast(buf, root=0)
    return buf.tobytes()


def _build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


def _rss_mb() -> float:
    """Return the resident set size of this process in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _set_threads(cfg: TrainConfig, ctx: DistContext) -> None:
    threads = cfg.threads or max(1, (os.cpu_count() or 1) // max(1, ctx.local_size))
    torch.set_num_threads(threads)


def _progress(cfg: TrainConfig, is_root: bool, start: int):
    if not (is_root and cfg.progress):
        return None
    from tqdm import tqdm

    return tqdm(total=cfg.epochs, initial=start, desc="train", unit="ep", dynamic_ncols=True,
                mininterval=0.5)


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4f}"
