"""gnnsys.data.

Loaders that turn a dataset spec (``karate``, ``cora``, ``citeseer``, ``synthetic:N,...`` or a
path to a ``.npz``) into a :class:`gnnsys.graph.Graph`, and the ``.npz`` graph format.
"""
from gnnsys.data.karate import karate_graph
from gnnsys.data.npz import load_npz, save_npz
from gnnsys.data.registry import list_datasets, load_dataset
from gnnsys.data.synthetic import synthetic_graph

__all__ = ["karate_graph", "list_datasets", "load_dataset", "load_npz", "save_npz",
           "synthetic_graph"]
