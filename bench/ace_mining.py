"""What ACE's mining adds to each concept, and whether the original model renders those words as the concept.

For every concept: the vocabulary neighbours the K/V cosine alone would mine (``mine_render=-1``, the
closest ``--words`` first), those the render check keeps (ACE's defaults) and those it keeps when a word
drawn as the concept needs no reading (``mine_render_alone``, the ``object`` settings' 0.8), each with its render
agreement ``r`` (``methods/ace/mining.py``) and the judge's share of the original's images of the word (``--images``
prompts "a photo of {word}", ...) that show the concept: the ground truth the check stands in for, which
the method itself never sees. The summary gives, per rule, the share of mined words the judge sees as the
concept (its precision) with a 95% Wilson interval over words; a word counts as rendered when at least half
its images show the concept. ``--preserve compare`` gives each concept its ``erasekit compare`` preserve
set; ``none`` is the multi-concept scenario's (no preserve set: only the K/V bar 0.5 stands).

    python bench/ace_mining.py --threads 1 --preserve none
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from bench._timing import pin_threads, print_table

import erasekit
from erasekit import methods
from erasekit.evaluate import compare
from erasekit.methods.ace import ACEConfig
from erasekit.methods.ace.mining import mine_words, render_agreement
from erasekit.methods.ace.train import kv_metric
from erasekit.metrics.intervals import wilson
from erasekit.targets import find_targets
from erasekit.text import TextEncoder
from erasekit.worlds import embedded

TEMPLATES = ("a photo of {}", "{}", "a picture of {}", "an image of {}", "a painting of {}", "art of {}")
DEFAULT = ["church", "parachute", "garbage truck", "nudity", "van gogh", "picasso", "red"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--concepts", nargs="+", default=DEFAULT)
    parser.add_argument("--preserve", choices=["compare", "none"], default="none")
    parser.add_argument("--words", type=int, default=ACEConfig.mine_words, help="words mined per concept")
    parser.add_argument("--images", type=int, default=6, help="judged images of each word")
    args = parser.parse_args()
    pin_threads(args.threads)
    pipe = erasekit.load_pipeline("embedded")
    judge = embedded.load_judge()
    encoder, targets = TextEncoder(pipe), find_targets(pipe.unet)
    S = kv_metric(targets)
    cfg = dataclasses.replace(ACEConfig(), mine_words=args.words)
    alone = methods.get("ace").settings["object"]["mine_render_alone"]
    rows, tally = [], {"K/V only": [], "K/V + render": [], "or render alone": []}
    for concept in args.concepts:
        preserve = compare.preserve_set(compare.scenario(concept)) if args.preserve == "compare" else ()
        request = methods.EraseRequest(targets=targets, encoder=encoder, concepts=(concept,), pipe=pipe,
                                       preserve=tuple(preserve), base_fingerprint="")  # fmt: skip
        by_rule = {
            "K/V only": mine_words(request, dataclasses.replace(cfg, mine_render=-1), S).words,
            "K/V + render": mine_words(request, cfg, S).words,
            "or render alone": mine_words(request, dataclasses.replace(cfg, mine_render_alone=alone), S).words,
        }
        words = list(dict.fromkeys(w for mined in by_rule.values() for w in mined))
        if not words:
            rows.append({"concept": concept, "word": "(none)", "r": "", "judged": "", **{rule: "" for rule in by_rule}})
            continue
        r = render_agreement(request, concept, cfg.guide, words, cfg)
        for word, agreement in zip(words, r.tolist()):
            prompts = [TEMPLATES[i % len(TEMPLATES)].format(word) for i in range(args.images)]
            images = pipe(prompts, generator=torch.Generator().manual_seed(0)).images
            shown = sum(judge.detects(images, concept)) / len(images)
            for rule, mined in by_rule.items():
                if word in mined:
                    tally[rule].append(shown >= 0.5)
            rows.append({"concept": concept, "word": word, "r": f"{agreement:+.2f}", "judged": f"{shown:.2f}",
                         **{rule: "x" if word in mined else "" for rule, mined in by_rule.items()}})  # fmt: skip
    print_table(rows)
    print()
    summary = []
    for rule, hits in tally.items():
        lo, hi = wilson(sum(hits), len(hits)) if hits else (0.0, 1.0)
        share = sum(hits) / len(hits) if hits else float("nan")
        summary.append({"rule": rule, "words": len(hits), "judged the concept": f"{share:.2f} [{lo:.2f}, {hi:.2f}]"})
    print_table(summary)


if __name__ == "__main__":
    main()
