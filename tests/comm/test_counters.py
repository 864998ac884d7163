"""ByteCounters: the as_dict contract, validation, reset, timers, 1-rank reduce."""
import time

import pytest

from gnnsys.comm.bootstrap import init_distributed
from gnnsys.comm.counters import ByteCounters


def test_as_dict_has_the_metrics_shape_and_sums_adds():
    c = ByteCounters()
    c.add("intra", "features", 10)
    c.add("intra", "features", 5)
    c.add("inter", "weight_grads", 7)
    assert c.as_dict() == {
        "intra": {"features": 15, "feature_grads": 0, "weight_grads": 0},
        "inter": {"features": 0, "feature_grads": 0, "weight_grads": 7},
    }


@pytest.mark.parametrize("link, kind, n", [("wan", "features", 1), ("intra", "weights", 1),
                                           ("inter", "features", -1)])
def test_add_rejects_unknown_names_and_negative_counts(link, kind, n):
    with pytest.raises(ValueError):
        ByteCounters().add(link, kind, n)


def test_timed_counts_wait_only_when_blocking_and_reset_clears_all():
    c = ByteCounters()
    with c.timed(blocking=True):
        time.sleep(0.01)
    with c.timed(blocking=False):
        time.sleep(0.01)
    assert c.comm_s >= 0.02 and 0.01 <= c.comm_wait_s < c.comm_s
    with c.codec_timed():
        time.sleep(0.01)
    assert c.codec_s >= 0.01
    c.add("inter", "feature_grads", 3)
    c.reset()
    assert c.timers() == {"comm_s": 0.0, "comm_wait_s": 0.0, "codec_s": 0.0}
    assert all(v == 0 for link in c.as_dict().values() for v in link.values())


def test_reduce_sum_in_a_one_rank_world_is_the_local_count():
    ctx = init_distributed()
    c = ByteCounters()
    c.add("inter", "features", 2**40)
    assert c.reduce_sum(ctx) == c.as_dict()
    assert c.reduce_sum(ctx)["inter"]["features"] == 2**40
