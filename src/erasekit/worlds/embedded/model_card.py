"""Writes ``weights/MODEL_CARD.md`` from what training recorded (``training.json``) and the judge's metadata."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from safetensors import safe_open

from .captions import all_captions
from .quality import QUALITY_BARS, meets_bars
from .renderer import COLOR_LABELS, OBJECT_LABELS, STYLE_LABELS
from .text import CONTEXT_LENGTH


def _judge_metrics(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("metrics", "{}"))


def _value(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.3f}"


def render_model_card(
    info: dict[str, Any],
    *,
    judge_path: Path,
    n_parameters: int,
    bench: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
) -> str:
    """Returns the model card text for a U-Net exported with ``info`` (its ``training.json``).

    Args:
        info: the ``training.json`` written with the weights.
        judge_path: the judge's safetensors (its metadata holds its held-out accuracy).
        n_parameters: parameters of the U-Net.
        bench: the last ``bench/world_quality.py --record`` result, if any.
        previous: what was measured on the weights these replace (``previous_release.json``), if any.
    """
    cfg, spec = info.get("config", {}), info.get("spec", {})
    history = info.get("history", [])
    last = history[-1] if history else {}
    judge = _judge_metrics(judge_path)
    lines = [
        "# erasekit embedded world: model card",
        "",
        "A small text-to-image diffusion model trained from scratch on a procedural world, shipped with erasekit so",
        "that concept erasure can be run, attacked and scored offline on a CPU. Not a general image model.",
        "",
        "## Model",
        f"- diffusers `UNet2DConditionModel`, {n_parameters / 1e6:.2f} M parameters, fp16 safetensors; blocks "
        f"{spec.get('channels')} channels at 16x16 / 8x8 / 4x4, cross-attention {spec.get('cross_attention')} "
        f"+ mid block, {spec.get('transformer_layers')} transformer layer(s), heads {spec.get('heads')}.",
        "- Pixel space: a 32x32 RGB image is denoised as a 16x16x12 space-to-depth map (no VAE).",
        f"- Text: frozen all-MiniLM-L6-v2 token states (384-d, {CONTEXT_LENGTH} tokens padded), "
        + (
            "read causally (position i attends to 0..i; padding sees the whole prompt), as SD reads CLIP's,"
            if cfg.get("causal_text")
            else "read bidirectionally (no attention mask),"
        ),
        "  reaching the U-Net only through cross-attention `attn2.to_k` / `attn2.to_v` (no pooled-text path).",
        "- Objective: v-prediction, cosine schedule (1000 steps)"
        + (f", min-SNR-gamma {cfg['min_snr_gamma']}" if cfg.get("min_snr_gamma") else "")
        + f", caption dropout {cfg.get('cfg_drop')} for classifier-free guidance; sampler DPM-Solver++(2M).",
        "",
        "## Data",
        f"- Renderer: {len(OBJECT_LABELS)} objects ({', '.join(OBJECT_LABELS)}), {len(COLOR_LABELS)} colours,",
        f"  {len(STYLE_LABELS) - 1} artist styles + none ({', '.join(STYLE_LABELS[1:])}), and the unsafe stand-in for",
        "  nudity: an unclothed (skin-coloured) person. New random placement and textures every step.",
        f"- Captions: {len(all_captions('train'))} distinct training captions from templates, synonyms and",
        '  descriptions that share no word with a concept\'s names ("the painter of the starry night");',
        "  explicit and implicit (I2P-like) unsafe phrasings. Held-out synonyms, descriptions and templates",
        "  never seen in training serve the generality tests.",
        "",
        "## Training",
        f"- {info.get('step', '?')} steps of batch {cfg.get('batch_size')}, AdamW lr {cfg.get('lr')}, EMA "
        f"{cfg.get('ema_decay')}; {info.get('train_seconds', 0) / 3600:.2f} h wall-clock of training steps (1 niced",
        "  thread on a 2-core machine shared with other work: an upper bound on CPU time); resumable.",
        "- Retrain or continue: `python -m erasekit.worlds.embedded.train` (resumes from "
        "`~/.cache/erasekit/embedded-train/`, else warm-starts from these weights).",
        "",
        "## Judge",
        "- A 0.3 M-parameter CNN trained on rendered ground truth (`python -m erasekit.worlds.embedded.train_judge`);",
        "  held-out accuracy on fresh renders: "
        + (
            ", ".join(f"{k.removeprefix('heldout_')} {v:.3f}" for k, v in judge.items() if k.startswith("heldout_"))
            or "not recorded"
        )
        + ".",
        "",
        "## Quality (judged, un-edited generations)",
    ]
    if last:
        passed = meets_bars(last)
        lines += [
            f"At step {last['step']}, {last.get('steps')} sampling steps, guidance {last.get('guidance')} "
            "(training-time evaluation; `bench/world_quality.py` measures it on more prompts):",
            "",
            "| metric | value | bar | met |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {last[name]:.3f} | {op} {bar} | {'yes' if passed.get(name) else 'no'} |"
            for name, (op, bar) in QUALITY_BARS.items()
            if name in last
        ]
        if len(history) > 1:
            lines += [
                "",
                "Progress (step: object / colour / style accuracy): "
                + "; ".join(
                    f"{h['step']}: {h['object_acc']:.2f} / {h['color_acc']:.2f} / {h['style_acc']:.2f}" for h in history
                ),
            ]
    else:
        lines.append("Not measured yet.")
    if bench:
        lines += [
            "",
            f"`bench/world_quality.py` at step {bench.get('train_step')} on {bench.get('n_images')} images, "
            f"{bench.get('steps')} sampling steps, guidance {bench.get('guidance')}:",
            "",
            "| metric | value | bar | met |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {name} | {bench['metrics'][name]:.3f} | {op} {bar} | {'yes' if bench['pass'].get(name) else 'no'} |"
            for name, (op, bar) in QUALITY_BARS.items()
            if name in bench.get("metrics", {})
        ]
    if previous and bench:
        lines += ["", f"## Against the previous release ({previous['label']})", ""]
        lines += ["| metric | previous | this release |", "|---|---|---|"]
        lines += [
            f"| {name} | {_value(previous['bench'].get(name))} | {_value(bench['metrics'][name])} |"
            for name in QUALITY_BARS
            if name in bench.get("metrics", {})
        ]
        lines += [line for note in previous.get("notes", []) for line in ("", note)]
    lines += [
        "",
        "## Design decisions (measured)",
        "- 16x16x12 space-to-depth instead of 32x32x3: the same U-Net costs about 4x less per step; with",
        "  channels (32, 64, 128) a training step of batch 64 takes ~0.8 s on one CPU thread.",
        "- Loss weighting, 500-step runs of this U-Net judged on 128-140 prompts (12 steps, guidance 4):",
        "  min-SNR-5 weighting: object 0.19 / colour 0.78 / style 0.77; plain v-loss: object 0.53 / colour 0.66 /",
        "  style 0.82. Plain v-loss weighs the high-noise steps where layout is decided; objects were the",
        "  bottleneck, so it was kept. By step 1000 it reached object 0.89 / colour 1.00 / style 0.85.",
        "- Sampler: DPM-Solver++(2M), 10 steps, guidance 4 by default. At step 2000, on 70 prompts, 8, 12 and 20",
        "  steps all read back 99-100% of objects, colours and styles, and fewer steps leave less high-frequency",
        "  speckle; DDIM (leading timestep spacing) failed at 8-12 steps (object 0.54-0.76).",
        "- Speed (`bench/generate.py`, median of 7): 8.8 images/s for 64 prompts at the defaults (10 steps,",
        "  guidance 4) on ONE CPU thread of a 2-core machine busy with other work; the bar is 5 images/s on 2 cores.",
        "",
        "## Limitations",
        "- 32x32 pictograms; knows only its own vocabulary. Prompts beyond 24 tokens are truncated.",
        "- Artist names stand for synthetic textures, not the artists' work.",
        "",
    ]
    return "\n".join(lines)


def n_parameters(weights_file: Path) -> int:
    """Returns the number of parameters stored in a safetensors file, without loading them."""
    with safe_open(str(weights_file), framework="pt") as f:
        return sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())


def write_model_card(weights_root: Path, unet_folder: Path, judge_path: Path) -> Path:
    """Writes ``weights_root/MODEL_CARD.md`` from the files next to the weights and returns its path.

    Reads ``unet_folder/training.json``, the U-Net's safetensors, the judge's metadata and, when present,
    ``weights_root/bench_quality.json`` (written by ``bench/world_quality.py --record``) and
    ``weights_root/previous_release.json`` (the numbers of the weights these replaced).
    """
    info_path = unet_folder / "training.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    bench_path = weights_root / "bench_quality.json"
    bench = json.loads(bench_path.read_text()) if bench_path.is_file() else None
    previous_path = weights_root / "previous_release.json"
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else None
    card = render_model_card(
        info,
        judge_path=judge_path,
        n_parameters=n_parameters(unet_folder / "diffusion_pytorch_model.safetensors"),
        bench=bench,
        previous=previous,
    )
    path = weights_root / "MODEL_CARD.md"
    path.write_text(card)
    return path
