"""Assign every node to a part: METIS (edge cut, multi-constraint balance), random, two-level.

Two-level (``servers`` S > 1): METIS first splits the whole graph into S servers, then each
server's induced subgraph into G = parts / S workers; part ``k`` belongs to server ``k // G``.
"""
from __future__ import annotations

import numpy as np
from tqdm import tqdm

from gnnsys.errors import UserError
from gnnsys.graph import Graph
from gnnsys.partition.csr import induced_subgraph, symmetric_adjacency
from gnnsys.partition.coarsen import coarse_kway

METHODS = ("metis", "random")
#: allowed imbalance (max / mean) per METIS constraint: owned nodes, in-edges, train nodes.
UBVEC = {"nodes": 1.03, "edges": 1.05, "train": 1.05}
#: METIS options (by ``pymetis.OptionKey`` name) for speed on graphs of at least
#: :data:`FAST_METIS_EDGES` edges: 3 refinement passes per level instead of 10, and no 2-hop
#: matching when coarsening stalls. On the 1M-node synthetic graph (19M edges, 3 constraints,
#: 8 parts) METIS takes 20 s instead of 25 s for an edge cut of 18.6 % instead of 18.2 %; on
#: Cora they would cost a point of cut (7.3 % vs 6.5 % at 4 parts) for no useful time, hence the
#: size threshold. The default coarsening (SHEM) is kept: random matching is slower (33 s).
METIS_OPTIONS = {"NITER": 3, "NO2HOP": 1}
FAST_METIS_EDGES = 1_000_000
#: from :data:`FAST_METIS_EDGES` edges on, every METIS call sees the graph contracted at least
#: this many times by :func:`gnnsys.partition.coarsen.coarse_kway` (heavy-edge matching, then
#: greedy refinement of the projected parts), so that METIS sees ~5x fewer vertices (and more
#: times on graphs of millions of nodes, see its ``MAX_COARSE_VERTICES``).
COARSEN_LEVELS = 3


def check_options(num_nodes: int, parts: int, servers: int, method: str) -> None:
    """Raise :class:`UserError` naming the bad option unless ``1 <= parts <= num_nodes``,
    ``servers >= 1`` divides ``parts`` and ``method`` is one of :data:`METHODS`."""
    if parts < 1:
        raise UserError(f"--parts must be >= 1, got {parts}")
    if parts > num_nodes:
        raise UserError(f"--parts {parts} is more than the graph's {num_nodes} nodes")
    if servers < 1 or parts % servers:
        raise UserError(f"--servers must be >= 1 and divide --parts {parts}, got {servers}")
    if method not in METHODS:
        raise UserError(f"unknown --method {method!r}; choose one of {', '.join(METHODS)}")


def balance_weights(graph: Graph) -> tuple[np.ndarray, list[float]]:
    """Return METIS vertex weights int64 [N, ncon] and the matching imbalance bounds.

    Columns: 1 per node, in-degree (the edges a part stores) and train-mask; a column whose
    total is zero (no edges, no train nodes) is left out.
    """
    columns = {"nodes": np.ones(graph.num_nodes, dtype=np.int64),
               "edges": np.diff(graph.indptr),
               "train": graph.train_mask.astype(np.int64)}
    keep = [name for name, col in columns.items() if col.any()]
    return np.stack([columns[name] for name in keep], axis=1), [UBVEC[name] for name in keep]


def random_parts(num_nodes: int, parts: int, seed: int = 0) -> np.ndarray:
    """Return a seeded balanced random assignment: a permutation split into ``parts`` slices."""
    sizes = np.full(parts, num_nodes // parts, dtype=np.int64)
    sizes[:num_nodes % parts] += 1
    assignment = np.empty(num_nodes, dtype=np.int64)
    assignment[np.random.default_rng(seed).permutation(num_nodes)] = \
        np.repeat(np.arange(parts, dtype=np.int64), sizes)
    return assignment


def assign_parts(graph: Graph, parts: int, servers: int = 1, method: str = "metis",
                 seed: int = 0, progress: bool = True) -> np.ndarray:
    """Return int64 [N]: the part (0 .. parts-1) of every node of ``graph``.

    ``method="metis"``: k-way METIS on the symmetrised graph, minimising the edge cut while
    balancing owned nodes, in-edges and train nodes (with :data:`METIS_OPTIONS` and
    :data:`COARSEN_LEVELS` contractions from :data:`FAST_METIS_EDGES` edges on); with
    ``servers`` S > 1 two-level (see the module docstring). ``method="random"``:
    :func:`random_parts` (servers only name groups). ``seed`` makes both deterministic.
    Raises :class:`UserError` for bad options.
    """
    check_options(graph.num_nodes, parts, servers, method)
    if method == "random":
        return random_parts(graph.num_nodes, parts, seed)
    indptr, indices = symmetric_adjacency(graph.indptr, graph.indices)
    weights, ubvec = balance_weights(graph)
    large = indices.shape[0] >= FAST_METIS_EDGES
    options = METIS_OPTIONS if large else {}
    levels = COARSEN_LEVELS if large else 0
    if servers == 1:
        return coarse_kway(indptr, indices, weights, parts, levels, seed, ubvec, options)
    server_of = coarse_kway(indptr, indices, weights, servers, levels, seed, ubvec, options)
    per_server = parts // servers
    assignment = np.empty(graph.num_nodes, dtype=np.int64)
    for server in tqdm(range(servers), desc="metis per server", disable=None if progress else True,
                       leave=False):
        nodes = np.flatnonzero(server_of == server)
        sub_ptr, sub_idx = induced_subgraph(indptr, indices, nodes)
        local = coarse_kway(sub_ptr, sub_idx, weights[nodes], per_server, levels, seed, ubvec,
                            options)
        assignment[nodes] = server * per_server + local
    return assignment
