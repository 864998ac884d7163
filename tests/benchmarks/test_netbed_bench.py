"""benchmarks/netbed_bench.py: the model arithmetic, the report, and a smoke run on the bed.

The smoke run (marked netbed + slow) builds one emulated cluster and trains a tiny graph for 2
epochs; it is skipped where network namespaces cannot be made.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gnnsys.emulate import emulation_available

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "netbed_bench.py"


def _load():
    spec = importlib.util.spec_from_file_location("netbed_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


nb = _load()


def record(epoch, epoch_s, compute_s, codec_s, inter_feat, sync=None):
    """An epoch record with the metrics keys the benchmark reads."""
    inter = {"features": inter_feat, "feature_grads": inter_feat // 2, "weight_grads": 1000}
    rec = {"epoch": epoch, "loss": 1.0, "epoch_s": epoch_s, "compute_s": compute_s,
           "comm_s": epoch_s - compute_s, "comm_wait_s": epoch_s - compute_s - codec_s,
           "codec_s": codec_s, "bytes": {"inter": inter, "intra": dict(inter)}}
    if sync is not None:
        rec["sync"] = sync
    return rec


def run_of(records):
    return {"records": records, "load": {"mean": 1.0, "max": 1.0}, "wall_s": 1.0, "cpu_s": 1.0,
            "final": "", "log": "x.log"}


def test_payload_rate_parses_tc_rates():
    assert nb.payload_rate("200mbit") == pytest.approx(25.0 * nb.TCP_EFFICIENCY)
    assert nb.payload_rate("1gbit") == pytest.approx(125.0 * nb.TCP_EFFICIENCY)
    with pytest.raises(ValueError):
        nb.payload_rate("fast")


def test_bounds_use_the_busier_host_and_the_right_formula():
    shares = {"features": [0.75, 0.25], "feature_grads": [0.25, 0.75],
              "weight_grads": [0.5, 0.5]}
    recs = [record(e, 10.0, 4.0, 1.0, 24_000_000) for e in range(3)]
    sync = nb.summarize("fp32 sync", run_of(recs), 1, shares, 12.0)
    host0 = 24e6 * 0.75 + 12e6 * 0.25 + 500
    assert sync["host_bytes"] == pytest.approx(host0)
    assert sync["bound_s"] == pytest.approx(4.0 + 1.0 + host0 / 12e6)
    pipe = nb.summarize("1-bit + pipeline",
                        run_of([record(0, 30.0, 4.0, 0.0, 24_000_000, sync=True)] + recs),
                        1, shares, 12.0)
    assert pipe["epochs_timed"] == 3  # the sync epoch is left out
    assert pipe["bound_s"] == pytest.approx(max(4.0, host0 / 12e6) + 1.0)


def test_report_compares_with_fp32_and_marks_failures():
    shares = {k: [0.5, 0.5] for k in nb.KINDS}
    fp32 = nb.summarize("fp32 sync", run_of([record(e, 10.0, 4.0, 0.0, 30_000_000)
                                             for e in range(3)]), 1, shares, 24.0)
    one = nb.summarize("1-bit sync", run_of([record(e, 5.0, 4.0, 0.5, 1_000_000)
                                             for e in range(3)]), 1, shares, 24.0)
    pipe = nb.summarize("1-bit + pipeline", run_of([record(e, 2.0, 1.5, 0.5, 1_000_000)
                                                    for e in range(3)]), 1, shares, 24.0)
    failed = nb.summarize("intra fp32 + inter 1-bit", dict(run_of([]), error="exit 1"), 1,
                          shares, 24.0)
    rows = [fp32, one, pipe, failed]
    nb.add_comparisons(rows)
    assert one["speedup"] == pytest.approx(2.0)
    assert one["bytes_ratio"] == pytest.approx(fp32["inter_bytes_total"] /
                                               one["inter_bytes_total"])
    assert pipe["epoch_s_amortised"] == pytest.approx((9 * 2.0 + 10.0) / 10)
    results = {"rates": {"200mbit": {"link_mb_s": 24.0, "probe_mb_s": None, "c_ref_s": 3.0,
                                     "load": {"mean": 2.0, "max": 3.0}, "rows": rows}}}
    text = nb.markdown(results)
    assert "failed: exit 1" in text
    assert "fp32 sync epoch / 1-bit + pipeline epoch: 5.00 (>= 10) MISS" in text


def test_help_and_bad_options_exit_cleanly():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "--rates" in proc.stdout
    proc = subprocess.run([sys.executable, str(SCRIPT), "--epochs", "1"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "leaves no timed epoch" in proc.stderr
    proc = subprocess.run([sys.executable, str(SCRIPT), "--rates", "fast"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "bad rate 'fast'" in proc.stderr


def test_exits_2_in_one_line_without_namespaces(monkeypatch, capsys):
    monkeypatch.setattr(nb, "emulation_available", lambda: (False, "not root"))
    assert nb.main(["--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["netbed_bench: cannot build an emulated cluster here: not root"]


AVAILABLE, REASON = emulation_available()


@pytest.mark.netbed
@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.skipif(not AVAILABLE, reason=f"no emulated cluster: {REASON}")
def test_smoke_run_on_the_bed(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--nodes", "1000", "--epochs", "2", "--rates", "1gbit",
         "--settings", "fp32 sync", "--no-reference", "--partition", str(tmp_path / "part"),
         "--out", str(out), "--timeout", "120"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    row = results["rates"]["1gbit"]["rows"][0]
    assert row["setting"] == "fp32 sync" and row["epochs_timed"] == 1
    assert row["inter_bytes"]["features"] > 0 and row["bound_s"] > 0
    assert out.with_suffix(".png").stat().st_size > 0
    assert "| 1gbit | fp32 sync |" in proc.stdout
