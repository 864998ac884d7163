"""The preload suite (issue 6 memory): per-server sums, 2 vs 1 worker, target rows, a tiny run."""
from __future__ import annotations

import pytest

from gnnsys.bench import preload as pm
from gnnsys.bench.options import BenchOptions
from gnnsys.bench.targets import evaluate

MIB = 1 << 20


def marks(uss: int, pss: int, rss: int, maxrss: int) -> dict:
    one = {"uss": uss * MIB, "pss": pss * MIB, "rss": rss * MIB, "shared": 0,
           "maxrss": maxrss * MIB}
    return {"runtime": {**one, "pss": 170 * MIB}, "built": dict(one), "end": dict(one)}


def layout(workers: int) -> list:
    """Two servers, 100 MiB of preload files each, rows split evenly between ``workers``."""
    share = {"rows": 10 // workers, "feat_bytes": 80 * MIB // workers,
             "edge_bytes": 10 * MIB // workers}
    return [{"server": s, "file_bytes": 100 * MIB, "feat_bytes": 80 * MIB, "rows": 10,
             "workers": [{"part": s * workers + i, **share} for i in range(workers)]}
            for s in (0, 1)]


def fake_result(nodes: int = 1_000_000) -> dict:
    two = pm.per_server([{"rank": r, "server": r // 2, "marks": marks(500, 520, 600, 900)}
                         for r in range(4)], layout(2))
    one = pm.per_server([{"rank": r, "server": r, "marks": marks(800, 810, 900, 1500)}
                         for r in range(2)], layout(1))
    return {"suite": "preload", "quick": False,
            "config": {"dataset": f"synthetic:{nodes}", "same_server_nodes": True},
            "target": pm.TARGET, "layouts": {"2x2": {"servers": two}, "2x1": {"servers": one}},
            "two_vs_one": pm.compare(two, one)}


def test_per_server_sums_workers_and_prices_a_copy_each():
    two = fake_result()["layouts"]["2x2"]["servers"]
    s = two[1]
    assert s["workers"] == 2 and s["preload_held_bytes"] == 90 * MIB
    assert s["worker_preload_bytes"] == [45 * MIB, 45 * MIB]
    assert s["copy_per_worker_adds_bytes"] == 2 * 100 * MIB - 90 * MIB
    assert s["end"]["sum_uss"] == 1000 * MIB and s["end"]["one_uss"] == 500 * MIB
    assert s["end"]["sum_uss_over_one_uss"] == 2.0 and s["end"]["sum_pss"] == 1040 * MIB
    assert (s["peak_maxrss_sum"], s["peak_maxrss_one"]) == (1800 * MIB, 900 * MIB)


def test_two_workers_against_one_and_the_headline():
    res = fake_result()
    c = res["two_vs_one"][0]
    assert c["uss_ratio"] == pytest.approx(1000 / 800)
    assert c["pss_ratio"] == pytest.approx(1040 / 810)
    assert c["copy_ratio"] == pytest.approx((1040 + 110) / 810)
    assert c["data_ratio"] == pytest.approx((1040 - 340) / (810 - 170))
    assert c["peak_ratio"] == pytest.approx(1800 / 1500)
    head = pm.headline(res)
    assert head == {"sum_uss_over_one_uss": 2.0, "uss_ratio": c["uss_ratio"],
                    "pss_ratio": c["pss_ratio"], "copy_ratio": c["copy_ratio"],
                    "data_ratio": c["data_ratio"]}
    del res["two_vs_one"]  # the headline is recomputed from the layouts (older results)
    assert pm.headline(res) == head


def test_target_rows_two_workers_against_one_and_against_one_of_them():
    rows = [r for r in evaluate({"preload": fake_result()}) if r.issue == 6
            and ("USS" in r.target or "PSS" in r.target)]
    uss, pss, halves = rows
    assert uss.measured == "1.25" and uss.met is True and uss.goal == "<= 1.3"
    assert "run by one worker" in uss.target and "--parts 2 --servers 2" in uss.note
    assert pss.measured == "1.28" and pss.met is True
    assert pss.bound.startswith("a copy of the preload per worker: 1.42")
    assert "without the per-process runtime (Python, torch, MPI): 1.09" in pss.note
    assert halves.measured == "2.00" and halves.met is None and "not a target" in halves.goal
    assert "by construction" in halves.bound and "split, not copied" in halves.note
    small = [r for r in evaluate({"preload": fake_result(20_000)})
             if r.issue == 6 and ("USS" in r.target or "PSS" in r.target)]
    assert len(small) == 3 and all(r.met is None for r in small)
    assert all("not applicable" in r.note for r in small[:2])
    none = [r for r in evaluate({}) if "USS" in r.target or "PSS" in r.target]
    assert len(none) == 2 and all(r.measured == "not measured" for r in none)


def test_markdown_has_every_table():
    text = pm.markdown(fake_result())
    assert "| 2x2 | 0 | end | 1,000 | 1,040 | 500 | 600 | 2.00 |" in text
    assert "| 2x2 | 1 | 10 | 100 | 45 + 45 | +110 | 1,800 / 900 |" in text
    assert "| 2x1 | 0 | 10 | 100 | 90 | +10 | 1,500 / 1,500 |" in text
    assert "| 0 | 1.25 | 810 | 1,040 | 1.28 | 1.42 | 1.09 | 1.20 |" in text
    assert "Warning" not in text


@pytest.mark.mpi
@pytest.mark.slow
def test_tiny_real_run_measures_both_layouts(tmp_path):
    result = pm.run(BenchOptions(out=tmp_path, nodes=2000, epochs=1, timeout=300))
    assert result["config"]["same_server_nodes"] is True
    assert [len(lay["workers"]) for lay in result["layouts"].values()] == [4, 2]
    for srv in result["layouts"]["2x2"]["servers"]:
        assert srv["workers"] == 2 and srv["end"]["sum_uss"] > srv["end"]["one_uss"] > 0
    assert all(c["pss_ratio"] > 0 for c in result["two_vs_one"])
    two, one = (result["layouts"][k]["servers"] for k in ("2x2", "2x1"))
    assert [s["preload_rows"] for s in two] == [s["preload_rows"] for s in one]  # same servers
    for srv in two + one:  # every preload row held by exactly one worker of its server
        assert 0 < sum(srv["worker_preload_bytes"]) == srv["preload_held_bytes"] <= \
            srv["preload_file_bytes"]
    assert pm.plot(result, tmp_path / "p")[0].read_bytes()[:4] == b"\x89PNG"
