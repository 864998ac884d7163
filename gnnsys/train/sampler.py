"""Neighbour sampling on a shard's in-edge CSR: the sampled blocks of one minibatch step.

**What is sampled.** For layer ``l`` of step ``step`` of epoch ``epoch``, destination ``v`` keeps
``min(f_l, deg(v))`` of its in-neighbours, drawn uniformly without replacement (Floyd's
algorithm), or all of them when ``f_l = -1``. The draws are a counter-based hash (splitmix64,
the one of :mod:`gnnsys.comm.codec_kernels`) of ``key(seed, epoch, step, layer)`` and the GLOBAL
ID of ``v``, and the kept neighbours stay in the row's order (ascending global ID), so the
sample of a node does not depend on which rank owns it or how many ranks there are: a batch
sampled cooperatively by the workers of a server equals the same batch sampled in one process.

**Cooperative layout.** Layers are sampled from the top (the seeds) down. Every worker computes
the rows it owns: the destinations of layer ``l`` are ``rows[l + 1]`` (owned local rows); the
sources are ``src_rows[l] = rows[l + 1]`` followed by the other sampled sources ascending by
local ID (owned first, then halo rows grouped by owner). The halo sources must come from their
owners, who add them to their own ``rows[l]`` (``request`` callback, one all-to-all of global
IDs per layer, collective). So ``rows[l] = src_rows[l][:num_owned_src[l]]`` followed by the rows
peers requested, and the input of layer ``l`` is ``cat(h_l[:num_owned_src[l]], halo rows)`` where
``h_l`` holds one row per ``rows[l]`` (``rows[0]``: the input feature rows).

**Degrees (normalisation rule).** A sampled block carries the GLOBAL in/out degrees of its
source rows (from the shard). GCN weights an edge ``j -> i`` by ``(deg_i / k_i) /
sqrt((deg_i + 1)(deg_j + 1))`` with global degrees and ``k_i`` the sampled in-neighbours of
``i`` (:meth:`~gnnsys.nn.block.Block.gcn_norm_weights`): the sampled sum is an unbiased estimate
of the full-graph one, so minibatch training sees the scale of full-graph inference (exact with
fanout -1). Without the factor, fanout 10 on an average degree of 20 cost 6.5 pp of test
accuracy on ``synthetic:200000``. The estimate is unbiased but noisy; for a GCN input layer
the trainer removes that noise with a control variate (the exact feature aggregate, see
:meth:`~gnnsys.nn.gcn.GCNConv.forward`): the sampled edges then carry only the dropout
noise. Mean aggregation (GraphSAGE) divides by ``k_i`` (the block's
row length); GAT's edge softmax and GIN's sum run over the sampled edges (as in PyG and DGL).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numba
import numpy as np
import torch
from numba import njit, prange

from gnnsys.hashing import GAMMA, chain_key, splitmix64_nb
from gnnsys.errors import UserError
from gnnsys.nn.block import Block

#: ``request(halo_gids_by_owner) -> gids_requested_from_me_by_peer``: one all-to-all of global
#: IDs (lists of int64 arrays, one per part); not needed in one process (no halo rows).
Request = Callable[[list], list]

_GAMMA = np.uint64(GAMMA)


def parse_fanouts(text: str, layers: int) -> list[int]:
    """Parse ``--fanouts`` (``"10,25"``, ``"-1"``): one int per layer, ``-1`` = all neighbours.

    A single value applies to every layer. Raises :class:`UserError` naming the bad value, or
    when the list length is neither 1 nor ``layers``.
    """
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise UserError(f"--fanouts {text!r}: expected comma-separated integers, e.g. 10,25 "
                        "(-1 = all neighbours)") from None
    bad = [v for v in values if v == 0 or v < -1]
    if bad:
        raise UserError(f"--fanouts {text!r}: fanout {bad[0]} must be a positive integer or -1")
    if len(values) == 1:
        values = values * layers
    if len(values) != layers:
        raise UserError(f"--fanouts {text!r} has {len(values)} values but --layers is {layers}")
    return values


def sample_key(seed: int, epoch: int, step: int, layer: int) -> int:
    """The hash key (uint64 as int) of the draws of ``(seed, epoch, step, layer)``."""
    return chain_key(seed, epoch, step, layer)


@njit(cache=True)
def _hash_ids(ids, key, out):  # pragma: no cover - compiled
    for i in range(ids.shape[0]):
        out[i] = splitmix64_nb((np.uint64(ids[i]) * _GAMMA) ^ key)


def hash_ids(ids: np.ndarray, key: int) -> np.ndarray:
    """Return ``uint64 [n]``: ``splitmix64(id * GAMMA ^ key)`` of every (global) id."""
    out = np.empty(len(ids), dtype=np.uint64)
    _hash_ids(np.ascontiguousarray(ids, dtype=np.int64), np.uint64(key), out)
    return out


@njit(cache=True, parallel=True)
def _sample_rows(indptr, indices, dst_rows, dst_gids, fanout, key, out_indptr,
                 out_src):  # pragma: no cover - compiled
    for i in prange(dst_rows.shape[0]):
        start = indptr[dst_rows[i]]
        deg = indptr[dst_rows[i] + 1] - start
        o = out_indptr[i]
        k = out_indptr[i + 1] - o
        if k == deg:
            for t in range(k):
                out_src[o + t] = indices[start + t]
            continue
        # Floyd: for j = deg-k .. deg-1 draw r in [0, j]; take r unless taken, else j.
        # ``chosen`` (= out_src[o:o+k]) is kept sorted, so membership is a binary search.
        node_key = splitmix64_nb((np.uint64(dst_gids[i]) * _GAMMA) ^ key)
        for t in range(k):
            j = deg - k + t
            r = np.int64(splitmix64_nb(node_key + np.uint64(t + 1) * _GAMMA) % np.uint64(j + 1))
            lo, hi = 0, t
            while lo < hi:
                mid = (lo + hi) // 2
                if out_src[o + mid] < r:
                    lo = mid + 1
                else:
                    hi = mid
            if lo < t and out_src[o + lo] == r:
                r, lo = j, t  # j exceeds every earlier pick: append at the end
            for q in range(t, lo, -1):
                out_src[o + q] = out_src[o + q - 1]
            out_src[o + lo] = r
        for t in range(k):
            out_src[o + t] = indices[start + out_src[o + t]]


# Below this many destinations a serial kernel avoids the cost of waking the thread pool.
_PARALLEL_MIN_ROWS = 4096
_sample_rows_serial = njit(cache=True)(_sample_rows.py_func)


@njit(cache=True)
def _relabel(dst_rows, sampled, scratch, num_own):  # pragma: no cover - compiled
    """Source rows (dst rows, then new sources ascending) and sampled ids as source positions."""
    n_dst = dst_rows.shape[0]
    for i in range(n_dst):
        scratch[dst_rows[i]] = i
    new = np.empty(sampled.shape[0], dtype=np.int64)
    n_new = 0
    for e in range(sampled.shape[0]):
        u = sampled[e]
        if scratch[u] == -1:
            scratch[u] = -2
            new[n_new] = u
            n_new += 1
    new = np.sort(new[:n_new])
    src_rows = np.empty(n_dst + n_new, dtype=np.int64)
    src_rows[:n_dst] = dst_rows
    num_owned_src = n_dst
    for i in range(n_new):
        src_rows[n_dst + i] = new[i]
        scratch[new[i]] = n_dst + i
        if new[i] < num_own:
            num_owned_src += 1
    local = np.empty(sampled.shape[0], dtype=np.int64)
    for e in range(sampled.shape[0]):
        local[e] = scratch[sampled[e]]
    for i in range(src_rows.shape[0]):
        scratch[src_rows[i]] = -1
    return src_rows, local, num_owned_src


@dataclass
class LocalGraph:
    """The part of the graph one worker samples from (a shard, or a whole graph when P = 1).

    Attributes:
        indptr: ``int64 [n_own + 1]`` in-edge CSR of the owned rows.
        indices: ``int64 [E]`` local source rows (owned ``0 .. n_own-1``, then halo rows),
            each row ascending by global ID.
        global_ids: ``int64 [n_own + n_halo]`` global ID of every local row (owned rows, then
            halo grouped by owner part, ascending within an owner).
        num_own: number of owned rows.
        halo_offsets: ``int64 [P + 1]``: halo rows of part p are ``num_own + halo_offsets[p] :
            num_own + halo_offsets[p + 1]``.
        in_deg, out_deg: ``int64 [n_own + n_halo]`` GLOBAL degrees of every local row.
    """

    indptr: np.ndarray
    indices: np.ndarray
    global_ids: np.ndarray
    num_own: int
    halo_offsets: np.ndarray
    in_deg: np.ndarray
    out_deg: np.ndarray
    _owned_order: Optional[np.ndarray] = field(default=None, init=False, repr=False)

    @classmethod
    def from_shard(cls, shard) -> "LocalGraph":
        """Return the local graph of a :class:`gnnsys.partition.format.Shard` (arrays read once)."""
        arr = lambda a: np.array(a, dtype=np.int64)  # noqa: E731 - copies the memmap
        return cls(arr(shard.indptr), arr(shard.indices),
                   np.concatenate([arr(shard.owned), arr(shard.halo)]), shard.num_owned,
                   arr(shard.halo_offsets), arr(shard.in_deg), arr(shard.out_deg))

    @classmethod
    def from_csr(cls, indptr: np.ndarray, indices: np.ndarray) -> "LocalGraph":
        """Return the one-part local graph of a whole graph's in-edge CSR (global = local IDs)."""
        indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        n = len(indptr) - 1
        return cls(indptr, indices, np.arange(n, dtype=np.int64), n, np.zeros(2, np.int64),
                   np.diff(indptr), np.bincount(indices, minlength=n).astype(np.int64))

    @property
    def num_parts(self) -> int:
        """Number of parts P of the partition."""
        return len(self.halo_offsets) - 1

    def owner_of_halo(self, rows: np.ndarray) -> np.ndarray:
        """Return the owner part of every halo local row in ``rows``."""
        return np.searchsorted(self.halo_offsets, rows - self.num_own, side="right") - 1

    def local_of_owned(self, gids: np.ndarray) -> np.ndarray:
        """Return the owned local rows of global IDs ``gids`` (all must be owned here).

        Owned rows need not be ascending (a preload worker's own nodes are followed by its
        preloaded rows): the lookup goes through a sorted order built once.
        """
        if self._owned_order is None:
            self._owned_order = np.argsort(self.global_ids[: self.num_own], kind="stable")
        order = self._owned_order
        at = np.searchsorted(self.global_ids[order], gids)
        if len(gids) and (at.max() >= self.num_own or
                          np.any(self.global_ids[order[at.clip(0, self.num_own - 1)]] != gids)):
            raise ValueError("local_of_owned: some global IDs are not owned by this part")
        return order[at] if len(gids) else at


@dataclass
class SampledBatch:
    """The sampled blocks of one step on one worker; index ``l`` = layer ``l`` (input first).

    Attributes:
        rows: ``L + 1`` arrays of owned local rows: ``rows[0]`` the input feature rows,
            ``rows[l + 1]`` the destinations of layer ``l`` (``rows[L]`` = the seeds).
        src_rows: ``L`` arrays: local source rows of layer ``l`` (owned prefix, then halo).
        num_owned_src: ``L`` ints: ``src_rows[l][:num_owned_src[l]] == rows[l][:num_owned_src[l]]``.
        blocks: ``L`` :class:`Block` (``num_dst = len(rows[l + 1])``, ``num_src =
            len(src_rows[l])``, global degrees of the source rows).
        send: ``L`` lists (one per part) of positions in ``rows[l]`` to send to that part (in
            the order of its halo rows), the rows peers need at layer ``l``.
        recv_counts: ``L`` int64 ``[P]``: halo rows of ``src_rows[l]`` received from each part.
    """

    rows: list
    src_rows: list
    num_owned_src: list
    blocks: list
    send: list
    recv_counts: list

    @property
    def seeds(self) -> np.ndarray:
        """The seed (output) rows of the step."""
        return self.rows[-1]

    @property
    def num_edges(self) -> int:
        """Sampled edges over all layers."""
        return sum(b.num_edges for b in self.blocks)


class NeighborSampler:
    """Samples the blocks of a step on one worker's :class:`LocalGraph`.

    Args:
        graph: the worker's local graph.
        fanouts: per layer (input layer first), ``-1`` = all in-neighbours.
        seed: the sampling seed (part of every hash key).
    """

    def __init__(self, graph: LocalGraph, fanouts: Sequence[int], seed: int = 0) -> None:
        self.graph = graph
        self.fanouts = [int(f) for f in fanouts]
        self.seed = seed
        self._scratch = np.full(len(graph.global_ids), -1, dtype=np.int64)

    def sample_layer(self, dst_rows: np.ndarray, layer: int, epoch: int = 0,
                     step: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Sample the in-neighbours of ``dst_rows`` (owned local rows, unique) for ``layer``.

        Returns ``(indptr [n_dst + 1], src_rows, indices, num_owned_src)``: CSR over
        ``dst_rows`` whose ``indices`` are positions in ``src_rows`` (``src_rows = dst_rows``
        followed by the other sampled local rows ascending, so owned rows form a prefix of
        length ``num_owned_src``); within a row the sources keep the CSR's order.
        """
        g = self.graph
        dst_rows = np.ascontiguousarray(dst_rows, dtype=np.int64)
        deg = g.indptr[dst_rows + 1] - g.indptr[dst_rows]
        fanout = self.fanouts[layer]
        counts = deg if fanout < 0 else np.minimum(deg, fanout)
        indptr = np.zeros(len(dst_rows) + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        sampled = np.empty(int(indptr[-1]), dtype=np.int64)
        key = np.uint64(sample_key(self.seed, epoch, step, layer))
        kernel = _sample_rows_serial
        if len(dst_rows) >= _PARALLEL_MIN_ROWS:
            numba.set_num_threads(max(1, min(torch.get_num_threads(),
                                             numba.config.NUMBA_NUM_THREADS)))
            kernel = _sample_rows
        kernel(g.indptr, g.indices, dst_rows, g.global_ids[dst_rows],
                     np.int64(max(fanout, 0)), key, indptr, sampled)
        src_rows, local, num_owned_src = _relabel(dst_rows, sampled, self._scratch, g.num_own)
        return indptr, src_rows, local, int(num_owned_src)

    def sample(self, seeds: np.ndarray, epoch: int = 0, step: int = 0,
               request: Optional[Request] = None) -> SampledBatch:
        """Sample every layer of a step from the seed rows (owned local rows) down.

        ``request`` is called once per layer (top layer first) with the global IDs of the
        needed halo rows grouped by owner part and must return, per part, the global IDs that
        part needs from this worker (an all-to-all; every worker of the job calls it in the same
        order, also with no seeds). It may be None when the graph has no halo rows.
        """
        g = self.graph
        parts = g.num_parts
        rows = [np.unique(np.asarray(seeds, dtype=np.int64))]
        src_rows, num_owned_src, blocks, send, recv_counts = [], [], [], [], []
        for layer in reversed(range(len(self.fanouts))):
            indptr, src, local, n_own_src = self.sample_layer(rows[0], layer, epoch, step)
            halo = src[n_own_src:]
            owner = g.owner_of_halo(halo)
            counts = np.bincount(owner, minlength=parts).astype(np.int64)
            needed = np.split(g.global_ids[halo], np.cumsum(counts)[:-1])
            if request is None and len(halo):
                raise ValueError("NeighborSampler.sample: halo rows sampled but no request")
            wanted = request(needed) if request is not None else [halo[:0]] * parts
            below, positions = _rows_below(src[:n_own_src], [g.local_of_owned(
                np.asarray(w, dtype=np.int64)) for w in wanted])
            blocks.insert(0, Block(torch.from_numpy(indptr), torch.from_numpy(local), len(src),
                                   torch.from_numpy(g.in_deg[src]),
                                   torch.from_numpy(g.out_deg[src])))
            rows.insert(0, below)
            src_rows.insert(0, src)
            num_owned_src.insert(0, n_own_src)
            send.insert(0, positions)
            recv_counts.insert(0, counts)
        return SampledBatch(rows, src_rows, num_owned_src, blocks, send, recv_counts)


def _rows_below(owned_src: np.ndarray, wanted: list) -> tuple[np.ndarray, list]:
    """``rows[l]``: the owned sources then the rows peers want (new ones ascending), and the
    positions in it of every peer's wanted rows (in the peer's order)."""
    requested = np.concatenate(wanted) if wanted else owned_src[:0]
    extra = np.setdiff1d(requested, owned_src) if len(requested) else owned_src[:0]
    below = np.concatenate([owned_src, extra])
    order = np.argsort(below, kind="stable")
    positions = [order[np.searchsorted(below[order], w)] for w in wanted]
    return below, positions
