"""Bounded staleness under mpirun: ages never exceed s, sync epochs are fresh, 32 bits is exact."""
import json

import pytest

from gnnsys.partition.api import partition_graph
from tests._mpi import run_mpi
from tests.train.test_equivalence import community_graph

BASE = ["-m", "gnnsys.cli", "train", "--hidden", "8", "--no-progress", "--epochs", "12",
        "--dtype", "float64", "--seed", "2"]


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()][1:]


@pytest.fixture(scope="module")
def part(tmp_path_factory):
    out = tmp_path_factory.mktemp("stale") / "p2"
    partition_graph(community_graph(), 2, str(out), method="metis", progress=False)
    return str(out)


@pytest.mark.mpi
@pytest.mark.parametrize("extra, bound", [
    (["--bits", "1", "--pipeline", "--sync-every", "5"], 1),
    (["--bits", "2", "--staleness", "2", "--sync-every", "4", "--stale-grads"], 2),
])
def test_staleness_never_exceeds_bound(part, tmp_path, extra, bound):
    metrics = tmp_path / "m.jsonl"
    proc = run_mpi(2, BASE + [part, "--metrics", str(metrics), *extra])
    assert proc.returncode == 0, proc.stderr[-2000:]
    recs = records(metrics)
    every = int(extra[extra.index("--sync-every") + 1])
    for r in recs:
        assert 0 <= r["staleness"] <= bound
        assert r["sync"] == (r["epoch"] % every == 0)
        if r["sync"]:
            assert r["staleness"] == 0
    assert max(r["staleness"] for r in recs) >= 1
    quantized = [r for r in recs if not r["sync"]]
    synced = [r for r in recs if r["sync"]]
    # Only layer 1's rows move (the input halo is cached). Rows that may be stale travel as the
    # layer's 8-column input, not its projection: 64 bytes a row in float64 on a sync epoch,
    # 1 or 2 + 4 quantized (1 or 2 bits a column, 4 header bytes).
    assert max(r["bytes"]["intra"]["features"] for r in quantized) * 8 < \
        min(r["bytes"]["intra"]["features"] for r in synced)


@pytest.mark.mpi
def test_bits_32_staleness_0_is_exact_training(part, tmp_path):
    losses = []
    for name, extra in (("exact", []), ("bits32", ["--bits", "32", "--staleness", "0"])):
        metrics = tmp_path / f"{name}.jsonl"
        proc = run_mpi(2, BASE + [part, "--metrics", str(metrics), *extra])
        assert proc.returncode == 0, proc.stderr[-2000:]
        losses.append([r["loss"] for r in records(metrics)])
    assert losses[0] == losses[1]
