"""Build a layer from a name: a built-in, ``package.module:Class`` or ``path/file.py:Class``.

Convention for a user's class: it is a ``torch.nn.Module`` constructed as
``Class(in_dim, out_dim, **kwargs)`` (positional widths, like PyG's ``(in_channels,
out_channels)``) and called as ``layer(block, h)`` with ``h`` ``[num_src, in_dim]``, returning
``[num_dst, out_dim]``. Optionally it defines ``pre_exchange(h) -> h'``, a row-wise map (e.g.
``h @ W.T``) that the model applies to the owned rows before the halo exchange, and then calls
``layer(block, h_src', pre_exchanged=True)``; the result must equal ``layer(block, h_src)``
(:func:`gnnsys.train.model.apply_layer`). Narrowing layers use it to exchange and hold
``out_dim`` columns instead of ``in_dim``. A class that is a PyG ``MessagePassing`` is
constructed the same way and wrapped in :class:`gnnsys.nn.adapters.pyg.PygLayer`
automatically; a DGL convolution
(``dgl.nn:GraphConv``, ``dgl.nn:SAGEConv``, ``dgl.nn:GATConv``, ...) in
:class:`gnnsys.nn.adapters.dgl.DglLayer`, with DGL's required arguments defaulted
(:data:`gnnsys.nn.adapters.dgl.DGL_DEFAULTS`: mean aggregator, one head).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys

from torch import nn

from gnnsys.errors import UserError
from gnnsys.nn.adapters.dgl import DGL_DEFAULTS, DglLayer, is_dgl_conv
from gnnsys.nn.gat import GATConv
from gnnsys.nn.gcn import GCNConv
from gnnsys.nn.gin import GINConv
from gnnsys.nn.sage import SAGEConv

BUILTIN_LAYERS = {"gcn": GCNConv, "sage": SAGEConv, "gat": GATConv, "gin": GINConv}


def _load_module(target: str, spec: str):
    """Import ``target`` (a dotted module name or a ``.py`` path); UserError on failure."""
    try:
        if target.endswith(".py"):
            if not os.path.isfile(target):
                raise UserError(f"layer {spec!r}: file {target!r} not found")
            name = "gnnsys_user_layer_" + os.path.splitext(os.path.basename(target))[0]
            mod_spec = importlib.util.spec_from_file_location(name, target)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
            return module
        return importlib.import_module(target)
    except UserError:
        raise
    except Exception as exc:  # any import-time failure of the user's code is their mistake
        raise UserError(f"layer {spec!r}: cannot import {target!r}: "
                        f"{type(exc).__name__}: {exc}".splitlines()[0]) from None


def resolve_layer_class(spec: str) -> type:
    """Return the class named by ``spec`` (built-in name, ``module:Class`` or ``file.py:Class``).

    Raises:
        UserError: unknown name, unimportable module, missing class, or not an ``nn.Module``.
    """
    if spec in BUILTIN_LAYERS:
        return BUILTIN_LAYERS[spec]
    target, sep, cls_name = spec.rpartition(":")
    if not sep or not target or not cls_name:
        raise UserError(f"unknown layer {spec!r}: use one of {', '.join(BUILTIN_LAYERS)}, "
                        "'package.module:Class' or 'path/to/file.py:Class'")
    module = _load_module(target, spec)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise UserError(f"layer {spec!r}: {target!r} has no attribute {cls_name!r}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise UserError(f"layer {spec!r}: {cls_name!r} is not a torch.nn.Module subclass")
    return cls


def is_pyg_conv(cls: type) -> bool:
    """True when ``cls`` is a PyG ``MessagePassing`` (checked without importing PyG)."""
    pyg_conv = sys.modules.get("torch_geometric.nn.conv")
    return pyg_conv is not None and issubclass(cls, pyg_conv.MessagePassing)


def build_layer(spec: str, in_dim: int, out_dim: int, **kwargs) -> nn.Module:
    """Build the layer named by ``spec`` as ``Class(in_dim, out_dim, **kwargs)``.

    Args:
        spec: ``gcn``, ``sage``, ``gat``, ``gin``, ``package.module:Class`` or
            ``path/to/file.py:Class``.
        in_dim, out_dim: input and output widths (GAT: ``out_dim`` is per head).
        kwargs: passed to the constructor.

    Returns:
        An ``nn.Module`` called as ``layer(block, h)``; a PyG ``MessagePassing`` comes wrapped
        in :class:`~gnnsys.nn.adapters.pyg.PygLayer`, a DGL conv in
        :class:`~gnnsys.nn.adapters.dgl.DglLayer`.

    Raises:
        UserError: the spec cannot be resolved, or the constructor rejects the arguments.
    """
    cls = resolve_layer_class(spec)
    if is_dgl_conv(cls):
        kwargs = {**DGL_DEFAULTS.get(cls.__name__, {}), **kwargs}
    try:
        layer = cls(in_dim, out_dim, **kwargs)
    except TypeError as exc:
        raise UserError(f"layer {spec!r}: cannot construct {cls.__name__}({in_dim}, {out_dim}"
                        f"{''.join(f', {k}={v!r}' for k, v in kwargs.items())}): {exc}") from None
    if is_pyg_conv(cls):
        from gnnsys.nn.adapters.pyg import PygLayer

        layer = PygLayer(layer)
    elif is_dgl_conv(cls):
        layer = DglLayer(layer)
    return layer
