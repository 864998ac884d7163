"""The ctypes METIS binding: options reach METIS, errors become RuntimeFailure."""
from __future__ import annotations

import numpy as np
import pytest

from gnnsys.errors import RuntimeFailure
from gnnsys.partition.assign import METIS_OPTIONS, balance_weights
from gnnsys.partition.metis import metis_kway
from tests.partition.conftest import clustered_graph


def test_options_are_passed_to_metis():
    graph = clustered_graph(clusters=4, size=100)
    weights, ubvec = balance_weights(graph)
    with pytest.raises(RuntimeFailure, match="input error"):
        metis_kway(graph.indptr, graph.indices, weights, 4, ubvec=ubvec, options={"CTYPE": 9})


def test_speed_options_keep_clusters_whole():
    graph = clustered_graph(clusters=4, size=250, inter=0.0)
    weights, ubvec = balance_weights(graph)
    part = metis_kway(graph.indptr, graph.indices, weights, 4, ubvec=ubvec,
                      options=METIS_OPTIONS)
    assert part.dtype == np.int64
    # without inter-cluster edges every cluster must land whole in one part
    assert all(np.unique(part[c * 250:(c + 1) * 250]).size == 1 for c in range(4))
    assert sorted(np.bincount(part)) == [250] * 4
