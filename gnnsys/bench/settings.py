"""The training settings the exchange suite compares: one entry each, added in one line.

A :class:`Setting` is the ``gnnsys train`` flags of one way to train, the partition it needs
(extra ``gnnsys partition`` flags; settings with the same ones share a partition), whether it
is pipelined (its bound is ``max(C, B/W) + Q`` instead of ``C + Q + B/W``) and, for settings
whose flags are still being wired in, the ``gnnsys train`` flag it needs: where ``gnnsys train
--help`` lacks it, the setting is skipped with a note.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from gnnsys.bench.common import gnnsys_cmd
from gnnsys.errors import UserError

SYNC_EVERY = 10  # the pipelined settings' exact synchronous epoch, one in SYNC_EVERY


@dataclass(frozen=True)
class Setting:
    """One compared way to train.

    Attributes:
        key: short name for ``--settings``.
        label: name in tables and plots.
        train_flags: extra ``gnnsys train`` flags.
        partition_flags: extra ``gnnsys partition`` flags (``{layers}`` is replaced by the
            model depth).
        pipelined: overlaps exchange with compute (bound ``max(C, B/W) + Q``).
        needs: a ``gnnsys train`` flag this setting needs (skipped when absent).
        quick: part of the default settings of a ``--quick`` run.
        what: what it buys and when, one sentence for the report.
    """

    key: str
    label: str
    train_flags: Tuple[str, ...]
    partition_flags: Tuple[str, ...] = ("--preload-hops", "0")
    pipelined: bool = False
    needs: Optional[str] = None
    quick: bool = True
    what: str = ""


_PIPE = ("--pipeline", "--staleness", "1", "--sync-every", str(SYNC_EVERY))
SETTINGS: Tuple[Setting, ...] = (
    Setting("fp32", "fp32 sync", ("--bits", "32"),
            what="exact (equals single-process training); pays C + B/W per epoch: pick it on "
                 "fast links or when the exchange is small."),
    Setting("1bit", "1-bit sync", ("--bits", "1"),
            what="~25-30x fewer halo bytes at hidden 256 for the codec time Q; unbiased, "
                 "synchronous: pick it when B/W dominates and staleness is unwanted."),
    Setting("1bit-pipeline", "1-bit + pipeline", ("--bits", "1", *_PIPE), pipelined=True,
            what="hides the halo-row exchange behind compute (epoch -> max(C, B1/W) + Q) with "
                 "halo rows at most one epoch old, halo gradients returned within their epoch: "
                 "the fastest on slow links."),
    Setting("1bit-pipeline-stale", "1-bit + pipeline, stale gradients",
            ("--bits", "1", *_PIPE, "--stale-grads"), pipelined=True, quick=False,
            what="PipeGCN's choice: halo gradients travel in the background too, applied one "
                 "epoch later; hides the backward exchange as well, for about 0.25 pp of "
                 "accuracy on synthetic graphs."),
    Setting("inter1bit", "intra fp32 + inter 1-bit", ("--intra-bits", "32", "--inter-bits", "1"),
            what="quantizes only the slow links between hosts: nearly 1-bit's bytes on the "
                 "network with exact rows inside a host."),
    Setting("preload", "preload (f = 15)", ("--mode", "preload"),
            ("--preload-hops", "{layers}", "--ext-fanout", "15"), needs="--mode", quick=False,
            what="no feature traffic between servers at all, only the weight all-reduce, for "
                 "redundant compute on the sampled preload: pick it on the slowest links."),
    Setting("preload-full", "preload (full closure)", ("--mode", "preload"),
            ("--preload-hops", "{layers}", "--ext-fanout", "-1"), needs="--mode", quick=False,
            what="exact preload of the whole L-hop closure: exact training with no inter-server "
                 "feature traffic, for the largest preload and compute."),
)
BY_KEY: Dict[str, Setting] = {s.key: s for s in SETTINGS}
BASELINE = "fp32"


def parse_settings(text: Optional[str], quick: bool = False) -> List[Setting]:
    """Return the settings named in the comma-separated ``text`` (None: all, or the ``quick``
    ones), baseline first; raise :class:`UserError` naming an unknown key."""
    keys = ([k.strip() for k in text.split(",") if k.strip()] if text else
            [s.key for s in SETTINGS if s.quick or not quick])
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        raise UserError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(BY_KEY)}")
    if BASELINE not in keys:
        keys.insert(0, BASELINE)  # every comparison is against fp32 sync
    return [BY_KEY[k] for k in dict.fromkeys([BASELINE, *keys])]


def available(settings: Sequence[Setting]) -> Tuple[List[Setting], Dict[str, str]]:
    """Split ``settings`` into those ``gnnsys train`` supports here and ``key -> note`` for the
    ones skipped because ``gnnsys train --help`` does not list the flag they need."""
    needed = {s.needs for s in settings if s.needs}
    help_text = ""
    if needed:
        help_text = subprocess.run([*gnnsys_cmd(), "train", "--help"], capture_output=True,
                                   text=True, timeout=120).stdout
    keep, skipped = [], {}
    for s in settings:
        if s.needs and s.needs not in help_text:
            skipped[s.key] = f"skipped: `gnnsys train` has no {s.needs} yet"
        else:
            keep.append(s)
    return keep, skipped


def partition_flags(setting: Setting, layers: int) -> List[str]:
    """Return ``setting``'s ``gnnsys partition`` flags with ``{layers}`` filled in."""
    return [flag.replace("{layers}", str(layers)) for flag in setting.partition_flags]
