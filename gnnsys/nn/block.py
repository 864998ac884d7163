"""The local bipartite graph a layer sees, with its aggregation helpers.

A :class:`Block` has ``num_src`` source rows (the owned rows, then the halo rows) and
``num_dst`` destination rows (the owned rows: destination ``i`` is the same node as source ``i``
for ``i < num_dst``). Its edges are the in-edges of the destinations, as CSR: the sources of
destination ``v`` are ``indices[indptr[v]:indptr[v + 1]]`` (local source IDs). Every in-edge of
an owned node is local, so sum / mean / max aggregation and the edge softmax are exact; the
global in/out degrees of every source row are stored so normalisations are exact too.

Layers compute only through these helpers (or plain torch ops on ``edge_src`` / ``edge_dst``);
they never know whether the block is a whole graph or one shard of it. A layer is called as
``layer(block, h_src)``; one with a row-wise ``pre_exchange`` method receives
``pre_exchange``-ed rows and ``pre_exchanged=True`` instead (see
:func:`gnnsys.train.model.apply_layer`).
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from gnnsys.nn.spmm import csr_matrix, csr_transpose, spmm

ArrayLike = Union[np.ndarray, Tensor]

# Value sets (ones, mean, GCN weights, ...) whose sparse matrices a block keeps.
_MAX_CACHED_MATRICES = 4


def _as_long(x: ArrayLike) -> Tensor:
    return torch.as_tensor(np.asarray(x) if isinstance(x, np.ndarray) else x, dtype=torch.int64)


class Block:
    """The local bipartite graph (sources = owned + halo rows, destinations = owned rows).

    Args:
        indptr: ``int64 [num_dst + 1]`` CSR row pointers over the destinations.
        indices: ``int64 [E]`` local source ID of every in-edge.
        num_src: number of source rows (owned + halo), ``>= num_dst``.
        in_deg: ``[num_src]`` GLOBAL in-degree of every source row (float or int).
        out_deg: ``[num_src]`` GLOBAL out-degree of every source row (float or int).

    Derived structure (edge endpoints, the transposed CSR, normalisation weights) is built
    lazily once and cached; :meth:`to` returns a new block on another device / dtype.
    """

    def __init__(self, indptr: Tensor, indices: Tensor, num_src: int, in_deg: Tensor,
                 out_deg: Tensor) -> None:
        self.indptr = _as_long(indptr)
        self.indices = _as_long(indices)
        self.num_src = int(num_src)
        self.in_deg = torch.as_tensor(in_deg)
        self.out_deg = torch.as_tensor(out_deg)
        if self.num_src < self.num_dst:
            raise ValueError(f"Block: num_src={self.num_src} < num_dst={self.num_dst}")
        if self.in_deg.shape[0] != self.num_src or self.out_deg.shape[0] != self.num_src:
            raise ValueError("Block: in_deg and out_deg need one entry per source row")
        self._cache: dict = {}

    @classmethod
    def full_graph(cls, indptr: ArrayLike, indices: ArrayLike) -> "Block":
        """Return the block of a whole graph (in-edge CSR, numpy or torch): N sources, N dsts.

        Degrees are computed from the CSR itself (in-degree = row length, out-degree = number
        of occurrences as a source).
        """
        indptr_t, indices_t = _as_long(indptr), _as_long(indices)
        n = indptr_t.numel() - 1
        in_deg = indptr_t[1:] - indptr_t[:-1]
        out_deg = torch.bincount(indices_t, minlength=n)
        return cls(indptr_t, indices_t, n, in_deg, out_deg)

    # ------------------------------------------------------------------ structure
    @property
    def num_dst(self) -> int:
        """Number of destination (owned) rows."""
        return int(self.indptr.numel() - 1)

    @property
    def num_edges(self) -> int:
        """Number of edges E."""
        return int(self.indices.numel())

    @property
    def device(self) -> torch.device:
        """Device of the block's tensors."""
        return self.indices.device

    @property
    def edge_src(self) -> Tensor:
        """``int64 [E]``: local source ID of every edge (CSR order)."""
        return self.indices

    @property
    def edge_dst(self) -> Tensor:
        """``int64 [E]``: destination of every edge (CSR order), built once."""
        if "edge_dst" not in self._cache:
            self._cache["edge_dst"] = torch.repeat_interleave(
                torch.arange(self.num_dst, device=self.device), self.local_in_degree()
            )
        return self._cache["edge_dst"]

    def dst_rows(self, h_src: Tensor) -> Tensor:
        """Return the destination rows of ``h_src`` (its first ``num_dst`` rows).

        ``h_src`` itself when every source is a destination (one process, full graph): a slice
        would cost a zero-filled full-size gradient and a copy in backward.
        """
        return h_src if h_src.shape[0] == self.num_dst else h_src[: self.num_dst]

    def local_in_degree(self) -> Tensor:
        """``int64 [num_dst]``: number of in-edges of every destination in this block."""
        return self.indptr[1:] - self.indptr[:-1]

    def to(self, device: Optional[Union[str, torch.device]] = None,
           dtype: Optional[torch.dtype] = None) -> "Block":
        """Return this block on ``device`` with floating degree tensors cast to ``dtype``.

        Integer structure stays int64; the caches are rebuilt lazily on the new block.
        """
        def move(t: Tensor) -> Tensor:
            cast = dtype if dtype is not None and t.is_floating_point() else None
            return t.to(device=device, dtype=cast)

        return Block(move(self.indptr), move(self.indices), self.num_src,
                     move(self.in_deg), move(self.out_deg))

    def _csr_structure(self) -> tuple[Tensor, Tensor]:
        """``(indptr, indices)`` of ``A``, int32 when they fit (MKL / cuSPARSE then use them
        without the per-call int64 -> int32 copy); built once."""
        if "csr" not in self._cache:
            arrays = (self.indptr, self.indices)
            if self._fits_int32():
                arrays = tuple(a.to(torch.int32) for a in arrays)
            self._cache["csr"] = arrays
        return self._cache["csr"]

    def _transposed_structure(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(t_indptr, t_indices, perm)`` of ``A^T`` (``perm`` maps transposed entries to CSR
        positions), built once, on the first backward that needs a source gradient: a block
        whose sources need none (the input layer's features, evaluation) never holds it."""
        if "csr_t" not in self._cache:
            t_indptr, t_indices, perm = csr_transpose(self.indptr, self.indices, self.num_src)
            if self._fits_int32():
                t_indptr, t_indices = t_indptr.to(torch.int32), t_indices.to(torch.int32)
            self._cache["csr_t"] = (t_indptr, t_indices, perm)
        return self._cache["csr_t"]

    def _fits_int32(self) -> bool:
        return max(self.num_edges, self.num_src) < 2**31 - 1

    def _matrices(self, values: Tensor) -> tuple[Tensor, Callable[[], Tensor]]:
        """Return ``A`` (sparse CSR holding ``values``) and a callable that returns ``A^T``.

        Cached for the last few value tensors that do not require grad (the constant weights
        of a layer), keyed by identity and version; learned values (attention) are rebuilt.
        ``A^T`` is built on the first call of the callable and then cached with ``A``.
        """
        cache = self._cache.setdefault("matrices", {})
        hit = cache.get(id(values))
        if hit is not None and hit[0] is values and hit[1] == values._version:
            return hit[2], hit[3]
        indptr, indices = self._csr_structure()
        adj = csr_matrix(indptr, indices, values, (self.num_dst, self.num_src))
        @functools.cache
        def transposed() -> Tensor:
            t_indptr, t_indices, perm = self._transposed_structure()
            return csr_matrix(t_indptr, t_indices, values.detach()[perm],
                              (self.num_src, self.num_dst))

        if not values.requires_grad:
            if len(cache) >= _MAX_CACHED_MATRICES:
                cache.pop(next(iter(cache)))
            cache[id(values)] = (values, values._version, adj, transposed)
        return adj, transposed

    def _constant_values(self, name: str, dtype: torch.dtype) -> Tensor:
        """Cached per-edge values ``ones`` or ``1 / local in-degree`` (mean), in ``dtype``."""
        key = (name, dtype)
        if key not in self._cache:
            if name == "ones":
                vals = torch.ones(self.num_edges, dtype=dtype, device=self.device)
            else:
                inv = 1.0 / self.local_in_degree().clamp(min=1).to(dtype)
                vals = inv[self.edge_dst]
            self._cache[key] = vals
        return self._cache[key]

    # ---------------------------------------------------------------- aggregation
    def spmm(self, h_src: Tensor, edge_weight: Optional[Tensor] = None) -> Tensor:
        """Weighted sum over in-edges: ``out[i] = sum_{e=(j->i)} w_e h_src[j]``.

        Args:
            h_src: ``[num_src, ...]`` source features.
            edge_weight: ``[E]`` per-edge weights in CSR order (default: all ones). Its gradient
                is computed when it requires grad.

        Returns:
            ``[num_dst, ...]``.
        """
        if edge_weight is None:
            edge_weight = self._constant_values("ones", h_src.dtype)
        else:
            edge_weight = edge_weight.to(h_src.dtype).contiguous()
        adj, adj_t = self._matrices(edge_weight)
        return spmm(h_src, edge_weight, adj, adj_t, self.edge_src, self.edge_dst)

    def aggregate(self, h_src: Tensor, reduce: str = "sum") -> Tensor:
        """Aggregate source rows over the in-edges of every destination.

        Args:
            h_src: ``[num_src, ...]`` source features.
            reduce: ``"sum"``, ``"mean"`` (divides by the row's number of in-edges in the block,
                which is the global in-degree for owned rows; 0 for rows without in-edges) or
                ``"max"`` (elementwise; 0 for rows without in-edges).

        Returns:
            ``[num_dst, ...]``.
        """
        if reduce == "sum":
            return self.spmm(h_src)
        if reduce == "mean":
            return self.spmm(h_src, self._constant_values("mean", h_src.dtype))
        if reduce == "max":
            index = self.edge_dst.view((-1,) + (1,) * (h_src.dim() - 1)).expand(
                (self.num_edges,) + tuple(h_src.shape[1:]))
            out = h_src.new_zeros((self.num_dst,) + tuple(h_src.shape[1:]))
            return out.scatter_reduce(0, index, h_src[self.edge_src], "amax", include_self=False)
        raise ValueError(f"unknown reduce {reduce!r}: use 'sum', 'mean' or 'max'")

    def gcn_norm_weights(self, dtype: Optional[torch.dtype] = None,
                         zero_mean: bool = False) -> Tensor:
        """``[E]``: GCN edge weights ``(deg_i / k_i) / sqrt((deg_i + 1)(deg_j + 1))`` for edge
        ``j -> i``.

        ``deg`` is the GLOBAL in-degree (PyG's ``gcn_norm`` convention with self-loops: both
        endpoints use in-degree + 1) and ``k_i`` the number of in-edges of ``i`` in this block.
        A block holding every in-edge of its destinations (a shard, a full graph, fanout -1) has
        ``k_i = deg_i``: the factor is exactly 1 and these are PyG's weights. A sampled block
        (``k_i`` of ``deg_i`` in-neighbours drawn uniformly) gets the factor ``deg_i / k_i``, so
        the sampled sum is an unbiased estimate of the full-neighbourhood sum and training sees
        the scale that full-graph inference does.

        ``zero_mean=True`` is for a sum of independent zero-mean terms (the dropout noise of
        :meth:`GCNConv.forward <gnnsys.nn.gcn.GCNConv.forward>`'s control variate): the factor
        is ``sqrt(deg_i / k_i)``, which keeps the mean (zero) and makes the expected variance
        of the sampled sum that of the full one (VR-GCN's CVD, Chen et al., ICML 2018). The
        self-loop weights are :meth:`gcn_self_weights`. ``dtype`` defaults to the default float
        dtype; cached per (dtype, zero_mean).
        """
        dtype = dtype or torch.get_default_dtype()
        key = ("gcn", dtype, zero_mean)
        if key not in self._cache:
            inv_sqrt = (self.in_deg.to(dtype) + 1.0).rsqrt()
            weights = inv_sqrt[self.edge_dst] * inv_sqrt[self.edge_src]
            local = self.local_in_degree()
            if not torch.equal(local, self.in_deg[: self.num_dst].to(local.dtype)):
                scale = self.in_deg[: self.num_dst].to(dtype) / local.clamp(min=1).to(dtype)
                weights = weights * (scale.sqrt() if zero_mean else scale)[self.edge_dst]
            self._cache[key] = weights
        return self._cache[key]

    def gcn_self_weights(self, dtype: Optional[torch.dtype] = None) -> Tensor:
        """``[num_dst]``: GCN self-loop weights ``1 / (deg_i + 1)`` (global in-degree)."""
        dtype = dtype or torch.get_default_dtype()
        return 1.0 / (self.in_deg[: self.num_dst].to(dtype) + 1.0)

    def edge_softmax(self, scores: Tensor) -> Tensor:
        """Softmax of edge scores over the in-edges of every destination.

        Args:
            scores: ``[E]`` or ``[E, H]`` (one column per attention head), CSR order.

        Returns:
            Same shape; for every destination with in-edges the values over its in-edges sum
            to 1. Numerically stable (the row max is subtracted first).
        """
        index = self.edge_dst.view((-1,) + (1,) * (scores.dim() - 1)).expand_as(scores)
        shape = (self.num_dst,) + tuple(scores.shape[1:])
        row_max = scores.new_full(shape, float("-inf")).scatter_reduce(
            0, index, scores.detach(), "amax", include_self=True)
        exp = (scores - row_max[self.edge_dst]).exp()
        denom = scores.new_zeros(shape).index_add_(0, self.edge_dst, exp)
        return exp / denom[self.edge_dst]

    def with_self_loops(self) -> "Block":
        """Return the block with one extra edge ``i -> i`` at the end of every destination row.

        Assumes the block has no self-loops (canonical graphs drop them). Cached.
        """
        if "self_loops" not in self._cache:
            n, e = self.num_dst, self.num_edges
            ar = torch.arange(n + 1, device=self.device)
            indptr = self.indptr + ar
            indices = torch.empty(e + n, dtype=torch.int64, device=self.device)
            keep = torch.ones(e + n, dtype=torch.bool, device=self.device)
            loop_pos = indptr[1:] - 1
            keep[loop_pos] = False
            indices[keep] = self.indices
            indices[loop_pos] = ar[:-1]
            self._cache["self_loops"] = Block(indptr, indices, self.num_src, self.in_deg,
                                              self.out_deg)
        return self._cache["self_loops"]

    def __repr__(self) -> str:
        return (f"Block(num_src={self.num_src}, num_dst={self.num_dst}, "
                f"num_edges={self.num_edges}, device={self.device})")
