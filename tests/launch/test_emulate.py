"""The emulated cluster (gnnsys.emulate, launch/emulate/*): real mpirun across network namespaces.

Tests that build a cluster are skipped, with the probe's reason, where network namespaces cannot
be made (not root, a sandbox).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gnnsys.emulate import SCRIPTS, TIMEOUT_CODE, EmulatedCluster, emulation_available

WORKER = str(Path(__file__).with_name("_bed_worker.py"))
AVAILABLE, REASON = emulation_available()
needs_bed = pytest.mark.skipif(not AVAILABLE, reason=f"no emulated cluster: {REASON}")


def bed_namespaces(prefix: str) -> list:
    """Return the network namespaces of bed ``prefix`` that exist now."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


@pytest.mark.parametrize("argv", [
    ["--hosts", "two", "--", "true"],
    ["--rate", "fast", "--", "true"],
    ["--timeout", "soon", "--", "true"],
    ["--frobnicate", "--", "true"],
    ["--hosts", "2"],  # no command
])
def test_run_rejects_bad_arguments_in_one_line(argv):
    proc = subprocess.run([str(SCRIPTS / "run"), *argv], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stdout == ""


def test_available_gives_a_reason_when_not():
    ok, reason = emulation_available()
    assert ok == (reason == "")


@needs_bed
def test_ranks_span_hosts_and_teardown_after_failure_and_timeout():
    with EmulatedCluster(hosts=2, rate="200mbit", ranks_per_host=2) as cluster:
        prefix = cluster.prefix
        assert sorted(bed_namespaces(prefix)) == [f"{prefix}h0", f"{prefix}h1", f"{prefix}sw"]
        assert cluster.host_ips == ["10.77.0.11", "10.77.0.12"]
        assert cluster.hostfile.read_text().split("\n")[:2] == [
            "10.77.0.11 slots=2", "10.77.0.12 slots=2"]

        ok = cluster.run([sys.executable, WORKER], timeout=60, env={"BED_PREFIX": prefix})
        assert ok.returncode == 0, ok.stderr
        assert "BED OK" in ok.stdout

        failed = cluster.run([sys.executable, WORKER, "3"], timeout=60)
        assert failed.returncode == 3, failed.stderr

        hung = cluster.run([sys.executable, WORKER, "sleep"], timeout=4)
        assert hung.returncode == TIMEOUT_CODE
        assert "timeout" in hung.stderr
        for ns in bed_namespaces(prefix):  # the killed job left no process behind
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            assert pids.stdout.strip() == "", ns
    assert cluster.prefix is None
    assert bed_namespaces(prefix) == []
    assert not cluster.hostfile.exists()


@needs_bed
def test_teardown_when_the_body_raises():
    with pytest.raises(KeyboardInterrupt):
        with EmulatedCluster(hosts=2, ranks_per_host=1) as cluster:
            prefix = cluster.prefix
            assert len(bed_namespaces(prefix)) == 3
            raise KeyboardInterrupt
    assert bed_namespaces(prefix) == []


@needs_bed
def test_run_script_propagates_the_exit_code_and_cleans_up():
    proc = subprocess.run(
        [str(SCRIPTS / "run"), "--hosts", "2", "--ranks-per-host", "1", "--rate", "1gbit", "--",
         sys.executable, "-c", "import sys; sys.exit(5)"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 5, proc.stderr
    prefix = re.search(r"bed (gs[0-9a-f]+)", proc.stderr).group(1)  # run's first stderr line
    assert bed_namespaces(prefix) == []
