"""Tests for the `gnnsys datasets` command (gnnsys/commands/datasets.py)."""
import numpy as np

from gnnsys.cli import main
from gnnsys.data import load_dataset, load_npz


def test_list_prints_sizes(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["cora"][1:6] == ["2,708", "10,556", "1,433", "7", "140/500/1000"]
    assert rows["citeseer"][1:6] == ["3,327", "9,104", "3,703", "6", "120/500/1000"]
    assert rows["karate"][1:3] == ["34", "156"]
    assert "synthetic:N" in rows


def test_save_writes_a_loadable_uncompressed_file(tmp_path, capsys):
    path = tmp_path / "cora.npz"
    assert main(["datasets", "--save", "cora", str(path)]) == 0
    assert "2,708 nodes" in capsys.readouterr().out
    back = load_npz(path)
    assert isinstance(back.feat, np.memmap)
    assert back.content_hash() == load_dataset("cora").content_hash()


def test_save_synthetic_and_refuse_overwrite(tmp_path, capsys):
    path = tmp_path / "s.npz"
    assert main(["datasets", "--save", "synthetic:500,deg=4,feat=8", str(path)]) == 0
    assert load_npz(path).num_nodes == 500
    assert main(["datasets", "--save", "karate", str(path)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert load_npz(path).num_nodes == 500  # untouched
    assert main(["datasets", "--save", "karate", str(path), "--overwrite"]) == 0
    assert load_npz(path).num_nodes == 34


def test_user_mistakes_exit_2_with_one_line(tmp_path, capsys):
    for argv in (["datasets", "--save", "nope", str(tmp_path / "x.npz")],
                 ["datasets", "--save", "karate", str(tmp_path / "x.txt")],
                 ["datasets", "--save", "karate", str(tmp_path / "no" / "x.npz")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("gnnsys datasets: error:") and err.count("\n") == 1
