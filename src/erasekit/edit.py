"""Edit: the result of every method, a set of per-layer low-rank updates ``ΔW = B @ A``.

A layer is an ``nn.Linear`` of the U-Net, named by its module path there, or of a text encoder,
named ``text_encoder.<path>`` (``text_encoder_2.<path>``) as diffusers' LoRA files name it.

An edit never touches a model on disk. ``apply`` adds the updates in place and keeps the original
weights, ``remove`` puts those originals back (bit-identical: ``W + ΔW − ΔW`` is not ``W`` in
floating point), and several edits compose. ``save`` and ``load`` go through
:mod:`erasekit.edit_file` (the LoRA layouts diffusers reads, with erasekit's metadata).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import edit_file
from ._version import __version__
from .edit_file import EditFormat, part
from .errors import ConfigError, EditFileError, EditStateError, FingerprintMismatchError
from .gate import TokenGate, sync_processors
from .prompt_scale import PromptScale, sync_hooks
from .targets import denoiser, find_targets

logger = logging.getLogger(__name__)

_APPLIED = "_erasekit_applied"  # on a U-Net: the applied edits and the weights they replaced (text encoders' too)


@dataclass
class Edit:
    """Per-layer updates ``ΔW = B @ A`` plus what made them.

    Attributes:
        updates: layer name -> ``(B [d_out, r], A [r, d_in])``, float32 on CPU (``text_encoder.``-prefixed
            names for text-encoder layers).
        method: registry name of the method.
        config: the method's config as a dict.
        concepts, guides, preserve: the erased concepts, their guides and the preserve set.
        fingerprint: hash of the base model's original target weights, the U-Net's cross-attention K/V
            (None: unknown); an edit of the text encoder alone is checked against those too.
        info: anything else worth keeping (timings, condition numbers, epoch, versions).
        candidates: for iterative methods, the edit after every epoch (not saved).
        gate: for gated methods (ACE), the token gate: the update of a token ``c`` is
            ``g(c) · B A c``, applied by an attention processor instead of merged into the weights
            (see :mod:`erasekit.gate`). Plain diffusers loads only ``B A``, for every token.
        prompt_scale: for edits scaled per prompt, the multiplier ``m`` of the whole update, read
            from the prompt's token states: every layer adds ``m · B A x`` from a forward hook instead
            of merging ``B A`` (see :mod:`erasekit.prompt_scale`). U-Net layers only, and not with a
            gate. Plain diffusers loads only ``B A``, at ``m = 1``.
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
    prompt_scale: PromptScale | None = None

    def __post_init__(self) -> None:
        if self.prompt_scale is None:
            return
        if self.gate is not None:
            raise ConfigError("An edit is either gated per token or scaled per prompt, not both.")
        text = [name for name in self.updates if edit_file.part(name) != edit_file.PREFIX]
        if text:
            raise ConfigError(
                f"A prompt-scaled edit reads its multiplier from the U-Net's input, so it cannot hold text-encoder "
                f"layers ({text[0]}). Drop them, or drop the prompt scale."
            )

    def __repr__(self) -> str:  # the tensors stay out: a repr is for reading
        ranks = self.ranks
        names = self.concepts if len(self.concepts) <= 4 else [*self.concepts[:3], f"... {len(self.concepts)} in all"]
        return (
            f"Edit(method={self.method!r}, concepts={names!r}, layers={len(self.updates)}, "
            f"rank={ranks[0] if len(ranks) == 1 else ranks}{', gated' * (self.gate is not None)}"
            f"{', prompt-scaled' * (self.prompt_scale is not None)}, id={self.id!r})"
        )

    # ---- the update itself -------------------------------------------------------------------
    def delta(self, name: str) -> Tensor:
        """Dense ``ΔW`` of one layer, ``[d_out, d_in]`` float32."""
        B, A = self.updates[name]
        return B @ A

    @property
    def ranks(self) -> list[int]:
        """The distinct ranks of the layers' updates, ascending."""
        return sorted({B.shape[1] for B, _ in self.updates.values()})

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
                h.update(name.encode() + t.contiguous().numpy().tobytes())  # one update of both: the same hash
        extra = {**edit_file.gate_tensors(self.gate), **edit_file.prompt_scale_tensors(self.prompt_scale)}
        for name, t in sorted(extra.items()):
            h.update(name.encode() + t.numpy().tobytes())
        return h.hexdigest()[:16]

    # ---- applying ----------------------------------------------------------------------------
    @torch.no_grad()
    def apply(self, pipe: Any, *, force: bool = False) -> Edit:
        """Add every ``ΔW`` to ``pipe.unet`` (and ``pipe.text_encoder``) in place; returns self.

        Raises:
            FingerprintMismatchError: the pipeline is not the base model this edit was made for
                (``force=True`` applies it anyway).
            EditStateError: this edit is already applied, or the pipeline holds LoRA adapters
                (``pipe.load_lora_weights``: call ``pipe.unload_lora_weights()`` first).
            EditFileError: the edit names layers the pipeline does not have (text-encoder layers need a
                pipeline, not a bare U-Net).
            ConfigError: ``pipe`` is None.
        """
        unet = _unet(pipe, "apply")
        stack = _applied(unet)
        if any(edit.id == self.id for edit, _ in stack):
            raise EditStateError(
                "This edit is already applied to this pipeline; applying it twice would double it. "
                "Call edit.remove(pipe) first, or reload the base model."
            )
        targets, modules = find_targets(unet), _linears(pipe, sorted(self.updates))
        missing = sorted(set(self.updates) - set(modules))
        shapes = {n: (B.shape[0], A.shape[1]) for n, (B, A) in self.updates.items() if n in modules}
        wrong = [n for n, shape in shapes.items() if shape != modules[n].weight.shape]
        if missing or wrong:
            example = missing[0] if missing else f"{wrong[0]} has another shape"
            raise EditFileError(
                f"The edit does not fit this pipeline ({len(missing)} missing layer(s), {len(wrong)} of another shape; "
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
        _sync_hooks(unet)
        return self

    @torch.no_grad()
    def remove(self, pipe: Any) -> Edit:
        """Restore the weights this edit changed, bit-identical to before ``apply``; returns self.

        Edits applied after this one are re-applied on top, so the pipeline ends as if this edit
        had never been applied.

        Raises:
            EditStateError: this edit is not applied to ``pipe``, or LoRA adapters were loaded since.
        """
        unet = _unet(pipe, "remove")
        stack = _applied(unet)
        ids = [edit.id for edit, _ in stack]
        if self.id not in ids:
            raise EditStateError("This edit is not applied to this pipeline, so there is nothing to remove.")
        at = ids.index(self.id)
        later = [edit for edit, _ in stack[at + 1 :]]
        modules = _linears(pipe, sorted({n for edit, _ in stack[at:] for n in edit.updates}))
        for _, originals in reversed(stack[at:]):
            for name, W in originals.items():
                modules[name].weight.copy_(W)
        del stack[at:]
        for edit in later:
            stack.append((edit, edit._add(modules)))
        _sync_hooks(unet)
        return self

    def _add(self, modules: dict[str, nn.Linear]) -> dict[str, Tensor]:
        """Merge ``ΔW`` into the weights (nothing for a gated or prompt-scaled edit: its processor or hooks add
        it); the originals."""
        originals: dict[str, Tensor] = {}
        if self.gate is not None or self.prompt_scale is not None:
            return originals
        for name, (B, A) in self.updates.items():
            W = modules[name].weight
            originals[name] = W.detach().clone()
            W.copy_((W.float() + B.to(W.device) @ A.to(W.device)).to(W.dtype))
        return originals

    def summary(self, *, brief: bool = False) -> dict[str, Any]:
        """What every command prints about an edit, JSON-able.

        ``brief``: only what identifies it (method, concepts, fingerprint, id), for run records.
        """
        ident = {"method": self.method, "concepts": self.concepts, "fingerprint": self.fingerprint, "id": self.id}
        if brief:
            return ident
        gate = None if self.gate is None else {**self.gate.summary(), "note": self.info.get("gate_note", "")}
        return {
            **ident,
            "guides": self.guides,
            "preserve": self.preserve,
            "layers": len(self.updates),
            "ranks": self.ranks,
            "parameters": self.n_params,
            "gate": gate,
            "prompt_scale": None if self.prompt_scale is None else self.prompt_scale.summary(),
            "config": self.config,
            "info": self.info,
        }

    # ---- files -------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
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
            **({"prompt_scale": self.prompt_scale.scalars()} if self.prompt_scale is not None else {}),
        }

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        format: EditFormat = "diffusers",
        ungated: bool = False,
        unscaled: bool = False,
    ) -> Path:
        """Write the edit as a LoRA safetensors file, atomically (see :mod:`erasekit.edit_file`).

        ``format``: ``"diffusers"`` (erasekit's own: ``pipe.load_lora_weights`` and ``Edit.load``
        read it, the gate and prompt scale included) or ``"kohya"`` (``lora_unet_*``: AUTOMATIC1111
        and ComfyUI read it too; no place for a gate or prompt scale). ``ungated``: write a gated edit
        without its gate, so its update applies to every token. ``unscaled``: write a prompt-scaled
        edit without its prompt scale, so its update applies at multiplier 1 to every prompt.

        Raises:
            OutputExistsError: ``path`` exists and ``overwrite`` is False.
            OutputError: the folder does not exist or is not writable, or ``path`` is a folder.
            EditFileError: a gated edit to ``"kohya"`` without ``ungated=True``, a prompt-scaled one
                without ``unscaled=True``.
        """
        return edit_file.write(self, path, overwrite=overwrite, format=format, ungated=ungated, unscaled=unscaled)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Edit:
        """Read an edit (or a LoRA of a U-Net in a layout diffusers reads) from a safetensors file.

        Layouts: erasekit's (peft-style), kohya, diffusers' training scripts, peft ``adapter_model``
        (see :mod:`erasekit.lora_layouts`). A LoRA without erasekit metadata loads with a warning
        and no fingerprint to check.

        Raises:
            MissingWeightsError: no such file.
            EditFileError: not safetensors, truncated, no LoRA pairs, only text-encoder weights,
                or factors whose ranks differ.
            NumericalError: the file holds NaN or Inf.
        """
        return cls(**edit_file.read(path))


def applied_edits(unet: nn.Module) -> list[Edit]:
    """Every edit applied to ``unet``, oldest first: merged, gated and prompt-scaled ones alike."""
    return [edit for edit, _ in _applied(unet)]


def applied_gates(unet: nn.Module) -> list[tuple[TokenGate, dict[str, tuple[Tensor, Tensor]]]]:
    """``(gate, updates)`` of every gated edit applied to ``unet``, oldest first."""
    return [(edit.gate, edit.updates) for edit, _ in _applied(unet) if edit.gate is not None]


def _sync_hooks(unet: nn.Module) -> None:
    """The gates' attention processors and the prompt scales' hooks, after the applied edits changed."""
    gated = applied_gates(unet)
    if gated or unet.__dict__.get("_erasekit_processors"):
        sync_processors(unet, gated)
    sync_hooks(unet, [(edit.prompt_scale, edit.updates) for edit, _ in _applied(unet) if edit.prompt_scale is not None])


def _unet(pipe: Any, verb: str) -> nn.Module:
    if pipe is None:
        raise ConfigError(f"edit.{verb}(pipe) needs a pipeline, got None: pass one from erasekit.load_pipeline().")
    return denoiser(pipe)


def base_weights(unet: nn.Module) -> dict[str, Tensor]:
    """The base model's weights of the layers that applied edits have changed."""
    base: dict[str, Tensor] = {}
    for _, originals in _applied(unet):
        for name, W in originals.items():
            base.setdefault(name, W)  # the oldest saved original is the base weight
    return base


def _linears(pipe: Any, names: Sequence[str] = ()) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of the U-Net by module path (the cross-attention K/V of the closed forms, the
    self-attention / feed-forward layers of ESD-u), and, when ``names`` has text-encoder layers, those of
    the pipeline's text encoders as ``text_encoder.<path>``.

    Raises EditStateError if peft wraps one of ``names`` (``name.base_layer``): a LoRA adapter is loaded.
    """
    parts = {part(n) for n in names} - {edit_file.PREFIX}
    owners = {"": denoiser(pipe), **{p: getattr(pipe, p[:-1], None) for p in parts}}  # a bare U-Net has none
    modules = {
        prefix + name: m
        for prefix, owner in owners.items()
        if isinstance(owner, nn.Module)
        for name, m in owner.named_modules()
        if isinstance(m, nn.Linear)
    }
    wrapped = [n for n in names if f"{n}.base_layer" in modules]
    if wrapped:
        raise EditStateError(
            f"The pipeline holds LoRA adapters (from pipe.load_lora_weights) on {len(wrapped)} layer(s) this edit "
            f"changes (e.g. {wrapped[0]}). Call pipe.unload_lora_weights() first, then apply or remove the edit; "
            "to use an erasekit edit file, apply it with Edit.load(path).apply(pipe) instead of load_lora_weights."
        )
    return modules


def _applied(unet: nn.Module) -> list[tuple[Edit, dict[str, Tensor]]]:
    """The edits applied to ``unet``, oldest first, each with the weights it replaced."""
    return unet.__dict__.setdefault(_APPLIED, [])
