"""The batching suite (issue 6 accuracy): plan, jobs, summaries, target rows, a tiny real run."""
from __future__ import annotations

import json

import pytest

from gnnsys.bench import batching as bt
from gnnsys.bench.options import BenchOptions
from gnnsys.bench.targets import evaluate


def run_row(setting: str, seed: int, acc: float, loss: float, dataset: str = "citeseer",
            preload_rows: int = 0) -> dict:
    """One job's result row as the worker writes it."""
    return {"dataset": dataset, "setting": setting, "seed": seed,
            "config": {"epochs": 20, "seed": seed}, "test_acc": acc, "val_acc": acc,
            "final_loss": loss, "seconds": 1.0, "epoch_s": 0.1, "steps_per_epoch": 1,
            "preload_rows": preload_rows, "inter_feature_bytes_per_epoch": 0 if preload_rows
            else 1000, "curve": [(9, acc - 0.1), (19, acc)]}


def fake_runs() -> list:
    runs = []
    for seed, base in ((0, 0.70), (1, 0.72)):
        runs += [run_row("exact", seed, base, 0.5),
                 run_row("minibatch", seed, base + 0.004, 0.6),
                 run_row("preload-full", seed, base, 0.5 + 2e-8, preload_rows=300),
                 run_row("preload-f15", seed, base - 0.02, 0.55, preload_rows=290)]
    return runs


def fake_result() -> dict:
    return {"suite": "batching", "quick": False, "target_pp": bt.TARGET_PP,
            "results": bt.summarize(fake_runs())}


def test_plan_defaults_quick_and_overrides():
    quick = bt.plan(BenchOptions(quick=True))
    assert list(quick) == ["citeseer"]
    assert quick["citeseer"]["seeds"] == [0] and quick["citeseer"]["epochs"] == bt.QUICK_EPOCHS
    full = bt.plan(BenchOptions())
    assert list(full) == ["citeseer", "synthetic:200000"]
    assert full["citeseer"]["seeds"] == [0, 1, 2, 3, 4] and full["citeseer"]["epochs"] == 200
    synth = full["synthetic:200000"]
    assert synth["seeds"] == [0] and synth["epochs"] == 100
    assert synth["train"]["hidden"] == 256 and synth["train"]["normalize_features"] == "none"
    assert full["citeseer"]["train"]["normalize_features"] == "row"
    given = bt.plan(BenchOptions(seeds=3, epochs=7, datasets=["synthetic:200000"]))
    assert given["synthetic:200000"]["seeds"] == [0, 1, 2]
    assert given["synthetic:200000"]["train"]["eval_every"] == 1  # max(1, 7 // 10)


def test_jobs_cover_every_seed_and_setting_on_its_partition():
    job = bt.plan(BenchOptions(seeds=2, epochs=10, datasets=["citeseer"]))["citeseer"]
    jobs = bt.jobs_of("citeseer", job, {-1: "/p/full", 15: "/p/f15"})
    assert [(j["seed"], j["setting"]) for j in jobs] == \
        [(s, k) for s in (0, 1)
         for k in ("exact", "minibatch", "minibatch-nocv", "preload-full", "preload-f15")]
    by = {(j["seed"], j["setting"]): j["config"] for j in jobs}
    assert by[(1, "minibatch")]["batch_size"] == "1024" and by[(1, "minibatch")]["fanouts"] \
        == "10,25" and by[(1, "minibatch")]["seed"] == 1
    assert by[(1, "minibatch-nocv")] == {**by[(1, "minibatch")], "control_variate": False}
    assert by[(1, "minibatch")]["control_variate"] is True
    assert by[(0, "preload-f15")]["partition"] == "/p/f15"
    assert by[(0, "preload-full")] == {**by[(0, "exact")], "mode": "preload"}
    from gnnsys.config import TrainConfig

    for config in by.values():  # every job is a valid gnnsys train configuration
        TrainConfig(**config).validate()


def test_summary_pairs_seeds_with_exact():
    per = bt.summarize(fake_runs())["citeseer"]
    assert list(per) == ["exact", "minibatch", "preload-full", "preload-f15"]
    assert per["exact"]["mean"] == pytest.approx(0.71) and per["exact"]["pp_vs_exact"] == 0
    assert per["minibatch"]["pp_vs_exact"] == pytest.approx(0.4)
    assert per["preload-f15"]["pp_vs_exact"] == pytest.approx(-2.0)
    assert per["preload-full"]["max_abs_acc_diff_vs_exact"] == 0
    assert per["preload-full"]["max_abs_loss_diff_vs_exact"] == pytest.approx(2e-8)
    assert per["minibatch"]["curve"] == pytest.approx([0.614, 0.714])
    assert per["minibatch"]["curve_epochs"] == [9, 19]


def test_target_rows_per_dataset_and_not_measured():
    rows = [r for r in evaluate({"batching": fake_result()}) if r.issue == 6]
    by = {r.target: r for r in rows}
    mini = by["minibatch (1024, fanouts 10,25) vs full-graph accuracy, citeseer (2 seeds)"]
    assert (mini.measured, mini.met) == ("+0.40 pp (0.7140)", True)
    assert mini.bound.startswith("exact 0.7100")
    f15 = by["preload (f = 15) vs exact accuracy, citeseer (2 seeds)"]
    assert (f15.measured, f15.met) == ("-2.00 pp (0.6900)", False)
    full = by["preload, full closure (--ext-fanout -1) = exact, citeseer (2 seeds)"]
    assert full.met is True and "max loss diff 2.0e-08" in full.measured
    for key in ("minibatch (1024, fanouts 10,25) vs full-graph accuracy, synthetic:200000",
                "preload (f = 15) vs exact accuracy, synthetic:200000",
                "preload, full closure (--ext-fanout -1) = exact, synthetic:200000"):
        assert by[key].measured == "not measured" and by[key].met is None
    none = [r for r in evaluate({}) if r.issue == 6 and "accuracy" in r.target]
    assert len(none) == 4 and all(r.measured == "not measured" for r in none)


def test_target_is_at_most_one_pp_below_exact():
    assert bt.meets_target(-1.0) and bt.meets_target(1.87) and bt.meets_target(0.0)
    assert not bt.meets_target(-1.01) and not bt.meets_target(-1.63)


def test_markdown_table_and_equality_line():
    text = bt.markdown(fake_result())
    assert "| citeseer | preload, f=15 | 2 | 20 x 1 | 0.6900 ± 0.0100 | -2.00 pp | NO |" in text
    assert "| citeseer | minibatch 1024, fanouts 10,25 | 2 |" in text and "| yes |" in text
    assert "citeseer: max abs acc diff 0.0000, max abs loss diff 2.00e-08" in text


@pytest.mark.mpi
@pytest.mark.slow
def test_tiny_real_run_writes_every_setting_and_reuses_it(tmp_path):
    opts = BenchOptions(out=tmp_path, datasets=["karate"], seeds=1, epochs=2, timeout=300)
    result = bt.run(opts)
    per = result["results"]["karate"]
    assert list(per) == ["exact", "minibatch", "minibatch-nocv", "preload-full", "preload-f15"]
    assert per["preload-full"]["inter_feature_bytes_per_epoch"] == 0
    assert per["exact"]["inter_feature_bytes_per_epoch"] > 0
    assert per["preload-full"]["preload_rows"] > 0
    assert per["preload-full"]["max_abs_loss_diff_vs_exact"] < 1e-4
    assert result["costs"]["karate"]["reused"] == 0
    json.dumps(result)  # the runner writes it as JSON
    again = bt.run(opts)  # every job is in the results file: nothing runs again
    assert again["costs"]["karate"] == {"reused": 5, "wall_s": 0.0, "cpu_s": 0.0}
    assert again["results"] == result["results"]
    assert bt.plot(result, tmp_path / "b")[0].read_bytes()[:4] == b"\x89PNG"
