"""Multi-rank halo exchange and all-reduce under a real mpirun (checks in _exchange_worker.py).

Each run checks, for the backends mpi (Alltoallv), mpi_p2p (Isend/Irecv) and torch (gloo), in
float32 and float64: forward halo rows equal the owners' rows exactly, the gradient of two
chained exchanges equals the one-process gradient, a bounded-stale exchange (s = 1) serves
the previous epoch's halo rows and returns halo gradients in their epoch (or, with
``stale_grads``, one epoch later), exact byte counters (all intra on one
server), the hierarchical gradient all-reduce, the scalar all-reduce, and that shards from
different partitions are refused on every rank.
"""
from pathlib import Path

import pytest

from tests._mpi import mpirun_path, run_mpi

WORKER = str(Path(__file__).with_name("_exchange_worker.py"))

pytestmark = [pytest.mark.mpi,
              pytest.mark.skipif(mpirun_path() is None, reason="mpirun not found")]


@pytest.mark.parametrize("nprocs, extra", [
    (2, []),  # one server: every byte is intra-server
    # the last rank has no peers; ranks {0,1} and {2,3} form two emulated servers, so the
    # all-reduce is hierarchical and peers across them count as inter-server
    (4, ["--isolated", "--ranks-per-server", "2"]),
], ids=["p2-one-server", "p4-isolated-two-servers"])
def test_exchange_and_allreduce_match_one_process(nprocs, extra):
    proc = run_mpi(nprocs, [WORKER, *extra], timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"OK {nprocs} ranks" in proc.stdout
