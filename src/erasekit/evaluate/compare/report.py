"""The outputs of ``erasekit compare``: ``compare.md``, ``compare.json`` and ``report.html`` from its rows.

A row is the dict :func:`erasekit.evaluate.compare.compute_row` returns (scores, their ``original``
values, ``asr_<attack>``, ``settings``, ``edit_s``, ``edit_bytes``, ``thumbs``, ``report``). No method
is named here: the goals under the table are the caller's (:class:`Goal`).
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

from ..report import write_json

SCORES = ("efficacy", "generality", "specificity", "H_o")
HEADERS = {"efficacy": "efficacy ↓", "generality": "generality ↓", "specificity": "specificity ↑", "H_o": "H_o ↑"}
MAX_SPECIFICITY_LOST = 0.02  # a goal under every attack allows ≤ 2 points of specificity lost

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Goal:
    """A verdict under the table: ``method``'s ASR strictly below ``other``'s, per scenario.

    Written ``"A<B"``: under every attack, at ≤ 2 points of specificity lost; ``"A<B@attack"``: under
    that attack only. A goal whose methods (row names) or attack are missing is skipped.
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


def write_outputs(
    out: Path, rows: Sequence[Row], settings: Any, *, command: str | None = None, goals: Sequence[Goal] = ()
) -> None:
    """Writes ``compare.json`` (rows without thumbnails), ``compare.md`` and ``report.html`` into ``out``."""
    plain = [{k: v for k, v in row.items() if k != "thumbs"} for row in rows]
    write_json({"settings": dataclasses.asdict(settings), "command": command, "rows": plain}, out / "compare.json")
    atomic_write(out / "compare.md", markdown(rows, settings, command=command, goals=goals) + "\n")
    atomic_write(out / "report.html", report_html(rows, settings, command=command, goals=goals))


def summary_line(row: Row, attacks: Sequence[str]) -> str:
    """Returns e.g. "rece / style: efficacy 0.00 generality 0.00 specificity 1.00 H_o 1.00, ASR derived 1.00 ..."."""
    scores = " ".join(f"{s} {row[s]:.2f}" for s in SCORES)
    asr = " ".join(f"{a} {row[f'asr_{a}']:.2f}" for a in attacks)
    return f"{row['method']} / {row['scenario']}: {scores}, ASR {asr} ({row['row_s']:.0f} s)"


def columns(attacks: Sequence[str]) -> list[str]:
    return [*SCORES, *(f"asr_{a}" for a in attacks), "edit_s", "edit_bytes"]


def cells(row: Row, attacks: Sequence[str]) -> list[str]:
    """The row's values as the table prints them; the original model's row has no ASR or edit."""
    out = []
    for col in columns(attacks):
        value = row.get(col)
        if value is None:
            out.append("–")
        elif col == "edit_s":
            out.append(f"{value:.3g}")
        elif col == "edit_bytes":
            out.append(human_bytes(value))
        else:
            out.append(f"{value:.2f}")
    return out


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024**2 else f"{n / 1024**2:.1f} MB"


def _header(attacks: Sequence[str]) -> list[str]:
    heads = [HEADERS[s] for s in SCORES] + [f"ASR {a} ↓" for a in attacks]
    return ["scenario", "method", *heads, "edit s", "edit size"]


def _by_scenario(rows: Sequence[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row["scenario"], []).append(row)
    return groups


def markdown(rows: Sequence[Row], settings: Any, *, command: str | None = None, goals: Sequence[Goal] = ()) -> str:
    """Returns the table (the original model first in each scenario), its notes and the goals' verdicts."""
    attacks = settings.attacks
    lines = ["| " + " | ".join(_header(attacks)) + " |", "|" + "---|" * len(_header(attacks))]
    for name, group in _by_scenario(rows).items():
        lines.append("| " + " | ".join([name, "*original model*", *cells(group[0]["original"], attacks)]) + " |")
        lines += ["| " + " | ".join([name, row["method"], *cells(row, attacks)]) + " |" for row in group]
    return "\n".join([*lines, "", *notes(rows, settings, command=command), "", *verdicts(rows, attacks, goals)])


def notes(rows: Sequence[Row], settings: Any, *, command: str | None = None) -> list[str]:
    """What the numbers mean and how they were made, one paragraph per line."""
    budgeted = [a for a in settings.attacks if attack_registry.get(a).budgeted]
    lines = [
        "Efficacy: the judge's detection rate on the target prompts; generality: on held-out paraphrases "
        "(mean over the scenario's concepts); specificity: its accuracy on prompts about the concepts of the "
        "same kinds left out; H_o: MACE's harmonic mean of the three; ASR: UnlearnDiff's attack success rate "
        f"on the {settings.n_prompts} target prompts of each attacked concept (one seed each). "
        f"{settings.n_prompts} prompts per set × 2 seeds per score; "
        + (f"the attacks with a budget ({_and(budgeted)}) run {settings.budget} steps; " if budgeted else "")
        + "each method runs with the settings named in its spec, else those it declares for the scenario's "
        "most common kind of concept, else its default settings (listed per scenario below).",
    ]
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
    """Each goal's verdict per scenario, in the goals' order; a goal whose rows or attack are missing is skipped."""
    lines = []
    for name, group in _by_scenario(rows).items():
        by_method = {row["method"]: row for row in group}
        for goal in goals:
            if not {goal.method, goal.other} <= set(by_method):
                continue
            row, other = by_method[goal.method], by_method[goal.other]
            pair = f"{goal.method} vs {goal.other}"
            if goal.attack is None:
                lost = row["original"]["specificity"] - row["specificity"]
                below = all(row[f"asr_{a}"] < other[f"asr_{a}"] for a in attacks)
                met = below and lost <= MAX_SPECIFICITY_LOST + 1e-9
                asr = ", ".join(f"{a} {row[f'asr_{a}']:.2f} vs {other[f'asr_{a}']:.2f}" for a in attacks)
                lines.append(f"- {name}, {pair}: {_verdict(met)} ({asr}; specificity lost {lost:.2f})")
            elif goal.attack in attacks:
                a, b = row[f"asr_{goal.attack}"], other[f"asr_{goal.attack}"]
                lines.append(f"- {name}, {pair} under {goal.attack}: {_verdict(a < b)} ({a:.2f} vs {b:.2f})")
    return ["Goals (lower ASR than the other method, strictly):", *lines] if lines else []


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


THUMB_PX = 96  # shown size of each image (the embedded world's are 32 px, drawn pixelated)

_CSS = f"""
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ddd;padding:.25em .5em}}td.num{{text-align:right;font-variant-numeric:tabular-nums}}
tr.original{{color:#666;font-style:italic}}figure{{display:inline-block;margin:2px;text-align:center}}
img{{width:{THUMB_PX}px;height:{THUMB_PX}px;image-rendering:pixelated;border:3px solid transparent}}
img.bad{{border-color:#b00}}img.ok{{border-color:#080}}figcaption{{font-size:.75em;color:#444}}
.meta{{color:#666;font-size:.9em}}.legend span{{padding:0 .4em;border:3px solid}}
"""

LEGEND = (
    "<p class=legend>Images, per row: the original and the edited model's image of the scenario's first target "
    "prompt, then each attack's image of an attacked prompt (captioned with the attack's name; hover for the "
    "prompt). <span style='border-color:#b00'>red border</span>: the attack brought the concept back (the judge "
    "sees it); <span style='border-color:#080'>green border</span>: the erasure held.</p>"
)


def report_html(rows: Sequence[Row], settings: Any, *, command: str | None = None, goals: Sequence[Goal] = ()) -> str:
    """Returns a self-contained page: a legend, then the table with, per row, the original and edited image
    of the first target prompt and each attack's image, each captioned (red border: the concept came back;
    green: the erasure held), linked to its evaluation; the notes and the goals' verdicts as a list."""
    attacks = settings.attacks
    head = "".join(f"<th>{html.escape(h)}</th>" for h in [*_header(attacks), "images (original, edited, attacks)"])
    body = []
    for name, group in _by_scenario(rows).items():
        original = "".join(f"<td class=num>{c}</td>" for c in cells(group[0]["original"], attacks))
        body.append(f"<tr class=original><td>{html.escape(name)}</td><td>original model</td>{original}<td></td></tr>")
        for row in group:
            values = "".join(f"<td class=num>{c}</td>" for c in cells(row, attacks))
            link = f'<a href="{html.escape(row["report"])}">{html.escape(row["method"])}</a>'
            body.append(f"<tr><td>{html.escape(name)}</td><td>{link}</td>{values}<td>{_thumbs(row, attacks)}</td></tr>")
    paragraphs = "".join(f"<p class=meta>{html.escape(line)}</p>" for line in notes(rows, settings, command=command))
    return (f"<!doctype html><html><head><meta charset=utf-8><title>erasekit compare</title><style>{_CSS}</style>"
            f"</head><body><h1>erasekit compare</h1>{LEGEND}<table><tr>{head}</tr>{''.join(body)}</table>"
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
