"""How freed tensor memory is handled on the CPU: huge pages, and what glibc's malloc keeps.

A training epoch allocates and frees the same multi-MiB tensors every time (activations, their
gradients, exchange buffers). Mapped afresh, every such block page-faults in again, 4 KiB at a
time, and the kernel zeroes each page: measured here, about half of a CPU epoch. Two settings:

* **Huge pages** (:func:`request_huge_pages`, on in ``gnnsys`` commands): torch backs its CPU
  allocations of 2 MiB or more with transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``, read
  by torch at its first allocation), so a block faults in 2 MiB at a time. Same memory.
* **malloc policy** (:func:`set_malloc_policy`, ``--malloc``): ``release`` (the default) sets
  glibc's mmap threshold to 1 MiB, so every block of 1 MiB or more is mapped on its own and
  returned to the OS when freed: the lowest peak (on a 4-rank ``synthetic:1000000`` GCN, 1.69
  GiB per rank against 1.91 GiB with glibc's dynamic threshold). ``keep`` serves every block
  from the heap and keeps freed memory resident for reuse (mmap and trim thresholds 1 GiB), as
  jemalloc and tcmalloc do: faster again, for the heap's fragmentation in peak memory.

Measured on this 2-core machine, median epoch and peak RSS per rank:

====================================  ===============  ==============  =================
setting                               exchange (fp32)  preload (f 15)  peak RSS per rank
====================================  ===============  ==============  =================
release, 4 KiB pages (before)         0.69 s           1.04 s          567 / 605 MiB
release + huge pages (default)        0.41 s           0.57 s          568 / 608 MiB
keep + huge pages                     0.32 s           0.44 s          729 / 795 MiB
====================================  ===============  ==============  =================

(4 ranks, ``synthetic:40000``, 3-layer GCN hidden 256, exchange / preload mode.) On one rank of
``synthetic:200000`` (2-layer GCN): 1.21 s -> 0.65 s per epoch with huge pages, peak 1449 ->
1454 MiB. ``keep`` costs much more memory on large shards: one rank of ``synthetic:1000000``
peaked at 10.2 GiB against 5.3-5.7 GiB (1.9x), so it is not the default.

The user's environment takes precedence: ``THP_MEM_ALLOC_ENABLE``, ``MALLOC_*`` variables and
``glibc.malloc`` tunables are left as they are.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers
M_MMAP_THRESHOLD = -3
POLICIES = ("release", "keep")
RELEASE_BYTES = 1 << 20
KEEP_BYTES = 1 << 30  # mallopt takes a C int
HUGE_PAGES_VAR = "THP_MEM_ALLOC_ENABLE"
_MALLOC_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_",
                "MALLOC_MMAP_MAX_")


def request_huge_pages() -> bool:
    """Ask torch to back CPU allocations of 2 MiB or more with transparent huge pages.

    Sets ``THP_MEM_ALLOC_ENABLE=1`` unless the environment sets it or torch is already
    imported (torch reads it once, at its first allocation). Returns True when it was set now.
    Where the kernel has transparent huge pages off, torch's ``madvise`` changes nothing.
    """
    if HUGE_PAGES_VAR in os.environ or "torch" in sys.modules:
        return False
    os.environ[HUGE_PAGES_VAR] = "1"
    return True


def set_malloc_policy(policy: str = "release") -> bool:
    """Apply ``policy`` (``"release"`` or ``"keep"``, see the module docstring) to glibc's malloc.

    Returns True when it was applied; False elsewhere (not glibc, or the environment sets
    malloc's thresholds itself). Raises ValueError for an unknown policy, nothing else.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown malloc policy {policy!r} (choose {', '.join(POLICIES)})")
    if (any(name in os.environ for name in _MALLOC_VARS)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if policy == "release":
            return bool(libc.mallopt(M_MMAP_THRESHOLD, RELEASE_BYTES))
        return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)
                    and libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
    except (OSError, AttributeError):
        return False
