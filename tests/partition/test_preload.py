"""Server-wise preload: closure vs a plain-Python BFS, sampling, on-disk round trip, CLI."""
from __future__ import annotations

import numpy as np
import pytest

from gnnsys.cli import main
from gnnsys.errors import UserError
from gnnsys.partition import PartitionError, load_manifest, partition_graph, verify_partition
from gnnsys.partition.preload import open_preload, server_closure
from tests.partition.conftest import random_graph


def _node_server(n: int, servers: int = 2, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, servers, n).astype(np.int64)


def _in_neighbours(graph, v: int) -> list[int]:
    return graph.indices[graph.indptr[v]:graph.indptr[v + 1]].tolist()


def _reference(graph, node_server, server, hops):
    """Plain-Python BFS over in-edges: {external node: hop} within ``hops`` hops."""
    dist = {v: 0 for v in range(graph.num_nodes) if node_server[v] == server}
    frontier = sorted(dist)
    for hop in range(1, hops + 1):
        new = set()
        for v in frontier:
            for u in _in_neighbours(graph, v):
                if u not in dist:
                    dist[u] = hop
                    new.add(u)
        frontier = sorted(new)
    return {v: h for v, h in dist.items() if h > 0}


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_full_closure_matches_reference(hops):
    graph = random_graph(n=200, e=600)
    node_server = _node_server(graph.num_nodes)
    for server in (0, 1):
        c = server_closure(graph, node_server, server, hops, -1)
        ref = _reference(graph, node_server, server, hops)
        expected = sorted(ref, key=lambda v: (ref[v], v))
        assert c["nodes"].tolist() == expected
        assert c["hop"].tolist() == [ref[v] for v in expected]
        for i, v in enumerate(c["nodes"].tolist()):
            row = c["indices"][c["indptr"][i]:c["indptr"][i + 1]].tolist()
            # rows below L carry every in-edge (all sources are in the closure); hop L: none
            assert row == (sorted(_in_neighbours(graph, v)) if ref[v] < hops else [])
        own = np.flatnonzero(node_server == server)
        want = sorted((v, u) for v in own for u in _in_neighbours(graph, v)
                      if node_server[u] != server)
        assert list(zip(c["boundary_dst"].tolist(), c["boundary_src"].tolist())) == want


def test_sampled_closure_properties():
    graph = random_graph(n=400, e=4000, isolated=0)
    node_server = _node_server(graph.num_nodes)
    hops, fanout = 2, 3
    c = server_closure(graph, node_server, 0, hops, fanout, seed=7)
    full = _reference(graph, node_server, 0, hops)
    nodes, hop = c["nodes"], c["hop"]
    assert np.all(node_server[nodes] != 0)                    # external
    assert all(full[v] <= h for v, h in zip(nodes.tolist(), hop.tolist()))  # within L hops
    assert len(nodes) < len(full)
    in_closure = set(nodes.tolist()) | set(np.flatnonzero(node_server == 0).tolist())
    for i, v in enumerate(nodes.tolist()):
        row = c["indices"][c["indptr"][i]:c["indptr"][i + 1]]
        neigh = set(_in_neighbours(graph, v))
        assert set(row.tolist()) <= neigh and set(row.tolist()) <= in_closure  # real in-neighbours
        assert np.sum(node_server[row] != 0) <= fanout        # at most f external per node
        if hop[i] < hops:                                     # owned in-neighbours all kept
            assert {u for u in neigh if node_server[u] == 0} <= set(row.tolist())
    dst, src = c["boundary_dst"], c["boundary_src"]
    assert np.all(np.bincount(dst, minlength=graph.num_nodes) <= fanout)
    assert all(u in _in_neighbours(graph, v) for v, u in zip(dst.tolist(), src.tolist()))
    # every sampled source is preloaded, every preloaded node was sampled by someone
    assert set(src.tolist()) | set(c["indices"][node_server[c["indices"]] != 0].tolist()) \
        == set(nodes.tolist())
    again = server_closure(graph, node_server, 0, hops, fanout, seed=7)
    other = server_closure(graph, node_server, 0, hops, fanout, seed=8)
    assert all(np.array_equal(c[k], again[k]) for k in c)
    assert not all(np.array_equal(c[k], other[k]) for k in ("nodes", "boundary_src"))


def test_zero_fanout_preloads_nothing():
    graph = random_graph()
    c = server_closure(graph, _node_server(graph.num_nodes), 1, 2, 0)
    assert c["nodes"].size == 0 and c["boundary_src"].size == 0


def test_preload_files_round_trip_and_refuse_corruption(tmp_path):
    graph = random_graph()
    out = str(tmp_path / "p")
    result = partition_graph(graph, 4, out, servers=2, method="random", progress=False,
                             preload_hops=2, ext_fanout=2)
    manifest = load_manifest(out)
    assert manifest["preload"] == {"hops": 2, "ext_fanout": 2, "seed": 0}
    node_server = np.load(f"{out}/assignment.npy") // 2
    for server in (0, 1):
        pre = open_preload(out, server)
        expected = server_closure(graph, node_server, server, 2, 2, seed=0)
        for name, array in expected.items():
            np.testing.assert_array_equal(getattr(pre, name), array, err_msg=name)
        np.testing.assert_array_equal(pre.feat, graph.feat[pre.nodes])
        np.testing.assert_array_equal(pre.in_deg, graph.in_degrees()[pre.nodes])
        np.testing.assert_array_equal(pre.out_deg, graph.out_degrees()[pre.nodes])
        assert isinstance(pre.feat, np.memmap)
        stats = result["report"]["servers"][server]["preload"]
        assert stats["rows"] == pre.num_rows and stats["full_rows"] >= stats["rows"]
    verify_partition(out)
    path = f"{out}/server-1/feat.npy"
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(PartitionError, match="server-1/feat.npy"):
        open_preload(out, 1)
    with pytest.raises(PartitionError, match="server-1/feat.npy"):
        verify_partition(out)
    assert main(["info", out]) == 2
    open_preload(out, 0)  # the other server is untouched


def test_no_preload_with_one_server_or_zero_hops(tmp_path):
    graph = random_graph()
    partition_graph(graph, 2, str(tmp_path / "a"), method="random", progress=False)
    partition_graph(graph, 4, str(tmp_path / "b"), servers=2, method="random",
                    progress=False, preload_hops=0)
    for name in ("a", "b"):
        assert "preload" not in load_manifest(str(tmp_path / name))
        with pytest.raises(PartitionError, match="no preload"):
            open_preload(str(tmp_path / name), 0)
    with pytest.raises(UserError, match="ext-fanout"):
        partition_graph(graph, 4, str(tmp_path / "c"), servers=2, ext_fanout=-2)


def test_cli_flags(tmp_path, capsys):
    out = str(tmp_path / "k")
    assert main(["partition", "--dataset", "karate", "--servers", "2", "--parts", "4",
                 "--preload-hops", "2", "--ext-fanout", "3", "--method", "random",
                 "--out", out]) == 0
    text = capsys.readouterr().out
    assert "preload: 2 hops, external fanout 3" in text and "full rows" in text
    assert load_manifest(out)["preload"]["ext_fanout"] == 3
    assert main(["info", out]) == 0
    assert "preload rows" in capsys.readouterr().out
    for bad in (["--servers", "2", "--preload-hops", "-1"],
                ["--servers", "2", "--ext-fanout", "-2"],
                ["--servers", "1", "--preload-hops", "2"],
                ["--servers", "1", "--ext-fanout", "15"]):
        args = ["partition", "--dataset", "karate", "--parts", "4", "--method", "random",
                "--out", str(tmp_path / "bad"), *bad]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("--preload-hops" in err or "--ext-fanout" in err)
