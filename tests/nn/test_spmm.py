"""Tests for gnnsys.nn.spmm: transpose, forward, hand-written backward (gradcheck)."""
import torch

from gnnsys.nn.block import Block
from gnnsys.nn.spmm import csr_matrix, csr_transpose, spmm

from tests.nn.conftest import dense_adj, random_csr


def test_csr_transpose_matches_dense():
    indptr, indices = random_csr(12, 40, seed=3)
    ip, ix = torch.as_tensor(indptr), torch.as_tensor(indices)
    vals = torch.rand(ix.numel(), dtype=torch.float64)
    t_indptr, t_indices, perm = csr_transpose(ip, ix, 12)
    a = csr_matrix(ip, ix, vals, (12, 12)).to_dense()
    at = csr_matrix(t_indptr, t_indices, vals[perm], (12, 12)).to_dense()
    assert torch.equal(at, a.T)
    for r in range(12):  # columns sorted within every row of the transpose
        row = t_indices[t_indptr[r]:t_indptr[r + 1]]
        assert torch.all(row[1:] > row[:-1])


def test_spmm_forward_matches_dense_and_keeps_trailing_dims():
    indptr, indices = random_csr(15, 50, seed=4)
    block = Block.full_graph(indptr, indices)
    h = torch.randn(15, 3, 2, dtype=torch.float64)
    w = torch.rand(block.num_edges, dtype=torch.float64)
    dense = torch.zeros(15, 15, dtype=torch.float64)
    dense[block.edge_dst, block.edge_src] = w
    out = block.spmm(h, w)
    assert out.shape == (15, 3, 2)
    torch.testing.assert_close(out, torch.einsum("ij,jab->iab", dense, h), rtol=0, atol=1e-12)
    torch.testing.assert_close(block.spmm(h), torch.einsum("ij,jab->iab", dense_adj(indptr, indices), h),
                               rtol=0, atol=1e-12)


def test_spmm_gradcheck_features_and_edge_values():
    indptr, indices = random_csr(8, 20, seed=5)
    block = Block.full_graph(indptr, indices)
    h = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    w = torch.rand(block.num_edges, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda h, w: block.spmm(h, w), (h, w))
    assert torch.autograd.gradcheck(lambda h: block.spmm(h), (h,))


def test_the_transpose_is_built_only_for_a_source_gradient():
    indptr, indices = random_csr(10, 30, seed=7)
    block = Block.full_graph(indptr, indices)
    weight = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    x = torch.randn(10, 3, dtype=torch.float64)  # features: no gradient
    (block.spmm(x) @ weight).sum().backward()
    assert "csr_t" not in block._cache and weight.grad is not None
    h = x.clone().requires_grad_(True)
    block.spmm(h).pow(2).sum().backward()
    assert "csr_t" in block._cache
    dense = dense_adj(indptr, indices)
    torch.testing.assert_close(h.grad, 2 * dense.T @ (dense @ x), rtol=0, atol=1e-12)


def test_spmm_function_requires_endpoints_for_value_grad():
    indptr, indices = random_csr(6, 10, seed=6)
    block = Block.full_graph(indptr, indices)
    w = torch.rand(block.num_edges, dtype=torch.float64, requires_grad=True)
    adj, adj_t = block._matrices(w)
    try:
        spmm(torch.randn(6, 2, dtype=torch.float64), w, adj, adj_t)
    except ValueError as exc:
        assert "edge_src" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_numba_transpose_equals_the_torch_argsort_transpose():
    from gnnsys.nn.spmm import _transpose_torch

    gen = torch.Generator().manual_seed(0)
    for rows, cols, edges in ((5, 3, 0), (1, 1, 4), (300, 70, 2000)):
        counts = torch.multinomial(torch.ones(rows), edges, replacement=True,
                                   generator=gen) if edges else torch.zeros(0, dtype=torch.long)
        indptr = torch.zeros(rows + 1, dtype=torch.int64)
        indptr[1:] = torch.cumsum(torch.bincount(counts, minlength=rows), 0)
        indices = torch.randint(0, cols, (edges,), generator=gen)
        for got, want in zip(csr_transpose(indptr, indices, cols),
                             _transpose_torch(indptr, indices, cols)):
            assert got.dtype == torch.int64 and torch.equal(got, want)
