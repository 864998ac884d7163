"""gnnsys.nn: the local block, sparse aggregation kernels, built-in and plug-in layers.

A layer is a ``torch.nn.Module`` called as ``layer(block, h)``: ``block`` is a :class:`Block`
(sources = owned + halo rows, destinations = owned rows, global degrees), ``h`` is
``[num_src, d_in]`` and the result is ``[num_dst, d_out]``. Layers never know they are
distributed.
"""
from gnnsys.nn.block import Block
from gnnsys.nn.dropout import hashed_dropout
from gnnsys.nn.gat import GATConv
from gnnsys.nn.gcn import GCNConv
from gnnsys.nn.gin import GINConv
from gnnsys.nn.registry import BUILTIN_LAYERS, build_layer, resolve_layer_class
from gnnsys.nn.sage import SAGEConv

__all__ = ["Block", "GATConv", "GCNConv", "GINConv", "SAGEConv", "BUILTIN_LAYERS",
           "build_layer", "hashed_dropout", "resolve_layer_class"]
