"""ExchangePlan.from_arrays: counts, displacements, peers, per-link rows, layout checks."""
import numpy as np
import pytest

from gnnsys.comm.plan import ExchangePlan
from gnnsys.errors import UserError

# Part 1 of 3: 4 owned rows; 2 halo rows from part 0, 1 from part 2; sends rows [3, 0] to
# part 0 and nothing to part 2.
ARGS = dict(rank=1, n_own=4, halo_offsets=np.array([0, 2, 2, 3]),
            send_index=np.array([3, 0]), send_offsets=np.array([0, 2, 2, 2]),
            link_of_peer=["inter", "intra", "intra"])


def test_counts_displacements_and_peers():
    plan = ExchangePlan.from_arrays(**ARGS)
    assert (plan.size, plan.n_own, plan.n_halo) == (3, 4, 3)
    assert plan.send_counts.tolist() == [2, 0, 0] and plan.send_displs.tolist() == [0, 2, 2]
    assert plan.recv_counts.tolist() == [2, 0, 1] and plan.recv_displs.tolist() == [0, 2, 2]
    assert plan.send_index.tolist() == [3, 0] and plan.send_index.dtype.is_floating_point is False
    assert plan.peers == (0, 2)
    assert plan.send_rows_by_link == {"intra": 0, "inter": 2}
    assert plan.recv_rows_by_link == {"intra": 1, "inter": 2}


@pytest.mark.parametrize("change, words", [
    (dict(halo_offsets=np.array([1, 2, 2, 3])), "start at 0"),
    (dict(halo_offsets=np.array([0, 2, 1, 3])), "never decrease"),
    (dict(send_offsets=np.array([0, 2, 2])), "send_offsets has 3"),
    (dict(link_of_peer=["intra", "intra", "wan"]), "link class"),
    (dict(send_index=np.array([3, 4])), "outside"),
    (dict(send_index=np.array([3])), "send_index has 1 rows"),
    (dict(send_offsets=np.array([0, 1, 2, 2])), "itself"),
    (dict(halo_offsets=np.array([0.0, 2, 2, 3])), "integer"),
    (dict(rank=3), "out of range"),
])
def test_inconsistent_layouts_are_user_errors(change, words):
    with pytest.raises(UserError, match=words):
        ExchangePlan.from_arrays(**{**ARGS, **change})
