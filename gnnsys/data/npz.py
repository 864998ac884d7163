"""Read and write a :class:`~gnnsys.graph.Graph` as one ``.npz`` file (the gnnsys graph format).

Layout (one ``.npy`` member per array, never pickled):

* structure: either ``edge_index`` ``[2, E]`` (row 0 = source, row 1 = destination) or the
  in-edge CSR ``indptr [N+1]`` + ``indices [E]`` (sources of node ``v`` are
  ``indices[indptr[v]:indptr[v+1]]``); :func:`save_npz` always writes the CSR;
* ``feat [N, F]`` (floating point), ``label [N]`` (integers, ``-1`` = unlabelled);
* optional ``train_mask`` / ``val_mask`` / ``test_mask`` ``[N]`` (bool or 0/1) and
  ``orig_ids [N]`` (integers).

Files written by :func:`save_npz` are uncompressed, so :func:`load_npz` memory-maps ``feat``
instead of reading it: a 1M x 128 feature matrix costs no resident memory until it is touched.
"""
from __future__ import annotations

import os
import struct
import uuid
import zipfile
import zlib
from pathlib import Path
from typing import Optional, Union

import numpy as np
from tqdm import tqdm

from gnnsys.errors import UserError
from gnnsys.graph import Graph, GraphError

PathLike = Union[str, "os.PathLike[str]"]

_REQUIRED = ("feat", "label")
_OPTIONAL = ("train_mask", "val_mask", "test_mask", "orig_ids")
_CHUNK_BYTES = 64 << 20
_ALIGN = 64  # .npy headers are padded to 64 bytes, so a 64-aligned member start aligns the data
_ZIP64_EXTRA = 20  # bytes of the zip64 field zipfile appends to a force_zip64 local header


def load_npz(path: PathLike, mmap: bool = True, undirected: bool = False) -> Graph:
    """Load a graph from the ``.npz`` at ``path`` (layout in the module docstring).

    ``mmap=True`` memory-maps ``feat`` (read-only) when its member is stored uncompressed;
    compressed members are read into memory. ``undirected=True`` adds the reverse of every edge.
    Returns the canonical, validated :class:`Graph` named after the file. Raises
    :class:`UserError` for a missing or unreadable file and :class:`GraphError` for missing
    keys, bad shapes or bad dtypes.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"graph file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    if not hasattr(archive, "files"):
        raise UserError(f"{path}: a single .npy array, not an .npz graph file")
    with archive:
        keys = set(archive.files)
        for key in _REQUIRED:
            if key not in keys:
                raise GraphError(f"{path}: missing array '{key}' (has: {', '.join(sorted(keys))})")
        if ("indptr" in keys and "indices" in keys) == ("edge_index" in keys):
            raise GraphError(f"{path}: needs either 'edge_index' or 'indptr' + 'indices'")
        arrays = {key: _read(archive, key, path) for key in
                  ("indptr", "indices", "edge_index", "label", *_OPTIONAL) if key in keys}
        feat = _memmap_member(path, "feat") if mmap else None
        arrays["feat"] = _read(archive, "feat", path) if feat is None else feat
    try:
        return Graph.from_arrays(**arrays, undirected=undirected, name=path.stem)
    except GraphError as exc:
        raise GraphError(f"{path}: {exc}") from None


def save_npz(graph: Graph, path: PathLike, compress: bool = False,
             progress: bool = False) -> None:
    """Write ``graph`` to ``path`` as in-edge CSR + arrays (layout in the module docstring).

    Uncompressed by default so that :func:`load_npz` can memory-map the features;
    ``compress=True`` deflates every member (for small shipped files). The file is written to a
    temporary file in the same folder and renamed into place, so a crash never leaves a partial
    file at ``path``. Member timestamps are fixed, so equal graphs give equal bytes.
    ``progress=True`` shows a byte progress bar on stderr. Returns nothing.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"output folder does not exist: {path.parent}")
    arrays = {"indptr": graph.indptr, "indices": graph.indices, "feat": graph.feat,
              "label": graph.label, "train_mask": graph.train_mask,
              "val_mask": graph.val_mask, "test_mask": graph.test_mask,
              "orig_ids": graph.orig_ids}
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tqdm(total=sum(int(a.nbytes) for a in arrays.values()), unit="B", unit_scale=True,
                  desc=f"writing {path.name}", disable=not progress) as bar, \
                open(tmp, "xb") as raw, \
                zipfile.ZipFile(raw, "w", compression=method, allowZip64=True) as zf:
            for key, arr in arrays.items():
                info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = method
                if not compress:
                    info.extra = _alignment_padding(raw.tell() + 30 + len(info.filename))
                with zf.open(info, "w", force_zip64=True) as member:
                    _write_npy(member, arr, bar)
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _read(archive, key: str, path: Path) -> np.ndarray:
    """Read member ``key`` of an open npz, turning numpy's and zip's errors into one line."""
    try:
        return archive[key]
    except ValueError as exc:  # object arrays (pickles) are refused by allow_pickle=False
        raise GraphError(f"{path}: array '{key}' cannot be read without pickle ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{path}: array '{key}' is corrupt ({exc})") from None


def _memmap_member(path: Path, key: str) -> Optional[np.ndarray]:
    """Return a read-only memmap of member ``key`` of the npz, or None when it is compressed."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise GraphError(f"{path}: corrupt zip header for '{key}'")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        data_start = info.header_offset + 30 + name_len + extra_len
        f.seek(data_start)
        try:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                return None  # newer header versions: let np.load read it
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
        except ValueError as exc:
            raise GraphError(f"{path}: array '{key}' has a bad .npy header ({exc})") from None
        header_len = f.tell() - data_start
    if dtype.hasobject:
        raise GraphError(f"{path}: array '{key}' holds Python objects")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != info.file_size - header_len:
        raise GraphError(f"{path}: array '{key}' is truncated or corrupt")
    if 0 in shape:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape,
                     order="F" if fortran else "C", offset=data_start + header_len)


def _alignment_padding(name_end: int) -> bytes:
    """Return a zip extra field that makes a stored member starting after ``name_end`` aligned.

    The member's data begins after the local header's extra fields (this padding, then
    zipfile's zip64 field); padding it to a multiple of 64 bytes lets memory maps of the array
    be aligned, as Android's zipalign does for the same reason.
    """
    pad = -(name_end + 4 + _ZIP64_EXTRA) % _ALIGN
    return struct.pack("<HH", 0xD935, pad) + bytes(pad)


def _write_npy(out, arr: np.ndarray, bar: tqdm) -> None:
    """Write ``arr`` as a ``.npy`` stream to the file object ``out`` in bounded-size chunks."""
    arr = np.asanyarray(arr)
    header = np.lib.format.header_data_from_array_1_0(arr)
    header["fortran_order"] = False
    np.lib.format.write_array_header_1_0(out, header)
    if arr.ndim == 0 or arr.shape[0] == 0:
        out.write(np.ascontiguousarray(arr).tobytes())
        return
    row_bytes = max(1, arr.nbytes // arr.shape[0])
    step = max(1, _CHUNK_BYTES // row_bytes)
    for start in range(0, arr.shape[0], step):
        chunk = np.ascontiguousarray(arr[start:start + step])
        out.write(chunk.tobytes())
        bar.update(chunk.nbytes)
