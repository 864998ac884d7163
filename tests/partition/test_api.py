"""partition_graph: option and output-folder validation, return value."""
from __future__ import annotations

import os

import pytest

from gnnsys.errors import UserError
from gnnsys.partition import partition_graph


@pytest.mark.parametrize("kwargs", [dict(parts=0), dict(parts=301), dict(parts=4, servers=3),
                                    dict(parts=4, servers=0), dict(parts=2, method="kmeans")])
def test_bad_options(small_graph, tmp_path, kwargs):
    with pytest.raises(UserError):
        partition_graph(small_graph, out=str(tmp_path / "p"), progress=False, **kwargs)
    assert os.listdir(tmp_path) == []


def test_existing_output_needs_overwrite(small_graph, tmp_path):
    out = str(tmp_path / "p")
    partition_graph(small_graph, 2, out, progress=False)
    with pytest.raises(UserError, match="already exists"):
        partition_graph(small_graph, 2, out, progress=False)


def test_refuses_to_overwrite_a_non_partition_folder(small_graph, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match="not a gnnsys partition"):
        partition_graph(small_graph, 2, str(tmp_path / "docs"), overwrite=True, progress=False)
    assert (tmp_path / "docs" / "thesis.tex").read_text() == "precious"


def test_unwritable_parent(small_graph, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        partition_graph(small_graph, 2, str(blocker / "sub" / "p"), progress=False)


def test_returns_report_and_timings(small_graph, tmp_path):
    result = partition_graph(small_graph, 4, str(tmp_path / "p"), servers=2, progress=False)
    report, timings = result["report"], result["timings"]
    assert len(report["parts"]) == 4 and len(report["servers"]) == 2
    assert sum(p["owned"] for p in report["parts"]) == small_graph.num_nodes
    assert sum(p["in_edges"] for p in report["parts"]) == small_graph.num_edges
    assert set(timings) >= {"assign", "relabel_halo", "write", "total", "peak_rss_bytes"}
    assert timings["peak_rss_bytes"] > 0
