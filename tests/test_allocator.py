"""Huge pages for torch's CPU blocks, and glibc's malloc keeping freed multi-MiB blocks for reuse
("keep") or returning them ("release").

Each case runs in a fresh interpreter: these settings are process-wide.
"""
import os
import subprocess
import sys

import pytest

from gnnsys.allocator import HUGE_PAGES_VAR, request_huge_pages, set_malloc_policy

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
    with pytest.raises(ValueError, match="release, keep"):
        set_malloc_policy("hoard")


HUGE = """
import sys
from gnnsys.allocator import request_huge_pages
asked = request_huge_pages() if sys.argv[1] == "on" else None
import torch

def huge_kib():
    with open("/proc/self/smaps_rollup") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("AnonHugePages:"))

before = huge_kib()
x = torch.ones(64 << 18)  # 64 MiB, touched
print(asked, (huge_kib() - before) >> 10)
"""


def _thp_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "never"


@pytest.mark.skipif(_thp_mode() != "madvise", reason="needs transparent huge pages on madvise")
def test_torch_blocks_get_huge_pages_only_when_requested_before_torch():
    def probe(mode: str) -> tuple:
        env = {k: v for k, v in os.environ.items() if k != HUGE_PAGES_VAR}
        proc = subprocess.run([sys.executable, "-c", HUGE, mode], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        asked, huge_mib = proc.stdout.split()
        return asked, int(huge_mib)

    assert probe("off")[1] < 8
    asked, huge_mib = probe("on")
    assert asked == "True" and huge_mib >= 32


def test_huge_pages_are_not_requested_over_the_user_or_after_torch(monkeypatch):
    import torch  # noqa: F401  (imported: too late to ask)

    monkeypatch.delenv(HUGE_PAGES_VAR, raising=False)
    assert request_huge_pages() is False and HUGE_PAGES_VAR not in os.environ
    monkeypatch.setenv(HUGE_PAGES_VAR, "0")
    monkeypatch.delitem(sys.modules, "torch")
    assert request_huge_pages() is False and os.environ[HUGE_PAGES_VAR] == "0"
