"""Row-wise stochastic quantization of halo rows: 1, 2, 4 or 8 bits per element, or fp16/exact.

A row (one vertex) of ``d`` values is sent as ``lo`` and ``scale`` (fp16 each) plus one level
``k in [0, L]``, ``L = 2^bits - 1``, per element, packed densely; the receiver reads
``lo + k * scale``. Each element is rounded stochastically to one of its two neighbouring
levels so that the expectation is the input: with 1 bit an element becomes ``lo`` or
``lo + scale``, the latter with probability ``(x - lo) / scale``.

Guarantees (bits in {1, 2, 4, 8}):

* **Containment.** Every decoded value lies in ``[min, max]`` of its input row. The grid is
  chosen inside the row's range on values fp16 can carry: ``lo`` is the smallest fp16 value
  ``>= min`` and ``scale`` the largest fp16 value with ``lo + L * scale <= max``; decoding
  computes ``lo + k * scale`` (``k * scale`` exact, one monotone rounding), so it never leaves
  ``[min, max]``.
* **Unbiasedness.** ``E[decode(encode(x))] = clamp(x, lo, hi)``, ``hi = lo + L * scale``, up
  to ``2^-24`` of a step (24-bit uniforms) and one rounding of the decoded value. Elements
  inside ``[lo, hi]`` (all of them when min and max are fp16 values) are unbiased; the few in
  the slivers ``[min, lo)`` (``lo - min`` < one fp16 spacing at ``min``: 2^-10 of ``|min|``)
  and ``(hi, max]`` (``max - hi`` < two fp16 spacings of ``scale`` times ``L``: 2^-9 of the
  range, for ranges above ``L * 2^-14``) are moved to the nearest end of the grid: the price
  of exact containment, since the receiver only sees fp16 bounds.
* **Constant rows are exact.** A row with ``max == min`` decodes bit-exactly to its value
  (any float32, also outside the fp16 range). So does, approximately, a *degenerate* row whose
  range holds no usable fp16 grid (no fp16 value in ``[min, max]``, e.g. ``[1000.1, 1000.3]``,
  or a range below ``L * 2^-24``, or all values beyond 65504): it decodes to the constant
  midpoint of ``[min, max]`` (contained, biased by at most half the range). For float64
  input the constant value travels as float32 (relative error <= 2^-24).
* **Wire size** ``rows * (4 + ceil(d * bits / 8))`` bytes, exactly (``row_bytes``).
* **Non-finite input** (NaN, inf) raises :class:`~gnnsys.errors.RuntimeFailure`.

Layout of :attr:`Encoded.payload` (one contiguous ``uint8`` buffer, row after row, each row
``row_bytes(d, bits, dtype)`` bytes, so any contiguous range of rows is a contiguous byte
range): 4 header bytes, then the levels packed LSB-first (:mod:`gnnsys.comm.codec_kernels`).
Header of a quantized row: ``lo`` then ``scale`` as little-endian fp16 (``scale > 0``, sign
bit clear). Header of a constant row: the float32 value's little-endian bits with bit 31 set
as the constant-row flag; the value's sign travels in bit 0 of the first packed byte, the
other packed bits are zero.

Pass-through widths: ``bits=16`` sends the rows as fp16 (round to nearest; values beyond
+-65504, infinities included, saturate to +-65504; NaN passes), ``bits=32`` sends the raw bytes of the
input dtype (exact, float64 stays float64; the payload may share memory with a contiguous
input).

Randomness: the uniforms are a hash of ``(seed, global row, element)``
(:mod:`gnnsys.comm.codec_kernels`), so the same ``seed`` gives the same bytes on CPU (numba)
and on CUDA/CPU (torch), and blocks of one tensor encoded separately with their
``row_offset`` equal the whole tensor encoded at once. Derive ``seed`` with
:func:`derive_seed`.

Backends: CPU tensors go through one fused numba kernel per call (row min/max, header,
stochastic rounding, packing; parallel over rows on ``numba.get_num_threads()`` threads).
CUDA tensors go through torch ops; their per-row header math runs on the CPU (the same numba
function), so encoding a CUDA tensor synchronises and moves ``rows * 16`` bytes each way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from gnnsys.comm import codec_kernels as K
from gnnsys.errors import RuntimeFailure, UserError
from gnnsys.hashing import chain_key

BITS = (1, 2, 4, 8, 16, 32)
BACKENDS = ("auto", "numba", "torch")
_FP16_MAX = 65504.0
_INT32_SIGN = -(1 << 31)


def row_bytes(d: int, bits: int, dtype: torch.dtype = torch.float32) -> int:
    """Bytes one row of ``d`` values occupies in the payload for ``bits`` (see module doc);
    ``dtype`` (the encoded tensor's dtype) matters only for ``bits=32``; ``d = 0`` gives 0."""
    if bits == 32:
        return d * torch.empty((), dtype=dtype).element_size()
    if bits == 16:
        return 2 * d
    return K.HEAD + K.row_bytes_packed(d, bits) if d else 0


def derive_seed(seed: int, epoch: int, layer: int, rank: int, direction: int) -> int:
    """Return the codec seed (an int in ``[0, 2^64)``) for one exchange.

    Args:
        seed: the run's seed.
        epoch, layer, rank: the exchange's epoch, layer and sending rank.
        direction: 0 for forward features, 1 for backward gradients (any int works).
    """
    return chain_key(seed, epoch, layer, rank, direction)


@dataclass(frozen=True)
class Encoded:
    """Encoded rows: what goes on the wire is :attr:`payload`; the rest the receiver knows.

    Attributes:
        payload: contiguous ``uint8 [rows * row_bytes(d, bits, dtype)]`` tensor (device of the
            encoded tensor).
        rows, d: shape of the encoded tensor.
        bits: the codec's bit width (one of :data:`BITS`).
        dtype: dtype of the encoded tensor (float32/float64; payload layout depends on it only
            for ``bits=32``).
    """

    payload: Tensor
    rows: int
    d: int
    bits: int
    dtype: torch.dtype = torch.float32

    def __post_init__(self) -> None:
        expected = self.rows * self.row_bytes
        if self.payload.dtype != torch.uint8 or self.payload.dim() != 1:
            raise ValueError(f"codec payload must be a 1-D uint8 tensor, got {self.payload.dtype} "
                             f"{tuple(self.payload.shape)}")
        if self.payload.numel() != expected:
            raise ValueError(f"codec payload has {self.payload.numel()} bytes, expected {expected} "
                             f"for {self.rows} rows x {self.d} at {self.bits} bits")

    @property
    def row_bytes(self) -> int:
        """Bytes per row in :attr:`payload`."""
        return row_bytes(self.d, self.bits, self.dtype)

    def slice(self, start: int, stop: int) -> "Encoded":
        """Return rows ``start .. stop - 1`` as an :class:`Encoded` viewing the same payload."""
        if not 0 <= start <= stop <= self.rows:
            raise ValueError(f"row range [{start}, {stop}) outside the {self.rows} encoded rows")
        nb = self.row_bytes
        return Encoded(self.payload[start * nb:stop * nb], stop - start, self.d, self.bits,
                       self.dtype)


class Codec:
    """Encode ``[rows, d]`` float tensors to bytes and back (module doc: format, guarantees).

    Args:
        bits: 1, 2, 4, 8 (stochastic quantization), 16 (fp16) or 32 (exact pass-through).
        backend: ``"auto"`` (numba kernels for CPU tensors, torch ops for CUDA tensors),
            ``"numba"`` (CPU tensors only) or ``"torch"``. Both give the same bytes.

    The numba kernels run on ``numba.get_num_threads()`` threads (``NUMBA_NUM_THREADS``). The
    first call per dtype loads (or, without a cache, compiles for ~20 s) the numba kernels.
    """

    def __init__(self, bits: int, backend: str = "auto") -> None:
        if bits not in BITS:
            raise UserError(f"codec bits must be one of {', '.join(map(str, BITS))}, got {bits}")
        if backend not in BACKENDS:
            raise ValueError(f"codec backend must be one of {BACKENDS}, got {backend!r}")
        self.bits = bits
        self.backend = backend

    def __repr__(self) -> str:
        return f"Codec(bits={self.bits}, backend={self.backend!r})"

    def wire_bytes(self, rows: int, d: int, dtype: torch.dtype = torch.float32) -> int:
        """Payload bytes of ``rows`` rows of ``d`` values of ``dtype`` (exact, not only a bound)."""
        return rows * row_bytes(d, self.bits, dtype)

    def encode(self, x: Tensor, seed: int, row_offset: int = 0) -> Encoded:
        """Encode ``x [rows, d]`` (float32 or float64, any device, not modified).

        Args:
            x: the rows to send.
            seed: random stream (e.g. from :func:`derive_seed`); taken modulo 2^64.
            row_offset: global index of ``x``'s first row in the hash; encoding blocks of a
                tensor with their offsets gives the bytes of encoding it whole.

        Returns:
            The :class:`Encoded` rows; raises :class:`RuntimeFailure` on NaN/inf for bits <= 8.
        """
        if x.dim() != 2 or x.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"codec encodes [rows, d] float32/float64 tensors, got "
                             f"{x.dtype} {tuple(x.shape)}")
        rows, d = x.shape
        x = x.detach()
        if self.bits == 32:
            data = x.contiguous().view(torch.uint8)
        elif self.bits == 16:
            data = x.clamp(-_FP16_MAX, _FP16_MAX).to(torch.float16).contiguous().view(torch.uint8)
        elif rows == 0 or d == 0:
            data = torch.zeros(0, dtype=torch.uint8, device=x.device)
        elif self._use_numba(x):
            data = _encode_numba(x.contiguous(), seed, row_offset, self.bits)
        else:
            data = _encode_torch(x, seed, row_offset, self.bits)
        return Encoded(data.reshape(-1), rows, d, self.bits, x.dtype)

    def decode(self, enc: Encoded, out_dtype: Optional[torch.dtype] = None,
               out: Optional[Tensor] = None) -> Tensor:
        """Return the ``[rows, d]`` tensor of ``enc`` on the payload's device.

        Args:
            enc: the encoded rows.
            out_dtype: float32/float64 result dtype (default: ``out``'s dtype, else
                ``enc.dtype``).
            out: optional contiguous ``[rows, d]`` tensor on the payload's device to write into
                (e.g. the halo slice of a layer's input); saves allocating (and, on the CPU,
                page-faulting) a fresh result. Returned.
        """
        if enc.bits != self.bits:
            raise ValueError(f"{self!r} cannot decode rows encoded with {enc.bits} bits")
        if out_dtype is None:
            out_dtype = enc.dtype if out is None else out.dtype
        if out_dtype not in (torch.float32, torch.float64):
            raise ValueError(f"codec decodes to float32/float64, not {out_dtype}")
        if out is None:
            out = torch.empty(enc.rows, enc.d, dtype=out_dtype, device=enc.payload.device)
        elif (out.shape != (enc.rows, enc.d) or out.dtype != out_dtype
              or out.device != enc.payload.device or not out.is_contiguous()):
            raise ValueError(f"decode out must be a contiguous [{enc.rows}, {enc.d}] {out_dtype} "
                             f"tensor on {enc.payload.device}, got {out.dtype} "
                             f"{tuple(out.shape)} on {out.device}")
        payload = enc.payload
        if payload.storage_offset() % 8:  # a slice of a receive buffer: realign for the views
            payload = payload.clone()
        if self.bits in (16, 32):
            wire_dtype = torch.float16 if self.bits == 16 else enc.dtype
            return out.copy_(payload.view(wire_dtype).view(enc.rows, enc.d))
        if enc.rows == 0 or enc.d == 0:
            return out
        data = payload.view(enc.rows, enc.row_bytes)
        lo, scale = _parse_heads(data, out_dtype)
        if self._use_numba(data):
            K.unpack_numba(data.numpy(), lo.numpy(), scale.numpy(),
                           K.level_table(self.bits, out_dtype), out.numpy())
            return out
        return out.copy_(K.unpack_torch(data, lo, scale, self.bits, enc.d))

    def _use_numba(self, t: Tensor) -> bool:
        """Whether ``t`` goes through the numba kernels."""
        if self.backend == "numba" and t.device.type != "cpu":
            raise ValueError(f"codec backend 'numba' needs CPU tensors, got {t.device}")
        return self.backend == "numba" or (self.backend == "auto" and t.device.type == "cpu")


def _encode_numba(x: Tensor, seed: int, row_offset: int, bits: int) -> Tensor:
    """Encode a contiguous CPU tensor with the numba kernel; returns ``uint8 [rows, row_bytes]``."""
    rows, d = x.shape
    out = np.empty((rows, row_bytes(d, bits)), dtype=np.uint8)
    finite = np.empty(rows, dtype=np.bool_)
    K.encode_numba(x.numpy(), x.view(K.key_int_dtype(x.dtype)).numpy(), K.key_bounds(x.dtype),
                   np.uint64(K.stream_key(seed)), row_offset, bits, out, finite)
    _check_finite(torch.from_numpy(finite), row_offset)
    return torch.from_numpy(out)


def _encode_torch(x: Tensor, seed: int, row_offset: int, bits: int) -> Tensor:
    """Encode with torch ops on x's device; returns ``uint8 [rows, row_bytes]``. The per-row
    header math runs on the CPU (the numba function the numba path uses)."""
    keys = K.float_keys(x.contiguous().view(K.key_int_dtype(x.dtype)))
    kmin, kmax = keys.amin(1), keys.amax(1)
    lowest, highest = K.key_bounds(x.dtype).tolist()
    _check_finite((kmin > lowest) & (kmax < highest), row_offset)
    mn, mx = (K.float_keys(k).view(x.dtype).cpu().numpy() for k in (kmin, kmax))
    rows = x.shape[0]
    lo, inv = np.empty_like(mn), np.empty_like(mn)
    head, first = np.empty((rows, K.HEAD), dtype=np.uint8), np.empty(rows, dtype=np.uint8)
    K.row_params_numba(mn, mx, bits, lo, inv, head, first)
    lo, inv, head, first = (torch.from_numpy(a).to(x.device) for a in (lo, inv, head, first))
    return K.quantize_pack_torch(x, lo, inv, head, first, K.stream_key(seed), row_offset, bits)


def _check_finite(finite: Tensor, row_offset: int) -> None:
    """Raise :class:`RuntimeFailure` naming the first row whose ``finite`` flag is False."""
    bad = torch.nonzero(~finite)
    if bad.numel():
        raise RuntimeFailure(
            f"codec: row {row_offset + int(bad[0, 0])} holds NaN or inf; cannot quantize "
            f"non-finite values (training diverged?)")


def _parse_heads(data: Tensor, out_dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """Per-row ``(lo, scale)`` in ``out_dtype`` from the payload ``uint8 [rows, row_bytes]``.

    A constant row gets ``(value, -0.0)``, so ``lo + level * scale`` is its value bit-exactly.
    """
    head = data[:, :K.HEAD].clone(memory_format=torch.contiguous_format)  # aligned, even 1 row
    fp16 = head.view(torch.float16).to(out_dtype)
    head32 = head.view(torch.int32).squeeze(1)
    const = head32 < 0
    magnitude = head32 & 0x7FFFFFFF
    value = torch.where((data[:, K.HEAD] & 1).bool(), magnitude | _INT32_SIGN, magnitude)
    value = value.view(torch.float32).to(out_dtype)
    lo = torch.where(const, value, fp16[:, 0])
    scale = torch.where(const, torch.full_like(value, -0.0), fp16[:, 1])
    return lo, scale
