"""Suite ``exchange``: end-to-end epoch time, bytes and accuracy per setting on an emulated
cluster, each time next to the bound of the performance model (DESIGN.md).

Partitions ``synthetic:<nodes>`` once per partition layout (METIS, two levels: ``hosts``
servers x ``ranks_per_host`` parts), then for each bandwidth builds an emulated cluster
(:class:`gnnsys.emulate.EmulatedCluster`: one ``tc tbf`` capped, full-duplex link per host),
probes its link (``launch/emulate/linkcheck.py``; not in quick runs) and runs ``gnnsys train
--metrics`` for every setting (:mod:`gnnsys.bench.settings`) side by side. Per setting it
reports the median epoch time after the warm-up epoch (exact sync epochs of a pipelined run left
out, and amortised back in), the compute C (``compute_s``: epoch time minus blocked
communication and codec time, slowest rank), the codec time Q, the inter-host bytes per epoch,
the per-host link time B/W (each host sends its share over its own link; W is the TCP payload
rate, 95.6 % of the line rate), the bound (synchronous: C + Q + B/W; pipelined: max(C, B/W) +
Q), measured/bound, the bytes ratio and the speed-up vs fp32 sync. The runs of the fastest link
evaluate every epoch: their test accuracy per epoch is the accuracy curve of each setting. A
full (not quick) run adds a reference: fp32 sync with all ranks on ONE host (loopback), C_ref,
an independent measure of the job's compute on the same cores, and the bytes at scale: fp32
sync and 1-bit sync on ``synthetic:200000`` (the issue's example size, where the fixed weight
all-reduce is a small share of one bit's bytes) for a few epochs on the fastest link; bytes do
not depend on the rate. Needs root (network namespaces).
"""
from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from gnnsys.bench import plots
from gnnsys.bench.common import REPO, LoadSampler, children_cpu_s, gnnsys_cmd, parse_rate
from gnnsys.bench.options import BenchOptions
from gnnsys.bench.settings import (BASELINE, BY_KEY, SYNC_EVERY, Setting, available,
                                   parse_settings, partition_flags)
from gnnsys.errors import RuntimeFailure, UserError

NAME = "exchange"
KINDS = ("features", "feature_grads", "weight_grads")
HIDDEN, LAYERS, WARMUP = 256, 3, 1
# Open MPI's TCP transport opens one connection per rank pair; two let a pair send and receive
# at full rate at once (launch/README.md, "On a real cluster").
MPIRUN_ARGS = ["--mca", "btl_tcp_links", "2"]
SCALE_NODES, SCALE_EPOCHS = 200_000, 3
TARGETS = {"bytes_ratio": 25.0, "pipeline_speedup": 10.0, "bound_ratio": 1.3,
           "preload_vs_fp32": 0.5}


def ensure_partition(nodes: int, parts: int, servers: int, extra: Sequence[str], out: Path,
                     timeout: float) -> Path:
    """Partition ``synthetic:<nodes>`` into ``servers`` x ``parts/servers`` METIS parts with
    ``extra`` flags at ``out`` unless a partition is there (reused); return ``out``."""
    if (out / "manifest.json").exists():
        return out
    cmd = [*gnnsys_cmd(), "partition", "--dataset", f"synthetic:{nodes}", "--parts", str(parts),
           "--servers", str(servers), "--method", "metis", *extra, "--out", str(out),
           "--overwrite"]
    print(f"[exchange] partitioning: gnnsys {' '.join(cmd[3:])}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeFailure(f"partitioning for the exchange suite failed: "
                             f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return out


def host_shares(partition: Path) -> Dict[str, List[float]]:
    """Return, per byte kind, the fraction of the inter-host bytes each host (server) sends.

    Features: the send rows of a host's parts to parts of other hosts. Feature gradients go the
    other way: a host sends back one gradient row per halo row it received from another host.
    Weight gradients: the leaders' ring all-reduce, the same from every host.
    """
    from gnnsys.partition.format import load_manifest, open_shard

    manifest = load_manifest(str(partition))
    servers, part_server = int(manifest["servers"]), manifest["part_server"]
    feat_rows, grad_rows = np.zeros(servers), np.zeros(servers)
    for part in range(int(manifest["parts"])):
        shard = open_shard(str(partition), part)
        host = part_server[part]
        for peer in range(int(manifest["parts"])):
            if part_server[peer] != host:
                feat_rows[host] += shard.send_offsets[peer + 1] - shard.send_offsets[peer]
                grad_rows[host] += shard.halo_offsets[peer + 1] - shard.halo_offsets[peer]

    def share(rows: np.ndarray) -> List[float]:
        return (rows / rows.sum()).tolist() if rows.sum() else [1 / servers] * servers
    return {"features": share(feat_rows), "feature_grads": share(grad_rows),
            "weight_grads": [1 / servers] * servers}


def measure_link(cluster, size_mb: float, timeout: float) -> Optional[float]:
    """Return the cross-host MB/s per direction with both directions busy (linkcheck.py), or
    None when the probe failed."""
    proc = cluster.run(["python", str(REPO / "launch" / "emulate" / "linkcheck.py"),
                        str(size_mb), "3"], timeout=timeout, mpirun_args=MPIRUN_ARGS)
    match = re.search(r"cross-host.*bidirectional\s+([0-9.]+) MB/s", proc.stdout)
    return float(match.group(1)) if proc.returncode == 0 and match else None


def run_setting(cluster, partition: Path, flags: Sequence[str], metrics: Path,
                timeout: float) -> Dict[str, object]:
    """Run ``gnnsys train <partition> <flags> --metrics <metrics>`` on ``cluster``; return its
    epoch records, the load while it ran, wall and CPU seconds and the final line (plus
    ``error`` when it failed; its log is next to ``metrics``)."""
    cmd = ["gnnsys", "train", str(partition), *flags, "--metrics", str(metrics)]
    cpu0, start = children_cpu_s(), time.perf_counter()
    with LoadSampler() as load:
        proc = cluster.run(cmd, timeout=timeout, mpirun_args=MPIRUN_ARGS)
    log = metrics.with_suffix(".log")
    log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    lines = ([json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
             if metrics.exists() else [])
    result = {"records": [r for r in lines if "epoch" in r], "load": load.summary(),
              "wall_s": round(time.perf_counter() - start, 1),
              "cpu_s": round(children_cpu_s() - cpu0, 1), "log": str(log),
              "final": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        result["error"] = f"exit {proc.returncode} after {len(result['records'])} epochs: {tail}"
        print(f"[exchange]   FAILED: {result['error']} (log: {log})", file=sys.stderr)
    return result


def summarize(setting: Setting, run: dict, warmup: int, shares: Dict[str, List[float]],
              link_mb_s: float) -> Dict[str, object]:
    """Reduce one setting's epoch records (after ``warmup`` epochs, sync epochs of a pipelined
    run left out) to medians, bytes per epoch, the per-host link time and the bound."""
    base = {"setting": setting.label, "key": setting.key, "load": run["load"], "log": run["log"],
            "epoch_times": [r["epoch_s"] for r in run["records"]],
            "test_acc": [r.get("test_acc") for r in run["records"]],
            "loss": [r["loss"] for r in run["records"]]}
    records = [r for r in run["records"][warmup:] if not r.get("sync", False)]
    if not records:
        return {**base, "error": run.get("error", "no timed epochs")}

    def med(key: str) -> float:
        return statistics.median(r.get(key, 0.0) for r in records)
    inter = {k: statistics.median(r["bytes"]["inter"][k] for r in records) for k in KINDS}
    intra = {k: statistics.median(r["bytes"]["intra"][k] for r in records) for k in KINDS}
    host_bytes = max(sum(inter[k] * shares[k][h] for k in KINDS)
                     for h in range(len(shares["features"])))
    link_s = host_bytes / (link_mb_s * 1e6)
    compute, codec, epoch = med("compute_s"), med("codec_s"), med("epoch_s")
    bound = max(compute, link_s) + codec if setting.pipelined else compute + codec + link_s
    losses = base["loss"]
    diverged = (not np.isfinite(max(losses))) or max(losses) > 1e3 * losses[0]
    return {**base, "epochs_timed": len(records), "epoch_s": epoch, "compute_s": compute,
            "codec_s": codec, "comm_s": med("comm_s"), "comm_wait_s": med("comm_wait_s"),
            "inter_bytes": inter, "inter_bytes_total": sum(inter.values()),
            "intra_bytes_total": sum(intra.values()), "host_bytes": host_bytes,
            "link_s": link_s, "bound_s": bound, "ratio": epoch / bound, "pipelined":
            setting.pipelined, "wall_s": run["wall_s"], "cpu_s": run["cpu_s"],
            "final": run["final"], "note": run.get("error", "") or
            (f"loss diverged: {max(losses):.3g}" if diverged else "")}


def add_comparisons(rows: List[dict]) -> None:
    """Add bytes ratio and speed-up vs fp32 sync to each row (in place); for a pipelined
    setting also its epoch time amortised over one sync epoch (costing an fp32 sync epoch) in
    :data:`SYNC_EVERY`."""
    base = next((r for r in rows if r["key"] == BASELINE and "error" not in r), None)
    if base is None:
        return

    def halo(r: dict) -> float:
        return r["inter_bytes"]["features"] + r["inter_bytes"]["feature_grads"]
    for row in rows:
        if "error" in row:
            continue
        row["bytes_ratio"] = base["inter_bytes_total"] / max(row["inter_bytes_total"], 1)
        row["halo_bytes_ratio"] = halo(base) / max(halo(row), 1)
        row["speedup"] = base["epoch_s"] / row["epoch_s"]
        if row["pipelined"]:
            row["epoch_s_amortised"] = ((SYNC_EVERY - 1) * row["epoch_s"] + base["epoch_s"]) \
                / SYNC_EVERY
            row["speedup_amortised"] = base["epoch_s"] / row["epoch_s_amortised"]


def run(opts: BenchOptions) -> dict:
    """Run every available setting at every bandwidth; return the result dict."""
    from gnnsys.emulate import EmulatedCluster, emulation_available

    ok, why = emulation_available()
    if not ok:
        raise UserError(f"the exchange suite needs an emulated cluster (root, network "
                        f"namespaces): {why}")
    rates = {rate: parse_rate(rate) for rate in opts.bandwidths}
    nodes = opts.pick(opts.nodes, 40_000, 5_000)
    epochs = opts.pick(opts.epochs, 12, 3)
    if epochs <= WARMUP + 1:
        raise UserError(f"--epochs {epochs} leaves no timed epoch (need >= {WARMUP + 2})")
    wanted = parse_settings(",".join(opts.settings) if opts.settings else None, opts.quick)
    settings, skipped = available(wanted)
    for key, note in skipped.items():
        print(f"[exchange] {key}: {note}", file=sys.stderr)
    parts = opts.hosts * opts.ranks_per_host
    work = opts.work / "exchange"
    folders = {s.key: ensure_partition(
        nodes, parts, opts.hosts, partition_flags(s, LAYERS),
        work / f"synthetic-{nodes}-{parts}-s{opts.hosts}{_slug(partition_flags(s, LAYERS))}",
        opts.timeout) for s in settings}
    shares = host_shares(folders[BASELINE])
    common = ["--hidden", str(HIDDEN), "--layers", str(LAYERS), "--epochs", str(epochs),
              "--no-progress", "--device", opts.device, "--seed", str(opts.seed)]
    fastest = max(rates, key=rates.get)
    result = {"config": {"nodes": nodes, "hosts": opts.hosts, "ranks_per_host":
                         opts.ranks_per_host, "epochs": epochs, "warmup": WARMUP,
                         "hidden": HIDDEN, "layers": LAYERS, "common_flags": common,
                         "mpirun_args": MPIRUN_ARGS, "settings": {s.key: s.label for s in
                                                                  settings},
                         "accuracy_from": fastest},
              "skipped": skipped, "host_shares": shares, "targets": TARGETS, "rates": {}}
    runs_dir = work / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    for rate, link in rates.items():
        evals = ["--eval-every", "1" if rate == fastest else str(epochs)]
        print(f"[exchange] {rate}: building the emulated cluster", file=sys.stderr, flush=True)
        with EmulatedCluster(hosts=opts.hosts, rate=rate,
                             ranks_per_host=opts.ranks_per_host) as cluster, \
                LoadSampler() as load:
            probe = None if opts.quick else measure_link(cluster, 20.0, 120)
            rows = []
            for s in settings:
                print(f"[exchange] {rate}: {s.label}", file=sys.stderr, flush=True)
                metrics = runs_dir / f"{rate}-{s.key}.jsonl"
                done = run_setting(cluster, folders[s.key], [*common, *evals, *s.train_flags],
                                   metrics, opts.timeout)
                rows.append(summarize(s, done, WARMUP, shares, link))
            if (rate == fastest and not opts.quick and nodes < SCALE_NODES
                    and any(s.key == "1bit" for s in settings)):
                result["bytes_at_scale"] = bytes_at_scale(cluster, common, link, work, opts)
        add_comparisons(rows)
        result["rates"][rate] = {"link_mb_s": link, "probe_mb_s": probe,
                                 "load": load.summary(), "rows": rows}
    if not opts.quick:
        result["c_ref_s"] = reference_compute(folders[BASELINE], common, runs_dir, opts)
    return result


def bytes_at_scale(cluster, common: List[str], link_mb_s: float, work: Path,
                   opts: BenchOptions) -> dict:
    """Run fp32 sync and 1-bit sync on ``synthetic:<SCALE_NODES>`` (the same model and
    layout, :data:`SCALE_EPOCHS` epochs) on ``cluster``; return ``{"nodes", "epochs", "rows"}``
    with each row summarised as in the main table (bytes ratios included)."""
    parts = opts.hosts * opts.ranks_per_host
    folder = ensure_partition(SCALE_NODES, parts, opts.hosts, ["--preload-hops", "0"],
                              work / f"synthetic-{SCALE_NODES}-{parts}-s{opts.hosts}",
                              opts.timeout)
    shares = host_shares(folder)
    flags = [*common, "--eval-every", str(SCALE_EPOCHS)]
    flags[flags.index("--epochs") + 1] = str(SCALE_EPOCHS)
    rows = []
    for key in (BASELINE, "1bit"):
        setting = BY_KEY[key]
        print(f"[exchange] bytes at scale (synthetic:{SCALE_NODES}): {setting.label}",
              file=sys.stderr, flush=True)
        done = run_setting(cluster, folder, [*flags, *setting.train_flags],
                           work / "runs" / f"scale-{key}.jsonl", opts.timeout)
        rows.append(summarize(setting, done, WARMUP, shares, link_mb_s))
    add_comparisons(rows)
    return {"nodes": SCALE_NODES, "epochs": SCALE_EPOCHS, "rows": rows}


def _slug(flags: Sequence[str]) -> str:
    """Folder suffix for partition ``flags`` (empty for the default exchange layout)."""
    if list(flags) == ["--preload-hops", "0"]:
        return ""
    short = {"--preload-hops": "h", "--ext-fanout": "f"}
    return "-" + "".join(short.get(f, f.lstrip("-") if f.startswith("--") else
                                   f.replace("-", "m")) for f in flags)


def reference_compute(partition: Path, common: List[str], runs_dir: Path,
                      opts: BenchOptions) -> Optional[float]:
    """Median epoch time of fp32 sync with all ranks on ONE emulated host (loopback only): the
    compute of the same job on the same cores, with (almost) free communication."""
    from gnnsys.emulate import EmulatedCluster

    print("[exchange] reference: fp32 sync, all ranks on one host", file=sys.stderr)
    with EmulatedCluster(hosts=1, rate="1gbit",
                         ranks_per_host=opts.hosts * opts.ranks_per_host) as cluster:
        done = run_setting(cluster, partition, [*common, "--bits", "32"],
                           runs_dir / "reference-fp32.jsonl", opts.timeout)
    times = [r["epoch_s"] for r in done["records"][WARMUP:]]
    return statistics.median(times) if times else None


def rows_of(result: dict, key: str) -> Dict[str, dict]:
    """Return ``rate -> row`` of the setting ``key`` (rows that failed included)."""
    return {rate: row for rate, block in result["rates"].items() for row in block["rows"]
            if row["key"] == key}


def plot(result: dict, stem: Path) -> List[Path]:
    """Draw epoch time vs bandwidth with the bound, bytes per epoch and test accuracy per epoch
    for every setting; return the PNG paths."""
    rates = result["rates"]
    fig, axes = plots.subplots(1, 3)
    series, dashed = {}, []
    for key, label in result["config"]["settings"].items():
        pts = sorted((rates[rate]["link_mb_s"], row["epoch_s"], row["bound_s"])
                     for rate, row in rows_of(result, key).items() if "error" not in row)
        if pts:
            series[label] = ([p[0] for p in pts], [p[1] for p in pts])
            series[f"{label} bound"] = ([p[0] for p in pts], [p[2] for p in pts])
            dashed.append(f"{label} bound")
    cfg = result["config"]
    plots.lines(axes[0][0], series, "link MB/s per direction (TCP payload)", "s / epoch",
                f"epoch time vs bandwidth (dashed: bound), {cfg['hosts']} hosts x "
                f"{cfg['ranks_per_host']} ranks", logx=True, dashed=dashed)
    first = rates[cfg["accuracy_from"]]["rows"]
    ok = [r for r in first if "error" not in r]
    plots.bars(axes[0][1], [r["setting"] for r in ok], [r["inter_bytes_total"] / 1e6 for r in ok],
               "inter-host MB / epoch (all ranks)", "bytes per epoch between hosts", log=True,
               notes=[f"{r.get('bytes_ratio', 1):.1f}x" for r in ok])
    acc = {r["setting"]: ([i for i, a in enumerate(r["test_acc"]) if a is not None],
                          [a for a in r["test_acc"] if a is not None]) for r in first}
    plots.lines(axes[0][2], {k: v for k, v in acc.items() if v[0]}, "epoch", "test accuracy",
                f"accuracy per epoch ({cfg['accuracy_from']} runs)")
    return [plots.save(fig, stem,
                       f"synthetic:{cfg['nodes']}, GCN {cfg['layers']} layers, hidden "
                       f"{cfg['hidden']}, {cfg['epochs']} epochs")]


def markdown(result: dict) -> str:
    """Return the table of every rate and setting."""
    lines = ["| link | setting | epoch s | C s | codec s | wait s | inter MB/epoch | B/W s | "
             "bound s | measured/bound | bytes vs fp32 | speed-up vs fp32 | test acc |",
             "|" + "---|" * 13]
    for rate, block in result["rates"].items():
        for r in block["rows"]:
            if "error" in r or "speedup" not in r:
                lines.append(f"| {rate} | {r['setting']} | failed: "
                             f"{r.get('error', 'no fp32 baseline')} ({r['log']}) |" + " |" * 10)
                continue
            speed = f"{r['speedup']:.2f}x"
            if "speedup_amortised" in r:
                speed += f" ({r['speedup_amortised']:.2f}x amortised)"
            note = f" ({r['note']})" if r.get("note") else ""
            acc = next((f"{a:.4f}" for a in reversed(r["test_acc"]) if a is not None), "-")
            lines.append(
                f"| {rate} | {r['setting']}{note} | {r['epoch_s']:.2f} | {r['compute_s']:.2f} | "
                f"{r['codec_s']:.2f} | {r['comm_wait_s']:.2f} | "
                f"{r['inter_bytes_total'] / 1e6:.1f} | {r['link_s']:.2f} | {r['bound_s']:.2f} | "
                f"{r['ratio']:.2f} | {r['bytes_ratio']:.1f}x | {speed} | {acc} |")
    for rate, block in result["rates"].items():
        probe = "-" if block["probe_mb_s"] is None else f"{block['probe_mb_s']:.1f}"
        lines.append(f"\n{rate}: W = {block['link_mb_s']:.1f} MB/s per direction (model), probe "
                     f"{probe} MB/s; load {block['load']['mean']} (max {block['load']['max']})")
    if result.get("c_ref_s") is not None:
        lines.append(f"C_ref (fp32 sync, all ranks on one host) = {result['c_ref_s']:.2f} s")
    scale = result.get("bytes_at_scale")
    if scale:
        lines.append(f"\nBytes at scale, synthetic:{scale['nodes']} ({scale['epochs']} epochs "
                     "on the fastest link), inter-host MB per epoch:")
        for r in scale["rows"]:
            lines.append(f"- {r['setting']}: " + (
                f"failed: {r['error']}" if "error" in r or "bytes_ratio" not in r else
                f"{r['inter_bytes_total'] / 1e6:.1f} (weights {r['inter_bytes']['weight_grads'] / 1e6:.2f}); "
                f"{r['bytes_ratio']:.1f}x fewer than fp32, halo rows {r['halo_bytes_ratio']:.1f}x"))
    lines.extend(f"{key}: {note}" for key, note in result.get("skipped", {}).items())
    return "\n".join(lines)
