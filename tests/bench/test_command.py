"""`gnnsys bench`: a tiny codec run writes JSON and a PNG; user mistakes exit 2 in one line."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from gnnsys.cli import main


def gnnsys(*args: str) -> subprocess.CompletedProcess:
    """Run ``gnnsys <args>`` in a child process."""
    return subprocess.run([sys.executable, "-m", "gnnsys.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_codec_suite_writes_json_png_and_report(tmp_path, capsys):
    assert main(["bench", "codec", "--quick", "--nodes", "300", "--out", str(tmp_path)]) == 0
    (result,) = tmp_path.glob("codec-*-quick.json")
    data = json.loads(result.read_text())
    assert data["suite"] == "codec" and data["quick"] is True
    assert data["machine"]["cores"] >= 1 and data["machine"]["cpu_model"]
    assert sorted(r["bits"] for r in data["rows"]) == [1, 2, 4, 8, 16]
    one = next(r for r in data["rows"] if r["bits"] == 1)
    assert one["encode_gbps"] > 0 and one["decode_gbps"] > 0 and one["memcpy_gbps"] > 0
    assert one["ratio"] == pytest.approx(4 * 256 / (4 + 256 / 8))  # fp32 bytes / wire bytes
    png = tmp_path / data["plots"][0]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 1 | 256 | 1 |" in capsys.readouterr().out
    assert main(["bench", "report", "--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "PERFORMANCE-quick.md").read_text()
    assert f"{one['encode_gbps']:.2f} GB/s" in text and f"![codec]({png.name})" in text


@pytest.mark.parametrize("args, message", [
    (["bench", "nosuch"], "invalid choice: 'nosuch'"),
    (["bench", "exchange", "--bandwidths", "1gbit,fast"], "bad bandwidth 'fast'"),
    (["bench", "exchange", "--settings", "fp32,warp"], "unknown setting(s) warp"),
    (["bench", "compute", "--nodes", "0"], "--nodes must be >= 1"),
    (["bench", "partition", "--sizes", "10,x"], "--sizes takes comma-separated integers"),
])
def test_user_mistakes_exit_2_with_one_line(args, message):
    proc = gnnsys(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: cuda runs for real")
def test_cuda_without_gpu_is_skipped_in_one_line(tmp_path):
    proc = gnnsys("bench", "codec", "--device", "cuda", "--out", str(tmp_path))
    assert proc.returncode == 0
    assert proc.stderr.strip().splitlines() == [
        "gnnsys bench: skipped: --device cuda but torch.cuda.is_available() is False (no GPU "
        "or no CUDA build of torch here)"]
    assert not list(tmp_path.glob("*.json"))
