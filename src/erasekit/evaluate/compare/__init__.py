"""Every method × every kind of concept of a world, under every attack: one table.

``erasekit compare`` (or :func:`run`) erases each scenario's concepts with each method, scores the
edit on the world's prompt suites, attacks it, and writes ``compare.md``, ``compare.json`` and
``report.html``. Prompts come in three disjoint splits (:func:`splits`): ``fit`` (all a method may see:
the concepts, the preserve set and fit prompts of the preserved concepts, :func:`preserve_prompts`),
``val`` (tuning) and ``test`` (every number reported). Every rate of a row is ``{"value", "ci", "n"}``,
its 95% Wilson interval and sample size (:class:`erasekit.metrics.intervals.Rate`):

- efficacy: the judge's detection rate on the target prompts, generality: on held-out descriptions
  (both lower is better; all erased concepts together);
- specificity_kept: the judge's accuracy on the concepts the methods were told to preserve (half of
  the other concepts of the erased kinds, :func:`preserve_set`), specificity_unseen: on concepts of
  every kind no method was given (:func:`unseen_set`) (both higher is better); MACE's H_o; the
  original model's values of all of them;
- ``asr.<attack>``: UnlearnDiff's attack success rate (``attacks.attack(...).asr``) on the test target
  prompts of the scenario's ``attacked`` concepts, over every attack seed;
- the settings the method ran with, the edit's wall time and the bytes of its safetensors file.

Full strength by default (32 test prompts per set, every attack at its paper's budget with 3 seeds);
``Settings.tier(quick=True)`` (``--quick``) is 8 prompts, 1 seed and each attack's quick tier, and
every output says so.

Scenarios are the world's (:meth:`erasekit.worlds.World.scenarios`; the embedded world's are
``style``, ``object``, ``unsafe`` and ``multi10``) or any one concept of the world by name. Methods are
registry names with options (:func:`parse_method`); compare knows none by name: a method's variants,
preserve term, default settings and settings per kind of concept are what it registered
(:class:`erasekit.methods.Method`).

    erasekit compare -o out/compare                       # every method × the world's scenarios, full strength
    erasekit compare --quick --methods uce --scenarios style -o out/q
    erasekit compare --methods uce,rece:epochs=5 --scenarios "van gogh,car" --only 'rece*/*' -o out/c

Everything is resumable: a finished row is ``rows/<scenario>/<method>.json``; inside a row, the edit
file, the evaluation's images and every attack's outcome are kept as they finish, so a killed run
(an ESD row trains for minutes) goes on where it stopped.

On a real model, ``--protocol rece-paper --model PATH`` runs a paper's tables instead (:mod:`.paper`,
:mod:`.paper_run`): RECE's protocols with NudeNet, LPIPS, CLIP and the classifier, the paper's figures
beside ours.

Modules: :mod:`.scenarios` (what is erased and scored), :mod:`.rows` (one row), :mod:`.run` (the
grid), :mod:`.report` (the table), :mod:`.paper` and :mod:`.paper_run` (a paper protocol).
"""

from __future__ import annotations

from .paper import (
    PaperProtocol,
    PaperSettings,
    PaperTable,
    available_papers,
    check_device,
    check_real_model,
    load_paper,
)
from .paper_run import run_paper
from .report import Goal, markdown, rate_text, report_html, summary_line, verdicts, write_outputs
from .rows import (
    SCORES,
    MethodSpec,
    Settings,
    compute_row,
    default_attacks,
    parse_method,
    settings_for,
    split_specs,
    variants,
)
from .run import Progress, default_methods, default_scenarios, load, run
from .scenarios import (
    Scenario,
    ScoredSet,
    concept_kinds,
    describe,
    erase_inputs,
    named_scenarios,
    preserve_prompts,
    preserve_set,
    prompt_rows,
    scenario,
    scenario_protocol,
    scored_sets,
    splits,
    unseen_set,
)

__all__ = [
    "SCORES",
    "Goal",
    "MethodSpec",
    "PaperProtocol",
    "PaperSettings",
    "PaperTable",
    "Progress",
    "Scenario",
    "ScoredSet",
    "Settings",
    "available_papers",
    "check_device",
    "check_real_model",
    "compute_row",
    "concept_kinds",
    "default_attacks",
    "default_methods",
    "default_scenarios",
    "describe",
    "erase_inputs",
    "load",
    "load_paper",
    "markdown",
    "named_scenarios",
    "parse_method",
    "preserve_prompts",
    "preserve_set",
    "prompt_rows",
    "rate_text",
    "report_html",
    "run",
    "run_paper",
    "scenario",
    "scenario_protocol",
    "scored_sets",
    "settings_for",
    "split_specs",
    "splits",
    "summary_line",
    "unseen_set",
    "variants",
    "verdicts",
    "write_outputs",
]
