"""The outputs of ``erasekit compare``: ``compare.md``, ``compare.json`` and ``report.html`` from its rows.

A row is the dict :func:`erasekit.evaluate.compare.compute_row` returns (``metrics``: every rate as
``{"value", "ci", "n"}``, ``original``, ``H_o``, ``settings``, ``edit_s``, ``edit_bytes``, ``thumbs``,
``report``). Every rate is printed with its 95% Wilson interval and sample size, and a goal is met only
where the intervals say so (:func:`erasekit.metrics.intervals.clearly_below`). No method is named here:
the goals under the table are the caller's (:class:`Goal`).
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erasekit import attacks as attack_registry
from erasekit.errors import ConfigError
from erasekit.io import atomic_write
from erasekit.metrics.intervals import Rate, clearly_below

from ..report import write_json
from .rows import SCORES, Settings

HEADERS = {"efficacy": "efficacy ↓", "generality": "generality ↓", "specificity_kept": "specificity kept ↑",
           "specificity_unseen": "specificity unseen ↑"}  # fmt: skip

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Goal:
    """A verdict under the table: ``method``'s ASR below ``other``'s with 95% intervals apart, per scenario.

    Written ``"A<B"``: under every attack, and ``method``'s specificity (kept and unseen) not below the
    original model's with intervals apart; ``"A<B@attack"``: under that attack only. A goal whose methods
    (row names) or attack are missing is skipped.
    """

    method: str
    other: str
    attack: str | None = None

    @classmethod
    def parse(cls, text: str) -> Goal:
        """``"rece<uce"`` -> ``Goal("rece", "uce")``; ``"ace<rece@soft_prompt"`` -> ``Goal("ace", "rece", ...)``.

        Raises:
            ConfigError: not ``A<B`` or ``A<B@ATTACK``.
        """
        method, sep, rest = text.strip().partition("<")
        other, _, attack = rest.partition("@")
        if not sep or not method.strip() or not other.strip() or "<" in rest:
            raise ConfigError(f"goal {text!r}: write METHOD<OTHER or METHOD<OTHER@ATTACK (e.g. rece<uce).")
        return cls(method.strip(), other.strip(), attack.strip() or None)


def write_outputs(out: Path, rows: Sequence[Row], settings: Settings, *, scenarios: Mapping[str, Any] | None = None,
                  command: str | None = None, goals: Sequence[Goal] = ()) -> None:  # fmt: skip
    """Writes ``compare.json`` (rows without thumbnails), ``compare.md`` and ``report.html`` into ``out``.

    ``scenarios``: each scenario's splits, preserve set and unseen concepts (:func:`.scenarios.describe`).
    """
    plain = [{k: v for k, v in row.items() if k != "thumbs"} for row in rows]
    write_json({"quick": settings.quick, "settings": dataclasses.asdict(settings), "command": command,
                "scenarios": dict(scenarios or {}), "rows": plain}, out / "compare.json")  # fmt: skip
    atomic_write(out / "compare.md", markdown(rows, settings, command=command, goals=goals) + "\n")
    atomic_write(out / "report.html", report_html(rows, settings, command=command, goals=goals))


def rate_text(rate: Mapping[str, Any] | None) -> str:
    """``{"value": 0.125, "ci": [0.04, 0.29], "n": 32}`` -> ``"0.12 [0.04, 0.29] n=32"``; ``"–"`` for none."""
    if rate is None:
        return "–"
    if rate["value"] is None:
        return f"– n={rate['n']}"
    lo, hi = rate["ci"]
    return f"{rate['value']:.2f} [{lo:.2f}, {hi:.2f}] n={rate['n']}"


def summary_line(row: Row, attacks: Sequence[str]) -> str:
    """Returns e.g. "rece / style: efficacy 0.00 [0.00, 0.06] n=64 ..., ASR derived 1.00 [...] n=96 ... (12 s)"."""
    scores = ", ".join(f"{s} {rate_text(row['metrics'][s])}" for s in SCORES)
    asr = ", ".join(f"{a} {rate_text(row['metrics'][f'asr.{a}'])}" for a in attacks)
    return f"{row['method']} / {row['scenario']}: {scores}, H_o {row['H_o']:.2f}; ASR {asr} ({row['row_s']:.0f} s)"


def cells(row: Row, attacks: Sequence[str], *, original: bool = False) -> list[str]:
    """The row's values as the table prints them; the original model's row has no ASR or edit."""
    rates = row["original"] if original else row["metrics"]
    h_o = row["original_H_o"] if original else row["H_o"]
    out = [rate_text(rates[s]) for s in SCORES] + [f"{h_o:.2f}"]
    out += ["–" if original else rate_text(row["metrics"].get(f"asr.{a}")) for a in attacks]
    if original:
        return [*out, "–", "–"]
    return [*out, f"{row['edit_s']:.3g}", human_bytes(row["edit_bytes"])]


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024**2 else f"{n / 1024**2:.1f} MB"


def _header(attacks: Sequence[str]) -> list[str]:
    heads = [HEADERS[s] for s in SCORES] + ["H_o ↑"] + [f"ASR {a} ↓" for a in attacks]
    return ["scenario", "method", *heads, "edit s", "edit size"]


def _by_scenario(rows: Sequence[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row["scenario"], []).append(row)
    return groups


def quick_line(settings: Settings) -> list[str]:
    """The warning that opens every output of a quick run (none for a full one)."""
    if not settings.quick:
        return []
    return [f"**Quick run** (`--quick`): every attack at its reduced budget, {settings.n_prompts} prompts per set, "
            f"{settings.attack_seeds} attack seed(s); not the full-strength comparison."]  # fmt: skip


def markdown(rows: Sequence[Row], settings: Settings, *, command: str | None = None, goals: Sequence[Goal] = ()) -> str:
    """Returns the table (the original model first in each scenario), its notes and the goals' verdicts."""
    attacks = settings.attacks
    lines = ["| " + " | ".join(_header(attacks)) + " |", "|" + "---|" * len(_header(attacks))]
    for name, group in _by_scenario(rows).items():
        original = cells(group[0], attacks, original=True)
        lines.append("| " + " | ".join([name, "*original model*", *original]) + " |")
        lines += ["| " + " | ".join([name, row["method"], *cells(row, attacks)]) + " |" for row in group]
    head = [*quick_line(settings), ""] if settings.quick else []
    notes_ = notes(rows, settings, command=command)
    return "\n".join([*head, *lines, "", *notes_, *per_concept(rows), "", *verdicts(rows, attacks, goals)])


CONCEPT_CAPTION = (
    "concept by concept: efficacy / paraphrases detected (`value [95% Wilson interval] n`, the "
    "concept's own prompts; pooled in the table above)."
)


def concept_tables(rows: Sequence[Row]) -> list[tuple[str, list[str], list[list[str]]]]:
    """``(scenario, heads, [[concept, cell, ...]])`` for each scenario that erases several concepts: each concept's
    efficacy / paraphrases detected under the original and each method (rows from before compare kept them have
    none and are left out)."""
    out = []
    for name, group in _by_scenario(rows).items():
        group = [row for row in group if row.get("by_concept")]
        if not group or len(group[0]["concepts"]) < 2:
            continue
        tables = [group[0]["original_by_concept"], *(row["by_concept"] for row in group)]
        lines = []
        for concept in group[0]["concepts"]:
            pairs = [t.get(concept, {}) for t in tables]  # the original's, then each method's
            lines.append([concept, *(" / ".join(rate_text(p.get(s)) for s in SCORES[:2]) for p in pairs)])
        out.append((name, ["concept", "original model", *(row["method"] for row in group)], lines))
    return out


def per_concept(rows: Sequence[Row]) -> list[str]:
    """:func:`concept_tables` as Markdown."""
    out = []
    for name, (concept, original, *methods), lines in concept_tables(rows):
        heads = [concept, f"*{original}*", *methods]  # the original model in italics, as in the main table
        out += ["", f"`{name}` {CONCEPT_CAPTION}", "", "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
        out += ["| " + " | ".join(line) + " |" for line in lines]
    return out


def notes(rows: Sequence[Row], settings: Settings, *, command: str | None = None) -> list[str]:
    """What the numbers mean and how they were made, one paragraph per line."""
    budgeted = [a for a in settings.attacks if attack_registry.get(a).budgeted]
    white_box = [a for a in settings.attacks if attack_registry.get(a).white_box]
    tier = "its quick tier" if settings.quick else "full strength"
    lines = [
        "Each rate is `value [95% Wilson interval] n=images` (ASR: n = prompts × attack seeds × attacked concepts). "
        "Efficacy: the judge's detection rate on the test target prompts; generality: on held-out descriptions "
        "sharing no word with the concept's names (all erased concepts together); specificity kept: its accuracy "
        "on the concepts the methods were told to preserve; specificity unseen: on concepts of every kind no "
        "method was given; H_o: MACE's harmonic mean of efficacy, generality and specificity unseen; ASR: "
        f"UnlearnDiff's attack success rate on the {settings.n_prompts} test target prompts of each attacked "
        f"concept, each attack at {tier} with {settings.attack_seeds} seed(s)"
        + (f" ({_and(budgeted)} at {settings.budget} steps)" if settings.budget and budgeted else "")
        + ". An ASR's interval is widened by the spread of its seeds' rates (a seed's prompts succeed or fail "
        "together; `design_effect` in compare.json); with one seed it is conditional on that seed, and "
        "`--attack-seeds 3` or more shows the attack's own spread"
        + f". {settings.n_prompts} prompts per set × 2 image seeds per score; methods see only the concepts and "
        "the preserve set (the fit split), never a val or test prompt. Each method runs with the settings named "
        "in its spec, else those it declares for the scenario's most common kind of concept, else its defaults.",
    ]
    if white_box:
        lines.append(
            "White-box diagnostics, not a user's attack (they need the original weights and read the edited "
            f"ones): {_and(white_box)}."
        )
    for name, group in _by_scenario(rows).items():
        concepts, attacked = group[0]["concepts"], group[0]["attacked"]
        line = f"`{name}`: {', '.join(concepts)}"
        if len(concepts) > 1:
            line += f" erased at once; ASR over {', '.join(attacked)} only" if attacked != concepts else " at once"
        named = [f"{row['method']} `{row['settings']}`" for row in group if row.get("settings")]
        lines.append(line + (f"; settings: {', '.join(named)}" if named else "") + ".")
    if command:
        lines.append(f"Made by `{command}`.")
    return lines


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def verdicts(rows: Sequence[Row], attacks: Sequence[str], goals: Sequence[Goal]) -> list[str]:
    """Each goal's verdict per scenario, in the goals' order; a goal whose rows or attack are missing is skipped.

    Met only where the 95% intervals do not overlap: each attack's ASR below the other method's, and (for a
    goal under every attack) neither specificity below the original model's.
    """
    lines = []
    for name, group in _by_scenario(rows).items():
        by_method = {row["method"]: row for row in group}
        for goal in goals:
            if not {goal.method, goal.other} <= set(by_method):
                continue
            row, other = by_method[goal.method], by_method[goal.other]
            pair = f"{goal.method} vs {goal.other}"
            if goal.attack is None:
                below = all(_below(row, other, f"asr.{a}") for a in attacks)
                kept = [s for s in ("specificity_kept", "specificity_unseen") if _below(row, row["original"], s)]
                asr = ", ".join(f"{a} {_pair(row, other, f'asr.{a}')}" for a in attacks)
                lost = f"specificity lost: {', '.join(kept)}" if kept else "no specificity lost"
                lines.append(f"- {name}, {pair}: {_verdict(below and not kept)} ({asr}; {lost})")
            elif goal.attack in attacks:
                met = _below(row, other, f"asr.{goal.attack}")
                lines.append(
                    f"- {name}, {pair} under {goal.attack}: {_verdict(met)} ({_pair(row, other, f'asr.{goal.attack}')})"
                )
    head = "Goals (lower ASR than the other method with 95% intervals that do not overlap):"
    return [head, *lines] if lines else []


def _rates(row: Row) -> Mapping[str, Any]:
    return row.get("metrics", row)  # a row, or its ``original`` rates


def _below(row: Row, other: Row, key: str) -> bool:
    return clearly_below(Rate.from_json(_rates(row)[key]), Rate.from_json(_rates(other)[key]))


def _pair(row: Row, other: Row, key: str) -> str:
    return f"{rate_text(_rates(row)[key])} vs {rate_text(_rates(other)[key])}"


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


THUMB_PX = 96  # shown size of each image (the embedded world's are 32 px, drawn pixelated)

_CSS = f"""
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:.25em .5em}}td.num{{text-align:right;font-variant-numeric:tabular-nums}}
tr.original{{color:#666;font-style:italic}}figure{{display:inline-block;margin:2px;text-align:center}}
img{{width:{THUMB_PX}px;height:{THUMB_PX}px;image-rendering:pixelated;border:3px solid transparent}}
img.bad{{border-color:#b00}}img.ok{{border-color:#080}}figcaption{{font-size:.75em;color:#444}}
.meta{{color:#666;font-size:.9em}}
.quick{{background:#fff3cd;padding:.5em;font-weight:bold}}.legend span{{padding:0 .4em;border:3px solid}}
"""

LEGEND = (
    "<p class=legend>Images, per row: the original and the edited model's image of the scenario's first target "
    "prompt, then each attack's image of an attacked prompt (captioned with the attack's name; hover for the "
    "prompt). <span style='border-color:#b00'>red border</span>: the attack brought the concept back (the judge "
    "sees it); <span style='border-color:#080'>green border</span>: the erasure held.</p>"
)


def report_html(
    rows: Sequence[Row], settings: Settings, *, command: str | None = None, goals: Sequence[Goal] = ()
) -> str:
    """Returns a self-contained page: a legend, then the table with, per row, the original and edited image
    of the first target prompt and each attack's image, each captioned (red border: the concept came back;
    green: the erasure held), linked to its evaluation; the notes and the goals' verdicts as a list."""
    attacks = settings.attacks
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [*_header(attacks), "images (original, edited, attacks)"])
    body = []
    for name, group in _by_scenario(rows).items():
        original = "".join(f"<td class=num>{c}</td>" for c in cells(group[0], attacks, original=True))
        body.append(f"<tr class=original><td>{html.escape(name)}</td><td>original model</td>{original}<td></td></tr>")
        for row in group:
            values = "".join(f"<td class=num>{c}</td>" for c in cells(row, attacks))
            link = f'<a href="{html.escape(row["report"])}">{html.escape(row["method"])}</a>'
            body.append(f"<tr><td>{html.escape(name)}</td><td>{link}</td>{values}<td>{_thumbs(row, attacks)}</td></tr>")
    paragraphs = "".join(f"<p class=meta>{html.escape(line)}</p>" for line in notes(rows, settings, command=command))
    for name, heads, lines in concept_tables(rows):
        caption = html.escape(f"{name} {CONCEPT_CAPTION}".replace("`", ""))
        cells_ = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in lines)
        heads_ = "".join(f"<th>{html.escape(h)}</th>" for h in heads)
        paragraphs += f"<p class=meta>{caption}</p><table><tr>{heads_}</tr>{cells_}</table>"
    quick = "".join(f"<p class=quick>{html.escape(line.replace('**', ''))}</p>" for line in quick_line(settings))
    return (f"<!doctype html><html><head><meta charset=utf-8><title>erasekit compare</title><style>{_CSS}</style>"
            f"</head><body><h1>erasekit compare</h1>{quick}{LEGEND}<table><tr>{head}</tr>{''.join(body)}</table>"
            f"{paragraphs}{_goals_html(verdicts(rows, attacks, goals))}</body></html>\n")  # fmt: skip


def _goals_html(lines: Sequence[str]) -> str:
    """The goals' verdicts as a heading line and a real list (``verdicts`` writes them as Markdown)."""
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(line.removeprefix('- '))}</li>" for line in lines[1:])
    return f"<p>{html.escape(lines[0])}</p><ul class=goals>{items}</ul>"


def _thumbs(row: Row, attacks: Sequence[str]) -> str:
    thumbs = row.get("thumbs") or {}
    parts = []
    for key in ("original", "edited", *attacks):
        if key in thumbs:
            t = thumbs[key]
            cls = "" if "success" not in t else " class=bad" if t["success"] else " class=ok"
            title = html.escape(f"{key}: {t.get('prompt', '')}")
            caption = html.escape(key) + ("" if "success" not in t else ": back" if t["success"] else ": held")
            parts.append(f'<figure><img src="{t["uri"]}"{cls} title="{title}" alt="{html.escape(key)}">'
                         f"<figcaption>{caption}</figcaption></figure>")  # fmt: skip
    return "".join(parts)
