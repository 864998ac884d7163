"""Build the per-part shards from an assignment and write them (layout: ``format.py``).

Streams part by part: only one part's relabelled edges and one chunk of its features are in
memory at a time, besides a few int64 [N] arrays (assignment, node order, local IDs, degrees,
one scratch slot array). Relabelling and halo computation are numba kernels over the global
in-edge CSR; features are gathered in chunks from the (possibly memory-mapped) matrix.
"""
from __future__ import annotations

import mmap
import os
import time
from typing import Iterator

import numpy as np
from numba import njit
from tqdm import tqdm

from gnnsys.graph import Graph
from gnnsys.partition.format import ArrayWriter, part_dir

_FEAT_CHUNK_BYTES = 32 << 20


@njit(cache=True)
def _relabel(indptr, indices, owned, assignment, part, part_server, local_id, order, slot):
    """Halo rows and local in-edge sources of one part.

    ``slot`` is an int64 [N] scratch array that is all -1 on entry and on exit. Returns
    ``(halo, local_indices, cut, server_cut)``: halo global IDs grouped by owner then ascending
    (the order of ``order``, nodes sorted by part then ID), the sources of the owned rows' in-edges
    as local IDs, and how many of those edges come from another part / another server.
    """
    n_own = owned.shape[0]
    n_edges = 0
    for i in range(n_own):
        v = owned[i]
        n_edges += indptr[v + 1] - indptr[v]
        for e in range(indptr[v], indptr[v + 1]):
            if assignment[indices[e]] != part:
                slot[indices[e]] = -2
    n_halo = 0
    for i in range(order.shape[0]):
        if slot[order[i]] == -2:
            n_halo += 1
    halo = np.empty(n_halo, dtype=np.int64)
    j = 0
    for i in range(order.shape[0]):
        u = order[i]
        if slot[u] == -2:
            halo[j] = u
            slot[u] = n_own + j
            j += 1
    local = np.empty(n_edges, dtype=np.int64)
    cut = 0
    server_cut = 0
    pos = 0
    for i in range(n_own):
        v = owned[i]
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            owner = assignment[u]
            if owner == part:
                local[pos] = local_id[u]
            else:
                local[pos] = slot[u]
                cut += 1
                if part_server[owner] != part_server[part]:
                    server_cut += 1
            pos += 1
    for j in range(n_halo):
        slot[halo[j]] = -1
    return halo, local, cut, server_cut


def release_pages(array: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped ``array`` from this process (no-op otherwise).

    Reading a memmap (validation, hashing, gathering rows) leaves its pages mapped and counted
    in the process's RSS; dropping them keeps features out of memory while METIS runs. The data
    stays on disk (and in the page cache) and is read back on the next access.
    """
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if base is not None and hasattr(base, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        base.madvise(mmap.MADV_DONTNEED)


def _row_chunks(array: np.ndarray, rows: np.ndarray) -> Iterator[np.ndarray]:
    """Yield ``array[rows]`` in chunks of about 32 MiB (rows of a memmap are read per chunk)."""
    step = max(1, _FEAT_CHUNK_BYTES // max(1, array.shape[1] * array.itemsize))
    for start in range(0, rows.shape[0], step):
        yield array[rows[start:start + step]]


def _node_order(assignment: np.ndarray, parts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(order, starts, local_id)``: nodes sorted by part then ID, the start of each
    part in ``order`` (int64 [P+1]) and each node's position within its part."""
    order = np.argsort(assignment, kind="stable").astype(np.int64, copy=False)
    counts = np.bincount(assignment, minlength=parts)
    starts = np.zeros(parts + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    local_id = np.empty_like(order)
    local_id[order] = np.arange(order.shape[0], dtype=np.int64) - np.repeat(starts[:-1], counts)
    return order, starts, local_id


def build_shards(graph: Graph, assignment: np.ndarray, parts: int, part_server: np.ndarray,
                 writer: ArrayWriter, progress: bool = True) -> dict:
    """Write ``part-<k>/*`` for every part of ``assignment`` through ``writer``.

    ``part_server``: int64 [P], the server of each part. Returns ``{"parts": [per-part stats:
    owned, in_edges, halo, train, cut_in_edges, cross_server_in_edges], "server_halo": [distinct
    rows each server needs from other servers], "timings": {"relabel_halo": s, "write": s}}``.
    """
    timings = {"relabel_halo": 0.0, "write": 0.0}
    clock = time.perf_counter()
    order, starts, local_id = _node_order(assignment, parts)
    in_deg = np.diff(graph.indptr)
    out_deg = np.bincount(graph.indices, minlength=graph.num_nodes).astype(np.int64)
    slot = np.full(graph.num_nodes, -1, dtype=np.int64)
    part_server = np.asarray(part_server, dtype=np.int64)
    stats = []
    timings["relabel_halo"] += time.perf_counter() - clock
    for part in tqdm(range(parts), desc="shards", disable=None if progress else True,
                     leave=False):
        clock = time.perf_counter()
        owned = order[starts[part]:starts[part + 1]]
        halo, local, cut, server_cut = _relabel(graph.indptr, graph.indices, owned, assignment,
                                                part, part_server, local_id, order, slot)
        halo_offsets = np.zeros(parts + 1, dtype=np.int64)
        np.cumsum(np.bincount(assignment[halo], minlength=parts), out=halo_offsets[1:])
        indptr = np.zeros(owned.shape[0] + 1, dtype=np.int64)
        np.cumsum(in_deg[owned], out=indptr[1:])
        rows = np.concatenate([owned, halo])
        stats.append({"owned": int(owned.shape[0]), "in_edges": int(local.shape[0]),
                      "halo": int(halo.shape[0]), "train": int(graph.train_mask[owned].sum()),
                      "cut_in_edges": int(cut), "cross_server_in_edges": int(server_cut)})
        timings["relabel_halo"] += time.perf_counter() - clock
        clock = time.perf_counter()
        prefix = part_dir(part) + "/"
        for name, array in (("owned", owned), ("halo", halo), ("halo_offsets", halo_offsets),
                            ("indptr", indptr), ("indices", local),
                            ("label", graph.label[owned]),
                            ("train_mask", graph.train_mask[owned]),
                            ("val_mask", graph.val_mask[owned]),
                            ("test_mask", graph.test_mask[owned]),
                            ("orig_ids", graph.orig_ids[owned]),
                            ("in_deg", in_deg[rows]), ("out_deg", out_deg[rows])):
            writer.save(prefix + name + ".npy", array)
        writer.save_chunks(prefix + "feat.npy", (owned.shape[0], graph.num_features),
                           np.float32, _row_chunks(graph.feat, owned))
        release_pages(graph.feat)
        del halo, local, rows
        timings["write"] += time.perf_counter() - clock
    clock = time.perf_counter()
    server_halo = _write_send_lists(writer, parts, part_server, local_id)
    timings["write"] += time.perf_counter() - clock
    return {"parts": stats, "server_halo": server_halo, "timings": timings}


def _write_send_lists(writer: ArrayWriter, parts: int, part_server: np.ndarray,
                      local_id: np.ndarray) -> list[int]:
    """Write ``send_index``/``send_offsets`` of every part from the halos already written.

    The send list k -> p is p's halo slice for owner k mapped to k's local IDs (same order).
    Returns, per server, the number of distinct rows its parts need from other servers.
    """
    def read(part, name):
        return np.load(os.path.join(writer.root, part_dir(part), name + ".npy"), mmap_mode="r")

    halos = [(read(p, "halo"), read(p, "halo_offsets")) for p in range(parts)]
    for part in range(parts):
        slices = [halo[offsets[part]:offsets[part + 1]] for halo, offsets in halos]
        send_offsets = np.zeros(parts + 1, dtype=np.int64)
        np.cumsum([s.shape[0] for s in slices], out=send_offsets[1:])
        send_index = local_id[np.concatenate(slices)]
        writer.save(part_dir(part) + "/send_index.npy", send_index)
        writer.save(part_dir(part) + "/send_offsets.npy", send_offsets)
    server_halo = []
    for server in range(int(part_server.max()) + 1):
        remote = [halo[offsets[p]:offsets[p + 1]]
                  for halo, offsets in (halos[q] for q in np.flatnonzero(part_server == server))
                  for p in np.flatnonzero(part_server != server)]
        server_halo.append(int(np.unique(np.concatenate(remote)).shape[0]) if remote else 0)
    return server_halo
