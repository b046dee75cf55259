"""Edit: the result of every method, a set of per-layer low-rank updates ``ΔW = B @ A``.

An edit never touches a model on disk. ``apply`` adds the updates in place and keeps the original
weights, ``remove`` puts those originals back (bit-identical: ``W + ΔW − ΔW`` is not ``W`` in
floating point), and several edits compose. ``save`` writes a safetensors file in the key layout
``pipe.load_lora_weights`` reads (``unet.<layer>.lora_A.weight`` / ``lora_B.weight``, alpha = rank),
with erasekit's own metadata (method, config, concepts, base fingerprint) beside diffusers'.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from .errors import (
    EditFileError,
    EditStateError,
    FingerprintMismatchError,
    MissingWeightsError,
    NumericalError,
    OutputError,
    OutputExistsError,
)
from .gate import TokenGate, sync_processors
from .targets import find_targets

logger = logging.getLogger(__name__)

PREFIX = "unet."
META_KEY = "erasekit"
GATE_PREFIX = "erasekit_lora_gate."  # diffusers wants "lora" in every key, and reads only "unet." ones
LORA_META_KEY = "lora_adapter_metadata"  # diffusers' key, read by load_lora_weights
_APPLIED = "_erasekit_applied"  # on a U-Net: the applied edits and the weights they replaced


@dataclass
class Edit:
    """Per-layer updates ``ΔW = B @ A`` plus what made them.

    Attributes:
        updates: layer name -> ``(B [d_out, r], A [r, d_in])``, float32 on CPU.
        method: registry name of the method.
        config: the method's config as a dict.
        concepts, guides, preserve: the erased concepts, their guides and the preserve set.
        fingerprint: hash of the base model's original target weights (None: unknown).
        info: anything else worth keeping (timings, condition numbers, epoch, versions).
        candidates: for iterative methods, the edit after every epoch (not saved).
        gate: for gated methods (ACE), the token gate: the update of a token ``c`` is
            ``g(c) · B A c``, applied by an attention processor instead of merged into the weights
            (see :mod:`erasekit.gate`). Plain diffusers loads only ``B A``, for every token.
    """

    updates: dict[str, tuple[Tensor, Tensor]]
    method: str = "unknown"
    config: dict[str, Any] = field(default_factory=dict)
    concepts: list[str] = field(default_factory=list)
    guides: list[str] = field(default_factory=list)
    preserve: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    candidates: Sequence[Edit] = field(default_factory=tuple, repr=False)
    gate: TokenGate | None = None

    # ---- the update itself -------------------------------------------------------------------
    def delta(self, name: str) -> Tensor:
        """Dense ``ΔW`` of one layer, ``[d_out, d_in]`` float32."""
        B, A = self.updates[name]
        return B @ A

    @property
    def n_params(self) -> int:
        return sum(B.numel() + A.numel() for B, A in self.updates.values())

    @cached_property
    def id(self) -> str:
        """Content hash of the updates and what made them (not ``info``): two loads of one file share it."""
        what = {k: v for k, v in self.metadata().items() if k not in ("info", "erasekit_version")}
        h = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode())
        for name in sorted(self.updates):
            for t in self.updates[name]:
                h.update(name.encode())
                h.update(t.contiguous().numpy().tobytes())
        for name, t in sorted(self._gate_tensors().items()):
            h.update(name.encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()[:16]

    # ---- applying ----------------------------------------------------------------------------
    @torch.no_grad()
    def apply(self, pipe: Any, *, force: bool = False) -> Edit:
        """Add every ``ΔW`` to ``pipe.unet`` in place; returns self.

        Raises:
            FingerprintMismatchError: the pipeline is not the base model this edit was made for
                (``force=True`` applies it anyway).
            EditStateError: this edit is already applied.
            EditFileError: the edit names layers the U-Net does not have.
        """
        unet = _unet(pipe)
        stack = _applied(unet)
        if any(edit.id == self.id for edit, _ in stack):
            raise EditStateError(
                "This edit is already applied to this pipeline; applying it twice would double it. "
                "Call edit.remove(pipe) first, or reload the base model."
            )
        targets, modules = find_targets(unet), _linears(unet)
        missing = sorted(set(self.updates) - set(modules))
        wrong = [
            n
            for n, (B, A) in self.updates.items()
            if n in modules and (B.shape[0], A.shape[1]) != modules[n].weight.shape
        ]
        if missing or wrong:
            example = missing[0] if missing else f"{wrong[0]} has another shape"
            raise EditFileError(
                f"The edit does not fit this U-Net ({len(missing)} missing layer(s), {len(wrong)} of another shape; "
                f"e.g. {example}): it was made for another architecture. Re-run the erasure on this model."
            )
        if self.fingerprint is None:
            logger.warning("Edit has no base-model fingerprint (not made by erasekit?): applying unchecked.")
        elif not force:
            found = targets.fingerprint(base_weights(unet))
            if found != self.fingerprint:
                raise FingerprintMismatchError(
                    f"This edit was made for base model {self.fingerprint}, but the pipeline's U-Net is "
                    f"{found}. Load the model the edit was made from, or pass force=True to apply it anyway "
                    "(erasekit attack: --force)."
                )
        stack.append((self, self._add(modules)))
        _sync_gates(unet)
        return self

    @torch.no_grad()
    def remove(self, pipe: Any) -> Edit:
        """Restore the weights this edit changed, bit-identical to before ``apply``; returns self.

        Edits applied after this one are re-applied on top, so the pipeline ends as if this edit
        had never been applied.

        Raises:
            EditStateError: this edit is not applied to ``pipe``.
        """
        unet = _unet(pipe)
        stack = _applied(unet)
        ids = [edit.id for edit, _ in stack]
        if self.id not in ids:
            raise EditStateError("This edit is not applied to this pipeline, so there is nothing to remove.")
        at = ids.index(self.id)
        later = [edit for edit, _ in stack[at + 1 :]]
        modules = _linears(unet)
        for _, originals in reversed(stack[at:]):
            for name, W in originals.items():
                modules[name].weight.copy_(W)
        del stack[at:]
        for edit in later:
            stack.append((edit, edit._add(modules)))
        _sync_gates(unet)
        return self

    def _add(self, modules: dict[str, nn.Linear]) -> dict[str, Tensor]:
        """Merge ``ΔW`` into the weights (nothing for a gated edit: its processor adds it); the originals."""
        originals: dict[str, Tensor] = {}
        if self.gate is not None:
            return originals
        for name, (B, A) in self.updates.items():
            W = modules[name].weight
            originals[name] = W.detach().clone()
            W.copy_((W.float() + B.to(W.device) @ A.to(W.device)).to(W.dtype))
        return originals

    # ---- files -------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        from . import __version__

        return {
            "method": self.method,
            "config": self.config,
            "concepts": self.concepts,
            "guides": self.guides,
            "preserve": self.preserve,
            "fingerprint": self.fingerprint,
            "erasekit_version": __version__,
            "info": self.info,
            **({"gate": self.gate.scalars()} if self.gate is not None else {}),
        }

    def _gate_tensors(self) -> dict[str, Tensor]:
        if self.gate is None:
            return {}
        return {f"{GATE_PREFIX}{k}": v.float() for k, v in self.gate.tensors().items()}

    def state_dict(self) -> dict[str, Tensor]:
        """``unet.<layer>.lora_A.weight`` / ``lora_B.weight`` tensors, as diffusers' loader reads them."""
        sd, seen = {}, set()
        for name, (B, A) in self.updates.items():
            for key, t in ((f"{PREFIX}{name}.lora_A.weight", A), (f"{PREFIX}{name}.lora_B.weight", B)):
                # closed forms share one A across layers; a file needs one tensor per key
                sd[key] = t.clone() if t.untyped_storage().data_ptr() in seen else t.contiguous()
                seen.add(t.untyped_storage().data_ptr())
        return sd

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the edit as a LoRA safetensors file, atomically (temp file + rename).

        Raises:
            OutputExistsError: ``path`` exists and ``overwrite`` is False.
            OutputError: the folder does not exist or is not writable.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path} exists; choose another name or pass overwrite=True (CLI: --overwrite).")
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"Output folder {folder} does not exist: create it first (mkdir -p {folder}).")
        ranks = {name: B.shape[1] for name, (B, _) in self.updates.items()}
        r = max(set(ranks.values()), key=list(ranks.values()).count) if ranks else 0
        pattern = {name: rank for name, rank in ranks.items() if rank != r}
        lora_meta = {
            f"{PREFIX}r": r,
            f"{PREFIX}lora_alpha": r,
            f"{PREFIX}rank_pattern": pattern,
            f"{PREFIX}alpha_pattern": pattern,
            f"{PREFIX}target_modules": sorted(self.updates),
        }
        meta = {"format": "pt", LORA_META_KEY: json.dumps(lora_meta), META_KEY: json.dumps(self.metadata())}
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
        except OSError as e:
            raise OutputError(f"Cannot write to {folder}: {e.strerror}. Choose a writable folder.") from e
        os.close(fd)
        try:
            save_file({**self.state_dict(), **self._gate_tensors()}, tmp, metadata=meta)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Edit:
        """Read an edit (or any peft-style LoRA of a U-Net) from a safetensors file.

        A LoRA without erasekit metadata loads with a warning and no fingerprint to check.

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
            logger.warning(
                "%s is a LoRA file without erasekit metadata: method, concepts and fingerprint unknown.", path
            )
            return cls(updates, info={"metadata_missing": True})
        m = json.loads(meta[META_KEY])
        gate = None
        if "gate" in m:
            parts = {k.removeprefix(GATE_PREFIX): v for k, v in tensors.items() if k.startswith(GATE_PREFIX)}
            if set(parts) != {"basis", "mean"}:
                raise EditFileError(f"{path} is a gated edit but lacks its gate tensors: the file is incomplete.")
            gate = TokenGate(
                parts["basis"], parts["mean"], float(m["gate"]["sharpness"]), float(m["gate"]["threshold"])
            )
        return cls(
            updates,
            method=m.get("method", "unknown"),
            config=m.get("config", {}),
            concepts=m.get("concepts", []),
            guides=m.get("guides", []),
            preserve=m.get("preserve", []),
            fingerprint=m.get("fingerprint"),
            info={**m.get("info", {}), "erasekit_version": m.get("erasekit_version")},
            gate=gate,
        )


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


def applied_gates(unet: nn.Module) -> list[tuple[TokenGate, dict[str, tuple[Tensor, Tensor]]]]:
    """``(gate, updates)`` of every gated edit applied to ``unet``, oldest first."""
    return [(edit.gate, edit.updates) for edit, _ in _applied(unet) if edit.gate is not None]


def _sync_gates(unet: nn.Module) -> None:
    gated = applied_gates(unet)
    if gated or unet.__dict__.get("_erasekit_processors"):
        sync_processors(unet, gated)


def _unet(pipe: Any) -> nn.Module:
    return pipe.unet if hasattr(pipe, "unet") else pipe


def base_weights(unet: nn.Module) -> dict[str, Tensor]:
    """The base model's weights of the layers that applied edits have changed."""
    base: dict[str, Tensor] = {}
    for _, originals in _applied(unet):
        for name, W in originals.items():
            base.setdefault(name, W)  # the oldest saved original is the base weight
    return base


def _linears(unet: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of the U-Net by module path: the cross-attention K/V of the closed forms,
    and the self-attention / feed-forward layers a fine-tuned edit (ESD-u) may update."""
    return {name: m for name, m in unet.named_modules() if isinstance(m, nn.Linear)}


def _applied(unet: nn.Module) -> list[tuple[Edit, dict[str, Tensor]]]:
    """The edits applied to ``unet``, oldest first, each with the weights it replaced."""
    return unet.__dict__.setdefault(_APPLIED, [])
