"""Load an OGB node-property dataset that is already on disk: ``ogb:ogbn-arxiv`` with a root.

The files are read with the ``ogb`` package's own raw readers (``ogb.io.read_graph_raw``:
``edge.csv.gz``, ``node-feat.csv.gz``, ... or ``data.npz`` for the binary datasets) and its
metadata table (``ogb/nodeproppred/master.csv``); labels and the split are read from
``node-label.csv.gz`` / ``node-label.npz`` and ``split/<split>/{train,valid,test}.csv.gz`` as
``NodePropPredDataset`` does. The layout is OGB's: ``<root>/<ogbn_name>/`` (the name with ``-``
replaced by ``_``; the unzipped download folder ``<root>/<download_name>``, e.g.
``<root>/arxiv``, is accepted too) holding ``raw/``, ``split/`` and ``RELEASE_v<N>.txt``.

Nothing is downloaded, written or unpickled: ``NodePropPredDataset`` itself is not used
because it ``torch.load``s pickled ``processed/`` and ``split_dict.pt`` files, asks on stdin
when the release file is missing, downloads when the raw files are missing and writes a
pickle into the dataset folder. Heterogeneous (``ogbn-mag``) and multi-task
(``ogbn-proteins``) datasets are refused. To cache the parsed CSV files, save the graph once
with ``gnnsys datasets --save ogb:NAME FILE.npz --root DIR``.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from gnnsys.errors import UserError
from gnnsys.graph import Graph

#: root used when none is given: ``NodePropPredDataset``'s default (relative to the cwd).
DEFAULT_ROOT = "dataset"


def _ogb_meta(name: str) -> dict:
    """Return OGB's metadata row (``master.csv``) for the node-property dataset ``name``."""
    spec = importlib.util.find_spec("ogb")
    if spec is None or spec.origin is None:
        raise UserError(f"ogb:{name} needs the 'ogb' package: pip install 'gnnsys[ogb]'")
    import pandas as pd  # (not ogb.nodeproppred: importing it imports PyG, ~10 s)

    master = pd.read_csv(Path(spec.origin).parent / "nodeproppred" / "master.csv", index_col=0,
                         keep_default_na=False)
    if name not in master:
        raise UserError(f"unknown OGB node-property dataset '{name}'; valid: "
                        f"{', '.join(master.keys())}")
    return dict(master[name])


def dataset_folder(name: str, meta: dict, root: str) -> Path:
    """Return the folder of ``name`` under ``root``; raise :class:`UserError` naming where the
    files go when neither ``<root>/<ogbn_name>`` nor ``<root>/<download_name>`` holds them."""
    raw_file = "data.npz" if meta["binary"] == "True" else "edge.csv.gz"
    candidates = [Path(root) / "_".join(name.split("-")), Path(root) / meta["download_name"]]
    for folder in candidates:
        if (folder / "raw" / raw_file).is_file():
            return folder
    raise UserError(f"ogb:{name}: {candidates[0] / 'raw' / raw_file} not found; download "
                    f"{meta['url']} and unzip it into {root} (as {candidates[0]} or "
                    f"{candidates[1]}); gnnsys never downloads")


def load_ogb(name: str, root: Optional[str] = None, undirected: bool = False) -> Graph:
    """Load the OGB node-property dataset ``name`` (e.g. ``ogbn-arxiv``) from ``root``.

    ``root`` defaults to :data:`DEFAULT_ROOT`; ``undirected=True`` adds the reverse of every
    edge (datasets OGB marks ``add_inverse_edge`` get them anyway). Returns a canonical
    :class:`Graph` named ``name`` with OGB's official split as masks and unlabelled (NaN)
    nodes as label -1. Raises :class:`UserError` for an unknown, unsupported or missing
    dataset, or unreadable files.
    """
    meta = _ogb_meta(name)
    if meta["is hetero"] == "True" or int(meta["num tasks"]) != 1:
        raise UserError(f"ogb:{name}: only homogeneous single-task datasets are supported "
                        "(not ogbn-mag / ogbn-proteins)")
    folder = dataset_folder(name, meta, root or DEFAULT_ROOT)
    release = folder / f"RELEASE_v{meta['version']}.txt"
    if not release.is_file():
        raise UserError(f"ogb:{name}: {release} not found: {folder} is not version "
                        f"{meta['version']} of the dataset; download {meta['url']} again")
    try:
        graph_dict, label = _read_raw(folder / "raw", meta)
        split = {key: _read_index(folder / "split" / meta["split"] / f"{key}.csv.gz")
                 for key in ("train", "valid", "test")}
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"ogb:{name}: cannot read {folder}: {type(exc).__name__}: "
                        f"{exc}".splitlines()[0]) from None
    n = int(graph_dict["num_nodes"])
    if graph_dict.get("node_feat") is None:
        raise UserError(f"ogb:{name}: the dataset has no node features (raw/node-feat)")
    masks = {}
    for key, mask_name in (("train", "train_mask"), ("valid", "val_mask"), ("test", "test_mask")):
        mask = np.zeros(n, dtype=bool)
        mask[split[key]] = True
        masks[mask_name] = mask
    return Graph.from_arrays(num_nodes=n, edge_index=graph_dict["edge_index"],
                             feat=graph_dict["node_feat"], label=label, **masks,
                             undirected=undirected, name=name)


def _read_raw(raw_dir: Path, meta: dict) -> tuple[dict, np.ndarray]:
    """Read the graph dict with ogb's raw reader and the labels (NaN -> -1) as int64 [N]."""
    from ogb.io.read_graph_raw import read_binary_graph_raw, read_csv_graph_raw
    import pandas as pd

    with contextlib.redirect_stdout(sys.stderr):  # ogb prints progress; keep stdout for reports
        if meta["binary"] == "True":
            graph_dict = read_binary_graph_raw(os.fspath(raw_dir))[0]
            label = np.load(raw_dir / "node-label.npz", allow_pickle=False)["node_label"]
        else:
            graph_dict = read_csv_graph_raw(  # extra node files (arxiv's node_year): unused
                os.fspath(raw_dir), add_inverse_edge=meta["add_inverse_edge"] == "True")[0]
            label = pd.read_csv(raw_dir / "node-label.csv.gz", compression="gzip",
                                header=None).values
    label = np.asarray(label, dtype=np.float64).reshape(-1)
    return graph_dict, np.where(np.isnan(label), -1, label).astype(np.int64)


def _read_index(path: Path) -> np.ndarray:
    """Read one split file (a gzipped column of node IDs) as int64."""
    import pandas as pd

    return pd.read_csv(path, compression="gzip", header=None).values[:, 0].astype(np.int64)
