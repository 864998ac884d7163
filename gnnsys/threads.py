"""Thread budgets per rank: ranks that share a host must not each start one thread per core.

torch's intra-op threads are set by the training loop (``--threads``); numba sizes its thread
pool once, at import, from ``NUMBA_NUM_THREADS`` (default: every core). Under mpirun with
several ranks per host that is ranks x cores threads whose idle spinning steals the cores the
ranks compute on (measured on the emulated cluster: compute per epoch 2.2x slower).
"""
from __future__ import annotations

import os
from typing import MutableMapping, Optional

# Set by Open MPI (and by PMIx-based launchers) in every rank: ranks on this host.
LOCAL_SIZE_VARS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "PMIX_LOCAL_SIZE", "MPI_LOCALNRANKS")


def local_ranks(environ: MutableMapping[str, str]) -> Optional[int]:
    """Return the number of ranks on this host announced by the launcher, or None."""
    for name in LOCAL_SIZE_VARS:
        value = environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def limit_numba_threads(environ: MutableMapping[str, str] = os.environ,
                        cores: Optional[int] = None) -> Optional[int]:
    """Set ``NUMBA_NUM_THREADS`` to ``cores // ranks on this host`` (at least 1) when running
    under a launcher and the user has not set it; call before numba is imported.

    Returns the value set, or None when nothing was changed.
    """
    ranks = local_ranks(environ)
    if ranks is None or "NUMBA_NUM_THREADS" in environ:
        return None
    threads = max(1, (cores or os.cpu_count() or 1) // ranks)
    environ["NUMBA_NUM_THREADS"] = str(threads)
    return threads
