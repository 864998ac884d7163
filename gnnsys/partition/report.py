"""Partition quality: edge cut, balance, replication, per part and per server; as a table.

Definitions (E = directed edges of the canonical graph, N = nodes):

* edge cut: edges whose source and destination lie in different parts (count and / E);
* balance of a quantity: max over parts / mean over parts (1.0 = perfect);
* replication factor: sum over parts of (owned + halo rows) / N (1.0 = no halo at all);
* per server (two-level): owned nodes, in-edges, train nodes, in-edges from other servers and
  the distinct rows the server needs from other servers (its 1-hop halo); with a preload,
  its rows / edges / bytes next to those of the full L-hop closure.
"""
from __future__ import annotations

from typing import Optional, Sequence


def _balance(values: Sequence[int]) -> float:
    mean = sum(values) / len(values)
    return float(max(values) / mean) if mean > 0 else 1.0


def make_report(part_stats: list[dict], server_halo: list[int], part_server: Sequence[int],
                num_nodes: int, num_edges: int, preload: Optional[list[dict]] = None) -> dict:
    """Return the quality report (a JSON-able dict) of a partition.

    ``part_stats``: per part ``owned``, ``in_edges``, ``halo``, ``train``, ``cut_in_edges``,
    ``cross_server_in_edges`` (as :func:`gnnsys.partition.shard.build_shards` returns);
    ``server_halo``: per server, distinct rows needed from other servers; ``preload``: per
    server preload stats (as :func:`gnnsys.partition.preload.build_preloads` returns), or None.
    """
    parts = [dict(stats, part=k, server=int(part_server[k])) for k, stats in enumerate(part_stats)]
    cut = sum(p["cut_in_edges"] for p in parts)
    report = {
        "parts": parts,
        "edge_cut": cut,
        "edge_cut_fraction": cut / num_edges if num_edges else 0.0,
        "balance": {key: _balance([p[key] for p in parts])
                    for key in ("owned", "in_edges", "train")},
        "replication_factor": sum(p["owned"] + p["halo"] for p in parts) / num_nodes,
    }
    num_servers = len(server_halo)
    if num_servers > 1:
        servers = []
        for s in range(num_servers):
            members = [p for p in parts if p["server"] == s]
            servers.append({"server": s, "parts": [p["part"] for p in members],
                            "remote_rows": server_halo[s],
                            **{key: sum(p[key] for p in members) for key in
                               ("owned", "in_edges", "train", "cross_server_in_edges")}})
            if preload:
                servers[-1]["preload"] = {k: v for k, v in preload[s].items() if k != "server"}
        server_cut = sum(s["cross_server_in_edges"] for s in servers)
        report.update(servers=servers, server_edge_cut=server_cut,
                      server_edge_cut_fraction=server_cut / num_edges if num_edges else 0.0,
                      server_balance={key: _balance([s[key] for s in servers])
                                      for key in ("owned", "in_edges", "train")})
    return report


def _table(header: Sequence[str], rows: list[Sequence]) -> list[str]:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return [lines[0], "  ".join("-" * w for w in widths)] + lines[1:]


def format_report(report: dict) -> str:
    """Return ``report`` (from :func:`make_report`) as a readable text table."""
    lines = _table(("part", "server", "owned", "in-edges", "halo", "train", "cut in-edges"),
                   [(p["part"], p["server"], p["owned"], p["in_edges"], p["halo"], p["train"],
                     p["cut_in_edges"]) for p in report["parts"]])
    bal = report["balance"]
    lines += ["",
              f"edge cut: {report['edge_cut']} ({100 * report['edge_cut_fraction']:.2f}% of edges)",
              f"balance (max/mean): owned {bal['owned']:.3f}, in-edges {bal['in_edges']:.3f}, "
              f"train {bal['train']:.3f}",
              f"replication factor: {report['replication_factor']:.3f}"]
    if "servers" in report:
        lines += [""] + _table(
            ("server", "parts", "owned", "in-edges", "train", "cross-server in-edges",
             "remote rows"),
            [(s["server"], ",".join(map(str, s["parts"])), s["owned"], s["in_edges"],
              s["train"], s["cross_server_in_edges"], s["remote_rows"]) for s in report["servers"]])
        sbal = report["server_balance"]
        lines += [f"cross-server edge cut: {report['server_edge_cut']} "
                  f"({100 * report['server_edge_cut_fraction']:.2f}% of edges); server balance: "
                  f"owned {sbal['owned']:.3f}, in-edges {sbal['in_edges']:.3f}, "
                  f"train {sbal['train']:.3f}"]
        if "preload" in report["servers"][0]:
            first = report["servers"][0]["preload"]
            fanout = "all" if first["ext_fanout"] < 0 else first["ext_fanout"]
            lines += ["", f"preload: {first['hops']} hops, external fanout {fanout} "
                      "(full = the exact closure)"] + _table(
                ("server", "preload rows", "edges", "MiB", "full rows", "full edges",
                 "full MiB", "seconds"),
                [(s["server"], p["rows"], p["edges"], f"{p['bytes'] / 2**20:.1f}",
                  p["full_rows"], p["full_edges"], f"{p['full_bytes'] / 2**20:.1f}",
                  f"{p['seconds']:.2f}")
                 for s, p in ((s, s["preload"]) for s in report["servers"])])
    return "\n".join(lines)
