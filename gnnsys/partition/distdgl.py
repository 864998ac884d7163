"""Convert a DistDGL partition (``dgl.distributed.partition_graph`` output) to a gnnsys one.

DistDGL's layout (DGL 2.1): a JSON config (``graph_name``, ``num_parts``, ``num_nodes``,
``node_map`` = per part the ``[start, end)`` range of its nodes in DistDGL's *shuffled* ID
space, and ``part-<i>`` entries naming ``part_graph`` / ``node_feats`` files relative to the
config's folder). Each ``graph.dgl`` holds the part's inner nodes plus its halo nodes, with
``ndata["_ID"]`` the shuffled global ID, ``ndata["inner_node"]`` the ownership mask and
``edata["inner_edge"]`` marking the edges the part owns (together: every edge once). Each
``node_feat.dgl`` holds ``"_N/<name>"`` tensors (``feat``, ``label``, ``*_mask``) for the inner
nodes, in shuffled-ID order. Both files are read with DGL's own binary loaders
(``dgl.load_graphs`` / ``dgl.data.utils.load_tensors``, no pickle).

The conversion rebuilds the whole graph and DistDGL's node-to-part assignment, then writes it
with :func:`gnnsys.partition.api.partition_graph` given that assignment: same parts, same
owned nodes, gnnsys's own shard format and report. Original node IDs: DistDGL reshuffles IDs
and does not store the mapping (``partition_graph(..., return_mapping=True)`` returns it); save
it next to the config as ``orig_nids.npy`` (``np.save(path, orig_nids.numpy())``) or
``orig_nids.dgl`` (``dgl.data.utils.save_tensors(path, {"_N": orig_nids})``) and the nodes
get their original IDs and order; without it they keep DistDGL's shuffled IDs. Needs ``dgl``
(the DGL environment, ``launch/setup_dgl_env.sh``).
"""
from __future__ import annotations

import json
import os
import sys
from typing import Optional

import numpy as np
from tqdm import tqdm

from gnnsys.data.dgl import DEFAULT_KEYS
from gnnsys.errors import UserError
from gnnsys.graph import Graph
from gnnsys.partition.api import partition_graph

NTYPE = "_N"  # DGL's name of the single node type of a homogeneous graph
ORIG_ID_FILES = ("orig_nids.npy", "orig_nids.dgl")


def read_config(path: str) -> dict:
    """Return the DistDGL JSON config at ``path``; UserError unless it describes a
    homogeneous partition with per-part ID ranges."""
    try:
        with open(path) as f:
            config = json.load(f)
    except OSError as exc:
        raise UserError(f"--from-distdgl {path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UserError(f"--from-distdgl {path}: not a JSON file ({exc})") from None
    missing = [k for k in ("graph_name", "num_parts", "num_nodes", "node_map") if k not in config]
    if missing:
        raise UserError(f"--from-distdgl {path}: not a DistDGL partition config (no "
                        f"{', '.join(missing)})")
    node_map = config["node_map"]
    if not isinstance(node_map, dict) or set(node_map) != {NTYPE}:
        raise UserError(f"--from-distdgl {path}: only homogeneous graphs (node type {NTYPE!r}) "
                        f"are supported, got node map {str(node_map)[:80]}")
    return config


def _import_dgl():
    """Import dgl (DGL env only) or raise UserError saying how to get it."""
    try:
        from gnnsys.nn.adapters.dgl import import_dgl

        return import_dgl()
    except ImportError:
        raise UserError("--from-distdgl needs dgl: run it in the DGL environment "
                        "(bash launch/setup_dgl_env.sh; .venv-dgl/bin/gnnsys ...)") from None


def _load_orig_ids(folder: str, n: int) -> Optional[np.ndarray]:
    """Return ``orig[shuffled_id]`` from ``orig_nids.npy`` / ``.dgl`` in ``folder``, or None."""
    for name in ORIG_ID_FILES:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        if name.endswith(".npy"):
            orig = np.load(path, allow_pickle=False)
        else:
            from dgl.data.utils import load_tensors

            orig = load_tensors(path).get(NTYPE)
            orig = None if orig is None else orig.numpy()
        if orig is None or orig.shape != (n,) or \
                not np.array_equal(np.sort(orig), np.arange(n)):
            raise UserError(f"{path}: not a permutation of the {n} node IDs")
        return orig.astype(np.int64)
    return None


def read_distdgl(config_path: str, progress: bool = False) -> tuple[Graph, np.ndarray]:
    """Read the DistDGL partition of ``config_path``; return ``(graph, assignment)``.

    ``graph`` is the whole graph (original IDs and order when the mapping file is present,
    else DistDGL's shuffled IDs) and ``assignment`` int64 [N] the part of every node. Raises
    :class:`UserError` for a missing or inconsistent file.
    """
    config = read_config(config_path)
    dgl = _import_dgl()
    from dgl.data.utils import load_tensors

    folder = os.path.dirname(os.path.abspath(config_path))
    n, parts = int(config["num_nodes"]), int(config["num_parts"])
    ranges = np.asarray(config["node_map"][NTYPE], dtype=np.int64).reshape(parts, 2)
    assignment = np.repeat(np.arange(parts, dtype=np.int64), ranges[:, 1] - ranges[:, 0])
    if assignment.shape[0] != n or ranges[0, 0] != 0 or np.any(ranges[1:, 0] != ranges[:-1, 1]):
        raise UserError(f"{config_path}: node_map ranges do not cover 0..{n} contiguously")
    src, dst, data = [], [], {}
    for part in tqdm(range(parts), desc="reading DistDGL parts", disable=not progress):
        entry = config.get(f"part-{part}", {})
        try:
            g = dgl.load_graphs(os.path.join(folder, entry["part_graph"]))[0][0]
            tensors = load_tensors(os.path.join(folder, entry["node_feats"]))
        except (KeyError, OSError, dgl.DGLError) as exc:
            raise UserError(f"{config_path}: part {part} unreadable ({type(exc).__name__}: "
                            f"{exc})".splitlines()[0]) from None
        nid = g.ndata["_ID"].numpy()
        inner = g.ndata["inner_node"].numpy().astype(bool)
        if not np.array_equal(nid[inner], np.arange(*ranges[part])):
            raise UserError(f"{config_path}: part {part}'s inner nodes are not its node_map range")
        s, d = (t.numpy() for t in g.edges())
        owned = g.edata["inner_edge"].numpy().astype(bool)
        src.append(nid[s[owned]])
        dst.append(nid[d[owned]])
        for key, value in tensors.items():
            ntype, _, name = key.partition("/")
            if ntype == NTYPE:
                data.setdefault(name, []).append(value.numpy())
    arrays = {field: np.concatenate(data[key]) for field, key in DEFAULT_KEYS.items()
              if len(data.get(key, ())) == parts}
    for field in ("feat", "label"):
        if field not in arrays:
            raise UserError(f"{config_path}: node data '{NTYPE}/{DEFAULT_KEYS[field]}' missing "
                            f"(has: {', '.join(sorted(data)) or 'none'})")
    edges = np.stack([np.concatenate(src), np.concatenate(dst)])
    orig = _load_orig_ids(folder, n)
    if orig is not None:  # shuffled -> original order
        edges = orig[edges]
        order = np.argsort(orig)
        arrays = {k: v[order] for k, v in arrays.items()}
        assignment = assignment[order]
    if arrays["label"].ndim == 2:
        arrays["label"] = arrays["label"][:, 0]
    graph = Graph.from_arrays(num_nodes=n, edge_index=edges, name=config["graph_name"], **arrays)
    graph.meta["ids"] = "original" if orig is not None else "distdgl-shuffled"
    return graph, assignment


def convert_distdgl(config_path: str, out: str, overwrite: bool = False) -> dict:
    """Convert the DistDGL partition of ``config_path`` into a gnnsys partition at ``out``.

    Same parts and owned nodes as DistDGL (halo rows and the report are gnnsys's own). Returns
    :func:`gnnsys.partition.api.partition_graph`'s result. Raises :class:`UserError` for a bad
    or unreadable partition or output folder.
    """
    progress = sys.stderr.isatty()
    graph, assignment = read_distdgl(config_path, progress=progress)
    parts = int(read_config(config_path)["num_parts"])
    return partition_graph(graph, parts, out, method="distdgl", overwrite=overwrite,
                           progress=progress, assignment=assignment,
                           command=f"gnnsys partition --from-distdgl {config_path} --out {out}")
