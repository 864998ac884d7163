"""Zachary's karate club: a 34-node social graph with a 2-class label (the club split).

W. W. Zachary, *An Information Flow Model for Conflict and Fission in Small Groups*, Journal
of Anthropological Research 33(4), 1977. The 78 friendships and the faction each member joined
after the split ("Mr. Hi" = class 0, "Officer" = class 1) are the ones networkx ships as
``karate_club_graph()``. Tiny and built in code: meant for tests and examples.
"""
from __future__ import annotations

import numpy as np

from gnnsys.graph import Graph, canonical_csr

_EDGES = (
    (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (0, 8), (0, 10), (0, 11), (0, 12),
    (0, 13), (0, 17), (0, 19), (0, 21), (0, 31), (1, 2), (1, 3), (1, 7), (1, 13), (1, 17),
    (1, 19), (1, 21), (1, 30), (2, 3), (2, 7), (2, 8), (2, 9), (2, 13), (2, 27), (2, 28),
    (2, 32), (3, 7), (3, 12), (3, 13), (4, 6), (4, 10), (5, 6), (5, 10), (5, 16), (6, 16),
    (8, 30), (8, 32), (8, 33), (9, 33), (13, 33), (14, 32), (14, 33), (15, 32), (15, 33),
    (18, 32), (18, 33), (19, 33), (20, 32), (20, 33), (22, 32), (22, 33), (23, 25), (23, 27),
    (23, 29), (23, 32), (23, 33), (24, 25), (24, 27), (24, 31), (25, 31), (26, 29), (26, 33),
    (27, 33), (28, 31), (28, 33), (29, 32), (29, 33), (30, 32), (30, 33), (31, 32), (31, 33),
    (32, 33),
)
_OFFICER = (9, 14, 15, 18, 20, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33)
# Fixed split, 4 + 4 per class: train and validation; the remaining 18 nodes (9 + 9) test.
_TRAIN = (0, 1, 2, 3, 30, 31, 32, 33)
_VAL = (4, 5, 6, 7, 26, 27, 28, 29)
NUM_NODES = 34


def karate_graph() -> Graph:
    """Return the karate club as a symmetric :class:`Graph`.

    34 nodes, 156 directed edges (78 friendships both ways), identity features
    (``float32 [34, 34]``), labels 0/1 (the club split), train 8 / val 8 / test 18 nodes.
    """
    pairs = np.array(_EDGES, dtype=np.int64).T
    indptr, indices = canonical_csr(np.concatenate([pairs[0], pairs[1]]),
                                    np.concatenate([pairs[1], pairs[0]]), NUM_NODES)
    label = np.zeros(NUM_NODES, dtype=np.int64)
    label[list(_OFFICER)] = 1
    masks = [np.zeros(NUM_NODES, dtype=bool) for _ in range(3)]
    masks[0][list(_TRAIN)] = True
    masks[1][list(_VAL)] = True
    masks[2][:] = ~(masks[0] | masks[1])
    return Graph.from_arrays(indptr=indptr, indices=indices,
                             feat=np.eye(NUM_NODES, dtype=np.float32), label=label,
                             train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
                             name="karate")
