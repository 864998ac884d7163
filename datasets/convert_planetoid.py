"""Convert the raw Planetoid pickles (Cora, CiteSeer) into gnnsys ``.npz`` files, once, offline.

Usage::

    python datasets/convert_planetoid.py RAW_DIR [--out datasets] [--verify-pyg]

RAW_DIR holds the ``ind.<name>.*`` files of kimiyoung/planetoid (commit af6abf4, MIT licence,
copied here as ``planetoid-LICENSE``). Every raw file is checked against its known size and
sha256 before it is opened, and the pickles are read with an unpickler that allows only the six
globals these files name. gnnsys never unpickles at run time: it reads only the ``.npz`` files
this script writes.

Assembly follows PyG's ``read_planetoid_data`` (itself the GCN reference loader): node ids are
the rows of ``allx`` then the test rows, reordered so that ``x[test.index] = x[sorted]``; train =
the first ``len(x)`` nodes (20 per class), validation = the next 500, test = ``test.index``.
CiteSeer's 15 test ids missing from ``test.index`` get all-zero features, label -1
(unlabelled; PyG gives them class 0 via argmax) and no split. Edges are symmetrised, repeated
entries and self-loops removed (the gnnsys canonical form). ``--verify-pyg`` compares the result
with ``torch_geometric.io.read_planetoid_data`` on the same folder.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import io
import pickle
import sys
from pathlib import Path

import numpy as np
import scipy.sparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gnnsys.data.npz import save_npz  # noqa: E402
from gnnsys.graph import Graph  # noqa: E402

RAW_SHA256 = {
    "ind.cora.x": (22119, "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab"),
    "ind.cora.y": (4054, "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1"),
    "ind.cora.tx": (148025, "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a"),
    "ind.cora.ty": (28135, "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad"),
    "ind.cora.allx": (257305,
                      "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543"),
    "ind.cora.ally": (47959,
                      "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71"),
    "ind.cora.graph": (59847,
                       "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d"),
    "ind.cora.test.index": (5000,
                            "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875"),
    "ind.citeseer.x": (31087,
                       "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6"),
    "ind.citeseer.y": (3014,
                       "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924"),
    "ind.citeseer.tx": (260321,
                        "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21"),
    "ind.citeseer.ty": (24135,
                        "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce"),
    "ind.citeseer.allx": (595021,
                          "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668"),
    "ind.citeseer.ally": (55623,
                          "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95"),
    "ind.citeseer.graph": (61987,
                           "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7"),
    "ind.citeseer.test.index": (
        5000, "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4"),
}


class _PlanetoidUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals the Planetoid files name (nothing executable)."""

    @staticmethod
    def _allowed():
        try:
            from numpy._core.multiarray import _reconstruct
        except ImportError:  # numpy 1.x
            from numpy.core.multiarray import _reconstruct
        return {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
                ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                ("scipy.sparse.csr", "csr_matrix"): scipy.sparse.csr_matrix,
                ("collections", "defaultdict"): collections.defaultdict,
                ("__builtin__", "list"): list}

    def find_class(self, module: str, name: str):
        """Return the allowed global ``module.name``; refuse any other."""
        try:
            return self._allowed()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed") from None


def read_raw(folder: Path, prefix: str, part: str):
    """Check one raw file's size and sha256, then return its content (array, matrix or dict)."""
    path = folder / f"ind.{prefix}.{part}"
    size, digest = RAW_SHA256[path.name]
    data = path.read_bytes()
    if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
        raise SystemExit(f"{path}: size or sha256 does not match the known file; refusing it")
    if part == "test.index":
        return np.array(data.split(), dtype=np.int64)
    obj = _PlanetoidUnpickler(io.BytesIO(data), encoding="latin1").load()
    if scipy.sparse.issparse(obj):
        return np.asarray(obj.todense(), dtype=np.float32)
    return obj


def convert(folder: Path, prefix: str) -> Graph:
    """Assemble one Planetoid dataset from ``folder`` into a canonical, symmetric Graph."""
    x, tx, allx, y, ty, ally, graph, test_index = (
        read_raw(folder, prefix, part)
        for part in ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index"))
    sorted_test = np.sort(test_index)
    labelled_t = np.ones(tx.shape[0], dtype=bool)
    if prefix == "citeseer":  # test ids missing from test.index: zero rows, no label
        span = int(test_index.max() - test_index.min()) + 1
        tx_ext = np.zeros((span, tx.shape[1]), dtype=tx.dtype)
        ty_ext = np.zeros((span, ty.shape[1]), dtype=ty.dtype)
        labelled_t = np.zeros(span, dtype=bool)
        tx_ext[sorted_test - test_index.min()] = tx
        ty_ext[sorted_test - test_index.min()] = ty
        labelled_t[sorted_test - test_index.min()] = True
        tx, ty = tx_ext, ty_ext
    feat = np.concatenate([allx, tx]).astype(np.float32)
    label = np.concatenate([ally, ty]).argmax(axis=1).astype(np.int64)
    label[~np.concatenate([np.ones(len(ally), dtype=bool), labelled_t])] = -1
    feat[test_index] = feat[sorted_test]
    label[test_index] = label[sorted_test]
    n = feat.shape[0]
    src = np.array([u for u, nbrs in graph.items() for _ in nbrs], dtype=np.int64)
    dst = np.array([v for nbrs in graph.values() for v in nbrs], dtype=np.int64)
    masks = [np.zeros(n, dtype=bool) for _ in range(3)]
    masks[0][:len(y)] = True
    masks[1][len(y):len(y) + 500] = True
    masks[2][test_index] = True
    return Graph.from_arrays(edge_index=np.stack([src, dst]), feat=feat, label=label,
                             train_mask=masks[0], val_mask=masks[1], test_mask=masks[2],
                             undirected=True, name=prefix)


def verify_with_pyg(folder: Path, prefix: str, graph: Graph) -> None:
    """Compare ``graph`` with PyG's loader on the same raw files; exit on any difference."""
    from torch_geometric.io import read_planetoid_data
    data = read_planetoid_data(str(folder), prefix)
    label = graph.label.copy()
    label[label < 0] = 0  # PyG gives the unlabelled CiteSeer padding class 0 (argmax of zeros)
    src, dst = graph.edge_index()
    checks = {"edges": np.array_equal(data.edge_index.numpy(), np.stack([src, dst])),
              "features": np.array_equal(data.x.numpy(), graph.feat),
              "labels": np.array_equal(data.y.numpy(), label),
              "masks": all(np.array_equal(getattr(data, m).numpy(), getattr(graph, m))
                           for m in ("train_mask", "val_mask", "test_mask"))}
    for what, ok in checks.items():
        print(f"  {prefix}: {what} identical to PyG: {ok}")
    if not all(checks.values()):
        raise SystemExit(f"{prefix}: differs from torch_geometric.io.read_planetoid_data")


def main() -> None:
    """Parse arguments, convert Cora and CiteSeer, print sizes and sha256 of the outputs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", type=Path, help="folder with the ind.<name>.* files")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output folder (default: this script's folder)")
    parser.add_argument("--verify-pyg", action="store_true",
                        help="compare with torch_geometric.io.read_planetoid_data")
    args = parser.parse_args()
    for prefix in ("cora", "citeseer"):
        graph = convert(args.raw_dir, prefix)
        out = args.out / f"{prefix}.npz"
        save_npz(graph, out, compress=True)
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        print(f"{out.name}: {graph.num_nodes} nodes, {graph.num_edges} directed edges, "
              f"{graph.num_features} features, {graph.num_classes} classes, split "
              f"{graph.train_mask.sum()}/{graph.val_mask.sum()}/{graph.test_mask.sum()}, "
              f"{out.stat().st_size} bytes, sha256 {digest}")
        if args.verify_pyg:
            verify_with_pyg(args.raw_dir, prefix, graph)


if __name__ == "__main__":
    main()
