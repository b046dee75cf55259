"""The outputs of an evaluation: ``metrics.json`` (DESIGN.md's schema) and a self-contained ``report.html``.

``metrics.json``::

    {"model": "...", "edit": {"method": ..., "concepts": [...], "fingerprint": ..., "id": ...} | null,
     "protocol": "...", "concept": "...", "n_images": 0,
     "metrics": {"efficacy": {}, "generality": {}, "specificity": {}, "asr": {}, "quality": {}},
     "baseline": {same five groups, for the original model} | null,
     "timing": {"edit_s": ..., "generate_s": ..., "score_s": ...},
     "settings": {"generation": {...}, "seeds": ...}, "erasekit_version": "..."}

The report embeds every image as a base64 PNG thumbnail, so the one file can be mailed or archived.
Attack results (from ``erasekit.attacks``, or read back from an ``erasekit attack -o`` folder with
:func:`load_attack_record`) come in as :class:`AttackRecord` and get their own section and
``asr.asr_<name>`` entries.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from erasekit.io import atomic_write
from erasekit.metrics import GROUPS

from .attack_records import AttackExample, AttackRecord, AttackTarget, check_attacks, load_attack_record, with_attacks
from .prompt_sets import PromptRow
from .store import ImageStore, dumps_strict, finite_or_none
from .work import WorkItem

THUMB = 160  # px, longest side of a thumbnail as stored

__all__ = [  # the attack records live in attack_records.py; importable from here as before
    "AttackExample",
    "AttackRecord",
    "AttackTarget",
    "better",
    "check_attacks",
    "load_attack_record",
    "thumbnail_uri",
    "with_attacks",
    "write_html",
    "write_json",
]


def write_json(result: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """Writes ``result`` as indented strict JSON (NaN and infinities as null), atomically; returns the path."""
    return atomic_write(path, dumps_strict(finite_or_none(result), indent=2, default=str) + "\n")


def thumbnail_uri(image: Image.Image, *, size: int = THUMB) -> str:
    """Returns ``image`` as a ``data:image/png;base64,...`` URI, at most ``size`` px on its longest side."""
    image = image.convert("RGB")
    if max(image.size) > size:
        image = image.copy()
        image.thumbnail((size, size), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:flex;flex-wrap:wrap;gap:1em}.pair{width:300px;font-size:.8em}
.pair img{width:140px;height:140px;object-fit:contain;image-rendering:pixelated;background:#eee}
figure{display:inline-block;margin:0 4px 0 0}figcaption{color:#666;font-size:.85em;text-align:center}
.ok{color:#080}.bad{color:#b00}.meta{color:#666;font-size:.9em}
"""


BETTER_BY_GROUP = {"efficacy": "lower", "generality": "lower", "specificity": "higher", "asr": "lower"}
BETTER_BY_NAME = {"fid": "lower", "clip_score": "higher", "mace_h_o": "higher"}
ARROWS = {"lower": "↓", "higher": "↑", "": ""}


def better(group: str, key: str) -> str:
    """Returns which way a score is better: "lower", "higher", or "" (unknown).

    Efficacy, generality (the erased concept still shown) and ASR: lower; specificity: higher. LPIPS is
    the image change: wanted on the erased concept (efficacy, ``lpips_e``: higher), not on the others
    (specificity, ``lpips_u``: lower). Quality scores go by name (FID lower; CLIP score and H_o higher).
    """
    if key.startswith("lpips"):  # lpips_e and lpips_d (efficacy): higher; lpips_u (specificity): lower
        return "lower" if group == "specificity" else "higher"
    named = next((way for name, way in BETTER_BY_NAME.items() if key.startswith(name)), None)
    return named or BETTER_BY_GROUP.get(group, "")


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _settings_line(result: Mapping[str, Any]) -> str:
    """Returns e.g. "edit 0.021 s · generate 3.2 s · score 0.4 s · steps 12, guidance 4.0 · target 48, ..."."""
    timing = [f"{k.removesuffix('_s')} {v:.3g} s" for k, v in (result.get("timing") or {}).items() if v is not None]
    settings = result.get("settings") or {}
    generation = settings.get("generation") or {}
    sampling = ", ".join(f"{k} {v}" for k, v in generation.items() if v is not None and k != "batch_size")
    sets = ", ".join(f"{k}: {v} prompts" for k, v in (settings.get("prompt_sets") or {}).items())
    return " · ".join(part for part in (*timing, sampling, sets, settings.get("reference") or "") if part)


def _metrics_table(result: Mapping[str, Any]) -> str:
    baseline = result.get("baseline") or {}
    rows = []
    for group in GROUPS:
        for key, value in result["metrics"].get(group, {}).items():
            before = baseline.get(group, {}).get(key)
            way = better(group, key)
            rows.append(
                f"<tr><td>{group}</td><td>{html.escape(key)}</td><td class=num>{_fmt(value)}</td>"
                f"<td class=num>{'' if before is None else _fmt(before)}</td>"
                f"<td title='{way} is better'>{ARROWS[way]} {way}</td></tr>"
            )
    if not rows:
        return "<p>No metrics: this run only generated images.</p>"
    head = "<tr><th>group</th><th>metric</th><th>edited</th><th>original</th><th>better</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _grids(rows: Mapping[str, Sequence[PromptRow]], store: ImageStore, per_set: int) -> str:
    parts = []
    for set_name, set_rows in rows.items():
        cells = []
        for row in list(set_rows)[:per_set]:
            edited = WorkItem("edited", row, row.seeds[0])
            original = WorkItem("original", row, row.seeds[0])
            imgs = []
            for item, title in ((original, "original"), (edited, "model" if store.model_only else "edited")):
                if store.has(item):
                    uri = thumbnail_uri(store.load(item))
                    imgs.append(f'<figure><img src="{uri}" alt="{title}"><figcaption>{title}</figcaption></figure>')
            label = f" <span class=meta>[{html.escape(row.label)}]</span>" if row.label else ""
            cells.append(
                f"<div class=pair>{''.join(imgs)}<div>{html.escape(row.prompt[:200])}{label}"
                f"<span class=meta> seed {row.seeds[0]}</span></div></div>"
            )
        n = sum(len(r.seeds) for r in set_rows)
        parts.append(
            f"<h2>Prompts: {html.escape(set_name)} <span class=meta>({len(set_rows)} prompts, {n} images; "
            f"first seed shown)</span></h2><div class=grid>{''.join(cells)}</div>"
        )
    return "".join(parts)


QUICK = " (quick: the reduced --quick budget, not the paper's strength)"


def _attacks(attacks: Sequence[AttackRecord]) -> str:
    if not attacks:
        return "<h2>Attacks</h2><p class=meta>No attack results: run <code>erasekit attack</code> to add them.</p>"
    parts = ["<h2>Attacks</h2>"]
    for record in attacks:
        cells = "".join(
            f'<div class=pair><img src="{thumbnail_uri(ex.image)}" alt="attack image">'
            f"<div class={'bad' if ex.success else 'ok'}>{'concept back' if ex.success else 'held'}</div>"
            f"<div>{html.escape(ex.prompt[:200])}</div><div class=meta>{html.escape(ex.found[:200])}</div></div>"
            for ex in record.examples
        )
        params = html.escape(json.dumps(dict(record.params), default=str))
        parts.append(
            f"<h3>{html.escape(record.name)}: ASR {record.asr:.1%}{QUICK if record.quick else ''}</h3>"
            f"<p class=meta>{params}</p>"
            f"<div class=grid>{cells}</div>"
        )
    return "".join(parts)


def write_html(
    result: Mapping[str, Any],
    rows: Mapping[str, Sequence[PromptRow]],
    store: ImageStore,
    path: str | os.PathLike[str],
    *,
    attacks: Sequence[AttackRecord] = (),
    per_set: int = 12,
) -> Path:
    """Writes the self-contained HTML report; returns its path.

    Args:
        result: the metrics.json content.
        rows: prompt rows by set, as generated.
        store: the run's images.
        path: where to write.
        attacks: attack outcomes to show (and whose ASR is in ``result``).
        per_set: prompts shown per prompt set (first seed each).
    """
    edit = result.get("edit") or {}
    title = f"erasekit: {result.get('protocol')} on {result.get('model')}"
    head = (
        f"<h1>{html.escape(title)}</h1><p>Edit: <b>{html.escape(str(edit.get('method', 'none')))}</b> "
        f"erasing {html.escape(', '.join(edit.get('concepts', [])) or '-')}; concept evaluated: "
        f"<b>{html.escape(str(result.get('concept')))}</b>; {result.get('n_images')} images.</p>"
        f"<p class=meta>{html.escape(_settings_line(result))}</p>"
    )
    body = head + "<h2>Scores</h2>" + _metrics_table(result) + _grids(rows, store, per_set) + _attacks(attacks)
    page = f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>{body}</body></html>\n"  # noqa: E501
    return atomic_write(path, page)
