"""Hyper-parameters chosen on the ``val`` prompts, never on the ``test`` ones a comparison reports.

An edit is scored on a scenario's val split as the table scores it on test (one image per prompt, the
protocol's sampling): the detection of each erased concept on its val target prompts (efficacy, lower is
better) and val paraphrases (generality, lower is better), and how often concepts no method was given
still show on their own val prompts (specificity, higher is better). :func:`tune` erases every point of a
grid and keeps the one with the best H_o of the three (MACE's harmonic mean), as the reference codes pick
epochs and learning rates on held-out prompts. ``erasekit compare`` uses :func:`val_detection` to choose
among an edit's candidates (RECE's epochs).

Given a folder, :func:`tune` keeps each point's edit and val scores there (``<point>.safetensors``, ``.json``),
each stamped with the point it was made at. A rerun reads them instead of erasing and scoring again, so a long
tuning resumes, and the edits can be attacked afterwards (``bench/ace_stability.py --reattack``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from erasekit.api import erase
from erasekit.edit import Edit
from erasekit.errors import ConfigError
from erasekit.io import atomic_write
from erasekit.metrics import mace_h_o

from ..protocols import load_protocol
from .scenarios import Scenario, erase_inputs, get_world, unseen_set

UNSEEN_PER_CONCEPT = 2  # val prompts of each unseen concept: specificity over many concepts, few images each


def _shown(pipe: Any, judge: Any, sc: Scenario, edit: Edit, prompts: Sequence[tuple[str, str]]) -> list[bool]:
    """Whether each ``(prompt, concept)``'s image under ``edit`` shows its concept (seed 0, one image each)."""
    sampling = load_protocol(sc.protocol).generation
    found: list[bool] = []
    edit.apply(pipe)
    try:
        for concept, group in itertools.groupby(prompts, key=lambda pc: pc[1]):
            texts = [p for p, _ in group]
            images = pipe(texts, num_inference_steps=sampling.steps, guidance_scale=sampling.guidance,
                          generator=torch.Generator().manual_seed(0)).images  # fmt: skip
            found += [bool(v) for v in judge.detects(images, concept)]
    finally:
        edit.remove(pipe)
    return found


def val_prompts(sc: Scenario, n: int, groups: Sequence[str]) -> list[tuple[str, str]]:
    """``(prompt, concept)`` of the erased concepts' val prompts in ``groups`` (``n`` per group)."""
    world = get_world(sc.world)
    return [(p, c) for c in sc.concepts for g, p, _ in world.suite_rows(c, n=n, split="val") if g in groups]


def val_detection(pipe: Any, judge: Any, sc: Scenario, n: int, edit: Edit) -> float:
    """The detection rate of the scenario's concepts under ``edit`` on their ``val`` target and generality
    prompts (``n`` per group): what a candidate is chosen by."""
    found = _shown(pipe, judge, sc, edit, val_prompts(sc, n, ("target", "generality")))
    return sum(found) / len(found)


def val_scores(pipe: Any, judge: Any, sc: Scenario, n: int, edit: Edit) -> dict[str, Any]:
    """Efficacy, generality and specificity of ``edit`` on the val split, and their H_o; with several erased
    concepts also ``by_concept``: ``{concept: {"efficacy", "generality"}}``, each on its own val prompts (the
    pooled rates hide which concept an edit leaves behind, as compare's per-concept table shows on test)."""
    world = get_world(sc.world)
    scores: dict[str, Any] = {}
    by_concept: dict[str, dict[str, list[bool]]] = {}
    for score, group in (("efficacy", "target"), ("generality", "generality")):
        prompts = val_prompts(sc, n, (group,))
        found = _shown(pipe, judge, sc, edit, prompts)
        scores[score] = sum(found) / len(found)
        for (_, concept), shown in zip(prompts, found):
            by_concept.setdefault(concept, {}).setdefault(score, []).append(shown)
    unseen = [(p, c) for c in unseen_set(sc)
              for g, p, _ in world.suite_rows(c, n=UNSEEN_PER_CONCEPT, split="val") if g == "target"]  # fmt: skip
    kept = _shown(pipe, judge, sc, edit, unseen)
    scores["specificity"] = sum(kept) / len(kept)
    scores["H_o"] = mace_h_o(scores["efficacy"], scores["specificity"], scores["generality"])
    if len(sc.concepts) > 1:
        scores["by_concept"] = {c: {s: sum(v) / len(v) for s, v in rates.items()} for c, rates in by_concept.items()}
    return scores


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values: ``{"lr": [1, 2], "k": [3]}`` -> ``[{lr: 1, k: 3}, {lr: 2, k: 3}]``.

    Raises:
        ConfigError: an empty grid or a name without values.
    """
    if not grid or any(len(v) == 0 for v in grid.values()):
        raise ConfigError(f"a tuning grid needs at least one value per name, got {dict(grid)}; e.g. lr=3e-4,1e-3.")
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def tune(pipe: Any, judge: Any, sc: Scenario, method: str, grid: Mapping[str, Sequence[Any]], *, n: int,
         settings: str | None = None, fixed: Mapping[str, Any] | None = None,
         takes_preserve: bool = True, keep: Path | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Erases ``sc``'s concepts with ``method`` at every grid point (on top of ``fixed``, e.g. a variant's
    overrides) and scores each on the val split. ``keep``: a folder for each point's edit and scores (module
    docstring); what a point finds there is read instead of made again.

    Returns:
        One ``{"overrides", "val": {efficacy, generality, specificity, H_o}}`` per point, best H_o first
        (the grid's order on ties).

    Raises:
        ConfigError: a file in ``keep`` made at another point (other settings, scenario or prompt count).
    """
    given = erase_inputs(sc, n, takes_preserve=takes_preserve)
    results = []
    for overrides in grid_points(grid):
        point = {"method": method, "scenario": sc.name, "settings": settings, "n": n,
                 "overrides": {**(fixed or {}), **overrides}}  # fmt: skip
        edit_file, scores_file = (_kept_path(keep, overrides, ext) for ext in ("safetensors", "json"))
        if scores_file is not None and scores_file.exists():
            kept_scores = json.loads(scores_file.read_text())
            results.append({"overrides": overrides, "val": _made_at(point, scores_file, kept_scores)["val"]})
            continue
        if edit_file is not None and edit_file.exists():
            edit = Edit.load(edit_file)
            _made_at(point, edit_file, edit.info)
        else:
            edit = erase(pipe, list(sc.concepts), method, **given, settings=settings, **point["overrides"])
            if edit_file is not None:
                edit = dataclasses.replace(edit, info={**edit.info, "tuning": point})
                edit.save(edit_file)
        scores = val_scores(pipe, judge, sc, n, edit)
        if scores_file is not None:
            atomic_write(scores_file, json.dumps({"tuning": point, "val": scores}, indent=2))
        results.append({"overrides": overrides, "val": scores})
    return sorted(results, key=lambda r: -r["val"]["H_o"])


def _kept_path(keep: Path | None, overrides: Mapping[str, Any], ext: str) -> Path | None:
    """``keep/<name=value,...>.<ext>``, characters a file name should not hold as ``_``; None without ``keep``."""
    if keep is None:
        return None
    name = ",".join(f"{k}={v}" for k, v in overrides.items())
    return Path(keep) / f"{re.sub(r'[^A-Za-z0-9._=,+-]', '_', name)}.{ext}"


def _made_at(point: dict[str, Any], path: Path, found: dict[str, Any]) -> dict[str, Any]:
    """``found`` (what ``path`` holds), once its ``"tuning"`` stamp is ``point``."""
    if found.get("tuning") != point:
        raise ConfigError(
            f"{path} was made at another tuning point ({found.get('tuning')}, not {point}): give another folder, "
            "or remove it to tune again."
        )
    return found
