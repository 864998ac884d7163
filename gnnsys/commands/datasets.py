"""``gnnsys datasets``: list the named datasets, or save one as a ``.npz`` graph file."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional

from gnnsys.errors import UserError


def register(subparsers) -> None:
    """Add the ``datasets`` subcommand and its options to ``subparsers``."""
    parser = subparsers.add_parser(
        "datasets", help="list the named datasets or save one as .npz",
        description="Without options: list the named datasets with their sizes (nodes, "
        "directed edges, features, classes, train/val/test split). With --save: write any "
        "dataset spec (karate, cora, citeseer, synthetic:N[,deg=20,classes=10,feat=128,seed=0,"
        "homophily=0.8,snr=0.4,communities=N//1000], or a .npz path) to an uncompressed .npz graph file that "
        "`gnnsys partition --dataset FILE.npz` reads with memory-mapped features.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--save", nargs=2, metavar=("SPEC", "FILE"), default=None,
                        help="write dataset SPEC (e.g. cora or synthetic:1M,deg=20) to FILE "
                        "(.npz, uncompressed, in-edge CSR); None means only list")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --save: replace FILE if it exists")
    parser.add_argument("--root", default=None,
                        help="with --save: folder holding ogb: datasets (OGB's layout, e.g. "
                        "--save ogb:ogbn-arxiv arxiv.npz --root DIR); None means ./dataset")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """List the datasets, or save ``args.save = (spec, file)``; return 0."""
    if args.save:
        _save(*args.save, overwrite=args.overwrite, root=args.root)
    else:
        _print_table()
    return 0


def _print_table() -> None:
    """Print one row per named dataset; sizes are computed only for the built-in/shipped ones."""
    from gnnsys.data import list_datasets, load_dataset

    rows = [("NAME", "NODES", "EDGES", "FEATURES", "CLASSES", "TRAIN/VAL/TEST", "DESCRIPTION")]
    for name, description in list_datasets():
        title = description.split(": ", 1)[0]
        if ":" in name:  # a generator, sized by its spec
            rows.append((name, "N", "~N*deg", "feat", "classes", "10/10/80 %", description))
            continue
        try:
            g = load_dataset(name)
        except UserError as exc:
            rows.append((name, "-", "-", "-", "-", "-", f"unavailable: {exc}"))
            continue
        split = f"{g.train_mask.sum()}/{g.val_mask.sum()}/{g.test_mask.sum()}"
        rows.append((name, f"{g.num_nodes:,}", f"{g.num_edges:,}", f"{g.num_features:,}",
                     str(g.num_classes), split, title))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def _save(spec: str, path: str, overwrite: bool, root: Optional[str] = None) -> None:
    """Load ``spec`` (``ogb:`` datasets from ``root``) and write it to ``path`` as an
    uncompressed ``.npz``; print a summary."""
    from gnnsys.data import load_dataset, save_npz

    if not path.endswith(".npz"):
        raise UserError(f"output file must end in .npz: {path}")
    if os.path.exists(path) and not overwrite:
        raise UserError(f"{path} exists; pass --overwrite to replace it")
    progress = sys.stderr.isatty()
    clock = time.perf_counter()
    graph = load_dataset(spec, progress=progress, root=root)
    t_load = time.perf_counter() - clock
    save_npz(graph, path, progress=progress)
    t_total = time.perf_counter() - clock
    print(f"wrote {path}: {graph.num_nodes:,} nodes, {graph.num_edges:,} directed edges, "
          f"{graph.num_features} features, {graph.num_classes} classes, train/val/test "
          f"{graph.train_mask.sum()}/{graph.val_mask.sum()}/{graph.test_mask.sum()}, "
          f"{os.path.getsize(path) / 2**20:.1f} MiB (load {t_load:.1f} s, total {t_total:.1f} s)")
