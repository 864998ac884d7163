"""One rank of the multi-rank exchange test (run under mpirun by test_exchange_mpi.py).

Every rank builds the same random graph and random partition, computes every part's halo and
send lists with plain numpy, and checks the halo exchange (forward values, backward gradients
against a one-process reference, byte counters), the gradient all-reduce and the scalar
all-reduce, for each backend and dtype. On a mismatch it prints why and aborts the whole job.
"""
import argparse
import sys

import numpy as np
import torch
from mpi4py import MPI

from gnnsys.comm import (ByteCounters, ExchangePlan, HaloExchange, allreduce_gradients,
                         allreduce_scalars, init_distributed)
from gnnsys.comm.codec import Codec
from gnnsys.comm.staleness import StaleHaloExchange
from gnnsys.errors import UserError

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def fail(ctx, msg):
    """Print the mismatch and abort every rank (a plain exit would hang the others)."""
    print(f"rank {ctx.rank}: FAIL {msg}", flush=True)
    MPI.COMM_WORLD.Abort(1)


def random_layout(parts, nodes, seed, isolated):
    """Random directed edges and a random partition; ``isolated``: the last part gets no
    edge to or from another part."""
    rng = np.random.default_rng(seed)
    src, dst = rng.integers(0, nodes, 4 * nodes), rng.integers(0, nodes, 4 * nodes)
    part = rng.permutation(np.arange(nodes) % parts)
    if isolated:
        last = parts - 1
        keep = (part[src] == last) == (part[dst] == last)
        src, dst = src[keep], dst[keep]
    return src, dst, part


def all_shards(parts, src, dst, part):
    """Per part: (owned global ids, halo global ids grouped by owner, halo_offsets)."""
    shards = []
    for k in range(parts):
        owned = np.flatnonzero(part == k)
        halo = np.unique(src[(part[dst] == k) & (part[src] != k)])
        halo = halo[np.argsort(part[halo], kind="stable")]
        offsets = np.concatenate([[0], np.cumsum(np.bincount(part[halo], minlength=parts))])
        shards.append((owned, halo, offsets.astype(np.int64)))
    return shards


def send_lists(k, shards):
    """send_index / send_offsets of part k: its owned rows, in each peer's halo order."""
    owned = shards[k][0]
    blocks = []
    for halo_p, offsets_p in ((h, o) for _, h, o in shards):
        needed = halo_p[offsets_p[k]:offsets_p[k + 1]]
        blocks.append(np.searchsorted(owned, needed))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blocks])]).astype(np.int64)
    return np.concatenate(blocks).astype(np.int64), offsets


def check_exchange(ctx, plan, shards, backend, dtype, dim, seed):
    """Forward values, two chained exchanges' gradients, and the byte counters."""
    k, nodes = ctx.rank, sum(len(s[0]) for s in shards)
    owned, halo, _ = shards[k]
    counters = ByteCounters()
    ex = HaloExchange(ctx, plan, counters, backend=backend)
    h_all = torch.from_numpy(np.random.default_rng(seed + 1).standard_normal((nodes, dim)))
    h_all = h_all.to(dtype)
    weights = [torch.from_numpy(np.random.default_rng([seed, j]).standard_normal(
        (2, len(shards[j][0]) + len(shards[j][1]), dim))).to(dtype) for j in range(ctx.size)]
    h_own = h_all[owned].clone().requires_grad_(True)
    a = ex(h_own)
    if not torch.equal(a[:len(owned)], h_all[owned]) or not torch.equal(a[len(owned):],
                                                                      h_all[halo]):
        fail(ctx, f"{backend} {dtype}: forward rows differ from the owners' rows")
    b = ex(3 * a[:len(owned)])
    loss = (weights[k][0] * a).sum() + (weights[k][1] * b).sum()
    loss.backward()
    # One-process reference: every copy of a node adds its W row (x3 for the second exchange).
    ref = torch.zeros(nodes, dim, dtype=dtype)
    for j, (own_j, halo_j, _) in enumerate(shards):
        rows = torch.from_numpy(np.concatenate([own_j, halo_j]))
        ref.index_add_(0, rows, weights[j][0])
        ref.index_add_(0, rows, 3 * weights[j][1])
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    if not torch.allclose(h_own.grad, ref[owned], rtol=tol, atol=tol):
        err = (h_own.grad - ref[owned]).abs().max().item()
        fail(ctx, f"{backend} {dtype}: gradient differs from one process by {err}")
    itemsize = torch.empty(0, dtype=dtype).element_size()
    expect = {link: {"features": 0, "feature_grads": 0, "weight_grads": 0}
              for link in ("intra", "inter")}
    for p in range(ctx.size):
        link = ctx.link_of(p)
        expect[link]["features"] += 2 * int(plan.send_counts[p]) * dim * itemsize
        expect[link]["feature_grads"] += 2 * int(plan.recv_counts[p]) * dim * itemsize
    if counters.as_dict() != expect:
        fail(ctx, f"{backend} {dtype}: counters {counters.as_dict()} != {expect}")
    total = counters.reduce_sum(ctx)
    halo_bytes = 2 * sum(len(s[1]) for s in shards) * dim * itemsize
    moved = {kind: total["intra"][kind] + total["inter"][kind] for kind in total["intra"]}
    if moved != {"features": halo_bytes, "feature_grads": halo_bytes, "weight_grads": 0}:
        fail(ctx, f"{backend} {dtype}: summed counters {total}, halo bytes {halo_bytes}")
    if ctx.num_servers == 1 and any(total["inter"].values()):
        fail(ctx, f"single server but inter-server bytes counted: {total}")
    if ctx.num_servers > 1 and not (total["inter"]["features"] and total["intra"]["features"]):
        fail(ctx, f"two servers but not both link classes carry features: {total}")
    if counters.comm_s <= 0 or counters.comm_wait_s != counters.comm_s:
        fail(ctx, f"timers not counted: {counters.timers()}")


def check_coded_exchange(ctx, plan, shards, dim, seed):
    """A synchronous 1-bit exchange returns the decoded halo rows (those of an explicit
    start_forward with the same seed), each element its true row's min or max."""
    k, nodes = ctx.rank, sum(len(s[0]) for s in shards)
    owned, halo, _ = shards[k]
    h_all = torch.from_numpy(np.random.default_rng(seed + 7).standard_normal((nodes, dim)))
    h_all = h_all.float()
    codecs = {"intra": Codec(1), "inter": Codec(1)}
    ex = HaloExchange(ctx, plan, ByteCounters(), codecs=codecs, seed=seed)
    a = ex(h_all[owned].clone(), 1, 5)
    expected = ex.start_forward(h_all[owned], 1, 5).wait()
    if not torch.equal(a[len(owned):], expected) or not torch.equal(a[:len(owned)], h_all[owned]):
        fail(ctx, "sync 1-bit exchange: halo differs from the decoded rows")
    true = h_all[halo]
    lo, hi = true.min(1, keepdim=True).values, true.max(1, keepdim=True).values
    tol = 1e-2 * (hi - lo).clamp(min=1.0)  # min and scale travel as fp16
    near = ((expected - lo).abs() <= tol) | ((expected - hi).abs() <= tol)
    if not bool(near.all()):
        fail(ctx, "sync 1-bit exchange: a halo element is neither its row's min nor max")


def check_stale_exchange(ctx, plan, shards, dim, seed, stale_grads):
    """Staleness 1, exact rows, no worker: epoch 1 computes with epoch 0's halo rows. Halo
    gradients return within their epoch (the one-process gradient), or with ``stale_grads``
    one epoch later (epoch 1 sees only its own rows' part, epoch 2 adds epoch 1's peers' part)."""
    k, nodes = ctx.rank, sum(len(s[0]) for s in shards)
    owned, halo, _ = shards[k]
    dtype = torch.float64
    h_all = torch.from_numpy(np.random.default_rng(seed + 3).standard_normal((nodes, dim)))
    weights = [torch.from_numpy(np.random.default_rng([seed, j, 5]).standard_normal(
        (len(shards[j][0]) + len(shards[j][1]), dim))) for j in range(ctx.size)]
    full, own_only = torch.zeros(nodes, dim, dtype=dtype), weights[k][:len(owned)]
    for j, (own_j, halo_j, _) in enumerate(shards):
        full.index_add_(0, torch.from_numpy(np.concatenate([own_j, halo_j])), weights[j])
    stale = StaleHaloExchange(HaloExchange(ctx, plan, ByteCounters()), 1, stale_grads)
    expect_grad = {0: full[owned], 1: own_only if stale_grads else full[owned], 2: full[owned]}
    for epoch in range(3):
        stale.begin_epoch(epoch, sync=epoch == 0)
        h_own = ((epoch + 1) * h_all[owned]).requires_grad_(True)
        out = stale(h_own, 1)
        if not torch.equal(out[len(owned):], max(epoch, 1) * h_all[halo]):
            fail(ctx, f"stale exchange epoch {epoch}: halo rows are not those of epoch "
                      f"{max(epoch - 1, 0)}")
        (weights[k] * out).sum().backward()
        if not torch.allclose(h_own.grad, expect_grad[epoch], rtol=1e-12, atol=1e-12):
            fail(ctx, f"stale exchange (stale_grads={stale_grads}) epoch {epoch}: wrong "
                      "halo gradient")
    stale.close()


def check_allreduce(ctx, backend, dtype):
    """Gradient sum (a grad missing on even ranks counts as zeros), bytes, scalar sum."""
    counters = ByteCounters()
    lin = torch.nn.Linear(3, 2, dtype=dtype)
    extra = torch.nn.Parameter(torch.zeros(4, dtype=dtype))
    base = [torch.arange(p.numel(), dtype=dtype).view_as(p) + 1 for p in (lin.weight, lin.bias,
                                                                          extra)]
    lin.weight.grad, lin.bias.grad = (ctx.rank + 1) * base[0], (ctx.rank + 1) * base[1]
    extra.grad = (ctx.rank + 1) * base[2] if ctx.rank % 2 else None
    allreduce_gradients([lin.weight, lin.bias, extra], ctx, counters, backend=backend)
    n_all = ctx.size * (ctx.size + 1) / 2
    n_odd = sum(r + 1 for r in range(1, ctx.size, 2))
    for p, b, scale in ((lin.weight, base[0], n_all), (lin.bias, base[1], n_all),
                        (extra, base[2], n_odd)):
        if p.grad is None or not torch.allclose(p.grad, scale * b, rtol=1e-12, atol=0):
            fail(ctx, f"allreduce {backend} {dtype}: {p.grad} != {scale} * {b}")
    nbytes = sum(b.numel() for b in base) * torch.empty(0, dtype=dtype).element_size()
    intra = (ctx.local_size - 1) * nbytes if ctx.is_leader else nbytes
    inter = 2 * (ctx.num_servers - 1) * nbytes // ctx.num_servers if ctx.is_leader else 0
    got = counters.as_dict()
    if (got["intra"]["weight_grads"], got["inter"]["weight_grads"]) != (intra, inter):
        fail(ctx, f"allreduce {backend} bytes {got}, expected intra {intra} inter {inter}")
    sums = allreduce_scalars(np.array([ctx.rank, 1.5]), ctx)
    if sums.dtype != np.float64 or sums.tolist() != [ctx.size * (ctx.size - 1) / 2,
                                                      1.5 * ctx.size]:
        fail(ctx, f"allreduce_scalars gave {sums}")
    maxima = ctx.allreduce_max(np.array([ctx.rank, -ctx.rank], dtype=np.int64))
    if maxima.dtype != np.int64 or maxima.tolist() != [ctx.size - 1, 0]:
        fail(ctx, f"allreduce_max gave {maxima}")


def check_mismatch_detected(ctx, shards, plan):
    """A plan whose halo count from a peer is off by one must raise UserError on every rank."""
    if ctx.size < 2:
        return
    halo_offsets = shards[ctx.rank][2].copy()
    if ctx.rank == 0:
        halo_offsets[2:] += 1  # one more row from part 1 than part 1 sends
    bad = ExchangePlan.from_arrays(ctx.rank, plan.n_own, halo_offsets,
                                   plan.send_index.numpy(), np.concatenate(
                                       [plan.send_displs, [len(plan.send_index)]]),
                                   plan.link_of_peer)
    try:
        HaloExchange(ctx, bad, ByteCounters())
    except UserError:
        return
    fail(ctx, "an inconsistent plan was accepted")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=240)
    ap.add_argument("--dim", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--isolated", action="store_true", help="last part has no peers")
    ap.add_argument("--ranks-per-server", type=int, default=None)
    ap.add_argument("--backends", default="mpi,mpi_p2p,torch")
    ap.add_argument("--dtypes", default="float32,float64")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ctx = init_distributed("gloo", ranks_per_server=args.ranks_per_server)
    if args.ranks_per_server and ctx.server_of_rank != [r // args.ranks_per_server
                                                        for r in range(ctx.size)]:
        fail(ctx, f"emulated servers {ctx.server_of_rank}")
    ctx.check_placement(np.array([9 - s for s in ctx.server_of_rank]))  # labels may differ
    try:
        ctx.check_placement(np.arange(ctx.size) % 2)
        if ctx.server_of_rank != (np.arange(ctx.size) % 2).tolist():
            fail(ctx, "a wrong placement was accepted")
    except UserError:
        pass
    src, dst, part = random_layout(ctx.size, args.nodes, args.seed, args.isolated)
    shards = all_shards(ctx.size, src, dst, part)
    send_index, send_offsets = send_lists(ctx.rank, shards)
    links = [ctx.link_of(p) for p in range(ctx.size)]
    plan = ExchangePlan.from_arrays(ctx.rank, len(shards[ctx.rank][0]), shards[ctx.rank][2],
                                    send_index, send_offsets, links)
    if args.isolated and ctx.rank == ctx.size - 1 and (plan.peers or plan.n_halo):
        fail(ctx, f"the isolated part has peers {plan.peers}")
    if not args.isolated and not plan.peers:
        fail(ctx, "test graph too sparse: no peers")
    for backend in args.backends.split(","):
        for name in args.dtypes.split(","):
            check_exchange(ctx, plan, shards, backend, DTYPES[name], args.dim, args.seed)
    check_coded_exchange(ctx, plan, shards, args.dim, args.seed)
    for stale_grads in (False, True):
        check_stale_exchange(ctx, plan, shards, args.dim, args.seed, stale_grads)
    for backend in ("mpi", "torch"):
        check_allreduce(ctx, backend, torch.float64)
    check_mismatch_detected(ctx, shards, plan)
    ctx.barrier()
    if ctx.rank == 0:
        print(f"OK {ctx.size} ranks, {ctx.num_servers} servers", flush=True)
    ctx.close()


if __name__ == "__main__":
    sys.exit(main())
