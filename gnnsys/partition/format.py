"""The on-disk partition format (version 1): what ``gnnsys partition`` writes and trainers read.

A partition of a graph with N nodes into P parts is one folder::

    <out>/
      manifest.json        format version, dataset, config, quality report, size + sha256 of
                           every file below, and a checksum of the manifest itself
      assignment.npy       int64 [N]: the part of every global node
      part-<k>/            one shard per part k = 0 .. P-1 (every array a plain .npy, so it
                           opens with np.load(..., mmap_mode='r'))
      server-<s>/          optional (S > 1, manifest key ``preload``: hops, ext_fanout, seed):
                           server s's preloaded external dependencies, layout in
                           :mod:`gnnsys.partition.preload`; older readers ignore it

Shard ``part-<k>/`` (n_own owned rows, n_halo halo rows, local rows = owned then halo):

* ``owned.npy`` int64 [n_own]: global IDs of the nodes part k owns, ascending.
* ``halo.npy`` int64 [n_halo]: global IDs of the halo rows (sources of in-edges of owned
  nodes that other parts own), grouped by owner part ascending, ascending within an owner.
* ``halo_offsets.npy`` int64 [P+1]: the halo rows owned by part p are local rows
  ``n_own + halo_offsets[p] : n_own + halo_offsets[p+1]`` (empty for p == k).
* ``indptr.npy`` int64 [n_own+1], ``indices.npy`` int64 [E_k]: in-edge CSR of the owned rows,
  sources as LOCAL IDs (``0 .. n_own-1`` = owned rows in ``owned`` order, ``n_own + j`` = halo
  row j), each row in the order of the global row (sources ascending by global ID).
* ``send_index.npy`` int64 [sum], ``send_offsets.npy`` int64 [P+1]: the owned local rows that
  part p needs are ``send_index[send_offsets[p]:send_offsets[p+1]]``, in exactly the order of
  p's halo slice for owner k (a receiver copies one contiguous block, no scatter).
* ``feat.npy`` float32 [n_own, F], ``label.npy`` int64 [n_own], ``train_mask.npy``,
  ``val_mask.npy``, ``test_mask.npy`` bool [n_own], ``orig_ids.npy`` int64 [n_own].
* ``in_deg.npy``, ``out_deg.npy`` int64 [n_own + n_halo]: GLOBAL in/out degrees of every local
  row (owned then halo); normalisation must use these, never the local degrees.

The writer builds everything in a hidden sibling folder and renames it into place at the end,
so an interrupted run never leaves a folder that looks valid. Readers refuse (with
:class:`PartitionError`, naming the file) a missing or edited manifest, another format version,
and any file whose size, sha256, dtype or shape differs from what the manifest promises.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, Optional, Sequence

import numpy as np

from gnnsys.errors import UserError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNK_BYTES = 16 << 20

#: dtype and trailing shape of every shard array (the leading dimension is checked apart).
SHARD_ARRAYS = {
    "owned": np.int64, "halo": np.int64, "halo_offsets": np.int64, "indptr": np.int64,
    "indices": np.int64, "send_index": np.int64, "send_offsets": np.int64,
    "feat": np.float32, "label": np.int64, "train_mask": np.bool_, "val_mask": np.bool_,
    "test_mask": np.bool_, "orig_ids": np.int64, "in_deg": np.int64, "out_deg": np.int64,
}


class PartitionError(UserError):
    """A partition folder that cannot be used: missing, edited, corrupted or of another version."""


def part_dir(part: int) -> str:
    """Return the folder name of shard ``part`` (``part-<k>``)."""
    return f"part-{part}"


class ArrayWriter:
    """Writes ``.npy`` files under ``root`` and records each file's size and sha256.

    The hash is computed while writing, so no file is read back. ``files`` maps the path
    relative to ``root`` (``/``-separated) to ``{"size": bytes, "sha256": hex}``.
    """

    def __init__(self, root: str):
        self.root = root
        self.files: dict[str, dict] = {}

    def save(self, relpath: str, array: np.ndarray) -> None:
        """Write ``array`` (any dtype/shape, C order) to ``root/relpath`` as one ``.npy``."""
        array = np.ascontiguousarray(array)
        self.save_chunks(relpath, array.shape, array.dtype, [array])

    def save_chunks(self, relpath: str, shape: tuple, dtype, chunks: Iterable[np.ndarray]) -> None:
        """Write a ``.npy`` of ``shape``/``dtype`` whose rows arrive in ``chunks`` (in order).

        Only one chunk sits in memory at a time; raises ``ValueError`` if the chunks do not add
        up to ``shape``.
        """
        dtype = np.dtype(dtype)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {
            "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
            "shape": tuple(int(s) for s in shape)})
        digest = hashlib.sha256(header.getvalue())
        expected = header.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        path = os.path.join(self.root, relpath)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(header.getvalue())
            for chunk in chunks:
                data = memoryview(np.ascontiguousarray(chunk, dtype=dtype)).cast("B")
                digest.update(data)
                f.write(data)
            size = f.tell()
        if size != expected:
            raise ValueError(f"{relpath}: wrote {size} bytes, expected {expected}")
        self.files[relpath] = {"size": size, "sha256": digest.hexdigest()}


def sha256_file(path: str) -> str:
    """Return the sha256 (hex) of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest_checksum(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_manifest(folder: str, manifest: dict) -> None:
    """Write ``manifest`` (a JSON-able dict) to ``folder/manifest.json`` with its own checksum.

    ``manifest`` must hold ``format_version``, ``parts``, ``servers``, ``part_server``,
    ``dataset`` and ``files`` (see :func:`gnnsys.partition.api.partition_graph`).
    """
    manifest = dict(manifest, checksum=_manifest_checksum(manifest))
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")


def load_manifest(folder: str) -> dict:
    """Read and check ``folder/manifest.json``; return it as a dict.

    Raises :class:`PartitionError` naming the file when the folder or manifest is missing,
    the JSON is garbled, the manifest was edited (checksum) or its format version differs
    from :data:`FORMAT_VERSION`.
    """
    path = os.path.join(folder, MANIFEST)
    if not os.path.isdir(folder):
        raise PartitionError(f"{folder}: no such partition folder")
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise PartitionError(f"{path}: missing (not a gnnsys partition folder?)") from None
    except OSError as exc:
        raise PartitionError(f"{path}: cannot be read ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise PartitionError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise PartitionError(f"{path}: not a gnnsys manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise PartitionError(f"{path}: format version {manifest.get('format_version')!r}, this "
                             f"gnnsys reads version {FORMAT_VERSION}; re-run gnnsys partition")
    if manifest.get("checksum") != _manifest_checksum(manifest):
        raise PartitionError(f"{path}: checksum mismatch (manifest edited or corrupted)")
    for key in ("parts", "servers", "part_server", "dataset", "files"):
        if key not in manifest:
            raise PartitionError(f"{path}: missing key '{key}'")
    _check_manifest_types(path, manifest)
    return manifest


def _check_manifest_types(path: str, manifest: dict) -> None:
    """Raise :class:`PartitionError` unless the manifest's counts are sane integers."""
    def count(value, name: str, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PartitionError(f"{path}: '{name}' is {value!r}, expected an integer >= {low}")
        return value

    parts = count(manifest["parts"], "parts", 1)
    count(manifest["servers"], "servers", 1)
    dataset, files, part_server = manifest["dataset"], manifest["files"], manifest["part_server"]
    if not isinstance(dataset, dict) or not isinstance(files, dict):
        raise PartitionError(f"{path}: 'dataset' and 'files' must be mappings")
    if not isinstance(part_server, list) or len(part_server) != parts:
        raise PartitionError(f"{path}: 'part_server' must list the server of each of {parts} parts")
    for i, server in enumerate(part_server):
        count(server, f"part_server[{i}]", 0)
    for key, low in (("num_nodes", 1), ("num_edges", 0), ("num_features", 1),
                     ("num_classes", 1), ("num_train", 0), ("num_val", 0), ("num_test", 0)):
        count(dataset.get(key), f"dataset.{key}", low)
    for relpath, entry in files.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("size"), int)
                and isinstance(entry.get("sha256"), str)):
            raise PartitionError(f"{path}: bad entry for file {relpath!r}")


def check_file(folder: str, relpath: str, entry: dict) -> None:
    """Check that ``folder/relpath`` exists and has the size and sha256 of ``entry``.

    Raises :class:`PartitionError` naming the file otherwise.
    """
    path = os.path.join(folder, relpath)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise PartitionError(f"{path}: missing (listed in {MANIFEST})") from None
    if size != entry["size"]:
        raise PartitionError(f"{path}: size {size} bytes differs from {MANIFEST} "
                             f"({entry['size']}); the partition is corrupted")
    if sha256_file(path) != entry["sha256"]:
        raise PartitionError(f"{path}: sha256 differs from {MANIFEST}; the partition is "
                             "corrupted or was modified")


@dataclass
class LocalRows:
    """The arrays of one worker's local rows (owned, then halo; layout: module docstring).

    Shared by :class:`Shard` (as written by the partitioner) and the trainer's other local
    layouts (a preload worker's, :mod:`gnnsys.train.preload_shard`).
    """

    owned: np.ndarray
    halo: np.ndarray
    halo_offsets: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    send_index: np.ndarray
    send_offsets: np.ndarray
    feat: np.ndarray
    label: np.ndarray
    train_mask: np.ndarray
    val_mask: np.ndarray
    test_mask: np.ndarray
    orig_ids: np.ndarray
    in_deg: np.ndarray
    out_deg: np.ndarray

    @property
    def num_owned(self) -> int:
        """Number of owned rows n_own."""
        return int(self.owned.shape[0])

    @property
    def num_halo(self) -> int:
        """Number of halo rows n_halo."""
        return int(self.halo.shape[0])


@dataclass
class Shard(LocalRows):
    """One part of a partition, its arrays as read-only memory maps (layout: module docstring).

    ``parts``/``servers``/``server``/``global_*`` and counts come from the manifest;
    ``num_owned`` and ``num_halo`` are the local row counts (local rows = owned then halo).
    """

    folder: str = ""
    part: int = 0
    parts: int = 0
    servers: int = 1
    server: int = 0
    part_server: list = field(default_factory=list)
    num_classes: int = 0
    num_features: int = 0
    global_num_nodes: int = 0
    global_num_edges: int = 0
    global_train_count: int = 0
    global_val_count: int = 0
    global_test_count: int = 0
    manifest: dict = field(repr=False, default_factory=dict)


def _load_npy(path: str) -> np.ndarray:
    try:
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError:  # numpy < 1.24 cannot memory-map an empty array
            array = np.load(path, allow_pickle=False)
            array.flags.writeable = False
            return array
    except Exception as exc:  # noqa: BLE001 - numpy raises several kinds on a bad header
        raise PartitionError(f"{path}: unreadable ({exc})") from None


def load_listed_arrays(folder: str, manifest: dict, subdir: str, names: Sequence[str],
                       verify: bool) -> Dict[str, np.ndarray]:
    """Return ``{name: memory-mapped array}`` of ``subdir/<name>.npy`` for every name.

    With ``verify`` the size and sha256 of every file under ``subdir`` are checked against the
    manifest first. Raises :class:`PartitionError` naming a file that is unlisted, damaged or
    unreadable.
    """
    prefix = subdir + "/"
    if verify:
        for relpath, entry in manifest["files"].items():
            if relpath.startswith(prefix):
                check_file(folder, relpath, entry)
    arrays = {}
    for name in names:
        relpath = prefix + name + ".npy"
        if relpath not in manifest["files"]:
            raise PartitionError(f"{os.path.join(folder, MANIFEST)}: does not list {relpath}")
        arrays[name] = _load_npy(os.path.join(folder, relpath))
    return arrays


def open_shard(folder: str, part: int, verify: bool = True,
               manifest: Optional[dict] = None) -> Shard:
    """Open shard ``part`` of the partition in ``folder``; return a :class:`Shard`.

    With ``verify=True`` the size and sha256 of every file of the shard are checked against
    the manifest first (a corrupted shard is refused, never trained on). Dtypes and shapes are
    always checked. ``manifest`` skips re-reading it when the caller already has it. Raises
    :class:`PartitionError` naming the offending file.
    """
    manifest = load_manifest(folder) if manifest is None else manifest
    parts = int(manifest["parts"])
    if not 0 <= part < parts:
        raise PartitionError(f"{folder}: part {part} out of range, the partition has {parts} parts")
    arrays = load_listed_arrays(folder, manifest, part_dir(part), SHARD_ARRAYS, verify)
    dataset = manifest["dataset"]
    shard = Shard(
        folder=folder, part=part, parts=parts, servers=int(manifest["servers"]),
        server=int(manifest["part_server"][part]), part_server=list(manifest["part_server"]),
        num_classes=int(dataset["num_classes"]), num_features=int(dataset["num_features"]),
        global_num_nodes=int(dataset["num_nodes"]), global_num_edges=int(dataset["num_edges"]),
        global_train_count=int(dataset["num_train"]), global_val_count=int(dataset["num_val"]),
        global_test_count=int(dataset["num_test"]), manifest=manifest, **arrays)
    _check_shapes(shard)
    return shard


def _check_shapes(shard: Shard) -> None:
    n_own, n_halo, parts = shard.num_owned, shard.num_halo, shard.parts
    n_edges = int(shard.indptr[-1]) if shard.indptr.shape[0] else -1
    expected = {
        "owned": (n_own,), "halo": (n_halo,), "halo_offsets": (parts + 1,),
        "indptr": (n_own + 1,), "indices": (n_edges,), "send_offsets": (parts + 1,),
        "send_index": (int(shard.send_offsets[-1]) if shard.send_offsets.shape[0] else -1,),
        "feat": (n_own, shard.num_features), "label": (n_own,), "train_mask": (n_own,),
        "val_mask": (n_own,), "test_mask": (n_own,), "orig_ids": (n_own,),
        "in_deg": (n_own + n_halo,), "out_deg": (n_own + n_halo,),
    }
    for name, dtype in SHARD_ARRAYS.items():
        array = getattr(shard, name)
        if array.dtype != dtype or array.shape != expected[name]:
            path = os.path.join(shard.folder, part_dir(shard.part), name + ".npy")
            raise PartitionError(f"{path}: {array.dtype} {tuple(array.shape)}, expected "
                                 f"{np.dtype(dtype)} {expected[name]}")
    if shard.halo_offsets[-1] != n_halo:
        raise PartitionError(f"{os.path.join(shard.folder, part_dir(shard.part))}/"
                             f"halo_offsets.npy: ends at {shard.halo_offsets[-1]}, not {n_halo}")


def verify_partition(folder: str) -> None:
    """Check a whole partition folder; return None or raise :class:`PartitionError`.

    Checks the manifest (JSON, checksum, format version), the size and sha256 of every file,
    the dtypes/shapes of every shard, that the shards cover every node exactly once as the
    assignment says, that local source IDs are in range, and that every send list k -> p names
    exactly p's halo rows for owner k, in order; with a preload, the dtypes/shapes of every
    ``server-<s>/`` (see :mod:`gnnsys.partition.preload`).
    """
    from gnnsys.partition.preload import open_preload  # preload builds on this module

    manifest = load_manifest(folder)
    for relpath, entry in manifest["files"].items():
        check_file(folder, relpath, entry)
    parts, n = int(manifest["parts"]), int(manifest["dataset"]["num_nodes"])
    assignment = _load_npy(os.path.join(folder, "assignment.npy"))
    if assignment.dtype != np.int64 or assignment.shape != (n,):
        raise PartitionError(f"{os.path.join(folder, 'assignment.npy')}: {assignment.dtype} "
                             f"{tuple(assignment.shape)}, expected int64 ({n},)")
    shards = [open_shard(folder, k, verify=False, manifest=manifest) for k in range(parts)]
    counts = np.bincount(assignment, minlength=parts)
    for shard in shards:
        where = os.path.join(folder, part_dir(shard.part))
        if counts[shard.part] != shard.num_owned or \
                np.any(assignment[shard.owned] != shard.part):
            raise PartitionError(f"{where}/owned.npy: does not match assignment.npy")
        if shard.indices.size and (shard.indices.min() < 0 or
                                   shard.indices.max() >= shard.num_owned + shard.num_halo):
            raise PartitionError(f"{where}/indices.npy: local source ID out of range")
        for peer in shards:
            sent = shard.owned[shard.send_index[shard.send_offsets[peer.part]:
                                                shard.send_offsets[peer.part + 1]]]
            wanted = peer.halo[peer.halo_offsets[shard.part]:peer.halo_offsets[shard.part + 1]]
            if not np.array_equal(sent, wanted):
                raise PartitionError(f"{where}/send_index.npy: send list to part {peer.part} "
                                     f"does not match {part_dir(peer.part)}/halo.npy")
    if "preload" in manifest:
        for server in range(int(manifest["servers"])):
            open_preload(folder, server, verify=False, manifest=manifest)
