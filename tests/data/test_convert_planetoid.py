"""Tests for datasets/convert_planetoid.py: the restricted unpickler and a reproducible build."""
import importlib.util
import io
import pickle
from pathlib import Path

import pytest

from gnnsys.data import load_dataset

SCRIPT = Path(__file__).resolve().parents[2] / "datasets" / "convert_planetoid.py"
RAW = Path("/work/shared/datasets/planetoid")


@pytest.fixture(scope="module")
def convert():
    spec = importlib.util.spec_from_file_location("convert_planetoid", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Evil:
    def __reduce__(self):
        import os
        return (os.getcwd, ())


def test_unpickler_refuses_other_globals(convert):
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        convert._PlanetoidUnpickler(io.BytesIO(pickle.dumps(_Evil(), protocol=2))).load()
    allowed = convert._PlanetoidUnpickler(io.BytesIO(pickle.dumps([1, 2], protocol=2))).load()
    assert allowed == [1, 2]


@pytest.mark.skipif(not RAW.is_dir(), reason="raw Planetoid files not available")
def test_conversion_reproduces_the_shipped_graph(convert):
    graph = convert.convert(RAW, "cora")
    assert graph.content_hash() == load_dataset("cora").content_hash()
