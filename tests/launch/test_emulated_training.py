"""Two emulated hosts train Cora like one host: same seed, fp32 sync, the same weights.

Cora in 4 parts on 2 servers (a two-level partition, so the placement check runs), trained on an
emulated cluster of 2 hosts x 2 ranks (TCP between the hosts, hierarchical all-reduce) and on
one host with 4 ranks (shared memory). Skipped, with the reason, where network namespaces
cannot be made.
"""
import re
import sys

import pytest
import torch

from gnnsys.data.registry import load_dataset
from gnnsys.emulate import EmulatedCluster, emulation_available
from gnnsys.partition.api import partition_graph
from tests._mpi import run_mpi
from tests.train.test_resume import final_state

AVAILABLE, REASON = emulation_available()
ARGS = ["-m", "gnnsys.cli", "train", "--epochs", "10", "--no-progress", "--threads", "1",
        "--seed", "3", "--bits", "32", "--normalize-features", "row"]


def _test_acc(stdout: str) -> float:
    return float(re.search(r"test_acc=([0-9.]+)", stdout).group(1))


@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.skipif(not AVAILABLE, reason=f"no emulated cluster: {REASON}")
def test_two_hosts_train_cora_like_one_host(tmp_path):
    part = tmp_path / "cora-4-s2"
    partition_graph(load_dataset("cora"), 4, str(part), servers=2, method="metis",
                    progress=False)
    with EmulatedCluster(hosts=2, rate="1gbit", ranks_per_host=2) as cluster:
        two = cluster.run([sys.executable, *ARGS, str(part), "--checkpoint-dir",
                           str(tmp_path / "two")], timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    one = run_mpi(4, [*ARGS, str(part), "--checkpoint-dir", str(tmp_path / "one")], timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    assert _test_acc(two.stdout) == _test_acc(one.stdout)
    a, b = final_state(tmp_path / "one"), final_state(tmp_path / "two")
    for name, value in a["model"].items():  # summation order of the all-reduce may differ
        torch.testing.assert_close(b["model"][name], value, rtol=1e-5, atol=1e-6)
