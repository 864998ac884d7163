"""Every benchmark target of issues 3, 4, 5 and 6, read off the suites' results.

:func:`evaluate` turns ``{suite: result}`` into :class:`Row`\\ s: measured / target / bound /
met. A target whose suite was not run (or whose setting was skipped) says so in ``measured``
and has ``met = None``; nothing is ever filled in from elsewhere. Targets checked by the test
suite rather than by a benchmark are listed in :data:`TESTED`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

from gnnsys.bench.exchange import TARGETS as EX
from gnnsys.bench.exchange import rows_of


@dataclass
class Row:
    """One line of the targets table."""

    issue: int
    target: str
    measured: str
    goal: str
    bound: str = "-"
    met: Optional[bool] = None
    note: str = ""


NOT_MEASURED = "not measured"
TESTED = [
    (3, "fresh clone: `bash launch/test.sh` passes, `.ci/run` green", "CI"),
    (3, "shards rebuild the input exactly (metis, random, two-level, P in 1,2,3,4,8)",
     "tests/partition/test_shard.py, test_api.py"),
    (3, "a corrupted shard byte makes `gnnsys info` exit 2 naming the file",
     "tests/partition/test_format.py, tests/reliability"),
    (4, "P ranks = one process (float64, 1e-8), GCN/SAGE/GAT/PyG adapter; resume bit for bit",
     "tests/train"),
    (5, "codec unbiased, contained, constant rows exact, wire size, numba = torch bits; "
        "staleness <= s; --bits 32 --staleness 0 exact", "tests/comm/test_codec.py, "
        "test_staleness.py"),
    (6, "preload sends 0 inter-server feature bytes; equals single process with "
        "--ext-fanout -1; batches reshuffled per seed; uneven servers finish",
        "tests/train/test_preload_mode.py (mpirun), test_preload_shard.py, test_batcher.py, "
        "test_sampler.py"),
]


def _check(value: float, goal: float, higher: bool) -> bool:
    return value >= goal if higher else value <= goal


def _partition(res: Optional[dict]) -> List[Row]:
    goal_t, goal_m = "<= 33 s at 1M nodes, 8 parts", "<= 3.5 GiB at 1M nodes"
    if res is None:
        return [Row(3, "partition 1M nodes / 20M edges, 8 parts: wall", NOT_MEASURED, goal_t),
                Row(3, "... peak RSS", NOT_MEASURED, goal_m),
                Row(3, "cost grows linearly with N (ns/edge, largest/smallest size)",
                    NOT_MEASURED, "~1 (linear)"),
                Row(3, "balance on owned nodes (max/mean)", NOT_MEASURED, "<= 1.05")]
    rows = [r for r in res["rows"] if "error" not in r["gnnsys"]]
    out = []
    big = max(rows, key=lambda r: r["nodes"], default=None)
    # the time and memory targets are set at 1M nodes: judge the run nearest to 1M
    at = min(rows, key=lambda r: abs(r["nodes"] - 1_000_000), default=None)
    for key, label, goal, limit in (("wall_s", "wall", goal_t, 33.0),
                                    ("peak_rss_gib", "peak RSS", goal_m, 3.5)):
        if at is None:
            out.append(Row(3, f"partition, 8 parts: {label}", "failed", goal))
            continue
        g, d = at["gnnsys"], at.get("dgl", {})
        peer = (f"DGL partition_graph {d[key]:.2f}" if key in d and "error" not in d
                else "DGL: " + (d.get("skipped") or d.get("error", "-")))
        at_1m = at["nodes"] == 1_000_000
        out.append(Row(3, f"partition {at['nodes']:,} nodes / {at['edges']:,} edges, 8 parts:"
                       f" {label}", f"{g[key]:.2f}", goal, peer,
                       _check(g[key], limit, False) if at_1m else None,
                       "" if at_1m else "no run at 1M nodes: target not applicable"))
    if len(rows) >= 2:
        small = min(rows, key=lambda r: r["nodes"])
        growth = (big["gnnsys"]["wall_s"] / big["edges"]) / \
            (small["gnnsys"]["wall_s"] / small["edges"])
        exponent = math.log(big["gnnsys"]["wall_s"] / small["gnnsys"]["wall_s"]) / \
            math.log(big["edges"] / small["edges"])
        stages = [r["gnnsys"].get("total_s") for r in (big, small)]
        note = (f"stages alone (load, METIS, relabel, write; no process start-up) "
                f"{(stages[0] / big['edges']) / (stages[1] / small['edges']):.2f}x"
                if all(stages) else "")
        out.append(Row(3, f"cost per edge, {big['nodes']:,} vs {small['nodes']:,} nodes (wall)",
                       f"{growth:.2f}x (time ~ E^{exponent:.2f})",
                       "~1 (linear; <= 1.5 counted as met)", "-", growth <= 1.5, note))
    else:
        out.append(Row(3, "cost grows linearly with N", NOT_MEASURED, "~1 (linear)",
                       note="needs two sizes"))
    worst = max((r["gnnsys"]["balance_owned"] for r in rows), default=None)
    out.append(Row(3, "balance on owned nodes (max/mean, worst size)",
                   NOT_MEASURED if worst is None else f"{worst:.3f}", "<= 1.05", "-",
                   None if worst is None else worst <= 1.05))
    return out


def _compute(res: Optional[dict]) -> List[Row]:
    from gnnsys.bench.compute import fastest_peer, speed_ratio

    out = []
    for kind in ("gcn", "sage"):
        label = f"compute per epoch, 1 rank, {kind.upper()} hidden 256: gnnsys / fastest peer"
        if res is None:
            out.append(Row(4, label, NOT_MEASURED, "<= 1.0"))
            continue
        ratio, peer = speed_ratio(res, kind), fastest_peer(res, kind)
        mine = res["models"][f"gnnsys-{kind}"]["median_s"]
        cfg = res["config"]
        out.append(Row(4, label + f" ({cfg['nodes']:,} nodes / {cfg['edges']:,} edges)",
                       "-" if ratio is None else f"{ratio:.2f} (gnnsys {mine:.2f} s)", "<= 1.0",
                       f"C = {mine:.2f} s; fastest peer {peer[0]} {peer[1]:.2f} s" if peer
                       else "no peer ran", None if ratio is None else ratio <= 1.0,
                       "ratio inside each process (PyG here, DGL in .venv-dgl)"))
    return out


def _exchange(res: Optional[dict]) -> List[Row]:
    specs = [
        (4, "fp32", "fp32 sync epoch / bound C + B/W", "ratio", f"<= {EX['bound_ratio']}",
         EX["bound_ratio"], False),
        (5, "1bit", "fp32 / 1-bit inter-host bytes (hidden 256)", "bytes_ratio",
         f">= {EX['bytes_ratio']:g}x", EX["bytes_ratio"], True),
        (5, "1bit-pipeline", "1-bit + pipeline speed-up over fp32 sync", "speedup",
         f">= {EX['pipeline_speedup']:g}x", EX["pipeline_speedup"], True),
        (5, "1bit-pipeline", "1-bit + pipeline epoch / bound max(C, B/W) + Q", "ratio",
         f"<= {EX['bound_ratio']}", EX["bound_ratio"], False),
        (6, "preload", "preload (f = 15) epoch / fp32 sync epoch", "inverse_speedup",
         f"<= {EX['preload_vs_fp32']}", EX["preload_vs_fp32"], False),
    ]
    out = []
    for issue, key, label, field, goal, limit, higher in specs:
        rows = rows_of(res, key) if res else {}
        if not rows:
            why = (res.get("skipped", {}).get(key, "setting not in this run's --settings")
                   if res else "")
            out.append(Row(issue, label, NOT_MEASURED, goal, note=why))
            continue
        for rate, row in rows.items():
            if "error" in row or "speedup" not in row:
                out.append(Row(issue, f"{label} @ {rate}", "failed", goal,
                               note=row.get("error", "no fp32 baseline")))
                continue
            value = 1 / row["speedup"] if field == "inverse_speedup" else row[field]
            note = _weights_note(row) if field == "bytes_ratio" else ""
            out.append(Row(issue, f"{label} @ {rate}", f"{value:.2f}", goal,
                           _exchange_bound(res, rate, row, field), _check(value, limit, higher),
                           "; ".join(n for n in (row.get("note", ""), note) if n)))
        if key == "1bit" and field == "bytes_ratio" and res.get("bytes_at_scale"):
            out.append(_bytes_at_scale(res, label, goal))
    return out


def _bytes_at_scale(res: dict, label: str, goal: str) -> Row:
    """The bytes target on ``synthetic:200000`` (the exchange suite's ``bytes_at_scale``)."""
    scale = res["bytes_at_scale"]
    row = next((r for r in scale["rows"] if r["key"] == "1bit"), {})
    label = f"{label} @ synthetic:{scale['nodes']}"
    if "bytes_ratio" not in row:
        return Row(5, label, "failed", goal, note=row.get("error", "no fp32 baseline"))
    return Row(5, label, f"{row['bytes_ratio']:.2f}", goal,
               _exchange_bound(res, "", row, "bytes_ratio"),
               row["bytes_ratio"] >= EX["bytes_ratio"], _weights_note(row))


def _weights_note(row: dict) -> str:
    """What share of a setting's inter-host bytes the (full-precision) weight all-reduce is."""
    weights = row["inter_bytes"]["weight_grads"] / max(row["inter_bytes_total"], 1)
    return f"the weight all-reduce is {100 * weights:.0f} % of these bytes"


def _exchange_bound(res: dict, rate: str, row: dict, field: str) -> str:
    """The model's figure for an exchange target: the bound in seconds, or the model's ratio."""
    if field == "ratio":
        return f"bound {row['bound_s']:.2f} s (C {row['compute_s']:.2f}, B/W {row['link_s']:.2f}" \
               f", Q {row['codec_s']:.2f})"
    if field == "bytes_ratio":
        d = res["config"]["hidden"]
        return f"model 32d/(d+32) = {32 * d / (d + 32):.1f}x on halo rows; halo only " \
               f"{row['halo_bytes_ratio']:.1f}x"
    base = rows_of(res, "fp32").get(rate, {})
    if "bound_s" in base:
        model = base["bound_s"] / row["bound_s"]
        shown = model if field == "speedup" else 1 / model
        return f"model {shown:.2f} (bounds {base['bound_s']:.2f} s / {row['bound_s']:.2f} s)"
    return "-"


def _accuracy(res: Optional[dict]) -> List[Row]:
    from gnnsys.bench.accuracy import PYG, TARGETS as ACC, synthetic_with

    results = (res or {}).get("results", {})
    out = []
    for dataset in ("cora", "citeseer"):
        label = f"GCN {dataset} test accuracy, 4 ranks, mean of seeds"
        goal = f">= {ACC[dataset]}"
        fp32 = results.get(dataset, {}).get("fp32")
        if fp32 is None:
            out.append(Row(4, label, NOT_MEASURED, goal))
            continue
        n = len(fp32["test_acc"])
        out.append(Row(4, f"{label} ({n})", f"{fp32['mean']:.4f} ± {fp32['std']:.4f}", goal,
                       f"Kipf & Welling {res['published'][dataset]}", fp32["mean"] >= ACC[dataset],
                       "" if n >= 5 else "fewer than the 5 seeds the target asks"))
    out.append(_vs_pyg(results, synthetic_with(results, PYG)))
    for dataset in ("cora", "citeseer", synthetic_with(results, "1bit-pipeline")):
        label = f"1-bit + pipeline vs fp32 sync accuracy, {dataset or 'a synthetic graph'}"
        pipe = results.get(dataset, {}).get("1bit-pipeline")
        if pipe is None:
            out.append(Row(5, label, NOT_MEASURED, f"within {ACC['pp_vs_fp32']} pp"))
            continue
        out.append(Row(5, f"{label} ({len(pipe['test_acc'])} seeds)",
                       f"{pipe['pp_vs_fp32']:+.2f} pp", f"within {ACC['pp_vs_fp32']} pp", "-",
                       abs(pipe["pp_vs_fp32"]) <= ACC["pp_vs_fp32"]))
    return out


def _vs_pyg(results: dict, dataset: Optional[str]) -> Row:
    """Issue 4's row: gnnsys fp32 (4 ranks) minus single-process PyG on ``dataset``; met is
    judged on synthetic:200000 only (another synthetic graph is shown without it)."""
    from gnnsys.bench.accuracy import PYG, PYG_DATASET as target, TARGETS as ACC

    limit = ACC["pp_vs_pyg"]
    goal = f"within {limit} pp"
    if dataset is None:
        return Row(4, f"{target} accuracy vs single-process PyG (gnnsys fp32 - PyG)",
                   NOT_MEASURED, goal, note="`gnnsys bench accuracy` (in its default datasets)")
    fp32, pyg = results[dataset]["fp32"], results[dataset][PYG]
    n, gap = len(pyg["test_acc"]), -pyg["pp_vs_fp32"]
    notes = ([] if dataset == target else [f"target is on {target}"]) + \
        ([] if n >= 5 else [f"{n} seed(s); the issue's other accuracy targets use 5 "
                            "(--seeds 5)"])
    return Row(4, f"{dataset} accuracy vs single-process PyG, {n} seeds (gnnsys fp32 4 ranks "
               "- PyG)", f"{gap:+.2f} pp (gnnsys {fp32['mean']:.4f})",
               goal, f"PyG {pyg['mean']:.4f} ± {pyg['std']:.4f}",
               abs(gap) <= limit if dataset == target else None, "; ".join(notes))


def _codec(res: Optional[dict]) -> List[Row]:
    from gnnsys.bench.codec import headline

    row = headline(res) if res else {}
    out = []
    for key, label, goal in (("encode_gbps", "codec quantize+pack, 1 bit, d = 256, 1 core",
                              1.0),
                             ("decode_gbps", "codec unpack, 1 bit, d = 256, 1 core", 2.0)):
        if not row:
            out.append(Row(5, label, NOT_MEASURED, f">= {goal} GB/s"))
            continue
        out.append(Row(5, label, f"{row[key]:.2f} GB/s", f">= {goal} GB/s",
                       f"memcpy {row['memcpy_gbps']:.2f} GB/s", row[key] >= goal))
    return out


def _memory(res: Optional[dict]) -> List[Row]:
    label = "peak RSS per rank, P = 4 / P = 1"
    four = (res or {}).get("results", {}).get("4")
    if four is None:
        return [Row(4, label + ", synthetic:1000000", NOT_MEASURED, "<= 0.35")]
    return [Row(4, f"{label}, {res['config']['dataset']}", f"{four['ratio']:.3f}", "<= 0.35",
                f"rows held per rank / N = {four['rows_share']:.2f} (replication "
                f"{four['replication_factor']:.2f} / 4)", four["ratio"] <= 0.35)]


def _batching(res: Optional[dict]) -> List[Row]:
    """Issue 6 accuracy rows per dataset (the two the issue names, and any other run):
    minibatch vs full-graph, preload f = 15 vs exact, preload full closure = exact."""
    from gnnsys.bench.batching import DATASETS, EQUAL_ACC, EQUAL_LOSS, TARGET_PP, meets_target

    results = (res or {}).get("results", {})
    goal = f"within {TARGET_PP:g} pp (at most {TARGET_PP:g} pp below)"
    out = []
    for dataset in dict.fromkeys([*DATASETS, *results]):
        per = results.get(dataset, {})
        note = "" if dataset in DATASETS else "a dataset the issue does not name"
        for key, label in (("minibatch", "minibatch (1024, fanouts 10,25) vs full-graph "
                            "accuracy"), ("preload-f15", "preload (f = 15) vs exact accuracy")):
            row = per.get(key, {})
            if "pp_vs_exact" not in row:
                out.append(Row(6, f"{label}, {dataset}", NOT_MEASURED, goal, note=note))
                continue
            exact = per["exact"]
            out.append(Row(6, f"{label}, {dataset} ({_seeds(row)})",
                           f"{row['pp_vs_exact']:+.2f} pp ({row['mean']:.4f})", goal,
                           f"exact {exact['mean']:.4f} ± {exact['std']:.4f}",
                           meets_target(row["pp_vs_exact"]), note))
        full = per.get("preload-full", {})
        label = f"preload, full closure (--ext-fanout -1) = exact, {dataset}"
        goal_eq = f"equal up to float32 rounding (acc diff <= {EQUAL_ACC:g}, loss diff <= " \
            f"{EQUAL_LOSS:g})"
        if "max_abs_acc_diff_vs_exact" not in full:
            out.append(Row(6, label, NOT_MEASURED, goal_eq, note=note))
            continue
        acc, loss = full["max_abs_acc_diff_vs_exact"], full["max_abs_loss_diff_vs_exact"]
        out.append(Row(6, f"{label} ({_seeds(full)})",
                       f"max acc diff {acc:.4f}, max loss diff {loss:.1e}", goal_eq, "-",
                       acc <= EQUAL_ACC and loss <= EQUAL_LOSS,
                       "; ".join(filter(None, [note, "float64 exactness: tests"]))))
    return out


def _seeds(row: dict) -> str:
    n = len(row["seeds"])
    return f"{n} seed{'s' if n != 1 else ''}"


def _preload(res: Optional[dict]) -> List[Row]:
    """Issue 6 memory rows: "resident once" as a server's memory with 2 workers over the same
    server run by 1 worker (summed USS, the issue's measure, and PSS, next to a copy of the
    preload per worker), and, for information, two workers over one of them (~2 by
    construction)."""
    from gnnsys.bench.preload import TARGET, headline

    uss = ("preload resident once: summed USS of a server's two workers / USS of the same "
           "server run by one worker")
    pss = "server memory, 2 workers (summed PSS) / 1 worker (its PSS), same server and preload"
    halves = "summed USS of a server's two workers / one of them"
    goal = f"<= {TARGET:g}"
    if res is None:
        return [Row(6, f"{target}, synthetic:1000000", NOT_MEASURED, goal)
                for target in (uss, pss)]
    h, cfg = headline(res), res["config"]
    big = int(cfg["dataset"].split(":")[1]) >= 1_000_000
    scale = "" if big else "below 1M nodes: target not applicable; "
    same = "" if cfg["same_server_nodes"] else "; WARNING: the layouts' servers differ"
    one = "1 worker = the same server partition with --parts 2 --servers 2"
    return [
        Row(6, f"{uss}, {cfg['dataset']} (worst server, end of training)",
            f"{h['uss_ratio']:.2f}", goal, "-", h["uss_ratio"] <= TARGET if big else None,
            scale + one + same),
        Row(6, f"{pss}, {cfg['dataset']} (worst server, end of training)",
            f"{h['pss_ratio']:.2f}", goal,
            f"a copy of the preload per worker: {h['copy_ratio']:.2f} (estimate: + the "
            "preload files once more per extra worker)",
            h["pss_ratio"] <= TARGET if big else None,
            scale + f"without the per-process runtime (Python, torch, MPI): "
            f"{h['data_ratio']:.2f}" + same),
        Row(6, f"{halves}, {cfg['dataset']} (worst server, end of training)",
            f"{h['sum_uss_over_one_uss']:.2f}", "information, not a target",
            "~2 by construction (2 equal workers, each holds half the server)", None,
            "each preload row is held by exactly one worker of its server (split, not "
            "copied), so two symmetric workers sum to ~2x one of them"),
    ]


SOURCES: Dict[str, Callable[[Optional[dict]], List[Row]]] = {
    "partition": _partition, "compute": _compute, "memory": _memory, "codec": _codec,
    "exchange": _exchange, "accuracy": _accuracy, "batching": _batching,
    "preload": _preload}


def evaluate(results: Dict[str, dict]) -> List[Row]:
    """Return every target row, issue by issue, from ``{suite: result}`` (missing suites give
    "not measured" rows)."""
    rows = []
    for suite, fn in SOURCES.items():
        for row in fn(results.get(suite)):
            if results.get(suite, {}).get("quick") and row.measured != NOT_MEASURED:
                row.note = "quick run (small sizes)" + (f"; {row.note}" if row.note else "")
            rows.append(row)
    return sorted(rows, key=lambda r: r.issue)
