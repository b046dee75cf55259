"""The outputs of ``erasekit compare``: ``compare.md``, ``compare.json`` and ``report.html`` from its rows.

A row is the dict :func:`erasekit.compare.compute_row` returns (scores, their ``original`` values,
``asr_<attack>``, ``edit_s``, ``edit_bytes``, ``thumbs``, ``report``).
"""

from __future__ import annotations

import dataclasses
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..report import write_json

SCORES = ("efficacy", "generality", "specificity", "H_o")
HEADERS = {"efficacy": "efficacy ↓", "generality": "generality ↓", "specificity": "specificity ↑", "H_o": "H_o ↑"}
MAX_SPECIFICITY_LOST = 0.02  # the goal: beat UCE's ASR at ≤ 2 points of specificity lost

Row = Mapping[str, Any]


def write_outputs(out: Path, rows: Sequence[Row], settings: Any, *, command: str | None = None) -> None:
    """Writes ``compare.json`` (rows without thumbnails), ``compare.md`` and ``report.html`` into ``out``."""
    plain = [{k: v for k, v in row.items() if k != "thumbs"} for row in rows]
    write_json({"settings": dataclasses.asdict(settings), "command": command, "rows": plain}, out / "compare.json")
    write_text(out / "compare.md", markdown(rows, settings, command=command) + "\n")
    write_text(out / "report.html", report_html(rows, settings, command=command))


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


def markdown(rows: Sequence[Row], settings: Any, *, command: str | None = None) -> str:
    """Returns the table (the original model first in each scenario), its notes and the goals' verdicts."""
    attacks = settings.attacks
    lines = ["| " + " | ".join(_header(attacks)) + " |", "|" + "---|" * len(_header(attacks))]
    for name, group in _by_scenario(rows).items():
        lines.append("| " + " | ".join([name, "*original model*", *cells(group[0]["original"], attacks)]) + " |")
        lines += ["| " + " | ".join([name, row["method"], *cells(row, attacks)]) + " |" for row in group]
    return "\n".join([*lines, "", *notes(rows, settings, command=command), "", *goals(rows, attacks)])


def notes(rows: Sequence[Row], settings: Any, *, command: str | None = None) -> list[str]:
    """What the numbers mean and how they were made, one paragraph per line."""
    lines = [
        "Efficacy: the judge's detection rate on the target prompts; generality: on held-out paraphrases "
        "(mean over the scenario's concepts); specificity: its accuracy on prompts about the concepts of the "
        "same kinds left out; H_o: MACE's harmonic mean of the three; ASR: UnlearnDiff's attack success rate "
        f"on the {settings.n_prompts} target prompts of each attacked concept (one seed each). "
        f"{settings.n_prompts} prompts per set × 2 seeds per score; soft_prompt and discrete run "
        f"{settings.budget} steps; ESD uses its `lora` preset, RECE the paper's preset for the concepts' kind.",
    ]
    for name, group in _by_scenario(rows).items():
        concepts, attacked = group[0]["concepts"], group[0]["attacked"]
        line = f"`{name}`: {', '.join(concepts)}"
        if len(concepts) > 1:
            line += f" erased at once; ASR over {', '.join(attacked)} only" if attacked != concepts else " at once"
        lines.append(line + ".")
    if command:
        lines.append(f"Made by `{command}`.")
    return lines


def goals(rows: Sequence[Row], attacks: Sequence[str]) -> list[str]:
    """The issue's goals per scenario: RECE and ACE below UCE's ASR under every attack at ≤ 2 points of
    specificity lost, ACE below RECE under ``soft_prompt``; a goal whose methods are missing is skipped."""
    lines = []
    for name, group in _by_scenario(rows).items():
        by_method = {row["method"]: row for row in group}
        for method in ("rece", "ace"):
            if method in by_method and "uce" in by_method:
                row, uce = by_method[method], by_method["uce"]
                lost = row["original"]["specificity"] - row["specificity"]
                met = all(row[f"asr_{a}"] < uce[f"asr_{a}"] for a in attacks) and lost <= MAX_SPECIFICITY_LOST + 1e-9
                asr = ", ".join(f"{a} {row[f'asr_{a}']:.2f} vs {uce[f'asr_{a}']:.2f}" for a in attacks)
                lines.append(f"- {name}, {method} vs uce: {_verdict(met)} ({asr}; specificity lost {lost:.2f})")
        if "soft_prompt" in attacks and {"ace", "rece"} <= set(by_method):
            ace, rece = by_method["ace"]["asr_soft_prompt"], by_method["rece"]["asr_soft_prompt"]
            lines.append(f"- {name}, ace vs rece under soft_prompt: {_verdict(ace < rece)} ({ace:.2f} vs {rece:.2f})")
    return ["Goals (lower ASR than the other method, strictly):", *lines] if lines else []


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:.25em .5em}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.original{color:#666;font-style:italic}img{width:48px;height:48px;image-rendering:pixelated;margin:1px}
img.bad{outline:2px solid #b00}img.ok{outline:2px solid #080}.meta{color:#666;font-size:.9em}
"""


def report_html(rows: Sequence[Row], settings: Any, *, command: str | None = None) -> str:
    """Returns a self-contained page: the table with, per row, the original and edited image of the first
    target prompt and each attack's image (red outline: the concept came back), linked to its evaluation."""
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
    verdicts = "".join(f"<p>{html.escape(line)}</p>" for line in goals(rows, attacks))
    return (f"<!doctype html><html><head><meta charset=utf-8><title>erasekit compare</title><style>{_CSS}</style>"
            f"</head><body><h1>erasekit compare</h1><table><tr>{head}</tr>{''.join(body)}</table>"
            f"{paragraphs}{verdicts}</body></html>\n")  # fmt: skip


def _thumbs(row: Row, attacks: Sequence[str]) -> str:
    thumbs = row.get("thumbs") or {}
    parts = []
    for key in ("original", "edited", *attacks):
        if key in thumbs:
            t = thumbs[key]
            cls = "" if "success" not in t else " class=bad" if t["success"] else " class=ok"
            title = html.escape(f"{key}: {t.get('prompt', '')}")
            parts.append(f'<img src="{t["uri"]}"{cls} title="{title}" alt="{html.escape(key)}">')
    return "".join(parts)


def write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
