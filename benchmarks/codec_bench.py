"""Throughput of the quantization codec (numba kernels) next to this machine's memcpy.

    .venv/bin/python benchmarks/codec_bench.py --rows 200000 --out codec_bench.json

For every bit width, row width ``d`` and thread count it encodes (row min/max, header, quantize,
pack: one pass) and decodes (unpack + dequantize) a random float32 ``[rows, d]`` tensor
``--repeat`` times and reports the best time as GB/s of float32 data (input for encode, output
for decode). ``decode`` writes into a preallocated ``out`` (as ``memcpy`` does);
``decode+alloc`` into a fresh tensor, whose first-touch page faults dominate on the CPU.
``memcpy`` is ``np.copyto`` into a preallocated array of the same size, one thread. Targets: encode >= 1 GB/s and decode >= 2 GB/s per core at d = 256,
1 bit. Take the best of several repeats on a loaded machine.
"""
import argparse
import json
import time

import numba
import numpy as np
import torch

from gnnsys.comm.codec import Codec


def best_seconds(fn, repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows of the encoded tensor")
    ap.add_argument("--dims", default="128,256", help="comma-separated row widths d")
    ap.add_argument("--bits", default="1,2,4,8", help="comma-separated bit widths")
    ap.add_argument("--threads", default="1,2", help="comma-separated numba thread counts "
                    "(at most NUMBA_NUM_THREADS)")
    ap.add_argument("--backend", choices=("numba", "torch"), default="numba",
                    help="codec backend to time (torch: the CPU run of the CUDA code path)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repetitions; the best counts")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = []
    print(f"{'bits':>4} {'d':>5} {'thr':>3} {'encode GB/s':>11} {'decode GB/s':>11} "
          f"{'decode+alloc':>12} {'memcpy GB/s':>11} {'ratio':>6}")
    for d in map(int, args.dims.split(",")):
        x = torch.randn(args.rows, d, generator=torch.Generator().manual_seed(0))
        gb = x.numel() * 4 / 1e9
        dst = np.empty_like(x.numpy())
        memcpy = gb / best_seconds(lambda: np.copyto(dst, x.numpy()), args.repeat)
        for threads in map(int, args.threads.split(",")):
            numba.set_num_threads(threads)
            for bits in map(int, args.bits.split(",")):
                codec = Codec(bits, args.backend)
                enc = codec.encode(x, seed=1)
                encode = gb / best_seconds(lambda: codec.encode(x, seed=1), args.repeat)
                out = torch.empty_like(x)
                decode = gb / best_seconds(lambda: codec.decode(enc, out=out), args.repeat)
                fresh = gb / best_seconds(lambda: codec.decode(enc), args.repeat)
                row = dict(bits=bits, d=d, rows=args.rows, threads=threads, backend=args.backend,
                           encode_gbps=encode, decode_gbps=decode, decode_alloc_gbps=fresh,
                           memcpy_gbps=memcpy, ratio=4 * d / codec.wire_bytes(1, d))
                results.append(row)
                print(f"{bits:>4} {d:>5} {threads:>3} {encode:>11.2f} {decode:>11.2f} "
                      f"{fresh:>12.2f} {memcpy:>11.2f} {row['ratio']:>5.1f}x", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
