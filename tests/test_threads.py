"""Thread budgets per rank (gnnsys.threads), and that the CLI applies them before numba starts."""
import os
import subprocess
import sys

from gnnsys.threads import limit_numba_threads, local_ranks


def test_local_ranks_reads_the_launcher_variables():
    assert local_ranks({}) is None
    assert local_ranks({"OMPI_COMM_WORLD_LOCAL_SIZE": "4"}) == 4
    assert local_ranks({"PMIX_LOCAL_SIZE": "2"}) == 2
    assert local_ranks({"OMPI_COMM_WORLD_LOCAL_SIZE": "x"}) is None


def test_numba_threads_split_the_cores_between_local_ranks():
    env = {"OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    assert limit_numba_threads(env, cores=16) == 4 and env["NUMBA_NUM_THREADS"] == "4"
    env = {"OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    assert limit_numba_threads(env, cores=2) == 1 and env["NUMBA_NUM_THREADS"] == "1"


def test_user_setting_and_plain_runs_are_left_alone():
    env = {"OMPI_COMM_WORLD_LOCAL_SIZE": "4", "NUMBA_NUM_THREADS": "3"}
    assert limit_numba_threads(env, cores=16) is None and env["NUMBA_NUM_THREADS"] == "3"
    env = {}
    assert limit_numba_threads(env, cores=16) is None and "NUMBA_NUM_THREADS" not in env


def test_cli_sizes_numba_pool_from_the_launcher():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    env["OMPI_COMM_WORLD_LOCAL_SIZE"] = str(2 * (os.cpu_count() or 1))
    code = ("import sys; from gnnsys.cli import main; main(['datasets']); import numba; "
            "print(numba.config.NUMBA_NUM_THREADS)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"
