"""``gnnsys partition``: split a dataset into P shards on disk (offline, one machine)."""
from __future__ import annotations

import argparse
import os
import re
import time

from gnnsys.errors import UserError
from gnnsys.partition.assign import METHODS


def register(subparsers) -> None:
    """Add the ``partition`` subcommand and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "partition", help="partition a graph into per-worker shards",
        description="Partition a dataset into P shards (one per training rank) and write them "
        "with a manifest of checksums. Prints the partition quality and the time split.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--dataset", default=argparse.SUPPRESS,
                        help="dataset (required unless --from-distdgl): karate, cora, citeseer, "
                        "synthetic:N[,deg=20,classes=10,feat=128,seed=0], ogb:NAME (with "
                        "--root) or a path to a .npz")
    parser.add_argument("--parts", type=int, default=argparse.SUPPRESS,
                        help="number of parts P (one per training rank; required unless "
                        "--from-distdgl)")
    parser.add_argument("--root", default=None,
                        help="folder holding ogb: datasets (OGB's layout); None means ./dataset")
    parser.add_argument("--from-distdgl", metavar="PART_CONFIG", default=None,
                        help="convert the DistDGL partition described by this JSON config "
                        "(needs dgl) instead of partitioning a dataset: same parts, same nodes")
    parser.add_argument("--servers", type=int, default=1,
                        help="number of servers S (must divide P); S > 1 partitions in two "
                        "levels: servers first, then P/S workers per server")
    parser.add_argument("--preload-hops", type=int, default=None, metavar="L",
                        help="with S > 1: write server-<s>/ holding each server's external "
                        "dependencies within L hops (0 disables); None means 2 when S > 1")
    parser.add_argument("--ext-fanout", type=int, default=-1, metavar="F",
                        help="expansion-aware sampling of the preload: keep at most F uniformly "
                        "sampled external in-neighbours per node per hop; -1 keeps all "
                        "(GraNNDis uses 15)")
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


def _preload_hops(args: argparse.Namespace) -> int:
    """Return the preload depth L for ``args`` (2 by default with S > 1, else 0); UserError
    for a negative L, an --ext-fanout below -1, or a preload asked for without S > 1."""
    from gnnsys.partition.preload import check_preload_options

    hops = args.preload_hops
    check_preload_options(0 if hops is None else hops, args.ext_fanout)
    if args.servers <= 1 and (hops or args.ext_fanout != -1):
        raise UserError("--preload-hops / --ext-fanout need --servers S > 1 (a preload holds "
                        "what a server needs from other servers)")
    return (2 if hops is None else hops) if args.servers > 1 else 0


def run(args: argparse.Namespace) -> int:
    """Load the dataset, partition it, print the report and the time split; return 0."""
    from gnnsys.data import load_dataset
    from gnnsys.partition import format_report, partition_graph

    if args.from_distdgl:
        from gnnsys.partition.distdgl import convert_distdgl, read_config

        config = read_config(args.from_distdgl)
        out = args.out or default_out(config["graph_name"], int(config["num_parts"]), 1)
        result = convert_distdgl(args.from_distdgl, out, overwrite=args.overwrite)
        print(format_report(result["report"]))
        print(f"converted the DistDGL partition {args.from_distdgl} to {result['out']}")
        return 0
    hops = _preload_hops(args)
    missing = [f"--{key}" for key in ("dataset", "parts") if not hasattr(args, key)]
    if missing:
        raise UserError(f"{' and '.join(missing)} required "
                        "(or --from-distdgl PART_CONFIG)")
    clock = time.perf_counter()
    graph = load_dataset(args.dataset, undirected=args.undirected, root=args.root)
    t_load = time.perf_counter() - clock
    out = args.out or default_out(graph.name, args.parts, args.servers)
    command = (f"gnnsys partition --dataset {args.dataset} --parts {args.parts} "
               + (f"--root {args.root} " if args.root else "")
               + f"--servers {args.servers} --method {args.method} --seed {args.seed} --out {out}"
               + (" --undirected" if args.undirected else "")
               + (f" --preload-hops {hops} --ext-fanout {args.ext_fanout}" if hops else ""))
    result = partition_graph(graph, args.parts, out, servers=args.servers, method=args.method,
                             seed=args.seed, overwrite=args.overwrite, command=command,
                             undirected=args.undirected, preload_hops=hops,
                             ext_fanout=args.ext_fanout)
    t = result["timings"]
    print(format_report(result["report"]))
    print(f"\ntime: load {t_load:.2f} s, assign ({args.method}) {t['assign']:.2f} s, "
          f"relabel/halo {t['relabel_halo']:.2f} s, write {t['write']:.2f} s, "
          f"preload {t['preload']:.2f} s, "
          f"total {t_load + t['total']:.2f} s; peak RSS {t['peak_rss_bytes'] / 2**30:.2f} GiB")
    print(f"wrote {args.parts} shards of {graph.name} ({graph.num_nodes} nodes, "
          f"{graph.num_edges} edges) to {out}")
    return 0
