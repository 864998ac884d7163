"""The graph container every part of gnnsys reads.

A :class:`Graph` holds one node-property graph in the layout the partitioner and the trainer
expect:

* in-edges as CSR, ``int64``: the sources of the messages node ``v`` receives are
  ``indices[indptr[v]:indptr[v + 1]]`` (message direction src -> dst);
* ``feat`` ``float32 [N, F]`` (may be a read-only memory map), ``label`` ``int64 [N]``
  (``-1`` = unlabelled), ``train_mask`` / ``val_mask`` / ``test_mask`` ``bool [N]``;
* ``orig_ids`` ``int64 [N]``: the user's node IDs, so predictions map back to them.

Canonical form (the documented rule for messy real graphs): within each row the sources are
sorted ascending, **duplicate edges are merged into one** and **self-loops are dropped**;
isolated nodes are kept. Layers add the node's own contribution themselves (GCN's ``A + I``,
SAGE's root weight, GAT's self-attention), as PyG and DGL do. ``undirected=True`` adds the
reverse of every edge before canonicalising.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from gnnsys.errors import UserError


class GraphError(UserError, ValueError):
    """Invalid graph input (a user mistake): the CLI prints it on one line and exits 2."""


@dataclass
class Graph:
    """A node-property graph with in-edge CSR, features, labels, split masks and original IDs."""

    indptr: np.ndarray
    indices: np.ndarray
    feat: np.ndarray
    label: np.ndarray
    train_mask: np.ndarray
    val_mask: np.ndarray
    test_mask: np.ndarray
    orig_ids: np.ndarray
    name: str = "graph"
    meta: dict = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        """Number of nodes N."""
        return int(self.indptr.shape[0] - 1)

    @property
    def num_edges(self) -> int:
        """Number of directed edges E (after canonicalisation)."""
        return int(self.indices.shape[0])

    @property
    def num_features(self) -> int:
        """Feature width F."""
        return int(self.feat.shape[1])

    @property
    def num_classes(self) -> int:
        """Number of classes: ``max(label) + 1`` (0 when no node is labelled)."""
        return int(self.label.max()) + 1 if self.label.size and self.label.max() >= 0 else 0

    def in_degrees(self) -> np.ndarray:
        """Return ``int64 [N]``: the in-degree of every node."""
        return np.diff(self.indptr)

    def out_degrees(self) -> np.ndarray:
        """Return ``int64 [N]``: the out-degree of every node."""
        return np.bincount(self.indices, minlength=self.num_nodes).astype(np.int64)

    def edge_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(src, dst)``, two ``int64 [E]`` arrays in CSR order (sorted by dst, then src)."""
        dst = np.repeat(np.arange(self.num_nodes, dtype=np.int64), np.diff(self.indptr))
        return self.indices.copy(), dst

    def content_hash(self) -> str:
        """Return the sha256 (hex) of structure, features, labels, masks and original IDs.

        Two graphs with the same hash are the same graph; partitions record it so that a
        shard made from another graph is refused.
        """
        h = hashlib.sha256()
        h.update(np.array([self.num_nodes, self.num_edges, self.num_features], np.int64).tobytes())
        for arr in (self.indptr, self.indices, self.label, self.train_mask, self.val_mask,
                    self.test_mask, self.orig_ids):
            h.update(np.ascontiguousarray(arr).tobytes())
        step = max(1, (64 << 20) // max(1, self.num_features * 4))
        for start in range(0, self.num_nodes, step):
            h.update(np.ascontiguousarray(self.feat[start:start + step]).tobytes())
        return h.hexdigest()

    def validate(self) -> "Graph":
        """Check dtypes, shapes, ranges and finiteness; return self or raise :class:`GraphError`."""
        n = self.num_nodes
        _check(self.indptr.ndim == 1 and n >= 0, "indptr must be a 1-D array of length N+1")
        _check(self.indptr.dtype == np.int64 and self.indices.dtype == np.int64,
               "indptr and indices must be int64")
        _check(self.indptr[0] == 0 and self.indptr[-1] == self.indices.shape[0],
               "indptr must start at 0 and end at len(indices)")
        _check(bool(np.all(np.diff(self.indptr) >= 0)), "indptr must be non-decreasing")
        if self.indices.size:
            _check(self.indices.min() >= 0 and self.indices.max() < n,
                   f"edge source out of range [0, {n})")
        _check(self.feat.ndim == 2 and self.feat.shape[0] == n,
               f"feat must have shape [N={n}, F], got {tuple(self.feat.shape)}")
        _check(self.feat.dtype == np.float32, f"feat must be float32, got {self.feat.dtype}")
        _check(self.label.shape == (n,) and self.label.dtype == np.int64,
               f"label must be int64 of shape [{n}], got {self.label.dtype} {self.label.shape}")
        for name in ("train_mask", "val_mask", "test_mask"):
            m = getattr(self, name)
            _check(m.shape == (n,) and m.dtype == np.bool_, f"{name} must be bool of shape [{n}]")
        _check(self.orig_ids.shape == (n,) and self.orig_ids.dtype == np.int64,
               f"orig_ids must be int64 of shape [{n}]")
        step = max(1, (64 << 20) // max(1, self.num_features * 4))
        for start in range(0, n, step):
            if not np.isfinite(self.feat[start:start + step]).all():
                raise GraphError("features contain NaN or Inf")
        return self

    @classmethod
    def from_arrays(cls, *, num_nodes: Optional[int] = None,
                    edge_index: Optional[np.ndarray] = None,
                    indptr: Optional[np.ndarray] = None, indices: Optional[np.ndarray] = None,
                    feat: np.ndarray, label: np.ndarray,
                    train_mask: Optional[np.ndarray] = None,
                    val_mask: Optional[np.ndarray] = None,
                    test_mask: Optional[np.ndarray] = None,
                    orig_ids: Optional[np.ndarray] = None,
                    undirected: bool = False, name: str = "graph") -> "Graph":
        """Build a canonical :class:`Graph` from arrays.

        Takes either ``edge_index`` (``2 x E``, row 0 = source, row 1 = destination) or an
        in-edge CSR (``indptr`` + ``indices``), plus ``feat [N, F]`` and ``label [N]``. Masks
        default to a deterministic 60/20/20 split of the labelled nodes (seed 0) when all three
        are missing; ``orig_ids`` defaults to ``arange(N)``. Returns the validated graph; raises
        :class:`GraphError` on wrong dtypes, shapes, ranges or non-finite features.
        """
        feat = _as_feat(feat)
        n = int(feat.shape[0]) if num_nodes is None else int(num_nodes)
        if (edge_index is None) == (indptr is None or indices is None):
            raise GraphError("give either edge_index or indptr + indices")
        if edge_index is not None:
            indptr_c, indices_c = canonical_csr(*_as_edge_index(edge_index, n), n)
        elif not undirected and _is_canonical_csr(indptr, indices, n):
            indptr_c, indices_c = _as_int64(indptr, "indptr"), _as_int64(indices, "indices")
        else:
            indptr_c, indices_c = canonical_csr(*_csr_to_edges(indptr, indices, n), n)
        if undirected:
            src, dst = _csr_to_edges(indptr_c, indices_c, n)
            indptr_c, indices_c = canonical_csr(np.concatenate([src, dst]),
                                                np.concatenate([dst, src]), n)
        label = _as_label(label, n)
        masks = _as_masks(train_mask, val_mask, test_mask, label)
        if orig_ids is None:
            orig_ids = np.arange(n, dtype=np.int64)
        orig_ids = _as_int64(orig_ids, "orig_ids")
        return cls(indptr_c, indices_c, feat, label, *masks, orig_ids=orig_ids,
                   name=name).validate()

    @classmethod
    def from_dgl(cls, g, **options) -> "Graph":
        """Build a :class:`Graph` from a ``DGLGraph`` (see :func:`gnnsys.data.dgl.graph_from_dgl`
        for the options: ``undirected``, ``name``, ``keys``, ``orig_ids``)."""
        from gnnsys.data.dgl import graph_from_dgl

        return graph_from_dgl(g, **options)

    @classmethod
    def from_pyg(cls, data, undirected: bool = False, name: str = "pyg") -> "Graph":
        """Build a :class:`Graph` from a PyG ``Data`` (``x``, ``y``, ``edge_index``, masks)."""
        def arr(key):
            value = getattr(data, key, None)
            return None if value is None else value.detach().cpu().numpy()
        y = arr("y")
        if y is None:
            raise GraphError("PyG Data has no 'y' (labels)")
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        return cls.from_arrays(num_nodes=int(data.num_nodes), edge_index=arr("edge_index"),
                               feat=arr("x"), label=y, train_mask=arr("train_mask"),
                               val_mask=arr("val_mask"), test_mask=arr("test_mask"),
                               undirected=undirected, name=name)


def canonical_csr(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the canonical in-edge CSR ``(indptr, indices)`` of the edges ``src -> dst``.

    Rows are destinations; sources are sorted within a row, duplicates merged, self-loops
    dropped. Runs in O(E log E) with one int64 key array of length E.
    """
    keep = src != dst
    key = dst[keep] * np.int64(n) + src[keep] if not keep.all() else dst * np.int64(n) + src
    del keep
    key.sort()  # sort + neighbour compare: np.unique is many times slower on numpy 2.4
    if key.size:
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    dst_sorted = key // n
    indices = (key - dst_sorted * n).astype(np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst_sorted, minlength=n), out=indptr[1:])
    return indptr, indices


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise GraphError(message)


def _as_int64(a, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        raise GraphError(f"{what} must be integers, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def _as_feat(feat) -> np.ndarray:
    feat = feat if isinstance(feat, np.memmap) and feat.dtype == np.float32 else np.asarray(feat)
    if feat.ndim != 2:
        raise GraphError(f"feat must be 2-D [N, F], got shape {tuple(feat.shape)}")
    if feat.dtype.kind != "f":
        raise GraphError(f"feat must be floating point, got {feat.dtype}")
    return feat if feat.dtype == np.float32 else feat.astype(np.float32)


def _as_label(label, n: int) -> np.ndarray:
    label = _as_int64(label, "label")
    if label.shape != (n,):
        raise GraphError(f"label must have shape [{n}], got {tuple(label.shape)}")
    return label


def _as_edge_index(edge_index, n: int) -> tuple[np.ndarray, np.ndarray]:
    edge_index = _as_int64(edge_index, "edge_index")
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise GraphError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_index.size and (edge_index.min() < 0 or edge_index.max() >= n):
        raise GraphError(f"edge_index has node IDs out of range [0, {n})")
    return edge_index[0], edge_index[1]


def _csr_to_edges(indptr, indices, n: int) -> tuple[np.ndarray, np.ndarray]:
    indptr, indices = _as_int64(indptr, "indptr"), _as_int64(indices, "indices")
    if indptr.shape != (n + 1,):
        raise GraphError(f"indptr must have length N+1 = {n + 1}, got {indptr.shape[0]}")
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        raise GraphError("indptr must start at 0, be non-decreasing and end at len(indices)")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        raise GraphError(f"indices has node IDs out of range [0, {n})")
    dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    return indices, dst


def _is_canonical_csr(indptr, indices, n: int) -> bool:
    """True when ``indptr``/``indices`` already are a canonical CSR (fast path, no copy)."""
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    if indptr.shape != (n + 1,) or indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        return False
    if indptr[0] != 0 or indptr[-1] != indices.shape[0] or np.any(np.diff(indptr) < 0):
        return False
    if indices.size == 0:
        return True
    if indices.min() < 0 or indices.max() >= n:
        return False
    row_start = np.zeros(indices.shape[0], dtype=bool)
    row_start[indptr[:-1][np.diff(indptr) > 0]] = True
    increasing = np.diff(indices) > 0
    if not np.all(increasing | row_start[1:]):
        return False
    dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    return not np.any(indices == dst)


def _as_masks(train, val, test, label) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = label.shape[0]
    if train is None and val is None and test is None:
        order = np.random.default_rng(0).permutation(np.flatnonzero(label >= 0))
        cut1, cut2 = int(0.6 * order.size), int(0.8 * order.size)
        masks = [np.zeros(n, dtype=bool) for _ in range(3)]
        for m, part in zip(masks, (order[:cut1], order[cut1:cut2], order[cut2:])):
            m[part] = True
        return tuple(masks)
    out = []
    for name, m in (("train_mask", train), ("val_mask", val), ("test_mask", test)):
        m = np.zeros(n, dtype=bool) if m is None else np.asarray(m)
        if m.shape != (n,):
            raise GraphError(f"{name} must have shape [{n}], got {tuple(m.shape)}")
        if m.dtype != np.bool_:
            if m.dtype.kind not in "iub" or not np.isin(m, (0, 1)).all():
                raise GraphError(f"{name} must be boolean (or 0/1), got {m.dtype}")
            m = m.astype(bool)
        out.append(m)
    return tuple(out)
