"""Byte and time counters of the communication a rank does.

Bytes are payload bytes this rank puts on the wire to another rank, by link class (``intra``:
same server, ``inter``: another server) and kind (``features``: forward halo rows,
``feature_grads``: backward halo gradients, ``weight_grads``: the weight all-reduce).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Dict, Iterator

import numpy as np

if TYPE_CHECKING:
    from gnnsys.comm.bootstrap import DistContext

LINKS = ("intra", "inter")
KINDS = ("features", "feature_grads", "weight_grads")


class ByteCounters:
    """Bytes sent per (link, kind), plus the time spent in communication calls.

    Attributes:
        comm_s: total seconds inside communication calls (starting and finishing them).
        comm_wait_s: seconds blocked waiting for data to arrive; equal to ``comm_s`` for
            synchronous calls, smaller when communication overlaps computation.
        codec_s: seconds spent quantizing, packing and unpacking rows (the codec's own time).
    """

    def __init__(self) -> None:
        self._bytes = np.zeros((len(LINKS), len(KINDS)), dtype=np.int64)
        self.comm_s = 0.0
        self.comm_wait_s = 0.0
        self.codec_s = 0.0

    def add(self, link: str, kind: str, nbytes: int) -> None:
        """Count ``nbytes`` (>= 0) sent over ``link`` (intra/inter) as ``kind``."""
        if link not in LINKS or kind not in KINDS:
            raise ValueError(f"unknown counter ({link!r}, {kind!r}); links {LINKS}, kinds {KINDS}")
        if nbytes < 0:
            raise ValueError(f"negative byte count {nbytes} for ({link}, {kind})")
        self._bytes[LINKS.index(link), KINDS.index(kind)] += int(nbytes)

    def as_dict(self) -> Dict[str, Dict[str, int]]:
        """Return ``{"intra": {"features": n, "feature_grads": n, "weight_grads": n},
        "inter": {...}}`` with this rank's byte counts (the metrics JSONL shape)."""
        return _to_dict(self._bytes)

    def timers(self) -> Dict[str, float]:
        """Return ``{"comm_s": s, "comm_wait_s": s, "codec_s": s}`` of this rank."""
        return {"comm_s": self.comm_s, "comm_wait_s": self.comm_wait_s, "codec_s": self.codec_s}

    def reset(self) -> None:
        """Set every byte count and timer back to zero."""
        self._bytes[:] = 0
        self.comm_s = 0.0
        self.comm_wait_s = 0.0
        self.codec_s = 0.0

    def reduce_sum(self, ctx: "DistContext") -> Dict[str, Dict[str, int]]:
        """Return the byte counts summed over all ranks, shaped like :meth:`as_dict`.

        Collective: every rank must call it.
        """
        return _to_dict(ctx.allreduce_sum(self._bytes))

    @contextmanager
    def codec_timed(self) -> Iterator[None]:
        """Time the enclosed encoding or decoding into ``codec_s``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.codec_s += time.perf_counter() - start

    @contextmanager
    def timed(self, blocking: bool = True) -> Iterator[None]:
        """Time the enclosed communication call into ``comm_s`` (and ``comm_wait_s`` when
        ``blocking``: the call waits for data, as every synchronous exchange does)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.comm_s += elapsed
            if blocking:
                self.comm_wait_s += elapsed


def _to_dict(table: np.ndarray) -> Dict[str, Dict[str, int]]:
    """Turn a [links, kinds] int64 table into the nested ``as_dict`` shape."""
    return {
        link: {kind: int(table[i, j]) for j, kind in enumerate(KINDS)}
        for i, link in enumerate(LINKS)
    }
