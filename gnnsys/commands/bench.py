"""``gnnsys bench``: run a benchmark suite (or all) and write its JSON, plots and the report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

SUITE_HELP = ("codec: quantization codec GB/s vs memcpy; compute: one-process epoch, gnnsys vs "
              "PyG (and DGL in .venv-dgl); partition: `gnnsys partition` vs DGL's "
              "partition_graph, time and peak memory vs graph size; exchange: epoch time, bytes "
              "and accuracy per setting on an emulated 2-host cluster at each bandwidth, next "
              "to the model bound (needs root); memory: peak RSS per rank, 4 ranks vs 1; "
              "accuracy: test accuracy per epoch and over seeds on Cora/CiteSeer and "
              "synthetic:200000 (next to single-process PyG), 4 ranks on this host; batching: "
              "issue-6 accuracy of full-graph exchange, minibatch 1024 (fanouts 10,25) and "
              "preload (full closure, f=15) on 2 servers x 2 workers (CiteSeer, "
              "synthetic:200000); preload: per-server memory (USS/PSS) of preload mode on "
              "synthetic:1000000, 2 workers per server vs 1; all: "
              "every suite, then the report; report: only write the report from the newest "
              "results in --out")


def register(subparsers) -> None:
    """Add the ``bench`` subcommand to ``subparsers``."""
    from gnnsys.bench.options import DEFAULT_BANDWIDTHS
    from gnnsys.bench.runner import SUITES
    from gnnsys.bench.settings import BY_KEY

    parser = subparsers.add_parser(
        "bench", help="run the benchmarks and write the performance report",
        description="Run a benchmark suite side by side with its peers and write "
        "<out>/<suite>-<date>.json plus PNG plots (quick runs: <suite>-<date>-quick.json), "
        "then <out>/PERFORMANCE.md (--quick: PERFORMANCE-quick.md): every target of the design "
        "issues as measured / target / bound. " + SUITE_HELP + ".",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("suite", choices=[*SUITES, "all", "report"], help="what to run")
    parser.add_argument("--quick", action="store_true",
                        help="small graphs and few epochs (all: under 15 minutes on 2 cores); "
                        "results named <suite>-<date>-quick.json")
    parser.add_argument("--nodes", type=int, default=None,
                        help="graph nodes of compute/exchange (codec: rows) (unset: 200000 "
                        "compute, 40000 exchange, 1000000 memory and preload; quick 10000 / "
                        "5000 / 10000 / 20000)")
    parser.add_argument("--sizes", default=None,
                        help="comma-separated graph sizes of the partition suite (unset: "
                        "250000,1000000,4000000; quick 5000,20000)")
    parser.add_argument("--bandwidths", default=",".join(DEFAULT_BANDWIDTHS),
                        help="comma-separated link rates of the exchange suite (tc syntax)")
    parser.add_argument("--hosts", type=int, default=2, help="emulated hosts (servers)")
    parser.add_argument("--ranks-per-host", type=int, default=2, help="ranks per emulated host")
    parser.add_argument("--settings", default=None,
                        help=f"comma-separated settings to compare, of {', '.join(BY_KEY)} "
                        "(unset: all that `gnnsys train` supports, --quick: those without "
                        "preload; fp32 sync, the baseline, always runs)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per training run (unset: exchange 12, compute 5 timed, "
                        "accuracy and batching 200, synthetic graphs 100, preload 3; quick "
                        "3 / 3 / 100, 20 / 50 / 2)")
    parser.add_argument("--seeds", type=int, default=None,
                        help="seeds of the accuracy suites (unset: 5, synthetic graphs 2 "
                        "in accuracy and 1 in batching; quick 1)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="DATASET",
                        help="datasets of the accuracy suites, e.g. --datasets citeseer "
                        "synthetic:200000 (unset: each suite's own list)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="cuda: GPU kernels and NCCL; without a GPU the run is skipped "
                        "with one line and exit code 0")
    parser.add_argument("--seed", type=int, default=0, help="graph and weight seed")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds allowed to one child run (training, partitioner)")
    parser.add_argument("--out", default="bench", help="results folder (scratch in <out>/work)")
    parser.add_argument("--report", default=None,
                        help="where the report goes (unset: <out>/PERFORMANCE.md, with --quick "
                        "<out>/PERFORMANCE-quick.md from the quick results)")
    parser.set_defaults(func=run)


def _positive(value: Optional[int], flag: str) -> Optional[int]:
    from gnnsys.errors import UserError

    if value is not None and value < 1:
        raise UserError(f"{flag} must be >= 1, got {value}")
    return value


def _sizes(text: Optional[str]) -> Optional[List[int]]:
    from gnnsys.errors import UserError

    if text is None:
        return None
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--sizes takes comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 100:
        raise UserError(f"--sizes must list graph sizes >= 100, got {text!r}")
    return sizes


def run(args: argparse.Namespace) -> int:
    """Validate the options, run the suite(s), write the report; return the exit code."""
    from gnnsys.bench.common import parse_rate
    from gnnsys.bench.options import BenchOptions
    from gnnsys.bench.report import write_report
    from gnnsys.bench.runner import SUITES, run_many, run_suite
    from gnnsys.bench.settings import parse_settings

    bandwidths = [b.strip() for b in args.bandwidths.split(",") if b.strip()]
    for rate in bandwidths or [args.bandwidths]:
        parse_rate(rate)
    settings = parse_settings(args.settings)
    opts = BenchOptions(out=Path(args.out), quick=args.quick, device=args.device,
                        nodes=_positive(args.nodes, "--nodes"), sizes=_sizes(args.sizes),
                        bandwidths=bandwidths, hosts=_positive(args.hosts, "--hosts"),
                        ranks_per_host=_positive(args.ranks_per_host, "--ranks-per-host"),
                        settings=[s.key for s in settings] if args.settings else None,
                        epochs=_positive(args.epochs, "--epochs"),
                        seeds=_positive(args.seeds, "--seeds"), seed=args.seed,
                        datasets=args.datasets,
                        timeout=args.timeout)
    name = "PERFORMANCE-quick.md" if args.quick else "PERFORMANCE.md"
    report = Path(args.report) if args.report else opts.out / name
    if args.suite == "report":
        print(f"report: {write_report(opts.out, report, args.quick)}")
        return 0
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("gnnsys bench: skipped: --device cuda but torch.cuda.is_available() is False "
                  "(no GPU or no CUDA build of torch here)", file=sys.stderr)
            return 0
    command = " ".join(["gnnsys", "bench", *sys.argv[2:]]) if _is_cli() else \
        f"gnnsys bench {args.suite}"
    if args.suite == "all":
        done = run_many(list(SUITES), opts, command)
        print(f"report: {write_report(opts.out, report, args.quick)}")
        return 1 if any(v.startswith("failed") for v in done.values()) else 0
    run_suite(args.suite, opts, command)
    return 0


def _is_cli() -> bool:
    """True when this process is the ``gnnsys bench`` command line (not a test calling main)."""
    return len(sys.argv) > 1 and sys.argv[1] == "bench"
