"""Freed multi-MiB blocks go back to the operating system once the trainer's setting is applied.

Each case runs in a fresh interpreter: glibc's malloc settings are process-wide.
"""
import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys, psutil
from gnnsys.allocator import release_freed_memory
applied = release_freed_memory(1 << 20) if sys.argv[1] == "on" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
big = libc.malloc(16 << 20); ctypes.memset(big, 1, 16 << 20); libc.free(big)  # raises the
rss0 = psutil.Process().memory_info().rss  # dynamic threshold, as a training epoch does
blocks = [libc.malloc(2 << 20) for _ in range(100)]
for p in blocks:
    ctypes.memset(p, 1, 2 << 20)
for p in blocks[:-1]:  # the last block stays: the freed ones are not at the top of the heap
    libc.free(p)
print(applied, (psutil.Process().memory_info().rss - rss0) >> 20)
"""


def _probe(mode: str, env: dict) -> tuple:
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    applied, grown_mib = proc.stdout.split()
    return applied, int(grown_mib)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_blocks_return_to_the_os_only_with_the_setting():
    assert _probe("off", {})[1] >= 150  # glibc keeps 99 x 2 MiB freed blocks resident
    applied, grown = _probe("on", {})
    assert applied == "True" and grown < 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_users_environment_setting_wins():
    applied, _ = _probe("on", {"MALLOC_MMAP_THRESHOLD_": "4194304"})
    assert applied == "False"
