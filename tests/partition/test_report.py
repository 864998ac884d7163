"""Quality report numbers on a hand-checked example, and the table."""
from __future__ import annotations

import numpy as np
import pytest

from gnnsys.graph import Graph
from gnnsys.partition import format_report, partition_graph


def test_report_on_a_path(tmp_path, monkeypatch):
    # 0 -> 1 -> 2 -> 3 -> 0 plus 1 -> 0; parts {0, 1} and {2, 3}
    edges = np.array([[0, 1, 2, 3, 1], [1, 2, 3, 0, 0]])
    graph = Graph.from_arrays(edge_index=edges, feat=np.zeros((4, 2), np.float32),
                              label=np.arange(4), train_mask=np.array([1, 1, 1, 0], bool),
                              val_mask=np.zeros(4, bool), test_mask=np.zeros(4, bool))
    monkeypatch.setattr("gnnsys.partition.api.assign_parts",
                        lambda *a, **k: np.array([0, 0, 1, 1]))
    report = partition_graph(graph, 2, str(tmp_path / "p"), progress=False)["report"]
    p0, p1 = report["parts"]
    assert (p0["owned"], p0["in_edges"], p0["halo"], p0["train"]) == (2, 3, 1, 2)
    assert (p1["owned"], p1["in_edges"], p1["halo"], p1["train"]) == (2, 2, 1, 1)
    assert report["edge_cut"] == 2 and report["edge_cut_fraction"] == pytest.approx(2 / 5)
    assert report["balance"]["in_edges"] == pytest.approx(3 / 2.5)
    assert report["balance"]["train"] == pytest.approx(2 / 1.5)
    assert report["replication_factor"] == pytest.approx(6 / 4)
    text = format_report(report)
    assert "edge cut: 2 (40.00% of edges)" in text and "replication factor: 1.500" in text


def test_two_level_report_has_server_table(small_graph, tmp_path):
    report = partition_graph(small_graph, 4, str(tmp_path / "p"), servers=2,
                             progress=False)["report"]
    servers = report["servers"]
    assert [s["parts"] for s in servers] == [[0, 1], [2, 3]]
    assert report["server_edge_cut"] == sum(p["cross_server_in_edges"] for p in report["parts"])
    assert report["server_edge_cut"] <= report["edge_cut"]
    assert all(0 < s["remote_rows"] <= small_graph.num_nodes for s in servers)
    assert "cross-server edge cut" in format_report(report)
