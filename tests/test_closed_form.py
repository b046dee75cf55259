from __future__ import annotations

import torch

from erasekit.closed_form import F64, Factor, pair_stats, ridge_factor
from erasekit.concepts import ErasePairs


def rand_factor(d, r, seed):
    g = torch.Generator().manual_seed(seed)
    return Factor(torch.randn(d, r, generator=g, dtype=F64) / d, torch.randn(r, d, generator=g, dtype=F64) / d)


def test_then_is_the_matrix_product():
    a, b = rand_factor(16, 3, 0), rand_factor(16, 5, 1)
    torch.testing.assert_close(a.then(b).matrix(), a.matrix() @ b.matrix())
    assert a.then(b).rank == 8


def test_compact_is_exact_once_rank_reaches_d():
    a, b = rand_factor(8, 6, 0), rand_factor(8, 6, 1)
    ab = a.then(b)
    assert ab.dense and ab.rank == 8
    torch.testing.assert_close(ab.matrix(), a.matrix() @ b.matrix())


def test_dense_and_low_rank_branches_agree():
    g = torch.Generator().manual_seed(0)
    d = 12
    C, G, K = (torch.randn(n, d, generator=g) for n in (d, d, 4))
    kw = dict(lamb=0.5, erase_scale=1.0, keep_weights=torch.full((4,), 0.3))
    dense = ridge_factor(ErasePairs.aligned(C, G), K, **kw)  # n == d: dense branch
    low = ridge_factor(ErasePairs.aligned(C[: d - 1], G[: d - 1]), K, **kw)
    assert dense.dense and not low.dense
    # both equal the textbook form T = (λI + es GᵀC + KᵀwK)(λI + es CᵀC + KᵀwK)⁻¹
    for f, n in ((dense, d), (low, d - 1)):
        C64, G64, K64 = C[:n].double(), G[:n].double(), K.double()
        KK = 0.3 * K64.T @ K64
        T = (0.5 * torch.eye(d, dtype=F64) + G64.T @ C64 + KK) @ torch.inverse(
            0.5 * torch.eye(d, dtype=F64) + C64.T @ C64 + KK
        )
        torch.testing.assert_close(f.matrix(), T)


def test_pair_stats_with_shared_guide_rows_equal_the_dense_products():
    g = torch.Generator().manual_seed(0)
    C, guide_rows = torch.randn(50, 8, generator=g), torch.randn(5, 8, generator=g)
    guide_of = torch.randint(0, 5, (50,), generator=g)
    CtC, CtG = pair_stats(ErasePairs(C, guide_rows, guide_of), chunk=7)
    C64, G64 = C.double(), guide_rows[guide_of].double()
    torch.testing.assert_close(CtC, C64.T @ C64)
    torch.testing.assert_close(CtG, C64.T @ G64)
