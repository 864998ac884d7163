"""The accuracy suite: its plan per dataset, the PyG reference, a run with mpirun faked, the
target rows it feeds (met / not met / not measured) and its table."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gnnsys import config
from gnnsys.bench import accuracy as acc
from gnnsys.bench.options import BenchOptions
from gnnsys.bench.targets import NOT_MEASURED, evaluate
from gnnsys.data import load_dataset
from gnnsys.errors import UserError
from gnnsys.train.fingerprint import code_fingerprint


def test_plan_full_quick_and_overrides(tmp_path):
    full = acc.plan(BenchOptions(out=tmp_path))
    assert list(full) == ["cora", "citeseer", "synthetic:200000"]
    assert [s.key for s in full["cora"]["settings"]] == ["fp32", "1bit", "1bit-pipeline"]
    assert full["cora"]["seeds"] == [0, 1, 2, 3, 4] and full["cora"]["epochs"] == 200
    syn = full["synthetic:200000"]
    assert syn["seeds"] == [0, 1] and syn["epochs"] == 100 and syn["eval_every"] == 10
    assert [s.key for s in syn["settings"]] == ["fp32", "1bit-pipeline"]
    assert syn["recipe"].pyg and not full["cora"]["recipe"].pyg
    assert "--hidden" in syn["recipe"].train_flags() and "256" in syn["recipe"].train_flags()
    quick = acc.plan(BenchOptions(out=tmp_path, quick=True))
    assert list(quick) == ["cora"]  # never the 200k graph in a quick run
    assert quick["cora"]["seeds"] == [0] and quick["cora"]["epochs"] == 100
    tiny = acc.plan(BenchOptions(out=tmp_path, quick=True, datasets=["synthetic:2000"]))
    assert [s.key for s in tiny["synthetic:2000"]["settings"]] == ["fp32"]
    given = acc.plan(BenchOptions(out=tmp_path, datasets=["synthetic:300", "citeseer"],
                                  seeds=3, epochs=7, settings=["fp32", "1bit", "preload"]))
    assert list(given) == ["synthetic:300", "citeseer"]
    for job in given.values():  # preload needs several hosts: dropped
        assert job["seeds"] == [0, 1, 2] and job["epochs"] == 7
        assert [s.key for s in job["settings"]] == ["fp32", "1bit"]


def test_pyg_reference_learns_and_is_reproducible():
    graph = load_dataset("synthetic:2000")
    final, epochs, curve = acc.pyg_reference(graph, acc.SYNTHETIC, 0, 10, 5)
    assert epochs == [4, 9] and curve[-1] == final
    assert final > 0.5  # 10 classes: chance is 0.1
    assert acc.pyg_reference(graph, acc.SYNTHETIC, 0, 10, 5)[0] == final


def _fake_training(calls):
    """A run_seed stand-in: writes the metrics file gnnsys train would, accuracy 0.8 (+0.01 for
    1-bit flags, +0.001 per seed)."""

    def run_seed(folder, parts, model, seed, extra, timeout=0):
        calls.append(list(extra))
        epochs = int(extra[extra.index("--epochs") + 1])
        every = int(extra[extra.index("--eval-every") + 1])
        value = 0.8 + 0.01 * ("1" in extra[extra.index("--bits") + 1:][:1]) + 0.001 * seed
        parser = argparse.ArgumentParser()
        config.add_arguments(parser)
        cfg = config.config_from_args(parser.parse_args(
            [folder, "--model", model, "--seed", str(seed), "--no-progress", *extra]))
        lines = [{"config": cfg.to_dict(), "code": code_fingerprint()}] + [
            {"epoch": e, "epoch_s": 0.5,
             "test_acc": value if (e + 1) % every == 0 or e == epochs - 1 else None}
            for e in range(epochs)]
        Path(extra[extra.index("--metrics") + 1]).write_text(
            "\n".join(json.dumps(line) for line in lines))
        return value

    return run_seed


def test_run_with_faked_mpirun_compares_settings_and_pyg(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(acc, "run_seed", _fake_training(calls))
    monkeypatch.setattr(acc, "partition", lambda dataset, parts, out: Path(out))
    opts = BenchOptions(out=tmp_path, datasets=["synthetic:1500"], seeds=2, epochs=6,
                        settings=["fp32", "1bit-pipeline"])
    result = acc.run(opts)
    per = result["results"]["synthetic:1500"]
    assert list(per) == ["fp32", "1bit-pipeline", acc.PYG]
    assert len(calls) == 4 and all("--hidden" in c and "256" in c for c in calls)
    assert per["fp32"]["test_acc"] == [0.8, 0.801] and per["fp32"]["curve_epochs"] == [5]
    assert per["1bit-pipeline"]["pp_vs_fp32"] == pytest.approx(1.0)
    pyg = per[acc.PYG]
    assert pyg["ranks"] == 1 and len(pyg["test_acc"]) == 2 and pyg["curve_epochs"] == [5]
    assert pyg["pp_vs_fp32"] == pytest.approx(100 * (pyg["mean"] - per["fp32"]["mean"]))
    assert result["config"]["per_dataset"]["synthetic:1500"]["pyg"] is True
    table = acc.markdown(result)
    assert "| synthetic:1500 | PyG GCNConv, 1 process | 1 | 2 |" in table
    assert "| synthetic:1500 | 1-bit + pipeline | 4 | 2 | 0.8105 ± 0.0005 |" in table
    (png,) = acc.plot(result, tmp_path / "acc")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_finished_runs_and_pyg_seeds_are_reused_until_an_option_or_the_code_changes(tmp_path, monkeypatch):
    calls, pyg_calls = [], []
    monkeypatch.setattr(acc, "run_seed", _fake_training(calls))
    monkeypatch.setattr(acc, "partition", lambda dataset, parts, out: Path(out))
    real_pyg = acc.pyg_reference
    monkeypatch.setattr(acc, "pyg_reference", lambda *a: pyg_calls.append(a) or real_pyg(*a))
    opts = BenchOptions(out=tmp_path, datasets=["synthetic:1500"], seeds=2, epochs=6,
                        settings=["fp32"])
    first = acc.run(opts)["results"]["synthetic:1500"]
    assert (len(calls), len(pyg_calls)) == (2, 2) and first["fp32"]["reused"] == 0
    again = acc.run(opts)["results"]["synthetic:1500"]
    assert (len(calls), len(pyg_calls)) == (2, 2)
    assert again["fp32"]["reused"] == 2 and again[acc.PYG]["reused"] == 2
    assert again["fp32"]["test_acc"] == first["fp32"]["test_acc"]
    assert again["fp32"]["seconds"] == [3.0, 3.0]  # 6 recorded epochs of 0.5 s
    assert again[acc.PYG]["test_acc"] == first[acc.PYG]["test_acc"]
    runs = tmp_path / "work" / "accuracy" / "runs"
    metrics = runs / "synthetic-1500-fp32-0.jsonl"
    header, *epochs = metrics.read_text().splitlines()
    stale = json.loads(header)
    del stale["config"]["stale_grads"]  # a run made before that option existed
    metrics.write_text("\n".join([json.dumps(stale), *epochs]))
    acc.run(opts)
    assert len(calls) == 3  # only the stale run trained again, and rewrote its file
    assert json.loads(metrics.read_text().splitlines()[0])["config"]["stale_grads"] is False
    header, *epochs = metrics.read_text().splitlines()
    metrics.write_text("\n".join([json.dumps({**json.loads(header), "code": "0" * 16}),
                                  *epochs]))  # the same options, trained by other code
    acc.run(opts)
    assert len(calls) == 4
    acc.run(BenchOptions(out=tmp_path, datasets=["synthetic:1500"], seeds=2, epochs=7,
                         settings=["fp32"]))
    assert (len(calls), len(pyg_calls)) == (6, 4)


@pytest.mark.parametrize("spec, message", [("nosuch", "unknown dataset 'nosuch'"),
                                           ("synthetic:12x", "bad node count '12x'")])
def test_bad_dataset_is_a_user_error_before_any_run(tmp_path, monkeypatch, spec, message):
    monkeypatch.setattr(acc, "partition", lambda *a: pytest.fail("partitioned"))
    with pytest.raises(UserError, match=message):
        acc.run(BenchOptions(out=tmp_path, datasets=["cora", spec]))


def _row(mean: float, seeds: int = 2, **extra) -> dict:
    return {"setting": "x", "test_acc": [mean] * seeds, "mean": mean, "std": 0.0,
            "curve": [mean], **extra}


def _result(results: dict, quick: bool = False) -> dict:
    return {"quick": quick, "published": acc.PUBLISHED, "results": results}


def _rows(result: dict) -> dict:
    return {r.target: r for r in evaluate({"accuracy": result}) if r.issue in (4, 5)}


def _find(rows: dict, start: str):
    (row,) = [r for t, r in rows.items() if t.startswith(start)]
    return row


def test_target_rows_met_not_met_and_not_measured():
    big = "synthetic:200000"
    met = _rows(_result({big: {"fp32": _row(0.731), "1bit-pipeline": _row(0.733,
                                                                             pp_vs_fp32=0.2),
                               acc.PYG: _row(0.734, pp_vs_fp32=0.3)}}))
    row = _find(met, f"{big} accuracy vs single-process PyG, 2 seeds")
    assert row.measured == "-0.30 pp (gnnsys 0.7310)" and row.goal == "within 0.5 pp"
    assert row.met is True and row.bound == "PyG 0.7340 ± 0.0000" and "2 seed(s)" in row.note
    pipe = _find(met, f"1-bit + pipeline vs fp32 sync accuracy, {big} (2 seeds)")
    assert pipe.measured == "+0.20 pp" and pipe.met is True
    assert _find(met, "GCN cora test accuracy").measured == NOT_MEASURED

    missed = _rows(_result({big: {"fp32": _row(0.731), acc.PYG: _row(0.739, 5,
                                                                     pp_vs_fp32=0.8)}}))
    row = _find(missed, f"{big} accuracy vs single-process PyG, 5 seeds")
    assert row.measured.startswith("-0.80 pp") and row.met is False and row.note == ""
    assert _find(missed, "1-bit + pipeline vs fp32 sync accuracy, a synthetic graph"
                 ).measured == NOT_MEASURED

    small = _rows(_result({"synthetic:5000": {"fp32": _row(0.9), acc.PYG: _row(
        0.9, 1, pp_vs_fp32=0.0)}}, quick=True))
    row = _find(small, "synthetic:5000 accuracy vs single-process PyG, 1 seeds")
    assert row.met is None and "target is on synthetic:200000" in row.note
    assert row.note.startswith("quick run")

    nothing = _rows(_result({}))
    row = _find(nothing, f"{big} accuracy vs single-process PyG")
    assert row.measured == NOT_MEASURED and row.met is None and row.goal == "within 0.5 pp"
    assert sum(r.measured == NOT_MEASURED for r in nothing.values()
               if r.target.startswith("1-bit + pipeline vs fp32")) == 3
