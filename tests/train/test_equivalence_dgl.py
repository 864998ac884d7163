"""Distributed training of unmodified DGL convs (through the adapter) is exactly single-process
training (DGL env only).

The machinery of ``test_equivalence.py``: 20 epochs, float64, dropout on, 2 ranks on a METIS
partition of the same clustered graph (the exchange itself is covered for 1, 2 and 4 ranks by
``test_equivalence.py``; each rank here imports DGL, hence one size); per-epoch losses equal
the plain-torch reference (``reference.py``, whose SAGE / GAT rules DGL's ``SAGEConv(mean)`` /
``GATConv`` with self-loops follow) to 1e-8 relative, final weights to 1e-7. Run as a script,
this file is the MPI worker: ``_train_worker`` with the DGL kinds added.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

#: kind -> (--layer, reference rule, DGL parameter name -> reference parameter name)
DGL_KINDS = {
    "dgl-sage": ("dgl.nn:SAGEConv", "sage", {"fc_neigh.weight": "lin_l.weight",
                                             "fc_self.bias": "lin_l.bias",
                                             "fc_self.weight": "lin_r.weight"}),
    "dgl-gat": ("dgl.nn:GATConv", "gat", {"fc.weight": "lin.weight", "attn_l": "att_src",
                                          "attn_r": "att_dst", "bias": "bias"}),
}


def _rename(name: str, kind: str) -> str:
    """``layers.<i>.conv.<dgl name>`` -> ``layers.<i>.<reference name>``."""
    layer, _, param = name.partition(".conv.")
    return f"{layer}.{DGL_KINDS[kind][2][param]}"


@pytest.mark.dgl
@pytest.mark.mpi
@pytest.mark.slow
@pytest.mark.parametrize("parts", [2])
def test_distributed_dgl_equals_single_process(tmp_path, parts):
    pytest.importorskip("dgl", reason="dgl is not installed (run in .venv-dgl)")
    from gnnsys.config import TrainConfig
    from gnnsys.partition.api import partition_graph
    from gnnsys.train.model import build_model
    from tests._mpi import run_mpi
    from tests.train._train_worker import COMMON
    from tests.train.reference import train_reference
    from tests.train.test_equivalence import community_graph

    graph = community_graph()
    layout = str(tmp_path / f"metis-{parts}")
    partition_graph(graph, parts, layout, method="metis", seed=0, progress=False)
    proc = run_mpi(parts, [__file__, str(tmp_path), *(f"{layout}:{k}" for k in DGL_KINDS)],
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for index, (kind, (layer, rule, _)) in enumerate(DGL_KINDS.items()):
        cfg = TrainConfig(partition=layout, layer=layer, **COMMON).validate()
        model = build_model(cfg, graph.num_features, graph.num_classes).double()
        state = {_rename(k, kind): v.detach().clone() for k, v in model.state_dict().items()}
        params = {_rename(k, kind) for k, _ in model.named_parameters()}
        ref_losses, ref_params = train_reference(rule, state, params, graph, cfg)
        got = np.load(tmp_path / f"{index}.npz")
        np.testing.assert_allclose(got["losses"], ref_losses, rtol=1e-8, atol=0,
                                   err_msg=f"loss differs for {kind} on {parts} ranks")
        for name in got.files:
            if name.startswith("param:"):
                np.testing.assert_allclose(got[name], ref_params[_rename(name[6:], kind)],
                                           rtol=1e-7, atol=1e-9, err_msg=f"{name} ({kind})")


if __name__ == "__main__":  # the MPI worker
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.train import _train_worker

    _train_worker.KINDS.update({kind: {"layer": spec[0]} for kind, spec in DGL_KINDS.items()})
    _train_worker.main()
