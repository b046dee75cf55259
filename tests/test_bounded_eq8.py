import torch
from torch.testing import assert_close

from erasekit.bounded_eq8 import bounded_regenerating_embeddings, clamp_norms
from erasekit.closed_form import regenerating_embeddings


def test_the_bounded_embeddings_solve_eq5_under_the_norm_bound():
    """Hand-made case: the bound binds on one row (its answer is Eq. 8's at a larger λ, norm = bound, and no
    feasible point nearby does better on Eq. 5) and not on the other (Eq. 8's answer at λ₀)."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(6, 4, generator=g, dtype=torch.float64) * 0.3  # an edited layer that shrinks its inputs
    W_orig = torch.randn(6, 4, generator=g, dtype=torch.float64)
    S_cur, S_cross = W.T @ W, W.T @ W_orig
    C = torch.randn(2, 4, generator=g, dtype=torch.float64)
    free = regenerating_embeddings(S_cur, S_cross, C, 1e-3)
    high = torch.stack([free[0].norm() * 0.5, free[1].norm() * 2])  # row 0 must shrink, row 1 fits
    found, lam = bounded_regenerating_embeddings(S_cur, S_cross, C, 1e-3, high)
    assert_close(found[1], free[1])
    assert lam[1] == 1e-3
    assert_close(found[0].norm(), high[0])
    assert_close(found[0], regenerating_embeddings(S_cur, S_cross, C[:1], float(lam[0]))[0])

    def eq5(x):  # λ₀ ‖x‖² is constant on the sphere ‖x‖ = high₀, where the minimiser lies
        return ((W @ x - W_orig @ C[0]) ** 2).sum()

    for _ in range(50):  # feasible neighbours: nearby points scaled onto the bound's sphere
        y = found[0] + 0.05 * torch.randn(4, generator=g, dtype=torch.float64)
        y = y * high[0] / y.norm()
        assert eq5(found[0]) <= eq5(y) + 1e-12


def test_clamp_norms_rescales_rows_into_their_range():
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4], [1.0, 0.0]])  # norms 5, 0.5, 1
    y = clamp_norms(x, torch.tensor([1.0, 1.0, 0.5]), torch.tensor([2.0, 2.0, 2.0]))
    torch.testing.assert_close(y, torch.tensor([[1.2, 1.6], [0.6, 0.8], [1.0, 0.0]]))


def test_rows_that_fit_their_bound_are_eq8s():
    g = torch.Generator().manual_seed(1)
    W, W_orig = (torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(2))
    C = torch.randn(3, 5, generator=g, dtype=torch.float64)
    found, lam = bounded_regenerating_embeddings(W.T @ W, W.T @ W_orig, C, 1e-3, torch.full((3,), float("inf")))
    assert_close(found, regenerating_embeddings(W.T @ W, W.T @ W_orig, C, 1e-3))
    assert (lam == 1e-3).all()


def test_its_gradient_is_the_shifted_solve_s_at_each_row_s_lambda():
    """The backward pass (one eigendecomposition) against autograd through a plain solve per row at the same λ'."""
    g = torch.Generator().manual_seed(2)
    W = torch.randn(7, 5, generator=g, dtype=torch.float64) * 0.3
    S_cur = (W.T @ W).requires_grad_()
    S_cross = torch.randn(5, 5, generator=g, dtype=torch.float64).requires_grad_()
    C = torch.randn(4, 5, generator=g, dtype=torch.float64).requires_grad_()
    weights = torch.randn(4, 5, generator=g, dtype=torch.float64)
    free = regenerating_embeddings(S_cur.detach(), S_cross.detach(), C.detach(), 1e-3)
    high = free.norm(dim=-1) * torch.tensor([0.3, 2.0, 0.6, 0.9], dtype=torch.float64)  # rows 0, 2, 3 bind
    found, lam = bounded_regenerating_embeddings(S_cur, S_cross, C, 1e-3, high)
    grads = torch.autograd.grad((found * weights).sum(), (S_cur, S_cross, C))
    rows = [torch.linalg.solve(lam[i] * torch.eye(5, dtype=torch.float64) + S_cur, S_cross @ C[i]) for i in range(4)]
    expected = torch.autograd.grad((torch.stack(rows) * weights).sum(), (S_cur, S_cross, C))
    for got, want in zip(grads, expected, strict=True):
        assert_close(got, want)
