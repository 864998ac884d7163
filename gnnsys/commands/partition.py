"""``gnnsys partition``: split a dataset into P shards on disk (offline, one machine)."""
from __future__ import annotations

import argparse
import os
import re
import time

from gnnsys.partition.assign import METHODS


def register(subparsers) -> None:
    """Add the ``partition`` subcommand and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "partition", help="partition a graph into per-worker shards",
        description="Partition a dataset into P shards (one per training rank) and write them "
        "with a manifest of checksums. Prints the partition quality and the time split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", required=True, default=argparse.SUPPRESS,
                        help="dataset: karate, cora, citeseer, "
                        "synthetic:N[,deg=20,classes=10,feat=128,seed=0] or a path to a .npz")
    parser.add_argument("--parts", type=int, required=True, default=argparse.SUPPRESS,
                        help="number of parts P (one per training rank)")
    parser.add_argument("--servers", type=int, default=1,
                        help="number of servers S (must divide P); S > 1 partitions in two "
                        "levels: servers first, then P/S workers per server")
    parser.add_argument("--method", choices=METHODS, default="metis",
                        help="metis: min edge cut, balanced on nodes, edges and train nodes; "
                        "random: seeded balanced random split")
    parser.add_argument("--undirected", action="store_true",
                        help="add the reverse of every edge before partitioning")
    parser.add_argument("--seed", type=int, default=0, help="seed for METIS / random")
    parser.add_argument("--out", default=None,
                        help="output folder; None means partitions/<dataset>-<P>, with "
                        "-s<S> appended when S > 1")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing partition at --out")
    parser.set_defaults(func=run)


def default_out(name: str, parts: int, servers: int) -> str:
    """Return the default output folder ``partitions/<name>-<parts>[-s<servers>]``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "graph"
    return os.path.join("partitions", f"{safe}-{parts}" + (f"-s{servers}" if servers > 1 else ""))


def run(args: argparse.Namespace) -> int:
    """Load the dataset, partition it, print the report and the time split; return 0."""
    from gnnsys.data import load_dataset
    from gnnsys.partition import format_report, partition_graph

    clock = time.perf_counter()
    graph = load_dataset(args.dataset, undirected=args.undirected)
    t_load = time.perf_counter() - clock
    out = args.out or default_out(graph.name, args.parts, args.servers)
    command = (f"gnnsys partition --dataset {args.dataset} --parts {args.parts} "
               f"--servers {args.servers} --method {args.method} --seed {args.seed} --out {out}"
               + (" --undirected" if args.undirected else ""))
    result = partition_graph(graph, args.parts, out, servers=args.servers, method=args.method,
                             seed=args.seed, overwrite=args.overwrite, command=command,
                             undirected=args.undirected)
    t = result["timings"]
    print(format_report(result["report"]))
    print(f"\ntime: load {t_load:.2f} s, assign ({args.method}) {t['assign']:.2f} s, "
          f"relabel/halo {t['relabel_halo']:.2f} s, write {t['write']:.2f} s, "
          f"total {t_load + t['total']:.2f} s; peak RSS {t['peak_rss_bytes'] / 2**30:.2f} GiB")
    print(f"wrote {args.parts} shards of {graph.name} ({graph.num_nodes} nodes, "
          f"{graph.num_edges} edges) to {out}")
    return 0
