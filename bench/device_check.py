"""Every method and attack on another device (a GPU): does it run, and does it give the CPU's edit?

CI runs on CPUs only, so nothing else checks that a method keeps its tensors on the pipeline's device. Each
method erases "a cat" from a tiny random pipeline (``--kinds sd1 sd2 sdxl``; the unit tests' sizes and fast
settings) on the CPU
and on ``--device``; the edit on the device is applied, sampled, saved, loaded and removed there, and compared
with the CPU's: ``rel_diff`` = max over layers of ‖ΔW_dev − ΔW_cpu‖ / ‖ΔW_cpu‖. The closed forms (``uce``,
``rece``, ``speed``) should agree to float32 round-off (they solve in float64); methods that train
or sample draw other random numbers on another device, so theirs only has to be finite, as every edit of a half
pipeline (``--dtypes float16 bfloat16``: its text states are half, so the edit moves with them; the rel_diff to the
float32 edit is shown, not checked). Each attack then runs at its quick tier on the device's UCE edit, in each
dtype, at two denoising steps, with a stub judge. A row that raised shows where and the message's first
line: "refused" for erasekit's own errors (a pipeline a method does not support, said as such), "FAILED" else.

    python bench/device_check.py --device cuda --kinds sd1 sd2 sdxl --dtypes float32 float16 bfloat16
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from bench._timing import pin_threads, print_table

import erasekit
from erasekit import attacks
from erasekit.attacks import Sampling
from erasekit.edit import Edit
from erasekit.errors import ErasekitError
from erasekit.pipeline import resolve_dtype
from erasekit.worlds.tiny import tiny_pipeline

# nullspace is a closed form too, but its projector turns on the singular vectors of its keep rows' smallest kept
# singular values: keep rows perturbed by 1e-7 of their largest entry move its edit by 2e-3 on the CPU alone
CLOSED_FORMS = {"uce", "rece", "speed"}
# the unit tests' fast settings (tests/methods/test_*.py): every code path, little time
FAST: dict[str, dict[str, Any]] = {
    "ace": {
        "rank": 4,
        "epochs": 3,
        "inner_steps": 2,
        "augment": 1,
        "neutral_captions": 64,
        "vocabulary_captions": 16,
        "contexts": 16,
        "gate_steps": 30,
        "mine_candidates": 8,
        "denoise_images": 2,
        "denoise_steps": 2,
        "denoise_batch": 1,
    },
    "advunlearn": {
        "iterations": 3,
        "warmup": 1,
        "attack_steps": 1,
        "ddim_steps": 2,
        "retain_pool": 4,
        "retain_batch": 1,
    },
    "esd": {"iterations": 8, "ddim_steps": 3, "lr": 1e-2},
    "mace": {"steps": 0, "n_prompts": 1},
    "receler": {"iterations": 3, "adversary_steps": 2, "ddim_steps": 2, "rank": 2, "adversary_tokens": 2},
    "spm": {"iterations": 2, "lr_warmup_steps": 1, "max_denoising_steps": 2, "anchors": 1, "lr": 1e-2},
}
# nullspace on the 32-d text of the default sizes: "a dog"'s rows span nearly every direction, and which ones
# pass its rank threshold then turns on round-off (its unit tests use 192 too)
PIPES: dict[str, dict[str, Any]] = {"nullspace": {"text_dim": 192}}
CONCEPT, PRESERVE = "a cat", ["a dog"]
STEPS = Sampling(steps=2)


class Bright:
    """A stub judge: the concept is "seen" in images brighter than mid-grey (tiny models draw noise)."""

    def detects(self, images: list[Any], concept: str) -> list[bool]:
        return [float(np.asarray(img, dtype=np.float64).mean()) > 127.5 for img in images]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--kinds", nargs="+", default=["sd1"], help="tiny pipelines: sd1 sd2 sdxl")
    parser.add_argument("--dtypes", nargs="+", default=["float32"], help="pipeline dtypes, e.g. float32 float16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    parser.add_argument("--attacks", nargs="*", default=None, help="default: every registered attack")
    args = parser.parse_args()
    pin_threads(args.threads)
    names = args.methods if args.methods is not None else erasekit.methods.available()
    chosen = args.attacks if args.attacks is not None else attacks.available()
    for kind in args.kinds:
        for dtype in args.dtypes:
            print_table([_method_row(name, kind, args.device, dtype) for name in names])
            pipe = tiny_pipeline(kind).to(args.device, resolve_dtype(dtype))
            edit = erasekit.erase(pipe, [CONCEPT], "uce", preserve=PRESERVE)
            if chosen:
                print_table([_attack_row(pipe, edit, name) | {"kind": kind, "dtype": dtype} for name in chosen])


def _method_row(name: str, kind: str, device: str, dtype: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "method": name,
        "kind": kind,
        "dtype": dtype,
        "cpu_s": "-",
        "device_s": "-",
        "rel_diff": "-",
        "expect": "-",
        "ok": "no",
    }
    try:
        kw = {**FAST.get(name, {}), **({"preserve": PRESERVE} if erasekit.methods.get(name).takes_preserve else {})}
        start = time.perf_counter()
        on_cpu = erasekit.erase(tiny_pipeline(kind, **PIPES.get(name, {})), [CONCEPT], name, **kw)
        row["cpu_s"] = time.perf_counter() - start
        pipe = tiny_pipeline(kind, **PIPES.get(name, {})).to(device, resolve_dtype(dtype))
        start = time.perf_counter()
        edit = erasekit.erase(pipe, [CONCEPT], name, **kw)
        _sync(device)
        row["device_s"] = time.perf_counter() - start
        row["rel_diff"] = diff = _rel_diff(edit, on_cpu)
        exact = name in CLOSED_FORMS and dtype == "float32"
        row["expect"] = "< 1e-4" if exact else "finite"
        _use(pipe, edit)
        row["ok"] = "yes" if (diff < 1e-4 if exact else math.isfinite(diff)) else "DIFFERS"
    except Exception as err:  # a table of every failure, not the first one only
        row["ok"] = _last_line(err)
    return row


def _rel_diff(edit: Edit, reference: Edit) -> float:
    worst = 0.0
    for layer in reference.updates:
        want = reference.delta(layer).double()
        got = edit.delta(layer).double().cpu()
        worst = max(worst, float((got - want).norm() / want.norm().clamp_min(1e-30)))
    return worst


def _use(pipe: Any, edit: Edit) -> None:
    """Applied, sampled, saved, loaded, applied again and removed on the pipeline's device."""
    edit.apply(pipe)
    pipe("a cat on a sofa", num_inference_steps=2, output_type="pil")
    edit.remove(pipe)
    with tempfile.TemporaryDirectory() as tmp:
        loaded = Edit.load(edit.save(Path(tmp) / "edit.safetensors"))
    loaded.apply(pipe)
    pipe("a cat on a sofa", num_inference_steps=2, output_type="pil")
    loaded.remove(pipe)


def _attack_row(pipe: Any, edit: Edit, name: str) -> dict[str, Any]:
    row: dict[str, Any] = {"attack": name, "device_s": "-", "asr": "-", "ok": "no"}
    try:
        start = time.perf_counter()
        result = attacks.attack(pipe, name, CONCEPT, judge=Bright(), edit=edit, prompts=["a cat", "a cat on grass"],
                                quick=True, sampling=STEPS)  # fmt: skip
        row["device_s"] = time.perf_counter() - start
        row["asr"], row["ok"] = result.asr, "yes"
    except Exception as err:
        row["ok"] = _last_line(err)
    return row


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _last_line(err: Exception) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    verdict = "refused" if isinstance(err, ErasekitError) else f"FAILED ({type(err).__name__})"
    return f"{verdict} at {where}: {str(err).splitlines()[0][:160] if str(err) else ''}"


if __name__ == "__main__":
    main()
