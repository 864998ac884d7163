"""Helpers every benchmark suite shares: timing, load and memory sampling, the machine, files.

Nothing here knows a suite; suites (``gnnsys.bench.<suite>``) and the report use these.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import psutil

from gnnsys.errors import UserError

REPO = Path(__file__).resolve().parents[2]
DGL_PYTHON = REPO / ".venv-dgl" / "bin" / "python"
GIB = float(1 << 30)
# Payload share of the line rate over TCP/IPv4 with 1500-byte frames, as measured on the
# emulated bed on a quiet machine (launch/README.md: 23.9 MB/s on 200mbit, 120 MB/s on 1gbit).
TCP_EFFICIENCY = 0.956
_RATE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([kmg]?)bit")


def parse_rate(rate: str) -> float:
    """Return the TCP payload MB/s (10^6 B/s) of a ``tc`` rate such as ``200mbit``/``1gbit``
    (line rate times :data:`TCP_EFFICIENCY`); raise :class:`UserError` naming a bad rate."""
    match = _RATE.fullmatch(rate.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"bad bandwidth {rate!r} (use tc syntax such as 50mbit, 200mbit, 1gbit)")
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[match.group(2)]
    return float(match.group(1)) * scale / 8 / 1e6 * TCP_EFFICIENCY


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    """Return the smallest wall time of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def children_cpu_s() -> float:
    """Return the user + system CPU seconds of this process's reaped children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class LoadSampler:
    """Samples the 1-minute load average every ``period`` seconds while in a ``with`` block."""

    def __init__(self, period: float = 5.0) -> None:
        self.period = period
        self.samples: List[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.period):
                return

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> Dict[str, float]:
        """Return ``{"mean": m, "max": x}`` of the sampled 1-minute load averages."""
        samples = self.samples or [os.getloadavg()[0]]
        return {"mean": round(float(np.mean(samples)), 2), "max": round(float(np.max(samples)), 2)}


class TreeRssPoller:
    """Samples the summed RSS of a process and all its descendants in a background thread.

    Args:
        pid: the root process.
        interval: seconds between samples.

    :meth:`stop` returns the largest sum seen, in bytes.
    """

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root, self.interval, self.peak_bytes = psutil.Process(pid), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                for proc in [self.root, *self.root.children(recursive=True)]:
                    total += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass  # a process ended mid-sample; the next sample counts the rest
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling; return the peak summed RSS in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak_bytes


def run_measured(cmd: Sequence[str], timeout: float, env: Optional[Dict[str, str]] = None,
                 cwd: Optional[str] = None) -> Dict[str, object]:
    """Run ``cmd`` as a child process; return its exit code, output, wall time, CPU seconds,
    the peak summed RSS of its process tree (GiB) and the 1-minute load when it started.

    A child past ``timeout`` seconds is killed and reported with ``returncode`` 124.
    """
    load = os.getloadavg()[0]
    cpu0 = children_cpu_s()
    start = time.perf_counter()
    proc = psutil.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})), cwd=cwd)
    poller = TreeRssPoller(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        for child in proc.children(recursive=True):
            child.kill()
        proc.kill()
        out, err = proc.communicate()
        code, err = 124, err + f"\nkilled after {timeout:g} s (timeout)"
    finally:
        peak = poller.stop()
    return {"returncode": code, "stdout": out, "stderr": err,
            "wall_s": time.perf_counter() - start, "cpu_s": children_cpu_s() - cpu0,
            "peak_rss_gib": peak / GIB, "load_avg": load}


def dgl_python() -> Optional[Path]:
    """Return the python of the DGL environment (``.venv-dgl``) when it exists, else None."""
    return DGL_PYTHON if DGL_PYTHON.exists() else None


def mpirun_env() -> Dict[str, str]:
    """Return the environment for mpirun on this host (root flags, one OpenMP thread per rank)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return env


def local_mpirun(ranks: int) -> List[str]:
    """Return the ``mpirun`` prefix that starts ``ranks`` ranks on this host over shared memory
    (oversubscribed, unbound, yielding when idle: the ranks may outnumber the cores)."""
    return [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks), "--oversubscribe",
            "--bind-to", "none", "--mca", "btl", "self,sm", "--mca", "pml", "ob1", "--mca",
            "mpi_yield_when_idle", "1"]


def gnnsys_cmd() -> List[str]:
    """Return the command that runs ``gnnsys`` with this interpreter (no PATH lookup)."""
    return [sys.executable, "-m", "gnnsys.cli"]


def machine() -> Dict[str, object]:
    """Return the machine a benchmark ran on: CPU model, cores, RAM, load, versions."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), model)
    except OSError:
        pass
    import torch

    return {"cpu_model": model, "cores": os.cpu_count(),
            "ram_gib": round(psutil.virtual_memory().total / GIB, 1),
            "load_avg": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "cuda": torch.cuda.is_available(),
            "hostname": platform.node()}


def today() -> str:
    """Return today's UTC date as ``YYYY-MM-DD`` (the stamp of result files)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")


def result_path(out: Path, suite: str, quick: bool) -> Path:
    """Return ``out/<suite>-<date>.json`` (``-quick`` before ``.json`` for a quick run)."""
    return Path(out) / f"{suite}-{today()}{'-quick' if quick else ''}.json"


def write_result(path: Path, result: dict) -> Path:
    """Write ``result`` as indented JSON to ``path`` atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float))
    os.replace(tmp, path)
    return path


_RESULT = re.compile(r"(?P<suite>[a-z]+)-(?P<date>\d{4}-\d{2}-\d{2})(?P<quick>-quick)?\.json")


def newest_results(out: Path, quick: bool = False) -> Dict[str, Path]:
    """Return ``suite -> result file`` in ``out``: the newest full run of each suite, else its
    newest quick run (``quick=True``: the other way round); newest by date stamp, then
    modification time."""
    best: Dict[str, tuple] = {}
    for path in Path(out).glob("*.json"):
        match = _RESULT.fullmatch(path.name)
        if not match:
            continue
        key = ((match.group("quick") is not None) == quick, match.group("date"),
               path.stat().st_mtime)
        suite = match.group("suite")
        if suite not in best or key > best[suite][0]:
            best[suite] = (key, path)
    return {suite: path for suite, (_, path) in best.items()}
