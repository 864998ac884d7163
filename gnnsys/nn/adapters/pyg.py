"""Run an unmodified PyG ``MessagePassing`` convolution as a gnnsys layer ``layer(block, h)``.

The block's edges become a local ``edge_index`` (``2 x E``: row 0 local source IDs, row 1
destinations), built once per block. Convolutions whose ``forward`` accepts a pair of feature
tensors (``SAGEConv``, ``GATConv``, ``GATv2Conv``, ``GraphConv``, ``GINConv``, ``GINEConv``,
``ResGatedGraphConv``, ...) are called bipartite-style,
``conv((h_src, h_dst), edge_index, size=(num_src, num_dst))``; the rest are called as
``conv(h_src, edge_index)[:num_dst]``.

Exactness in the distributed setting: every in-edge of an owned node is in the block, so a
convolution is exact when a destination's output depends only on its in-edges and their source
features (sum / mean / max / attention aggregations: all of the above, and ``GATConv`` with
self-loops). Convolutions that normalise with degrees computed from ``edge_index`` (``GCNConv``,
``ChebConv``, ``SGConv``, ``TAGConv``, ``ARMAConv``, ``APPNP``, ``LGConv``, ...) see a halo
node's LOCAL degree (0 in-edges) instead of its global one and are NOT exact on a shard: the
adapter warns once for those; use gnnsys's own ``GCNConv``, which uses the global degrees.
"""
from __future__ import annotations

import inspect
import typing
import warnings
import weakref
from typing import Optional

import torch
from torch import Tensor, nn

from gnnsys.nn.block import Block

# PyG convolutions that normalise by degrees computed from the local edge_index.
DEGREE_NORMALISED = frozenset({
    "GCNConv", "ChebConv", "SGConv", "SSGConv", "TAGConv", "ARMAConv", "APPNP", "LGConv",
    "GCN2Conv", "FAConv", "ClusterGCNConv", "FiLMConv", "LEConv", "MFConv", "SimpleConv",
})


def accepts_pair(conv: nn.Module) -> bool:
    """True when ``conv.forward``'s ``x`` argument is annotated to accept a pair of tensors."""
    params = list(inspect.signature(conv.forward).parameters.values())
    if not params:
        return False
    try:
        hints = typing.get_type_hints(conv.forward)
    except Exception:  # unresolvable annotations: fall back to the raw text
        hints = {}
    annotation = hints.get(params[0].name, params[0].annotation)
    text = str(annotation)
    return "Tuple" in text or "tuple" in text or "PairTensor" in text


class PygLayer(nn.Module):
    """Wrap a PyG ``MessagePassing`` convolution as ``layer(block, h) -> [num_dst, d_out]``.

    Args:
        conv: the convolution (its parameters become this module's ``conv.*`` parameters).
        bipartite: force the bipartite call (True) or the plain call (False); default: detected
            from the annotation of ``conv.forward``'s first argument.

    A conv listed in :data:`DEGREE_NORMALISED` triggers a one-time warning the first time it
    runs on a block with halo rows (``num_src > num_dst``), where it is not exact.
    """

    def __init__(self, conv: nn.Module, bipartite: Optional[bool] = None) -> None:
        super().__init__()
        self.conv = conv
        self.bipartite = accepts_pair(conv) if bipartite is None else bipartite
        self._edge_index: "weakref.WeakKeyDictionary[Block, Tensor]" = weakref.WeakKeyDictionary()
        self._warned = False

    def edge_index(self, block: Block) -> Tensor:
        """``int64 [2, E]`` local ``(source, destination)`` of every edge, cached per block."""
        if block not in self._edge_index:
            self._edge_index[block] = torch.stack([block.edge_src, block.edge_dst])
        return self._edge_index[block]

    def forward(self, block: Block, h: Tensor) -> Tensor:
        """Return the conv's output for the ``num_dst`` destinations of ``block``."""
        name = type(self.conv).__name__
        if not self._warned and name in DEGREE_NORMALISED and block.num_src > block.num_dst:
            warnings.warn(f"PyG {name} normalises with degrees from the local edges; on a "
                          "shard with halo rows it is not exact (use gnnsys GCNConv instead)",
                          stacklevel=2)
            self._warned = True
        edge_index = self.edge_index(block)
        if self.bipartite:
            return self.conv((h, h[: block.num_dst]), edge_index,
                             size=(block.num_src, block.num_dst))
        return self.conv(h, edge_index)[: block.num_dst]
