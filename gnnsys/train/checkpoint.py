"""Atomic checkpoints: model, optimizer, RNG state and epoch, one file per checkpoint.

A checkpoint is written to a temporary file in the same folder, flushed to disk and renamed
to ``ckpt-<epoch>.pt``: a write interrupted half-way (a kill, Ctrl-C, a crash) leaves at most a
stray temporary file, never a damaged checkpoint; the next save removes such leftovers. Loading uses ``torch.load(weights_only=True)``; ``--resume`` takes
the newest checkpoint that loads.
"""
from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Optional

import torch

from gnnsys.errors import UserError

_NAME = re.compile(r"^ckpt-(\d{6,})\.pt$")
_TEMP = re.compile(r"^\.ckpt-\d{6,}\.pt\.tmp-\d+$")
KEEP = 3


def save_checkpoint(folder: str, epoch: int, state: dict) -> Path:
    """Write ``state`` (tensors, numbers, strings, dicts) as ``folder/ckpt-<epoch>.pt``.

    Returns the path. Keeps the newest :data:`KEEP` checkpoints and deletes older ones.
    """
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    final = path / f"ckpt-{epoch:06d}.pt"
    tmp = path / f".{final.name}.tmp-{os.getpid()}"
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with open(tmp, "wb") as fh:
        fh.write(buffer.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(path)
    for old in list_checkpoints(folder)[:-KEEP]:
        old.unlink(missing_ok=True)
    for stray in path.iterdir():  # temporaries of writes that were interrupted
        if _TEMP.match(stray.name):
            stray.unlink(missing_ok=True)
    return final


def list_checkpoints(folder: str) -> list[Path]:
    """Return the complete checkpoint files of ``folder``, oldest first."""
    path = Path(folder)
    if not path.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in path.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def load_bytes(data: bytes, source: str) -> dict:
    """Deserialise checkpoint bytes with ``weights_only=True``; raise :class:`UserError` if bad."""
    try:
        return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise UserError(f"checkpoint {source} cannot be read: {type(exc).__name__}") from None


def newest_checkpoint_bytes(folder: str) -> Optional[tuple[Path, bytes]]:
    """Return ``(path, bytes)`` of the newest checkpoint in ``folder`` that loads, or None.

    A checkpoint that does not load (truncated by a crash of the file system, edited) is
    skipped with a warning so that the previous one is used.
    """
    for path in reversed(list_checkpoints(folder)):
        data = path.read_bytes()
        try:
            load_bytes(data, str(path))
        except UserError as exc:
            print(f"gnnsys: warning: skipping {exc}", flush=True)
            continue
        return path, data
    return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
