"""`gnnsys train` as one rank: the summary line, the metrics contract, and one-line errors."""
import json

import numpy as np
import pytest

from gnnsys.cli import main
from gnnsys.partition.api import partition_graph
from gnnsys.train.metrics import RECORD_KEYS
from tests.train.test_equivalence import community_graph


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-cli")
    graph = community_graph()
    for p in (1, 2):
        partition_graph(graph, p, str(root / f"p{p}"), method="metis", progress=False)
    return root, graph


def test_train_one_rank_writes_metrics_and_predictions(parts, capsys):
    root, graph = parts
    metrics, preds = root / "m.jsonl", root / "pred.npy"
    code = main(["train", str(root / "p1"), "--epochs", "5", "--eval-every", "2",
                 "--no-progress", "--metrics", str(metrics), "--save-predictions", str(preds)])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("test_acc=") and "epochs=5" in last and "time_s=" in last
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert lines[0]["config"]["epochs"] == 5
    records = lines[1:]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3, 4]
    for r in records:
        assert set(RECORD_KEYS) <= set(r)
        assert set(r["bytes"]) == {"intra", "inter"}
        assert set(r["bytes"]["intra"]) == {"features", "feature_grads", "weight_grads"}
    assert records[0]["test_acc"] is None and records[1]["test_acc"] is not None
    pred = np.load(preds)
    assert pred.shape == (graph.num_nodes,) and pred.min() >= 0
    assert pred.max() < graph.num_classes


@pytest.mark.parametrize("extra, needle", [
    (["--layer", "no.such.module:Conv"], "no.such.module"),
    (["--layer", "torch.nn:NoSuchClass"], "NoSuchClass"),
    (["--epochs", "-1"], "--epochs"),
])
def test_bad_options_exit_2(parts, capsys, extra, needle):
    root, _ = parts
    assert main(["train", str(root / "p1"), "--no-progress", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_part_count_must_match_world(parts, capsys):
    root, _ = parts
    assert main(["train", str(root / "p2"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "2 parts" in err and "1 rank" in err and "mpirun -n 2" in err


def test_missing_partition_exit_2(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nothing"), "--no-progress"]) == 2
    assert "nothing" in capsys.readouterr().err
