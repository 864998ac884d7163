"""An emulated multi-host cluster on this Linux machine, for tests and benchmarks.

Each emulated host is a network namespace with its own IP address and hostname, all joined by a
bridge; every host's link is capped at a bandwidth (``tc tbf``, full duplex), and ranks on one
host talk over its loopback at full speed. Jobs run with a real ``mpirun`` across the hosts.
The work is done by the scripts in ``launch/emulate/`` (see ``launch/README.md``); this module
drives them::

    from gnnsys.emulate import EmulatedCluster, emulation_available

    ok, why = emulation_available()
    with EmulatedCluster(hosts=2, rate="200mbit", ranks_per_host=2) as cluster:
        result = cluster.run(["python", "script.py"], timeout=60)

Building a cluster needs root (network namespaces); elsewhere :func:`emulation_available`
says why not and :class:`EmulatedCluster` raises :class:`EmulationUnavailable`.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from gnnsys.errors import RuntimeFailure, UserError

SCRIPTS = Path(__file__).resolve().parents[1] / "launch" / "emulate"
UNAVAILABLE_CODE = 77  # exit code of launch/emulate/up where namespaces are not allowed
TIMEOUT_CODE = 124  # return code of EmulatedCluster.run when the job hit its timeout


class EmulationUnavailable(RuntimeFailure):
    """Network namespaces cannot be made on this machine (not root, no permission, no tools)."""


def emulation_available() -> Tuple[bool, str]:
    """Return ``(True, "")`` when an emulated cluster can be built here, else ``(False, reason)``.

    Probes for real (root, ``ip``/``tc``/``unshare``, creating a namespace with a veth pair and
    a tbf qdisc, then removing it); takes a few tens of milliseconds.
    """
    up = SCRIPTS / "up"
    if not up.exists():
        return False, f"{up} is missing"
    try:
        proc = subprocess.run([str(up), "--check"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot run {up}: {exc}"
    if proc.returncode == 0:
        return True, ""
    return False, _last_line(proc.stderr) or f"{up} --check exited {proc.returncode}"


class EmulatedCluster:
    """A context manager holding an emulated cluster: built on enter, torn down on exit.

    Args:
        hosts: number of emulated hosts.
        rate: full-duplex link speed of every host in ``tc`` syntax (``"200mbit"``, ``"1gbit"``).
        ranks_per_host: ranks started on each host by :meth:`run` (consecutive world ranks).
        subnet: the first three octets of the host addresses (host i is ``subnet.(11+i)``).

    Attributes (set once built):
        prefix: the bed's name; its namespaces are ``<prefix>sw`` and ``<prefix>h<i>``.
        host_ips: IP address of each host, host 0 first (rank 0 runs on host 0).
        hostfile: path of the mpirun hostfile (``"<ip> slots=<ranks_per_host>"`` per line).

    Teardown also runs when the body raises (KeyboardInterrupt included); a bed left by a
    process killed outright is removed by the next cluster built (``launch/emulate/down
    --stale``). Raises :class:`EmulationUnavailable` where namespaces are not allowed and
    :class:`UserError` for a bad argument.
    """

    def __init__(self, hosts: int = 2, rate: str = "200mbit", ranks_per_host: int = 2,
                 subnet: str = "10.77.0") -> None:
        self.hosts = hosts
        self.rate = rate
        self.ranks_per_host = ranks_per_host
        self.subnet = subnet
        self.prefix: Optional[str] = None
        self.host_ips: List[str] = []
        self.hostfile: Optional[Path] = None
        self._env: Dict[str, str] = {}

    @staticmethod
    def available() -> Tuple[bool, str]:
        """Same as :func:`emulation_available`."""
        return emulation_available()

    @property
    def size(self) -> int:
        """Number of ranks :meth:`run` starts (``hosts * ranks_per_host``)."""
        return self.hosts * self.ranks_per_host

    def __enter__(self) -> "EmulatedCluster":
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self) -> None:
        """Build the cluster (``launch/emulate/up``); :meth:`close` must follow (or use ``with``)."""
        if self.prefix is not None:
            raise RuntimeFailure(f"emulated cluster {self.prefix} is already up")
        subprocess.run([str(SCRIPTS / "down"), "--stale"], capture_output=True, timeout=120)
        self.prefix = "gs" + os.urandom(3).hex()
        proc = subprocess.run(
            [str(SCRIPTS / "up"), "--hosts", str(self.hosts), "--rate", str(self.rate),
             "--ranks-per-host", str(self.ranks_per_host), "--subnet", str(self.subnet),
             "--prefix", self.prefix, "--owner", str(os.getpid())],
            capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            reason = _last_line(proc.stderr) or f"launch/emulate/up exited {proc.returncode}"
            if proc.returncode == UNAVAILABLE_CODE:
                raise EmulationUnavailable(reason)
            if proc.returncode == 2:
                raise UserError(reason)
            raise RuntimeFailure(reason)
        self._env = _parse_exports(proc.stdout)
        self.host_ips = self._env["EMU_IPS"].split()
        self.hostfile = Path(self._env["EMU_HOSTFILE"])

    def close(self) -> None:
        """Stop every process in the cluster and remove it; safe to call twice."""
        if self.prefix is None:
            return
        proc = subprocess.run([str(SCRIPTS / "down"), self.prefix], capture_output=True,
                              text=True, timeout=120)
        prefix, self.prefix = self.prefix, None
        if proc.returncode != 0:
            raise RuntimeFailure(f"could not remove emulated cluster {prefix}: "
                                 f"{_last_line(proc.stderr)}")

    def run(self, args: List[str], timeout: float, env: Optional[Dict[str, str]] = None,
            mpirun_args: Sequence[str] = ()) -> subprocess.CompletedProcess:
        """Run ``mpirun ... <args>`` on all ``size`` ranks across the hosts and wait for it.

        Args:
            args: the command every rank runs (``["python", "x.py"]``: the ranks' PATH starts
                with the directory of ``sys.executable``, which must also hold ``mpirun``).
            timeout: seconds; past it every process of the job is killed and the result has
                return code 124 and a note at the end of ``stderr``.
            env: extra environment variables, exported to every rank.
            mpirun_args: extra ``mpirun`` options, e.g. ``["--mca", "btl_tcp_links", "2"]``
                (words without whitespace).

        Returns:
            The ``CompletedProcess`` with the job's exit code and text ``stdout``/``stderr``.
        """
        if self.prefix is None:
            raise RuntimeFailure("the emulated cluster is not up (use it in a `with` block)")
        full_env = dict(os.environ)
        full_env.update(self._env)
        full_env["EMU_MPIRUN"] = str(Path(sys.executable).parent / "mpirun")
        extra = dict(env or {})
        full_env.update(extra)
        full_env["EMU_EXPORT"] = " ".join(extra)
        if any(not word or any(ch.isspace() for ch in word) for word in mpirun_args):
            raise UserError(f"mpirun_args must be words without whitespace: {list(mpirun_args)}")
        full_env["EMU_MPIRUN_ARGS"] = " ".join(mpirun_args)
        cmd = [str(SCRIPTS / "mpijob"), "--", *args]
        proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
            code = proc.returncode
        except BaseException as exc:  # timeout, or KeyboardInterrupt: kill the whole job
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            subprocess.run([str(SCRIPTS / "down"), "--procs", self.prefix],
                           capture_output=True, timeout=60)
            out, err = proc.communicate()
            if not isinstance(exc, subprocess.TimeoutExpired):
                raise
            err += f"\nEmulatedCluster.run: killed after {timeout:g} s (timeout)"
            code = TIMEOUT_CODE
        return subprocess.CompletedProcess(cmd, code, out, err)


def _parse_exports(text: str) -> Dict[str, str]:
    """Return the variables set by the ``export NAME=VALUE`` lines (shell-quoted) of ``text``."""
    env = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export "):].split("=", 1)
            env[name] = "".join(shlex.split(value))
    return env


def _last_line(text: str) -> str:
    """Return the last non-empty line of ``text`` (stripped), or ``""``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
