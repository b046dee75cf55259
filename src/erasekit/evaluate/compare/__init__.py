"""Every method × every kind of concept of a world, under every attack: one table.

``erasekit compare`` (or :func:`run`) erases each scenario's concepts with each method, scores the
edit on the world's prompt suites, attacks it, and writes ``compare.md``, ``compare.json`` and
``report.html``. A row holds:

- efficacy: the judge's detection rate on the target prompts, generality: on held-out paraphrases
  (both lower is better; the mean over the scenario's concepts), specificity: the judge's accuracy on
  prompts about the concepts of the same kinds that were left out (higher is better), MACE's H_o,
  and the original model's values of all four;
- ``asr_<attack>``: UnlearnDiff's attack success rate (``attacks.attack(...).asr``) on the target
  prompts of the scenario's ``attacked`` concepts;
- the settings the method ran with, the edit's wall time and the bytes of its safetensors file.

Scenarios are the world's (:meth:`erasekit.worlds.World.scenarios`; the embedded world's are
``style``, ``object``, ``unsafe`` and ``multi10``) or any one concept of the world by name. Methods are
registry names with options (:func:`parse_method`); compare knows none by name: a method's variants,
preserve term, default settings and settings per kind of concept are what it registered
(:class:`erasekit.methods.Method`).

    erasekit compare --n-prompts 8 --budget 60 -o out/compare     # every method × the world's scenarios
    erasekit compare --methods uce,rece:epochs=5 --scenarios "van gogh,car" --only 'rece*/*' -o out/c

Everything is resumable: a finished row is ``rows/<scenario>/<method>.json``; inside a row, the edit
file, the evaluation's images and every attack's outcome are kept as they finish, so a killed run
(an ESD row trains for minutes) goes on where it stopped.

Modules: :mod:`.scenarios` (what is erased and scored), :mod:`.rows` (one row), :mod:`.run` (the
grid), :mod:`.report` (the table).
"""

from __future__ import annotations

from .report import Goal, markdown, report_html, summary_line, verdicts, write_outputs
from .rows import ATTACKS, MethodSpec, Settings, compute_row, parse_method, settings_for, split_specs, variants
from .run import Progress, default_methods, default_scenarios, load, run
from .scenarios import Scenario, named_scenarios, preserve_set, prompt_rows, scenario, scenario_protocol

__all__ = [
    "ATTACKS",
    "Goal",
    "MethodSpec",
    "Progress",
    "Scenario",
    "Settings",
    "compute_row",
    "default_methods",
    "default_scenarios",
    "load",
    "markdown",
    "named_scenarios",
    "parse_method",
    "preserve_set",
    "prompt_rows",
    "report_html",
    "run",
    "scenario",
    "scenario_protocol",
    "settings_for",
    "split_specs",
    "summary_line",
    "variants",
    "verdicts",
    "write_outputs",
]
