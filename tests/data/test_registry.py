"""Tests for gnnsys.data.registry: named datasets, checksums, spec parsing."""
import shutil

import numpy as np
import pytest

from gnnsys.data import list_datasets, load_dataset, save_npz
from gnnsys.data.registry import ENV_VAR, datasets_dir, parse_synthetic_spec
from gnnsys.errors import UserError


@pytest.mark.parametrize("name, nodes, edges, features, classes, split, class_sizes", [
    ("cora", 2708, 10556, 1433, 7, (140, 500, 1000), [351, 217, 418, 818, 426, 298, 180]),
    ("citeseer", 3327, 9104, 3703, 6, (120, 500, 1000), [249, 590, 668, 701, 596, 508]),
])
def test_planetoid_sizes_and_split(name, nodes, edges, features, classes, split, class_sizes):
    g = load_dataset(name)
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (
        nodes, edges, features, classes)
    assert tuple(int(m.sum()) for m in (g.train_mask, g.val_mask, g.test_mask)) == split
    assert not (g.train_mask & g.val_mask).any() and not (g.val_mask & g.test_mask).any()
    # public split: train = first 20 per class, val = the next 500 nodes
    np.testing.assert_array_equal(np.flatnonzero(g.train_mask), np.arange(split[0]))
    assert np.bincount(g.label[g.train_mask]).tolist() == [20] * classes
    np.testing.assert_array_equal(np.flatnonzero(g.val_mask), np.arange(split[0], split[0] + 500))
    assert np.bincount(g.label[g.label >= 0]).tolist() == class_sizes
    src, dst = g.edge_index()
    assert set(zip(src.tolist(), dst.tolist())) == set(zip(dst.tolist(), src.tolist()))
    assert g.name == name


def test_citeseer_padding_nodes_are_unlabelled_and_in_no_split():
    g = load_dataset("citeseer")
    pad = np.flatnonzero(g.label < 0)
    assert pad.tolist() == [2407, 2489, 2553, 2682, 2781, 2953, 3042, 3063, 3212, 3214, 3250,
                            3292, 3305, 3306, 3309]
    assert not (g.train_mask | g.val_mask | g.test_mask)[pad].any()
    assert not g.feat[pad].any()


def _copy_shipped(tmp_path):
    for name in ("cora.npz", "citeseer.npz"):
        shutil.copy(datasets_dir() / name, tmp_path / name)


def test_override_folder_is_used(tmp_path, monkeypatch):
    _copy_shipped(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert datasets_dir() == tmp_path
    assert load_dataset("cora").num_nodes == 2708


def test_tampered_shipped_file_is_refused(tmp_path, monkeypatch):
    _copy_shipped(tmp_path)
    path = tmp_path / "cora.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match=r"cora\.npz fails its sha256"):
        load_dataset("cora")
    assert load_dataset("citeseer").num_nodes == 3327  # the untouched copy still loads


def test_replaced_shipped_file_is_refused_even_if_valid(tmp_path, monkeypatch):
    save_npz(load_dataset("karate"), tmp_path / "cora.npz", compress=True)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match="sha256"):
        load_dataset("cora")


def test_missing_shipped_file_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(UserError, match=ENV_VAR):
        load_dataset("citeseer")


def test_npz_path_spec(tmp_path):
    path = tmp_path / "k.npz"
    save_npz(load_dataset("karate"), path)
    g = load_dataset(str(path))
    assert g.num_nodes == 34 and isinstance(g.feat, np.memmap)


def test_synthetic_spec_parsing():
    assert parse_synthetic_spec("synthetic:100k") == {"num_nodes": 100_000}
    assert parse_synthetic_spec("synthetic:2M,deg=5.5,classes=3,feat=16,seed=7,"
                                "homophily=0.9,snr=2") == {
        "num_nodes": 2_000_000, "avg_degree": 5.5, "num_classes": 3, "num_features": 16,
        "seed": 7, "homophily": 0.9, "feature_snr": 2.0}
    g = load_dataset("synthetic:300,deg=4,classes=3,feat=8,seed=1")
    assert (g.num_nodes, g.num_features, g.num_classes) == (300, 8, 3)


@pytest.mark.parametrize("spec, match", [
    ("cor", "unknown dataset 'cor'.*karate, cora, citeseer"),
    ("", "unknown dataset"),
    ("synthetic:", "bad node count"),
    ("synthetic:ten", "bad node count"),
    ("synthetic:-5", "bad node count"),
    ("synthetic:100,deg", "bad option 'deg'"),
    ("synthetic:100,colour=3", "bad option 'colour=3'.*valid keys"),
    ("synthetic:100,classes=2.5", "bad value '2.5' for 'classes'"),
    ("synthetic:100,deg=500", "avg_degree"),
    ("synthetic:1", "num_nodes"),
    ("missing/graph.npz", "not found"),
])
def test_bad_specs_are_user_errors(spec, match):
    with pytest.raises(UserError, match=match):
        load_dataset(spec)


def test_list_datasets_names_every_loadable_name():
    names = [name for name, _ in list_datasets()]
    assert names == ["karate", "cora", "citeseer", "synthetic:N"]
    for name, description in list_datasets():
        assert ": " in description and "\n" not in description
