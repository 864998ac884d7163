"""Run an unmodified DGL convolution (``dgl.nn.GraphConv``, ``SAGEConv``, ``GATConv``, ...) as a
gnnsys layer ``layer(block, h)``.

The gnnsys :class:`~gnnsys.nn.block.Block` becomes a DGL block (``dgl.create_block``, built
once per block): its ``num_src`` source rows (owned, then halo) and ``num_dst`` destination
rows (the owned nodes), one DGL edge per block edge in CSR order. DGL's convolutions take such
a block directly: ``conv(dgl_block, h)`` with ``h`` ``[num_src, in_dim]``; a multi-head output
``[num_dst, heads, d]`` is flattened to ``[num_dst, heads * d]`` (heads concatenated).

Self-loops: gnnsys graphs carry none (canonical form), while DGL's ``GraphConv`` /
``GATConv`` are meant for graphs with them (``dgl.add_self_loop``; both refuse nodes without
in-edges otherwise). The adapter adds one per destination for the convolutions in
:data:`SELF_LOOP_CONVS` (``self_loop=`` overrides), which is what a DGL user would have done.

Exactness on a shard: every in-edge of an owned node is in the block, so sum / mean / max /
attention aggregations are exact. ``GraphConv`` with ``norm="both"`` / ``"left"`` divides by
the source's out-degree, which DGL counts in the block (a halo node's LOCAL out-degree); the
adapter passes ``edge_weight = (local / global out-degree) ** 1/2`` (``** 1`` for ``"left"``)
so the product is exactly the global normalisation. DGL is imported only when a layer runs.
"""
from __future__ import annotations

import os
import weakref
from typing import Optional

import torch
from torch import Tensor, nn

from gnnsys.nn.block import Block

#: DGL convolutions that get one self-loop per destination by default.
SELF_LOOP_CONVS = frozenset({"GraphConv", "GATConv", "GATv2Conv", "DotGatConv"})
#: constructor arguments DGL requires beyond the widths, filled in when the CLI builds the
#: class from ``--layer dgl.nn:NAME`` (explicit keyword arguments win).
DGL_DEFAULTS = {"SAGEConv": {"aggregator_type": "mean"}, "GATConv": {"num_heads": 1},
                "GATv2Conv": {"num_heads": 1}, "DotGatConv": {"num_heads": 1}}


def is_dgl_conv(cls: type) -> bool:
    """True when ``cls`` is defined in the ``dgl`` package (checked without importing DGL)."""
    return getattr(cls, "__module__", "").split(".")[0] == "dgl"


def import_dgl():
    """Import and return ``dgl`` with the PyTorch backend (without DGL's backend notice)."""
    os.environ.setdefault("DGLBACKEND", "pytorch")
    import dgl

    return dgl


class DglLayer(nn.Module):
    """Wrap a DGL convolution as ``layer(block, h) -> [num_dst, d_out]``.

    Args:
        conv: the DGL convolution (its parameters become this module's ``conv.*``).
        self_loop: add a self-loop to every destination (default: the conv's name is in
            :data:`SELF_LOOP_CONVS`).
    """

    def __init__(self, conv: nn.Module, self_loop: Optional[bool] = None) -> None:
        super().__init__()
        self.conv = conv
        self.self_loop = type(conv).__name__ in SELF_LOOP_CONVS if self_loop is None \
            else self_loop
        self._graphs: "weakref.WeakKeyDictionary[Block, tuple]" = weakref.WeakKeyDictionary()

    def _degree_power(self) -> float:
        """Exponent of the source out-degree in the conv's normalisation (0: none)."""
        if type(self.conv).__name__ != "GraphConv":
            return 0.0
        return {"both": 0.5, "left": 1.0}.get(getattr(self.conv, "_norm", "none"), 0.0)

    def dgl_block(self, block: Block) -> tuple:
        """Return ``(dgl_block, edge_weight or None)`` of ``block``, built once per block.

        ``edge_weight`` (float64 ``[E]``) corrects a degree-normalised conv from local to
        global source out-degrees; None when nothing needs correcting.
        """
        if block not in self._graphs:
            dgl = import_dgl()
            src, dst = block.edge_src, block.edge_dst
            if self.self_loop:
                loops = torch.arange(block.num_dst, device=block.device)
                src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
            graph = dgl.create_block((src, dst), num_src_nodes=block.num_src,
                                     num_dst_nodes=block.num_dst, device=block.device)
            weight, power = None, self._degree_power()
            if power:
                local = torch.bincount(src, minlength=block.num_src).double()
                global_deg = block.out_deg.double() + float(self.self_loop)
                ratio = torch.where(local > 0, local / global_deg.clamp(min=1), 1.0)
                if not torch.equal(ratio, torch.ones_like(ratio)):
                    weight = ratio[src].pow(power)
            self._graphs[block] = (graph, weight)
        return self._graphs[block]

    def forward(self, block: Block, h: Tensor) -> Tensor:
        """Return the conv's output for the ``num_dst`` destinations of ``block``."""
        graph, weight = self.dgl_block(block)
        if weight is None:
            out = self.conv(graph, h)
        else:
            out = self.conv(graph, h, edge_weight=weight.to(h.dtype))
        return out.reshape(block.num_dst, -1)
