"""The slow end-to-end check every trained method shares: erase a concept on the embedded world and read
its target prompts, its held-out paraphrases and unrelated object prompts before and after."""

from __future__ import annotations

import time

import torch

import erasekit
from erasekit.worlds import embedded
from tests.test_end_to_end import N, embedded_pipeline, unrelated_prompts


def embedded_rates(pipe, judge, concept: str) -> dict[str, float]:
    """Detection of ``concept`` on its target prompts and held-out paraphrases (the suite's generality
    prompts), and how often unrelated object prompts ("a red cup") keep their object and their colour;
    16 prompts each."""
    suite = embedded.prompt_suite(concept, n=N)

    def detected(prompts, seed):
        images = pipe(prompts, generator=torch.Generator().manual_seed(seed)).images
        return sum(judge.detects(images, concept)) / len(prompts)

    unrelated = unrelated_prompts(concept)
    images = pipe([p for p, _, _ in unrelated], generator=torch.Generator().manual_seed(1)).images
    predicted = judge.predict(images)
    return {
        "target": detected(suite["target"], 0),
        "generality": detected(suite["generality"], 2),
        "unrelated": sum(p["object"] == o for p, (_, o, _) in zip(predicted, unrelated)) / len(unrelated),
        "colour": sum(p["color"] == c for p, (_, _, c) in zip(predicted, unrelated)) / len(unrelated),
    }


def erase_on_embedded(method: str, concept: str, *, preserve: bool = True, **overrides) -> tuple[dict, dict, float]:
    """(rates before, rates after, CPU seconds to erase) with the method's ``embedded`` settings (and
    ``overrides``), the world's other objects as the preserve set (``preserve``). CPU seconds of this
    process, one thread: the wall time depends on what else shares the machine."""
    pipe, judge = embedded_pipeline(), embedded.load_judge()
    before = embedded_rates(pipe, judge, concept)
    others = [c for c in embedded.concepts()["object"] if c != concept] if preserve else []
    start, wall = time.process_time(), time.perf_counter()
    edit = erasekit.erase(pipe, [concept], method, settings="embedded", preserve=others, **overrides)
    took = time.process_time() - start
    print(
        f"{method}: erased in {took:.0f} CPU s ({time.perf_counter() - wall:.0f} s wall, "
        f"{torch.get_num_threads()} thread)"
    )
    edit.apply(pipe)
    try:
        after = embedded_rates(pipe, judge, concept)
    finally:
        edit.remove(pipe)
    return before, after, took
