"""The exchange plan of one rank: which owned rows go to which peer, where peers' rows land.

Local rows of part k: ``n_own`` owned rows, then the halo rows grouped by owner part: rows
owned by part p are ``n_own + halo_offsets[p] : n_own + halo_offsets[p + 1]``. The owned rows
part p needs are ``send_index[send_offsets[p] : send_offsets[p + 1]]``, in the order of p's
halo slice for owner k, so a received block is copied into one contiguous slice unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import numpy as np
import torch

from gnnsys.comm.counters import LINKS
from gnnsys.errors import UserError


@dataclass(frozen=True)
class ExchangePlan:
    """Per-peer counts and offsets of one rank's halo exchange (rows, not elements).

    Attributes:
        rank, size: this rank and the number of ranks (= parts).
        n_own, n_halo: owned and halo rows of this rank.
        send_index: int64 tensor [sum(send_counts)]: owned local rows to send, grouped by peer.
        send_counts, send_displs: int64 [size]: rows sent to each peer and their offset in
            ``send_index`` (the packed send buffer).
        recv_counts, recv_displs: int64 [size]: halo rows received from each peer and their
            offset inside the halo block (local row ``n_own + recv_displs[p]``).
        link_of_peer: ``"intra"``/``"inter"`` for every rank.
        peers: ranks this rank sends to or receives from (excluding itself), ascending.
        send_rows_by_link, recv_rows_by_link: total rows sent / received per link class.
    """

    rank: int
    size: int
    n_own: int
    n_halo: int
    send_index: torch.Tensor
    send_counts: np.ndarray
    send_displs: np.ndarray
    recv_counts: np.ndarray
    recv_displs: np.ndarray
    link_of_peer: Tuple[str, ...]
    peers: Tuple[int, ...]
    send_rows_by_link: Dict[str, int]
    recv_rows_by_link: Dict[str, int]

    @classmethod
    def from_arrays(
        cls,
        rank: int,
        n_own: int,
        halo_offsets: np.ndarray,
        send_index: np.ndarray,
        send_offsets: np.ndarray,
        link_of_peer: Sequence[str],
    ) -> "ExchangePlan":
        """Build and check the plan of part ``rank`` from its shard arrays.

        Args:
            rank: this rank (= part id).
            n_own: number of owned rows.
            halo_offsets: int64 [P + 1], halo rows of owner p at ``n_own + halo_offsets[p]``.
            send_index: int64 [n_send], owned local rows to send, grouped by peer.
            send_offsets: int64 [P + 1], rows for peer p at ``send_offsets[p]:[p + 1]``.
            link_of_peer: ``"intra"``/``"inter"`` per rank (e.g. ``[ctx.link_of(p) ...]``).

        Returns:
            The :class:`ExchangePlan`. Raises :class:`UserError` on an inconsistent layout.
        """
        halo_offsets = _offsets("halo_offsets", halo_offsets)
        send_offsets = _offsets("send_offsets", send_offsets)
        size = len(halo_offsets) - 1
        if len(send_offsets) != size + 1 or len(link_of_peer) != size:
            raise UserError(
                f"part {rank}: halo_offsets has {size + 1} entries but send_offsets has "
                f"{len(send_offsets)} and link_of_peer {len(link_of_peer)} (expected P + 1, P)"
            )
        if not 0 <= rank < size:
            raise UserError(f"part {rank} is out of range for {size} parts")
        bad = [link for link in link_of_peer if link not in LINKS]
        if bad:
            raise UserError(f"part {rank}: unknown link class {bad[0]!r} (expected {LINKS})")
        send_index = np.asarray(send_index)
        if send_index.ndim != 1 or send_index.dtype.kind not in "iu":
            raise UserError(f"part {rank}: send_index must be a 1-D integer array")
        if len(send_index) != send_offsets[-1]:
            raise UserError(
                f"part {rank}: send_index has {len(send_index)} rows, "
                f"send_offsets ends at {send_offsets[-1]}"
            )
        if len(send_index) and (send_index.min() < 0 or send_index.max() >= n_own):
            raise UserError(f"part {rank}: send_index has rows outside the {n_own} owned rows")
        send_counts = np.diff(send_offsets)
        recv_counts = np.diff(halo_offsets)
        if send_counts[rank] or recv_counts[rank]:
            raise UserError(f"part {rank}: sends to or receives halo rows from itself")
        peers = tuple(int(p) for p in np.flatnonzero((send_counts > 0) | (recv_counts > 0)))
        return cls(
            rank=rank,
            size=size,
            n_own=int(n_own),
            n_halo=int(halo_offsets[-1]),
            send_index=torch.from_numpy(send_index.astype(np.int64)),
            send_counts=send_counts,
            send_displs=send_offsets[:-1].copy(),
            recv_counts=recv_counts,
            recv_displs=halo_offsets[:-1].copy(),
            link_of_peer=tuple(link_of_peer),
            peers=peers,
            send_rows_by_link=_rows_by_link(send_counts, link_of_peer),
            recv_rows_by_link=_rows_by_link(recv_counts, link_of_peer),
        )


@dataclass(frozen=True)
class RowSubset:
    """The rows one layer's exchange moves when that layer reads only some halo rows.

    Built by :func:`gnnsys.comm.pruning.training_reach` (halo pruning).

    Attributes:
        plan: an :class:`ExchangePlan` over the subset: its ``send_index`` lists the owned rows
            sent to each peer, its ``recv_counts`` the rows received from each, ``n_halo``
            their number.
        halo_pos: int64 tensor ``[plan.n_halo]``: the position of every received row in the
            full halo block (ascending).
    """

    plan: ExchangePlan
    halo_pos: torch.Tensor

    @classmethod
    def of(cls, full: ExchangePlan, send_rows: Sequence[np.ndarray],
           halo_rows: Sequence[np.ndarray]) -> "RowSubset":
        """Return the subset of ``full`` that sends, to every peer q, the rows at positions
        ``send_rows[q]`` of its send slice for q, and receives from every peer p the rows at
        positions ``halo_rows[p]`` of p's halo slice (both ascending, relative to the slice).
        Raises :class:`UserError` when a position lies outside its slice."""
        for name, rows, counts in (("send", send_rows, full.send_counts),
                                   ("halo", halo_rows, full.recv_counts)):
            for peer, (pos, count) in enumerate(zip(rows, counts)):
                if len(pos) and (pos.min() < 0 or pos.max() >= count):
                    raise UserError(f"part {full.rank}: a {name} row for part {peer} lies "
                                    f"outside its {count} rows; the shards do not belong to "
                                    "one partition")
        send_sel = np.concatenate([full.send_displs[q] + np.asarray(rows, dtype=np.int64)
                                   for q, rows in enumerate(send_rows)])
        halo_pos = np.concatenate([full.recv_displs[p] + np.asarray(rows, dtype=np.int64)
                                   for p, rows in enumerate(halo_rows)])
        plan = ExchangePlan.from_arrays(
            full.rank, full.n_own, _counts_to_offsets([len(r) for r in halo_rows]),
            full.send_index.numpy()[send_sel], _counts_to_offsets([len(r) for r in send_rows]),
            full.link_of_peer)
        return cls(plan=plan, halo_pos=torch.from_numpy(halo_pos))


def _counts_to_offsets(counts: Sequence[int]) -> np.ndarray:
    """Return the int64 offsets ``[0, c0, c0 + c1, ...]`` of ``counts``."""
    return np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))]).astype(np.int64)


def _offsets(name: str, offsets: np.ndarray) -> np.ndarray:
    """Return ``offsets`` as int64 after checking it starts at 0 and never decreases."""
    arr = np.asarray(offsets)
    if arr.ndim != 1 or len(arr) < 2 or arr.dtype.kind not in "iu":
        raise UserError(f"{name} must be a 1-D integer array of P + 1 offsets")
    arr = arr.astype(np.int64)
    if arr[0] != 0 or np.any(np.diff(arr) < 0):
        raise UserError(f"{name} must start at 0 and never decrease")
    return arr


def _rows_by_link(counts: np.ndarray, link_of_peer: Sequence[str]) -> Dict[str, int]:
    """Sum per-peer row counts by the link class of each peer."""
    links = np.asarray(link_of_peer)
    return {link: int(counts[links == link].sum()) for link in LINKS}
