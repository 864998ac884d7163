"""The Performance report: rows from fixture results, "not measured" for suites not run."""
from __future__ import annotations

import json
import os

from gnnsys.bench.common import newest_results
from gnnsys.bench.report import BEGIN, END, write_report

MACHINE = {"cpu_model": "Test CPU 9000", "cores": 2, "ram_gib": 24.0, "load_avg": [1, 1, 1],
           "python": "3.11", "torch": "2.13", "numpy": "2.4", "cuda": False, "hostname": "h"}


def result(suite: str, quick: bool = False, **data) -> dict:
    """A result file's common keys around ``data``."""
    return {"suite": suite, "date": "2026-11-20", "quick": quick, "command": f"gnnsys bench "
            f"{suite}", "device": "cpu", "machine": MACHINE, "wall_s": 12.0,
            "load": {"mean": 1.5, "max": 2.0}, "plots": [f"{suite}-2026-11-20.png"], **data}


def codec_rows(encode: float) -> list:
    return [{"bits": b, "d": 256, "rows": 1000, "threads": 1, "backend": "numba",
             "device": "cpu", "memcpy_gbps": 9.5, "encode_gbps": encode, "decode_gbps": 6.25,
             "decode_alloc_gbps": 3.0, "ratio": 28.4} for b in (1, 16)]


def compute_result() -> dict:
    models = {name: {"median_s": s, "epochs_s": [s]} for name, s in
              (("gnnsys-gcn", 1.0), ("pyg-csr-gcn", 2.0), ("gnnsys-sage", 1.5),
               ("pyg-csr-sage", 1.2))}
    return result("compute", config={"nodes": 1000, "edges": 20000}, models=models,
                  dgl_env={"models": {"gnnsys-gcn": {"median_s": 1.1, "epochs_s": [1.1]},
                                      "dgl-gcn": {"median_s": 1.0, "epochs_s": [1.0]}}})


def write(folder, name, data):
    (folder / name).write_text(json.dumps(data))


def row_of(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(start))


def test_report_rows_from_fixtures_and_not_measured(tmp_path):
    write(tmp_path, "codec-2026-11-20.json", result("codec", rows=codec_rows(1.37)))
    write(tmp_path, "compute-2026-11-20.json", compute_result())
    write(tmp_path, "memory-2026-11-20.json", result(
        "memory", config={"dataset": "synthetic:1000"}, results={
            "1": {"rank_peak_bytes": [2 << 30], "tree_peak_bytes": 2 << 30, "ratio": 1.0,
                  "replication_factor": 1.0, "rows_share": 1.0},
            "4": {"rank_peak_bytes": [1 << 30] * 4, "tree_peak_bytes": 4 << 30, "ratio": 0.5,
                  "replication_factor": 2.4, "rows_share": 0.6}}))
    out = write_report(tmp_path, tmp_path / "PERFORMANCE.md")
    text = out.read_text()
    assert "Test CPU 9000, 2 cores, 24.0 GiB RAM" in text
    enc = row_of(text, "| 5 | codec quantize+pack")
    assert "| 1.37 GB/s | >= 1.0 GB/s | memcpy 9.50 GB/s | yes |" in enc
    dec = row_of(text, "| 5 | codec unpack")
    assert "| 6.25 GB/s | >= 2.0 GB/s |" in dec and "| yes |" in dec
    # GCN: 1.0/2.0 vs PyG, 1.1/1.0 vs DGL -> the worse ratio 1.10 counts: not met
    gcn = row_of(text, "| 4 | compute per epoch, 1 rank, GCN")
    assert "| 1.10 (gnnsys 1.00 s) | <= 1.0 |" in gcn and "| **no** |" in gcn
    sage = row_of(text, "| 4 | compute per epoch, 1 rank, SAGE")
    assert "1.25 (gnnsys 1.50 s)" in sage and "fastest peer pyg-csr-sage 1.20 s" in sage
    for missing in ("| 3 | partition 1M nodes", "| 4 | fp32 sync epoch / bound",
                    "| 5 | 1-bit + pipeline speed-up", "| 6 | preload (f = 15) epoch",
                    "| 4 | GCN cora test accuracy"):
        assert "| not measured |" in row_of(text, missing), missing
    mem = row_of(text, "| 4 | peak RSS per rank, P = 4 / P = 1, synthetic:1000")
    assert "| 0.500 | <= 0.35 | rows held per rank / N = 0.60 (replication 2.40 / 4) |" in mem
    assert "| 1 | 2.00 | 2.00 | 2.00 | 1.000 | 1.00 |" in text  # the memory suite's table
    assert "**Met: 2; not met: 3;" in text
    assert "- NOT met: compute per epoch, 1 rank, GCN" in text
    assert "![codec](codec-2026-11-20.png)" in text


def test_accuracy_rows_compare_settings_with_fp32(tmp_path):
    per = {"fp32": {"setting": "fp32 sync", "test_acc": [0.81, 0.82], "mean": 0.815,
                    "std": 0.005, "curve": [0.5, 0.815], "pp_vs_fp32": 0.0},
           "1bit-pipeline": {"setting": "1-bit + pipeline", "test_acc": [0.80, 0.81],
                             "mean": 0.805, "std": 0.005, "curve": [0.4, 0.805],
                             "pp_vs_fp32": -1.0}}
    write(tmp_path, "accuracy-2026-11-20.json", result(
        "accuracy", config={"seeds": [0, 1]}, published={"cora": 0.815},
        results={"cora": per}))
    text = write_report(tmp_path, tmp_path / "P.md").read_text()
    cora = row_of(text, "| 4 | GCN cora test accuracy")
    assert "| 0.8150 ± 0.0050 | >= 0.805 | Kipf & Welling 0.815 | yes |" in cora
    assert "fewer than the 5 seeds" in cora
    pipe = row_of(text, "| 5 | 1-bit + pipeline vs fp32 sync accuracy, cora (2 seeds)")
    assert "| -1.00 pp | within 0.3 pp |" in pipe and "| **no** |" in pipe
    assert "| not measured |" in row_of(text, "| 4 | GCN citeseer test accuracy")


def test_empty_folder_gives_a_report_with_nothing_measured(tmp_path):
    text = write_report(tmp_path, tmp_path / "r" / "P.md").read_text()
    assert "No suite has been run yet" in text and "**Met: 0; not met: 0;" in text
    assert "| yes |" not in text and "| **no** |" not in text


def test_newest_full_run_wins_over_quick_and_older(tmp_path):
    write(tmp_path, "codec-2026-11-19.json", result("codec", rows=codec_rows(1.0)))
    write(tmp_path, "codec-2026-11-20.json", result("codec", rows=codec_rows(2.0)))
    write(tmp_path, "codec-2026-11-21-quick.json", result("codec", True, rows=codec_rows(3.0)))
    write(tmp_path, "exchange-2026-11-21-quick.json", {})
    write(tmp_path, "notes.json", {})
    os.utime(tmp_path / "codec-2026-11-19.json")  # newer mtime, older date: date wins
    found = newest_results(tmp_path)
    assert found["codec"].name == "codec-2026-11-20.json"
    assert found["exchange"].name == "exchange-2026-11-21-quick.json"
    assert set(found) == {"codec", "exchange"}
    assert newest_results(tmp_path, quick=True)["codec"].name == "codec-2026-11-21-quick.json"


def test_report_into_a_readme_replaces_only_the_marked_section(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n\n{BEGIN}\nold figures\n{END}\n\n## After\nkept\n")
    write_report(tmp_path, readme)
    text = readme.read_text()
    assert text.startswith("# title\n\nintro\n\n" + BEGIN + "\n## Performance")
    assert "old figures" not in text and text.endswith(END + "\n\n## After\nkept\n")
    assert text.count(BEGIN) == 1 and text.count(END) == 1


def test_partition_targets_are_judged_at_1m_nodes_and_growth_on_the_extremes():
    from gnnsys.bench.targets import _partition

    def size(nodes, wall, rss):
        return {"nodes": nodes, "edges": nodes * 20, "dgl": {"skipped": "-"},
                "gnnsys": {"wall_s": wall, "peak_rss_gib": rss, "balance_owned": 1.03}}

    rows = _partition({"rows": [size(250_000, 5.0, 0.5), size(1_000_000, 25.0, 1.8),
                                size(4_000_000, 160.0, 8.0)]})
    wall, rss, growth, balance = rows
    assert "1,000,000 nodes" in wall.target and wall.measured == "25.00" and wall.met
    assert "1,000,000 nodes" in rss.target and rss.met
    # 16x the edges in 32x the time: per edge 2x, time ~ E^1.25
    assert "4,000,000 vs 250,000" in growth.target and not growth.met
    assert growth.measured == "2.00x (time ~ E^1.25)" and growth.note == ""  # no stage split
    assert balance.met
    timed = {"rows": [{**size(250_000, 5.0, 0.5), "gnnsys": {**size(0, 5.0, 0.5)["gnnsys"],
                                                             "total_s": 4.0}},
                      {**size(4_000_000, 96.0, 8.0), "gnnsys": {**size(0, 96.0, 8.0)["gnnsys"],
                                                               "total_s": 92.0}}]}
    growth = _partition(timed)[2]
    assert growth.met and growth.measured.startswith("1.20x")
    assert "stages alone" in growth.note and "1.44x" in growth.note  # 92/64 over 4/4


def test_bytes_target_is_judged_at_the_suite_size_and_at_scale(tmp_path):
    from gnnsys.bench import exchange as ex
    from gnnsys.bench.settings import BY_KEY
    from tests.bench.test_exchange import record, run_of

    shares = {kind: [0.5, 0.5] for kind in ex.KINDS}

    def rows(one_bit_features: int) -> list:
        """fp32 and 1-bit rows; a record's bytes: features, half that in gradients, 1000 of
        weights (fp32: 30000 + 15000 + 1000 = 46000)."""
        out = [ex.summarize(BY_KEY[key], run_of([record(e, 1.0, 0.5, 0.0, feat)
                                                 for e in range(3)]), 1, shares, 10.0)
               for key, feat in (("fp32", 30000), ("1bit", one_bit_features))]
        ex.add_comparisons(out)
        return out
    write(tmp_path, "exchange-2026-11-20.json", result(
        "exchange", config={"nodes": 1000, "hosts": 2, "ranks_per_host": 2, "epochs": 3,
                            "warmup": 1, "hidden": 256, "layers": 3, "accuracy_from": "1gbit",
                            "settings": {"fp32": "fp32 sync", "1bit": "1-bit sync"}},
        skipped={}, host_shares=shares, targets=ex.TARGETS,
        rates={"1gbit": {"link_mb_s": 10.0, "probe_mb_s": None,
                         "load": {"mean": 1.0, "max": 1.0}, "rows": rows(2000)}},
        bytes_at_scale={"nodes": 200000, "epochs": 3, "rows": rows(400)}))
    text = write_report(tmp_path, tmp_path / "PERFORMANCE.md").read_text()
    small = row_of(text, "| 5 | fp32 / 1-bit inter-host bytes (hidden 256) @ 1gbit |")
    assert "| 11.50 | >= 25x |" in small and "| **no** |" in small  # 46000 / 4000
    scale = row_of(text, "| 5 | fp32 / 1-bit inter-host bytes (hidden 256) @ synthetic:200000 |")
    assert "| 28.75 | >= 25x |" in scale and "| yes |" in scale  # 46000 / 1600
    assert "the weight all-reduce is 62 % of these bytes" in scale  # 1000 / 1600
    assert "the weight all-reduce is 25 % of these bytes" in small  # 1000 / 4000
    assert "Bytes at scale, synthetic:200000" in text
