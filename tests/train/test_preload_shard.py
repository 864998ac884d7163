"""The preload worker layout, built for every part in one process (threads stand in for ranks).

Checks what the trainer relies on: every row of a server's closure has exactly one worker, halo
rows come only from workers of the same server and line up with their owners' send lists, the
owned rows keep all their in-edges with the full closure, and rows are in hop order.
"""
import threading

import numpy as np
import pytest

from gnnsys.graph import Graph
from gnnsys.partition.api import partition_graph
from gnnsys.partition.format import open_shard
from gnnsys.partition.preload import open_preload
from gnnsys.train.preload_shard import build_preload_shard, layer_row_counts, preload_owners
from tests.train.test_equivalence import community_graph


class _Alltoall:
    """An all-to-all of arrays between ``n`` threads (one per rank)."""

    def __init__(self, n: int) -> None:
        self.box = [None] * n
        self.barrier = threading.Barrier(n)

    def request(self, rank: int):
        def swap(arrays):
            self.box[rank] = list(arrays)
            self.barrier.wait()
            out = [self.box[peer][rank] for peer in range(len(self.box))]
            self.barrier.wait()
            return out
        return swap


def _build_all(folder: str, parts: int):
    assignment = np.load(f"{folder}/assignment.npy")
    net, out = _Alltoall(parts), [None] * parts

    def work(part):
        shard = open_shard(folder, part)
        out[part] = build_preload_shard(shard, open_preload(folder, shard.server), assignment,
                                        net.request(part))

    threads = [threading.Thread(target=work, args=(p,)) for p in range(parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(s is not None for s in out), "a worker failed to build its layout"
    return out, assignment


@pytest.fixture(scope="module")
def graph() -> Graph:
    return community_graph(n=300, seed=1)


@pytest.mark.parametrize("fanout", [-1, 2])
def test_layout_is_consistent_across_workers(graph, fanout, tmp_path):
    folder = str(tmp_path / "p")
    partition_graph(graph, 4, folder, servers=2, preload_hops=2, ext_fanout=fanout,
                    progress=False)
    shards, assignment = _build_all(folder, 4)
    server_of_part = np.array([0, 0, 1, 1])
    for server in (0, 1):
        workers = [shards[p] for p in np.flatnonzero(server_of_part == server)]
        rows = np.concatenate([w.owned for w in workers])
        pre = open_preload(folder, server)
        expected = np.concatenate([np.flatnonzero(server_of_part[assignment] == server),
                                   np.asarray(pre.nodes)])
        assert len(rows) == len(np.unique(rows)) == len(expected)  # one owner per row
        assert set(rows.tolist()) == set(expected.tolist())
    for part, local in enumerate(shards):
        assert np.all(np.diff(local.hop) >= 0) and np.all(local.hop[:local.num_part_owned] == 0)
        for peer in range(4):
            halo = local.halo[local.halo_offsets[peer]:local.halo_offsets[peer + 1]]
            if server_of_part[peer] != server_of_part[part]:
                assert len(halo) == 0  # nothing ever comes from another server
            sent = shards[peer].send_index[shards[peer].send_offsets[part]:
                                           shards[peer].send_offsets[part + 1]]
            np.testing.assert_array_equal(shards[peer].owned[sent], halo)
        local_gids = np.concatenate([local.owned, local.halo])
        for row in range(local.num_part_owned):
            got = local_gids[local.indices[local.indptr[row]:local.indptr[row + 1]]]
            node = local.owned[row]
            full = graph.indices[graph.indptr[node]:graph.indptr[node + 1]]
            assert np.all(np.diff(got) >= 0)
            if fanout < 0:
                np.testing.assert_array_equal(got, full)
            else:
                assert set(got.tolist()) <= set(full.tolist())
        degrees = np.diff(graph.indptr)
        np.testing.assert_array_equal(local.in_deg, degrees[local_gids])


def test_preload_rows_split_evenly_per_hop():
    hop = np.array([1] * 7 + [2] * 4 + [3])
    owners = preload_owners(hop, 2)
    for h in (1, 2):
        counts = np.bincount(owners[hop == h], minlength=2)
        assert abs(counts[0] - counts[1]) <= 1
    assert np.all(np.diff(owners[hop == 1]) >= 0)  # contiguous shares within a hop


def test_layer_row_counts_are_hop_prefixes():
    hop = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    assert layer_row_counts(hop, 3) == [8, 5, 3]
    assert layer_row_counts(hop, 2) == [5, 3]
