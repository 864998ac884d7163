"""Tests for gnnsys.nn.dropout: rank-independent hashed masks."""
import pytest
import torch

from gnnsys.hashing import GAMMA, U64, splitmix64_int, splitmix64_torch_
from gnnsys.nn.dropout import _keep_mask_torch, _stream_key, hashed_dropout, keep_mask


def test_splitmix64_tensor_matches_python_reference():
    # Includes values whose top bit is set (negative as int64): the logical-shift path.
    values = [0, 1, 2**63 - 1, -1, -(2**63), 0x123456789ABCDEF, -0x5555555555555555]
    got = splitmix64_torch_(torch.tensor(values, dtype=torch.int64)).tolist()
    assert [g & U64 for g in got] == [splitmix64_int(v) for v in values]
    # The known first output of splitmix64 seeded with 0 (state += GAMMA, then mix).
    assert splitmix64_int(GAMMA) == 0xE220A8397B1DCDAF


def test_keep_mask_bits_follow_the_documented_layout():
    ids = torch.tensor([5, 123456789012])
    m = keep_mask(ids, 6, 0.5, seed=3, epoch=1, layer=2)
    for r, node in enumerate(ids.tolist()):
        node_key = splitmix64_int(((node * GAMMA) & U64) ^ _stream_key(3, 1, 2))
        for f in range(6):
            z = splitmix64_int(node_key + (f // 4 + 1) * GAMMA)
            u16 = (z >> (16 * (f % 4))) & 0xFFFF
            assert bool(m[r, f]) == (u16 ^ 0x8000 >= 32768)  # signed >= 0 <=> unsigned >= 2^15


def test_same_mask_whatever_row_order_or_subset():
    ids = torch.arange(1000, 1400)
    h = torch.ones(400, 37, dtype=torch.float64)
    full = hashed_dropout(h, ids, 0.3, seed=7, epoch=2, layer=1)
    perm = torch.randperm(400)[:150]
    part = hashed_dropout(h[perm], ids[perm], 0.3, seed=7, epoch=2, layer=1)
    assert torch.equal(part, full[perm])


@pytest.mark.parametrize("change", [dict(seed=8), dict(epoch=3), dict(layer=2)])
def test_masks_differ_across_seed_epoch_layer(change):
    ids = torch.arange(500)
    base = dict(seed=7, epoch=2, layer=1)
    a = keep_mask(ids, 64, 0.5, **base)
    b = keep_mask(ids, 64, 0.5, **{**base, **change})
    agreement = (a == b).double().mean().item()
    assert 0.45 < agreement < 0.55  # independent masks agree on about half the elements


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_rate_and_expectation(p):
    ids = torch.arange(20000)
    h = torch.full((20000, 50), 2.0, dtype=torch.float64)
    out = hashed_dropout(h, ids, p, seed=1, epoch=0, layer=0)
    kept = out != 0
    assert abs(kept.double().mean().item() - (1 - p)) < 0.005
    assert abs(out.mean().item() - 2.0) < 0.02
    # Kept values are scaled by exactly 1 / keep_rate, so E[out] = h.
    keep_rate = 1 - round(p * 65536) / 65536
    assert torch.allclose(out[kept], torch.tensor(2.0 / keep_rate, dtype=torch.float64))
    # Columns and rows are not correlated with position: every column keeps about 1 - p.
    assert (kept.double().mean(0) - (1 - p)).abs().max() < 0.03


def test_eval_and_zero_p_are_identity_and_gradient_is_masked():
    h = torch.randn(10, 4, requires_grad=True)
    ids = torch.arange(10)
    assert hashed_dropout(h, ids, 0.5, 0, 0, 0, training=False) is h
    assert hashed_dropout(h, ids, 0.0, 0, 0, 0) is h
    out = hashed_dropout(h, ids, 0.5, 0, 0, 0)
    out.sum().backward()
    torch.testing.assert_close(h.grad, (out / h).detach())


def test_bad_arguments():
    with pytest.raises(ValueError):
        hashed_dropout(torch.ones(2, 2), torch.arange(2), 1.0, 0, 0, 0)
    with pytest.raises(ValueError):
        hashed_dropout(torch.ones(2, 2), torch.arange(3), 0.5, 0, 0, 0)


def test_cpu_kernel_equals_torch_ops():
    ids = torch.tensor([0, 1, 7, 2**40 + 3, 99999])
    for f, p in [(1, 0.5), (6, 0.1), (37, 0.9)]:
        key = _stream_key(4, 5, 6)
        expected = _keep_mask_torch(ids, f, key, round(p * 65536))
        assert torch.equal(keep_mask(ids, f, p, 4, 5, 6), expected)
