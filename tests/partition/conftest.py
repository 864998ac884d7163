"""Shared test graphs and the shard -> global graph rebuild used by the partition tests."""
from __future__ import annotations

import numpy as np
import pytest

from gnnsys.graph import Graph
from gnnsys.partition import load_manifest, open_shard


def random_graph(n: int = 300, e: int = 1500, feat: int = 5, isolated: int = 10,
                 seed: int = 0) -> Graph:
    """A messy random directed graph: duplicate edges, self-loops, ``isolated`` isolated nodes
    (the last ones), unlabelled nodes (-1)."""
    rng = np.random.default_rng(seed)
    m = n - isolated
    ei = rng.integers(0, m, (2, e))
    ei = np.concatenate([ei, ei[:, : e // 10], np.stack([np.arange(20), np.arange(20)])], axis=1)
    label = rng.integers(-1, 4, n)
    return Graph.from_arrays(edge_index=ei, feat=rng.standard_normal((n, feat)).astype(np.float32),
                             label=label, orig_ids=rng.permutation(n) + 1000, name="rand")


def clustered_graph(clusters: int = 8, size: int = 250, intra: int = 8, inter: float = 0.3,
                    seed: int = 0) -> Graph:
    """A planted-partition graph: ``intra`` random in-cluster edges per node, ``inter`` across."""
    rng = np.random.default_rng(seed)
    n = clusters * size
    cluster = np.arange(n) // size
    src_in = rng.integers(0, size, n * intra) + np.repeat(cluster, intra) * size
    dst_in = np.repeat(np.arange(n), intra)
    n_out = int(n * inter)
    ei = np.stack([np.concatenate([src_in, rng.integers(0, n, n_out)]),
                   np.concatenate([dst_in, rng.integers(0, n, n_out)])])
    return Graph.from_arrays(edge_index=ei, feat=rng.standard_normal((n, 4)).astype(np.float32),
                             label=cluster, name="clustered")


@pytest.fixture
def small_graph() -> Graph:
    """A 300-node messy random graph."""
    return random_graph()


def rebuild(folder: str) -> dict:
    """Rebuild the global graph from every shard of ``folder`` and check per-shard invariants.

    Returns ``{"indptr", "indices", "feat", "label", "train_mask", "val_mask", "test_mask",
    "orig_ids"}`` in global node order; asserts halo order/offsets and local ID ranges.
    """
    manifest = load_manifest(folder)
    n, f, parts = (manifest["dataset"]["num_nodes"], manifest["dataset"]["num_features"],
                   manifest["parts"])
    assignment = np.load(f"{folder}/assignment.npy")
    out = {"feat": np.full((n, f), np.nan, np.float32), "label": np.full(n, -9),
           "orig_ids": np.full(n, -9)}
    out.update({name: np.zeros(n, bool) for name in ("train_mask", "val_mask", "test_mask")})
    seen = np.zeros(n, int)
    src, dst = [], []
    for k in range(parts):
        s = open_shard(folder, k)
        assert np.all(np.diff(s.owned) > 0)
        assert np.all(assignment[s.owned] == k)
        owners = assignment[s.halo]
        assert np.all(owners != k)
        assert np.all(np.diff(owners) >= 0)
        for p in range(parts):
            block = s.halo[s.halo_offsets[p]:s.halo_offsets[p + 1]]
            assert np.all(assignment[block] == p) and np.all(np.diff(block) > 0)
        rows = np.concatenate([s.owned, s.halo])
        assert s.indices.size == 0 or s.indices.max() < rows.size
        src.append(rows[s.indices])
        dst.append(np.repeat(s.owned, np.diff(s.indptr)))
        # every halo row is used by some in-edge (no spare rows)
        assert np.all(np.isin(np.arange(s.num_owned, rows.size), s.indices))
        seen[s.owned] += 1
        for name in ("feat", "label", "train_mask", "val_mask", "test_mask", "orig_ids"):
            out[name][s.owned] = getattr(s, name)
        out.setdefault("in_deg_local", []).append((rows, np.asarray(s.in_deg),
                                                   np.asarray(s.out_deg)))
    assert np.all(seen == 1)
    src, dst = np.concatenate(src), np.concatenate(dst)
    order = np.argsort(dst, kind="stable")
    out["indices"] = src[order]
    out["indptr"] = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))])
    return out


def assert_exact(graph: Graph, folder: str) -> None:
    """Assert the shards of ``folder`` rebuild ``graph`` exactly, with global degrees."""
    got = rebuild(folder)
    np.testing.assert_array_equal(got["indptr"], graph.indptr)
    np.testing.assert_array_equal(got["indices"], graph.indices)
    for name in ("feat", "label", "train_mask", "val_mask", "test_mask", "orig_ids"):
        np.testing.assert_array_equal(got[name], getattr(graph, name), err_msg=name)
    in_deg, out_deg = graph.in_degrees(), graph.out_degrees()
    for rows, shard_in, shard_out in got["in_deg_local"]:
        np.testing.assert_array_equal(shard_in, in_deg[rows])
        np.testing.assert_array_equal(shard_out, out_deg[rows])
