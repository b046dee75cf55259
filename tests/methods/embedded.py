"""The slow end-to-end check every trained method shares: erase a concept on the embedded world and read
its target prompts, its held-out paraphrases and unrelated object prompts before and after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch

import erasekit
from erasekit.worlds import embedded
from tests.test_end_to_end import N, detection_rate, embedded_pipeline, unrelated_rates


def embedded_rates(pipe, judge, concept: str) -> dict[str, float]:
    """Detection of ``concept`` on its target prompts and held-out paraphrases (the suite's generality
    prompts), and :func:`unrelated_rates`; 16 prompts each."""
    suite = embedded.prompt_suite(concept, n=N)
    return {
        "target": detection_rate(pipe, judge, suite["target"], concept, 0),
        "generality": detection_rate(pipe, judge, suite["generality"], concept, 2),
        **unrelated_rates(pipe, judge, concept),
    }


@contextmanager
def num_threads(n: int) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block, then as before."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Erased(NamedTuple):
    """What :func:`erase_on_embedded` measured: the rates before and after, and the CPU seconds the erasure took on
    ``threads`` threads."""

    before: dict[str, float]
    after: dict[str, float]
    cpu_s: float
    threads: int


def erase_on_embedded(
    method: str, concept: str, *, threads: int, settings: str = "embedded", preserve: bool = True, **overrides
) -> Erased:
    """:class:`Erased` of ``method`` erasing ``concept`` under ``settings`` (and ``overrides``), the world's
    other objects as the preserve set (``preserve``), on ``threads`` threads: the thread count changes the
    float reduction order, and a training run that is chaotic in it erases on one count and not on another
    (AdvUnlearn's at lr 3e-3 did), so each trained method's slow test runs on 1 and 2. CPU seconds of this
    process: the wall time depends on what else shares the machine."""
    pipe, judge = embedded_pipeline(), embedded.load_judge()
    before = embedded_rates(pipe, judge, concept)
    others = [c for c in embedded.concepts()["object"] if c != concept] if preserve else []
    start, wall = time.process_time(), time.perf_counter()
    with num_threads(threads):
        edit = erasekit.erase(pipe, [concept], method, settings=settings, preserve=others, **overrides)
    took = time.process_time() - start
    print(
        f"{method}: erased in {took:.0f} CPU s ({time.perf_counter() - wall:.0f} s wall, "
        f"{threads} thread{'s' if threads > 1 else ''})"
    )
    edit.apply(pipe)
    try:
        after = embedded_rates(pipe, judge, concept)
    finally:
        edit.remove(pipe)
    print(f"{method}, {concept}: {before} -> {after}")
    return Erased(before, after, took, threads)


def assert_erased(result: Erased, *, paraphrases: bool = True, kept: str = "unrelated") -> None:
    """The bounds a trained method's slow check holds it to: the original draws the concept on ≥ 80% of its
    target prompts and held-out paraphrases (the positive control); the edit leaves it on ≤ 20% of each (of the
    paraphrases only with ``paraphrases``), ``kept`` (:func:`unrelated_rates`) on ≥ 95% of the unrelated prompts,
    in at most 10 minutes on its threads (600 CPU s a thread: CPU seconds, since the wall time depends on what
    else shares the machine)."""
    before, after = result.before, result.after
    assert before["target"] >= 0.8 and before["generality"] >= 0.8, before
    assert after["target"] <= 0.2, after
    assert not paraphrases or after["generality"] <= 0.2, after
    assert after[kept] >= 0.95, after
    assert result.cpu_s <= 600 * result.threads, result.cpu_s
