import pytest
import torch

from erasekit.bounded_eq8 import norm_range
from erasekit.closed_form import regenerating_embeddings
from erasekit.errors import ConfigError
from erasekit.gate import TokenGate
from erasekit.methods.ace import inverse
from erasekit.methods.ace.config import ACEConfig
from erasekit.methods.ace.inverse import LAMB, derived_states, open_on_derived

D = 6


def setup(null: float = 1e-3):
    """A K/V Gram, a gate on the first axis and an update that keeps ``null`` of the concept's axis."""
    gen = torch.Generator().manual_seed(0)
    W = torch.randn(3 * D, D, generator=gen, dtype=torch.float64)
    e0 = torch.eye(D)[:, :1]  # [d, 1]
    gate = TokenGate(basis=e0, mean=torch.zeros(D), sharpness=50.0, threshold=0.5)
    U, A = -(1 - null) * e0.clone(), e0.T.clone()  # M = I - (1 - null) e0 e0ᵀ
    states = torch.randn(2, 4, D, generator=gen) * 0.3 + 2 * e0[:, 0]  # [P, L, d], along the concept
    return W.T @ W, gate, U, A, states


def test_the_derived_states_are_rece_eq8_against_the_update_as_if_the_gate_were_open():
    S, _, U, A, states = setup()
    M = torch.eye(D, dtype=torch.float64) + U.double() @ A.double()
    expected = regenerating_embeddings(M.T @ S @ M, M.T @ S, states.reshape(-1, D), LAMB).float()
    free, _ = derived_states(U, A, S, states, norm_range(states))
    assert torch.allclose(free.reshape(-1, D), expected, rtol=1e-4, atol=1e-4)


def test_the_bounded_ones_lie_within_the_prompts_norms_at_each_position_as_derived_bounded_holds_them():
    S, _, U, A, states = setup()
    free, bounded = derived_states(U, A, S, states, norm_range(states))
    norms = states.norm(dim=-1)  # [P, L]
    low, high = norms.min(0).values, norms.max(0).values
    assert (free.norm(dim=-1) > high).all()  # the unbounded answer leaves the range
    assert ((bounded.norm(dim=-1) >= low * (1 - 1e-5)) & (bounded.norm(dim=-1) <= high * (1 + 1e-5))).all()


def test_an_update_that_nulls_the_concept_puts_its_derived_states_far_along_it_where_the_gate_opens():
    S, gate, U, A, states = setup()
    derived, _ = derived_states(U, A, S, states, norm_range(states))
    assert derived.norm() > 5 * states.norm()
    assert bool(gate.opens(derived).all())
    assert float(open_on_derived(gate, U, A, S, states, norm_range(states))[0]) > 0.5


def test_the_term_is_zero_where_the_gate_is_shut_on_every_derived_state():
    S, gate, U, A, states = setup()
    off = states - states[..., :1] * torch.eye(D)[0]  # nothing along the concept's axis
    assert [float(t) for t in open_on_derived(gate, U * 0, A * 0, S, off, norm_range(off))] == [0.0, 0.0]


def test_its_gradient_reaches_the_update_and_descending_it_shuts_the_gate_on_the_derived_states():
    S, gate, U, A, states = setup()
    U, A = U.clone().requires_grad_(), A.clone().requires_grad_()
    opt = torch.optim.Adam([U, A], lr=0.05)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = sum(open_on_derived(gate, U, A, S, states, norm_range(states)))
        first = float(loss.detach()) if first is None else first
        loss.backward()
        assert U.grad.abs().sum() > 0 or float(loss.detach()) == 0.0
        opt.step()
    assert first > 0.5
    assert float(sum(open_on_derived(gate, U.detach(), A.detach(), S, states, norm_range(states)))) < 0.01 * first


@pytest.mark.parametrize("name", ["inverse_weight", "inverse_bounded_weight", "shut_render_weight"])
def test_a_negative_weight_is_refused(name):
    with pytest.raises(ConfigError, match=name):
        ACEConfig(**{name: -0.1})


def test_a_term_left_out_is_zero_and_solves_nothing(monkeypatch):
    S, gate, U, A, states = setup()
    both = open_on_derived(gate, U, A, S, states, norm_range(states))
    monkeypatch.setattr(inverse, "derived_in_range", lambda *a: pytest.fail("the bounded solve ran for a zero weight"))
    free, bounded = open_on_derived(gate, U, A, S, states, norm_range(states), (True, False))
    assert float(free) == float(both[0]) > 0 and float(bounded) == 0.0
