"""ACE: Attentional Concept Erasure (arXiv 2504.11850), a first working implementation.

Not Anti-Editing Concept Erasure, a different method also called ACE. The abstract names three parts: a closed-form
manipulation of attention, a gated low-rank adaptation, and adversarially augmented fine-tuning. No code was released;
this module is our reading of it, with every choice the abstract leaves open written down here.

**1. Prompt sets.** ``target``: every concept and ``synonyms`` put in ``templates``; ``neutral``: generic prompts with
no concept; ``retain``: the preserve set put in the same templates. Each target and neutral prompt also comes
``augment`` times behind ``prefix_words`` random vocabulary words: prompt-space attacks (UnlearnDiff's prefix search, a
learned pseudo-word) shift every token's state through the encoder's context, and the gate must still fire on the
concept and still stay shut on words alone. Where the hardware multiplies bfloat16 (``encode_dtype="auto"``), these
prompts are encoded under bf16 autocast, ~3x faster on a CPU with AVX512-BF16 (the states 0.6% apart); the closed form
and every fit stay float32, as do the stored neutral captions of part 3. Rows are text-encoder token states: for a
target prompt, the states from the first token of the name it holds to the padded end, each from the prompt's last word
on paired with the guide's state at the same offset from the guide's last word (``skip_bos``: never the start-of-text
state), the name's earlier tokens with the guide's last word; for neutral and retain prompts, every position. Until stop
45 the rows began at the prompt's last word (UCE's span: in a causal encoder earlier positions have not seen the concept
yet), but a name's first pieces carry it alone: on the embedded world "andy" and "war" of "andy war ##hol" each draw
warhol in 8 of 8 images, and ACE left andy warhol in 0.75 of its val images and rembrandt ("re ##mb ##rand ##t") in all
of them (``bench/ACE_MEASUREMENTS.md``, "The name's first pieces").

**1b. Mined related terms** (:mod:`.mining`): vocabulary words next to the concept whose K/V the original reads as the
concept's (closer than any preserved concept's) and which it renders as the concept (they move its noise prediction the
concept's way), erased as ``synonyms`` (``info["mined_words"]``), and noisy copies of the concept's rows (RealEra's
neighbour concepts). The neighbours it reads as the concept but renders otherwise ("purple" for "red") are the gate's
negatives (``info["gate_siblings"]``). ``synonyms=`` adds the user's own.

**2. Concept subspace and closed form.** With μ the mean neutral/retain row, the gate's subspace is
the top-``rank`` generalised eigenvectors of the target rows' scatter against the neutral/retain
scatter, ``Σ_t v = ν (Σ_n + εI) v`` (an SVD of the target rows whitened by the neutral ones:
directions where the concept varies and ordinary prompts do not), orthonormalised into ``P [d, k]``.
The update of every K/V projection is ``ΔW_l = W_l U A``: UCE's ridge solution on the target rows
(targets → guide rows, neutral/retain rows kept with weight ``preserve_scale``), cut to rank k by
reduced-rank regression (:func:`reduced_rank_ridge`). Restricting the update's row space to ``P``
instead erased too little: the concept's rows keep much of their energy outside any k-dim subspace.

k is ``rank`` times the word pieces of the concepts' names ("andy warhol": ``andy war ##hol``, 3 to
MiniLM), each piece's state a direction of its own. Per concept: on the embedded world's 10-concept
scenario a shared k = 8 left 78% of the target images showing their concept, k = 80 erased church,
van gogh and red completely (parachute 0.12; nudity 0.88 stays hard). Per piece since stop 46, once
the rows took in a name's first pieces (part 1): at 8 a concept (the ``style`` settings) kelly
mckernan (``kelly mc ##ker ##nan``) stayed on 0.69 and 0.81 of its val prompts (H_o 0.25, 0.00; at 8
a piece 0.12 and 0.00, H_o 0.67, 0.70), and multi10's val H_o went from 0.807 to 0.823 over training
seeds 0-4, with the gated part mined on the original model (:mod:`.kinds`; ``bench/ACE_MEASUREMENTS.md``,
"The rank per word piece").

**3. Gate.** ``g(c) = σ(s (‖Pᵀ(c − μ)‖²/‖c − μ‖² − τ))`` per token (:mod:`erasekit.gate`), applied by an
attention processor: a token gets ``W c + g(c) ΔW c``. Fitted, not trained with the update (:mod:`.gatefit`),
on captions no world supplies (:mod:`.neutral`): the concepts named in ``contexts`` varied generic captions
are the positives (their tokens from the concept on); the negatives are every token of ``neutral_captions``
generic captions, of ``vocabulary_captions`` captions naming a random word of the tokenizer's vocabulary, of
``name_captions`` captions naming a made-up name ("in the style of mcternan": rare names reach the encoder as
word pieces, and before these the gate of "church" opened on the "mc" of "mckernan" in 19% of the other
objects' val prompts, 4% after; van gogh's 35% -> 17%, its paraphrases found 71% -> 69%, 48 prompts each; half
the made-up names follow a common first name, and a quarter of the positive captions name the concept behind
one, after which parachute's gate opens on "andy" warhol and "kelly" mckernan less often: 29% -> 12.5% of the
other concepts' val prompts), and of the preserved concepts named in the same contexts. ``P`` starts at the
generalised eigenvectors above and is fitted with ``s`` and ``τ`` by class-balanced cross-entropy on three
quarters of the captions; ``τ`` is then raised until at most ``gate_token_rate`` of the held-out negative
tokens and ``gate_prompt_rate`` of the held-out negative prompts open the gate, and from there
``gate_margin`` (a tenth) of the log-gap up to where the concept's own held-out span tokens start to close:
real names land just above the captions' bound. ``info["gate_heldout_*"]``
records those rates and the share of held-out concept captions where some token opens it. Real prompts of
the preserved concepts (``preserve_prompts``; ``erasekit compare`` passes the fit split's) are negatives too
(``gate_fit_preserve``: worded as users word them, "rembrandt van rijn" where the captions say "rembrandt";
:mod:`.gatefit` has the val numbers) and are measured (``info["gate_preserve_prompts"]``, three quarters of
them fitted on); ``gate_preserve_rate`` calibrates τ on them, off by default because on
val it cost van gogh its erasure (:mod:`.gatefit`), on in the ``object`` settings (below), what compare runs
for objects. With ``gate_whole_prompt`` (the ``unsafe`` settings, what compare runs for nudity) a token opens at
most as far as its prompt's last position, which in a causal encoder has read the whole prompt: the gate of
"nudity" had opened on word pieces of real names ("re ##mb ##rand ##t") wherever they stood. The tiny template
set the gate had before let it open on 85% of the tokens of unrelated prompts ("a red car parked on a
street"). On the embedded world's unseen test prompts (48 each, "van gogh", preserve = half the other styles)
τ at 5% of the held-out prompts let 29% of the neutral prompts open the gate and found 81% of the paraphrases;
at 2% (the default) 15% and 77%: the prompts that open it name rembrandt van rijn or monet, as close to van
gogh in the text encoder as "the post-impressionist painter from holland" is (before ``gate_margin``; the
README has the current rates). For artistic styles the gate costs more than it saves: a style is asked for by
descriptions ("the man who painted the sunflowers") the gate does not find, so ``gated=False`` (in the
``style`` settings, what ``erasekit compare`` runs for styles) was chosen for them on val (below). In a request
that mixes kinds, the concepts the caller says are styles (``erase(kinds=...)``, ``erasekit erase --kind``;
``erasekit compare`` passes the world's) are erased that way and the rest through the gate, in one edit whose
gate leaves the styles' rows open on every token (``ungated_kinds``, ``ungated_rank``; :mod:`.kinds`).

**4. Adversarially augmented fine-tuning.** ``epochs`` rounds of a min-max game. Inner loop
(the ``soft_prompt`` attack moved to K/V space, where it is cheap): ``inner_steps`` Adam steps on
free token states ``E`` (warm-started from the last round, starting at the target rows) that make the
edited layers output what the original ones output for the concept,

    min_E Σ_l ‖W_l (E + g(E) U A E) − W_l C‖²   =   ‖(E + g(E) U A E) − C‖²_S,   S = Σ_l W_lᵀ W_l

(S is the per-model Gram RECE Eq. 8 uses, so a step costs O(n d²), not a pass over the U-Net).
Free states can leave the text encoder's range, so a second adversary plays the ``soft_prompt``
attack itself: ``soft_tokens`` input embeddings (one for all prompts, warm-started, from the
concept's word) in front of every target prompt, through the text encoder, with the same K/V
objective on the span rows (shifted by the slots). Its rows join ``E``. It is off by default: on the
embedded world it made ACE ~10x slower (85 s against 9 s for "van gogh") and moved no attack's
success rate (soft_prompt on "nudity" stayed at 1.00, discrete on "van gogh" 0.75-0.88 either way).
Outer loop: Adam on ``U, A`` (the gate stays as calibrated). Each round draws ``batch_rows`` rows
of the target, perturbed and keep sets (stochastic rounds: the thousands of rows are templates x
copies x span positions of a few prompts, and a round's cost is linear in them; on the embedded world
parachute and picasso still passed the end-to-end bounds, and the rounds cost about half; picasso's gated defaults
leave 2 of 16 images since stop 25's gate fit, ``tests/test_end_to_end.py``). The objective
(``loss="denoise"``, the default) adds to the K/V terms the abstract's alignment of the conditional distribution on the
concept with a neutral one: on latents ``x_0`` the original model draws for the concept's prompts
(``denoise_images``, ``denoise_steps`` sampler steps), noised to a random ``t``,

    w_d E_{x_0, t, ε} ‖ε_edit(x_t, t, c ⊕ E) − ε_orig(x_t, t, guide)‖²
    + (‖edit(C) − G‖²_S + ‖edit(E) − G‖²_S + w_keep ‖edit(K) − K‖²_S) / u

(``c ⊕ E``: the prompt's states with the adversary's rows in place of the concept's; ``ε_orig``
the frozen original; ``u = ‖C − G‖²_S``; ``denoise_batch`` draws a round; the perturbed rows of
part 1b join ``E``). The K/V terms stay as the anchor: with the noise-prediction term alone
(and the keep term) picasso stayed detected in 3/16 and, with all 30 rounds, 2/16 target images
(judge, embedded world), against 1/16 with the K/V terms. ``loss="kv"`` (the ``ace-kv`` ablation)
drops the noise-prediction term. With the K/V objective, 30 rounds against 60 gave
picasso 0.06 / 0.12, van gogh 0.00 / 0.06, parachute 0.00 / 0.06, nudity 0.50 / 0.25 (16 target
prompts, judge detection, before the fitted gate); the default is 30. The rounds are not stopped
on a validation split: the method gets only the concepts and the preserve set, not the world's
val prompts; they stop on its own held-out captions (:mod:`.stopping`). The outer step (``lr`` 2e-2),
``patience`` 3 and ``denoise_batch`` 4 are chosen for speed and held to val H_o (:mod:`.config`): at 1e-2
the held-out criterion rose for ~21 rounds, at 2e-2 it peaks by ~12, with as many draws in all. For nudity (the
``unsafe`` settings) the criterion dips over the first rounds, and patience 3 stopped in the dip on three seeds of five:
those settings skip the first 3 rounds (``warmup_rounds``) at twice the lr, capped at 12 (``UNSAFE_ROUNDS`` below).
A term (``inverse_weight``, :mod:`.inverse`) keeps a gated update's gate shut on RECE's derived embeddings of the
target prompts, the white-box ``derived`` attack's ``c'``, through the solve; it joins once the warm-up rounds are
over. On in the ``unsafe`` settings at 0.2 (off by default), chosen on nudity's val prompts (44 a group, training seeds
0-4; ``bench/ACE_MEASUREMENTS.md``, "The gate kept shut on `derived`'s embeddings"): H_o 0.923 0.863 0.923 0.898 0.907
(0.903) against 0.899 0.856 0.923 0.907 0.922 (0.901), ``derived`` 0.16 ± 0.04 against 0.34 ± 0.11, the gate shut on
every ``c'``. From the first round it cost the erasure (H_o 0.874, and 0.886 at 20 rounds): the term pulls the update
before the warm-up has formed it. On Eq. 8's unbounded ``c'`` alone it left ``derived_bounded`` high on some seeds
and not on others (test, 96 prompts: 0.61 0.95 0.35 0.92 0.85 against 0.98 0.94 0.94 0.93 0.95); a second term
(``inverse_bounded_weight``, 0.02 in the ``unsafe`` settings since stop 50) keeps the gate shut on the bounded ``c'``
too, both on a minibatch of 32 target prompts a round. Chosen on val over weights 0, 0.01, 0.02, 0.04 and 0.2
(``bench/ACE_MEASUREMENTS.md``, "The gate kept shut on `derived_bounded`'s embeddings too"): H_o tied, and
``derived_bounded`` 0.62 ± 0.08 against 0.75 ± 0.27; on 96 test prompts 0.61 ± 0.12 against 0.74 ± 0.25. Where the
gate is shut the plain weights read the bounded ``c'``: an opt-in third term trains that reading towards the guide's
(``shut_render_weight``, :mod:`.inverse`; not in the ``unsafe`` settings, for its time).

**5. The edit.** Per layer ``(W_l U, A)`` as every closed form, plus the gate in ``Edit.gate``. Plain
``pipe.load_lora_weights`` reads the LoRA part only and applies it to every token (no gate):
``Edit.load(path).apply(pipe)`` applies the gate. ``info["gate_note"]`` says so.
With ``ensemble`` n (``style``: 2) an ungated edit averages n trainings of their own seeds (:mod:`.ensemble`), and
with ``ungated_ensemble`` n (``object``: 2) so does the ungated part of a request that mixes kinds.

**6. Ablations** (rows of ``erasekit compare``): ``ace-nogate`` (the update on every token),
``ace-noadv`` (no inner adversary), ``ace-nomine`` (no mined words or perturbed rows), ``ace-kv``
(the K/V regression as the objective).
"""

from __future__ import annotations

import dataclasses

from ...edit import Edit
from .. import EraseRequest, register
from .config import GATE_NOTE, NEUTRAL, STYLE, TEMPLATES, ACEConfig
from .ensemble import averaged
from .kinds import applied, joined, noted, part, ungated_concepts, ungated_config
from .mining import mine_words
from .prompts import Rows, prompt_sets, token_rows, training_encoder
from .subspace import concept_subspace, reduced_rank_ridge
from .train import check_request, kv_metric, train_ace

__all__ = [
    "GATE_NOTE",
    "NEUTRAL",
    "TEMPLATES",
    "ACEConfig",
    "Rows",
    "ace",
    "concept_subspace",
    "prompt_sets",
    "reduced_rank_ridge",
    "token_rows",
    "train_ace",
]


# The ablations, rows of ``erasekit compare`` next to ``ace`` (package docstring, part 6)
VARIANTS = {
    "ace": {},
    "ace-nogate": {"gated": False},
    "ace-noadv": {"inner_steps": 0},
    "ace-nomine": {"mine_words": 0, "mine_perturbations": 0},
    "ace-kv": {"loss": "kv"},
}


# Named settings (``--settings NAME``, ``ace:settings=NAME``) and the ones a comparison uses per kind of concept.
# ``rank32``: rank 32 (per concept when chosen, per word piece since stop 46), chosen on the embedded world's val
# prompts (``erasekit tune ace --settings defaults --scenario KIND --grid rank=8,32``, 16 prompts per group, H_o at
# rank 8 -> 32): nudity 0.71 -> 0.84 (seed 0) and
# 0.74 -> 0.78 (seed 1), church 0.88 -> 0.95 and 0.83 -> 0.95, van gogh 0.77 -> 0.78 (a tie, so styles keep
# the default 8, on which their measurements stand). The multi-concept scenario takes its most common kind's
# (objects): k = 320 of the 384 text dimensions for ten concepts, which in one test run erased more than the five
# runs at k = 80 (bench/ACE_MEASUREMENTS.md, "Earlier runs"). Colours take ``object`` (``BY_KIND``).
# ``style``: the update on every token (the ``ace-nogate`` ablation's setting) and no perturbed rows, chosen for
# styles on val. Ungated (``erasekit tune ace --settings defaults --scenario style --grid gated=true,false --grid
# seed=0,1,2``, H_o gated -> ungated): van gogh 0.77 0.78 0.79 -> 0.95 0.99 0.95, its paraphrases detected on 7
# of 16 val prompts gated and 0-2 ungated: the gate, fitted on the name in captions, misses the descriptions a style is
# asked for by. Not for the other kinds: nudity 0.88 0.86 0.88 -> 0.87 0.80 0.85 (unseen specificity 0.98 -> 0.87-0.96),
# church 0.97 0.93 0.94 -> 0.97 0.96 0.94 (a tie; with ``--settings rank32``), multi10 0.71 0.63 -> 0.29 0.29 (seeds
# 0-1; unseen specificity 0.94 -> 0.12: 320 directions moved on every token). Then, ungated over seeds 0-4 (``--grid
# gated=false --grid mine_perturbations=0,2 --grid seed=0,1,2,3,4``, and ``--grid augment=8``): 2 perturbed
# copies (the default) 0.95 0.99 0.95 0.87 0.95, none 0.98 0.99 1.00 0.92 0.97, augment 8 0.98 0.93 0.91 0.97 0.86;
# why the perturbed rows cost an ungated edit was not found (they take part of each round's adversarial batch).
# ``object``: ``rank32`` with τ also calibrated on the caller's preserve prompts (``gate_preserve_rate`` 0.02) and
# allowed up to where 80% of the concept's held-out span tokens still open it (``gate_concept_rate`` 0.8), chosen for
# objects on val: parachute's gate opened on 15% of the other concepts' val prompts at rank 32 (on first names after
# "by", which MiniLM puts at its own level), 2.5% with both (paraphrases found 100% -> 97.5%; church 2.5% -> 0%,
# 100% -> 97.5%; ``bench/ace_gate.py --split val --n 40 --concepts parachute church --settings rank32 --set epochs=1
# ...``), 12.5% with the preserve rate alone, 15% with the concept rate alone. H_o ties (``erasekit tune ace
# --settings rank32 --grid gate_preserve_rate=0.02 --grid gate_concept_rate=0.8 --grid seed=...``): church 0.97 0.93
# 0.94 -> 0.93 0.93 0.93 (one val prompt of 16 at seed 0), multi10 0.71 0.63 -> 0.71 0.63: the same edits to the bit,
# since on ten concepts the preserve prompts' bound lies above the 80% ceiling and τ stays where the captions put it.
# Not for styles, which run ungated, where the preserve rate cost van gogh its erasure (:mod:`.gatefit`). In a
# request that mixes kinds (multi10's), styles and nudity go on every token and the rest through the gate
# (``ungated_kinds``, :mod:`.kinds`), chosen on val (``erasekit tune``'s scoring, seeds 0 and 1): H_o 0.71 0.63
# with one gate, 0.75 0.75 with the styles ungated, 0.78 0.79 with nudity too (unseen specificity 0.94 0.94): the
# styles' update on every token made nudity's val paraphrases more explicit (0.56 -> 0.69 detected) where the
# gate did not open. Alone, nudity keeps its gate (``rank32``: it won there on val, the ``style`` entry above).
# An object alone goes on every token (``gate_min_concepts`` 2; the gate stays for two concepts or more, where an
# update on every token costs the unseen concepts, multi10's 0.12 above): the gate is what the attacks get through.
# Val, church, seeds 0-2 (``erasekit tune ace --scenario object --settings object --grid seed=0,1,2 --grid
# gated=false``): H_o 0.97 0.96 0.94 against 0.93 0.93 0.93 gated; the seed-0 edits re-attacked on the val prompts
# (``python bench/ace_stability.py --reattack EDIT --concept church --split val --n 8 --attack-seeds 2``): P4D 0.31
# against 0.88, UnlearnDiff 0.25 against 0.88, soft_prompt 0.12 against 0.67 (3 seeds), Ring-A-Bell 0.12.
# Where the ``object`` settings gate several concepts, their gate's subspace is 64 a concept (``gate_rank``), wider than
# the update's 32 (stop 43 lifted the cap at the update's rank): on multi10's six gated concepts 384, the whole width,
# against 192. Chosen on val, seeds 0-4 (``erasekit tune ace --scenario multi10 --grid gate_rank=64 --grid seed=S``,
# 16 prompts a group): H_o 0.741 0.767 0.769 0.771 0.766 against 0.736 0.757 0.750 0.745 0.771, garbage truck's
# efficacy 0.19-0.25 against 0.50-0.88, unseen specificity 0.94 on every seed. The gate (``bench/ace_gate.py --split
# val --scenario multi10 --settings kind --set seed=S [gate_rank=32]``: 108 prompts of the unseen concepts, 48
# paraphrases a concept) opened on 0.0 2.8 7.4 0.9 11.1% of the neutral prompts against 8.3 11.1 23.1 33.3 5.6%, and
# found more of church's, parachute's and garbage truck's paraphrases (means 87 78 73% against 76 69 52%), as many of
# red's and blue's, and fewer of tench's (35% against 39%). The update's rank does not do it: at 64 with the gate at
# 32, H_o 0.726 0.757 0.762 0.727 0.764 (stop 42, bench/ACE_MEASUREMENTS.md).
# The ``object`` settings also keep a mined word the original draws as the concept by r ≥ 0.8 however its K/V reads
# (``mine_render_alone``, :mod:`.mining`): "trash", "landfill" and "waste" for garbage truck. Chosen on multi10's val
# prompts: H_o 0.768 0.802 0.768 0.784 0.783 against 0.741 0.767 0.769 0.771 0.766. Not the defaults': rendering every
# candidate, not only the read ones, and the words it adds cost time (stop 44, ``bench/ace_speed.py``: van gogh, the
# bench's row, mined "vincent" and took 5.3 s against 3.0 without it; red 5.4 s against 5.1, the same words), and no
# other kind was measured with it.
# ``unsafe``: the whole-prompt gate (``gate_whole_prompt``: a token opens at most as far as its prompt's last position,
# :mod:`erasekit.gate`), τ calibrated under it at ``gate_margin`` 0.6 (0.9 until stop 41, below), fitted at rank 32
# (``gate_rank``) beside an update of rank 128; chosen for nudity on val. Under ``rank32`` the gate opened on 45% of the
# val prompts of the other kinds (``bench/ace_gate.py --split val --n 40 --concepts nudity --settings rank32``; neutral
# tokens / prompts / paraphrases found: 2.9% / 45% / 95%), on word pieces of real names ("re ##mb ##rand ##t", "war
# ##hol") wherever they stood. With the whole-prompt gate at margin 0.25 / 0.5 / 0.75: 5.4% / 10% / 100%, 3.5% / 7.5% /
# 100%, 2.2% / 7.5% / 97.5% (the same kind's other prompts 20%, 10%, 5%); at 44 prompts a group (``--n 44 --settings
# unsafe --set gate_margin=M``) 0.75 / 0.9: 2.8% / 9.1% / 95.5% and 1.9% / 4.5% / 95.5%. H_o, seeds 0-4 (``erasekit tune
# ace --scenario unsafe --settings rank32 --n-prompts 44 --grid gate_whole_prompt=true --grid gate_margin=0.75,0.9
# --grid seed=0,1,2,3,4``): 0.84 0.81 0.85 0.78 0.79 at 0.75, 0.83 0.81 0.85 0.78 0.78 at 0.9, against rank32's 0.86
# 0.79 0.83 0.82 0.80: means 0.81 and 0.82, within the seeds' spread. Then the update's rank (``--settings unsafe --grid
# rank=64,128 [--grid gate_rank=32]``): 0.85 0.87 0.90 0.77 0.79 at 64 (its gate at 64 opens on 6.8% of the val prompts;
# at 128 on 13.6%, over the goal), 0.85 0.89 0.86 0.82 0.86 at 128 with the gate at 32 (mean 0.86, higher than rank 32's
# on every seed; efficacy 0.18 0.20 0.14 0.27 0.23 against 0.20 0.23 0.18 0.32 0.25, paraphrases 0.23 0.09 0.23 0.20
# 0.14 against 0.25 0.27 0.23 0.25 0.32). Not for the other kinds: at the defaults (margin 0.1) the whole-prompt gate
# opened van gogh's gate on more val prompts (5% -> 17.5%) and found fewer paraphrases of picasso (92.5% -> 82.5%),
# church (100% -> 92.5%) and parachute (100% -> 87.5%). Two cures tried on the way and dropped (val, 40 prompts, the
# per-token gate): nudity's captions without the name slots, with a made-up name after it, and made-up names in those
# slots among the negatives: 37.5% of the neutral prompts; names glued from pieces of vocabulary words in those slots:
# 27.5%. The gate these settings fit is selective on training seed 0 alone (stop 39): over seeds 0-4
# (``bench/ace_gate.py --split val --n 44 --concepts nudity --settings unsafe --set seed=S``, 180 neutral prompts) it
# opens on 2.8% 18.9% 22.8% 21.1% 12.8% of the neutral prompts, on artists' names at a prompt's end.
# ``gate_names_after`` (a made-up artist after the concept in every caption of it, "a dog by nudity by kelly brastin")
# brings that to 3.3% 4.4% 7.8% 5.0% 6.1%, every gate goal on every seed, and is off here: it shuts the gate on some of
# nudity's own prompts ("a topless man in the style of pablo picasso"; targets found 91-95% against 98-100%), and H_o
# fell on val (``erasekit tune ace --scenario unsafe --settings unsafe --n-prompts 44 --grid gate_names_after=true
# --grid seed=0,1,2,3,4``: 0.85 0.87 0.86 0.71 0.83 against 0.85 0.89 0.86 0.82 0.86) and on test (0.80 ± 0.07 against
# 0.89 ± 0.03, efficacy sd 0.11, over point 6's 0.1; README). Stop 41 found what drove it: the gate's fit held out every
# fourth caption, and every fourth names the concept behind a first name ("art by edward nudity"), in three of the
# twelve forms, so τ's ceiling stood on those alone and the fit never saw them (:meth:`.gatefit.Tokens.held_out`). Held
# out at random, the same settings' gate opened on 0.6% 5.6% 1.7% 3.9% 1.7% of the val neutral prompts and found 81.8%
# 79.5% 79.5% 79.5% 63.6% of the paraphrases. The margin was then chosen again on val, seeds 0-4 (``bench/ace_gate.py
# --split val --n 44 --concepts nudity --settings kind --set seed=S gate_margin=M``: neutral prompts / paraphrases
# found; ``erasekit tune ace --scenario unsafe --settings unsafe --n-prompts 44 --grid gate_margin=0.4,0.5,0.6,0.7,0.9
# --grid seed=0,1,2,3,4``: H_o): 0.4 H_o 0.86 0.86 0.87 0.85 0.87; 0.5 3.3 13.3 5.6 10.6 2.2% / 95.5 93.2 90.9 93.2
# 84.1%, H_o 0.85 0.86 0.86 0.85 0.86; 0.6 1.7 10.6 4.4 7.8 1.7% / 93.2 93.2 90.9 88.6 81.8%, H_o 0.86 0.85 0.86 0.84
# 0.85; 0.7 1.1 7.8 3.3 6.7 1.7% / 93.2 90.9 84.1 86.4 75.0%, H_o mean 0.84; 0.9 H_o mean 0.82; before the fix 0.85 0.89
# 0.86 0.82 0.86. H_o ties from 0.4 to 0.6 (means 0.86, 0.86, 0.85) and 0.6 is where the gate meets point 1's goals on
# four seeds of five (0.5: three), so 0.6 it is. On test it loses what val does not show: H_o 0.79 ± 0.05 over seeds 0-4
# against 0.89 ± 0.03 before, the 8 paraphrase prompts of compare's quick tier detected 0.44 ± 0.06 against 0.21 ± 0.07
# (README).
# Nudity's rounds (stop 47): its held-out criterion is highest after the first round, dips over the next two or
# three and climbs again to a peak near round 7-8; at patience 3 the rule stopped in the dip on three training seeds
# of five (stop 46's edits: 5, 4 and 4 rounds) and erased less. Chosen on val (``erasekit tune ace --scenario unsafe
# --n-prompts 44 --grid seed=0,1,2,3,4``, H_o): patience 8 at twice the outer lr, capped at 12 rounds (a round of the
# rank-256 update costs ~0.16 s), 0.85 0.86 0.92 0.91 0.92 (mean 0.89) against 0.86 0.87 0.84 0.80 0.90 (0.85) at
# patience 3 (patience 8 at lr 2e-2 and 30 rounds 0.90, 6.5 s against 3.3 s for seed 0, ``bench/ace_speed.py
# --settings kind --each nudity``); seed 0 still kept its first round there. Then the first 3 rounds neither kept nor
# counted (``warmup_rounds``, :mod:`.stopping`): seed 0 0.85 -> 0.90, the others the same to the digit, at patience 3,
# 4 or 8 alike (mean 0.90), so patience stays 3 (bench/ACE_MEASUREMENTS.md, stop 47). After the warm-up the rounds keep
# the gate shut on `derived`'s embeddings (``inverse_weight`` 0.2, stop 49; part 4 above); the held-out criterion then
# climbs to the cap, and nudity takes 4.6 s at 12 rounds against 4.2 s at 10 (``bench/ace_speed.py --settings kind
# --each nudity``, seed 0); with the bounded term too (stop 50) 4.7 s against 4.5 s in the same session.
UNSAFE_ROUNDS = {"warmup_rounds": 3, "lr": 0.04, "epochs": 12, "inverse_weight": 0.2, "inverse_bounded_weight": 0.02}
PINNED_GATE = {"gate_margin": 0.25, "gate_fit_preserve": False}  # the gate these settings were chosen and measured with
SETTINGS = {
    "rank32": {"rank": 32, **PINNED_GATE},
    "unsafe": {
        "rank": 128,
        "gate_rank": 32,
        "gate_margin": 0.6,
        "gate_fit_preserve": False,
        "gate_whole_prompt": True,
        **UNSAFE_ROUNDS,
    },
    "object": {
        "rank": 32,
        "gate_rank": 64,
        **PINNED_GATE,
        "gate_preserve_rate": 0.02,
        "gate_concept_rate": 0.8,
        "mine_render_alone": 0.8,
        "ungated_kinds": ("style", "unsafe"),
        "gate_min_concepts": 2,
        "ungated_ensemble": 2,
        "ungated_fragment_render": 0.5,
    },
    "style": {**STYLE, "ensemble": 2},  # two trainings averaged since stop 53, chosen on val (ensemble.py)
}
# A colour alone runs under the ``object`` settings since stop 46 (on every token, as an object alone): chosen on val
# (``erasekit tune ace --scenario red --settings S --grid seed=0,1,2,3,4``, 16 prompts per group, H_o defaults ->
# object) 0.76 0.71 0.76 0.71 0.76 -> 0.81 0.76 0.95 0.84 0.76 (means 0.74, 0.82), unseen specificity 0.98 -> 0.95-0.98;
# red's gate at the defaults had found 52-75% of its test paraphrases (README, point 1).
BY_KIND = {"object": "object", "unsafe": "unsafe", "style": "style", "color": "object"}


@register("ace", ACEConfig, variants=VARIANTS, settings=SETTINGS, settings_by_kind=BY_KIND)
def ace(request: EraseRequest, cfg: ACEConfig) -> Edit:
    """ACE: concept-subspace closed form, token-gated low-rank K/V update, adversarial noise-prediction rounds.

    Concepts of an ungated kind (styles, when the caller gives kinds) go on every token, in one edit (:mod:`.kinds`)."""
    request = training_encoder(request, cfg)  # the concept's prompts in bf16 where the hardware has it
    if len(request.concepts) < cfg.gate_min_concepts:  # one object alone: on every token (SETTINGS["object"])
        cfg = dataclasses.replace(cfg, gated=False)
    ungated = ungated_concepts(request, cfg)
    if not ungated:
        return averaged(request, cfg)
    if not (through := tuple(c for c in request.concepts if c not in ungated or ungated[c])):  # kinds.py: Fragments
        return averaged(request, ungated_config(cfg))
    gated = part(request, through)
    check_request(gated, cfg)  # bad input refused before the mining renders
    # the gated part's words and siblings are what the original reads and draws as its concepts (kinds.py)
    mined = mine_words(gated, cfg, kv_metric(gated.targets, cfg.edit_keys))
    everywhere = averaged(part(request, tuple(ungated)), ungated_config(cfg, mixed=True))
    with applied(everywhere, gated) as on_top:  # the gated part learns on what the other leaves
        through_gate = train_ace(on_top, cfg, mined=mined)
    return noted(joined(request, cfg, everywhere, through_gate), ungated)
