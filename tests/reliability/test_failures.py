"""Failures under a real mpirun end the whole job, fast and loud, and never lose a checkpoint.

Each case injects one fault (tests/reliability/_fault_worker.py) into a karate run and is bounded
by run_mpi's timeout; a hang shows up as return code 124.
"""
import time
from pathlib import Path

import pytest
import torch

from gnnsys.train import checkpoint
from tests._mpi import run_mpi
from tests.train.test_resume import final_state

WORKER = str(Path(__file__).with_name("_fault_worker.py"))
LAYERS = str(Path(__file__).with_name("_layers.py"))
TRAIN = ["--no-progress", "--threads", "1", "--model", "sage", "--hidden", "8", "--seed", "1"]
LIMIT_S = 60  # issue 7: every other rank is gone within a minute of a rank's death

pytestmark = pytest.mark.mpi


def run_with_fault(nprocs, mode, epoch, rank, stamp, gnnsys_args, timeout=240):
    """Run the worker under mpirun; return (process result, seconds from the fault to the end)."""
    proc = run_mpi(nprocs, [WORKER, mode, str(epoch), str(rank), str(stamp), "--",
                            *gnnsys_args], timeout=timeout)
    ended = time.time()
    since = ended - float(stamp.read_text()) if stamp.exists() else None
    return proc, since


def test_killed_rank_ends_every_rank_within_a_minute(karate_parts, tmp_path):
    stamp = tmp_path / "killed-at"
    proc, since = run_with_fault(4, "kill", 3, 2, stamp,
                                 ["train", str(karate_parts[4]), "--epochs", "100000", *TRAIN])
    assert proc.returncode not in (0, 124), proc.stderr[-2000:]
    assert since is not None and since < LIMIT_S
    assert "Traceback" not in proc.stderr


def test_hung_rank_is_caught_by_the_watchdog(karate_parts, tmp_path):
    stamp = tmp_path / "stopped-at"
    proc, since = run_with_fault(2, "stop", 3, 1, stamp,
                                 ["train", str(karate_parts[2]), "--epochs", "100000",
                                  "--timeout", "10", *TRAIN])
    assert proc.returncode not in (0, 124), proc.stderr[-2000:]
    assert since is not None and since < LIMIT_S, proc.stderr[-2000:]
    assert proc.stderr.count("no progress for") == 1, proc.stderr[-2000:]
    assert "(rank 0)" in proc.stderr


def test_layer_that_raises_on_one_rank_ends_the_job_with_one_message(karate_parts):
    proc = run_mpi(2, ["-m", "gnnsys.cli", "train", str(karate_parts[2]), "--epochs", "20",
                       *TRAIN, "--layer", f"{LAYERS}:RaisesOnRank1"], timeout=240)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.count("boom in the user's layer") == 1, proc.stderr[-2000:]
    assert "gnnsys train: failed (rank 1): ValueError" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_nan_loss_on_every_rank_is_reported_once_without_abort(karate_parts):
    proc = run_mpi(2, ["-m", "gnnsys.cli", "train", str(karate_parts[2]), "--epochs", "20",
                       *TRAIN, "--pipeline", "--layer", f"{LAYERS}:GoesNaN"], timeout=240)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.count("loss is nan") == 1, proc.stderr[-2000:]
    assert "MPI_ABORT" not in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_on_mpirun_stops_and_keeps_the_last_checkpoint(karate_parts, tmp_path):
    ckpt = tmp_path / "ckpt"
    proc, _ = run_with_fault(2, "interrupt", 4, 0, tmp_path / "unused",
                             ["train", str(karate_parts[2]), "--epochs", "100000", *TRAIN,
                              "--checkpoint-dir", str(ckpt), "--checkpoint-every", "1"])
    assert proc.returncode not in (0, 124), proc.stderr[-2000:]
    path, data = checkpoint.newest_checkpoint_bytes(str(ckpt))
    assert checkpoint.load_bytes(data, str(path))["epoch"] >= 3


def test_kill_during_checkpoint_write_then_resume_equals_an_uninterrupted_run(karate_parts,
                                                                            tmp_path):
    args = ["train", str(karate_parts[2]), "--epochs", "8", "--checkpoint-every", "2", *TRAIN]
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    proc = run_mpi(2, ["-m", "gnnsys.cli", *args, "--checkpoint-dir", str(straight)],
                   timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]

    proc, _ = run_with_fault(2, "crash-save", 5, 0, tmp_path / "crashed-at",
                             [*args, "--checkpoint-dir", str(crashed)])
    assert proc.returncode not in (0, 124), proc.stderr[-2000:]
    half = [p for p in crashed.iterdir() if p.name.startswith(".ckpt-000005.pt.tmp-")]
    assert len(half) == 1 and half[0].stat().st_size > 0  # half-written, never renamed
    assert [p.name for p in checkpoint.list_checkpoints(str(crashed))][-1] == "ckpt-000003.pt"

    proc = run_mpi(2, ["-m", "gnnsys.cli", *args, "--checkpoint-dir", str(crashed),
                       "--resume"], timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resumed from ckpt-000003.pt" in proc.stdout
    assert not [p for p in crashed.iterdir() if p.name.startswith(".")]  # leftover removed
    a, b = final_state(straight), final_state(crashed)
    assert a["epoch"] == b["epoch"] == 7
    for part in ("model", "optimizer"):  # bit for bit: no tolerance
        torch.testing.assert_close(b[part], a[part], rtol=0, atol=0)
