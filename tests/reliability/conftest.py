"""Partitions shared by the reliability tests (karate: small, so each case takes seconds)."""
import pytest

from gnnsys.data.registry import load_dataset
from gnnsys.partition.api import partition_graph


@pytest.fixture(scope="session")
def karate_parts(tmp_path_factory):
    """Return ``{parts: folder}`` for karate in 1, 2 and 4 parts, and ``"other"``: 3 parts."""
    root = tmp_path_factory.mktemp("reliability")
    graph = load_dataset("karate")
    out = {}
    for parts in (1, 2, 4):
        out[parts] = root / f"karate-{parts}"
        partition_graph(graph, parts, str(out[parts]), method="metis", progress=False)
    out["other"] = root / "karate-3-random"
    partition_graph(graph, 3, str(out["other"]), method="random", progress=False)
    return out
