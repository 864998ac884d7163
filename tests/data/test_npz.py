"""Tests for gnnsys.data.npz: the .npz graph format (round trip, memmap, errors, atomic write)."""
import zipfile

import numpy as np
import pytest

import gnnsys.data.npz as npz_mod
from gnnsys.data.npz import load_npz, save_npz
from gnnsys.errors import UserError
from gnnsys.graph import Graph, GraphError

N = 6
FEAT = np.arange(N * 3, dtype=np.float32).reshape(N, 3)
LABEL = np.array([0, 1, 0, 1, -1, 2])
# 0->1 twice (duplicate), 2->2 (self-loop), 3->1, 1->0; nodes 4 and 5 isolated
EDGE_INDEX = np.array([[0, 0, 2, 3, 1], [1, 1, 2, 1, 0]])
CANON_INDPTR = np.array([0, 1, 3, 3, 3, 3, 3])
CANON_INDICES = np.array([1, 0, 3])


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_edge_index_input_is_canonicalised(tmp_path):
    g = load_npz(_write(tmp_path / "g.npz", edge_index=EDGE_INDEX, feat=FEAT, label=LABEL))
    np.testing.assert_array_equal(g.indptr, CANON_INDPTR)
    np.testing.assert_array_equal(g.indices, CANON_INDICES)
    assert g.num_nodes == N and g.name == "g"
    np.testing.assert_array_equal(g.orig_ids, np.arange(N))


def test_csr_input_is_canonicalised(tmp_path):
    # row 1 holds sources [3, 0, 0] (unsorted, duplicate), row 2 its self-loop
    indptr = np.array([0, 1, 4, 5, 5, 5, 5])
    indices = np.array([1, 3, 0, 0, 2])
    g = load_npz(_write(tmp_path / "g.npz", indptr=indptr, indices=indices, feat=FEAT,
                        label=LABEL))
    np.testing.assert_array_equal(g.indptr, CANON_INDPTR)
    np.testing.assert_array_equal(g.indices, CANON_INDICES)


def test_undirected_adds_reverse_edges(tmp_path):
    g = load_npz(_write(tmp_path / "g.npz", edge_index=np.array([[0], [1]]), feat=FEAT,
                        label=LABEL), undirected=True)
    src, dst = g.edge_index()
    assert sorted(zip(src.tolist(), dst.tolist())) == [(0, 1), (1, 0)]


def test_round_trip_keeps_everything(tmp_path):
    masks = [np.array(m, dtype=bool) for m in
             ([1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 1])]
    g = Graph.from_arrays(edge_index=EDGE_INDEX, feat=FEAT, label=LABEL, train_mask=masks[0],
                          val_mask=masks[1], test_mask=masks[2],
                          orig_ids=np.arange(100, 100 + N))
    for compress in (False, True):
        path = tmp_path / f"rt-{compress}.npz"
        save_npz(g, path, compress=compress)
        back = load_npz(path)
        assert back.content_hash() == g.content_hash()
        np.testing.assert_array_equal(back.orig_ids, np.arange(100, 100 + N))
        with np.load(path) as z:  # the documented layout, readable by plain numpy
            assert sorted(z.files) == sorted(["indptr", "indices", "feat", "label", "orig_ids",
                                              "train_mask", "val_mask", "test_mask"])


def test_saved_file_is_stored_and_feat_is_an_aligned_readonly_memmap(tmp_path):
    g = Graph.from_arrays(edge_index=EDGE_INDEX, feat=FEAT, label=LABEL)
    path = tmp_path / "g.npz"
    save_npz(g, path)
    with zipfile.ZipFile(path) as zf:
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    back = load_npz(path)
    assert isinstance(back.feat, np.memmap)
    assert not back.feat.flags.writeable and back.feat.flags.aligned
    np.testing.assert_array_equal(back.feat, FEAT)
    assert isinstance(load_npz(path, mmap=False).feat, np.ndarray)
    assert not isinstance(load_npz(path, mmap=False).feat, np.memmap)


def test_numpy_savez_feat_is_memmapped_even_fortran_order(tmp_path):
    feat = np.asfortranarray(FEAT)
    g = load_npz(_write(tmp_path / "g.npz", edge_index=EDGE_INDEX, feat=feat, label=LABEL))
    assert isinstance(g.feat, np.memmap)
    np.testing.assert_array_equal(g.feat, FEAT)


def test_compressed_feat_is_read_not_mapped(tmp_path):
    path = tmp_path / "g.npz"
    np.savez_compressed(path, edge_index=EDGE_INDEX, feat=FEAT, label=LABEL)
    g = load_npz(path)
    assert not isinstance(g.feat, np.memmap)
    np.testing.assert_array_equal(g.feat, FEAT)


@pytest.mark.parametrize("arrays, match", [
    ({"edge_index": EDGE_INDEX, "label": LABEL}, "missing array 'feat'"),
    ({"edge_index": EDGE_INDEX, "feat": FEAT}, "missing array 'label'"),
    ({"feat": FEAT, "label": LABEL}, "either 'edge_index' or 'indptr'"),
    ({"indptr": CANON_INDPTR, "feat": FEAT, "label": LABEL}, "either 'edge_index' or 'indptr'"),
    ({"edge_index": EDGE_INDEX[0], "feat": FEAT, "label": LABEL}, "edge_index must have shape"),
    ({"edge_index": EDGE_INDEX + N, "feat": FEAT, "label": LABEL}, "out of range"),
    ({"edge_index": EDGE_INDEX, "feat": FEAT[0], "label": LABEL}, "feat must be 2-D"),
    ({"edge_index": EDGE_INDEX, "feat": FEAT, "label": LABEL[:3]}, "label must have shape"),
    ({"edge_index": EDGE_INDEX, "feat": FEAT, "label": LABEL.astype(np.float32)},
     "label must be integers"),
    ({"edge_index": EDGE_INDEX, "feat": FEAT.astype(np.int32), "label": LABEL},
     "feat must be floating point"),
])
def test_bad_content_is_a_one_line_graph_error(tmp_path, arrays, match):
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(GraphError, match=match) as info:
        load_npz(path)
    assert "\n" not in str(info.value) and "bad.npz" in str(info.value)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, edge_index=EDGE_INDEX, feat=np.array([{"a": 1}] * N, dtype=object),
             label=LABEL)
    with pytest.raises(GraphError, match="'feat'"):
        load_npz(path)


def test_missing_and_non_npz_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(UserError, match="junk.npz"):
        load_npz(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", FEAT)
    with pytest.raises(UserError, match="single .npy"):
        load_npz(tmp_path / "single.npy")


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    g = Graph.from_arrays(edge_index=EDGE_INDEX, feat=FEAT, label=LABEL)
    path = tmp_path / "g.npz"
    save_npz(g, path)
    before = path.read_bytes()

    def broken(out, arr, bar):
        raise OSError("disk full")

    monkeypatch.setattr(npz_mod, "_write_npy", broken)
    with pytest.raises(OSError, match="disk full"):
        save_npz(g, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]


def test_save_into_missing_folder_is_a_user_error(tmp_path):
    g = Graph.from_arrays(edge_index=EDGE_INDEX, feat=FEAT, label=LABEL)
    with pytest.raises(UserError, match="does not exist"):
        save_npz(g, tmp_path / "no" / "g.npz")


def test_equal_graphs_give_equal_bytes(tmp_path):
    g = Graph.from_arrays(edge_index=EDGE_INDEX, feat=FEAT, label=LABEL)
    save_npz(g, tmp_path / "a.npz", compress=True)
    save_npz(g, tmp_path / "b.npz", compress=True)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
