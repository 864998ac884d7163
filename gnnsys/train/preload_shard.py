"""A preload worker's local graph (``--mode preload``): no halo row ever comes from another server.

Server s holds its own nodes (split among its workers by the partition) and its preload: the
external nodes within L hops (:mod:`gnnsys.partition.preload`). The preload rows are split among
the workers of s hop by hop (worker i of W takes the i-th contiguous W-th of every hop's rows,
:func:`preload_owners`), so every row of the server's closure has exactly one owner worker and
every layer's work is balanced. A worker's local rows are then

* its "extended owned" rows: the nodes its part owns (hop 0; the only rows with labels, loss and
  accuracy), followed by its share of the preloaded rows, in hop order;
* its halo rows: the sources of its edges that another worker of the SAME server owns, grouped
  by owner part, ascending global ID within an owner.

Edges: an owned node keeps its in-edges from server-owned sources (the shard's CSR) plus the
server's kept cross-server in-edges into it (``boundary_dst/src``: all of them with
``--ext-fanout -1``, a uniform sample of f per node otherwise); a preloaded row has the in-edges
stored in the preload (empty at the last hop). Degrees are GLOBAL, as everywhere.

A row at hop h is read only by layers up to L - h (its consumers are one hop closer), so layer
l (0-based, of L) computes just the local rows at hop <= L - 1 - l: a prefix of the extended
owned rows, as they are in hop order (:func:`layer_row_counts`); the last layer computes the
part's own rows only. With ``--ext-fanout -1`` and preload hops >= L the owned rows' outputs
(and hence loss and weight gradients) equal single-process training. The rows a layer exchanges
travel only between the workers of a server: across servers only weight gradients move.

The result quacks like :class:`gnnsys.partition.format.Shard` (the attributes the trainer and
the sampler read), so full-graph, minibatch, quantized and stale training run on it unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from gnnsys.errors import UserError
from gnnsys.partition.format import LocalRows
from gnnsys.partition.preload import Preload

#: ``request(arrays_by_part) -> arrays_from_each_part``: an all-to-all of int64 arrays over
#: every rank (:func:`gnnsys.comm.requests.alltoall_arrays`); collective.
Request = Callable[[list], list]


@dataclass
class PreloadShard(LocalRows):
    """The local rows and exchange layout of one preload worker (see the module docstring).

    ``owned`` are the global IDs of the extended owned rows (the part's nodes, then its preload
    share) and ``hop`` their hop distance (0 for the part's nodes, ascending); ``feat`` covers
    them; labels, masks and ``orig_ids`` cover only the part's own nodes (the first
    ``num_part_owned`` rows); ``preload_rows`` are the rows of the server's preload it holds.
    Halo rows all come from workers of this server.
    """

    folder: str = ""
    part: int = 0
    num_part_owned: int = 0
    preload_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hop: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def preload_owners(hop: np.ndarray, workers: int) -> np.ndarray:
    """Return ``int64 [n]``: the worker (0 .. workers-1) of every preload row.

    ``hop`` is the rows' hop distance, ascending; worker i takes rows ``g + i*n_h//W :
    g + (i+1)*n_h//W`` of every hop group (start g, n_h rows).
    """
    hop = np.asarray(hop)
    starts = np.searchsorted(hop, hop, side="left")
    sizes = np.searchsorted(hop, hop, side="right") - starts
    rank_in_hop = np.arange(len(hop), dtype=np.int64) - starts
    return (rank_in_hop * workers) // np.maximum(sizes, 1)


def layer_row_counts(hop: np.ndarray, layers: int) -> list[int]:
    """Return, per layer l, how many leading rows it computes: those at hop <= layers - 1 - l.

    ``hop`` is ascending (the extended owned rows of a :class:`PreloadShard`).
    """
    return [int(np.searchsorted(hop, layers - 1 - layer, side="right"))
            for layer in range(layers)]


def build_preload_shard(shard, pre: Preload, assignment: np.ndarray,
                        request: Request) -> PreloadShard:
    """Return the :class:`PreloadShard` of ``shard``'s part (collective: calls ``request`` twice).

    Args:
        shard: the part's :class:`~gnnsys.partition.format.Shard`.
        pre: the preload of the part's server.
        assignment: ``int64 [N]`` part of every global node (``assignment.npy``).
        request: see :data:`Request`.
    """
    part_server = np.asarray(shard.part_server, dtype=np.int64)
    server = int(part_server[shard.part])
    server_parts = np.flatnonzero(part_server == server)
    row_worker = preload_owners(pre.hop, len(server_parts))
    mine = np.flatnonzero(row_worker == np.searchsorted(server_parts, shard.part))
    pre_nodes = np.asarray(pre.nodes)

    own_dst, own_src = _owned_in_edges(shard, pre, assignment, part_server, server)
    n_own = shard.num_owned
    pre_indptr, pre_src = _gather_rows(np.asarray(pre.indptr), pre.indices, mine)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(own_dst, minlength=n_own)),
                             len(own_src) + pre_indptr[1:]])
    src_gids = np.concatenate([own_src, pre_src])
    ext_gids = np.concatenate([np.asarray(shard.owned), pre_nodes[mine]])

    halo, owners = _halo_rows(src_gids, ext_gids, assignment, part_server, server,
                              _PreloadOwner(pre_nodes, server_parts[row_worker]))
    if np.any(owners == shard.part):
        raise UserError(f"{shard.folder}: part {shard.part}'s preload lists its own nodes "
                        "as external; partition again")
    halo_offsets = np.concatenate([[0], np.cumsum(np.bincount(owners, minlength=shard.parts))])
    indices = _lookup(np.concatenate([ext_gids, halo]), src_gids)

    wanted = request(np.split(halo, halo_offsets[1:-1]))
    send_index = _lookup(ext_gids, np.concatenate(wanted) if wanted else halo[:0])
    send_offsets = np.concatenate([[0], np.cumsum([len(w) for w in wanted])])
    in_ext = np.concatenate([np.asarray(shard.in_deg[:n_own]), np.asarray(pre.in_deg)[mine]])
    out_ext = np.concatenate([np.asarray(shard.out_deg[:n_own]), np.asarray(pre.out_deg)[mine]])
    sent = [np.stack([in_ext[rows], out_ext[rows]], 1).reshape(-1)
            for rows in np.split(send_index, send_offsets[1:-1])]
    halo_deg = np.concatenate(request(sent)).reshape(-1, 2)

    return PreloadShard(
        folder=shard.folder, part=shard.part, owned=ext_gids, halo=halo,
        halo_offsets=halo_offsets, indptr=indptr.astype(np.int64), indices=indices,
        send_index=send_index, send_offsets=send_offsets.astype(np.int64),
        feat=np.concatenate([np.asarray(shard.feat), pre.feat[mine]]),
        label=shard.label, train_mask=shard.train_mask, val_mask=shard.val_mask,
        test_mask=shard.test_mask, orig_ids=shard.orig_ids,
        in_deg=np.concatenate([in_ext, halo_deg[:, 0]]),
        out_deg=np.concatenate([out_ext, halo_deg[:, 1]]), num_part_owned=n_own,
        preload_rows=mine,
        hop=np.concatenate([np.zeros(n_own, np.int64), np.asarray(pre.hop)[mine]]))


def _owned_in_edges(shard, pre: Preload, assignment: np.ndarray, part_server: np.ndarray,
                    server: int) -> tuple[np.ndarray, np.ndarray]:
    """In-edges of the part's own rows, sorted by (dst row, src global ID): the shard's edges
    from server-owned sources plus the kept cross-server (boundary) edges into the part."""
    n_own = shard.num_owned
    indptr, indices = np.asarray(shard.indptr), np.asarray(shard.indices)
    local_gids = np.concatenate([np.asarray(shard.owned), np.asarray(shard.halo)])
    halo_owner = np.repeat(np.arange(shard.parts), np.diff(np.asarray(shard.halo_offsets)))
    row_server = np.concatenate([np.full(n_own, server), part_server[halo_owner]])
    dst = np.repeat(np.arange(n_own, dtype=np.int64), np.diff(indptr))
    keep = row_server[indices] == server
    b_dst, b_src = np.asarray(pre.boundary_dst), np.asarray(pre.boundary_src)
    into_part = assignment[b_dst] == shard.part
    dst = np.concatenate([dst[keep], np.searchsorted(np.asarray(shard.owned), b_dst[into_part])])
    src = np.concatenate([local_gids[indices[keep]], b_src[into_part]])
    order = np.lexsort((src, dst))
    return dst[order], src[order]


def _gather_rows(indptr: np.ndarray, indices: np.ndarray,
                 rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the CSR ``(indptr, indices)`` of the given rows (in that order) of a CSR."""
    counts = indptr[rows + 1] - indptr[rows]
    out_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    take = np.repeat(indptr[rows] - out_indptr[:-1], counts) + np.arange(out_indptr[-1])
    return out_indptr, np.asarray(indices[take] if len(take) else indices[:0], dtype=np.int64)


class _PreloadOwner:
    """Maps preloaded global IDs to the server part (worker) that holds their row."""

    def __init__(self, nodes: np.ndarray, part_of_row: np.ndarray):
        self.order = np.argsort(nodes, kind="stable")
        self.sorted = nodes[self.order]
        self.part_of_row = part_of_row

    def __call__(self, gids: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.sorted, gids).clip(0, max(0, len(self.sorted) - 1))
        if len(gids) and (len(self.sorted) == 0 or np.any(self.sorted[at] != gids)):
            raise UserError("an edge of the preload reaches a node outside the server's "
                            "closure; the partition is inconsistent, partition again")
        return self.part_of_row[self.order[at]]


def _halo_rows(src_gids: np.ndarray, ext_gids: np.ndarray, assignment: np.ndarray,
               part_server: np.ndarray, server: int,
               preload_owner: _PreloadOwner) -> tuple[np.ndarray, np.ndarray]:
    """Return the halo global IDs (grouped by owner part, ascending within) and their owners."""
    sources = np.unique(src_gids)
    halo = np.setdiff1d(sources, ext_gids, assume_unique=True)
    owners = np.asarray(assignment[halo], dtype=np.int64)
    external = part_server[owners] != server
    owners[external] = preload_owner(halo[external])
    order = np.lexsort((halo, owners))
    return halo[order], owners[order]


def _lookup(keys: np.ndarray, gids: np.ndarray) -> np.ndarray:
    """Return the position in ``keys`` (unique global IDs) of every ID in ``gids`` (all present)."""
    order = np.argsort(keys, kind="stable")
    at = np.searchsorted(keys[order], gids).clip(0, max(0, len(keys) - 1))
    if len(gids) and (len(keys) == 0 or np.any(keys[order][at] != gids)):
        raise UserError("preload layout: a requested row is not held by this worker; the "
                        "partition is inconsistent, partition again")
    return order[at].astype(np.int64)
