"""Tests for gnnsys.data.karate: Zachary's karate club."""
import numpy as np

from gnnsys.data import karate_graph


def test_karate_structure_labels_and_split():
    g = karate_graph()
    assert (g.num_nodes, g.num_edges, g.num_features, g.num_classes) == (34, 156, 34, 2)
    src, dst = g.edge_index()
    assert set(zip(src.tolist(), dst.tolist())) == set(zip(dst.tolist(), src.tolist()))
    # the two leaders: Mr. Hi (0) and the officer (33), with their well-known degrees
    assert g.label[0] == 0 and g.label[33] == 1
    assert g.in_degrees()[0] == 16 and g.in_degrees()[33] == 17
    assert np.bincount(g.label).tolist() == [17, 17]
    np.testing.assert_array_equal(g.feat, np.eye(34, dtype=np.float32))
    masks = np.stack([g.train_mask, g.val_mask, g.test_mask])
    assert (masks.sum(axis=0) == 1).all()
    assert [np.bincount(g.label[m], minlength=2).tolist() for m in masks] == [
        [4, 4], [4, 4], [9, 9]]
