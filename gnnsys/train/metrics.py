"""Per-epoch metrics: the JSONL contract and the final summary line.

Each line of ``--metrics run.jsonl`` (written by rank 0) has the keys ``epoch``, ``loss``,
``train_acc``, ``val_acc``, ``test_acc`` (null when not evaluated), ``epoch_s``,
``compute_s``, ``comm_s``, ``comm_wait_s`` (maxima over ranks) and
``bytes = {"intra": {"features", "feature_grads", "weight_grads"}, "inter": {...}}`` (payload
bytes sent, summed over ranks); the training loop adds ``rss_mb`` (resident memory in MiB at
the end of the epoch, the maximum over ranks). Benchmarks and later features read these keys:
extend, never rename. The first line is ``{"config": {...}, "code": "..."}``: the effective
configuration and the fingerprint of the code that trained
(:func:`~gnnsys.train.fingerprint.code_fingerprint`).
"""
from __future__ import annotations

import json
import os
from typing import Optional

from gnnsys.train.fingerprint import code_fingerprint

RECORD_KEYS = ("epoch", "loss", "train_acc", "val_acc", "test_acc", "epoch_s", "compute_s",
               "comm_s", "comm_wait_s", "bytes")


def epoch_record(epoch: int, stats: dict, evaluation: dict) -> dict:
    """Return the JSONL record of one epoch from training stats and (maybe empty) evaluation.

    ``train_acc`` is the accuracy of the training forward pass (with dropout); ``val_acc`` and
    ``test_acc`` come from the evaluation pass, None when the epoch was not evaluated.
    """
    merged = {"epoch": epoch, **stats, "val_acc": evaluation.get("val_acc"),
              "test_acc": evaluation.get("test_acc")}
    record = {key: merged[key] for key in RECORD_KEYS}
    record.update((key, value) for key, value in merged.items() if key not in record)
    return record


class MetricsWriter:
    """Appends one JSON line per epoch to ``path``, flushed at once (survives a crash).

    Args:
        path: the JSONL file; a fresh run truncates it, a resumed run appends.
        config: the effective configuration, written as the first line with the code's
            fingerprint.
        append: append instead of truncating (resume).
    """

    def __init__(self, path: str, config: Optional[dict] = None, append: bool = False):
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self._fh = open(path, "a" if append else "w")
        if config is not None:
            self._write({"config": config, "code": code_fingerprint()})

    def write(self, record: dict) -> None:
        """Write one epoch record."""
        self._write(record)

    def _write(self, obj: dict) -> None:
        self._fh.write(json.dumps(obj) + "\n")
        self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        self._fh.close()


def final_line(result) -> str:
    """Return the one-line summary ``test_acc=... val_acc=... epochs=... time_s=...``."""
    return (f"test_acc={result.test_acc:.4f} val_acc={result.val_acc:.4f} "
            f"epochs={result.epochs} time_s={result.time_s:.2f}")
