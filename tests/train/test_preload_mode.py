"""``--mode preload`` and sampled minibatches, trained for real under mpirun.

Two servers of two workers (``--ranks-per-server 2`` makes the link classes of one machine
those of two servers): preload training with the full closure equals the single-process
reference (float64, dropout on) and sends no feature or feature-gradient byte across servers;
one minibatch step holding every train node with all neighbours equals full-graph training in
both modes (also through the GCN input layer's control variate); uneven servers run the same number of steps and finish.
"""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gnnsys.partition.api import partition_graph
from gnnsys.train.model import build_model
from tests._mpi import run_mpi
from tests.train._train_worker import job_config
from tests.train.reference import train_reference
from tests.train.test_equivalence import community_graph

WORKER = str(Path(__file__).with_name("_train_worker.py"))
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph():
    return community_graph()


@pytest.fixture(scope="module")
def layouts(graph, tmp_path_factory):
    root = tmp_path_factory.mktemp("preload")
    out = {}
    for name, kwargs in {"full": dict(ext_fanout=-1), "sampled": dict(ext_fanout=2)}.items():
        out[name] = str(root / name)
        partition_graph(graph, 4, out[name], servers=2, method="metis", seed=0, progress=False,
                        preload_hops=2, **kwargs)
    # Server 0 (parts 0, 1) holds 3/4 of the nodes, so it has about 3x the train nodes.
    assignment = np.minimum(np.arange(graph.num_nodes) * 8 // graph.num_nodes, 7)
    assignment = np.array([0, 0, 1, 1, 0, 1, 2, 3])[assignment]
    out["uneven"] = str(root / "uneven")
    partition_graph(graph, 4, out["uneven"], servers=2, assignment=assignment, progress=False)
    for name, hops in (("two", 2), ("no-preload", 0)):  # 2 servers of 1 worker
        out[name] = str(root / name)
        partition_graph(graph, 2, out[name], servers=2, preload_hops=hops, progress=False)
    return out


def _reference(graph, partition, kind):
    cfg = job_config(partition, kind)
    model = build_model(cfg, graph.num_features, graph.num_classes).double()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return train_reference(kind, state, {k for k, _ in model.named_parameters()}, graph, cfg)


def _run(tmp_path, jobs, timeout=400):
    proc = run_mpi(4, [WORKER, "--ranks-per-server=2", str(tmp_path), *jobs], timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [dict(np.load(tmp_path / f"{i}.npz")) for i in range(len(jobs))]


@pytest.mark.mpi
def test_preload_and_one_step_minibatches_equal_single_process(graph, layouts, tmp_path):
    part = layouts["full"]
    jobs = [f"{part}:gcn:mode=preload", f"{part}:sage:mode=preload",
            f"{part}:gat:mode=preload",
            f"{part}:gcn:mode=preload,batch_size=100000",
            f"{part}:sage:mode=exchange,batch_size=100000",
            # a fanout above every degree samples every edge: the input layer's control
            # variate (on, as the fanout is not -1) must then give the exact layer
            f"{part}:gcn:mode=exchange,batch_size=100000,fanouts=100000"]
    results = _run(tmp_path, jobs)
    refs = {kind: _reference(graph, part, kind) for kind in ("gcn", "sage", "gat")}
    for job, got in zip(jobs, results):
        kind = job.split(":")[1]
        ref_losses, ref_params = refs[kind]
        np.testing.assert_allclose(got["losses"], ref_losses, rtol=1e-8, atol=0, err_msg=job)
        for name, value in ref_params.items():
            np.testing.assert_allclose(got["param:" + name], value.numpy(), rtol=1e-7,
                                       atol=1e-9, err_msg=f"{name} differs for {job}")
        if "mode=preload" in job:
            assert got["bytes:inter:features"] == 0, job
            assert got["bytes:inter:feature_grads"] == 0, job
        else:  # the same layout in exchange mode does send halo rows across servers
            assert got["bytes:inter:features"] > 0, job
        assert got["bytes:inter:weight_grads"] > 0, job
        assert got["bytes:intra:features"] > 0, job
    assert (results[3]["steps"] == 1).all()


@pytest.mark.mpi
def test_sampled_preload_and_uneven_servers_finish(graph, layouts, tmp_path):
    jobs = [f"{layouts['sampled']}:gcn:mode=preload,epochs=5",
            f"{layouts['uneven']}:gcn:mode=preload,batch_size=16,fanouts=3,epochs=5",
            f"{layouts['uneven']}:sage:batch_size=16,fanouts=2,bits=1,epochs=5"]
    results = _run(tmp_path, jobs)
    for job, got in zip(jobs, results):
        assert np.isfinite(got["losses"]).all(), job
        assert got["losses"][-1] < got["losses"][0], job
    assert results[0]["bytes:inter:features"] == 0 and results[1]["bytes:inter:features"] == 0
    train = np.asarray(graph.train_mask)
    server_of_node = np.minimum(np.arange(graph.num_nodes) * 8 // graph.num_nodes, 7) >= 6
    per_server = [int(train[~server_of_node].sum()), int(train[server_of_node].sum())]
    assert -(-per_server[0] // 16) > -(-per_server[1] // 16)  # the servers really are uneven
    assert (results[1]["steps"] == -(-max(per_server) // 16)).all()


def _train_cli(*args):
    return subprocess.run([sys.executable, "-m", "gnnsys.cli", "train", *args, "--no-progress",
                           "--epochs", "1"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


@pytest.mark.parametrize("extra, message", [
    (["--batch-size", "0"], "--batch-size"),
    (["--fanouts", "10,x"], "--fanouts"),
    (["--fanouts", "1,2,3"], "--layers is 2"),
    (["--batch-size", "8", "--staleness", "1"], "--staleness and --pipeline need full-graph"),
])
def test_bad_minibatch_options_are_one_line_errors(layouts, extra, message):
    proc = _train_cli(layouts["full"], *extra)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.mpi
def test_preload_mode_without_preload_or_with_too_few_hops_is_refused(layouts, tmp_path):
    for extra, message in ((["--layers", "3"], "--preload-hops 3"),
                           ([], "no preload")):
        folder = layouts["two"] if extra else layouts["no-preload"]
        proc = run_mpi(2, ["-m", "gnnsys.cli", "train", folder, "--mode", "preload",
                           "--no-progress", "--epochs", "1", *extra], timeout=120)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert message in proc.stderr and "Traceback" not in proc.stderr
