"""An :class:`~erasekit.edit.Edit` as a file: safetensors in the LoRA layout diffusers reads.

``unet.<layer>.lora_A.weight [r, d_in]`` / ``unet.<layer>.lora_B.weight [d_out, r]`` with
``lora_adapter_metadata`` (rank, alpha = rank, so the scale is 1), which
``pipe.load_lora_weights`` reads, plus erasekit's own metadata under the key ``erasekit`` (method,
config, concepts, base fingerprint). A gated edit (ACE) adds its gate as ``erasekit_lora_gate.*``
tensors: diffusers requires "lora" in every key and reads only ``unet.`` ones, so it skips them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

from .errors import EditFileError, MissingWeightsError, NumericalError, OutputExistsError
from .gate import TokenGate
from .io import atomic_write

if TYPE_CHECKING:
    from .edit import Edit

logger = logging.getLogger(__name__)

EditFormat = Literal["diffusers"]
PREFIX = "unet."
META_KEY = "erasekit"
GATE_PREFIX = "erasekit_lora_gate."  # diffusers wants "lora" in every key, and reads only "unet." ones
LORA_META_KEY = "lora_adapter_metadata"  # diffusers' key, read by load_lora_weights


def gate_tensors(gate: TokenGate | None) -> dict[str, Tensor]:
    """The gate's tensors under their file keys (none for an ungated edit)."""
    if gate is None:
        return {}
    return {f"{GATE_PREFIX}{k}": v.float() for k, v in gate.tensors().items()}


def state_dict(updates: dict[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
    """``unet.<layer>.lora_A.weight`` / ``lora_B.weight`` tensors, as diffusers' loader reads them."""
    sd, seen = {}, set()
    for name, (B, A) in updates.items():
        for key, t in ((f"{PREFIX}{name}.lora_A.weight", A), (f"{PREFIX}{name}.lora_B.weight", B)):
            # closed forms share one A across layers; a file needs one tensor per key
            sd[key] = t.clone() if t.untyped_storage().data_ptr() in seen else t.contiguous()
            seen.add(t.untyped_storage().data_ptr())
    return sd


def write(
    edit: Edit, path: str | os.PathLike[str], *, overwrite: bool = False, format: EditFormat = "diffusers"
) -> Path:
    """Write ``edit`` to ``path`` atomically; returns the path.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        OutputError: the folder does not exist or is not writable, or ``path`` is a folder.
    """
    path = Path(path)
    if path.exists() and not path.is_dir() and not overwrite:
        raise OutputExistsError(f"{path} exists; choose another name or pass overwrite=True (CLI: --overwrite).")
    ranks = {name: B.shape[1] for name, (B, _) in edit.updates.items()}
    r = max(set(ranks.values()), key=list(ranks.values()).count) if ranks else 0
    pattern = {name: rank for name, rank in ranks.items() if rank != r}
    lora_meta = {
        f"{PREFIX}r": r,
        f"{PREFIX}lora_alpha": r,
        f"{PREFIX}rank_pattern": pattern,
        f"{PREFIX}alpha_pattern": pattern,
        f"{PREFIX}target_modules": sorted(edit.updates),
    }
    meta = {"format": "pt", LORA_META_KEY: json.dumps(lora_meta), META_KEY: json.dumps(edit.metadata())}
    tensors = {**state_dict(edit.updates), **gate_tensors(edit.gate)}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The fields of the :class:`Edit` stored in ``path`` (``Edit(**read(path))``).

    Raises:
        MissingWeightsError: no such file.
        EditFileError: not safetensors, truncated, or no ``lora_A``/``lora_B`` pairs.
        NumericalError: the file holds NaN or Inf.
    """
    path = Path(path)
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
    updates = _lora_pairs(tensors, meta, path)
    if META_KEY not in meta:
        logger.warning("%s is a LoRA file without erasekit metadata: method, concepts and fingerprint unknown.", path)
        return {"updates": updates, "info": {"metadata_missing": True}}
    m = json.loads(meta[META_KEY])
    gate = None
    if "gate" in m:
        parts = {k.removeprefix(GATE_PREFIX): v for k, v in tensors.items() if k.startswith(GATE_PREFIX)}
        if set(parts) != {"basis", "mean"}:
            raise EditFileError(f"{path} is a gated edit but lacks its gate tensors: the file is incomplete.")
        gate = TokenGate(parts["basis"], parts["mean"], float(m["gate"]["sharpness"]), float(m["gate"]["threshold"]))
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
    }


def _lora_pairs(tensors: dict[str, Tensor], meta: dict[str, str], path: Path) -> dict[str, tuple[Tensor, Tensor]]:
    """``{layer: (B, A)}`` from peft-style keys, with each module's alpha/rank scale folded into B."""
    lora = json.loads(meta[LORA_META_KEY]) if LORA_META_KEY in meta else {}
    lora = {k.removeprefix(PREFIX): v for k, v in lora.items()}
    updates = {}
    for key, A in tensors.items():
        if ".lora_A." not in key:
            continue
        name = key.removeprefix(PREFIX).split(".lora_A.")[0]
        B = tensors.get(key.replace(".lora_A.", ".lora_B."))
        if B is None:
            raise EditFileError(f"{path} has {key} but no matching lora_B: the file is incomplete.")
        rank = A.shape[0]
        alpha = lora.get("alpha_pattern", {}).get(name, lora.get("lora_alpha", rank))
        updates[name] = ((B.float() * (alpha / rank)).contiguous(), A.float().contiguous())
    if not updates:
        raise EditFileError(
            f"{path} holds no LoRA pairs (keys like 'unet.<layer>.lora_A.weight'): it is not an edit or U-Net LoRA."
        )
    if not all(torch.isfinite(t).all() for pair in updates.values() for t in pair):
        raise NumericalError(f"{path} holds NaN or Inf weights: the edit is corrupt. Re-create it.")
    return updates
