"""HaloExchange and the all-reduces in a 1-rank world (multi-rank: test_exchange_mpi.py)."""
import numpy as np
import pytest
import torch

from gnnsys.comm import (ByteCounters, ExchangePlan, HaloExchange, allreduce_gradients,
                         allreduce_scalars, init_distributed)
from gnnsys.errors import UserError


def one_rank_plan(n_own=3):
    return ExchangePlan.from_arrays(0, n_own, np.array([0, 0]), np.zeros(0, np.int64),
                                    np.array([0, 0]), ["intra"])


def test_one_rank_exchange_is_the_identity_with_gradient():
    ctx, counters = init_distributed(), ByteCounters()
    ex = HaloExchange(ctx, one_rank_plan(), counters)
    h = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    out = ex(h)
    assert torch.equal(out, h)
    (2 * out).sum().backward()
    assert torch.equal(h.grad, torch.full((3, 4), 2.0, dtype=torch.float64))
    assert counters.as_dict()["intra"]["features"] == 0


def test_exchange_checks_shapes_plans_and_backend_names():
    ctx = init_distributed()
    with pytest.raises(ValueError, match=r"\[3, d\]"):
        HaloExchange(ctx, one_rank_plan(), ByteCounters())(torch.zeros(4, 2))
    other = ExchangePlan.from_arrays(1, 3, np.zeros(3, np.int64), np.zeros(0, np.int64),
                                     np.zeros(3, np.int64), ["intra", "intra"])
    with pytest.raises(UserError, match="part 1 of 2"):
        HaloExchange(ctx, other, ByteCounters())
    with pytest.raises(UserError, match="backend"):
        HaloExchange(ctx, one_rank_plan(), ByteCounters(), backend="shm")


def test_one_rank_allreduce_keeps_grads_fills_missing_with_zeros_and_counts_nothing():
    ctx, counters = init_distributed(), ByteCounters()
    a = torch.nn.Parameter(torch.ones(2, 3))
    b = torch.nn.Parameter(torch.ones(4))
    a.grad = torch.arange(6.0).view(2, 3)
    allreduce_gradients([a, b], ctx, counters)
    assert torch.equal(a.grad, torch.arange(6.0).view(2, 3))
    assert torch.equal(b.grad, torch.zeros(4))
    assert counters.as_dict()["intra"]["weight_grads"] == 0
    assert allreduce_scalars(np.array([1, 2]), ctx).tolist() == [1.0, 2.0]
    with pytest.raises(UserError, match="torch"):
        allreduce_gradients([a], ctx, counters, backend="torch")
