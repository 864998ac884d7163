"""tests/_mpi.py: ranks really run in parallel, and a hung job is killed at the timeout."""
import time

import pytest

from tests._mpi import mpirun_path, run_mpi

pytestmark = [pytest.mark.mpi,
              pytest.mark.skipif(mpirun_path() is None, reason="mpirun not found")]


def test_run_mpi_starts_every_rank_with_one_thread():
    code = ("import os; from mpi4py import MPI; c = MPI.COMM_WORLD; "
            "print('rank', c.rank, 'of', c.size, os.environ['OMP_NUM_THREADS'])")
    proc = run_mpi(2, ["-c", code], timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert sorted(line for line in proc.stdout.splitlines() if line.startswith("rank")) == [
        "rank 0 of 2 1", "rank 1 of 2 1"]


def test_run_mpi_kills_a_hung_job():
    start = time.monotonic()
    proc = run_mpi(2, ["-c", "import time; time.sleep(600)"], timeout=5)
    assert proc.returncode == 124
    assert "timeout" in proc.stderr
    assert time.monotonic() - start < 60
