"""Run a Python script under a real ``mpirun`` on this host, never hanging the test suite."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[1]

# Single host: shared memory only, the ob1 PML (skips probing UCX/OFI: 0.5 s instead of 1.7 s
# for 4 ranks here), and yielding waits so oversubscribed ranks do not starve each other.
MCA_FLAGS = ["--mca", "btl", "self,sm", "--mca", "pml", "ob1",
             "--mca", "mpi_yield_when_idle", "1"]
# One compute thread per rank: the ranks share the few cores of this machine.
THREAD_ENV = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                               "NUMBA_NUM_THREADS")}


def mpirun_path() -> Optional[str]:
    """Return the ``mpirun`` next to the running Python (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "mpirun"
    return str(local) if local.exists() else shutil.which("mpirun")


def run_mpi(nprocs: int, args: List[str], timeout: float = 120,
            env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``mpirun -n nprocs ... python <args>`` from the repository root and return the result.

    Args:
        nprocs: number of ranks (oversubscribed, unbound).
        args: the script and its arguments, passed to ``sys.executable``.
        timeout: seconds; past it the whole process group (mpirun and every rank) is killed
            and the result has return code 124 and a note at the end of ``stderr``.
        env: extra environment variables for the ranks.

    Returns:
        The ``CompletedProcess`` with text ``stdout``/``stderr`` captured.
    """
    mpirun = mpirun_path()
    if mpirun is None:
        raise RuntimeError("mpirun not found next to python or on PATH")
    full_env = dict(os.environ)
    full_env.update(THREAD_ENV)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        full_env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    full_env.update(env or {})
    cmd = [mpirun, "-n", str(nprocs), "--oversubscribe", "--bind-to", "none", *MCA_FLAGS,
           sys.executable, *args]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err += f"\nrun_mpi: killed after {timeout:.0f} s (timeout)"
        code = 124
    return subprocess.CompletedProcess(cmd, code, out, err)
