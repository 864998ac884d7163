"""Under mpirun, narrowing layers exchange their projected rows, and the input layer's halo rows
are fetched once and cached: the counted bytes say so (every halo row travels:
``--no-halo-pruning``; tests/comm/test_pruning.py counts the pruned rows)."""
import json

import pytest

from gnnsys.partition.api import partition_graph
from gnnsys.partition.format import open_shard
from tests._mpi import run_mpi
from tests.train.test_equivalence import community_graph

# community_graph: 12 features, 4 classes.
# GCN hidden 8: 12 -> 8 and 8 -> 4 both narrow: rows of width 8 and 4 travel (not 12 and 8).
# SAGE hidden 5: 12 -> 5 projects first (2 * 5 < 12: width 10); 5 -> 4 does not (width 5).
CASES = {"gcn": (8, [8, 4]), "sage": (5, [10, 5])}


@pytest.mark.mpi
@pytest.mark.parametrize("model", sorted(CASES))
def test_exchanged_width_is_the_projected_width(tmp_path, model):
    hidden, widths = CASES[model]
    part = tmp_path / "p2"
    partition_graph(community_graph(), 2, str(part), method="metis", progress=False)
    sent_rows = sum(int(open_shard(str(part), p).send_index.shape[0]) for p in range(2))
    metrics = tmp_path / "m.jsonl"
    proc = run_mpi(2, ["-m", "gnnsys.cli", "train", str(part), "--model", model, "--hidden",
                       str(hidden), "--epochs", "2", "--no-progress", "--metrics", str(metrics),
                       "--no-input-halo-cache", "--no-halo-pruning"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in metrics.read_text().splitlines()
               if '"epoch"' in line]
    assert len(records) == 2
    for record in records:
        sent = record["bytes"]["intra"]
        # float32 rows, every layer forward; backward returns a halo gradient of every layer
        # whose input needs one: the first layer's too when its weight ran before the exchange.
        assert sent["features"] == sent_rows * sum(widths) * 4
        grad_widths = widths if widths[0] != 12 else widths[1:]
        assert sent["feature_grads"] == sent_rows * sum(grad_widths) * 4


@pytest.mark.mpi
def test_quantized_exchange_carries_the_projection(tmp_path):
    """With --bits 1 the codec quantizes what fp32 would send: the projected rows (widths 8 and
    4, not the inputs' 12 and 8), forward and backward."""
    part = tmp_path / "p2"
    partition_graph(community_graph(), 2, str(part), method="metis", progress=False)
    sent_rows = sum(int(open_shard(str(part), p).send_index.shape[0]) for p in range(2))
    metrics = tmp_path / "m.jsonl"
    proc = run_mpi(2, ["-m", "gnnsys.cli", "train", str(part), "--model", "gcn", "--hidden", "8",
                       "--epochs", "2", "--bits", "1", "--no-progress", "--metrics", str(metrics),
                       "--no-input-halo-cache", "--no-halo-pruning"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in metrics.read_text().splitlines()
               if '"epoch"' in line]
    # one bit per element packed per row, plus 4 header bytes: 8 -> 1 + 4, 4 -> 1 + 4
    assert [r["bytes"]["intra"]["features"] for r in records] == [sent_rows * (5 + 5)] * 2
    assert [r["bytes"]["intra"]["feature_grads"] for r in records] == [sent_rows * (5 + 5)] * 2


@pytest.mark.mpi
@pytest.mark.parametrize("bits, layer1_row_bytes", [(32, 4 * 4), (1, 1 + 4)])
def test_input_halo_is_fetched_once_then_only_later_layers_move(tmp_path, bits, layer1_row_bytes):
    """Default cache: epoch 0 fetches the 12 feature columns once in float32 (exact, whatever
    --bits says), then every epoch moves only layer 1's rows (GCN 8 -> 4 projects: 4 columns in
    fp32, or one bit of each plus the 4-byte header with --bits 1), and no input gradient."""
    part = tmp_path / "p2"
    partition_graph(community_graph(), 2, str(part), method="metis", progress=False)
    sent_rows = sum(int(open_shard(str(part), p).send_index.shape[0]) for p in range(2))
    metrics = tmp_path / "m.jsonl"
    proc = run_mpi(2, ["-m", "gnnsys.cli", "train", str(part), "--model", "gcn", "--hidden", "8",
                       "--epochs", "3", "--bits", str(bits), "--no-progress", "--metrics",
                       str(metrics), "--no-halo-pruning"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in metrics.read_text().splitlines()
               if '"epoch"' in line]
    sent = [r["bytes"]["intra"]["features"] for r in records]
    assert sent == [sent_rows * (12 * 4 + layer1_row_bytes)] + [sent_rows * layer1_row_bytes] * 2
    assert all(r["bytes"]["intra"]["feature_grads"] == sent_rows * layer1_row_bytes
               for r in records if bits == 32)
