"""glibc's malloc keeps freed multi-MiB blocks for reuse ("keep") or returns them ("release").

Each case runs in a fresh interpreter: glibc's malloc settings are process-wide.
"""
import os
import subprocess
import sys

import pytest

from gnnsys.allocator import set_malloc_policy

PROBE = """
import ctypes, sys, psutil
from gnnsys.allocator import set_malloc_policy
applied = set_malloc_policy(sys.argv[1]) if sys.argv[1] != "none" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
size = int(sys.argv[2]) << 20
big = libc.malloc(16 << 20); ctypes.memset(big, 1, 16 << 20); libc.free(big)  # raises the
rss0 = psutil.Process().memory_info().rss  # dynamic threshold, as a training epoch does
blocks = [libc.malloc(size) for _ in range(200 // int(sys.argv[2]))]
for p in blocks:
    ctypes.memset(p, 1, size)
for p in blocks[:-1]:  # the last block stays: the freed ones are not at the top of the heap
    libc.free(p)
print(applied, (psutil.Process().memory_info().rss - rss0) >> 20)
"""


def _probe(policy: str, block_mib: int, env: dict = {}) -> tuple:
    proc = subprocess.run([sys.executable, "-c", PROBE, policy, str(block_mib)],
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    applied, grown_mib = proc.stdout.split()
    return applied, int(grown_mib)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_release_returns_freed_blocks_to_the_os():
    assert _probe("none", 2)[1] >= 150  # glibc keeps 99 x 2 MiB freed blocks resident
    applied, grown = _probe("release", 2)
    assert applied == "True" and grown < 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_keep_holds_freed_blocks_even_above_glibcs_largest_mmap_threshold():
    assert _probe("none", 40)[1] < 60  # glibc maps (and unmaps) every block of 32 MiB or more
    applied, grown = _probe("keep", 40)
    assert applied == "True" and grown >= 150  # 4 x 40 MiB freed, all still resident


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_the_users_environment_setting_wins():
    for env in ({"MALLOC_MMAP_THRESHOLD_": "4194304"}, {"MALLOC_TRIM_THRESHOLD_": "4194304"},
                {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}):
        applied, _ = _probe("keep", 2, env)
        assert applied == "False", env


def test_an_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="keep, release"):
        set_malloc_policy("hoard")
