"""The cooperative batcher: per-epoch shuffles, coverage, equal step counts, worker independence."""
from __future__ import annotations

import numpy as np
import pytest

from gnnsys.errors import UserError
from gnnsys.train.batcher import BatchSchedule, parse_batch_size, shuffle_ids


def _split_workers(ids: np.ndarray, workers: int, seed: int = 0) -> list[np.ndarray]:
    """Owned global IDs (ascending) of ``workers`` workers: a random split of ``ids``."""
    owner = np.random.default_rng(seed).integers(0, workers, len(ids))
    return [np.sort(ids[owner == w]) for w in range(workers)]


def _worker_batches(server_train, owned_all, owned_train, batch_size, seed, epoch):
    """Per worker: list over steps of the global IDs of its seeds."""
    out = []
    for owned in owned_all:
        sched = BatchSchedule(owned_train, owned, batch_size, seed)
        out.append([owned[rows] for rows in sched.steps(epoch)])
    return out


def test_parse_batch_size():
    assert parse_batch_size("full") is None
    assert parse_batch_size("1024") == 1024
    for bad in ("0", "-3", "big", "1.5"):
        with pytest.raises(UserError, match="--batch-size"):
            parse_batch_size(bad)


def test_every_train_node_once_per_epoch_across_steps_and_workers():
    nodes = np.arange(1000, dtype=np.int64) * 7 + 3
    train = nodes[np.random.default_rng(1).random(1000) < 0.4]
    owned_all = _split_workers(nodes, 2)
    for epoch in range(3):
        per_worker = _worker_batches(train, owned_all, train, 64, seed=5, epoch=epoch)
        steps = len(per_worker[0])
        assert steps == -(-len(train) // 64) == len(per_worker[1])
        seen = np.concatenate([b for worker in per_worker for b in worker])
        assert len(seen) == len(train)
        np.testing.assert_array_equal(np.sort(seen), np.sort(train))
        for s in range(steps):  # the workers' parts of a step form one server batch of <= 64
            assert sum(len(w[s]) for w in per_worker) == min(64, len(train) - 64 * s)


def test_batches_differ_between_epochs_and_repeat_for_the_same_seed():
    train = np.arange(0, 5000, 3, dtype=np.int64)
    owned = np.arange(5000, dtype=np.int64)
    a = BatchSchedule(train, owned, 100, seed=7)
    b = BatchSchedule(train[::-1].copy(), owned, 100, seed=7)  # order of the input is irrelevant
    c = BatchSchedule(train, owned, 100, seed=8)
    for epoch in range(3):
        for x, y in zip(a.server_batches(epoch), b.server_batches(epoch)):
            np.testing.assert_array_equal(x, y)
    first = a.server_batches(0)[0]
    assert not np.array_equal(first, a.server_batches(1)[0])
    assert not np.array_equal(first, c.server_batches(0)[0])
    # a shuffle, not a sorted cut: the first batch spans the whole ID range
    assert first.min() < 500 and first.max() > 4500


def test_same_global_batches_with_one_or_two_workers_per_server():
    nodes = np.arange(3000, dtype=np.int64)
    train = nodes[nodes % 5 != 0]
    one = _worker_batches(train, [nodes], train, 128, seed=3, epoch=4)[0]
    two = _worker_batches(train, _split_workers(nodes, 2, seed=9), train, 128, seed=3, epoch=4)
    assert len(one) == len(two[0]) == len(two[1])
    for step, batch in enumerate(one):
        np.testing.assert_array_equal(batch, np.sort(np.concatenate([w[step] for w in two])))


def test_uneven_servers_run_the_same_number_of_steps():
    rng = np.random.default_rng(0)
    servers = [np.arange(0, 40, dtype=np.int64), np.arange(100, 110, dtype=np.int64),
               np.zeros(0, dtype=np.int64)]  # 40, 10 and 0 train nodes
    local = [BatchSchedule(t, t, 8).local_steps for t in servers]
    assert local == [5, 2, 0]
    agreed = max(local)  # what the one all-reduce (MAX) returns on every rank
    for train in servers:
        owned = _split_workers(train, 2, seed=int(rng.integers(1 << 30))) if len(train) else [train] * 2
        for mine in owned:
            sched = BatchSchedule(train, mine, 8, max_over_ranks=lambda steps: agreed)
            steps = sched.steps(epoch=1)
            assert sched.num_steps == len(steps) == 5
            n_batches = -(-len(train) // 8)
            assert all(len(s) == 0 for s in steps[n_batches:])  # empty steps at the end


def test_full_batch_is_one_step_with_every_owned_train_row():
    owned = np.array([2, 5, 9, 11, 20], dtype=np.int64)
    server_train = np.array([5, 11, 20, 33, 40], dtype=np.int64)  # 33, 40: the other worker's
    sched = BatchSchedule(server_train, owned, None, seed=1)
    for epoch in (0, 1):
        steps = sched.steps(epoch)
        assert len(steps) == 1
        np.testing.assert_array_equal(steps[0], [1, 3, 4])


def test_shuffle_is_a_permutation_of_the_set():
    ids = np.array([9, 3, 3, 100, 7, 42], dtype=np.int64)
    out = shuffle_ids(ids, seed=0, epoch=2)
    np.testing.assert_array_equal(np.sort(out), [3, 7, 9, 42, 100])
