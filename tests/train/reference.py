"""An independent single-process reference: the same models in plain torch on the whole graph.

Written from the update rules (edge lists, ``index_add_``, no gnnsys block or kernel), so that
distributed training can be checked against it. Parameters are taken by name from a gnnsys
model's initial ``state_dict``; dropout masks come from ``hashed_dropout`` keyed by global node
ID, as the contract says (a node's mask does not depend on which rank computes it).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gnnsys.nn.dropout import hashed_dropout


def _sum_in(src, dst, values, n):
    out = torch.zeros((n,) + values.shape[1:], dtype=values.dtype)
    return out.index_add_(0, dst, values)


def gcn(p, x, src, dst, n):
    deg = torch.bincount(dst, minlength=n).to(x.dtype) + 1
    xw = x @ p["lin.weight"].T
    norm = (deg[src] * deg[dst]).rsqrt().unsqueeze(1)
    out = _sum_in(src, dst, xw[src] * norm, n) + xw / deg.unsqueeze(1)
    return out + p["bias"]


def sage(p, x, src, dst, n):
    deg = torch.bincount(dst, minlength=n).to(x.dtype).clamp(min=1).unsqueeze(1)
    mean = _sum_in(src, dst, x[src], n) / deg
    return mean @ p["lin_l.weight"].T + p["lin_l.bias"] + x @ p["lin_r.weight"].T


def gat(p, x, src, dst, n):
    loops = torch.arange(n)
    src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
    att_src, att_dst = p["att_src"], p["att_dst"]
    heads, width = att_src.shape[1], att_src.shape[2]
    h = (x @ p["lin.weight"].T).view(n, heads, width)
    score = F.leaky_relu((h * att_src).sum(-1)[src] + (h * att_dst).sum(-1)[dst], 0.2)
    row_max = torch.full((n, heads), -torch.inf, dtype=x.dtype)
    row_max = row_max.scatter_reduce(0, dst.unsqueeze(1).expand(-1, heads), score, "amax")
    weight = torch.exp(score - row_max[dst])
    alpha = weight / _sum_in(src, dst, weight, n)[dst]
    out = _sum_in(src, dst, h[src] * alpha.unsqueeze(-1), n)
    return out.reshape(n, heads * width) + p["bias"]


def gin(p, x, src, dst, n):
    z = _sum_in(src, dst, x[src], n) + (1 + p["eps"]) * x
    z = torch.relu(z @ p["lin1.weight"].T + p["lin1.bias"])
    return z @ p["lin2.weight"].T + p["lin2.bias"]


LAYERS = {"gcn": gcn, "sage": sage, "gat": gat, "gin": gin, "pyg-sage": sage}


def train_reference(kind, state, param_names, graph, cfg):
    """Train ``kind`` from the initial ``state`` (a gnnsys state_dict) on the whole ``graph``.

    ``param_names`` says which entries of ``state`` are trained; ``cfg`` gives epochs, lr,
    weight decay, dropout and seed. Returns ``(losses per epoch, final parameters by name)``.
    """
    params = {k: state[k].clone().double().requires_grad_(True) for k in param_names}
    buffers = {k: v.double() for k, v in state.items() if k not in params}
    layer_count = 1 + max(int(k.split(".")[1]) for k in state)
    n = graph.num_nodes
    src = torch.from_numpy(graph.indices.copy())
    dst = torch.from_numpy(np.repeat(np.arange(n), np.diff(graph.indptr)))
    x0 = torch.from_numpy(np.asarray(graph.feat)).double()
    y = torch.from_numpy(graph.label)
    train = torch.from_numpy(graph.train_mask)
    ids = torch.arange(n)
    opt = torch.optim.Adam(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    losses = []
    for epoch in range(cfg.epochs):
        opt.zero_grad()
        x = x0
        for layer in range(layer_count):
            prefix = f"layers.{layer}."
            p = {k[len(prefix):]: v for k, v in {**params, **buffers}.items()
                 if k.startswith(prefix)}
            p = {k.split("conv.", 1)[-1]: v for k, v in p.items()}
            x = hashed_dropout(x, ids, cfg.dropout, cfg.seed, epoch, layer, training=True)
            x = LAYERS[kind](p, x, src, dst, n)
            if layer < layer_count - 1:
                x = torch.relu(x)
        loss = F.cross_entropy(x[train], y[train])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return np.array(losses), {k: v.detach() for k, v in params.items()}
