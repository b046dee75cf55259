"""ACE across training seeds: mean ± sd of the concept's detection on target prompts and paraphrases.

Issue goal: the standard deviation over five training seeds at most 0.1. Each seed erases the concept with
ACE's defaults (``seed=`` of ACEConfig; ``--settings``: named ones, or ``kind`` for what compare runs for the
concept's kind), the other concepts of its kind taken every second one as the preserve
set (``erasekit compare`` draws a seeded half instead), and the judge reads ``--n`` test-split target prompts
and ``--n`` held-out paraphrases (the suite's generality prompts) drawn with one image seed for all training
seeds, so that only the training seed varies.

With ``--compare`` it instead summarises comparisons that ran ACE under several training seeds, attacks
included: mean ± sd over the rows ``ace`` and ``ace:seed=K`` of each scenario (``--method ace:epochs=60``: the
rows ``ace:epochs=60`` and ``ace:epochs=60,seed=K``), for efficacy, generality, unseen specificity, H_o and
every attack's ASR (quick tier: 8 prompts per ASR, so one prompt is 0.125; and one attack seed, whose own
spread is in the ASRs' sd: ``--reattack`` below takes it out).

    python bench/ace_stability.py --threads 2 --seeds 5 --concepts "van gogh" parachute nudity
    erasekit compare --quick --methods ace,ace:seed=1,ace:seed=2,ace:seed=3,ace:seed=4 \
        --scenarios style,object,unsafe --threads 1 -o out/q-ace-seeds
    python bench/ace_stability.py --compare out/q-ace-seeds

With ``--reattack EDIT...`` it attacks saved edits (compare rows' ``edit.safetensors``, or ``erasekit tune
--edits``' files) under ``--attack-seeds`` attack seeds each: the spread the quick-tier attack brings by itself, and,
given one edit per training seed, the training's spread with the attack's taken out, and with several ``--concept``
their prompts pooled as compare pools multi10's attacks (church, van gogh and nudity; :func:`reattack`).

    python bench/ace_stability.py --reattack out/q32-ace-seeds-object/rows/object/ace*/edit.safetensors \
        --concept church --n 32 --attacks soft_prompt --attack-seeds 8 --threads 1
    erasekit tune ace --scenario unsafe --n-prompts 44 --grid seed=0,1,2,3,4 --edits out/tune-unsafe
    python bench/ace_stability.py --reattack out/tune-unsafe/*.safetensors --concept nudity --split val --n 44 \
        --attacks derived derived_bounded --attack-seeds 1 --control --threads 1
    erasekit compare --quick --methods ace,ace:seed=1,ace:seed=2,ace:seed=3,ace:seed=4 --scenarios multi10 -o out/q-m10
    python bench/ace_stability.py --reattack out/q-m10/rows/multi10/ace*/edit.safetensors \
        --concept church "van gogh" nudity --n 8 --attacks soft_prompt p4d unlearndiff --attack-seeds 6 --threads 2

``--control`` also draws every attacked prompt's adversarial embedding under the original model, the edit removed
(the case's seed, the attack's sampling): whether the embedding carries the concept by itself, whatever the edit does
with it (:func:`original_draws`). For a gated edit it also splits the cases by where the gate stays shut on the
embedding (under 5% of its tokens open, the attack's ``gate_open``): there the edited model is the original, and an
attack that succeeds there found the gate's blind spot, not a weakness of the update.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._timing import ace_settings, pin_threads, print_table

import erasekit
from erasekit import worlds
from erasekit.attacks import attack
from erasekit.attacks.victim import Sampling, Victim
from erasekit.evaluate.compare.rows import attack_cache
from erasekit.metrics.intervals import Rate
from erasekit.worlds import embedded


def detection(pipe, judge, prompts: list[str], concept: str) -> float:
    images = pipe(prompts, generator=torch.Generator().manual_seed(0)).images
    return sum(judge.detects(images, concept)) / len(prompts)


def unseeded(spec: str) -> str:
    """``"ace:epochs=60,seed=3"`` -> ``"ace:epochs=60"``: a compare row's method without its training seed."""
    name, _, rest = spec.partition(":")
    kept = [kv for kv in rest.split(",") if kv and not kv.startswith("seed=")]
    return f"{name}:{','.join(kept)}" if kept else name


def from_compare(folders: list[str], method: str = "ace") -> list[dict]:
    """Mean ± sd over the rows of ``method`` (any training seed) of each scenario in the folders' compare.json."""
    by_scenario: dict[str, list[dict]] = {}
    for folder in folders:
        for row in json.loads((Path(folder) / "compare.json").read_text())["rows"]:
            if unseeded(row["method"]) == method:
                by_scenario.setdefault(row["scenario"], []).append(row)
    out = []
    for scenario, rows in by_scenario.items():
        metrics = {k: [r["metrics"][k] for r in rows] for k in rows[0]["metrics"]}
        metrics["H_o"] = [{"value": r["H_o"], "n": None} for r in rows]
        for name, cells in metrics.items():
            v = [c["value"] for c in cells if c["value"] is not None]  # None: no score (e.g. no prompt to attack)
            if v:
                sd = _sd(v)
                values = " ".join(f"{x:.2f}" for x in v)
                out.append({"scenario": scenario, "metric": name, "seeds": len(v), "n": cells[0]["n"],
                            "mean": statistics.mean(v), "sd": sd, "values": values})  # fmt: skip
    return out


def _pooled(per_concept: list[list[float]]) -> list[float]:
    """``[seeds]`` each attack seed's rate over every concept's prompts (the same ``n`` each), as compare pools them."""
    return [statistics.mean(rates) for rates in zip(*per_concept)]


def _rates_row(attack: str, concept: str, edit: str, per_concept: list[list[float]], n: int) -> dict:
    """One edit's rates under the attack seeds, pooled over ``per_concept`` (``[concepts][seeds]``, ``n`` prompts
    each): their mean, sd and each, and the 95% interval as compare gives an ASR: Wilson's, widened by the spread
    between the attack seeds (:meth:`erasekit.metrics.intervals.Rate.clustered`)."""
    v = _pooled(per_concept)
    lo, hi = Rate.clustered([[Rate.of(x, n) for x in rates] for rates in per_concept]).ci
    return {"attack": attack, "concept": concept, "edit": edit, "attack_seeds": len(v), "n": n * len(per_concept),
            "mean": statistics.mean(v), "ci": f"[{lo:.2f}, {hi:.2f}]", "sd": _sd(v),
            "values": " ".join(f"{x:.2f}" for x in v)}  # fmt: skip


def _sd(values: list[float]) -> float:
    """The sample standard deviation; nan for a single value (one seed tells no spread)."""
    return statistics.stdev(values) if len(values) > 1 else float("nan")


SHUT = 0.05  # a gate open on fewer of an embedding's tokens than this counts as shut on it (--control)


def original_draws(pipe, judge, result) -> list[tuple[bool, bool, bool | None]]:
    """``--control`` (module docstring) for one attack run: per attacked case, whether the edit draws the concept,
    whether the original does from the same embedding (the case's seed, the attack's sampling), and whether the gate
    stays shut on it (None: no gate)."""
    attacked = [c for c in result.cases if c.outcome is not None]
    if not attacked:
        return []
    victim = Victim(pipe, sampling=Sampling(**result.info["sampling"]))
    images = victim.generate(torch.stack([c.outcome.prompt_embeds for c in attacked]), [c.case.seed for c in attacked])
    original = judge.detects(images, result.concept)
    return [(c.outcome.success, bool(o), c.outcome.info["gate_open"] < SHUT if "gate_open" in c.outcome.info else None)
            for c, o in zip(attacked, original)]  # fmt: skip


def _control_row(cases: list[tuple[bool, bool, bool | None]]) -> dict:
    """:func:`original_draws`' cases (over every attack seed) as shares: ``edit`` and ``original`` over the attacked
    cases, and the same over those where the gate stays shut (``shut_n`` of them), for a gated edit."""
    if not cases:
        return {}
    row = {"attacked": len(cases), "edit": statistics.mean(e for e, _, _ in cases),
           "original": statistics.mean(o for _, o, _ in cases)}  # fmt: skip
    if all(shut is not None for _, _, shut in cases):
        shut = [(e, o) for e, o, s in cases if s]
        row["shut_n"] = len(shut)
        if shut:
            row["shut_edit"] = statistics.mean(e for e, _ in shut)
            row["shut_original"] = statistics.mean(o for _, o in shut)
    return row


def reattack(
    edit_paths: list[str],
    concepts: list[str],
    names: list[str],
    seeds: int,
    n: int,
    cache: Path,
    split: str = "test",
    control: bool = False,
) -> list[dict]:
    """Each attack's ASR on saved edits under ``seeds`` attack seeds each (quick tier, as compare's rows).

    One row per attack, edit and concept (mean and sd over the attack seeds: the spread the attack brings by
    itself). With several concepts (one edit erasing them all, as multi10's), a ``pooled`` row per attack and edit:
    each attack seed's rate over all the concepts' prompts, ``n`` each, as compare pools a scenario's attacks. With
    several edits (one per training seed) a row that splits the spread of their (pooled) means: ``sd_between`` of
    the per-edit means holds the training's spread plus ``sd_within² / seeds`` of the attack's, so the training's
    alone is estimated as ``sqrt(max(0, sd_between² − mean(sd_within²) / seeds))``. With several attacks, a
    ``worst`` row per edit: the highest of its attacks' (pooled) means over the attack seeds (compare's worst-case
    ASR takes the highest of one attack seed's rates). Each rate has its 95% interval as compare gives one
    (:func:`_rates_row`). What an attack may share across edits (Ring-A-Bell's searches, which never read the U-Net)
    is kept in ``cache``, as compare keeps it across rows. Each edit's row also gives ``pre``, the share of prompts
    the edit already shows the concept on (counted in the ASR, UnlearnDiff's convention), and for ``derived`` on a
    gated edit ``gate_open``, the share of the attack's embedding's tokens its gate opens on
    (``attacks/derived.py``). ``control``: each edit's row also gives :func:`_control_row`'s shares over the attack
    seeds' cases, ``control_*``.
    """
    pipe = erasekit.load_pipeline("embedded")
    judge = embedded.load_judge()
    kinds = {c: worlds.get("embedded").concept_kind(c) for c in concepts}
    prompts = {c: embedded.prompt_suite(c, n=n, split=split)["target"] for c in concepts}
    out, worst = [], {path: {} for path in edit_paths}
    for name in names:
        per_edit = []
        for path in edit_paths:
            edit = erasekit.Edit.load(path)
            per_concept = []
            for concept in concepts:
                results = [
                    attack(pipe, name, concept, judge=judge, edit=edit, prompts=prompts[concept], quick=True,
                           concept_kind=kinds[concept], seed=seed, **attack_cache(name, cache))
                    for seed in range(seeds)
                ]  # fmt: skip
                per_concept.append([r.asr for r in results])
                checked = _control_row([c for r in results for c in original_draws(pipe, judge, r)]) if control else {}
                # derived on a gated edit: how often the gate opens on its embedding (attacks/derived.py)
                opens = [r.info["gate_open_mean"] for r in results if "gate_open_mean" in r.info]
                out.append({**_rates_row(name, concept, path, per_concept[-1:], n),
                            "pre": statistics.mean(r.pre_asr for r in results),  # shown before any attack
                            **({"gate_open": statistics.mean(opens)} if opens else {}),
                            **{f"control_{k}": x for k, x in checked.items()}})  # fmt: skip
                print(out[-1], flush=True)
            pooled = _rates_row(name, "pooled", path, per_concept, n)
            if len(concepts) > 1:
                out.append(pooled)
            per_edit.append(_pooled(per_concept))
            worst[path][name] = pooled
        if len(per_edit) > 1:
            means = [statistics.mean(v) for v in per_edit]
            # one attack seed: no within-edit spread to tell apart (nan), the between-edit sd is all there is
            within = statistics.mean(_sd(v) ** 2 for v in per_edit)
            between = statistics.variance(means)
            training = max(0.0, between - within / seeds) ** 0.5 if seeds > 1 else float("nan")
            out.append({"attack": name, "concept": "pooled" if len(concepts) > 1 else concepts[0],
                        "edit": f"{len(per_edit)} edits", "attack_seeds": seeds, "n": n * len(concepts),
                        "mean": statistics.mean(means), "sd_between": between**0.5, "sd_within": within**0.5,
                        "sd_training": training})  # fmt: skip
    if len(names) > 1:
        for path, by_attack in worst.items():
            top = max(by_attack.values(), key=lambda row: row["mean"])
            out.append({"worst": top["mean"], "ci": top["ci"], "attack": top["attack"], "edit": path,
                        "attack_seeds": seeds})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs="+", help="compare output folders to summarise instead of erasing")
    parser.add_argument(
        "--method", default="ace", help="with --compare: the rows of this spec, any seed= (ace:epochs=60)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--n", type=int, default=32, help="test prompts per group")
    parser.add_argument("--concepts", nargs="+", default=["van gogh", "parachute", "nudity"])
    parser.add_argument(
        "--settings",
        default="defaults",
        help="ACE's named settings; 'kind': what compare runs for the concept's kind; 'defaults': none",
    )
    parser.add_argument("--reattack", nargs="+", metavar="EDIT", help="attack saved edits under --attack-seeds seeds")
    parser.add_argument(
        "--concept", nargs="+", default=["church"], help="with --reattack: the erased concepts (several: pooled)"
    )
    parser.add_argument("--attacks", nargs="+", default=["soft_prompt", "p4d", "ringabell"], help="with --reattack")
    parser.add_argument("--attack-seeds", type=int, default=5, help="with --reattack")
    parser.add_argument(
        "--cache", default="out/reattack-cache", help="with --reattack: what attacks share across edits"
    )
    parser.add_argument(
        "--split", choices=["val", "test"], default="test", help="with --reattack: whose target prompts (val to tune)"
    )
    parser.add_argument(
        "--control", action="store_true", help="with --reattack: also draw each attack's embeddings under the original"
    )
    args = parser.parse_args()
    if args.reattack:
        pin_threads(args.threads)
        rows = reattack(
            args.reattack,
            args.concept,
            args.attacks,
            args.attack_seeds,
            args.n,
            Path(args.cache),
            args.split,
            args.control,
        )
        # per edit and concept; pooled over the concepts; the spread of the edits' means split in two; the worst
        groups = ("pre", "sd", "sd_between", "worst")  # each row's group: the first of these keys it holds
        of = [next(g for g in groups if g in r) for r in rows]
        for group in groups:
            if group in of:
                print_table([r for r, g in zip(rows, of) if g == group])
        return
    if args.compare:
        print_table(from_compare(args.compare, args.method))
        return
    pin_threads(args.threads)
    pipe = erasekit.load_pipeline("embedded")
    judge = embedded.load_judge()
    rows = []
    for concept in args.concepts:
        kind = worlds.get("embedded").concept_kind(concept)
        settings = ace_settings(args.settings, kind)
        preserve = [c for c in embedded.concepts()[kind] if c != concept][::2]
        suite = embedded.prompt_suite(concept, n=args.n, split="test")
        per_seed = {"target_detected": [], "paraphrase_detected": [], "seconds": []}
        for seed in range(args.seeds):
            start = time.perf_counter()
            edit = erasekit.erase(pipe, [concept], "ace", preserve=preserve, settings=settings, seed=seed)
            per_seed["seconds"].append(time.perf_counter() - start)
            edit.apply(pipe)
            try:
                per_seed["target_detected"].append(detection(pipe, judge, suite["target"], concept))
                per_seed["paraphrase_detected"].append(detection(pipe, judge, suite["generality"], concept))
            finally:
                edit.remove(pipe)
            print(concept, seed, {k: round(v[-1], 3) for k, v in per_seed.items()}, flush=True)
        rows.append(
            {
                "concept": concept,
                "settings": settings or "defaults",
                "seeds": args.seeds,
                "n": args.n,
                **{f"{k}_mean": statistics.mean(v) for k, v in per_seed.items()},
                **{f"{k}_sd": statistics.stdev(v) for k, v in per_seed.items() if k != "seconds"},
            }
        )
    print_table(rows)


if __name__ == "__main__":
    main()
