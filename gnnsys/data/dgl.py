"""Build a :class:`~gnnsys.graph.Graph` from a ``dgl.DGLGraph`` (DGL's Python API).

DGL keeps node data in ``g.ndata``; its examples (``dgl.data.CoraGraphDataset`` and the OGB
loaders) use the keys ``feat``, ``label``, ``train_mask``, ``val_mask`` and ``test_mask``,
which are the defaults here. Edges are DGL's ``src -> dst`` (messages flow from ``src``), the
same direction as gnnsys's in-edge CSR. DGL itself is not imported: the graph is read through
its methods, so this module loads in an environment without DGL.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from gnnsys.graph import Graph, GraphError

#: ``g.ndata`` keys read by default (the names DGL's own datasets use).
DEFAULT_KEYS = {"feat": "feat", "label": "label", "train_mask": "train_mask",
                "val_mask": "val_mask", "test_mask": "test_mask"}


def graph_from_dgl(g, undirected: bool = False, name: str = "dgl",
                   keys: Optional[dict] = None, orig_ids: Optional[np.ndarray] = None) -> Graph:
    """Return the canonical :class:`Graph` of the homogeneous ``DGLGraph`` ``g``.

    ``keys`` maps Graph fields (``feat``, ``label``, ``train_mask``, ``val_mask``,
    ``test_mask``) to ``g.ndata`` keys, overriding :data:`DEFAULT_KEYS`; missing masks get
    the default 60/20/20 split of :meth:`Graph.from_arrays`. ``orig_ids`` defaults to
    ``g.ndata[dgl.NID]`` (``"_ID"``, set on subgraphs) when present, else ``arange(N)``.
    A ``[N, 1]`` label is squeezed. Raises :class:`GraphError` for a heterogeneous graph,
    missing features or labels, or bad arrays.
    """
    if not getattr(g, "is_homogeneous", False):
        raise GraphError("graph_from_dgl needs a homogeneous DGLGraph (one node and edge type), "
                         f"got node types {list(getattr(g, 'ntypes', []))}, "
                         f"edge types {list(getattr(g, 'etypes', []))}")
    keys = {**DEFAULT_KEYS, **(keys or {})}
    ndata = g.ndata

    def arr(field: str, required: bool = False) -> Optional[np.ndarray]:
        key = keys[field]
        if key not in ndata:
            if required:
                raise GraphError(f"DGLGraph has no ndata[{key!r}] ({field}); has: "
                                 f"{', '.join(sorted(ndata.keys())) or 'none'}")
            return None
        return ndata[key].detach().cpu().numpy()

    label = arr("label", required=True)
    if label.ndim == 2 and label.shape[1] == 1:
        label = label[:, 0]
    if orig_ids is None and "_ID" in ndata:
        orig_ids = ndata["_ID"].detach().cpu().numpy()
    src, dst = (t.detach().cpu().numpy() for t in g.edges())
    return Graph.from_arrays(num_nodes=int(g.num_nodes()), edge_index=np.stack([src, dst]),
                             feat=arr("feat", required=True), label=label,
                             train_mask=arr("train_mask"), val_mask=arr("val_mask"),
                             test_mask=arr("test_mask"), orig_ids=orig_ids,
                             undirected=undirected, name=name)
