"""`gnnsys partition` and `gnnsys info` through the CLI entry point."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from gnnsys.cli import main
from gnnsys.partition import load_manifest
from tests.partition.conftest import random_graph


@pytest.fixture
def fake_loader(monkeypatch):
    """Make `gnnsys.data.load_dataset` return the small random graph (works before it exists)."""
    import gnnsys.data
    calls = []

    def load(spec, undirected=False, **_):
        calls.append((spec, undirected))
        return random_graph()

    monkeypatch.setattr(gnnsys.data, "load_dataset", load, raising=False)
    return calls


def test_partition_cli_prints_report_and_writes(fake_loader, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["partition", "--dataset", "whatever", "--parts", "4", "--servers", "2",
                 "--undirected"]) == 0
    out = capsys.readouterr().out
    assert "edge cut:" in out and "replication factor:" in out and "relabel/halo" in out
    folder = os.path.join("partitions", "rand-4-s2")
    assert out.strip().splitlines()[-1].endswith(folder)
    manifest = load_manifest(folder)
    assert manifest["undirected"] and "--undirected" in manifest["command"]
    assert fake_loader == [("whatever", True)]
    assert main(["info", folder]) == 0
    assert "verified:" in capsys.readouterr().out


def test_partition_cli_user_errors_exit_2(fake_loader, tmp_path, capsys):
    out = str(tmp_path / "p")
    assert main(["partition", "--dataset", "x", "--parts", "3", "--servers", "2",
                 "--out", out]) == 2
    assert "--servers" in capsys.readouterr().err
    assert main(["partition", "--dataset", "x", "--parts", "2", "--out", out]) == 0
    assert main(["partition", "--dataset", "x", "--parts", "2", "--out", out]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["partition", "--dataset", "x", "--parts", "2", "--out", out,
                 "--overwrite"]) == 0


def test_info_exit_2_naming_every_corrupted_file(fake_loader, tmp_path, capsys):
    good = str(tmp_path / "good")
    assert main(["partition", "--dataset", "x", "--parts", "2", "--out", good]) == 0
    files = sorted(load_manifest(good)["files"]) + ["manifest.json"]
    for relpath in files:
        bad = str(tmp_path / "bad")
        shutil.copytree(good, bad)
        path = os.path.join(bad, relpath)
        data = bytearray(open(path, "rb").read())
        data[len(data) // 3] ^= 0x10
        open(path, "wb").write(bytes(data))
        capsys.readouterr()
        assert main(["info", bad]) == 2, relpath
        err = capsys.readouterr().err
        assert err.startswith(f"gnnsys info: error: {path}:"), (relpath, err)
        assert len(err.strip().splitlines()) == 1
        shutil.rmtree(bad)


def test_info_refuses_other_format_version(fake_loader, tmp_path, capsys):
    folder = str(tmp_path / "p")
    assert main(["partition", "--dataset", "x", "--parts", "2", "--out", folder]) == 0
    manifest = json.load(open(os.path.join(folder, "manifest.json")))
    manifest["format_version"] = 99
    json.dump(manifest, open(os.path.join(folder, "manifest.json"), "w"))
    capsys.readouterr()
    assert main(["info", folder]) == 2
    err = capsys.readouterr().err
    assert "manifest.json: format version 99" in err
    assert main(["info", str(tmp_path / "nowhere")]) == 2
