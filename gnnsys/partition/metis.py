"""Multi-constraint k-way METIS on numpy CSR arrays, without copies.

pymetis (2025.2) always passes ``ncon = 1`` to METIS, so its ``vweights`` cannot balance
several quantities at once. The METIS library that pymetis bundles exports
``METIS_PartGraphKway``; this module calls it through ctypes with ``ncon`` weights per vertex
(balancing e.g. nodes, edges and train nodes together), handing it the int64 arrays directly.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Mapping, Optional, Sequence

import numpy as np

from gnnsys.errors import RuntimeFailure

_NOPTIONS = 40  # METIS_NOPTIONS in METIS 5.1
_REAL = np.float32  # METIS real_t (REALTYPEWIDTH 32, as pymetis builds it)
_STATUS = {-2: "input error", -3: "out of memory", -4: "error"}


@functools.lru_cache(maxsize=None)
def _library() -> tuple:
    """Return ``(METIS library, idx_t dtype, pymetis.OptionKey)`` (loaded once)."""
    import pymetis
    import pymetis._internal as internal
    lib = ctypes.CDLL(internal.__file__)
    lib.METIS_PartGraphKway.restype = ctypes.c_int
    return lib, np.dtype(pymetis.zero_copy_dtype()), pymetis.OptionKey


def _ptr(array: Optional[np.ndarray]):
    return None if array is None else array.ctypes.data_as(ctypes.c_void_p)


def metis_kway(indptr: np.ndarray, indices: np.ndarray, vwgt: np.ndarray, nparts: int,
               seed: int = 0, ubvec: Optional[Sequence[float]] = None,
               options: Optional[Mapping[str, int]] = None,
               adjwgt: Optional[np.ndarray] = None) -> np.ndarray:
    """Partition an undirected graph into ``nparts`` with METIS k-way; return int64 [N] parts.

    ``indptr``/``indices``: symmetric CSR without self-loops. ``vwgt``: int64 [N, ncon]
    non-negative vertex weights, one column per balance constraint. ``ubvec``: allowed
    imbalance (max/mean) per constraint (METIS default 1.03 each). ``seed`` makes the result
    deterministic. ``options``: METIS options by ``pymetis.OptionKey`` name (``{"NITER": 4,
    "CTYPE": 0}``); unnamed ones keep METIS's defaults. Raises :class:`RuntimeFailure` if
    METIS reports an error. ``adjwgt``: positive integer edge weights, one per ``indices``
    entry and equal for both directions of an edge (``None``: all 1); METIS minimises their sum
    over cut edges.
    """
    n = indptr.shape[0] - 1
    if nparts == 1 or n == 0:
        return np.zeros(n, dtype=np.int64)
    lib, idx, keys = _library()
    xadj = np.ascontiguousarray(indptr, dtype=idx)
    adjncy = np.ascontiguousarray(indices, dtype=idx)
    weights = np.ascontiguousarray(vwgt, dtype=idx)
    edge_weights = None if adjwgt is None else np.ascontiguousarray(adjwgt, dtype=idx)
    ncon = weights.shape[1]
    options_array = np.full(_NOPTIONS, -1, dtype=idx)
    lib.METIS_SetDefaultOptions(_ptr(options_array))
    for name, value in {**(options or {}), "SEED": seed, "NUMBERING": 0}.items():
        options_array[int(getattr(keys, name))] = value
    ub = None if ubvec is None else np.asarray(ubvec, dtype=_REAL)
    scalars = {name: np.array([value], dtype=idx)
               for name, value in (("n", n), ("ncon", ncon), ("nparts", nparts), ("cut", 0))}
    part = np.empty(n, dtype=idx)
    status = lib.METIS_PartGraphKway(
        _ptr(scalars["n"]), _ptr(scalars["ncon"]), _ptr(xadj), _ptr(adjncy), _ptr(weights),
        None, _ptr(edge_weights), _ptr(scalars["nparts"]), None, _ptr(ub), _ptr(options_array),
        _ptr(scalars["cut"]), _ptr(part))
    if status != 1:
        raise RuntimeFailure(f"METIS_PartGraphKway failed ({_STATUS.get(status, status)}) "
                             f"on {n} nodes, {nparts} parts")
    return part.astype(np.int64, copy=False)
