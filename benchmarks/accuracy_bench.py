"""Test accuracy of distributed full-graph training, mean over seeds, under real mpirun.

Partitions each dataset into ``--parts`` parts with METIS and trains ``--model`` for every seed
with ``mpirun -n parts gnnsys train``; prints a markdown table (mean, std, min, max test
accuracy) next to the published figure and writes JSON with ``--out``.

    python benchmarks/accuracy_bench.py --datasets cora citeseer --seeds 0 1 2 3 4
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from gnnsys.bench.accuracy import partition, run_seed

PUBLISHED = {("gcn", "cora"): 0.815, ("gcn", "citeseer"): 0.703}
TARGET = {("gcn", "cora"): 0.805, ("gcn", "citeseer"): 0.695}


def main() -> None:
    """Parse options, run every (dataset, seed), print the table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["cora", "citeseer"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--model", default="gcn")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("extra", nargs=argparse.REMAINDER,
                        help="extra `gnnsys train` flags after --")
    args = parser.parse_args()
    extra = [a for a in args.extra if a != "--"]
    rows, results = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            part = str(partition(dataset, args.parts, Path(tmp) / f"{dataset}-{args.parts}"))
            accs = np.array([run_seed(part, args.parts, args.model, s, extra)
                             for s in args.seeds])
            key = (args.model, dataset)
            results[dataset] = {"seeds": args.seeds, "test_acc": accs.tolist(),
                                "mean": float(accs.mean()), "std": float(accs.std()),
                                "target": TARGET.get(key), "published": PUBLISHED.get(key)}
            rows.append(f"| {dataset} | {args.model} | {args.parts} | {len(accs)} | "
                        f"{accs.mean():.4f} ± {accs.std():.4f} | {accs.min():.4f}-{accs.max():.4f}"
                        f" | {TARGET.get(key, '-')} | {PUBLISHED.get(key, '-')} |")
    print("| dataset | model | ranks | seeds | test acc mean ± std | range | target | published |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
