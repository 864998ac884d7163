"""The cooperative batcher: which seed nodes every worker trains on at every step of an epoch.

``--batch-size N`` counts seed nodes per SERVER per step. The train nodes of a server (the union
over its workers) are put in a fresh order every epoch: node ``v`` is ranked by
``hash(key(seed, epoch), global ID of v)`` (the counter hash of :mod:`gnnsys.train.sampler`,
ties by global ID), then cut into consecutive batches of N (the last one may be smaller). The
order depends only on the set of global IDs, the seed and the epoch, so every worker of a server
derives the same batches without communicating, whether the server has one worker or several.
Each worker takes the seeds of the batch that it owns and samples/computes only its own rows.

Every rank runs the same number of steps per epoch: the maximum over servers of
``ceil(train nodes of the server / N)``, agreed once with one all-reduce (``max_over_ranks``);
a server with fewer batches runs empty steps (its workers still take part in every collective),
so uneven servers never deadlock. ``--batch-size full`` is one step per epoch over every train
node (with fanouts -1: exact full-graph training).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from gnnsys.errors import UserError
from gnnsys.train.sampler import hash_ids, sample_key


def parse_batch_size(text: str) -> Optional[int]:
    """Parse ``--batch-size``: ``"full"`` -> None, else a positive int (seeds per server per step).

    Raises :class:`UserError` naming the bad value.
    """
    if str(text).strip().lower() == "full":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise UserError(f"--batch-size {text!r}: expected 'full' or a positive integer")
    return value


def shuffle_ids(global_ids: np.ndarray, seed: int, epoch: int) -> np.ndarray:
    """Return the unique ``global_ids`` in the order of ``(seed, epoch)`` (a pure function of the set).

    The key is :func:`sample_key` ``(seed, epoch, -1, -1)`` (steps and layers are >= 0, so it
    never equals a sampling key).
    """
    ids = np.unique(np.asarray(global_ids, dtype=np.int64))
    return ids[np.lexsort((ids, hash_ids(ids, sample_key(seed, epoch, -1, -1))))]


class BatchSchedule:
    """The steps of one worker: its seed rows per step, for every epoch.

    Args:
        server_train_ids: global IDs of the train nodes of this worker's server (the union over
            its workers; order and duplicates do not matter).
        owned_ids: ascending global IDs of the rows this worker owns (``Shard.owned``); local
            row ``i`` is ``owned_ids[i]``.
        batch_size: seed nodes per server per step, or None for one full step per epoch.
        seed: the shuffling seed.
        max_over_ranks: ``f(int) -> int``, the maximum over all ranks (one all-reduce, called
            once here); None in one process, or when every rank has the same train set.
    """

    def __init__(self, server_train_ids: np.ndarray, owned_ids: np.ndarray,
                 batch_size: Optional[int], seed: int = 0,
                 max_over_ranks: Optional[Callable[[int], int]] = None) -> None:
        if batch_size is not None and batch_size <= 0:
            raise UserError(f"--batch-size {batch_size}: expected 'full' or a positive integer")
        self.server_ids = np.unique(np.asarray(server_train_ids, dtype=np.int64))
        self.owned_ids = np.asarray(owned_ids, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        n = len(self.server_ids)
        self.local_steps = 1 if batch_size is None else -(-n // batch_size)
        self.num_steps = (int(max_over_ranks(self.local_steps)) if max_over_ranks is not None
                          else self.local_steps)

    def server_batches(self, epoch: int) -> list[np.ndarray]:
        """Return ``num_steps`` arrays: the global IDs (ascending) of the server's batch per step.

        Steps beyond this server's batches are empty arrays.
        """
        if self.batch_size is None:
            batches = [self.server_ids]
        else:
            order = shuffle_ids(self.server_ids, self.seed, epoch)
            batches = [np.sort(order[i:i + self.batch_size])
                       for i in range(0, len(order), self.batch_size)]
        return batches + [self.server_ids[:0]] * (self.num_steps - len(batches))

    def steps(self, epoch: int) -> list[np.ndarray]:
        """Return ``num_steps`` arrays: this worker's seed rows (local owned rows, ascending)."""
        return [np.searchsorted(self.owned_ids, batch[np.isin(batch, self.owned_ids)])
                for batch in self.server_batches(epoch)]
