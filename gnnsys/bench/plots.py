"""Matplotlib (Agg, no display) helpers the suites draw their PNGs with."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple


def subplots(rows: int, cols: int, size: Tuple[float, float] = (5.2, 3.6)):
    """Return ``(fig, axes)`` with ``axes`` a 2-D array, each panel ``size`` inches, on Agg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)


def save(fig, stem: Path, title: Optional[str] = None) -> Path:
    """Give ``fig`` a ``title``, write it to ``<stem>.png`` (110 dpi), close it; return the
    PNG's path."""
    import matplotlib.pyplot as plt

    path = stem.with_name(stem.name + ".png")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bars(ax, labels: Sequence[str], values: Sequence[float], ylabel: str, title: str,
         log: bool = False, notes: Optional[Sequence[str]] = None) -> None:
    """Draw one bar per label on ``ax``, with an optional text ``notes`` above each bar."""
    x = list(range(len(labels)))
    ax.bar(x, values, color="tab:blue")
    for i, note in enumerate(notes or []):
        ax.annotate(note, (i, values[i]), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, ["\n".join(textwrap.wrap(label, 10)) for label in labels], fontsize=7)
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)


def lines(ax, series: Dict[str, Tuple[Sequence[float], Sequence[float]]], xlabel: str,
          ylabel: str, title: str, logx: bool = False, dashed: Sequence[str] = ()) -> None:
    """Draw one line per ``label -> (xs, ys)`` on ``ax``; labels in ``dashed`` are dashed and
    share the colour of the solid line drawn before them with the same prefix."""
    colours: Dict[str, str] = {}
    for label, (xs, ys) in series.items():
        if label in dashed:
            base = next((c for name, c in colours.items() if label.startswith(name)), None)
            ax.plot(xs, ys, linestyle="--", color=base, label=label, linewidth=1)
        else:
            (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=label)
            colours[label] = line.get_color()
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=5, ncol=2 if len(series) > 6 else 1)
