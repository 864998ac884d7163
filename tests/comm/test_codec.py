"""Quantization codec: unbiasedness, containment, exact constant rows, wire size, the numba and
torch backends giving the same bytes, determinism, pass-through widths, edge cases."""
import numpy as np
import pytest
import torch

from gnnsys.comm import codec_kernels as K
from gnnsys.comm.codec import BITS, Codec, Encoded, derive_seed, row_bytes
from gnnsys.errors import RuntimeFailure, UserError
from gnnsys.hashing import GAMMA, splitmix64_int

QBITS = (1, 2, 4, 8)
BACKENDS = ("numba", "torch")
AWKWARD = [1e-30, 3.14159274, -65504.5, 1e6 + 0.1, -0.0, 0.0, 3e38, -1e-45, 65504.0, 7e4, -2.5]


def mixed_rows(rows: int, d: int, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    """Rows at many scales and offsets, with constant and degenerate (narrow, far) rows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, d, generator=g, dtype=torch.float64)
    x *= torch.logspace(-6, 6, rows, dtype=torch.float64).unsqueeze(1)
    x += torch.randn(rows, 1, generator=g, dtype=torch.float64) * 10
    x[0] = 2.5  # constant
    x[1, :] = 1000.1 + 0.8 * torch.rand(d, generator=g, dtype=torch.float64)  # no usable fp16 grid
    x[2] = torch.rand(d, generator=g, dtype=torch.float64) * 1e-9  # range below the fp16 steps
    x[3] = 1e30 + torch.rand(d, generator=g, dtype=torch.float64) * 1e29  # beyond fp16
    return x.to(dtype)


def heads(enc: Encoded) -> torch.Tensor:
    """The documented header of a quantized payload: ``[rows, 2]`` fp16 ``(lo, scale)``."""
    return enc.payload.view(enc.rows, enc.row_bytes)[:, :4].contiguous().view(torch.float16)


@pytest.mark.parametrize("bits", QBITS)
def test_mean_of_2000_draws_is_the_input_within_4_standard_errors(bits):
    draws, levels = 2000, 2 ** bits - 1
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(16, 37, generator=g) * torch.rand(16, 1, generator=g) * 4
    top = -2.0 + levels * float(np.float16(3.5 / levels))  # fp16 bounds and step: every
    x[:8] = x[:8].clamp(-2.0, top)  # element of the first 8 rows is unbiased
    x[:8, 0], x[:8, 1] = -2.0, top
    codec = Codec(bits)
    enc = codec.encode(x.repeat(draws, 1), seed=11)  # rows draw independently (row index hash)
    mean = codec.decode(enc, torch.float64).view(draws, 16, 37).mean(0)

    lo, scale = heads(enc)[:16].double().unbind(1)
    hi = lo + levels * scale
    x64 = x.double()
    # the grid lies inside the row range; outside it elements clamp to the nearest end
    assert (lo >= x64.amin(1)).all() and (hi <= x64.amax(1)).all()
    assert (lo - x64.amin(1) <= x64.amin(1).abs() * 2.0 ** -10).all()
    assert (x64.amax(1) - hi <= (x64.amax(1) - x64.amin(1)) * 2.0 ** -9).all()
    target = torch.maximum(torch.minimum(x64, hi[:, None]), lo[:, None])
    assert torch.equal(target[:8], x64[:8])

    t = (target - lo[:, None]) / scale[:, None]
    frac = t - t.floor()
    se = scale[:, None] * torch.sqrt(frac * (1 - frac) / draws)
    # slack: float32 rounding of t and of the decoded levels, plus two draws' worth of a step
    # (the normal approximation behind "4 standard errors" fails when frac * draws is ~1)
    slack = 1e-6 * x64.abs() + 2 * scale[:, None] / draws * (se > 0)
    err = (mean - target).abs()
    assert (err <= 4 * se + slack).all()
    z = ((mean - target) / se)[se > 0]
    assert abs(z.mean()) < 4 / z.numel() ** 0.5  # no systematic bias over all elements


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bits", QBITS)
def test_every_output_within_its_row_range(bits, dtype, backend):
    x = mixed_rows(64, 37, dtype)
    codec = Codec(bits, backend)
    y = codec.decode(codec.encode(x, seed=3))
    assert y.dtype == dtype
    assert (y >= x.amin(1, keepdim=True)).all() and (y <= x.amax(1, keepdim=True)).all()
    if bits == 1:  # two levels per row
        assert max(len(torch.unique(row)) for row in y) <= 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", QBITS)
@pytest.mark.parametrize("d", [1, 37])
def test_constant_rows_decode_bit_exactly(d, bits, backend):
    x = torch.tensor(AWKWARD, dtype=torch.float32).unsqueeze(1).repeat(1, d)
    codec = Codec(bits, backend)
    y = codec.decode(codec.encode(x, seed=1))
    assert torch.equal(y.view(torch.int32), x.view(torch.int32))


def test_degenerate_rows_decode_to_their_midpoint():
    x = torch.tensor([[1000.1, 1000.3], [1e30, 2e30]], dtype=torch.float32)
    y = Codec(1).decode(Codec(1).encode(x, seed=0))
    assert torch.equal(y, (x.double().mean(1, keepdim=True)).float().expand(2, 2))


@pytest.mark.parametrize("bits", QBITS)
@pytest.mark.parametrize("d", [1, 7, 8, 37, 256])
def test_wire_size_is_header_plus_packed_bits(d, bits):
    rows = 5
    expected = rows * ((d * bits + 7) // 8 + 4)
    codec = Codec(bits)
    enc = codec.encode(mixed_rows(rows, d), seed=0)
    assert enc.payload.numel() == codec.wire_bytes(rows, d) == expected
    assert enc.payload.dtype == torch.uint8 and enc.payload.is_contiguous()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bits", QBITS)
def test_numba_and_torch_give_the_same_bytes_and_values(bits, dtype):
    x = mixed_rows(300, 37, dtype, seed=bits)  # > one numba row chunk
    encs = [Codec(bits, b).encode(x, seed=12345, row_offset=77) for b in BACKENDS]
    assert torch.equal(encs[0].payload, encs[1].payload)
    outs = [Codec(bits, b).decode(encs[0], out) for b in BACKENDS
            for out in (torch.float32, torch.float64)]
    assert torch.equal(outs[0], outs[2]) and torch.equal(outs[1], outs[3])


def test_torch_uniforms_match_the_python_reference_hash():
    key, row_offset = K.stream_key(99), 5
    u = K.uniforms_torch(key, row_offset, 3, 5, torch.float64, torch.device("cpu"))
    for r in range(3):
        rk = splitmix64_int(key ^ ((row_offset + r) * GAMMA))
        for j in range(5):
            h = K.lowbias32_int((rk + j * 0x9E3779B9) & 0xFFFFFFFF)
            assert u[r, j].item() == ((h ^ (rk >> 32)) >> 8) * 2.0 ** -24


def test_fp16_rounding_matches_the_fp16_grid():
    grid = np.unique(np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float64))
    grid = grid[np.isfinite(grid)]
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(3000) * 10.0 ** rng.integers(-9, 6, 3000),
                             grid[::97], [0.0, 65504.0, -65504.0, 65519.0, 1e6, -1e6]])
    for v in values:
        up, down = (K._fp16_value(K._fp16_bits(v, flag)) for flag in (True, False))
        i = np.searchsorted(grid, v)
        assert up == (grid[i] if i < len(grid) else np.inf)
        j = np.searchsorted(grid, v, side="right") - 1
        assert down == (grid[j] if j >= 0 else -np.inf)
        assert np.float16(up).view(np.uint16) == K._fp16_bits(v, True) or up == 0


@pytest.mark.parametrize("bits", QBITS)
def test_same_seed_same_bytes_other_seed_other_bytes_blocks_equal_whole(bits):
    x = mixed_rows(40, 37)
    codec = Codec(bits)
    whole = codec.encode(x, seed=5).payload
    assert torch.equal(whole, codec.encode(x.clone(), seed=5).payload)
    assert not torch.equal(whole, codec.encode(x, seed=6).payload)
    blocks = [codec.encode(x[a:b], seed=5, row_offset=a).payload for a, b in [(0, 13), (13, 40)]]
    assert torch.equal(whole, torch.cat(blocks))
    enc = codec.encode(x, seed=5)
    assert torch.equal(codec.decode(enc.slice(13, 40)), codec.decode(enc)[13:40])


@pytest.mark.parametrize("bits", (1, 16, 32))
def test_decode_into_out_writes_the_rows_and_checks_the_buffer(bits):
    x = mixed_rows(20, 9)
    codec = Codec(bits)
    enc = codec.encode(x, seed=2)
    full = torch.full((25, 9), 7.0)
    result = codec.decode(enc.slice(4, 20), out=full[5:21])
    assert result.data_ptr() == full[5].data_ptr()
    assert torch.equal(full[5:21], codec.decode(enc)[4:20])
    assert (full[:5] == 7).all() and (full[21:] == 7).all()
    with pytest.raises(ValueError, match="decode out"):
        codec.decode(enc, out=torch.empty(20, 9, dtype=torch.float64), out_dtype=torch.float32)
    with pytest.raises(ValueError, match="decode out"):
        codec.decode(enc, out=torch.empty(9, 20).t())


def test_derive_seed_is_deterministic_and_separates_coordinates():
    base = (1, 2, 3, 4, 0)
    seeds = {derive_seed(*base)}
    for i in range(5):
        other = list(base)
        other[i] += 1
        seeds.add(derive_seed(*other))
    assert len(seeds) == 6 and derive_seed(*base) == derive_seed(*base)
    assert all(0 <= s < 2 ** 64 for s in seeds)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fp32_pass_through_is_exact_in_the_input_dtype(dtype):
    x = mixed_rows(9, 5, dtype)
    x[4, 2] = float("nan")
    codec = Codec(32)
    enc = codec.encode(x, seed=0)
    assert enc.payload.numel() == codec.wire_bytes(9, 5, dtype) == x.numel() * x.element_size()
    assert torch.equal(codec.decode(enc).view(torch.uint8), x.view(torch.uint8))


def test_fp16_pass_through_rounds_and_saturates():
    x = torch.tensor([[1.0, 1 / 3, -7e4, 1e5]])
    codec = Codec(16)
    enc = codec.encode(x, seed=0)
    assert enc.payload.numel() == codec.wire_bytes(1, 4) == 8
    y = codec.decode(enc)
    assert torch.equal(y, torch.tensor([[1.0, float(np.float16(1 / 3)), -65504.0, 65504.0]]))


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("shape", [(0, 5), (4, 1), (3, 0)])
def test_empty_and_single_column_shapes(shape, bits):
    x = torch.linspace(-1, 1, shape[0] * shape[1]).view(shape)
    codec = Codec(bits)
    enc = codec.encode(x, seed=0)
    assert enc.payload.numel() == codec.wire_bytes(*shape) == shape[0] * row_bytes(shape[1], bits)
    y = codec.decode(enc)
    assert y.shape == shape
    if shape == (4, 1):  # one element per row: a constant row
        assert torch.equal(y, x if bits != 16 else x.half().float())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_input_raises_naming_the_row(bad, backend):
    x = torch.zeros(6, 4)
    x[3, 1] = bad
    with pytest.raises(RuntimeFailure, match="row 13 holds NaN or inf"):
        Codec(2, backend).encode(x, seed=0, row_offset=10)


def test_bad_arguments_are_rejected():
    with pytest.raises(UserError, match="codec bits"):
        Codec(3)
    with pytest.raises(ValueError, match="float32/float64"):
        Codec(1).encode(torch.zeros(2, 2, dtype=torch.int64), seed=0)
    enc = Codec(1).encode(torch.randn(3, 9), seed=0)
    with pytest.raises(ValueError, match="cannot decode"):
        Codec(2).decode(enc)
    with pytest.raises(ValueError, match="expected"):
        Encoded(enc.payload[:-1], 3, 9, 1)
    with pytest.raises(ValueError, match="row range"):
        enc.slice(2, 4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("rows", [1, 3])
def test_payload_sliced_at_an_odd_offset_of_a_receive_buffer_decodes(rows, bits, backend):
    # The exchange decodes each peer's block in place from one byte buffer, so a payload can
    # start at any byte, and a 1-row block is a [1, row_bytes] view with a long stride.
    codec = Codec(bits, backend=backend)
    x = torch.randn(rows, 3704)
    enc = codec.encode(x, seed=5)
    buf = torch.cat([torch.zeros(3, dtype=torch.uint8), enc.payload])
    sliced = Encoded(buf[3:], enc.rows, enc.d, enc.bits, enc.dtype)
    assert torch.equal(codec.decode(sliced), codec.decode(enc))
