"""Writing an :class:`AttackResult` to a folder: images, embeddings and ``result.json``, each atomically.

Layout::

    OUT/pre/0000.png         the edited model's image of prompt 0, before any attack
    OUT/attack/0003.png      the attack's image of prompt 3 (attacked prompts only)
    OUT/embeds.safetensors   case_0003.prompt_embeds [L, d] per attacked prompt, plus the run's tensors
    OUT/result.json          result.summary() plus what the caller adds (model, edit file); written last

Every file goes to a temporary name in its folder first and is renamed into place, so a killed
run never leaves a truncated file under a final name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from ..errors import OutputError, OutputExistsError
from ..io import atomic_write
from .base import AttackResult


def save_result(
    result: AttackResult, out: str | os.PathLike[str], *, overwrite: bool = False, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``result`` under ``out`` (created if needed) and return the JSON written to ``result.json``.

    Raises:
        OutputExistsError: ``out/result.json`` exists and ``overwrite`` is False.
        OutputError: ``out`` cannot be created or written.
    """
    out = Path(out)
    if (out / "result.json").exists() and not overwrite:
        raise OutputExistsError(f"{out} already holds an attack result; choose another folder or pass --overwrite.")
    try:
        for sub in ("pre", "attack"):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot create {out}: {e.strerror}. Choose a writable folder.") from e
    tensors = {f"run.{k}": v.detach().cpu().contiguous() for k, v in result.tensors.items()}
    for i, c in enumerate(result.cases):
        atomic_write(out / "pre" / f"{i:04d}.png", lambda p, img=c.pre_image: img.save(p, format="PNG"))
        if c.outcome is not None:
            atomic_write(out / "attack" / f"{i:04d}.png", lambda p, img=c.outcome.image: img.save(p, format="PNG"))
            tensors[f"case_{i:04d}.prompt_embeds"] = c.outcome.prompt_embeds.detach().cpu().float().contiguous()
    if tensors:
        meta = {"attack": result.attack}
        atomic_write(out / "embeds.safetensors", lambda p: save_file(tensors, str(p), metadata=meta))
    summary = {**result.summary(), **(extra or {})}
    atomic_write(out / "result.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
