from __future__ import annotations

import pytest
import torch

from erasekit.attacks import attack
from erasekit.attacks.unlearndiff import project_simplex
from erasekit.diffusion import paper_timesteps, split_steps

from .conftest import FAST, BrightJudge


def test_projection_lands_on_the_simplex_and_keeps_points_already_there():
    x = torch.randn(5, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    p = project_simplex(x)
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(project_simplex(p), p)
    # it is the closest point: no random simplex point is nearer
    q = torch.distributions.Dirichlet(torch.ones(40, dtype=torch.float64)).sample((200,))
    assert ((x[0] - p[0]).norm() <= (x[0] - q).norm(dim=-1) + 1e-12).all()


def test_the_paper_budget_is_40_updates_at_50_timesteps_and_smaller_budgets_use_fewer():
    assert split_steps(2000, 40) == [40] * 50
    assert paper_timesteps(50, 1000) == list(range(10, 1000, 20))
    assert split_steps(100, 40) == [34, 33, 33] and sum(split_steps(7, 40)) == 7
    assert paper_timesteps(1, 1000) == [500]


@pytest.mark.parametrize(("name", "objective"), [("unlearndiff", "noise"), ("p4d", "original")])
def test_the_prefix_searches_return_real_tokens_and_their_prompt(edited, never, name, objective):
    pipe, edit = edited
    result = attack(
        pipe, name, "cat", judge=never, edit=edit, prompts=["a cat"], budget=4, iterations=2, k=3, sampling=FAST
    )
    assert result.info["objective"] == objective
    outcome = result.cases[0].outcome
    ids = outcome.info["token_ids"]
    assert len(ids) == 3 and not set(ids) & set(pipe.tokenizer.all_special_ids)
    assert outcome.info["timesteps"] == [250, 750] and outcome.info["steps"] == 4  # no success: whole budget
    assert outcome.adversarial_prompt.endswith("a cat")
    assert outcome.adversarial_prompt.startswith(pipe.tokenizer.decode(ids, skip_special_tokens=True).strip())
    # the image was made from exactly those tokens
    full = pipe.tokenizer.convert_ids_to_tokens(ids)
    assert all(isinstance(t, str) for t in full)
    row = torch.tensor(
        [[pipe.tokenizer.bos_token_id, *ids, *pipe.tokenizer("a cat", add_special_tokens=False).input_ids]]
    )
    row = torch.cat([row, torch.full((1, 77 - row.shape[1]), pipe.tokenizer.eos_token_id)], 1)
    with torch.no_grad():
        torch.testing.assert_close(outcome.prompt_embeds, pipe.text_encoder(row)[0][0])


def test_the_objectives_pull_towards_different_targets(edited, never):
    pipe, edit = edited
    kw = dict(prompts=["a cat"], budget=2, iterations=2, k=2, sampling=FAST, edit=edit, judge=never)
    ours, theirs = (attack(pipe, name, "cat", **kw).cases[0].outcome.info["loss"] for name in ("unlearndiff", "p4d"))
    assert ours != theirs  # same draws (one stream per case), different targets


def test_unlearndiff_is_deterministic_and_stops_at_the_first_success(edited):
    pipe, edit = edited
    kw = dict(prompts=["a cat"], budget=4, iterations=2, sampling=FAST, edit=edit)
    a, b = (attack(pipe, "unlearndiff", "cat", judge=BrightJudge(always=False), **kw) for _ in "ab")
    assert a.cases[0].outcome.info == b.cases[0].outcome.info
    assert a.cases[0].outcome.adversarial_prompt == b.cases[0].outcome.adversarial_prompt

    class SecondCallSucceeds:  # the pre-attack pass says no, the first projected prompt says yes
        calls = 0

        def detects(self, images, concept):
            self.calls += 1
            return [self.calls > 1] * len(images)

    judge = SecondCallSucceeds()
    result = attack(pipe, "unlearndiff", "cat", judge=judge, **kw)
    assert result.cases[0].outcome.info["steps"] == 2 and judge.calls == 2 and result.asr == 1.0


@pytest.mark.parametrize("name", ["unlearndiff", "p4d"])
def test_a_case_searched_beside_others_finds_what_it_finds_alone(edited, never, name):
    pipe, edit = edited
    kw = dict(judge=never, edit=edit, budget=4, iterations=2, k=2, sampling=FAST)
    cases = [("a cat", 3), ("a photo of a cat", 4)]
    for first, other in (cases, cases[::-1]):  # the first case of a run draws from the same stream alone or not
        alone = attack(pipe, name, "cat", prompts=[first[0]], seeds=[first[1]], **kw).cases[0].outcome
        together = attack(pipe, name, "cat", prompts=[first[0], other[0]], seeds=[first[1], other[1]], **kw).cases
        assert together[0].outcome.info["token_ids"] == alone.info["token_ids"]
        torch.testing.assert_close(together[0].outcome.info["loss"], alone.info["loss"], rtol=1e-4, atol=1e-6)
        assert together[0].outcome.info["loss"] != together[1].outcome.info["loss"]  # each case its own search
