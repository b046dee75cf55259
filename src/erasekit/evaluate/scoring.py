"""Scores a finished run: each metric of the protocol over the stored images of its prompt set.

Images are read back from the run's folder, so scoring needs no model and can be re-run alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from erasekit.errors import ConfigError
from erasekit.metrics import GROUPS, Metric, MetricContext, build_metric, lpips_d, mace_h_o

from .prompt_sets import PromptRow
from .protocols import DerivedSpec, EvalProtocol
from .store import ImageStore
from .work import Variant, WorkItem

logger = logging.getLogger(__name__)

Scores = dict[str, dict[str, float]]
"""group -> metric key -> value, the ``metrics`` object of metrics.json."""

DERIVED: dict[str, Callable[..., float]] = {"mace_h_o": mace_h_o, "lpips_d": lpips_d}


def empty_scores() -> Scores:
    """Returns the five groups, empty."""
    return {group: {} for group in GROUPS}


def score(
    protocol: EvalProtocol,
    rows: Mapping[str, Sequence[PromptRow]],
    store: ImageStore,
    ctx: MetricContext,
    *,
    baseline: bool = False,
    references: Variant = "original",
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Scores, Scores | None]:
    """Returns the edited model's scores and, when ``baseline``, the original model's.

    Args:
        protocol: the protocol (metrics, their prompt sets and groups, derived scores).
        rows: prompt rows by set name, as generated.
        store: the run's images.
        ctx: what metric builders need (concept, judge, weights paths).
        baseline: also score the original images (metrics that compare with the original are skipped there).
        references: the variant reference-based metrics compare with ("edited" when there is no edit).
        batch_size: images per ``update``.
        progress: called with (images scored, images to score) after each batch.

    Raises:
        ConfigError: a derived score's input is missing.
        MissingWeightsError: a judge has no local weights.
    """
    edited, original = empty_scores(), empty_scores() if baseline else None
    specs = [spec for spec in protocol.metrics if rows.get(spec.prompt_set)]
    skipped = [f"{s.name}{s.suffix}" for s in protocol.metrics if not rows.get(s.prompt_set)]
    if skipped:
        logger.info("metrics on prompt sets without prompts are skipped: %s", skipped)
    counter = _Counter(progress, sum(len(r.seeds) for s in specs for r in rows[s.prompt_set]) * (2 if baseline else 1))
    for spec in specs:
        metric = build_metric(spec.name, spec.params, ctx)
        items = [WorkItem("edited", row, seed) for row in rows[spec.prompt_set] for seed in row.seeds]
        _feed(metric, items, store, references, batch_size, counter)
        edited[spec.group].update({k + spec.suffix: v for k, v in metric.compute().items()})
        if original is not None and not metric.needs_reference:
            metric.reset()
            originals = [replace(item, variant="original") for item in items]
            _feed(metric, originals, store, references, batch_size, counter)
            original[spec.group].update({k + spec.suffix: v for k, v in metric.compute().items()})
    for spec in protocol.derived:
        _derive(spec, edited, missing_ok=bool(skipped))
        if original is not None:
            _derive(spec, original, missing_ok=True)
    return edited, original


class _Counter:
    """Reports images scored so far to an optional ``progress(done, total)`` callback."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int) -> None:
        self.progress, self.total, self.done = progress, total, 0

    def add(self, n: int) -> None:
        self.done += n
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)


def _feed(
    metric: Metric, items: list[WorkItem], store: ImageStore, references: Variant, batch_size: int, counter: _Counter
) -> None:
    for i in range(0, len(items), batch_size):
        batch = items[i : i + batch_size]
        refs = [store.load(replace(item, variant=references)) for item in batch] if metric.needs_reference else None
        metric.update(
            [store.load(item) for item in batch],
            [item.row.prompt for item in batch],
            labels=[item.row.label for item in batch],
            references=refs,
        )
        counter.add(len(batch))


def _derive(spec: DerivedSpec, scores: Scores, *, missing_ok: bool = False) -> None:
    values = []
    for ref in spec.inputs:
        group, _, key = ref.partition(".")
        if key not in scores.get(group, {}):
            if missing_ok:
                return
            raise ConfigError(f"derived score {spec.name!r} needs {ref!r}, which no metric of the protocol produced.")
        values.append(scores[group][key])
    scores[spec.group][spec.name] = DERIVED[spec.fn](*values)
