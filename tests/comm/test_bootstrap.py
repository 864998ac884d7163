"""init_distributed in a 1-rank world (no mpirun): topology, torch groups, option checks."""
import sys

import numpy as np
import pytest
import torch

from gnnsys.comm.bootstrap import init_distributed
from gnnsys.errors import RuntimeFailure, UserError


def test_single_process_is_a_one_rank_one_server_world():
    ctx = init_distributed()
    assert (ctx.rank, ctx.size, ctx.local_rank, ctx.local_size) == (0, 1, 0, 1)
    assert (ctx.server, ctx.num_servers, ctx.server_of_rank) == (0, 1, [0])
    assert ctx.is_leader and ctx.link_of(0) == "intra" and ctx.host
    assert ctx.allreduce_sum(np.array([3, 4])).tolist() == [3, 4]
    assert ctx.allreduce_max(np.array([3.5, -1.0])).tolist() == [3.5, -1.0]
    ctx.barrier()
    ctx.close()


@pytest.mark.parametrize("backend", ["gloo", "torch"])
def test_torch_backend_joins_a_process_group_and_close_leaves_it(backend):
    ctx = init_distributed(backend)
    try:
        assert ctx.backend == "gloo" and torch.distributed.is_initialized()
        assert torch.distributed.get_world_size() == 1
        assert ctx.intra_group is not None and ctx.leader_group is not None
    finally:
        ctx.close()
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("kwargs, words", [
    (dict(backend="ucx"), "backend"),
    (dict(device="tpu"), "device"),
    (dict(backend="nccl"), "cuda"),
    (dict(ranks_per_server=2), "ranks_per_server"),
])
def test_bad_options_are_user_errors(kwargs, words):
    with pytest.raises(UserError, match=words):
        init_distributed(**kwargs)


def test_check_placement_compares_servers_up_to_renaming():
    ctx = init_distributed()
    ctx.check_placement(np.array([5]))
    with pytest.raises(UserError, match="2 parts"):
        ctx.check_placement(np.array([0, 1]))


def test_without_mpi_a_pure_one_rank_context_works(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # makes `from mpi4py import MPI` fail
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        monkeypatch.delenv(var, raising=False)
    ctx = init_distributed()
    assert ctx.comm is None and (ctx.size, ctx.num_servers) == (1, 1)
    assert ctx.allreduce_sum(np.array([2.5])).tolist() == [2.5]
    ctx.barrier()
    ctx.close()


def test_without_mpi_under_a_launcher_is_a_failure_not_a_silent_one_rank_run(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    with pytest.raises(RuntimeFailure, match="OMPI_COMM_WORLD_SIZE"):
        init_distributed()
