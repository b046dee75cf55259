"""End to end on the embedded world: an erased concept really disappears, and nothing else does.

The shipped model draws the concept for its target prompts; after `rece` or `ace` its judge no longer
sees it, while prompts about unrelated objects and colours keep their accuracy. `uce`, one closed-form
step, leaves part of a style: in the causal world (step 7000, 16 prompts) picasso 1.00 -> 0.44 and van
gogh 1.00 -> 0.56 under UCE, against 0.06 / 0.00 under RECE and 0.00 / 0.00 under the ACE of that time
(K/V objective); parachute goes to 0.00 under all three. So UCE is held to removing a quarter of the
detections, the others to 10%.
ACE runs at its defaults (through the gate) on parachute, and on picasso (its noise-prediction rounds on a style,
the costliest case) with the slow tests under the settings compare runs for a style (``style``: the update on every
token). Gated, at its defaults, ACE has left picasso in 2 of these 16 images since stop 25's faster gate fit
(ec69507, found by `git bisect` at stop 33; at most 1 before): on a style the gated update falls short, which is why
compare runs styles ungated (``methods/ace/__init__.py``, part 3). Andy warhol, a name in word pieces ("andy war
##hol") each of which draws the style alone, stayed in 0.75 of these images under ``style`` while ACE's rows began at
the prompt's last word; since stop 45 they begin at the name's first piece, and this case holds it to 10%.
"""

from __future__ import annotations

import pytest
import torch

import erasekit
from erasekit import worlds
from erasekit.errors import MissingWeightsError
from erasekit.worlds import embedded

N = 16  # prompts per set; one miss is 6 points


def embedded_pipeline():
    """The shipped embedded pipeline (it loads with its progress bar off); skipped when the world is not trained."""
    try:
        pipe = erasekit.load_pipeline("embedded")
    except MissingWeightsError as e:
        pytest.skip(f"embedded world not trained: {e}")
    return pipe


@pytest.fixture(scope="module")
def world():
    return embedded_pipeline(), embedded.load_judge()


def unrelated_prompts(*erased: str) -> list[tuple[str, str, str]]:
    """(prompt, object, colour) for plain object/colour prompts that involve none of the ``erased`` concepts."""
    names = embedded.concepts()
    objects = [o for o in names["object"] if o not in (*erased, "person")]
    colors = [c for c in names["color"] if c not in erased]
    return [(f"a {colors[i % len(colors)]} {obj}", obj, colors[i % len(colors)]) for i, obj in enumerate(objects)][:N]


def detection_rate(pipe, judge, prompts: list[str], concept: str, seed: int) -> float:
    """The share of ``prompts``' images (one each, drawn under ``seed``) in which the judge sees ``concept``."""
    images = pipe(prompts, generator=torch.Generator().manual_seed(seed)).images
    return sum(judge.detects(images, concept)) / len(prompts)


def unrelated_rates(pipe, judge, *erased: str) -> dict[str, float]:
    """How often plain object prompts that name none of ``erased`` ("a red cup") keep their object, their colour,
    and both."""
    unrelated = unrelated_prompts(*erased)
    images = pipe([p for p, _, _ in unrelated], generator=torch.Generator().manual_seed(1)).images
    kept = [(p["object"] == o, p["color"] == c) for p, (_, o, c) in zip(judge.predict(images), unrelated)]
    return {
        "unrelated": sum(o for o, _ in kept) / len(kept),
        "colour": sum(c for _, c in kept) / len(kept),
        "both": sum(o and c for o, c in kept) / len(kept),
    }


def scores(pipe, judge, concept: str) -> tuple[float, float]:
    """(detection rate of ``concept`` on its target prompts, object+colour accuracy on unrelated prompts)."""
    target = embedded.prompt_suite(concept, n=N)["target"]
    return detection_rate(pipe, judge, target, concept, 0), unrelated_rates(pipe, judge, concept)["both"]


LIMITS = {"uce": 0.75, "rece": 0.10, "ace": 0.10}  # the most detection each method may leave


@pytest.mark.parametrize(
    ("concept", "methods", "settings"),
    [
        ("picasso", ("uce", "rece"), None),
        ("parachute", ("uce", "rece", "ace"), None),  # ACE at its defaults: through the gate
        pytest.param("picasso", ("ace",), "style", marks=pytest.mark.slow),  # ACE's rounds on a style: ~2.5 min of CI
        # a name in word pieces ("andy war ##hol"), each of which draws the style alone: rows from the first one
        pytest.param("andy warhol", ("ace",), "style", marks=pytest.mark.slow),
    ],
)
def test_erased_concept_disappears_and_unrelated_prompts_stay(world, concept, methods, settings):
    pipe, judge = world
    detected, accuracy = scores(pipe, judge, concept)
    assert detected >= 0.8, f"the un-edited model should draw {concept!r}: detected {detected:.2f}"
    preserve = [c for c in embedded.concepts()[worlds.get("embedded").concept_kind(concept)] if c != concept]
    for method in methods:
        edit = erasekit.erase(pipe, [concept], method, preserve=preserve, settings=settings)
        edit.apply(pipe)
        try:
            detected_after, accuracy_after = scores(pipe, judge, concept)
        finally:
            edit.remove(pipe)
        most = LIMITS[method]
        assert detected_after <= most, f"{method}: {concept!r} still detected in {detected_after:.0%}"
        assert accuracy_after >= accuracy - 0.05, f"{method}: unrelated accuracy {accuracy:.2f} -> {accuracy_after:.2f}"
