"""Halo pruning under mpirun: bit for bit the unpruned training, moving only the halo rows the
loss reads and computing only the rows it reads (both counted against the global graph)."""
import json
import os

import numpy as np
import pytest

from gnnsys.partition.api import partition_graph
from tests._mpi import run_mpi
from tests.train.test_equivalence import community_graph

PARTS, LAYERS = 3, 3
BASE = ["-m", "gnnsys.cli", "train", "--hidden", "8", "--layers", str(LAYERS), "--epochs", "3",
        "--no-progress", "--dtype", "float64", "--seed", "1"]


@pytest.fixture(scope="module")
def part(tmp_path_factory):
    """The community graph with 10 % train nodes (so pruning has rows to skip), 3 METIS parts."""
    graph = community_graph()
    graph.train_mask = np.random.default_rng(5).random(graph.num_nodes) < 0.1
    out = tmp_path_factory.mktemp("prune") / "p3"
    partition_graph(graph, PARTS, str(out), method="metis", progress=False)
    return graph, str(out)


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()][1:]


def train(folder, tmp_path, name, extra):
    metrics, pred = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.npy"
    proc = run_mpi(PARTS, BASE + [folder, "--metrics", str(metrics), "--save-predictions",
                                  str(pred), *extra])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return records(metrics), np.load(pred)


@pytest.mark.mpi
@pytest.mark.parametrize("model", ["gcn", "sage", "gat"])
def test_pruned_training_is_unpruned_training_bit_for_bit(part, tmp_path, model):
    _, folder = part
    pruned, pruned_pred = train(folder, tmp_path, "pruned", ["--model", model])
    full, full_pred = train(folder, tmp_path, "full", ["--model", model, "--no-halo-pruning"])
    for key in ("loss", "train_acc", "val_acc", "test_acc"):
        assert [r[key] for r in pruned] == [r[key] for r in full], key
    assert np.array_equal(pruned_pred, full_pred)
    for a, b in zip(pruned, full):
        assert a["bytes"]["intra"]["features"] < b["bytes"]["intra"]["features"]


def rows_the_loss_reads(graph):
    """Per layer: how many nodes' outputs of the layer a training pass reads, on the global
    graph: the train nodes at the last layer, then the nodes a read node reads."""
    indptr, src = np.asarray(graph.indptr), np.asarray(graph.indices)
    dst = np.repeat(np.arange(graph.num_nodes), np.diff(indptr))
    needed = np.asarray(graph.train_mask).copy()
    rows = {}
    for layer in reversed(range(LAYERS)):
        rows[layer] = int(needed.sum())
        needed[src[needed[dst]]] = True
    return rows


@pytest.mark.mpi
def test_computes_the_rows_the_loss_reads(part, tmp_path):
    graph, folder = part
    reads = rows_the_loss_reads(graph)
    recs, _ = train(folder, tmp_path, "pruned", [])
    computed = recs[0]["computed_rows"]
    assert computed[LAYERS - 1] == reads[LAYERS - 1] == int(graph.train_mask.sum())
    assert computed[1] == reads[1] < graph.num_nodes  # 135 of 240
    # Layer 0 reads 233 of 240: a rank computing nearly every row keeps its whole block.
    assert reads[0] <= computed[0] <= graph.num_nodes


@pytest.mark.mpi
def test_a_part_without_train_rows_trains(tmp_path):
    """Its pruned layers compute one row, so every rank still calls every layer (and its
    collective exchange) on non-empty rows; GAT cannot take zero rows."""
    graph = community_graph()
    graph.train_mask = np.zeros(graph.num_nodes, dtype=bool)
    graph.train_mask[:2] = True
    folder = str(tmp_path / "p3")
    partition_graph(graph, PARTS, folder, method="metis", progress=False)
    assignment = np.load(os.path.join(folder, "assignment.npy"))
    assert len(set(assignment[:2].tolist())) < PARTS  # some part has no train row
    recs, _ = train(folder, tmp_path, "few", ["--model", "gat"])
    assert recs[0]["computed_rows"][LAYERS - 1] <= 2 + PARTS
    assert all(np.isfinite(r["loss"]) for r in recs)


def halo_rows_the_loss_reads(graph, assignment):
    """Per layer: the (part, halo node) pairs whose rows a pruned training pass moves, counted
    on the global graph. Layer L-1 reads the in-neighbours of train nodes; layer l the
    in-neighbours of the nodes layer l+1 reads, and of those nodes themselves."""
    indptr, src = np.asarray(graph.indptr), np.asarray(graph.indices)
    dst = np.repeat(np.arange(graph.num_nodes), np.diff(indptr))
    needed = np.asarray(graph.train_mask).copy()
    rows = {}
    for layer in reversed(range(LAYERS)):
        edge = needed[dst] & (assignment[src] != assignment[dst])
        rows[layer] = len(set(zip(assignment[dst[edge]].tolist(), src[edge].tolist())))
        reads = needed.copy()
        reads[src[needed[dst]]] = True
        needed = reads
    return rows


@pytest.mark.mpi
def test_moves_exactly_the_halo_rows_the_loss_reads(part, tmp_path):
    graph, folder = part
    assignment = np.load(os.path.join(folder, "assignment.npy"))
    rows = halo_rows_the_loss_reads(graph, assignment)
    assert rows[LAYERS - 1] < rows[0]  # the walk back from the train nodes widens
    # GCN 12 -> 8 -> 8 -> 4 in float64: layer 0 projects (8 columns travel), layer 1 sends its
    # 8-column input, layer 2 projects (4 columns); every layer's rows return a gradient.
    expected = 8 * (8 * rows[0] + 8 * rows[1] + 4 * rows[2])
    recs, _ = train(folder, tmp_path, "pruned", ["--no-input-halo-cache"])
    for r in recs:
        assert r["bytes"]["intra"]["features"] == expected
        assert r["bytes"]["intra"]["feature_grads"] == expected
