"""Tests for gnnsys.nn.registry: built-ins, module:Class, file.py:Class, PyG classes, errors."""
import os

import pytest
import torch

from gnnsys.errors import UserError
from gnnsys.nn import GATConv, GCNConv, GINConv, SAGEConv
from gnnsys.nn.adapters.pyg import PygLayer
from gnnsys.nn.block import Block
from gnnsys.nn.registry import build_layer

from tests.nn.conftest import random_csr

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "custom_layer.py")


@pytest.fixture
def block():
    return Block.full_graph(*random_csr(12, 30, seed=9))


@pytest.mark.parametrize("name,cls", [("gcn", GCNConv), ("sage", SAGEConv), ("gat", GATConv), ("gin", GINConv)])
def test_builtins(name, cls, block):
    layer = build_layer(name, 5, 3)
    assert type(layer) is cls and layer(block, torch.randn(12, 5)).shape == (12, 3)


def test_kwargs_are_passed():
    layer = build_layer("gat", 5, 3, heads=4, concat=False)
    assert layer.heads == 4 and not layer.concat


def test_module_class(tmp_path, monkeypatch, block):
    (tmp_path / "my_layers_mod.py").write_text(
        "import torch\nclass Lin(torch.nn.Module):\n"
        "    def __init__(self, i, o):\n        super().__init__(); self.lin = torch.nn.Linear(i, o)\n"
        "    def forward(self, block, h):\n        return self.lin(block.aggregate(h, 'sum'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    layer = build_layer("my_layers_mod:Lin", 5, 2)
    assert layer(block, torch.randn(12, 5)).shape == (12, 2)


def test_file_class_example_layer(block):
    layer = build_layer(f"{EXAMPLE}:MyLayer", 5, 4)
    h = torch.randn(12, 5, requires_grad=True)
    out = layer(block, h)
    out.sum().backward()
    assert out.shape == (12, 4) and h.grad is not None


def test_pyg_class_is_wrapped(block):
    layer = build_layer("torch_geometric.nn:SAGEConv", 5, 3)
    assert isinstance(layer, PygLayer) and layer.bipartite
    assert layer(block, torch.randn(12, 5)).shape == (12, 3)


@pytest.mark.parametrize("spec,words", [
    ("gcnn", "unknown layer"),
    ("no_such_module_xyz:Cls", "cannot import"),
    ("os:NoSuchThing", "no attribute"),
    ("os:path", "not a torch.nn.Module"),
    ("collections:OrderedDict", "not a torch.nn.Module"),
    ("missing/file.py:Cls", "not found"),
    (":Cls", "unknown layer"),
    ("gnnsys.nn:GCNConv", "cannot construct"),  # built with an unexpected kwarg below
])
def test_errors_are_one_line_user_errors(spec, words):
    kwargs = {"wrong_kwarg": 1} if spec.endswith("GCNConv") else {}
    with pytest.raises(UserError) as info:
        build_layer(spec, 4, 4, **kwargs)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_broken_user_file_is_a_user_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def broken(:\n")
    with pytest.raises(UserError, match="cannot import"):
        build_layer(f"{bad}:X", 2, 2)
