"""Tests for gnnsys.data.ogb: tiny graphs written in OGB's on-disk layout, loaded for real."""
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ogb", reason="the ogb package is not installed")

from gnnsys.data import load_dataset  # noqa: E402
from gnnsys.data.ogb import load_ogb  # noqa: E402
from gnnsys.errors import UserError  # noqa: E402
from gnnsys.partition import load_manifest, open_shard  # noqa: E402

N, F = 12, 4
EDGES = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 2, 2],
                  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0, 0]])  # one duplicate edge 2 -> 0


def write_csv_gz(path: Path, rows: np.ndarray, fmt: str = "%d") -> None:
    """Write a header-less gzipped CSV as OGB ships it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = np.asarray(rows)
    rows = rows.reshape(len(rows), -1)
    with gzip.open(path, "wt") as f:
        for row in rows:
            f.write(",".join(fmt % v if v == v else "nan" for v in row) + "\n")


def write_ogb(root: Path, folder: str = "ogbn_arxiv", split: str = "time",
              release: bool = True) -> dict:
    """Write a tiny node-property dataset in OGB's raw layout under ``root/folder``."""
    rng = np.random.default_rng(0)
    feat = rng.standard_normal((N, F)).astype(np.float32)
    label = (np.arange(N) % 3).astype(np.float64)
    label[11] = np.nan  # unlabelled node
    d = root / folder
    write_csv_gz(d / "raw" / "edge.csv.gz", EDGES.T)
    write_csv_gz(d / "raw" / "num-node-list.csv.gz", np.array([N]))
    write_csv_gz(d / "raw" / "num-edge-list.csv.gz", np.array([EDGES.shape[1]]))
    write_csv_gz(d / "raw" / "node-feat.csv.gz", feat, fmt="%.9g")
    write_csv_gz(d / "raw" / "node-label.csv.gz", label, fmt="%d")
    split_idx = {"train": np.arange(0, 6), "valid": np.arange(6, 8), "test": np.arange(8, 11)}
    for key, idx in split_idx.items():
        write_csv_gz(d / "split" / split / f"{key}.csv.gz", idx)
    if release:
        (d / "RELEASE_v1.txt").write_text("tiny test copy\n")
    return {"feat": feat, "label": label, "split": split_idx}


def test_arxiv_layout_loads_exactly(tmp_path):
    truth = write_ogb(tmp_path)
    g = load_dataset("ogb:ogbn-arxiv", root=str(tmp_path))
    assert g.name == "ogbn-arxiv" and g.num_nodes == N
    np.testing.assert_array_equal(g.feat, truth["feat"])
    assert g.label[11] == -1 and list(g.label[:6]) == [0, 1, 2, 0, 1, 2]
    src, dst = g.edge_index()
    assert set(zip(src.tolist(), dst.tolist())) == set(zip(*EDGES.tolist()))
    assert g.num_edges == EDGES.shape[1] - 1  # duplicate merged, arxiv stays directed
    assert np.flatnonzero(g.train_mask).tolist() == list(range(6))
    assert np.flatnonzero(g.val_mask).tolist() == [6, 7]
    assert np.flatnonzero(g.test_mask).tolist() == [8, 9, 10]


def test_undirected_and_add_inverse_edge(tmp_path):
    write_ogb(tmp_path)
    g = load_ogb("ogbn-arxiv", root=str(tmp_path), undirected=True)
    assert g.num_edges == 2 * (EDGES.shape[1] - 1)
    write_ogb(tmp_path, folder="ogbn_products", split="sales_ranking")
    p = load_ogb("ogbn-products", root=str(tmp_path))  # OGB marks add_inverse_edge
    assert p.num_edges == g.num_edges


def test_download_folder_name_is_accepted(tmp_path):
    write_ogb(tmp_path, folder="arxiv")  # the zip's own folder name
    assert load_ogb("ogbn-arxiv", root=str(tmp_path)).num_nodes == N


def test_missing_dataset_says_where_to_put_files(tmp_path):
    with pytest.raises(UserError) as err:
        load_ogb("ogbn-arxiv", root=str(tmp_path))
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "ogbn_arxiv" / "raw" / "edge.csv.gz") in msg
    assert "arxiv.zip" in msg and "never downloads" in msg
    assert not any(tmp_path.iterdir())  # nothing was downloaded or written


def test_missing_release_file_errors_instead_of_prompting(tmp_path):
    write_ogb(tmp_path, release=False)
    with pytest.raises(UserError, match="RELEASE_v1.txt"):
        load_ogb("ogbn-arxiv", root=str(tmp_path))


def test_pickles_in_the_folder_are_never_loaded(tmp_path):
    truth = write_ogb(tmp_path)
    d = tmp_path / "ogbn_arxiv"
    (d / "processed").mkdir()
    (d / "processed" / "data_processed").write_bytes(b"not a pickle")
    (d / "split" / "time" / "split_dict.pt").write_bytes(b"not a pickle")
    g = load_ogb("ogbn-arxiv", root=str(tmp_path))
    np.testing.assert_array_equal(g.feat, truth["feat"])


@pytest.mark.parametrize("name, match", [("ogbn-mag", "homogeneous"), ("ogbn-nope", "unknown")])
def test_unsupported_datasets_are_refused(tmp_path, name, match):
    with pytest.raises(UserError, match=match):
        load_ogb(name, root=str(tmp_path))


def test_cli_partition_and_save_with_root(tmp_path):
    write_ogb(tmp_path)
    out = tmp_path / "parts"
    cli = [sys.executable, "-m", "gnnsys.cli"]
    done = subprocess.run(cli + ["partition", "--dataset", "ogb:ogbn-arxiv", "--root",
                                 str(tmp_path), "--parts", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert load_manifest(str(out))["dataset"]["name"] == "ogbn-arxiv"
    assert sum(open_shard(str(out), p).num_owned for p in range(2)) == N
    npz = tmp_path / "arxiv.npz"
    done = subprocess.run(cli + ["datasets", "--save", "ogb:ogbn-arxiv", str(npz), "--root",
                                 str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert load_dataset(str(npz)).num_nodes == N
    done = subprocess.run(cli + ["partition", "--dataset", "ogb:ogbn-arxiv", "--root",
                                 str(tmp_path / "nowhere"), "--parts", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "never downloads" in done.stderr
