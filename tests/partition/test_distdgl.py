"""Tests for gnnsys.partition.distdgl: a partition made by DGL's own ``partition_graph``,
converted, gives exactly the shards gnnsys writes for the same assignment (DGL env only)."""
import json
import numpy as np
import pytest
import torch

from gnnsys.cli import main
from gnnsys.errors import UserError
from gnnsys.partition import load_manifest, open_shard, partition_graph, verify_partition
from gnnsys.partition.distdgl import convert_distdgl, read_config, read_distdgl

PARTS = 3


def tiny_dgl_partition(tmp_path, save_mapping=True):
    """A 60-node directed graph partitioned by DGL (METIS, 3 parts); returns (g, config, orig)."""
    dgl = pytest.importorskip("dgl", reason="dgl is not installed (run in .venv-dgl)")
    rng = np.random.default_rng(0)
    n = 60
    src, dst = rng.integers(0, n, 300), rng.integers(0, n, 300)
    g = dgl.graph((torch.from_numpy(src), torch.from_numpy(dst)), num_nodes=n)
    g.ndata["feat"] = torch.randn(n, 5)
    g.ndata["label"] = torch.from_numpy(rng.integers(0, 3, n))
    split = rng.integers(0, 3, n)
    for index, key in enumerate(("train_mask", "val_mask", "test_mask")):
        g.ndata[key] = torch.from_numpy(split == index)
    orig, _ = dgl.distributed.partition_graph(g, "tiny", PARTS, str(tmp_path / "dgl"),
                                              part_method="metis", return_mapping=True)
    if save_mapping:
        np.save(tmp_path / "dgl" / "orig_nids.npy", orig.numpy())
    return g, str(tmp_path / "dgl" / "tiny.json"), orig.numpy()


@pytest.mark.dgl
def test_converted_shards_equal_gnnsys_shards_for_the_same_assignment(tmp_path):
    from gnnsys.data.dgl import graph_from_dgl

    g, config, orig = tiny_dgl_partition(tmp_path)
    result = convert_distdgl(config, str(tmp_path / "conv"))
    verify_partition(str(tmp_path / "conv"))
    graph = graph_from_dgl(g, name="tiny")
    converted = load_manifest(str(tmp_path / "conv"))
    assert converted["dataset"]["content_hash"] == graph.content_hash()  # same graph, same IDs
    assert converted["method"] == "distdgl" and converted["parts"] == PARTS
    # owned nodes = DGL's inner nodes (shuffled range of each part, mapped to original IDs)
    ranges = read_config(config)["node_map"]["_N"]
    assignment = np.empty(g.num_nodes(), dtype=np.int64)
    for part, (start, end) in enumerate(ranges):
        shard = open_shard(str(tmp_path / "conv"), part)
        assert shard.owned.tolist() == \
            sorted(orig[start:end].tolist())
        assignment[orig[start:end]] = part
    partition_graph(graph, PARTS, str(tmp_path / "direct"), assignment=assignment,
                    method="distdgl", progress=False)
    direct = load_manifest(str(tmp_path / "direct"))
    assert converted["files"] == direct["files"]  # byte-identical shards (sha256 per file)
    assert result["report"] == direct["report"]


@pytest.mark.dgl
def test_without_mapping_nodes_keep_distdgl_ids(tmp_path):
    g, config, orig = tiny_dgl_partition(tmp_path, save_mapping=False)
    graph, assignment = read_distdgl(config)
    assert graph.meta["ids"] == "distdgl-shuffled"
    np.testing.assert_array_equal(graph.feat, g.ndata["feat"].numpy()[orig])
    src, dst = graph.edge_index()
    s, d = (t.numpy() for t in g.edges())
    keep = s != d
    assert set(zip(orig[src].tolist(), orig[dst].tolist())) == set(zip(s[keep].tolist(),
                                                                       d[keep].tolist()))
    assert np.array_equal(np.bincount(assignment), [e - s for s, e in
                                                     read_config(config)["node_map"]["_N"]])


@pytest.mark.dgl
def test_cli_converts(tmp_path, capsys):
    _, config, _ = tiny_dgl_partition(tmp_path)
    out = tmp_path / "cli"
    assert main(["partition", "--from-distdgl", config, "--out", str(out)]) == 0
    assert "converted the DistDGL partition" in capsys.readouterr().out
    assert load_manifest(str(out))["parts"] == PARTS
    assert main(["partition", "--from-distdgl", config, "--out", str(out)]) == 2  # exists
    assert main(["partition", "--parts", "2"]) == 2
    assert "--dataset required" in capsys.readouterr().err


def test_bad_configs_are_one_line_user_errors(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        read_config(str(tmp_path / "missing.json"))
    (tmp_path / "x.json").write_text(json.dumps({"graph_name": "x"}))
    with pytest.raises(UserError, match="not a DistDGL partition config"):
        read_config(str(tmp_path / "x.json"))
    (tmp_path / "h.json").write_text(json.dumps({"graph_name": "h", "num_parts": 1,
                                                 "num_nodes": 2, "node_map": {"a": [[0, 1]],
                                                                              "b": [[0, 1]]}}))
    with pytest.raises(UserError, match="homogeneous"):
        read_config(str(tmp_path / "h.json"))
