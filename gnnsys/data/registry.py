"""Named datasets: what ``gnnsys partition DATASET`` and ``gnnsys datasets`` accept.

A dataset spec is one of:

* ``karate``: Zachary's karate club, built in code (34 nodes, 2 classes);
* ``cora``, ``citeseer``: Planetoid citation graphs with the standard public split, shipped in
  ``datasets/`` as ``.npz`` files whose sha256 is checked on every load;
* ``synthetic:N[,key=value...]``: a generated DC-SBM graph with ``N`` nodes (``N`` may end in
  ``k`` or ``M``: ``synthetic:1M``). Keys (defaults in brackets): ``deg`` average degree [20],
  ``classes`` [10], ``feat`` feature width [128], ``seed`` [0], ``homophily`` [0.8],
  ``snr`` feature signal-to-noise [0.4], ``communities`` [N//1000, within classes..10*classes].
  Example: ``synthetic:100k,deg=10,classes=5,seed=3``;
* a path to a ``.npz`` graph file (layout in :mod:`gnnsys.data.npz`);
* ``ogb:NAME``: an OGB node-property dataset already on disk under a root folder
  (``ogb:ogbn-arxiv``; see :mod:`gnnsys.data.ogb`; never downloaded).

The shipped files are looked up in the folder named by the environment variable
``GNNSYS_DATASETS``, else in ``datasets/`` next to the ``gnnsys`` package (a repo checkout).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

import gnnsys
from gnnsys.errors import UserError
from gnnsys.graph import Graph

from gnnsys.data.karate import karate_graph
from gnnsys.data.npz import load_npz
from gnnsys.data.ogb import load_ogb
from gnnsys.data.synthetic import synthetic_graph

ENV_VAR = "GNNSYS_DATASETS"

# sha256 of the shipped files, written by datasets/convert_planetoid.py. Kept in code (not next
# to the files) so that pointing GNNSYS_DATASETS at another folder cannot change them.
SHIPPED_SHA256 = {
    "cora": "90a302616e03dd708992d297ffcb32ed723530bcdaf09c4587800c14740c2fde",
    "citeseer": "5a91d12388373f86e814ca67c2cf34b6085c8819b8e5dbee9b1c12d6a3a9b412",
}

_DESCRIPTIONS = {
    "karate": "Zachary's karate club (built in): 34 nodes, 156 directed edges, identity "
              "features, 2 classes (club split), split 8/8/18",
    "cora": "Planetoid Cora citations: 2,708 nodes, 10,556 directed edges, 1,433 features, "
            "7 classes, public split 140/500/1000",
    "citeseer": "Planetoid CiteSeer citations: 3,327 nodes, 9,104 directed edges, 3,703 "
                "features, 6 classes, public split 120/500/1000",
    "synthetic:N": "generated DC-SBM, power-law degrees: N nodes, ~N*deg directed edges; "
                   "options ,deg=20,classes=10,feat=128,seed=0,homophily=0.8,snr=0.4,communities=N//1000; "
                   "split 10/10/80 %",
}

# spec key -> (synthetic_graph argument, type)
_SYNTHETIC_KEYS = {"deg": ("avg_degree", float), "classes": ("num_classes", int),
                   "feat": ("num_features", int), "seed": ("seed", int),
                   "homophily": ("homophily", float), "snr": ("feature_snr", float),
                   "communities": ("num_communities", int)}


def list_datasets() -> list[tuple[str, str]]:
    """Return ``[(name, description), ...]`` for every named dataset.

    Each description is one line, ``"<title>: <sizes and split>"``.
    """
    return list(_DESCRIPTIONS.items())


def datasets_dir() -> Path:
    """Return the folder of the shipped files: ``$GNNSYS_DATASETS``, else ``<repo>/datasets``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return Path(gnnsys.__file__).resolve().parent.parent / "datasets"


def load_dataset(spec: str, undirected: bool = False, progress: bool = False,
                 root: Optional[str] = None) -> Graph:
    """Load the graph named by ``spec`` (syntax in the module docstring).

    ``undirected=True`` adds the reverse of every edge (a no-op for the named datasets, which
    are symmetric already); ``progress=True`` shows a progress bar while generating a
    synthetic graph; ``root`` is the folder holding ``ogb:`` datasets (default
    :data:`gnnsys.data.ogb.DEFAULT_ROOT`). Returns a canonical :class:`Graph`. Raises
    :class:`UserError` for an unknown name, a bad spec, a missing file or a shipped file whose
    sha256 does not match.
    """
    spec = spec.strip()
    if spec == "karate":
        return karate_graph()
    if spec in SHIPPED_SHA256:
        return _load_shipped(spec)
    if spec.startswith("synthetic:"):
        return synthetic_graph(**parse_synthetic_spec(spec), progress=progress)
    if spec.startswith("ogb:"):
        return load_ogb(spec[len("ogb:"):], root=root, undirected=undirected)
    if spec.endswith(".npz") or os.sep in spec or Path(spec).is_file():
        return load_npz(spec, undirected=undirected)
    raise UserError(f"unknown dataset '{spec}'; valid: karate, cora, citeseer, "
                    "synthetic:N[,deg=20,classes=10,feat=128,seed=0,homophily=0.8,snr=0.4,communities=N//1000] "
                    "ogb:NAME (with --root) or a path to a .npz file (see `gnnsys datasets`)")


def parse_synthetic_spec(spec: str) -> dict:
    """Return the :func:`synthetic_graph` keyword arguments of ``synthetic:N[,key=value...]``."""
    body = spec[len("synthetic:"):]
    size, *options = body.split(",")
    kwargs = {"num_nodes": _parse_count(size, spec)}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key.strip() not in _SYNTHETIC_KEYS:
            raise UserError(f"bad option '{option}' in '{spec}'; valid keys: "
                            f"{', '.join(_SYNTHETIC_KEYS)} (as key=value)")
        name, kind = _SYNTHETIC_KEYS[key.strip()]
        try:
            kwargs[name] = kind(value.strip())
        except ValueError:
            raise UserError(f"bad value '{value}' for '{key}' in '{spec}': expected "
                            f"{kind.__name__}") from None
    return kwargs


def _parse_count(text: str, spec: str) -> int:
    """Parse a node count such as ``5000``, ``100k`` or ``2M``."""
    text = text.strip()
    scale = {"k": 1_000, "K": 1_000, "m": 1_000_000, "M": 1_000_000}.get(text[-1:], 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise UserError(f"bad node count '{text}' in '{spec}': expected synthetic:N with N an "
                        "integer, optionally ending in k or M (synthetic:100k)")
    return int(digits) * scale


def _load_shipped(name: str) -> Graph:
    """Load a shipped ``.npz`` after checking its sha256 against :data:`SHIPPED_SHA256`."""
    path = datasets_dir() / f"{name}.npz"
    if not path.is_file():
        raise UserError(f"dataset '{name}': {path} not found (set {ENV_VAR} to the folder "
                        "holding the shipped .npz files)")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != SHIPPED_SHA256[name]:
        raise UserError(f"dataset '{name}': {path} fails its sha256 check (modified or "
                        "corrupt); restore it from the repository")
    graph = load_npz(path)
    graph.name = name
    return graph
