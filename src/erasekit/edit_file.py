"""An :class:`~erasekit.edit.Edit` as a file: safetensors in a LoRA layout diffusers reads.

``format="diffusers"`` (the default): ``unet.<layer>.lora_A.weight [r, d_in]`` /
``unet.<layer>.lora_B.weight [d_out, r]`` with ``lora_adapter_metadata`` (rank, alpha = rank, so the
scale is 1), which ``pipe.load_lora_weights`` reads. A text-encoder layer, whose name in the edit
already carries its part (``text_encoder.<layer>``), is written under that name, with its part's
metadata (``text_encoder.r``, ...), as diffusers' own ``save_lora_weights`` writes it. A gated
edit (ACE) adds its gate as ``erasekit_lora_gate.*`` tensors, a prompt-scaled one its concept
states as ``erasekit_lora_prompt_scale.*``: diffusers requires "lora" in every key and reads only
``unet.`` ones, so it skips them and applies the update as is (at multiplier 1, to every token).

``format="kohya"``: ``lora_unet_<layer>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` (= rank),
the layout AUTOMATIC1111, ComfyUI and diffusers read (see :mod:`erasekit.lora_layouts`). U-Net layers
only: kohya's text-encoder names map back to module paths for CLIP alone. It has no place for a
gate or a prompt scale, so a gated edit is refused unless ``ungated=True`` drops the gate, and a
prompt-scaled one unless ``unscaled=True`` drops its scale. No
``lora_adapter_metadata`` there: diffusers refuses it beside kohya alphas.

Both carry erasekit's own metadata under the key ``erasekit`` (method, config, concepts, base
fingerprint, and the sha256 of the tensors written, checked at load), which diffusers ignores.
:func:`read` reads both and every other U-Net LoRA layout :mod:`erasekit.lora_layouts` knows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from . import lora_layouts
from .errors import ConfigError, EditFileError, MissingWeightsError, NumericalError, OutputExistsError
from .gate import TokenGate
from .io import atomic_write
from .prompt_scale import PromptScale

if TYPE_CHECKING:
    from .edit import Edit

logger = logging.getLogger(__name__)

EditFormat = Literal["diffusers", "kohya"]
PREFIX = "unet."
META_KEY = "erasekit"
GATE_PREFIX = "erasekit_lora_gate."  # diffusers wants "lora" in every key, and reads only "unet." ones
SCALE_PREFIX = "erasekit_lora_prompt_scale."  # likewise
LORA_META_KEY = "lora_adapter_metadata"  # diffusers' key, read by load_lora_weights
_CLIP_ATTENTION = ("q_proj", "k_proj", "v_proj", "out_proj")  # what diffusers' text-encoder loader converts by name
CHECKSUM = "tensors_sha256"  # in erasekit's metadata: the file's tensors as written (older files lack it)


def gate_tensors(gate: TokenGate | None) -> dict[str, Tensor]:
    """The gate's tensors under their file keys (none for an ungated edit)."""
    if gate is None:
        return {}
    return {f"{GATE_PREFIX}{k}": v.float() for k, v in gate.tensors().items()}


def prompt_scale_tensors(scale: PromptScale | None) -> dict[str, Tensor]:
    """The prompt scale's tensors under their file keys (none for an unscaled edit)."""
    if scale is None:
        return {}
    return {f"{SCALE_PREFIX}{k}": v for k, v in scale.tensors().items()}


def tensors_sha256(tensors: dict[str, Tensor]) -> str:
    """sha256 of every tensor's key, dtype, shape and bytes, in key order: what a file holds, bit for bit."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def part(name: str) -> str:
    """The pipeline part a layer name belongs to, as a key prefix: ``"text_encoder."``, ``"text_encoder_2."``
    (the name starts with it) or ``"unet."`` (U-Net layers are named without it)."""
    return next((p for p in lora_layouts.TEXT_ENCODERS if name.startswith(p)), PREFIX)


def state_dict(updates: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """``unet.<layer>.lora_A.weight`` / ``lora_B.weight`` tensors (``text_encoder.<layer>...`` for the text
    encoder's), as diffusers' loader reads them."""
    sd, seen = {}, set()
    for name, (B, A) in updates.items():
        stem = name if part(name) != PREFIX else f"{PREFIX}{name}"
        for key, t in ((f"{stem}.lora_A.weight", A), (f"{stem}.lora_B.weight", B)):
            # closed forms share one A across layers; a file needs one tensor per key
            sd[key] = t.clone() if t.untyped_storage().data_ptr() in seen else t.contiguous()
            seen.add(t.untyped_storage().data_ptr())
    return sd


def write(
    edit: Edit,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    format: EditFormat = "diffusers",
    ungated: bool = False,
    unscaled: bool = False,
) -> Path:
    """Write ``edit`` to ``path`` atomically in ``format``; returns the path.

    ``ungated``: write a gated edit's update without its gate (then it applies to every token).
    ``unscaled``: write a prompt-scaled edit's update without its scale (then it applies at multiplier 1).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        OutputError: the folder does not exist or is not writable, or ``path`` is a folder.
        EditFileError: a gated edit to ``kohya`` without ``ungated``, a prompt-scaled one without
            ``unscaled``; a layer the layout cannot name (a text-encoder layer in ``kohya``).
    """
    path = Path(path)
    if format not in get_args(EditFormat):
        raise ConfigError(f"Unknown edit file format {format!r}: choose 'diffusers' or 'kohya'.")
    if path.exists() and not path.is_dir() and not overwrite:
        raise OutputExistsError(f"{path} exists; choose another name or pass overwrite=True (CLI: --overwrite).")
    text = [name for name in edit.updates if part(name) != PREFIX]
    if text and format == "kohya":
        raise EditFileError(
            f"This edit updates the text encoder ({text[0]}), and kohya's text-encoder names read back as module "
            "paths for CLIP only. Save it with format='diffusers' (pipe.load_lora_weights reads that)."
        )
    if text and not any(name.endswith(_CLIP_ATTENTION) for name in text):
        logger.warning(
            "This edit's text-encoder layers (e.g. %s) include none of CLIP's attention projections (%s): diffusers' "
            "pipe.load_lora_weights converts a text-encoder LoRA only by those names and refuses this file; "
            "Edit.load(path).apply(pipe) reads it.",
            text[0],
            ", ".join(_CLIP_ATTENTION),
        )
    for field, opted_in in (("gate", ungated), ("prompt_scale", unscaled)):
        if getattr(edit, field) is not None and (opted_in or format == "kohya"):
            edit = _without(edit, field, opted_in)
    meta = {"format": "pt"}
    if format == "kohya":
        tensors = lora_layouts.to_kohya(state_dict(edit.updates))
    else:
        meta[LORA_META_KEY] = json.dumps(_lora_metadata(edit.updates))
        tensors = {**state_dict(edit.updates), **gate_tensors(edit.gate), **prompt_scale_tensors(edit.prompt_scale)}
    meta[META_KEY] = json.dumps({**edit.metadata(), CHECKSUM: tensors_sha256(tensors)})
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def _lora_metadata(updates: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Any]:
    """diffusers' ``lora_adapter_metadata``, per part (U-Net, text encoders): the most common rank, alpha = rank."""
    meta: dict[str, Any] = {}
    for prefix in sorted({part(name) for name in updates}):
        ranks = {name.removeprefix(prefix): B.shape[1] for name, (B, _) in updates.items() if part(name) == prefix}
        r = max(set(ranks.values()), key=list(ranks.values()).count)
        pattern = {name: rank for name, rank in ranks.items() if rank != r}
        meta |= {
            f"{prefix}r": r,
            f"{prefix}lora_alpha": r,
            f"{prefix}rank_pattern": pattern,
            f"{prefix}alpha_pattern": pattern,
            f"{prefix}target_modules": sorted(ranks),
        }
    return meta


# What the kohya layout has no place for: Edit field -> (the opt-in that drops it, what the edit is, what its update
# does, how the file written applies it instead)
_PER_PROMPT_PARTS = {
    "gate": ("ungated", "gated", "applies only to tokens near", "to EVERY token"),
    "prompt_scale": ("unscaled", "scaled per prompt", "is weighted by nearness to", "in full to EVERY prompt"),
}


def _without(edit: Edit, field: str, opted_in: bool) -> Edit:
    """``edit`` without its gate or prompt scale (``field``), for a file that would apply the update everywhere."""
    flag, kind, acts, instead = _PER_PROMPT_PARTS[field]
    concepts = ", ".join(map(repr, edit.concepts)) or "the erased concept"
    if not opted_in:
        raise EditFileError(
            f"This {edit.method} edit is {kind}: its update {acts} the erased concept(s), and the kohya layout has "
            f"no place for that, so ComfyUI, AUTOMATIC1111 and diffusers would apply it {instead.lower()}. Keep it in "
            f"erasekit's layout and use erasekit's loader (Edit.load(path).apply(pipe)), or pass {flag}=True (CLI: "
            f"--{flag}) to export the update without it."
        )
    logger.warning(
        "DROPPING THE %s of this %s edit (%s export): in the file written, the update applies %s, not only near %s, "
        "so prompts without the concept change too.",
        field.replace("_", " ").upper(), edit.method, flag, instead, concepts,
    )  # fmt: skip
    note = f"exported without its {field.replace('_', ' ')} ({flag}): the update applies {instead.lower()}"
    return dataclasses.replace(edit, **{field: None}, info={**edit.info, f"{field}_dropped": note})


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fields of the :class:`Edit` stored in ``path`` (``Edit(**read(path))``).

    Raises:
        MissingWeightsError: no such file.
        EditFileError: a folder, not safetensors, truncated, tensors that do not match the stored
            sha256 (corrupt bytes), or no ``lora_A``/``lora_B`` pairs.
        NumericalError: the file holds NaN or Inf.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.safetensors"))
        what = "it holds no .safetensors file"
        if found:
            what = (
                f"it holds {', '.join(found[:8])}{' ...' if len(found) > 8 else ''}: give one, e.g. {path / found[0]}"
            )
        raise EditFileError(f"{path} is a folder, not an edit file; {what}.")
    if not path.is_file():
        raise MissingWeightsError(f"Edit file {path} not found. Make one with `erasekit erase ... -o {path}`.")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise EditFileError(
            f"{path} is not a readable safetensors file ({e}); it may be truncated or another format. "
            "erasekit edits and LoRA files are safetensors: re-create or re-download it."
        ) from e
    m = _erasekit_metadata(meta, tensors, path)
    updates, kind = _updates(tensors, meta, path)
    if m is None:
        logger.warning(
            "%s is a %s LoRA file without erasekit metadata: method, concepts and fingerprint unknown.", path, kind
        )
        return {"updates": updates, "info": {"metadata_missing": True, "layout": kind}}
    gate = None
    if "gate" in m:
        parts = {k.removeprefix(GATE_PREFIX): v for k, v in tensors.items() if k.startswith(GATE_PREFIX)}
        if not {"basis", "mean"} <= set(parts) <= {"basis", "mean", "always"}:
            raise EditFileError(f"{path} is a gated edit but lacks its gate tensors: the file is incomplete.")
        gate = TokenGate(parts["basis"], parts["mean"], float(m["gate"]["sharpness"]), float(m["gate"]["threshold"]),
                         parts.get("always"), bool(m["gate"].get("whole_prompt", False)))  # fmt: skip
    scale = None
    if "prompt_scale" in m:
        parts = {k.removeprefix(SCALE_PREFIX): v for k, v in tensors.items() if k.startswith(SCALE_PREFIX)}
        if set(parts) != {"states", "words"}:
            raise EditFileError(f"{path} is a prompt-scaled edit but lacks its scale tensors: the file is incomplete.")
        scalars = m["prompt_scale"]
        scale = PromptScale(parts["states"], parts["words"].bool(), scalars["metric"], float(scalars["threshold"]))
    return {
        "updates": updates,
        "method": m.get("method", "unknown"),
        "config": m.get("config", {}),
        "concepts": m.get("concepts", []),
        "guides": m.get("guides", []),
        "preserve": m.get("preserve", []),
        "fingerprint": m.get("fingerprint"),
        "info": {**m.get("info", {}), "erasekit_version": m.get("erasekit_version")},
        "gate": gate,
        "prompt_scale": scale,
    }


def _erasekit_metadata(meta: dict[str, str], tensors: dict[str, Tensor], path: Path) -> dict[str, Any] | None:
    """erasekit's metadata (None if absent), after checking the tensors against the sha256 stored at save."""
    if META_KEY not in meta:
        return None
    try:
        m = json.loads(meta[META_KEY])
    except json.JSONDecodeError as e:
        raise EditFileError(f"{path} has unreadable erasekit metadata ({e}): the file is corrupt. Re-create it.") from e
    if CHECKSUM in m and tensors_sha256(tensors) != m[CHECKSUM]:
        raise EditFileError(
            f"{path} is corrupt: its tensors do not match the sha256 stored when it was written, so some bytes changed "
            "since (disk, copy or download error). Re-create it with `erasekit erase`, or copy it again."
        )
    return m


def _updates(tensors: dict[str, Tensor], meta: dict[str, str], path: Path) -> tuple[dict, str]:
    """``{layer: (B, A)}`` from any layout :mod:`erasekit.lora_layouts` reads, alpha/rank folded into B."""
    lora_meta = json.loads(meta[LORA_META_KEY]) if LORA_META_KEY in meta else {}
    lora = {k: v for k, v in tensors.items() if not k.startswith((GATE_PREFIX, SCALE_PREFIX))}
    factors, kind = lora_layouts.read_factors(lora, lora_meta, path)
    updates = {}
    for name, (B, A, alpha) in factors.items():
        scale = 1.0 if alpha is None else alpha / A.shape[0]
        updates[name] = ((B.float() * scale if scale != 1.0 else B.float()).contiguous(), A.float().contiguous())
    if not all(torch.isfinite(t).all() for pair in updates.values() for t in pair):
        raise NumericalError(f"{path} holds NaN or Inf weights: the edit is corrupt. Re-create it.")
    return updates, kind
