"""Feature normalisation: row L1 normalisation, and the trainer applies it on every rank."""
import numpy as np
import pytest
import torch

from gnnsys.comm.bootstrap import init_distributed
from gnnsys.config import TrainConfig
from gnnsys.data.registry import load_dataset
from gnnsys.data.transforms import normalize_features
from gnnsys.partition.api import partition_graph
from gnnsys.train.loop import Trainer


def test_none_returns_input_unchanged():
    feat = torch.randn(5, 3)
    assert normalize_features(feat, "none") is feat


def test_row_gives_unit_l1_rows_and_keeps_zero_rows():
    feat = torch.tensor([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [-2.0, 1.0, 1.0]])
    out = normalize_features(feat, "row")
    assert torch.allclose(out.abs().sum(1), torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(out[0], torch.tensor([0.25, 0.75, 0.0]))
    assert torch.equal(out[1], feat[1])
    assert torch.equal(feat[0], torch.tensor([1.0, 3.0, 0.0]))  # input untouched


def test_unknown_normalisation_is_refused():
    with pytest.raises(ValueError, match="unknown feature normalisation"):
        normalize_features(torch.ones(2, 2), "col")


def test_trainer_normalizes_the_shard_rows(tmp_path):
    graph = load_dataset("cora")  # binary bag-of-words rows with 1 to 30 words
    partition_graph(graph, 1, str(tmp_path / "c1"), progress=False)
    cfg = TrainConfig(partition=str(tmp_path / "c1"), normalize_features="row", epochs=1,
                      progress=False).validate()
    trainer = Trainer(cfg, init_distributed())
    raw = torch.from_numpy(np.array(graph.feat))[torch.from_numpy(np.array(trainer.orig_ids))]
    assert not torch.allclose(raw.sum(1), torch.ones(raw.shape[0]))
    expected = raw / raw.abs().sum(1, keepdim=True).clamp(min=1e-12)
    assert torch.allclose(trainer.feat, expected)
    trainer.close_exchange()
