from __future__ import annotations

import pytest
import torch

from erasekit.attacks import attack
from erasekit.attacks.genetic import genetic_search
from erasekit.attacks.pairs import WITH, WITHOUT, pairs_for, read_pairs, template_pairs
from erasekit.attacks.ringabell import concept_vector
from erasekit.errors import ConfigError
from erasekit.text import TextEncoder

from .conftest import FAST


@pytest.fixture
def pairs_csv(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(f'{WITH},{WITHOUT}\n"a nude cat, bare",a cat\na nude dog,a dog\nnude birds,birds\n')
    return path


def test_concept_vector_is_the_mean_pair_difference(edited, pairs_csv):
    pipe, _ = edited
    pairs = read_pairs(pairs_csv)
    assert pairs == [("a nude cat, bare", "a cat"), ("a nude dog", "a dog"), ("nude birds", "birds")]
    ids = lambda t: pipe.tokenizer(t, padding="max_length", max_length=77, return_tensors="pt").input_ids  # noqa: E731
    with torch.no_grad():
        diffs = [pipe.text_encoder(ids(a))[0][0] - pipe.text_encoder(ids(b))[0][0] for a, b in pairs]
    torch.testing.assert_close(concept_vector(TextEncoder(pipe), pairs), sum(diffs) / 3)


def test_ringabell_embed_adds_eta_times_the_vector_to_each_prompt(edited, never, pairs_csv):
    pipe, edit = edited
    result = attack(
        pipe, "ringabell_embed", "nudity", judge=never, edit=edit, prompts=["a cat", "a dog"], eta=0.9,
        pairs=str(pairs_csv), sampling=FAST,
    )  # fmt: skip
    v = result.tensors["concept_vector"]
    assert result.info["eta"] == 0.9
    assert v.shape == (77, 32) and result.info["n_pairs"] == 3 and result.info["pairs"] == str(pairs_csv)
    plain = TextEncoder(pipe).encode_text(["a cat", "a dog"])
    for case, states in zip(result.cases, plain):
        torch.testing.assert_close(case.outcome.prompt_embeds, states + 0.9 * v)
        assert case.outcome.adversarial_prompt is None


@pytest.mark.parametrize(
    ("kind", "eta"), [("unsafe", 3.0), ("style", 0.9), ("object", 3.0), ("color", 3.0), (None, 3.0)]
)
def test_eta_goes_by_the_concept_kind_as_rece_runs_it(edited, never, kind, eta):
    pipe, edit = edited
    result = attack(
        pipe, "ringabell_embed", "cat", judge=never, edit=edit, prompts=["a cat"], concept_kind=kind, sampling=FAST
    )
    assert result.info["eta"] == eta and result.config["eta"] is None
    states = TextEncoder(pipe).encode_text(["a cat"])[0]
    torch.testing.assert_close(result.cases[0].outcome.prompt_embeds, states + eta * result.tensors["concept_vector"])


def test_pairs_come_from_the_shipped_file_for_nudity_and_from_templates_otherwise():
    pairs, source = pairs_for("nudity")
    assert source.endswith("ringabell_pairs_nudity.csv") and len(pairs) > 10
    pairs, source = pairs_for("tench")
    assert source == "templates" and pairs == template_pairs("tench")
    assert all("tench" in a and "tench" not in b for a, b in pairs)


def test_a_pairs_file_without_the_columns_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,other\na,b\n")
    with pytest.raises(ConfigError, match=r"lacks the column\(s\) \['sensitive prompt', 'normal prompt'\]"):
        read_pairs(path)
    with pytest.raises(ConfigError, match="not found"):
        read_pairs(tmp_path / "missing.csv")


def test_genetic_search_finds_a_planted_sequence_and_is_seeded():
    goal = torch.tensor([3, 1, 4, 1, 5])
    loss = lambda pop: (pop != goal).sum(1).float()  # noqa: E731
    kw = dict(length=5, population=40, generations=60, mutation_rate=0.5, crossover_rate=0.5)
    best, best_loss = genetic_search(loss, torch.arange(8), generator=torch.Generator().manual_seed(0), **kw)
    assert best_loss == 0 and torch.equal(best, goal)
    again = genetic_search(loss, torch.arange(8), generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(again[0], best)


def test_genetic_search_scores_only_individuals_it_has_not_scored():
    scored = []

    def loss(pop):
        scored.append(len(pop))
        return pop.sum(1).float()

    # no crossover, no mutation: after the first generation the population is its survivors, all known
    kw = dict(length=3, population=10, generations=5, mutation_rate=0.0, crossover_rate=0.0)
    genetic_search(loss, torch.arange(8), generator=torch.Generator().manual_seed(0), **kw)
    assert scored == [10]
    # every individual mutated: each generation scores its whole (survivor) population again
    scored.clear()
    genetic_search(loss, torch.arange(8), generator=torch.Generator().manual_seed(0), **{**kw, "mutation_rate": 1.0})
    assert scored == [10, 5, 5, 5, 5]


def test_ringabell_searches_real_tokens_and_ends_on_a_typeable_prompt(edited, never):
    pipe, edit = edited
    kw = dict(length=4, population=6, budget=2, sampling=FAST)
    a, b = (attack(pipe, "ringabell", "cat", judge=never, edit=edit, prompts=["a cat"], **kw) for _ in "ab")
    out = a.cases[0].outcome
    assert len(out.info["token_ids"]) == 4 and out.adversarial_prompt
    assert not set(out.info["token_ids"]) & set(pipe.tokenizer.all_special_ids)
    assert out.info == b.cases[0].outcome.info


def test_a_cached_search_serves_another_edit_of_the_same_model_and_only_it(edited, never, tmp_path, monkeypatch):
    import erasekit
    from erasekit.attacks import ringabell as module

    pipe, edit = edited
    searches = []
    real = module.genetic_search
    monkeypatch.setattr(module, "genetic_search", lambda *a, **k: searches.append(1) or real(*a, **k))
    kw = dict(judge=never, prompts=["a cat"], length=4, population=6, budget=2, sampling=FAST, cache=str(tmp_path))
    first = attack(pipe, "ringabell", "cat", edit=edit, **kw).cases[0].outcome
    other = erasekit.erase(pipe, ["cat"], method="uce", erase_scale=0.5)
    again = attack(pipe, "ringabell", "cat", edit=other, **kw).cases[0].outcome
    assert len(searches) == 1 and again.info == first.info  # the search never read the U-Net: reused
    attack(pipe, "ringabell", "cat", edit=edit, **{**kw, "seed": 1})
    attack(pipe, "ringabell", "cat", edit=edit, **{**kw, "eta": 0.5})
    assert len(searches) == 3 and len(list(tmp_path.glob("*.json"))) == 3  # another stream or target: searched
