"""Server-wise preload (GraNNDis): each server's external dependencies within L hops.

For server s, the closure starts from the nodes s owns (hop 0) and grows over in-edges, hop by
hop: hop h+1 holds the in-neighbours of hop-h nodes that another server owns and that are not
in the closure yet. With ``ext_fanout`` f >= 0 (expansion-aware sampling) every node keeps at
most f of its external in-neighbours, drawn uniformly without replacement from a counter-based
hash of (seed, hop, node), and only those expand further; f = -1 keeps them all (the exact
L-hop closure). In-neighbours owned by the server are always kept (they cost no preload).

On disk, ``server-<s>/`` (n preloaded rows, sorted by hop then global ID; every array .npy):

* ``nodes.npy`` int64 [n]: global IDs; ``hop.npy`` int64 [n]: hop distance, 1 .. L.
* ``indptr.npy`` int64 [n+1], ``indices.npy`` int64 [E]: in-edges of the preloaded rows, sources
  as GLOBAL IDs (owned by the server or preloaded), ascending per row; rows at hop L are empty
  (nothing computes them). With f >= 0 only the kept (sampled) external sources appear.
* ``boundary_dst.npy``, ``boundary_src.npy`` int64 [B]: the kept cross-server in-edges of the
  server's own nodes (sorted by dst, then src); with f = -1 all of them.
* ``feat.npy`` float32 [n, F]; ``in_deg.npy``, ``out_deg.npy`` int64 [n]: GLOBAL degrees.

The closure is computed by numba kernels over the global in-edge CSR (never copied); features
are gathered per server in chunks from the (possibly memory-mapped) feature matrix.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from numba import njit
from tqdm import tqdm

from gnnsys.errors import UserError
from gnnsys.graph import Graph
from gnnsys.partition.format import (ArrayWriter, PartitionError, load_listed_arrays,
                                     load_manifest)
from gnnsys.partition.shard import _row_chunks, release_pages

#: the arrays of ``server-<s>/`` (all int64 except ``feat``, float32).
PRELOAD_ARRAYS = ("nodes", "hop", "indptr", "indices", "boundary_dst", "boundary_src",
                  "feat", "in_deg", "out_deg")


def server_dir(server: int) -> str:
    """Return the folder name of server ``server``'s preload (``server-<s>``)."""
    return f"server-{server}"


def check_preload_options(hops: int, ext_fanout: int) -> None:
    """Raise :class:`UserError` unless ``hops`` >= 0 and ``ext_fanout`` >= -1."""
    if isinstance(hops, bool) or not isinstance(hops, (int, np.integer)) or hops < 0:
        raise UserError(f"--preload-hops must be an integer >= 0, got {hops!r}")
    if isinstance(ext_fanout, bool) or not isinstance(ext_fanout, (int, np.integer)) \
            or ext_fanout < -1:
        raise UserError(f"--ext-fanout must be an integer >= -1 (-1 = all), got {ext_fanout!r}")


@njit(cache=True)
def _mix(x):
    """splitmix64 finaliser on int64 (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def _expand(indptr, indices, node_server, server, frontier, hop_of, hop, fanout, seed, buf,
            with_owned):
    """Expand ``frontier`` (nodes at hop ``hop``) by one hop over in-edges.

    Per frontier node: every in-neighbour the server owns (if ``with_owned``), plus its
    external in-neighbours (all when ``fanout`` < 0, else at most ``fanout`` drawn uniformly
    without replacement, seeded by (seed, hop, node)). External sources not yet in the
    closure (``hop_of`` == -1) get ``hop_of = hop + 1``. ``buf``: int64 scratch, at least the
    max in-degree long. Returns ``(counts, sources, external, new)``: kept sources per
    frontier node, the kept sources (ascending per node), whether each kept source is
    external, the new nodes (unsorted).
    """
    n = frontier.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    for i in range(n):
        v = frontier[i]
        ext = 0
        for e in range(indptr[v], indptr[v + 1]):
            if node_server[indices[e]] == server:
                counts[i] += with_owned
            else:
                ext += 1
        counts[i] += ext if fanout < 0 or ext <= fanout else fanout
    sources = np.empty(counts.sum(), dtype=np.int64)
    external = np.zeros(sources.shape[0], dtype=np.bool_)
    new = np.empty(sources.shape[0], dtype=np.int64)
    n_new = 0
    pos = 0
    for i in range(n):
        v = frontier[i]
        ext = 0
        for e in range(indptr[v], indptr[v + 1]):
            if node_server[indices[e]] != server:
                buf[ext] = indices[e]
                ext += 1
        keep = ext
        if fanout >= 0 and ext > fanout:
            keep = fanout
            state = _mix(np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(hop)
                         * np.uint64(0xD1B54A32D192ED03) + np.uint64(v))
            for j in range(keep):  # partial Fisher-Yates: buf[:keep] is a uniform sample
                state = _mix(state + np.uint64(0x9E3779B97F4A7C15))
                r = j + np.int64(state % np.uint64(ext - j))
                buf[j], buf[r] = buf[r], buf[j]
            buf[:keep].sort()
        start = pos
        j = 0
        for e in range(indptr[v], indptr[v + 1]):  # merge owned sources with the kept external
            u = indices[e]
            if with_owned and node_server[u] == server:
                while j < keep and buf[j] < u:
                    sources[pos] = buf[j]
                    external[pos] = True
                    pos += 1
                    j += 1
                sources[pos] = u
                pos += 1
        while j < keep:
            sources[pos] = buf[j]
            external[pos] = True
            pos += 1
            j += 1
        for k in range(start, pos):
            u = sources[k]
            if external[k] and hop_of[u] == -1:
                hop_of[u] = hop + 1
                new[n_new] = u
                n_new += 1
    return counts, sources, external, new[:n_new]


def server_closure(graph: Graph, node_server: np.ndarray, server: int, hops: int,
                   ext_fanout: int = -1, seed: int = 0) -> dict:
    """Compute server ``server``'s preload (see the module docstring) without its features.

    ``node_server``: int64 [N], the server owning every node. Returns ``{"nodes", "hop",
    "indptr", "indices", "boundary_dst", "boundary_src"}`` (int64 arrays, layout as on disk).
    """
    n = graph.num_nodes
    hop_of = np.full(n, -1, dtype=np.int64)
    frontier = np.flatnonzero(node_server == server).astype(np.int64)
    hop_of[frontier] = 0
    in_deg = np.diff(graph.indptr)
    buf = np.empty(int(in_deg.max()) if n else 0, dtype=np.int64)
    levels, row_counts, row_sources = [], [], []
    boundary = (np.empty(0, np.int64), np.empty(0, np.int64))
    for hop in range(hops):
        counts, sources, external, new = _expand(graph.indptr, graph.indices, node_server,
                                                 server, frontier, hop_of, hop, ext_fanout,
                                                 seed, buf, hop > 0)
        if hop == 0:
            boundary = (np.repeat(frontier, counts), sources)
        else:
            row_counts.append(counts)
            row_sources.append(sources)
        frontier = np.sort(new)
        levels.append(frontier)
    nodes = np.concatenate(levels) if levels else np.empty(0, np.int64)
    hop = np.repeat(np.arange(1, len(levels) + 1, dtype=np.int64),
                    [level.shape[0] for level in levels])
    counts = np.zeros(nodes.shape[0], dtype=np.int64)  # rows at hop L stay empty
    filled = sum(c.shape[0] for c in row_counts)
    if filled:
        counts[:filled] = np.concatenate(row_counts)
    indptr = np.zeros(nodes.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(row_sources) if row_sources else np.empty(0, np.int64)
    return {"nodes": nodes, "hop": hop, "indptr": indptr, "indices": indices,
            "boundary_dst": boundary[0], "boundary_src": boundary[1]}


def _size(closure: dict, num_features: int) -> dict:
    """Rows, edges and on-disk bytes (features + arrays) of a closure."""
    rows = int(closure["nodes"].shape[0])
    edges = int(closure["indices"].shape[0]) + int(closure["boundary_src"].shape[0])
    arrays = sum(a.nbytes for a in closure.values()) + 2 * 8 * rows  # + in/out degrees
    return {"rows": rows, "edges": edges, "bytes": int(arrays + rows * num_features * 4)}


def build_preloads(graph: Graph, node_server: np.ndarray, servers: int, hops: int,
                   ext_fanout: int, seed: int, writer: ArrayWriter,
                   progress: bool = True) -> list[dict]:
    """Write ``server-<s>/*`` for every server through ``writer``; return per-server stats.

    Each stat: ``{"server", "hops", "ext_fanout", "rows", "edges", "bytes", "seconds",
    "full_rows", "full_edges", "full_bytes"}`` (``full_*``: the exact L-hop closure, computed
    apart when f >= 0).
    """
    in_deg = np.diff(graph.indptr)
    out_deg = np.bincount(graph.indices, minlength=graph.num_nodes).astype(np.int64)
    stats = []
    for server in tqdm(range(servers), desc="preload", disable=None if progress else True,
                       leave=False):
        clock = time.perf_counter()
        closure = server_closure(graph, node_server, server, hops, ext_fanout, seed)
        nodes = closure["nodes"]
        prefix = server_dir(server) + "/"
        for name, array in closure.items():
            writer.save(prefix + name + ".npy", array)
        writer.save(prefix + "in_deg.npy", in_deg[nodes])
        writer.save(prefix + "out_deg.npy", out_deg[nodes])
        writer.save_chunks(prefix + "feat.npy", (nodes.shape[0], graph.num_features),
                           np.float32, _row_chunks(graph.feat, nodes))
        release_pages(graph.feat)
        size = _size(closure, graph.num_features)
        seconds = time.perf_counter() - clock
        del closure
        full = size if ext_fanout < 0 else _size(
            server_closure(graph, node_server, server, hops, -1, seed), graph.num_features)
        stats.append({"server": server, "hops": hops, "ext_fanout": ext_fanout, **size,
                      "seconds": seconds,
                      **{"full_" + k: v for k, v in full.items()}})
    return stats


@dataclass
class Preload:
    """One server's preload, its arrays as read-only memory maps (layout: module docstring).

    Memory-mapped, so the workers of one server share one copy through the page cache.
    """

    folder: str
    server: int
    hops: int
    ext_fanout: int
    nodes: np.ndarray
    hop: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    boundary_dst: np.ndarray
    boundary_src: np.ndarray
    feat: np.ndarray
    in_deg: np.ndarray
    out_deg: np.ndarray
    manifest: dict = field(repr=False, default_factory=dict)

    @property
    def num_rows(self) -> int:
        """Number of preloaded rows n."""
        return int(self.nodes.shape[0])


def open_preload(folder: str, server: int, verify: bool = True,
                 manifest: Optional[dict] = None) -> Preload:
    """Open server ``server``'s preload in the partition ``folder``; return a :class:`Preload`.

    With ``verify=True`` the size and sha256 of its files are checked against the manifest.
    Dtypes and shapes are always checked. Raises :class:`PartitionError` naming the file, or
    when the partition has no preload for that server.
    """
    manifest = load_manifest(folder) if manifest is None else manifest
    config = manifest.get("preload")
    if not isinstance(config, dict) or not 0 <= server < int(manifest["servers"]):
        raise PartitionError(f"{folder}: no preload for server {server} (partition with "
                             "--servers S > 1 and --preload-hops L > 0)")
    arrays = load_listed_arrays(folder, manifest, server_dir(server), PRELOAD_ARRAYS, verify)
    pre = Preload(folder=folder, server=server, hops=int(config["hops"]),
                  ext_fanout=int(config["ext_fanout"]), manifest=manifest, **arrays)
    _check_shapes(pre, int(manifest["dataset"]["num_features"]))
    return pre


def _check_shapes(pre: Preload, num_features: int) -> None:
    n = pre.num_rows
    n_edges = int(pre.indptr[-1]) if pre.indptr.shape[0] else -1
    n_boundary = int(pre.boundary_dst.shape[0])
    expected = {"nodes": (n,), "hop": (n,), "indptr": (n + 1,), "indices": (n_edges,),
                "boundary_dst": (n_boundary,), "boundary_src": (n_boundary,),
                "feat": (n, num_features), "in_deg": (n,), "out_deg": (n,)}
    for name in PRELOAD_ARRAYS:
        array, dtype = getattr(pre, name), np.float32 if name == "feat" else np.int64
        if array.dtype != dtype or array.shape != expected[name]:
            path = os.path.join(pre.folder, server_dir(pre.server), name + ".npy")
            raise PartitionError(f"{path}: {array.dtype} {tuple(array.shape)}, expected "
                                 f"{np.dtype(dtype)} {expected[name]}")
