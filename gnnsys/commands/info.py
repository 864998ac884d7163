"""``gnnsys info``: verify a partition folder and print its quality report."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``info`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "info", help="verify a partition folder and show its parts",
        description="Check every file of a partition against its manifest (size, sha256, "
        "format version, shapes, send lists vs halos) and print the per-part table, edge cut, "
        "balance and replication factor. Exits 2 naming the file on any mismatch.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("folder", help="partition folder written by `gnnsys partition`")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Verify ``args.folder`` and print its summary and report; return 0."""
    from gnnsys.partition import format_report, load_manifest, verify_partition

    verify_partition(args.folder)
    manifest = load_manifest(args.folder)
    ds = manifest["dataset"]
    print(f"partition {args.folder}: format v{manifest['format_version']}, "
          f"{manifest['method']}, {manifest['parts']} parts on {manifest['servers']} server(s), "
          f"seed {manifest['seed']}, created {manifest['created']}")
    print(f"dataset {ds['name']}: {ds['num_nodes']} nodes, {ds['num_edges']} edges, "
          f"{ds['num_features']} features, {ds['num_classes']} classes, train/val/test "
          f"{ds['num_train']}/{ds['num_val']}/{ds['num_test']}")
    print(f"verified: {len(manifest['files'])} files match the manifest\n")
    print(format_report(manifest["report"]))
    return 0
