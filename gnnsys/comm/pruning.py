"""Halo pruning: the rows a full-graph training pass reads, layer by layer.

The loss reads the last layer's output only at train rows, and a message-passing layer's
output row depends only on its own input row and the rows its in-edges come from. So in
training, layer ``l`` (0-based, of ``L``) needs its output only at the rows within
``L - 1 - l`` hops (along in-edges) of a train row, wherever they are, and from other parts
only the halo rows those rows' in-edges come from. Walking back from the train rows, one
request per layer tells each owner which of its send rows each peer reads. The result
(:class:`TrainingReach`) is, per layer, a :class:`~gnnsys.comm.plan.RowSubset`, which the
training exchange (:meth:`gnnsys.comm.exchange.HaloExchange.pruned`) uses to move those halo
rows only, forward and backward, leaving the other halo rows at zero; and the owned rows whose
output the pass reads, the only ones the trainer computes
(:func:`gnnsys.train.model.select_rows`).

Every row the loss depends on still receives its true inputs and is computed as before, and a
row that does not feed the loss would get a gradient of exactly zero, so training equals the
unpruned one, up to the order of floating-point sums in the weight gradients (bit for bit in
tests/comm/test_pruning.py). Outputs at rows the loss does not read are zeros in a pruned
training pass; evaluation computes and exchanges every row. How much it saves depends on the
train set: on ``synthetic:40000`` (10 % train, 4 parts) the last layer reads 16 % of the
inter-host halo rows and computes 10 % of the owned rows, the layer before reads nearly all
halo rows and computes 68 % of the owned rows. A layer that mixes rows in other ways (batch
norm over rows, attention over all nodes) needs ``--no-halo-pruning``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List

import numpy as np

from gnnsys.comm.plan import ExchangePlan, RowSubset

#: ``request(arrays_by_rank) -> arrays_from_each_rank``: an all-to-all of int64 arrays
#: (:func:`gnnsys.comm.requests.alltoall_arrays`); collective.
Request = Callable[[List[np.ndarray]], List[np.ndarray]]


@dataclass
class TrainingReach:
    """What each layer of a training pass reads (see the module docstring).

    Attributes:
        halo: ``{layer: RowSubset}``: the halo rows the layer reads, per peer.
        computed: ``{layer: int64 [k]}``: the owned rows (local, ascending) whose output of
            the layer the pass reads: the train rows at the last layer, growing layer by layer
            towards the input (each layer's rows contain the next layer's).
    """

    halo: Dict[int, RowSubset]
    computed: Dict[int, np.ndarray]


def training_reach(plan: ExchangePlan, indptr: np.ndarray, indices: np.ndarray,
                   train_rows: np.ndarray, layers: int, request: Request) -> TrainingReach:
    """Return the :class:`TrainingReach` of a training pass: per layer, the halo rows it
    reads and the owned rows whose output it reads.

    Collective: calls ``request`` once per layer, on every rank in the same order.

    Args:
        plan: this rank's full :class:`ExchangePlan`.
        indptr, indices: the local in-edge CSR of the owned rows (``[n_own + 1]``; sources
            are local rows, owned then halo).
        train_rows: the owned rows the loss reads (local indices).
        layers: the model's depth ``L``.
        request: see :data:`Request`.
    """
    n_own = plan.n_own
    in_degree = np.diff(np.asarray(indptr, dtype=np.int64))
    indices = np.asarray(indices)
    needed = np.zeros(n_own, dtype=bool)
    needed[np.asarray(train_rows, dtype=np.int64)] = True
    subsets: Dict[int, RowSubset] = {}
    computed: Dict[int, np.ndarray] = {}
    for layer in reversed(range(layers)):
        computed[layer] = np.flatnonzero(needed)
        reads = np.zeros(n_own + plan.n_halo, dtype=bool)
        reads[indices[np.repeat(needed, in_degree)]] = True
        reads[:n_own] |= needed
        halo = np.flatnonzero(reads[n_own:])
        cuts = np.searchsorted(halo, np.append(plan.recv_displs, plan.n_halo))
        asks = [halo[cuts[p]:cuts[p + 1]] - plan.recv_displs[p] for p in range(plan.size)]
        subset = RowSubset.of(plan, request(asks), asks)
        subsets[layer] = subset
        needed = reads[:n_own]
        needed[subset.plan.send_index.numpy()] = True
    return TrainingReach(halo=subsets, computed=computed)
