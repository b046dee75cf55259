"""``erasekit export``: rewrite an edit file in the LoRA layout another tool reads."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ._common import check_output_file, console


class Format(str, Enum):
    kohya = "kohya"
    diffusers = "diffusers"


FORMAT_HELP = (
    "kohya: lora_unet_* keys, for ComfyUI (models/loras, LoraLoader node), AUTOMATIC1111 (models/Lora, "
    "<lora:NAME:1>) and diffusers; no place for an ACE gate or SPM's prompt scale. "
    "diffusers: erasekit's own layout (unet.<layer>.lora_A/lora_B), for pipe.load_lora_weights and "
    "Edit.load; keeps the gate and the prompt scale."
)


def export(
    edit: Path = typer.Argument(..., metavar="EDIT", help="Edit file to export (from `erasekit erase`, or a LoRA)."),
    out: Path = typer.Option(..., "--out", "-o", help="LoRA file to write (.safetensors)."),
    format: Format = typer.Option(Format.kohya, "--format", "-f", help=FORMAT_HELP),
    ungated: bool = typer.Option(
        False,
        "--ungated",
        help="Export a gated (ACE) edit without its gate: the update then applies to every token, "
        "not only to tokens near the erased concept.",
    ),
    unscaled: bool = typer.Option(
        False,
        "--unscaled",
        help="Export a prompt-scaled (SPM) edit without its prompt scale (Facilitated Transport): the update then "
        "applies in full to every prompt, not weighted by how close the prompt is to the erased concept.",
    ),
    overwrite: bool = typer.Option(False, help="Replace OUT if it exists."),
) -> None:
    """Export an edit as a LoRA file for ComfyUI and AUTOMATIC1111 (kohya) or diffusers.

    At strength 1 the LoRA reproduces the edit exactly, except a gated (ACE) edit's gate and a
    prompt-scaled (SPM) edit's per-prompt multiplier: the kohya layout has neither, so such an edit is
    refused unless --ungated (--unscaled).
    """
    from ..edit import Edit

    check_output_file(out, overwrite=overwrite)  # fail before reading anything
    loaded = Edit.load(edit)
    loaded.save(out, overwrite=overwrite, format=format.value, ungated=ungated, unscaled=unscaled)
    what = f"{loaded.method} edit of {', '.join(map(repr, loaded.concepts)) or 'unknown concepts'}"
    console.print(f"Exported the {what} ({len(loaded.updates)} layers) as a {format.value} LoRA -> {out}")
    if format is Format.kohya:
        console.print(
            f"ComfyUI: copy it to models/loras and load it with a LoraLoader node at strength 1.0. "
            f"AUTOMATIC1111: copy it to models/Lora and add <lora:{out.stem}:1> to the prompt."
        )
