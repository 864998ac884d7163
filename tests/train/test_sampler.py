"""Neighbour sampling: real in-neighbours, fanout limits, uniformity, rank independence."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from gnnsys.data.registry import load_dataset
from gnnsys.errors import UserError
from gnnsys.graph import canonical_csr
from gnnsys.partition.api import partition_graph
from gnnsys.partition.format import open_shard
from gnnsys.train.sampler import LocalGraph, NeighborSampler, parse_fanouts


@pytest.fixture(scope="module")
def cora():
    return load_dataset("cora")


@pytest.fixture(scope="module")
def cora_parts(cora, tmp_path_factory):
    """Local graphs of cora in 4 parts on 2 servers."""
    out = str(tmp_path_factory.mktemp("sampler") / "cora4")
    partition_graph(cora, 4, out, servers=2, method="metis", progress=False)
    return [LocalGraph.from_shard(open_shard(out, k)) for k in range(4)]


def _rows_of(indptr, indices, v):
    return indices[indptr[v]:indptr[v + 1]]


@pytest.mark.parametrize("fanout", [1, 3, 10])
def test_sampled_neighbours_are_real_and_at_most_fanout(cora, fanout):
    graph = LocalGraph.from_csr(cora.indptr, cora.indices)
    sampler = NeighborSampler(graph, [fanout], seed=1)
    dst = np.arange(0, cora.num_nodes, 2)
    indptr, src_rows, local, n_own = sampler.sample_layer(dst, 0, epoch=3, step=2)
    np.testing.assert_array_equal(src_rows[:len(dst)], dst)
    assert n_own == len(src_rows) == len(np.unique(src_rows))
    for i, v in enumerate(dst):
        got = src_rows[local[indptr[i]:indptr[i + 1]]]
        true = _rows_of(cora.indptr, cora.indices, v)
        assert len(got) == min(fanout, len(true))
        assert np.all(np.isin(got, true))
        assert np.all(np.diff(got) > 0)  # no repeats, in the row's (ascending) order


def test_fanout_minus_one_keeps_every_in_neighbour(cora):
    graph = LocalGraph.from_csr(cora.indptr, cora.indices)
    dst = np.arange(cora.num_nodes)
    indptr, src_rows, local, _ = NeighborSampler(graph, [-1]).sample_layer(dst, 0)
    np.testing.assert_array_equal(indptr, cora.indptr)
    np.testing.assert_array_equal(src_rows[local], cora.indices)


def test_draws_are_uniform_without_replacement():
    # 6000 destinations, each with the same 10 in-neighbours (6000 .. 6009); keep 3 of them
    n, d = 6000, 10
    src = np.tile(np.arange(n, n + d, dtype=np.int64), n)
    indptr, indices = canonical_csr(src, np.repeat(np.arange(n, dtype=np.int64), d), n + d)
    sampler = NeighborSampler(LocalGraph.from_csr(indptr, indices), [3], seed=0)
    ip, src_rows, local, _ = sampler.sample_layer(np.arange(n), 0, epoch=1, step=0)
    picks = (src_rows[local] - n).reshape(n, 3)
    assert np.all(np.diff(picks, axis=1) > 0)  # 3 distinct neighbours per node
    freq = np.bincount(picks.ravel(), minlength=d) / n
    assert np.all(np.abs(freq - 0.3) < 0.03), freq  # sd ~ 0.006
    pair = np.zeros((d, d))
    for a, b in ((0, 1), (0, 2), (1, 2)):
        np.add.at(pair, (picks[:, a], picks[:, b]), 1)
    pair_freq = pair[np.triu_indices(d, 1)] / n
    assert np.all(np.abs(pair_freq - 1 / 15) < 0.02), pair_freq  # C(8,1)/C(10,3) per pair


def test_sampling_is_deterministic_and_changes_with_epoch_step_layer_seed(cora):
    graph = LocalGraph.from_csr(cora.indptr, cora.indices)
    dst = np.arange(cora.num_nodes)

    def edges(seed=0, epoch=0, step=0, layer=0):
        ip, src_rows, local, _ = NeighborSampler(graph, [2, 2], seed).sample_layer(
            dst, layer, epoch, step)
        return src_rows[local]

    base = edges()
    np.testing.assert_array_equal(base, edges())
    for change in ({"seed": 1}, {"epoch": 1}, {"step": 1}, {"layer": 1}):
        assert np.mean(edges(**change) != base) > 0.2, change


def _alltoall_in_process(parts: int):
    """One ``request`` callable per simulated worker (threads meeting at a barrier)."""
    barrier = threading.Barrier(parts)
    box = [[None] * parts for _ in range(parts)]

    def make(rank):
        def request(needed):
            for peer in range(parts):
                box[rank][peer] = needed[peer]
            barrier.wait()
            got = [box[peer][rank] for peer in range(parts)]
            barrier.wait()
            return got
        return request
    return [make(r) for r in range(parts)]


def _cooperative(graphs, seeds_global, fanouts, **kw):
    """Sample one step on every part in threads; return the SampledBatch of each part."""
    parts = len(graphs)
    requests = _alltoall_in_process(parts)
    out, errors = [None] * parts, []

    def work(k):
        try:
            g = graphs[k]
            mine = np.isin(g.global_ids[:g.num_own], seeds_global)
            out[k] = NeighborSampler(g, fanouts, seed=4).sample(np.flatnonzero(mine),
                                                                request=requests[k], **kw)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return out


def _edge_set(batch, global_ids, layer):
    block = batch.blocks[layer]
    src = global_ids[batch.src_rows[layer][block.indices.numpy()]]
    dst = global_ids[batch.rows[layer + 1]][block.edge_dst.numpy()]
    return set(zip(dst.tolist(), src.tolist()))


def test_cooperative_sample_equals_one_process_sample(cora, cora_parts):
    seeds = np.flatnonzero(cora.train_mask)
    fanouts = [5, 3]
    single = NeighborSampler(LocalGraph.from_csr(cora.indptr, cora.indices), fanouts,
                             seed=4).sample(seeds, epoch=2, step=1)
    batches = _cooperative(cora_parts, seeds, fanouts, epoch=2, step=1)
    ident = np.arange(cora.num_nodes)
    for layer in range(2):
        union = set()
        for g, b in zip(cora_parts, batches):
            union |= _edge_set(b, g.global_ids, layer)
        assert union == _edge_set(single, ident, layer)
        computed = np.concatenate([g.global_ids[b.rows[layer]]
                                   for g, b in zip(cora_parts, batches)])
        assert len(computed) == len(np.unique(computed))  # every row computed by one worker
        np.testing.assert_array_equal(np.sort(computed), np.sort(single.rows[layer]))


def test_cooperative_send_positions_match_the_receivers_halo_order(cora, cora_parts):
    batches = _cooperative(cora_parts, np.flatnonzero(cora.train_mask), [4, 4], epoch=0)
    for layer in range(2):
        for k, (gk, bk) in enumerate(zip(cora_parts, batches)):
            halo = bk.src_rows[layer][bk.num_owned_src[layer]:]
            start = 0
            for owner, count in enumerate(bk.recv_counts[layer]):
                go, bo = cora_parts[owner], batches[owner]
                sent = go.global_ids[bo.rows[layer][bo.send[layer][k]]]
                np.testing.assert_array_equal(sent, gk.global_ids[halo[start:start + count]])
                start += count
            assert start == len(halo)
            owned_prefix = bk.src_rows[layer][:bk.num_owned_src[layer]]
            np.testing.assert_array_equal(bk.rows[layer][:len(owned_prefix)], owned_prefix)


def test_halo_rows_without_request_are_refused(cora_parts):
    g = cora_parts[0]
    with pytest.raises(ValueError, match="request"):
        NeighborSampler(g, [-1]).sample(np.arange(g.num_own))


def test_parse_fanouts():
    assert parse_fanouts("10,25", 2) == [10, 25]
    assert parse_fanouts("-1", 3) == [-1, -1, -1]
    for bad, layers in (("10,25", 3), ("0", 2), ("-2", 1), ("a,b", 2)):
        with pytest.raises(UserError, match="--fanouts"):
            parse_fanouts(bad, layers)
