"""On-disk contract: atomic output, read-only shards, refusal of corrupted/edited partitions."""
from __future__ import annotations

import json
import re
import os
import shutil

import numpy as np
import pytest

from gnnsys.partition import (PartitionError, load_manifest, open_shard, partition_graph,
                              verify_partition)
from gnnsys.partition import format as fmt


@pytest.fixture
def part_folder(small_graph, tmp_path):
    out = str(tmp_path / "p")
    partition_graph(small_graph, 2, out, progress=False, command="test")
    return out


def test_manifest_contents(small_graph, part_folder):
    m = load_manifest(part_folder)
    assert m["format_version"] == fmt.FORMAT_VERSION
    assert m["dataset"]["content_hash"] == small_graph.content_hash()
    assert m["dataset"]["num_edges"] == small_graph.num_edges
    assert m["parts"] == 2 and m["part_server"] == [0, 0] and m["command"] == "test"
    on_disk = {os.path.relpath(os.path.join(d, f), part_folder).replace(os.sep, "/")
               for d, _, files in os.walk(part_folder) for f in files}
    assert on_disk == set(m["files"]) | {"manifest.json"}


def test_open_shard_is_read_only_memmap(small_graph, part_folder):
    s = open_shard(part_folder, 1)
    assert s.parts == 2 and s.server == 0 and s.global_num_nodes == small_graph.num_nodes
    assert s.global_train_count == int(small_graph.train_mask.sum())
    assert isinstance(s.feat, np.memmap) and not s.feat.flags.writeable
    with pytest.raises(PartitionError, match="out of range"):
        open_shard(part_folder, 2)


def test_failed_write_leaves_no_output(small_graph, tmp_path, monkeypatch):
    real = fmt.ArrayWriter.save_chunks

    def failing(self, relpath, *args, **kwargs):
        if relpath == "part-1/feat.npy":
            raise OSError("disk full")
        return real(self, relpath, *args, **kwargs)

    monkeypatch.setattr(fmt.ArrayWriter, "save_chunks", failing)
    with pytest.raises(OSError, match="disk full"):
        partition_graph(small_graph, 2, str(tmp_path / "p"), progress=False)
    assert os.listdir(tmp_path) == []  # neither the output nor the hidden temp folder


def test_failed_overwrite_keeps_old_partition(small_graph, part_folder, monkeypatch):
    monkeypatch.setattr(fmt.ArrayWriter, "save_chunks",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        partition_graph(small_graph, 3, part_folder, overwrite=True, progress=False)
    verify_partition(part_folder)
    assert load_manifest(part_folder)["parts"] == 2
    assert sorted(os.listdir(os.path.dirname(part_folder))) == ["p"]


def test_overwrite_replaces(small_graph, part_folder):
    partition_graph(small_graph, 3, part_folder, overwrite=True, progress=False)
    assert load_manifest(part_folder)["parts"] == 3
    assert not os.path.exists(os.path.join(part_folder, "part-3"))
    verify_partition(part_folder)


def _all_files(folder):
    return sorted(load_manifest(folder)["files"]) + ["manifest.json"]


def test_every_flipped_byte_is_refused_naming_the_file(part_folder, tmp_path):
    for relpath in _all_files(part_folder):
        copy = str(tmp_path / "copy")
        shutil.copytree(part_folder, copy)
        path = os.path.join(copy, relpath)
        data = bytearray(open(path, "rb").read())
        data[len(data) // 2] ^= 0x01
        open(path, "wb").write(bytes(data))
        with pytest.raises(PartitionError, match="^" + re.escape(path) + ":"):
            verify_partition(copy)
        shutil.rmtree(copy)


def test_truncated_and_missing_files_are_refused(part_folder):
    path = os.path.join(part_folder, "part-0", "indices.npy")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 8)
    with pytest.raises(PartitionError, match="indices.npy: size"):
        open_shard(part_folder, 0)
    os.remove(os.path.join(part_folder, "part-1", "halo.npy"))
    with pytest.raises(PartitionError, match="halo.npy: missing"):
        open_shard(part_folder, 1)


def test_other_format_version_is_refused(part_folder):
    path = os.path.join(part_folder, "manifest.json")
    manifest = json.load(open(path))
    manifest["format_version"] = fmt.FORMAT_VERSION + 1
    fmt.write_manifest(part_folder, {k: v for k, v in manifest.items() if k != "checksum"})
    with pytest.raises(PartitionError, match="format version"):
        open_shard(part_folder, 0)


def test_missing_or_garbled_manifest(part_folder, tmp_path):
    path = os.path.join(part_folder, "manifest.json")
    open(path, "w").write("{not json")
    with pytest.raises(PartitionError, match="manifest.json: not valid JSON"):
        load_manifest(part_folder)
    os.remove(path)
    with pytest.raises(PartitionError, match="manifest.json: missing"):
        load_manifest(part_folder)
    with pytest.raises(PartitionError, match="no such partition folder"):
        load_manifest(str(tmp_path / "nowhere"))


def test_inconsistent_send_list_is_refused(part_folder):
    """A consistent-looking manifest does not hide a send list that disagrees with a halo."""
    manifest = load_manifest(part_folder)
    s = open_shard(part_folder, 0)
    send = np.array(s.send_index)
    assert send.size > 1
    send[[0, 1]] = send[[1, 0]]
    writer = fmt.ArrayWriter(part_folder)
    writer.save("part-0/send_index.npy", send)
    manifest["files"].update(writer.files)
    fmt.write_manifest(part_folder, {k: v for k, v in manifest.items() if k != "checksum"})
    with pytest.raises(PartitionError, match="send list to part 1"):
        verify_partition(part_folder)
