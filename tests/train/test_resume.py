"""Checkpoint and resume under mpirun: 20 epochs straight equal 10 + resume + 10, bit for bit."""
from pathlib import Path

import pytest
import torch

from gnnsys.partition.api import partition_graph
from gnnsys.train import checkpoint
from tests._mpi import run_mpi
from tests.train.test_equivalence import community_graph

ARGS = ["-m", "gnnsys.cli", "train", "--model", "sage", "--hidden", "8", "--no-progress",
        "--dropout", "0.5", "--seed", "1"]


def final_state(folder: Path) -> dict:
    path, data = checkpoint.newest_checkpoint_bytes(str(folder))
    return checkpoint.load_bytes(data, str(path))


@pytest.mark.mpi
def test_resume_is_bit_for_bit(tmp_path):
    part = tmp_path / "p2"
    partition_graph(community_graph(), 2, str(part), method="metis", progress=False)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    runs = [(straight, ["--epochs", "20"]),
            (resumed, ["--epochs", "10", "--checkpoint-every", "5"]),
            (resumed, ["--epochs", "20", "--resume", "--metrics", str(tmp_path / "m.jsonl")])]
    for folder, extra in runs:
        proc = run_mpi(2, ARGS + [str(part), "--checkpoint-dir", str(folder), *extra])
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from ckpt-000009.pt" in proc.stdout
    a, b = final_state(straight), final_state(resumed)
    assert a["epoch"] == b["epoch"] == 19
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    for key, state in a["optimizer"]["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(
                b["optimizer"]["state"][key][name])), (key, name)
    lines = (tmp_path / "m.jsonl").read_text().splitlines()
    assert len(lines) == 11 and lines[0].startswith('{"config"')
