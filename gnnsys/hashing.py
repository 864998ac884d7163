"""The counter-based hash behind every random draw of gnnsys (dropout masks, codec rounding,
neighbour sampling): the splitmix64 finaliser (Steele, Lea & Flood, 2014), in three spellings
that give the same bits -- Python ints (keys and test references), numba (CPU kernels) and
int64 torch ops (any device).

A draw never depends on which rank makes it: its key is chained from the run's seed and the
draw's coordinates (:func:`chain_key`), then mixed with the GLOBAL node ID,
``splitmix64(key ^ node * GAMMA)``.
"""
from __future__ import annotations

import numpy as np
import torch
from numba import njit
from torch import Tensor

U64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15  # the golden-ratio increment of splitmix64
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB

_GAMMA64, _M1_64, _M2_64 = (np.uint64(v) for v in (GAMMA, M1, M2))
_S27, _S30, _S31 = (np.uint64(s) for s in (27, 30, 31))


def signed(z: int) -> int:
    """Reinterpret an unsigned 64-bit value (any int, taken modulo 2^64) as a signed int64."""
    z &= U64
    return z - (1 << 64) if z >> 63 else z


def splitmix64_int(z: int) -> int:
    """The splitmix64 finaliser on a Python int (taken modulo 2^64); returns an int in
    ``[0, 2^64)``."""
    z &= U64
    z = ((z ^ (z >> 30)) * M1) & U64
    z = ((z ^ (z >> 27)) * M2) & U64
    return z ^ (z >> 31)


def chain_key(*values: int) -> int:
    """Return the key (an int in ``[0, 2^64)``) of a tuple of coordinates such as
    ``(seed, epoch, layer)``: ``key = mix(key ^ (value + GAMMA))`` over the values, from 0."""
    key = 0
    for value in values:
        key = splitmix64_int(key ^ (value + GAMMA))
    return key


@njit(cache=True, inline="always")
def splitmix64_nb(z):  # pragma: no cover - compiled
    """The splitmix64 finaliser on a numba ``uint64``."""
    z = (z ^ (z >> _S30)) * _M1_64
    z = (z ^ (z >> _S27)) * _M2_64
    return z ^ (z >> _S31)


def _xorshift_(z: Tensor, shift: int, tmp: Tensor) -> Tensor:
    """In place: ``z ^= z >>> shift`` (logical shift on int64), using ``tmp`` as scratch."""
    torch.bitwise_right_shift(z, shift, out=tmp)
    return z.bitwise_xor_(tmp.bitwise_and_((1 << (64 - shift)) - 1))


def splitmix64_torch_(z: Tensor) -> Tensor:
    """The splitmix64 finaliser on an int64 tensor (bits read as unsigned), IN PLACE; returns
    ``z``."""
    tmp = torch.empty_like(z)
    _xorshift_(z, 30, tmp).mul_(signed(M1))
    _xorshift_(z, 27, tmp).mul_(signed(M2))
    return _xorshift_(z, 31, tmp)

