"""Per-element work of the quantization codec, in two backends that give the same bits.

The numba kernels (CPU, parallel over rows) and the torch functions (CUDA, and CPU for tests)
do the O(rows * d) part: row minima/maxima, stochastic rounding + bit packing, unpacking +
dequantization. The per-row header math (fp16 grid of a row, constant rows; format in
:mod:`gnnsys.comm.codec`) exists once, as scalar numba code: the fused CPU kernel calls it per
row and the torch path calls it through :func:`row_params_numba` on the CPU.

Row minima/maxima are taken over order-preserving integer keys of the floats (``key = bits ^
((bits >> 31) & 0x7FFFFFFF)`` for float32, same with 63 for float64; the map is its own
inverse), which vectorises, orders ``-0.0`` before ``+0.0`` in both backends, and puts NaN
beyond the keys of +-inf, so one min/max pass also finds non-finite rows.

Random numbers are a counter-based hash, so both backends draw the same uniforms without
sharing generator state. Row ``r`` (global index: the block's row offset included) gets
``rk = splitmix64(key ^ r * GAMMA)`` (Steele et al., 2014); element ``j`` of it the 24-bit
uniform ``u = (lowbias32((rk_lo + j * 0x9E3779B9) mod 2^32) ^ rk_hi) >> 8`` (``rk_lo/rk_hi``:
low/high 32 bits of ``rk``; lowbias32: C. Wellons' 32-bit integer hash).

Quantization of element ``x`` of a row with parameters ``lo, inv`` (``inv = 1 / scale``, both in
the input dtype) and ``L = 2^bits - 1`` levels above ``lo``::

    t = clamp((x - lo) * inv, 0, L); k0 = floor(t); level = k0 + (u * 2^-24 < t - k0)

with the same IEEE operations in the input dtype in both backends. ``P(level = k0 + 1) =
ceil((t - k0) * 2^24) / 2^24``: the rounding is unbiased up to ``2^-24`` of a step.
Dequantization is ``lo + level * scale`` in the output dtype (``level * scale`` is exact).

Packing: element ``j`` of a row occupies bits ``j*bits .. j*bits + bits - 1`` of the row's byte
string, least significant bit first; the row's ``ceil(d * bits / 8)`` bytes follow its
:data:`HEAD` header bytes (header format: :mod:`gnnsys.comm.codec`).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from gnnsys.hashing import GAMMA, signed, splitmix64_int, splitmix64_nb, splitmix64_torch_

HEAD = 4  # header bytes per row, before the packed levels
CHUNK = 256  # rows per parallel task in the numba kernels

_M32 = (1 << 32) - 1
_G32_INT = 0x9E3779B9
_H1_INT = 0x7FEB352D
_H2_INT = 0x846CA68B
_UNIT = 2.0 ** -24  # uniform = 24-bit integer * _UNIT

_GAMMA = np.uint64(GAMMA)
_S32 = np.uint64(32)
# 32-bit arithmetic is spelled out with np.uint32 casts: numba widens small ints to 64 bits,
# which would keep LLVM from vectorising the per-element loops with 32-bit lanes
_G32, _H1, _H2, _MASK32 = (np.uint32(v) for v in (_G32_INT, _H1_INT, _H2_INT, _M32))
_T8, _T15, _T16 = (np.uint32(s) for s in (8, 15, 16))


def lowbias32_int(z: int) -> int:
    """The lowbias32 hash on a Python int in [0, 2^32); the reference for tests."""
    z ^= z >> 16
    z = (z * _H1_INT) & _M32
    z ^= z >> 15
    z = (z * _H2_INT) & _M32
    return z ^ (z >> 16)


def stream_key(seed: int) -> int:
    """The hash key of the random stream ``seed`` (any int, taken modulo 2^64)."""
    return splitmix64_int(seed + GAMMA)


def row_bytes_packed(d: int, bits: int) -> int:
    """Bytes of packed levels per row: ``ceil(d * bits / 8)``."""
    return (d * bits + 7) // 8


def key_int_dtype(dtype: torch.dtype) -> torch.dtype:
    """The int dtype of the same width as float ``dtype`` (int32 or int64): the key dtype."""
    return torch.int32 if dtype == torch.float32 else torch.int64


def key_bounds(dtype: torch.dtype) -> np.ndarray:
    """The keys of ``(-inf, +inf)`` of float ``dtype``: a row is finite when all its keys lie
    strictly between them (NaN keys lie beyond)."""
    inf = torch.tensor([-np.inf, np.inf], dtype=dtype)
    return float_keys(inf.view(key_int_dtype(dtype))).numpy()


def float_keys(bits: Tensor) -> Tensor:
    """Map float bit patterns (int32/int64 tensor) to order-preserving keys, or keys back to bit
    patterns (the map is an involution); returns a new tensor of the same dtype."""
    shift = 31 if bits.dtype == torch.int32 else 63
    return bits ^ ((bits >> shift) & ((1 << shift) - 1))


@lru_cache(maxsize=None)
def level_table(bits: int, dtype: torch.dtype) -> np.ndarray:
    """``[256, 8 // bits]`` table: the levels packed in a byte, as ``dtype`` values."""
    per = 8 // bits
    byte = np.arange(256)[:, None] >> (np.arange(per)[None, :] * bits)
    return (byte & ((1 << bits) - 1)).astype(torch.empty(0, dtype=dtype).numpy().dtype)


# ---------------------------------------------------------------------------------- numba ---

@njit(cache=True, inline="always")
def _lowbias32(z):
    z = np.uint32(z ^ (z >> _T16))
    z = np.uint32(z * _H1)
    z = np.uint32(z ^ (z >> _T15))
    z = np.uint32(z * _H2)
    return np.uint32(z ^ (z >> _T16))


# ---- per-row header math (scalar, float64; the one implementation, also for the torch path)

@njit(cache=True)
def _fp16_magnitude_bits(a, up):
    """Bits of the fp16 value next to ``a >= 0`` upwards (``up``) or downwards; beyond 65504,
    upwards is +inf (0x7C00) and downwards 65504 (0x7BFF)."""
    if a > 65504.0:
        return 0x7C00 if up else 0x7BFF
    if a < 2.0 ** -14:  # subnormal: multiples of 2^-24 (1024 * 2^-24 is the smallest normal)
        n = a * 2.0 ** 24
        return int(math.ceil(n)) if up else int(math.floor(n))
    m, e = math.frexp(a)  # a = m * 2^e, m in [0.5, 1): 11 significant bits are m * 2048
    q = math.ceil(m * 2048.0) if up else math.floor(m * 2048.0)
    return (e + 13) * 1024 + int(q)  # q = 2048 carries into the exponent field, as it should


@njit(cache=True)
def _fp16_bits(v, up):
    """Bits (0..0xFFFF) of the smallest fp16 >= ``v`` (``up``) or the largest <= ``v``."""
    if v < 0:
        return 0x8000 | _fp16_magnitude_bits(-v, not up)
    return _fp16_magnitude_bits(v, up)


@njit(cache=True)
def _fp16_value(b):
    """The float64 value of the fp16 bits ``b`` (not NaN)."""
    mag = b & 0x7FFF
    if mag >= 0x7C00:
        v = np.inf
    elif mag < 1024:
        v = mag * 2.0 ** -24
    else:
        v = math.ldexp(float((mag & 1023) + 1024), (mag >> 10) - 25)
    return -v if b & 0x8000 else v


@njit(cache=True)
def _row_header(mn, mx, levels, head, value32, value32_bits):
    """Write the 4 header bytes of a row with minimum ``mn`` and maximum ``mx`` (float64,
    finite) into ``head`` and return ``(quantized, lo, scale, first)``: whether the row is
    quantized, its grid (float64 fp16 values) and the byte to OR into its first packed byte.
    ``value32``/``value32_bits``: a 1-element float32 scratch array and its int32 view."""
    lo_bits = _fp16_bits(mn + 0.0, True)  # + 0.0: a grid never starts at -0.0
    lo = _fp16_value(lo_bits)
    scale_bits = 0
    if lo <= mx:
        scale_bits = _fp16_bits((mx - lo) / levels, False)
        # float64 rounding of the span may land one fp16 step too high: step down if it did
        if lo + levels * _fp16_value(scale_bits) > mx:
            scale_bits -= 1
    if scale_bits > 0:
        word = lo_bits | (scale_bits << 16)
        first = 0
    else:  # constant or degenerate row: its value (midpoint of the range) as float32
        value32[0] = mn if mn == mx else min(max(mn / 2 + mx / 2, mn), mx)
        word = (value32_bits[0] & 0x7FFFFFFF) | 0x80000000
        first = 1 if value32_bits[0] < 0 else 0
    for b in range(HEAD):
        head[b] = (word >> (8 * b)) & 0xFF
    return scale_bits > 0, lo, _fp16_value(scale_bits), first


@njit(cache=True)
def row_params_numba(mn, mx, bits, lo, inv, head, first):
    """Per-row parameters of the torch path from the row minima/maxima ``mn``, ``mx``
    (float32/float64 ``[rows]``, finite): fills ``lo``/``inv`` (dtype of ``mn``; 0 for
    constant rows), ``head uint8 [rows, 4]`` and ``first uint8 [rows]``."""
    ft = lo.dtype.type
    value32 = np.empty(1, dtype=np.float32)
    value32_bits = value32.view(np.int32)
    for r in range(mn.shape[0]):
        quant, lo64, scale64, first[r] = _row_header(
            float(mn[r]), float(mx[r]), 2 ** bits - 1, head[r], value32, value32_bits)
        lo[r] = ft(lo64) if quant else ft(0)
        inv[r] = ft(1) / ft(scale64) if quant else ft(0)


# ---- per-element work. It lives in separate (not inlined) functions: LLVM vectorises their
# loops, which it does not do for the same loops inlined into a parallel loop body.

@njit(cache=True)
def _key_consts(xi):
    """``(shift, mask)`` of the order-preserving key for the int dtype of array ``xi``."""
    kt = xi.dtype.type
    shift = kt(8 * xi.itemsize - 1)
    return shift, kt(~(kt(1) << shift))  # mask 0x7FF..F


@njit(cache=True)
def _key_range_row(xi_row, shift, mask):
    """Smallest and largest order-preserving key of a row viewed as int32/int64."""
    kt = xi_row.dtype.type
    lo = kt(xi_row[0] ^ ((xi_row[0] >> shift) & mask))
    hi = lo
    for j in range(1, xi_row.shape[0]):
        v = xi_row[j]
        k = kt(v ^ ((v >> shift) & mask))
        lo = min(lo, k)
        hi = max(hi, k)
    return lo, hi


@njit(cache=True)
def _uniforms_row(rk_lo, rk_hi, unit, uni):
    """Fill ``uni`` with the uniforms of the row whose stream key has the uint32 halves
    ``rk_lo``, ``rk_hi`` (split by the caller: derived from the uint64 in here, the loop is
    not vectorised)."""
    for j in range(uni.shape[0]):
        h = _lowbias32(np.uint32(rk_lo + np.uint32(j) * _G32))
        uni[j] = uni.dtype.type(np.int32((h ^ rk_hi) >> _T8)) * unit  # < 2^24: exact


@njit(cache=True)
def _levels_row(x_row, lo, inv, top, uni, level):
    """Stochastic rounding of one row: ``level[j]`` for ``j < len(x_row)``."""
    zero = lo - lo
    for j in range(x_row.shape[0]):
        t = min(max((x_row[j] - lo) * inv, zero), top)
        k0 = np.int32(t)  # floor, as t >= 0
        level[j] = k0 + np.int32(uni[j] < t - x_row.dtype.type(k0))


@njit(cache=True, inline="always")
def _pack(level, packed, per, bits):
    for q in range(packed.shape[0]):
        acc = 0
        for e in range(per):
            acc |= level[q * per + e] << (e * bits)
        packed[q] = acc


@njit(cache=True)
def _pack_row(level, bits, packed):
    """Pack ``8 // bits`` levels per byte of ``packed``, LSB first (constant-folded widths)."""
    if bits == 1:
        _pack(level, packed, 8, 1)
    elif bits == 2:
        _pack(level, packed, 4, 2)
    elif bits == 4:
        _pack(level, packed, 2, 4)
    else:
        _pack(level, packed, 1, 8)


@njit(cache=True, parallel=True)
def encode_numba(x, xi, key_bounds, key, row_offset, bits, out, finite):
    """Encode ``x [rows, d]`` (float32/float64, ``d >= 1``) into ``out uint8 [rows, 4 + rb]``.

    ``xi`` is ``x`` viewed as int32/int64, ``key_bounds`` the keys of ``(-inf, +inf)``
    (:func:`key_bounds`), ``key`` the uint64 stream key, ``row_offset`` the global index of
    row 0. ``finite[r]`` is set False for a row holding NaN or inf (its bytes are then left
    unwritten).
    """
    rows, d = x.shape
    rb = out.shape[1] - HEAD
    levels = 2 ** bits - 1
    ft = x.dtype.type
    top = ft(levels)
    unit = ft(_UNIT)
    shift, mask = _key_consts(xi)
    kt = xi.dtype.type
    for c in prange((rows + CHUNK - 1) // CHUNK):
        uni = np.empty(d, dtype=x.dtype)
        level = np.zeros(rb * (8 // bits), dtype=np.uint8)
        value32 = np.empty(1, dtype=np.float32)
        value32_bits = value32.view(np.int32)
        range_bits = np.empty(2, dtype=xi.dtype)
        range_values = range_bits.view(x.dtype)
        for r in range(c * CHUNK, min(rows, (c + 1) * CHUNK)):
            kmin, kmax = _key_range_row(xi[r], shift, mask)
            finite[r] = key_bounds[0] < kmin and kmax < key_bounds[1]
            if not finite[r]:
                continue
            # the key map is its own inverse: keys -> float bits
            range_bits[0] = kt(kmin ^ ((kmin >> shift) & mask))
            range_bits[1] = kt(kmax ^ ((kmax >> shift) & mask))
            quant, lo64, scale64, first = _row_header(
                float(range_values[0]), float(range_values[1]), levels, out[r], value32,
                value32_bits)
            lo = ft(lo64) if quant else ft(0)
            inv = ft(1) / ft(scale64) if quant else ft(0)
            rk = splitmix64_nb(key ^ (np.uint64(row_offset + r) * _GAMMA))
            _uniforms_row(np.uint32(rk & np.uint64(_M32)), np.uint32(rk >> _S32), unit, uni)
            _levels_row(x[r], lo, inv, top, uni, level)
            _pack_row(level, bits, out[r, HEAD:])
            out[r, HEAD] |= first
    return out


@njit(cache=True, inline="always")
def _unpack(packed, lo, scale, table, out_row, per):
    d = out_row.shape[0]
    full = d // per
    for q in range(full):
        byte = packed[q]
        for e in range(per):
            out_row[q * per + e] = lo + table[byte, e] * scale
    for j in range(full * per, d):
        out_row[j] = lo + table[packed[full], j - full * per] * scale


@njit(cache=True)
def _unpack_row(packed, lo, scale, table, out_row):
    """Dequantize one row: ``out_row[j] = lo + level_j * scale`` via the byte ``table``."""
    per = table.shape[1]
    if per == 8:
        _unpack(packed, lo, scale, table, out_row, 8)
    elif per == 4:
        _unpack(packed, lo, scale, table, out_row, 4)
    elif per == 2:
        _unpack(packed, lo, scale, table, out_row, 2)
    else:
        _unpack(packed, lo, scale, table, out_row, 1)


@njit(cache=True, parallel=True)
def unpack_numba(payload, lo, scale, table, out):
    """Dequantize ``payload uint8 [rows, 4 + rb]`` into ``out [rows, d]``: ``lo + level * scale``
    with ``lo``/``scale`` in the output dtype (``[rows]``) and ``table`` the
    :func:`level_table` of the bit width in the output dtype."""
    rows = out.shape[0]
    for c in prange((rows + CHUNK - 1) // CHUNK):
        for r in range(c * CHUNK, min(rows, (c + 1) * CHUNK)):
            _unpack_row(payload[r, HEAD:], lo[r], scale[r], table, out[r])
    return out


# ---------------------------------------------------------------------------------- torch ---

def _logical_shift(z: Tensor, shift: int) -> Tensor:
    """``z >>> shift`` on int64 (torch's ``>>`` is arithmetic on signed ints)."""
    return (z >> shift) & ((1 << (64 - shift)) - 1)


def _lowbias32_torch(z: Tensor) -> Tensor:
    """lowbias32 on an int64 tensor of values in [0, 2^32) (wrapping products, masked)."""
    z = z ^ (z >> 16)
    z = (z * _H1_INT) & _M32
    z = z ^ (z >> 15)
    z = (z * _H2_INT) & _M32
    return z ^ (z >> 16)


def uniforms_torch(key: int, row_offset: int, rows: int, d: int, dtype: torch.dtype,
                   device: torch.device) -> Tensor:
    """Return the ``[rows, d]`` uniforms in [0, 1) (multiples of 2^-24, in ``dtype``) of the
    hash stream ``key`` for global rows ``row_offset .. row_offset + rows - 1``."""
    ids = torch.arange(row_offset, row_offset + rows, dtype=torch.int64, device=device)
    rk = splitmix64_torch_((ids * signed(GAMMA)) ^ signed(key)).unsqueeze(1)
    cols = torch.arange(d, dtype=torch.int64, device=device) * _G32_INT
    h = _lowbias32_torch((rk + cols) & _M32)
    return ((h ^ _logical_shift(rk, 32)) >> 8).to(dtype) * _UNIT


def quantize_pack_torch(x: Tensor, lo: Tensor, inv: Tensor, head: Tensor, first: Tensor,
                        key: int, row_offset: int, bits: int) -> Tensor:
    """Torch twin of the rounding and packing of :func:`encode_numba`: returns ``uint8 [rows,
    4 + rb]`` on x's device. ``lo``/``inv`` (dtype of ``x``), ``head uint8 [rows, 4]`` and
    ``first uint8 [rows]`` come from :func:`row_params_numba` (moved to x's device), ``key`` is
    the stream key, ``row_offset`` the global index of row 0."""
    rows, d = x.shape
    per = 8 // bits
    rb = row_bytes_packed(d, bits)
    t = ((x - lo.unsqueeze(1)) * inv.unsqueeze(1)).clamp_(0, 2 ** bits - 1)
    k0 = torch.floor(t)
    up = uniforms_torch(key, row_offset, rows, d, x.dtype, x.device) < t - k0
    level = torch.zeros(rows, rb * per, dtype=torch.uint8, device=x.device)
    level[:, :d] = k0.to(torch.uint8) + up.to(torch.uint8)
    level = level.view(rows, rb, per)
    packed = level[:, :, 0].clone()
    for e in range(1, per):
        packed |= level[:, :, e] << (e * bits)
    packed[:, 0] |= first
    return torch.cat([head, packed], dim=1)


def unpack_torch(payload: Tensor, lo: Tensor, scale: Tensor, bits: int, d: int) -> Tensor:
    """Torch twin of :func:`unpack_numba`: ``payload uint8 [rows, 4 + rb]`` -> ``[rows, d]`` in
    the dtype of ``lo``/``scale``."""
    rows = payload.shape[0]
    packed = payload[:, HEAD:]
    mask = (1 << bits) - 1
    level = torch.stack([(packed >> (e * bits)) & mask for e in range(8 // bits)], dim=2)
    level = level.view(rows, -1)[:, :d].to(lo.dtype)
    return level * scale.unsqueeze(1) + lo.unsqueeze(1)
