"""Bad input everywhere gets one clear line and exit 2, never a traceback, never a training run.

Runs in-process (one rank): ``gnnsys info`` and ``gnnsys train`` on damaged partitions, bad
options and configs, NaN features, and a rank placement that does not match the partition.
"""
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gnnsys.cli import main
from gnnsys.comm.bootstrap import DistContext
from gnnsys.config import TrainConfig
from gnnsys.data.registry import load_dataset
from gnnsys.errors import UserError
from gnnsys.partition.api import partition_graph
from gnnsys.partition.format import MANIFEST, sha256_file, write_manifest
from gnnsys.train.loop import Trainer
from tests.reliability.corruptions import CORRUPTIONS

LAYERS = str(Path(__file__).with_name("_layers.py"))
TRAIN = ["--epochs", "2", "--no-progress", "--threads", "1"]


def refused_in_one_line(capsys, argv) -> str:
    """Run ``gnnsys argv`` in-process; assert exit 2 and one line on stderr; return it."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects a bad flag by exiting
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def damaged_copy(parts: dict, tmp_path: Path, name: str, source: int) -> Path:
    folder = tmp_path / "damaged"
    shutil.copytree(parts[source], folder)
    CORRUPTIONS[name](folder, parts["other"])
    return folder


def test_twenty_distinct_corruptions():
    assert len(CORRUPTIONS) == 20


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupted_partition_refused_by_info(karate_parts, tmp_path, capsys, name):
    folder = damaged_copy(karate_parts, tmp_path, name, source=2)
    err = refused_in_one_line(capsys, ["info", str(folder)])
    assert str(folder) in err


@pytest.mark.parametrize("name", ["truncated feat", "flipped byte in feat", "missing indptr",
                                  "another format version", "manifest of another graph",
                                  "manifest is a folder", "labels of another dtype",
                                  "pickled object array"])
def test_corrupted_partition_never_trained(karate_parts, tmp_path, capsys, name):
    folder = damaged_copy(karate_parts, tmp_path, name, source=1)
    metrics = tmp_path / "m.jsonl"
    refused_in_one_line(capsys, ["train", str(folder), *TRAIN, "--metrics", str(metrics)])
    assert not metrics.exists()  # refused before the first epoch


def test_nan_features_refused(karate_parts, tmp_path, capsys):
    folder = tmp_path / "nan"
    shutil.copytree(karate_parts[1], folder)
    rel = "part-0/feat.npy"
    feat = np.load(folder / rel)
    feat[3, 0] = np.nan
    np.save(folder / rel, feat)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][rel] = {"size": (folder / rel).stat().st_size,
                              "sha256": sha256_file(str(folder / rel))}
    manifest.pop("checksum")
    write_manifest(str(folder), manifest)  # a self-consistent partition of a bad graph
    err = refused_in_one_line(capsys, ["train", str(folder), *TRAIN])
    assert "NaN" in err and "feat.npy" in err


def test_nan_features_refused_at_partition_time(tmp_path, capsys):
    graph = load_dataset("karate")
    feat = np.array(graph.feat)
    feat[0, 0] = np.inf
    from gnnsys.data.npz import save_npz

    path = tmp_path / "bad.npz"
    save_npz(dataclasses.replace(graph, feat=feat), path)  # written as given, checked on load
    err = refused_in_one_line(capsys, ["partition", "--dataset", str(path), "--parts", "2",
                                       "--out", str(tmp_path / "p")])
    assert "NaN" in err or "Inf" in err


@pytest.mark.parametrize("extra, needle", [
    (["--layer", "no_such_pkg.mod:Conv"], "no_such_pkg"),
    (["--layer", f"{LAYERS}:NoSuchLayer"], "NoSuchLayer"),
    (["--model", "transformer"], "transformer"),
    (["--timeout", "-1"], "--timeout"),
])
def test_bad_options(karate_parts, capsys, extra, needle):
    err = refused_in_one_line(capsys, ["train", str(karate_parts[1]), *TRAIN, *extra])
    assert needle in err


@pytest.mark.parametrize("text, needle", [
    ("epochs: [1, 2\n", "not valid YAML"),
    ("epochs: ten\n", "epochs"),
    ("no_such_option: 1\n", "no_such_option"),
    ("- just\n- a list\n", "mapping"),
])
def test_broken_yaml_config(karate_parts, tmp_path, capsys, text, needle):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(text)
    err = refused_in_one_line(capsys, ["train", str(karate_parts[1]), "--config", str(cfg)])
    assert needle in err


def test_part_count_differs_from_world_size(karate_parts, capsys):
    err = refused_in_one_line(capsys, ["train", str(karate_parts[4]), *TRAIN])
    assert "4 parts" in err and "mpirun -n 4" in err


def test_layer_that_fails_to_build_is_one_line_exit_1(karate_parts, capsys):
    code = main(["train", str(karate_parts[1]), *TRAIN, "--layer", f"{LAYERS}:RaisesInInit"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "cannot build this layer" in err and "_layers.py" in err


def test_nan_loss_is_one_line_exit_1(karate_parts, capsys):
    code = main(["train", str(karate_parts[1]), *TRAIN, "--epochs", "5",
                 "--layer", f"{LAYERS}:GoesNaN"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "loss is nan" in err, err


def test_rank_placement_must_match_a_two_level_partition(tmp_path):
    folder = tmp_path / "two-level"
    partition_graph(load_dataset("karate"), 4, str(folder), servers=2, progress=False)
    # 4 ranks on 2 hosts, but interleaved: ranks 0, 2 on host 0 and ranks 1, 3 on host 1
    ctx = DistContext(rank=0, size=4, host="h0", comm=None, local_comm=None, local_rank=0,
                      local_size=2, server=0, num_servers=2, server_of_rank=[0, 1, 0, 1],
                      leader_comm=None)
    cfg = TrainConfig(partition=str(folder), progress=False).validate()
    with pytest.raises(UserError, match="placement does not match.*ppr"):
        Trainer(cfg, ctx)
