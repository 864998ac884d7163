"""Contract a graph by heavy-edge matching before METIS, then project its parts back.

METIS coarsens the graph itself, but its first levels run on the full graph with per-vertex
arrays read at random, which on millions of nodes miss the CPU cache on nearly every edge.
:func:`coarsen` does those first levels here in one sequential numba pass per level: every
vertex, in ID order, is matched with its unmatched neighbour of heaviest edge (or stays alone),
each matched pair becomes one coarse vertex (vertex weights summed per balance constraint,
parallel edges merged with their weights summed, inner edges dropped), so METIS sees 0.56-0.64
of the vertices per level (on ``synthetic:N``; 0.22 after three levels). Balance and edge cut
carry over exactly: a coarse partition's weights are the fine ones and its weighted cut is the
fine cut. As METIS then cannot refine the levels it did not see, :func:`refine` moves fine
boundary vertices greedily after the projection (the part of every vertex held in one byte,
so its random reads stay in cache). :func:`coarse_kway` wraps
:func:`~gnnsys.partition.metis.metis_kway` with both.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np
from numba import njit

from gnnsys.partition.metis import metis_kway

#: greedy refinement passes on the fine graph after the coarse parts are projected back.
REFINE_PASSES = 4
#: :func:`coarse_kway` contracts no graph below this many vertices per part (METIS's own
#: coarsening and refinement then do the rest).
MIN_VERTICES_PER_PART = 1000
#: :func:`coarse_kway` contracts further than asked while METIS would see more vertices than
#: this: on ``synthetic:4000000`` (78M edges) 5 levels instead of 3 leave METIS 0.46M vertices
#: instead of 0.87M and take 80 s instead of 91 s for the same edge cut (18.5 %); METIS's own
#: time per edge nearly doubles once its arrays no longer fit the CPU cache.
MAX_COARSE_VERTICES = 500_000
#: the most contractions :func:`coarsen` does.
MAX_LEVELS = 8
#: contractions beyond the asked levels stop once one removes less than this share of the
#: vertices (a graph whose matching stalls, e.g. a star, would repeat passes for nothing).
MIN_SHRINK = 0.1


@dataclass
class Coarse:
    """A contracted graph: symmetric CSR ``indptr [C + 1]`` / ``indices`` with int64 edge
    weights ``adjwgt`` (one per entry), vertex weights ``vwgt`` int64 [C, ncon] and ``cmap``
    int64 [N]: the coarse vertex of every fine vertex."""

    indptr: np.ndarray
    indices: np.ndarray
    adjwgt: np.ndarray
    vwgt: np.ndarray
    cmap: np.ndarray


@njit(cache=True, nogil=True)
def _match(indptr, indices, adjwgt):  # pragma: no cover - compiled
    """Heavy-edge matching in ID order; returns ``(first [C], partner [C], cmap [N])``."""
    n = indptr.shape[0] - 1
    weighted = adjwgt.shape[0] > 0
    cmap = np.full(n, -1, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    partner = np.empty(n, dtype=np.int64)
    c = 0
    for v in range(n):
        if cmap[v] >= 0:
            continue
        best = v
        best_w = 0
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            if u != v and cmap[u] < 0:
                w = adjwgt[e] if weighted else 1
                if w > best_w:
                    best, best_w = u, w
                    if not weighted:
                        break
        cmap[v] = c
        cmap[best] = c
        first[c] = v
        partner[c] = best
        c += 1
    return first[:c].copy(), partner[:c].copy(), cmap


@njit(cache=True, nogil=True)
def _contract(indptr, indices, adjwgt, first, partner, cmap, out_ptr, out_idx,
              out_w):  # pragma: no cover - compiled
    """Fill the coarse rows of the matched pairs into ``out_ptr``/``out_idx``/``out_w`` (sized
    for the fine entries, an upper bound); parallel edges merged, inner ones dropped. Returns
    the number of coarse entries."""
    weighted = adjwgt.shape[0] > 0
    slot = np.full(first.shape[0], -1, dtype=np.int64)
    pos = 0
    for c in range(first.shape[0]):
        start = pos
        for k in range(2):
            v = first[c] if k == 0 else partner[c]
            if k == 1 and v == first[c]:
                break
            for e in range(indptr[v], indptr[v + 1]):
                cu = cmap[indices[e]]
                if cu == c:
                    continue
                w = adjwgt[e] if weighted else 1
                if slot[cu] >= start:
                    out_w[slot[cu]] += w
                else:
                    slot[cu] = pos
                    out_idx[pos] = cu
                    out_w[pos] = w
                    pos += 1
        out_ptr[c + 1] = pos
    return pos


@njit(cache=True, nogil=True)
def _sum_weights(vwgt, cmap, num_coarse):  # pragma: no cover - compiled
    out = np.zeros((num_coarse, vwgt.shape[1]), dtype=np.int64)
    for v in range(vwgt.shape[0]):
        for j in range(vwgt.shape[1]):
            out[cmap[v], j] += vwgt[v, j]
    return out


@njit(cache=True, nogil=True)
def _refine(indptr, indices, vwgt, part, nparts, max_weight, passes):  # pragma: no cover
    """Greedy boundary refinement in ID order, ``part`` (int8, in place): move a vertex to the
    part holding most of its neighbours when that cuts strictly fewer edges and keeps every
    weight of that part within ``max_weight``; up to ``passes`` passes. Returns the moves."""
    ncon = vwgt.shape[1]
    load = np.zeros((nparts, ncon), dtype=np.int64)
    for v in range(vwgt.shape[0]):
        for j in range(ncon):
            load[part[v], j] += vwgt[v, j]
    conn = np.zeros(nparts, dtype=np.int64)
    total = 0
    for _ in range(passes):
        moves = 0
        for v in range(vwgt.shape[0]):
            conn[:] = 0
            for e in range(indptr[v], indptr[v + 1]):
                conn[part[indices[e]]] += 1
            a = part[v]
            best, best_gain = a, 0
            for b in range(nparts):
                if b != a and conn[b] - conn[a] > best_gain:
                    fits = True
                    for j in range(ncon):
                        if load[b, j] + vwgt[v, j] > max_weight[j]:
                            fits = False
                    if fits:
                        best, best_gain = b, conn[b] - conn[a]
            if best != a:
                for j in range(ncon):
                    load[a, j] -= vwgt[v, j]
                    load[best, j] += vwgt[v, j]
                part[v] = best
                moves += 1
        total += moves
        if moves == 0:
            break
    return total


def refine(indptr: np.ndarray, indices: np.ndarray, vwgt: np.ndarray, parts: np.ndarray,
           nparts: int, ubvec: Sequence[float], passes: int = REFINE_PASSES) -> np.ndarray:
    """Return ``parts`` (int64 [N]) improved by greedy boundary refinement on the fine graph.

    A vertex moves to the part holding most of its neighbours when that strictly lowers the
    edge cut and keeps every weight of that part within ``ubvec[j] * total[j] / nparts``, in
    ID order, for up to ``passes`` passes. The part of every vertex is held in one byte, so the
    random reads stay in cache on millions of vertices. Needs ``nparts <= 127``; more parts
    are returned unchanged.
    """
    if nparts > 127:
        return parts
    weights = np.asarray(vwgt, np.int64)
    max_weight = np.floor(np.asarray(ubvec, np.float64) * weights.sum(axis=0) / nparts)
    part8 = parts.astype(np.int8)
    _refine(indptr, indices, weights, part8, nparts, max_weight.astype(np.int64), passes)
    return part8.astype(np.int64)


def contract(indptr: np.ndarray, indices: np.ndarray, vwgt: np.ndarray,
             adjwgt: Optional[np.ndarray] = None) -> Coarse:
    """Contract one level: heavy-edge matching, then the matched pairs merged.

    Takes a symmetric int64 CSR (``indptr [N + 1]``, ``indices``), vertex weights int64
    [N, ncon] and edge weights int64 per entry (``None``: all 1). Returns the :class:`Coarse`
    graph (about N / 2 vertices; self-loops dropped, parallel edges merged, weights summed).
    """
    weights = np.empty(0, np.int64) if adjwgt is None else np.asarray(adjwgt, np.int64)
    first, partner, cmap = _match(indptr, indices, weights)
    out_ptr = np.zeros(first.shape[0] + 1, dtype=np.int64)
    out_idx = np.empty(indices.shape[0], dtype=np.int64)
    out_w = np.empty(indices.shape[0], dtype=np.int64)
    size = _contract(indptr, indices, weights, first, partner, cmap, out_ptr, out_idx, out_w)
    # views: the few percent of entries merged away stay allocated, not copied
    return Coarse(out_ptr, out_idx[:size], out_w[:size],
                  _sum_weights(np.asarray(vwgt, np.int64), cmap, first.shape[0]), cmap)


def coarsen(indptr: np.ndarray, indices: np.ndarray, vwgt: np.ndarray, levels: int,
            min_vertices: int = 0, max_vertices: Optional[int] = None) -> Coarse:
    """Contract ``levels`` >= 1 times (see :func:`contract`), unit edge weights at the start,
    stopping early once fewer than ``min_vertices`` remain, and going on (up to
    :data:`MAX_LEVELS` in all) while more than ``max_vertices`` remain and the last
    contraction still removed at least :data:`MIN_SHRINK` of the vertices; the returned
    ``cmap`` maps every fine vertex straight to its coarsest vertex."""
    coarse = contract(indptr, indices, vwgt)
    before = indptr.shape[0] - 1
    for level in range(1, MAX_LEVELS):
        vertices = coarse.indptr.shape[0] - 1
        asked = level < levels
        wanted = max_vertices is not None and vertices > max_vertices \
            and vertices <= (1 - MIN_SHRINK) * before
        if vertices < min_vertices or not (asked or wanted):
            break
        before = vertices
        cmap = coarse.cmap
        coarse = contract(coarse.indptr, coarse.indices, coarse.vwgt, coarse.adjwgt)
        coarse.cmap = coarse.cmap[cmap]
    return coarse


def coarse_kway(indptr: np.ndarray, indices: np.ndarray, vwgt: np.ndarray, nparts: int,
                levels: int, seed: int = 0, ubvec: Optional[Sequence[float]] = None,
                options: Optional[Mapping[str, int]] = None) -> np.ndarray:
    """Return int64 [N] parts: :func:`~gnnsys.partition.metis.metis_kway` on the graph
    contracted ``levels`` times (0, or fewer than :data:`MIN_VERTICES_PER_PART` vertices
    per part: plain ``metis_kway``; more while over :data:`MAX_COARSE_VERTICES` remain),
    projected back to every vertex and improved by :func:`refine` (:data:`REFINE_PASSES`
    passes).

    Arguments as for ``metis_kway``; the balance bounds ``ubvec`` hold for the fine vertices.
    """
    min_vertices = MIN_VERTICES_PER_PART * nparts
    if levels <= 0 or nparts == 1 or indptr.shape[0] - 1 < min_vertices:
        return metis_kway(indptr, indices, vwgt, nparts, seed, ubvec, options)
    coarse = coarsen(indptr, indices, vwgt, levels, min_vertices, MAX_COARSE_VERTICES)
    parts = metis_kway(coarse.indptr, coarse.indices, coarse.vwgt, nparts, seed, ubvec, options,
                       adjwgt=coarse.adjwgt)[coarse.cmap]
    del coarse
    return refine(indptr, indices, vwgt, parts, nparts, ubvec or [1.03] * vwgt.shape[1])
