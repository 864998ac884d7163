"""The exchange suite: bandwidth parsing, the model bounds, comparisons, settings, a bed smoke run.

The smoke run (marked netbed + slow) builds one emulated cluster and trains a tiny graph; it is
skipped where network namespaces cannot be made.
"""
from __future__ import annotations

import json

import pytest

from gnnsys.bench import exchange as ex
from gnnsys.bench.common import TCP_EFFICIENCY, parse_rate
from gnnsys.bench.settings import BY_KEY, available, parse_settings
from gnnsys.cli import main
from gnnsys.emulate import emulation_available
from gnnsys.errors import UserError


def record(epoch, epoch_s, compute_s, codec_s, inter_feat, sync=None, test_acc=None):
    """An epoch record with the metrics keys the suite reads."""
    inter = {"features": inter_feat, "feature_grads": inter_feat // 2, "weight_grads": 1000}
    rec = {"epoch": epoch, "loss": 1.0, "epoch_s": epoch_s, "compute_s": compute_s,
           "comm_s": epoch_s - compute_s, "comm_wait_s": epoch_s - compute_s - codec_s,
           "codec_s": codec_s, "test_acc": test_acc,
           "bytes": {"inter": inter, "intra": dict(inter)}}
    if sync is not None:
        rec["sync"] = sync
    return rec


def run_of(records, error=None):
    run = {"records": records, "load": {"mean": 1.0, "max": 1.0}, "wall_s": 1.0, "cpu_s": 1.0,
           "final": "", "log": "x.log"}
    if error:
        run["error"] = error
    return run


def test_parse_rate_reads_tc_rates_and_names_a_bad_one():
    assert parse_rate("200mbit") == pytest.approx(25.0 * TCP_EFFICIENCY)
    assert parse_rate("1gbit") == pytest.approx(125.0 * TCP_EFFICIENCY)
    assert parse_rate("50mbit") == pytest.approx(6.25 * TCP_EFFICIENCY)
    for bad in ("fast", "0mbit", "10mb"):
        with pytest.raises(UserError, match=f"bad bandwidth '{bad}'"):
            parse_rate(bad)


def test_bounds_use_the_busier_host_and_the_right_formula():
    shares = {"features": [0.75, 0.25], "feature_grads": [0.25, 0.75],
              "weight_grads": [0.5, 0.5]}
    recs = [record(e, 10.0, 4.0, 1.0, 24_000_000) for e in range(3)]
    sync = ex.summarize(BY_KEY["fp32"], run_of(recs), 1, shares, 12.0)
    host0 = 24e6 * 0.75 + 12e6 * 0.25 + 500
    assert sync["host_bytes"] == pytest.approx(host0)
    assert sync["bound_s"] == pytest.approx(4.0 + 1.0 + host0 / 12e6)
    pipe = ex.summarize(BY_KEY["1bit-pipeline"],
                        run_of([record(0, 30.0, 4.0, 0.0, 24_000_000, sync=True)] + recs),
                        1, shares, 12.0)
    assert pipe["epochs_timed"] == 3  # the sync epoch is left out
    assert pipe["bound_s"] == pytest.approx(max(4.0, host0 / 12e6) + 1.0)


def test_comparisons_against_fp32_and_failures_are_kept():
    shares = {k: [0.5, 0.5] for k in ex.KINDS}
    fp32 = ex.summarize(BY_KEY["fp32"], run_of([record(e, 10.0, 4.0, 0.0, 30_000_000)
                                                for e in range(3)]), 1, shares, 24.0)
    one = ex.summarize(BY_KEY["1bit"], run_of([record(e, 5.0, 4.0, 0.5, 1_000_000,
                                                      test_acc=0.5 + e / 10)
                                               for e in range(3)]), 1, shares, 24.0)
    pipe = ex.summarize(BY_KEY["1bit-pipeline"], run_of([record(e, 2.0, 1.5, 0.5, 1_000_000)
                                                         for e in range(3)]), 1, shares, 24.0)
    failed = ex.summarize(BY_KEY["inter1bit"], run_of([], error="exit 1"), 1, shares, 24.0)
    rows = [fp32, one, pipe, failed]
    ex.add_comparisons(rows)
    assert one["speedup"] == pytest.approx(2.0)
    assert one["bytes_ratio"] == pytest.approx(fp32["inter_bytes_total"] /
                                               one["inter_bytes_total"])
    assert pipe["epoch_s_amortised"] == pytest.approx((9 * 2.0 + 10.0) / 10)
    assert failed["error"] == "exit 1" and "speedup" not in failed
    result = {"rates": {"200mbit": {"link_mb_s": 24.0, "probe_mb_s": None,
                                    "load": {"mean": 2.0, "max": 3.0}, "rows": rows}}}
    text = ex.markdown(result)
    assert "| 200mbit | intra fp32 + inter 1-bit | failed: exit 1 (x.log) |" in text
    assert "| 0.7000 |" in text  # the last evaluated test accuracy of 1-bit sync


def test_settings_keep_the_baseline_and_skip_what_train_lacks(monkeypatch):
    assert [s.key for s in parse_settings("1bit")] == ["fp32", "1bit"]
    assert "preload-full" not in [s.key for s in parse_settings(None, quick=True)]
    with pytest.raises(UserError, match="unknown setting"):
        parse_settings("fp32,nope")
    monkeypatch.setattr("gnnsys.bench.settings.subprocess.run",
                        lambda *a, **k: type("P", (), {"stdout": "--bits --pipeline"})())
    keep, skipped = available(parse_settings("fp32,preload"))
    assert [s.key for s in keep] == ["fp32"]
    assert skipped == {"preload": "skipped: `gnnsys train` has no --mode yet"}


def test_exchange_without_namespaces_is_a_user_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("gnnsys.emulate.emulation_available", lambda: (False, "not root"))
    assert main(["bench", "exchange", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("gnnsys bench: error: the exchange suite needs an emulated cluster "
                       "(root, network namespaces): not root")
    assert not list(tmp_path.glob("*.json"))


AVAILABLE, REASON = emulation_available()


@pytest.mark.netbed
@pytest.mark.slow
@pytest.mark.mpi
@pytest.mark.skipif(not AVAILABLE, reason=f"no emulated cluster: {REASON}")
def test_smoke_run_on_the_bed(tmp_path, capsys):
    assert main(["bench", "exchange", "--nodes", "600", "--epochs", "3", "--bandwidths",
                 "1gbit", "--settings", "fp32", "--quick", "--out", str(tmp_path),
                 "--timeout", "120"]) == 0
    (path,) = tmp_path.glob("exchange-*-quick.json")
    data = json.loads(path.read_text())
    (row,) = data["rates"]["1gbit"]["rows"]
    assert row["setting"] == "fp32 sync" and row["epochs_timed"] == 2
    assert row["inter_bytes"]["features"] > 0 and row["bound_s"] > 0
    assert all(a is not None for a in row["test_acc"])  # the fastest link evaluates every epoch
    assert (tmp_path / data["plots"][0]).stat().st_size > 0
    assert "| 1gbit | fp32 sync |" in capsys.readouterr().out


def test_partition_folders_differ_for_every_preload_flag_value():
    slugs = {ex._slug(["--preload-hops", "3", "--ext-fanout", f]) for f in ("-1", "1", "15")}
    assert len(slugs) == 3
    assert ex._slug(["--preload-hops", "0"]) == ""
