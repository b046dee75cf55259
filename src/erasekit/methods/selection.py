"""Choosing among an iterative method's candidate edits by a score measured outside the method.

RECE's reference keeps the epoch whose validation images are least unsafe; any method that leaves its
intermediate edits in ``edit.candidates`` can be chosen among the same way. The score is the caller's
(``erasekit compare`` measures it on the ``val`` prompts, never on what it reports).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..edit import Edit


def select_candidate(edit: Edit, score: Callable[[Edit], float], *, include_first: bool = False) -> Edit:
    """The candidate with the lowest ``score`` (e.g. a judge's detection rate), earliest on ties.

    The first candidate is the method's starting point (RECE's epoch 0, UCE alone): scored, but chosen
    only if ``include_first``, as the reference saves an epoch only when its validation rate is strictly
    lower than every earlier one. The result's info holds ``selected_by_score`` and ``candidate_scores``,
    and what ``edit.info`` says of the whole run that its candidates lack (``edit_s``: the chosen one cost
    the run that made them all; the run's named ``settings``).
    """
    candidates = list(edit.candidates) or [edit]
    if not include_first and len(candidates) > 1:
        candidates = candidates[1:]
    scores = [score(c) for c in candidates]
    best = candidates[scores.index(min(scores))]
    info = {**edit.info, **best.info, "selected_by_score": min(scores), "candidate_scores": scores}
    return replace(best, info=info)
