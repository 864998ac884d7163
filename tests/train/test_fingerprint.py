"""The code fingerprint recorded in metrics files: blind to docstrings and comments, not to code."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from gnnsys.train.fingerprint import PACKAGE, code_fingerprint
from gnnsys.train.metrics import MetricsWriter


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "gnnsys"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_docstrings_comments_and_bench_do_not_change_it_code_does(tmp_path):
    copy = _copy(tmp_path)
    assert code_fingerprint(copy) == code_fingerprint()
    loop = copy / "train" / "loop.py"
    text = loop.read_text()
    loop.write_text(text.replace('"""', '"""Reworded. ', 1) + "\n# a comment\n")
    (copy / "bench" / "accuracy.py").write_text("x = 1\n")
    assert code_fingerprint.__wrapped__(copy) == code_fingerprint()
    loop.write_text(text + "\nNEW_CONSTANT = 1\n")
    assert code_fingerprint.__wrapped__(copy) != code_fingerprint()


def test_metrics_header_records_it(tmp_path):
    writer = MetricsWriter(str(tmp_path / "m.jsonl"), {"epochs": 1})
    writer.close()
    header = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[0])
    assert header == {"config": {"epochs": 1}, "code": code_fingerprint()}
