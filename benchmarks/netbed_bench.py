"""End-to-end epoch time and inter-host bytes on the emulated cluster, next to the model bound.

Partitions a synthetic graph once (METIS, two levels: 2 servers x 2 parts), then for each link
rate builds an emulated cluster of 2 hosts x 2 ranks (``gnnsys.emulate.EmulatedCluster``; one
``tc tbf`` capped, full-duplex link per host) and runs ``gnnsys train --metrics`` side by side
for four settings: fp32 sync, 1-bit sync, 1-bit + pipeline (staleness 1, sync every 10) and
intra fp32 + inter 1-bit. Per setting it reports the median epoch time after the warm-up, the
compute C (``compute_s`` of the metrics: epoch time minus blocked-communication and codec
time, slowest rank), the codec time Q, the inter-host bytes per epoch, the per-host link time
B/W (each host sends its share over its own link; W is the link's TCP payload rate, 95.6 % of
the line rate; ``launch/emulate/linkcheck.py`` probes it next to the run), the bound of ``DESIGN.md`` (synchronous: C + Q + B/W;
pipelined: max(C, B/W) + Q), measured/bound, the bytes ratio and the speed-up vs fp32 sync.
A reference run of fp32 sync with all 4 ranks on ONE emulated host (loopback, no link cap)
gives C_ref, an independent measure of the compute of the same job on the same cores.

    python benchmarks/netbed_bench.py [--nodes N] [--rates 200mbit 1gbit] [--epochs E] [--quick]

Writes ``bench/netbed-<date>.json`` and ``.png`` (see ``netbed_plot.py``) and prints a markdown
table. Needs root (network namespaces); exits 2 with one line where they are unavailable.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnnsys.emulate import EmulatedCluster, EmulationUnavailable, emulation_available  # noqa: E402
from gnnsys.partition.format import load_manifest, open_shard  # noqa: E402

HOSTS, RANKS_PER_HOST = 2, 2
SETTINGS = {
    "fp32 sync": ["--bits", "32"],
    "1-bit sync": ["--bits", "1"],
    "1-bit + pipeline": ["--bits", "1", "--pipeline", "--staleness", "1", "--sync-every", "10"],
    "intra fp32 + inter 1-bit": ["--intra-bits", "32", "--inter-bits", "1"],
}
PIPELINED = {"1-bit + pipeline"}
SYNC_EVERY = 10  # of the pipelined setting: one exact synchronous epoch in SYNC_EVERY
KINDS = ("features", "feature_grads", "weight_grads")
# Open MPI's TCP transport opens one connection per rank pair; two let a pair send and receive
# at full rate at once (launch/README.md, "On a real cluster").
MPIRUN_ARGS = ["--mca", "btl_tcp_links", "2"]
# Payload share of the line rate over TCP/IPv4 with 1500-byte frames, as measured on this bed on
# a quiet machine (launch/README.md: 23.9 MB/s on 200mbit, 120 MB/s on 1gbit).
TCP_EFFICIENCY = 0.956
TARGETS = {"bytes_ratio": 25.0, "pipeline_speedup": 10.0, "bound_ratio": 1.3}


class LoadSampler:
    """Samples the 1-minute load average every ``period`` seconds while in a ``with`` block."""

    def __init__(self, period: float = 5.0) -> None:
        self.period = period
        self.samples: List[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.period):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> Dict[str, float]:
        """Return ``{"mean": m, "max": x}`` of the sampled 1-minute load averages."""
        return {"mean": round(float(np.mean(self.samples)), 2),
                "max": round(float(np.max(self.samples)), 2)}


def ensure_partition(nodes: int, out: Path, overwrite: bool) -> Path:
    """Partition ``synthetic:<nodes>`` (128 features) into 2 servers x 2 parts at ``out``,
    unless a partition is already there (then reuse it); return ``out``."""
    if (out / "manifest.json").exists() and not overwrite:
        print(f"reusing the partition at {out}", file=sys.stderr)
        return out
    cmd = [str(Path(sys.executable).parent / "gnnsys"), "partition", "--dataset",
           f"synthetic:{nodes}", "--parts", str(HOSTS * RANKS_PER_HOST), "--servers", str(HOSTS),
           "--method", "metis", "--out", str(out), "--overwrite"]
    print(f"partitioning: {' '.join(cmd[1:])}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"netbed_bench: partitioning failed: {proc.stderr.strip()[-500:]}")
    return out


def host_shares(partition: Path) -> Dict[str, List[float]]:
    """Return, per byte kind, the fraction of the inter-host bytes each host (server) sends.

    Features: the send rows of a host's parts to parts of other hosts. Feature gradients go the
    other way: a host sends back one gradient row per halo row it received from another host.
    Weight gradients: the leaders' ring all-reduce, the same from every host.
    """
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
    share = lambda rows: (rows / rows.sum()).tolist() if rows.sum() else [1 / servers] * servers  # noqa: E731,E501
    return {"features": share(feat_rows), "feature_grads": share(grad_rows),
            "weight_grads": [1 / servers] * servers}


def payload_rate(rate: str) -> float:
    """Return the TCP payload MB/s (10^6 B/s) of a ``tc`` rate such as ``200mbit``/``1gbit``:
    the line rate times TCP_EFFICIENCY."""
    match = re.fullmatch(r"([0-9.]+)\s*([kmg]?)bit", rate.strip().lower())
    if not match:
        raise ValueError(f"bad rate {rate!r} (use tc syntax: 50mbit, 1gbit)")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2)]
    return float(match.group(1)) * scale / 8 / 1e6 * TCP_EFFICIENCY


def measure_link(cluster: EmulatedCluster, size_mb: float, timeout: float) -> Optional[float]:
    """Return the cross-host MB/s per direction with both directions busy (linkcheck.py), or
    None when the probe failed."""
    proc = cluster.run(["python", str(ROOT / "launch" / "emulate" / "linkcheck.py"),
                        str(size_mb), "3"], timeout=timeout, mpirun_args=MPIRUN_ARGS)
    match = re.search(r"cross-host.*bidirectional\s+([0-9.]+) MB/s", proc.stdout)
    if proc.returncode != 0 or not match:
        print(f"link probe failed ({proc.returncode}): {proc.stderr.strip()[-300:]}",
              file=sys.stderr)
        return None
    return float(match.group(1))


def run_setting(cluster: EmulatedCluster, partition: Path, flags: List[str], common: List[str],
                metrics: Path, timeout: float,
                env: Optional[Dict[str, str]] = None) -> Dict[str, object]:
    """Run ``gnnsys train`` with ``flags`` (and ``env`` on every rank) on the cluster; return
    its epoch records, the load average while it ran, its wall time and the CPU seconds of the
    finished child processes (the job's ranks, as far as they are reaped in our process tree)."""
    cmd = ["gnnsys", "train", str(partition), *common, *flags, "--metrics", str(metrics)]
    cpu0 = _children_cpu()
    start = time.perf_counter()
    with LoadSampler() as load:
        proc = cluster.run(cmd, timeout=timeout, env=env, mpirun_args=MPIRUN_ARGS)
    wall = time.perf_counter() - start
    log = metrics.with_suffix(".log")
    log.write_text(f"$ {' '.join(cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    lines = ([json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
             if metrics.exists() else [])
    result = {"records": [r for r in lines if "epoch" in r], "load": load.summary(),
              "wall_s": round(wall, 1), "cpu_s": round(_children_cpu() - cpu0, 1),
              "final": proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "",
              "log": str(log)}
    if proc.returncode != 0:
        result["error"] = f"exit {proc.returncode} after {len(result['records'])} epochs"
        print(f"  FAILED: {result['error']} (log: {log})", file=sys.stderr)
    return result


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def summarize(name: str, run: dict, warmup: int, shares: Dict[str, List[float]],
              link_mb_s: float) -> Dict[str, object]:
    """Reduce one setting's epoch records (after ``warmup`` epochs, sync epochs of a pipelined
    run left out) to medians, bytes per epoch, the per-host link time and the bound."""
    records = [r for r in run["records"][warmup:] if not r.get("sync", False)]
    if not records:
        return {"setting": name, "error": run.get("error", "no timed epochs"), "log": run["log"],
                "epoch_times": [r["epoch_s"] for r in run["records"]], "load": run["load"]}
    med = lambda key: statistics.median(r[key] for r in records)  # noqa: E731
    inter = {k: statistics.median(r["bytes"]["inter"][k] for r in records) for k in KINDS}
    intra = {k: statistics.median(r["bytes"]["intra"][k] for r in records) for k in KINDS}
    host_bytes = max(sum(inter[k] * shares[k][h] for k in KINDS)
                     for h in range(len(shares["features"])))
    link_s = host_bytes / (link_mb_s * 1e6)
    compute, codec = med("compute_s"), med("codec_s")
    bound = (max(compute, link_s) + codec if name in PIPELINED
             else compute + codec + link_s)
    epoch = med("epoch_s")
    return {"setting": name, "epochs_timed": len(records), "epoch_s": epoch,
            "compute_s": compute, "codec_s": codec, "comm_s": med("comm_s"),
            "comm_wait_s": med("comm_wait_s"), "inter_bytes": inter,
            "inter_bytes_total": sum(inter.values()), "intra_bytes_total": sum(intra.values()),
            "host_bytes": host_bytes, "link_s": link_s, "bound_s": bound,
            "ratio": epoch / bound, "epoch_times": [r["epoch_s"] for r in run["records"]],
            "loss": [r["loss"] for r in run["records"]], "load": run["load"],
            "wall_s": run["wall_s"], "cpu_s": run["cpu_s"], "final": run["final"],
            "note": run.get("error", "") or _diverged([r["loss"] for r in run["records"]])}


def _diverged(losses: List[float]) -> str:
    """Return a note when the loss blew up (the timing is then of a broken run), else ``""``."""
    worst = max(losses)
    return "" if np.isfinite(worst) and worst < 1e3 * losses[0] else f"loss diverged: {worst:.3g}"


def add_comparisons(rows: List[dict]) -> None:
    """Add bytes ratio and speed-up vs fp32 sync to each row (in place); for the pipelined
    setting also the time per epoch amortised over its cycle of one sync epoch (costing an
    fp32 sync epoch) in SYNC_EVERY."""
    base = next(r for r in rows if r["setting"] == "fp32 sync")
    if "error" in base:
        return
    for row in rows:
        if "error" in row:
            continue
        row["bytes_ratio"] = base["inter_bytes_total"] / max(row["inter_bytes_total"], 1)
        halo = lambda r: r["inter_bytes"]["features"] + r["inter_bytes"]["feature_grads"]  # noqa: E731,E501
        row["halo_bytes_ratio"] = halo(base) / max(halo(row), 1)
        row["speedup"] = base["epoch_s"] / row["epoch_s"]
        if row["setting"] in PIPELINED:
            amortised = ((SYNC_EVERY - 1) * row["epoch_s"] + base["epoch_s"]) / SYNC_EVERY
            row["epoch_s_amortised"] = amortised
            row["speedup_amortised"] = base["epoch_s"] / amortised


def markdown(results: dict) -> str:
    """Return the markdown table of every rate and setting, then the targets' verdicts."""
    head = ("| link | setting | epoch s | C s | codec s | wait s | inter MB/epoch | B/W s | "
            "bound s | measured/bound | bytes vs fp32 | speed-up vs fp32 |")
    lines = [head, "|" + "---|" * 12]
    for rate, block in results["rates"].items():
        for r in block["rows"]:
            if "error" in r or "speedup" not in r:
                lines.append(f"| {rate} | {r['setting']} | failed: {r.get('error', 'no baseline')}"
                             f" ({r.get('log', '')}) |" + " |" * 10)
                continue
            speed = f"{r['speedup']:.2f}x"
            if "speedup_amortised" in r:
                speed += f" ({r['speedup_amortised']:.2f}x amortised)"
            note = f" ({r['note']})" if r.get("note") else ""
            lines.append(
                f"| {rate} | {r['setting']}{note} | {r['epoch_s']:.2f} | {r['compute_s']:.2f} | "
                f"{r['codec_s']:.2f} | {r['comm_wait_s']:.2f} | {r['inter_bytes_total'] / 1e6:.1f}"
                f" | {r['link_s']:.2f} | {r['bound_s']:.2f} | {r['ratio']:.2f} | "
                f"{r['bytes_ratio']:.1f}x | {speed} |")
    lines.append("")
    for rate, block in results["rates"].items():
        lines.append(f"- {rate}: W = {block['link_mb_s']:.1f} MB/s per direction (model; "
                     f"probe during the run: {_fmt(block['probe_mb_s'])}); "
                     f"C_ref (fp32, 4 ranks on one host) = {_fmt(block.get('c_ref_s'))} s; "
                     f"load {block['load']['mean']:.1f} (max {block['load']['max']:.1f})")
        lines.extend(f"  - {text}" for text in verdicts(block["rows"]))
    return "\n".join(lines)


def verdicts(rows: List[dict]) -> List[str]:
    """Return one line per target of issues 4 and 5, with the measured value and PASS/MISS."""
    by = {r["setting"]: r for r in rows}
    out = []

    def check(label: str, value: float, target: float, higher: bool) -> None:
        ok = value >= target if higher else value <= target
        out.append(f"{label}: {value:.2f} ({'>=' if higher else '<='} {target:g}) "
                   f"{'PASS' if ok else 'MISS'}")

    def value(setting: str, key: str) -> Optional[float]:
        return by.get(setting, {}).get(key)

    for label, setting, key, target, higher in (
            ("fp32 inter bytes / 1-bit sync inter bytes", "1-bit sync", "bytes_ratio",
             TARGETS["bytes_ratio"], True),
            ("the same, halo rows only (without the fp32 weight all-reduce)", "1-bit sync",
             "halo_bytes_ratio", TARGETS["bytes_ratio"], True),
            ("fp32 sync epoch / 1-bit + pipeline epoch", "1-bit + pipeline", "speedup",
             TARGETS["pipeline_speedup"], True),
            ("1-bit + pipeline measured/bound", "1-bit + pipeline", "ratio",
             TARGETS["bound_ratio"], False),
            ("fp32 sync measured/bound", "fp32 sync", "ratio", TARGETS["bound_ratio"], False)):
        if value(setting, key) is None:
            out.append(f"{label}: not measured")
        else:
            check(label, value(setting, key), target, higher)
    return out


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (see ``--help``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--nodes", type=int, default=200_000, help="nodes of the synthetic graph")
    ap.add_argument("--rates", nargs="+", default=["200mbit", "1gbit"],
                    help="link rates (tc syntax), one emulated cluster each")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per run")
    ap.add_argument("--warmup", type=int, default=1, help="first epochs left out of the medians")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS),
                    metavar="SETTING", help=f"settings to run, of {list(SETTINGS)}")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the one-host reference run that measures C_ref")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per training run")
    ap.add_argument("--partition", type=Path, default=None,
                    help="partition folder (default bench/netbed-parts/synthetic-<N>-4-s2; "
                         "reused when it exists)")
    ap.add_argument("--overwrite", action="store_true", help="re-partition even if it exists")
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default bench/netbed-<date>.json; the plot next to it)")
    ap.add_argument("--rank-env", nargs="+", default=[], metavar="NAME=VALUE",
                    help="extra environment of every rank, e.g. NUMBA_NUM_THREADS=1")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 20000 nodes, 3 epochs, 200mbit only, no reference")
    args = ap.parse_args(argv)
    if args.quick:
        args.nodes, args.epochs, args.rates, args.no_reference = 20_000, 3, ["200mbit"], True
    for rate in args.rates:
        try:
            payload_rate(rate)
        except ValueError as exc:
            ap.error(str(exc))
    if any("=" not in item for item in args.rank_env):
        ap.error(f"--rank-env takes NAME=VALUE, got {args.rank_env}")
    args.rank_env = dict(item.split("=", 1) for item in args.rank_env)
    if "fp32 sync" not in args.settings:
        ap.error("--settings must include 'fp32 sync' (the baseline)")
    if args.epochs <= args.warmup + (1 if "1-bit + pipeline" in args.settings else 0):
        ap.error(f"--epochs {args.epochs} leaves no timed epoch after --warmup {args.warmup}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark; return the exit code (2 where emulation is unavailable)."""
    args = parse_args(argv)
    ok, why = emulation_available()
    if not ok:
        print(f"netbed_bench: cannot build an emulated cluster here: {why}", file=sys.stderr)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "bench" / f"netbed-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    partition = ensure_partition(
        args.nodes, (args.partition or ROOT / "bench" / "netbed-parts" /
                     f"synthetic-{args.nodes}-4-s2").resolve(), args.overwrite)
    shares = host_shares(partition)
    common = ["--hidden", str(args.hidden), "--layers", str(args.layers), "--epochs",
              str(args.epochs), "--eval-every", str(args.epochs), "--no-progress"]
    workdir = out.with_suffix("")
    workdir.mkdir(exist_ok=True)
    results = {"command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
               "date": stamp, "nodes": args.nodes, "partition": str(partition),
               "hosts": HOSTS, "ranks_per_host": RANKS_PER_HOST, "epochs": args.epochs,
               "warmup": args.warmup, "common_flags": common, "mpirun_args": MPIRUN_ARGS,
               "host_shares": shares, "rank_env": args.rank_env, "cpus": os.cpu_count(), "rates": {}}
    try:
        for rate in args.rates:
            results["rates"][rate] = bench_rate(rate, args, partition, common, shares, workdir)
            out.write_text(json.dumps(results, indent=2))
        if not args.no_reference:
            c_ref = reference_compute(args, partition, common, workdir)
            for block in results["rates"].values():
                block["c_ref_s"] = c_ref
    except EmulationUnavailable as exc:
        print(f"netbed_bench: cannot build an emulated cluster here: {exc}", file=sys.stderr)
        return 2
    out.write_text(json.dumps(results, indent=2))
    table = markdown(results)
    print(table)
    from netbed_plot import plot  # matplotlib is imported only here

    png = plot(results, out.with_suffix(".png"))
    print(f"\nJSON: {out}\nplot: {png}")
    return 0


def bench_rate(rate: str, args: argparse.Namespace, partition: Path, common: List[str],
               shares: Dict[str, List[float]], workdir: Path) -> dict:
    """Build a 2 x 2 cluster at ``rate``, measure its link and run every setting on it."""
    print(f"[{rate}] building the emulated cluster", file=sys.stderr)
    with EmulatedCluster(hosts=HOSTS, rate=rate, ranks_per_host=RANKS_PER_HOST) as cluster, \
            LoadSampler() as load:
        probe = measure_link(cluster, 20.0, 120)
        link = payload_rate(rate)
        print(f"[{rate}] link: model W {link:.1f} MB/s, probe {probe} MB/s per direction",
              file=sys.stderr)
        runs = {}
        for name in args.settings:
            print(f"[{rate}] {name}", file=sys.stderr)
            metrics = workdir / f"{rate}-{name.replace(' ', '').replace('+', '_')}.jsonl"
            runs[name] = run_setting(cluster, partition, SETTINGS[name], common, metrics,
                                     args.timeout, args.rank_env)
            print(f"[{rate}] {name}: epochs {[round(r['epoch_s'], 2) for r in runs[name]['records']]}"
                  f" load {runs[name]['load']}", file=sys.stderr)
    rows = [summarize(name, run, args.warmup, shares, link) for name, run in runs.items()]
    add_comparisons(rows)
    return {"link_mb_s": link, "probe_mb_s": probe, "load": load.summary(), "rows": rows}


def reference_compute(args: argparse.Namespace, partition: Path, common: List[str],
                      workdir: Path) -> float:
    """Median epoch time of fp32 sync with all ranks on ONE emulated host (loopback only): the
    compute of the same job on the same cores, with (almost) free communication."""
    print("[reference] fp32 sync, 4 ranks on one host", file=sys.stderr)
    with EmulatedCluster(hosts=1, rate="1gbit", ranks_per_host=HOSTS * RANKS_PER_HOST) as cluster:
        run = run_setting(cluster, partition, SETTINGS["fp32 sync"], common,
                          workdir / "reference-fp32sync.jsonl", args.timeout, args.rank_env)
    return statistics.median(r["epoch_s"] for r in run["records"][args.warmup:])


if __name__ == "__main__":
    sys.exit(main())
