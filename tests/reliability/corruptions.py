"""Twenty distinct ways a partition folder gets damaged, each a function ``corrupt(folder)``.

Used by the reliability tests: every one must be refused with one clear line (exit 2), never
trained on. ``rehash`` corruptions also rewrite the manifest's size, sha256 and checksum, as a
careless tool (or an attacker) would, so that only the deeper checks can catch them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from gnnsys.partition.format import MANIFEST, sha256_file, write_manifest


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def _rehash(folder: Path, manifest: dict, *relpaths: str) -> None:
    """Rewrite ``manifest`` with fresh size/sha256 of ``relpaths`` and a valid checksum."""
    for rel in relpaths:
        path = folder / rel
        manifest["files"][rel] = {"size": path.stat().st_size, "sha256": sha256_file(str(path))}
    manifest.pop("checksum", None)
    write_manifest(str(folder), manifest)


def _truncate(rel: str, keep: float):
    def corrupt(folder: Path, other: Path) -> None:
        path = folder / rel
        path.write_bytes(path.read_bytes()[:int(path.stat().st_size * keep)])
    return corrupt


def _flip_byte(rel: str):
    def corrupt(folder: Path, other: Path) -> None:
        path = folder / rel
        data = bytearray(path.read_bytes())
        data[-1] ^= 0x40
        path.write_bytes(bytes(data))
    return corrupt


def _delete(rel: str):
    def corrupt(folder: Path, other: Path) -> None:
        path = folder / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return corrupt


def _write_manifest_bytes(data: bytes):
    def corrupt(folder: Path, other: Path) -> None:
        (folder / MANIFEST).write_bytes(data)
    return corrupt


def _edit_manifest(edit, rehash: bool):
    def corrupt(folder: Path, other: Path) -> None:
        manifest = _manifest(folder)
        edit(manifest)
        if rehash:
            _rehash(folder, manifest)
        else:
            (folder / MANIFEST).write_text(json.dumps(manifest))
    return corrupt


def _replace_array(rel: str, make):
    """Replace ``rel`` by ``make(old_array)`` and rehash the manifest (a forged but
    self-consistent partition)."""
    def corrupt(folder: Path, other: Path) -> None:
        path = folder / rel
        new = make(np.load(path))
        path.unlink()
        np.save(path, new, allow_pickle=True)
        _rehash(folder, _manifest(folder), rel)
    return corrupt


def _foreign_manifest(folder: Path, other: Path) -> None:
    shutil.copy(other / MANIFEST, folder / MANIFEST)


def _manifest_is_a_folder(folder: Path, other: Path) -> None:
    (folder / MANIFEST).unlink()
    (folder / MANIFEST).mkdir()


def _bad_npy_header(folder: Path, other: Path) -> None:
    rel = "part-1/label.npy"
    path = folder / rel
    data = bytearray(path.read_bytes())
    data[10:20] = b"!!garbage!"
    path.write_bytes(bytes(data))
    _rehash(folder, _manifest(folder), rel)


def _set(key, value):
    def edit(m: dict) -> None:
        m[key] = value
    return edit


def _set_dataset(key, value):
    def edit(m: dict) -> None:
        m["dataset"][key] = value
    return edit


CORRUPTIONS = {
    "truncated feat": _truncate("part-0/feat.npy", 0.5),
    "emptied indices": _truncate("part-1/indices.npy", 0.0),
    "flipped byte in feat": _flip_byte("part-0/feat.npy"),
    "flipped byte in labels": _flip_byte("part-1/label.npy"),
    "missing indptr": _delete("part-0/indptr.npy"),
    "missing shard folder": _delete("part-1"),
    "missing manifest": _delete(MANIFEST),
    "manifest not JSON": _write_manifest_bytes(b"\x00\xffnot json at all"),
    "manifest truncated": lambda f, o: (f / MANIFEST).write_text((f / MANIFEST).read_text()[:100]),
    "manifest edited": _edit_manifest(_set("parts", 3), rehash=False),
    "another format version": _edit_manifest(_set("format_version", 99), rehash=True),
    "manifest of another graph": _foreign_manifest,
    "manifest is a list": _write_manifest_bytes(b"[1, 2, 3]"),
    "manifest without files": _edit_manifest(lambda m: m.pop("files"), rehash=True),
    "manifest is a folder": _manifest_is_a_folder,
    "parts not a number": _edit_manifest(_set("parts", "two"), rehash=True),
    "num_classes negative": _edit_manifest(_set_dataset("num_classes", -1), rehash=True),
    "labels of another dtype": _replace_array("part-0/label.npy", lambda a: a.astype(np.int32)),
    "pickled object array": _replace_array("part-0/feat.npy", lambda a: a.astype(object)),
    "unreadable npy header": _bad_npy_header,
}
