from __future__ import annotations

import pytest
import torch

import erasekit
from erasekit.errors import ConfigError
from erasekit.methods.speed import (
    SPEEDConfig,
    above_mean,
    augment,
    invariant_rows,
    kmeans,
    null_projector,
    speed_rows,
)
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from erasekit.worlds.tiny import tiny_pipeline
from tests import oracle
from tests.methods.embedded import assert_erased, erase_on_embedded

F64 = torch.float64
PRESERVE = ["claude monet", "dog", "a red car", "tree"]


def speed_reference(encode, weights, targets, anchors, retain, K2, *, threshold, retain_scale, lamb, ipf):
    """train_erase_null.py ``edit_model`` (baseline SPEED) without DPA, transcribed in float64, rows as columns."""
    d = next(iter(weights.values())).shape[1]
    I = torch.eye(d, dtype=F64)  # noqa: E741 (the reference's name)
    sum_tt, sum_at = [], []
    for target, anchor in zip(targets, anchors):
        te, tm = encode([target])
        ae, am = encode([anchor])
        te = te[0][[int(tm[0].sum()) - 2], :]  # last subject token
        ae = ae[0][[int(am[0].sum()) - 2], :]
        sum_tt.append(te.T @ te)
        sum_at.append(ae.T @ te)
    sum_tt, sum_at = torch.stack(sum_tt).mean(0), torch.stack(sum_at).mean(0)
    re, rm = encode(retain)
    last_ret = re[torch.arange(re.shape[0]), rm.sum(1) - 2]  # [m, d]
    K2 = K2.T  # [d, c]
    I2 = torch.eye(K2.shape[1], dtype=F64)
    out = {}
    for name, W in weights.items():
        erase_weight = W @ (sum_at - sum_tt) @ (I + sum_tt).inverse()
        ret = last_ret
        if ipf:
            norm = (ret @ erase_weight.T).norm(dim=1)
            ret = ret[norm > norm.mean()]
        sum_ret = ret.T @ ret / ret.shape[0]
        U, S, _ = torch.svd(sum_ret)
        P = U[:, S < threshold] @ U[:, S < threshold].T
        M = (sum_tt @ P + retain_scale * I).inverse()
        inner = (K2.T @ P @ M @ K2 + lamb * I2).inverse()
        out[name] = W @ (sum_at - sum_tt) @ P @ (I - M @ K2 @ inner @ K2.T @ P) @ M
    return out


@pytest.mark.parametrize(("lamb", "ipf"), [(0.0, True), (0.3, False)])
def test_speed_matches_reference_transcription(lamb, ipf):
    pipe = tiny_pipeline("sd1")
    concepts = ["van gogh", "cat"]
    kw = dict(aug_num=0, prior_filter=ipf, lamb=lamb, threshold=1e-3, retain_scale=0.5, guide="art")
    edit = erasekit.erase(pipe, concepts, method="speed", preserve=PRESERVE, **kw)
    K2 = invariant_rows(TextEncoder(pipe), 3, generator=torch.Generator().manual_seed(0), iters=100)
    encode, weights = oracle.pipe_encoder(pipe), oracle.ca_projections(pipe.unet, with_to_k=False)
    ref = speed_reference(
        encode, weights, concepts, ["art", "art"], PRESERVE, K2, threshold=1e-3, retain_scale=0.5, lamb=lamb, ipf=ipf
    )
    assert sorted(edit.updates) == sorted(ref)  # --params V: values only
    assert oracle.max_rel_err({n: edit.delta(n) for n in edit.updates}, ref) <= 1e-4


def test_speed_rows_without_constraints_is_the_plain_null_space_form():
    g = torch.Generator().manual_seed(1)
    C, Q = torch.randn(3, 12, generator=g, dtype=F64), null_projector(torch.randn(4, 12, generator=g, dtype=F64), 1e-9)
    A, _ = speed_rows(C, Q, torch.zeros(0, 12, dtype=F64), es=0.5, retain_scale=0.7, lamb=0.0)
    Ch = C @ Q  # nullspace.py: A = Ĉ (λI + es ĈᵀĈ)⁻¹
    plain = Ch @ torch.linalg.inv(0.7 * torch.eye(12, dtype=F64) + 0.5 * Ch.T @ Ch)
    assert torch.allclose(A, plain, atol=1e-12)


def test_speed_rows_meet_the_invariants_and_the_null_space():
    g = torch.Generator().manual_seed(2)
    C, K, K2 = (torch.randn(n, 16, generator=g, dtype=F64) for n in (2, 5, 4))
    P = null_projector(K, 1e-9)
    A, _ = speed_rows(C, P, K2, es=1.0, retain_scale=1.0, lamb=0.0)
    assert (A @ K2.T).abs().max() < 1e-10  # IEC: ΔW K₂ᵀ = 0 exactly
    assert (A @ K.T).abs().max() < 1e-10  # prior rows lie outside P
    slack, _ = speed_rows(C, P, K2, es=1.0, retain_scale=1.0, lamb=10.0)
    assert (slack @ K2.T).abs().max() > 1e-3  # λ > 0 relaxes the equalities


def test_prior_filter_augmentation_and_projector_hand_cases():
    rows = torch.eye(4, dtype=F64)
    assert torch.equal(above_mean(rows, torch.tensor([1.0, 2.0, 3.0, 6.0], dtype=F64)), rows[3:])
    v = torch.tensor([0.0, 0.6, 0.8, 0.0], dtype=F64)
    extra = augment(rows[:2], v, 3, generator=torch.Generator().manual_seed(0))
    assert extra.shape == (6, 4)
    step = extra - rows[:2].repeat_interleave(3, 0)  # each copy moves along v only
    assert torch.allclose(step, (step @ v)[:, None] * v) and (step @ v).abs().min() > 0
    P = null_projector(torch.tensor([[2.0, 0, 0], [0, 0.1, 0]], dtype=F64), 0.1)  # eigenvalues 2, 0.005, 0
    assert torch.allclose(P, torch.diag(torch.tensor([0.0, 1, 1], dtype=F64)))


def test_kmeans_finds_two_clusters_and_is_seeded():
    X = torch.tensor([[0.0, 0], [1, 0], [10, 0], [11, 0]], dtype=F64)  # Lloyd finds these from any start
    for seed in range(4):
        centres = kmeans(X, 2, generator=torch.Generator().manual_seed(seed))
        assert sorted(centres.tolist()) == [[0.5, 0.0], [10.5, 0.0]]


def test_speed_invariants_hold_in_the_model():
    pipe = tiny_pipeline("sd1")
    edit = erasekit.erase(pipe, ["van gogh"], method="speed", preserve=PRESERVE, edit_keys=True)
    K2 = invariant_rows(TextEncoder(pipe), 3, generator=torch.Generator().manual_seed(0), iters=100)
    for t in find_targets(pipe.unet):
        dW = edit.delta(t.name).double()
        assert float((K2 @ dW.T).norm()) < 1e-5 * float((K2 @ t.weight.detach().double().T).norm())
        assert float(dW.norm()) > 0


def test_speed_is_deterministic_under_its_seed():
    pipe = tiny_pipeline("sd1")
    a, b = (erasekit.erase(pipe, ["van gogh"], method="speed", preserve=PRESERVE, seed=0) for _ in range(2))
    assert a.info["prior_rows"][1] > len(PRESERVE)  # DPA drew copies
    assert all(torch.equal(a.delta(n), b.delta(n)) for n in a.updates)
    # (another seed moves the copies along v, but their span, and so P, rarely changes: not asserted)


def test_speed_drops_preserve_texts_that_name_the_target():
    pipe = tiny_pipeline("sd1")
    edit = erasekit.erase(pipe, ["cat"], method="speed", preserve=["a black cat", "dog", "catalog"])
    assert edit.info["dropped_preserve"] == ["a black cat"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("retain_scale", 0.0), ("lamb", -1.0), ("threshold", 0.0), ("aug_num", -1), ("kmeans_iters", 0)],
)
def test_bad_config_is_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        SPEEDConfig(**{field: value})


def test_too_many_clusters_is_refused():
    with pytest.raises(ConfigError, match="iec_clusters"):
        erasekit.erase(tiny_pipeline("sd1"), ["cat"], method="speed", iec_clusters=500)


@pytest.mark.slow
@pytest.mark.parametrize("threads", [1, 2])
def test_speed_erases_parachute_on_the_embedded_world(threads):
    assert_erased(erase_on_embedded("speed", "parachute", threads=threads))
