"""Suite ``codec``: throughput of the quantization codec next to this machine's memcpy.

For every bit width, row width ``d`` and thread count it encodes (row min/max, header,
quantize, pack: one pass) and decodes (unpack + dequantize into a preallocated tensor, as
memcpy writes into one) a random float32 ``[rows, d]`` tensor and keeps the best of
``repeat`` times as GB/s of float32 data; ``decode_alloc`` decodes into a fresh tensor (its
first-touch page faults dominate on the CPU). ``memcpy`` is ``np.copyto`` into a preallocated
array, one thread. Issue 5 targets: encode >= 1 GB/s and decode >= 2 GB/s per core at d = 256,
1 bit. On ``--device cuda`` the torch backend runs on the GPU (synchronised timings).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from gnnsys.bench import plots
from gnnsys.bench.common import best_seconds
from gnnsys.bench.options import BenchOptions

NAME = "codec"
TARGETS = {"encode_gbps": 1.0, "decode_gbps": 2.0}  # per core, d = 256, 1 bit


def _timed(fn, device: str, repeat: int) -> float:
    """Best seconds of ``fn``, synchronising the GPU around each call on cuda."""
    if device != "cuda":
        return best_seconds(fn, repeat)

    def synced():
        fn()
        torch.cuda.synchronize()
    return best_seconds(synced, repeat)


def run(opts: BenchOptions) -> dict:
    """Time encode/decode for every (d, threads, bits); return ``{"config", "rows"}``."""
    import numba

    from gnnsys.comm.codec import Codec

    rows = opts.pick(opts.nodes, 200_000, 20_000)
    dims = [256] if opts.quick else [128, 256]
    threads = [1] if opts.quick or opts.device == "cuda" else \
        sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)})
    repeat = 3 if opts.quick else 5
    backend = "torch" if opts.device == "cuda" else "numba"
    torch.set_num_threads(1)
    out: List[Dict[str, float]] = []
    for d in dims:
        x = torch.randn(rows, d, generator=torch.Generator().manual_seed(opts.seed))
        gb = x.numel() * 4 / 1e9
        dst = np.empty_like(x.numpy())
        memcpy = gb / best_seconds(lambda: np.copyto(dst, x.numpy()), repeat)
        x = x.to(opts.device)
        for nthreads in threads:
            numba.set_num_threads(nthreads)
            for bits in (1, 2, 4, 8, 16):
                codec = Codec(bits, backend)
                enc = codec.encode(x, seed=1)
                buf = torch.empty_like(x)
                row = {"bits": bits, "d": d, "rows": rows, "threads": nthreads,
                       "backend": backend, "device": opts.device, "memcpy_gbps": memcpy,
                       "encode_gbps": gb / _timed(lambda: codec.encode(x, seed=1), opts.device,
                                                  repeat),
                       "decode_gbps": gb / _timed(lambda: codec.decode(enc, out=buf),
                                                  opts.device, repeat),
                       "decode_alloc_gbps": gb / _timed(lambda: codec.decode(enc), opts.device,
                                                        repeat),
                       "ratio": 4 * d / codec.wire_bytes(1, d)}
                out.append(row)
                print(f"[codec] bits {bits} d {d} threads {nthreads}: encode "
                      f"{row['encode_gbps']:.2f} GB/s, decode {row['decode_gbps']:.2f} GB/s "
                      f"(memcpy {memcpy:.2f})", flush=True)
    return {"config": {"rows": rows, "dims": dims, "threads": threads, "repeat": repeat,
                       "backend": backend}, "targets": TARGETS, "rows": out}


def headline(result: dict) -> Dict[str, float]:
    """Return the 1-bit, d = 256, one-thread row of ``result`` (the issue-5 target row)."""
    return next((r for r in result["rows"] if r["bits"] == 1 and r["d"] == 256
                 and r["threads"] == 1), {})


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw encode/decode GB/s per bit width at d = 256, one thread, with memcpy and the
    targets; return the PNG paths."""
    rows = [r for r in result["rows"] if r["d"] == 256 and r["threads"] == 1] or result["rows"]
    fig, axes = plots.subplots(1, 1, size=(6.5, 3.8))
    ax = axes[0][0]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["encode_gbps"] for r in rows], 0.4, label="encode (quantize+pack)")
    ax.bar(x + 0.2, [r["decode_gbps"] for r in rows], 0.4, label="decode (unpack)")
    ax.axhline(rows[0]["memcpy_gbps"], color="black", linewidth=1, label="memcpy")
    ax.axhline(TARGETS["encode_gbps"], color="tab:blue", linestyle=":", label="encode target")
    ax.axhline(TARGETS["decode_gbps"], color="tab:orange", linestyle=":", label="decode target")
    ax.set_xticks(x, [f"{r['bits']} bit" if r["bits"] < 16 else "fp16" for r in rows])
    ax.set_ylabel("GB/s of fp32 data, 1 thread")
    ax.set_title(f"codec, d = {rows[0]['d']}, {rows[0]['rows']} rows ({rows[0]['device']})",
                 fontsize=9)
    ax.legend(fontsize=7)
    return [plots.save(fig, stem)]


def markdown(result: dict) -> str:
    """Return the result as a markdown table."""
    lines = ["| bits | d | threads | encode GB/s | decode GB/s | decode+alloc GB/s | memcpy GB/s "
             "| wire ratio |", "|" + "---|" * 8]
    for r in result["rows"]:
        lines.append(f"| {r['bits']} | {r['d']} | {r['threads']} | {r['encode_gbps']:.2f} | "
                     f"{r['decode_gbps']:.2f} | {r['decode_alloc_gbps']:.2f} | "
                     f"{r['memcpy_gbps']:.2f} | {r['ratio']:.1f}x |")
    return "\n".join(lines)
