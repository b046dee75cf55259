"""The LoRA layouts of a U-Net and text encoders that erasekit reads and writes, converted by diffusers' own
converters.

A layer is named by its module path in the U-Net (``down_blocks.0...attn2.to_k``), or in a text encoder
with that encoder's prefix (``text_encoder.<layer>``, ``text_encoder_2.<layer>``), as diffusers' loader
spells the text-encoder parts of a LoRA file.

Read (every layout ``pipe.load_lora_weights`` reads, and peft's ``adapter_model`` files of a U-Net):

- ``peft``: ``unet.<layer>.lora_A.weight`` ``[r, d_in]`` / ``lora_B.weight`` ``[d_out, r]``, alpha from
  diffusers' ``lora_adapter_metadata`` (erasekit's own layout, and what diffusers saves today);
- ``diffusers training-script``: ``unet.<layer>.lora.down.weight`` / ``lora.up.weight`` and the older
  ``unet.<...>.processor.to_k_lora.down.weight`` (diffusers' training scripts before peft);
- ``kohya``: ``lora_unet_<layer, "." as "_">.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha``
  (kohya's sd-scripts, AUTOMATIC1111, ComfyUI); its text-encoder modules (``lora_te1_*``) are
  skipped with a warning, since their names map back to module paths for CLIP only. Layer names
  come back through diffusers' ``_convert_non_diffusers_lora_to_diffusers``; LDM block names
  (``input_blocks_4_1_...``, SDXL LoRAs trained by sd-scripts) through
  ``_maybe_map_sgm_blocks_to_diffusers`` with two layers per block, as in every SD 1.x, 2.x and XL U-Net;
- ``peft adapter_model``: ``base_model.model.<layer>.lora_A.weight``, alpha from the
  ``adapter_config.json`` beside the file (read by peft's ``LoraConfig``).

Written: ``peft`` (the default; text-encoder layers under ``text_encoder.``) and ``kohya`` (U-Net
layers only: diffusers' ``convert_state_dict_to_kohya``, scale 1, see :func:`to_kohya`).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import torch
from diffusers.loaders.lora_conversion_utils import (
    _convert_non_diffusers_lora_to_diffusers,
    _maybe_map_sgm_blocks_to_diffusers,
)
from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya, convert_unet_state_dict_to_peft
from torch import Tensor

from .errors import EditFileError

logger = logging.getLogger(__name__)

UNET, PEFT_ADAPTER = "unet.", "base_model.model."
KOHYA_UNET, KOHYA_TE = "lora_unet_", ("lora_te_", "lora_te1_", "lora_te2_")
TEXT_ENCODERS = ("text_encoder.", "text_encoder_2.")
_FACTORS = {  # how each layout names the two factors, for messages
    "kohya": ("lora_down", "lora_up"),
    "diffusers training-script": ("lora.down", "lora.up"),
    "peft": ("lora_A", "lora_B"),
    "peft adapter_model": ("lora_A", "lora_B"),
}
_PEFT_KEY = re.compile(r"^(?P<layer>.+)\.lora_(?P<factor>[AB])\.weight$")
_SGM = ("input_blocks", "middle_block", "output_blocks")
_SD_UNET = SimpleNamespace(layers_per_block=2)  # every SD 1.x / 2.x / XL U-Net

# layer -> (B [d_out, r], A [r, d_in], alpha or None for alpha = rank)
Factors = dict[str, tuple[Tensor, Tensor, float | None]]


def layout(keys: list[str]) -> str:
    """The layout of a LoRA file's tensor keys (one of the keys of ``_FACTORS``)."""
    if any(k.startswith((KOHYA_UNET, *KOHYA_TE)) for k in keys):
        return "kohya"
    if any(k.startswith(PEFT_ADAPTER) for k in keys):
        return "peft adapter_model"
    if any(".lora.down." in k or "_lora.down." in k for k in keys):
        return "diffusers training-script"
    return "peft"


# ---- writing ---------------------------------------------------------------------------------
def to_kohya(peft: dict[str, Tensor]) -> dict[str, Tensor]:
    """``unet.<layer>.lora_A.weight`` tensors as kohya's ``lora_unet_*`` ones, with scale alpha / rank 1.

    Every module gets one alpha, the most common rank, and a module of another rank ``r`` has its
    ``lora_up`` multiplied by ``r / alpha``: AUTOMATIC1111 and ComfyUI scale each module by its own
    ``alpha / r``, but diffusers applies a single alpha to a kohya file (its per-module alphas keep
    the old attention-processor names and match no module), so per-module alphas would mis-scale
    the modules of the less common ranks there.

    Raises:
        EditFileError: a layer whose kohya name diffusers' converter does not read back as the same layer.
    """
    sd = convert_state_dict_to_kohya(peft)
    modules = sorted({k.split(".")[0] for k in sd})
    ranks = {m: sd[f"{m}.lora_down.weight"].shape[0] for m in modules}
    alpha = Counter(ranks.values()).most_common(1)[0][0] if ranks else 0
    for m, rank in ranks.items():
        sd[f"{m}.alpha"] = torch.tensor(float(alpha), dtype=torch.float32)
        if rank != alpha:
            sd[f"{m}.lora_up.weight"] = (sd[f"{m}.lora_up.weight"] * (rank / alpha)).contiguous()
    layers = {_PEFT_KEY.match(k)["layer"].removeprefix(UNET) for k in peft}
    for module in modules:
        back = kohya_layer(module)
        if back not in layers:
            raise EditFileError(
                f"A layer of this edit has no kohya name that reads back as itself ({module} is read as {back}), "
                "so the kohya layout would put its update elsewhere. Export it with format='diffusers'."
            )
    return sd


def kohya_layer(module: str) -> str:
    """The U-Net module path of a kohya LoRA module name (``lora_unet_down_blocks_0_..._to_k``)."""
    sd = {f"{module}.lora_down.weight": torch.zeros(1, 1), f"{module}.lora_up.weight": torch.zeros(1, 1)}
    if any(p in module for p in _SGM):
        sd = _maybe_map_sgm_blocks_to_diffusers(sd, _SD_UNET)
    sd, _ = _convert_non_diffusers_lora_to_diffusers(sd)
    key = next(k for k in convert_unet_state_dict_to_peft(sd) if ".lora_A." in k)
    return key.removeprefix(UNET).split(".lora_A.")[0]


# ---- reading ---------------------------------------------------------------------------------
def read_factors(tensors: dict[str, Tensor], lora_meta: dict, path: Path) -> tuple[Factors, str]:
    """The U-Net and text-encoder factors in ``tensors`` and the file's layout name.

    Raises:
        EditFileError: only kohya text-encoder weights, unknown keys (DoRA, LoHa, biases), a factor
            without its partner, or no LoRA pairs at all.
    """
    kind = layout(list(tensors))
    if kind == "kohya":
        unet = {k: v for k, v in tensors.items() if k.startswith(KOHYA_UNET)}
        text = [k for k in tensors if k.startswith(KOHYA_TE)]
        factors = _kohya(unet, path)
    else:
        text = []  # read below, under their "text_encoder." names
        encoders = {k: v for k, v in tensors.items() if k.startswith(TEXT_ENCODERS)}
        prefix = PEFT_ADAPTER if kind == "peft adapter_model" else UNET
        if not any(k.startswith(prefix) for k in tensors) and not encoders:
            prefix = ""  # a bare U-Net's LoRA (unet.save_attn_procs, peft on the U-Net alone)
        unet = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix) and k not in encoders}
        factors = _peft(convert_unet_state_dict_to_peft(unet), path, kind)
        factors.update(_peft(convert_unet_state_dict_to_peft(encoders), path, kind))
        alpha = _adapter_alpha(path) if kind == "peft adapter_model" else _metadata_alpha(lora_meta)
        factors = {name: (B, A, alpha(name, A.shape[0])) for name, (B, A, _) in factors.items()}
    if not factors and text:
        raise EditFileError(
            f"{path} is a {kind} LoRA of the text encoder only ({len(text)} tensors like {text[0]}): erasekit reads "
            "kohya text-encoder modules by name for CLIP only. Load it with pipe.load_lora_weights instead."
        )
    if not factors:
        raise EditFileError(
            f"{path} holds no LoRA pairs (keys like 'unet.<layer>.lora_A.weight' or "
            "'text_encoder.<layer>.lora_A.weight'): it is not an edit or LoRA file."
        )
    if text:
        logger.warning(
            "%s also holds a kohya text-encoder LoRA (%d tensors): erasekit reads kohya's U-Net modules only, so that "
            "part is ignored. Load the file with pipe.load_lora_weights to use it whole.",
            path,
            len(text),
        )
    down, up = _FACTORS[kind]
    for name, (B, A, _) in factors.items():
        if A.ndim != 2 or B.ndim != 2:
            raise EditFileError(
                f"{path} ({kind} layout) updates {name} with {A.ndim}-d weights (a convolution): an erasekit edit "
                "holds updates of linear layers only. Load the file with pipe.load_lora_weights instead."
            )
        if A.shape[0] != B.shape[1]:
            raise EditFileError(
                f"{path} ({kind} layout) is corrupt: {name} has {down} of rank {A.shape[0]} {list(A.shape)} but "
                f"{up} of rank {B.shape[1]} {list(B.shape)}; the two must share the rank. Re-create the file."
            )
    return factors, kind


def _kohya(tensors: dict[str, Tensor], path: Path) -> Factors:
    modules = sorted({k.split(".")[0] for k in tensors})
    parts = ("lora_down.weight", "lora_up.weight", "alpha")
    _refuse_unknown(sorted(set(tensors) - {f"{m}.{p}" for m in modules for p in parts}), path, "kohya")
    factors: Factors = {}
    for module in modules:
        down, up = tensors.get(f"{module}.lora_down.weight"), tensors.get(f"{module}.lora_up.weight")
        if down is None or up is None:
            raise EditFileError(f"{path} (kohya layout) has {module} without its lora_down or lora_up: incomplete.")
        try:
            name = kohya_layer(module)
        except (ValueError, KeyError, StopIteration) as e:
            raise EditFileError(f"{path} (kohya layout): diffusers cannot map the module name {module} ({e}).") from e
        alpha = tensors.get(f"{module}.alpha")
        factors[name] = (up, down, None if alpha is None else float(alpha))
    return factors


def _peft(tensors: dict[str, Tensor], path: Path, kind: str) -> Factors:
    pairs: dict[str, dict[str, Tensor]] = {}
    unknown = []
    for key, t in tensors.items():
        m = _PEFT_KEY.match(key)
        if m is None:
            unknown.append(key)
        else:
            pairs.setdefault(m["layer"], {})[m["factor"]] = t
    if not pairs:
        return {}
    _refuse_unknown(unknown, path, kind)
    down, up = _FACTORS[kind]
    for name, pair in pairs.items():
        if len(pair) != 2:
            raise EditFileError(
                f"{path} ({kind} layout) has {name} without its {up if 'A' in pair else down}: incomplete."
            )
    return {name: (pair["B"], pair["A"], None) for name, pair in pairs.items()}


def _refuse_unknown(keys: list[str], path: Path, kind: str) -> None:
    if keys:
        raise EditFileError(
            f"{path} ({kind} layout) holds {len(keys)} tensor(s) that are not plain LoRA factors (e.g. {keys[0]}): "
            "DoRA, LoHa, LoKr and LoRAs with biases are not erasekit edits. Load the file with pipe.load_lora_weights."
        )


def _metadata_alpha(lora: dict):
    """alpha per layer from diffusers' ``lora_adapter_metadata`` (keys prefixed by the part: ``unet.``,
    ``text_encoder.``; a text-encoder layer's name carries its part's prefix, a U-Net layer's none)."""

    def alpha(name: str, rank: int) -> float:
        part = next((p for p in TEXT_ENCODERS if name.startswith(p)), UNET)
        layer = name.removeprefix(part)
        return float(lora.get(f"{part}alpha_pattern", {}).get(layer, lora.get(f"{part}lora_alpha", rank)))

    return alpha


def _adapter_alpha(path: Path):
    """alpha per layer from peft's ``adapter_config.json`` beside ``path`` (rsLoRA folded in)."""
    if not (path.parent / "adapter_config.json").is_file():
        logger.warning("%s has no adapter_config.json beside it: taking alpha = rank (scale 1).", path)
        return lambda name, rank: None
    from peft import LoraConfig
    from peft.utils.other import get_pattern_key

    cfg = LoraConfig.from_pretrained(str(path.parent))

    def alpha(name: str, rank: int) -> float:
        a = float(cfg.alpha_pattern.get(get_pattern_key(list(cfg.alpha_pattern), name), cfg.lora_alpha))
        return a * math.sqrt(rank) if cfg.use_rslora else a  # rsLoRA scales by alpha / sqrt(r)

    return alpha
