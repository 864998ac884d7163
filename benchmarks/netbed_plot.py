"""Plot the results of ``netbed_bench.py``: epoch time (with the model bound) and inter-host
bytes per setting, one row of two panels per link rate.

    python benchmarks/netbed_plot.py bench/netbed-<date>.json [out.png]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def plot(results: dict, png: Path) -> Path:
    """Draw ``results`` (the JSON of netbed_bench.py) into ``png``; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = list(results["rates"])
    fig, axes = plt.subplots(len(rates), 2, figsize=(11, 3.6 * len(rates)), squeeze=False)
    for (ax_t, ax_b), rate in zip(axes, rates):
        rows = [r for r in results["rates"][rate]["rows"] if "bytes_ratio" in r]
        names = [r["setting"].replace(" + ", "\n+ ") for r in rows]
        x = range(len(rows))
        ax_t.bar(x, [r["epoch_s"] for r in rows], color="tab:blue", label="measured")
        if any("epoch_s_amortised" in r for r in rows):
            xs = [i for i, r in enumerate(rows) if "epoch_s_amortised" in r]
            ax_t.scatter(xs, [rows[i]["epoch_s_amortised"] for i in xs], marker="o",
                         color="tab:orange", zorder=3, label="amortised (1 sync in 10)")
        ax_t.scatter(x, [r["bound_s"] for r in rows], marker="_", s=900, linewidths=3,
                     color="black", zorder=3, label="bound (DESIGN.md)")
        ax_t.set_xticks(list(x), names, fontsize=8)
        ax_t.set_ylabel("s / epoch")
        ax_t.set_title(f"{rate}: epoch time (W = {results['rates'][rate]['link_mb_s']:.0f} MB/s)")
        ax_t.legend(fontsize=7, markerscale=0.4, loc="lower right")
        ax_b.bar(x, [r["inter_bytes_total"] / 1e6 for r in rows], color="tab:green")
        for i, r in enumerate(rows):
            ax_b.annotate(f"{r['bytes_ratio']:.1f}x", (i, r["inter_bytes_total"] / 1e6),
                          ha="center", va="bottom", fontsize=8)
        ax_b.set_yscale("log")
        ax_b.set_xticks(list(x), names, fontsize=8)
        ax_b.set_ylabel("inter-host MB / epoch (all ranks)")
        ax_b.set_title(f"{rate}: inter-host bytes (fewer than fp32 by)")
    fig.suptitle(f"synthetic:{results['nodes']}, {results['hosts']} hosts x "
                 f"{results['ranks_per_host']} ranks, GCN {' '.join(results['common_flags'][:4])}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: netbed_plot.py RESULTS.json [OUT.png]")
    src = Path(sys.argv[1])
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else src.with_suffix(".png")
    print(plot(json.loads(src.read_text()), dst))
