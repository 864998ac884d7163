"""Rank-independent dropout: the keep mask is a counter-based hash of global coordinates.

The mask of element (node, feature) depends only on ``(seed, epoch, layer, global node ID,
feature index)``, so the owner of a node and every peer that receives it as a halo row see the
same mask, and a P-rank run drops exactly what a one-process run drops.

Hash: splitmix64 (:mod:`gnnsys.hashing`) in vectorised int64 torch ops (wrapping multiply and
add; right shifts are made logical with a mask, since torch's ``>>`` is arithmetic on signed
ints). ``key = mix chain of (seed, epoch, layer)``; a node's stream is seeded with
``mix(key ^ node * GAMMA)``; output ``b`` of that stream, ``mix(node_key + (b + 1) * GAMMA)``,
gives 64 bits = four 16-bit uniforms, one per feature ``4b .. 4b+3``. An element is kept when
its 16-bit uniform is at or above ``t = round(p * 65536)``, so the keep rate is
``(65536 - t) / 65536`` (within 1e-5 of ``1 - p``) and kept values are scaled by its inverse:
the expectation is preserved exactly. On CPU the mask comes from a fused numba kernel (one
pass, no int64 temporaries); elsewhere from the torch ops; both give the same bits.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from torch import Tensor

from gnnsys.hashing import GAMMA, chain_key, signed, splitmix64_nb, splitmix64_torch_

_LEVELS = 1 << 16


def _stream_key(seed: int, epoch: int, layer: int) -> int:
    return chain_key(seed, epoch, layer)


def _keep_mask_torch(ids: Tensor, num_features: int, key: int, dropped: int) -> Tensor:
    """The keep mask with vectorised int64 torch ops (any device)."""
    blocks = (num_features + 3) // 4
    node_key = splitmix64_torch_(ids.mul(signed(GAMMA)).bitwise_xor_(signed(key)))
    counters = torch.arange(1, blocks + 1, dtype=torch.int64, device=ids.device).mul_(signed(GAMMA))
    z = splitmix64_torch_(node_key.unsqueeze(1) + counters)
    # Signed 16-bit s >= dropped - 2^15  <=>  unsigned u >= dropped (u ^ 0x8000 order).
    return z.view(torch.int16)[:, :num_features] >= dropped - _LEVELS // 2


@numba.njit(parallel=True, cache=True)
def _keep_mask_numba(ids, num_features, key, dropped, out):  # pragma: no cover - compiled
    gamma = np.uint64(GAMMA)
    for r in numba.prange(ids.shape[0]):
        node_key = splitmix64_nb((np.uint64(ids[r]) * gamma) ^ key)
        for b in range((num_features + 3) // 4):
            z = splitmix64_nb(node_key + np.uint64(b + 1) * gamma)
            for q in range(min(4, num_features - 4 * b)):
                u = (z >> np.uint64(16 * q)) & np.uint64(0xFFFF)
                out[r, 4 * b + q] = (u ^ np.uint64(0x8000)) >= dropped


def keep_mask(global_ids: Tensor, num_features: int, p: float, seed: int, epoch: int,
              layer: int) -> Tensor:
    """Return ``bool [rows, num_features]``: which elements dropout keeps.

    Args:
        global_ids: ``int64 [rows]`` global node ID of every row (its device is the mask's).
        num_features: feature width F.
        p: drop probability in ``[0, 1)``.
        seed, epoch, layer: the other hash coordinates.
    """
    ids = global_ids.to(torch.int64)
    key, dropped = _stream_key(seed, epoch, layer), int(round(p * _LEVELS))
    if ids.device.type != "cpu":
        return _keep_mask_torch(ids, num_features, key, dropped)
    out = np.empty((ids.shape[0], num_features), dtype=np.bool_)
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    _keep_mask_numba(ids.contiguous().numpy(), num_features, np.uint64(key), np.uint64(dropped), out)
    return torch.from_numpy(out)


@numba.njit(parallel=True, cache=True)
def _apply_mask_numba(x, keep, scale, out):  # pragma: no cover - compiled
    for r in numba.prange(x.shape[0]):
        for f in range(x.shape[1]):
            out[r, f] = x[r, f] * scale if keep[r, f] else 0.0


def _apply_mask(x: Tensor, keep: Tensor, scale: float) -> Tensor:
    """``x`` with ``~keep`` elements zeroed and the rest scaled (one fused pass on CPU)."""
    if x.device.type != "cpu" or x.dim() != 2:
        return (x * keep).mul_(scale)
    x = x.contiguous()
    out = torch.empty_like(x)
    _apply_mask_numba(x.numpy(), keep.numpy(), x.new_tensor(scale).item(), out.numpy())
    return out


class _MaskScale(torch.autograd.Function):
    """``out = x * keep * scale``; the gradient is the same masked scaling of ``grad_out``."""

    @staticmethod
    def forward(ctx, x, keep, scale):  # noqa: D102
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return _apply_mask(x, keep, scale)

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        (keep,) = ctx.saved_tensors
        return _apply_mask(grad_out, keep, ctx.scale), None, None


def hashed_dropout(h: Tensor, global_ids: Tensor, p: float, seed: int, epoch: int, layer: int,
                   training: bool = True) -> Tensor:
    """Dropout whose mask is a hash of (seed, epoch, layer, global node ID, feature index).

    Args:
        h: ``[rows, F]`` features (any float dtype, CPU or CUDA).
        global_ids: ``int64 [rows]`` global node ID of every row of ``h``.
        p: drop probability in ``[0, 1)``.
        seed, epoch, layer: hash coordinates; change any to get an independent mask.
        training: when False (or ``p == 0``) ``h`` is returned unchanged.

    Returns:
        ``h`` with dropped elements zeroed and kept ones scaled by ``1 / keep_rate`` (``keep_rate
        = 1 - round(p * 65536) / 65536``), so ``E[out] = h``. Differentiable in ``h``.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout p must be in [0, 1), got {p}")
    if not training or p == 0.0:
        return h
    if global_ids.shape[0] != h.shape[0] or h.dim() != 2:
        raise ValueError(f"hashed_dropout: need h [rows, F] and one id per row, got "
                         f"{tuple(h.shape)} and {global_ids.shape[0]} ids")
    scale = _LEVELS / (_LEVELS - int(round(p * _LEVELS)))
    keep = keep_mask(global_ids.to(h.device), h.shape[1], p, seed, epoch, layer)
    return _MaskScale.apply(h, keep, scale)
