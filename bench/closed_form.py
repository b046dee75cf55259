"""Closed-form edit time on an SD 1.4-shaped U-Net, against the dense per-layer reference.

The U-Net is built from Stable Diffusion 1.4's published config with only its 32 cross-attention
K/V projections materialised (random weights, 19.2 M parameters); the rest stays on the meta
device. Text encoding is excluded: a seeded random encoder stands in for CLIP (77 tokens × 768).
Each case prints the median and min of ``--repeats`` runs of erasekit's fast path, the median of
the naive reference (``tests/oracle.py``: per layer, per concept, Σ v cᵀ, ``torch.inverse``, all in
float64) run in the same process, their ratio and the max relative error of ΔW between them.

    python bench/closed_form.py --threads 2
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from accelerate import init_empty_weights
from diffusers import UNet2DConditionModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.oracle: the reference transcription

from bench._timing import pin_threads, print_table, timed
from tests import oracle

import erasekit
from erasekit.targets import find_targets
from erasekit.text import Encoded

SD14_UNET = dict(
    act_fn="silu",
    attention_head_dim=8,
    block_out_channels=(320, 640, 1280, 1280),
    cross_attention_dim=768,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    norm_num_groups=32,
    sample_size=64,
)


class RandomEncoder:
    """Seeded stand-in for CLIP: each prompt gets fixed random states ``[77, 768]``, last word = #words."""

    max_length = 77

    def __init__(self, d: int = 768):
        self.d = d
        self.cache: dict[str, torch.Tensor] = {}

    def states(self, text: str) -> torch.Tensor:
        if text not in self.cache:
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            self.cache[text] = torch.randn(self.max_length, self.d, generator=torch.Generator().manual_seed(seed))
        return self.cache[text]

    def __call__(self, texts):
        return Encoded(torch.stack([self.states(t) for t in texts]), torch.tensor([len(t.split()) for t in texts]))

    def oracle(self, texts):  # (embeddings float64, attention mask) as tests/oracle.py expects
        enc = self(texts)
        mask = (torch.arange(self.max_length)[None] < (enc.last_word + 2)[:, None]).long()
        return enc.states.double(), mask


def sd14_unet() -> torch.nn.Module:
    with init_empty_weights():
        unet = UNet2DConditionModel(**SD14_UNET)
    gen = torch.Generator().manual_seed(0)
    for name, module in unet.named_modules():
        if name.endswith("attn2.to_k") or name.endswith("attn2.to_v"):
            w = torch.randn(module.out_features, module.in_features, generator=gen) / module.in_features**0.5
            module.weight = torch.nn.Parameter(w, requires_grad=False)
    return unet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--naive-repeats", type=int, default=3, help="the reference is slow; 1 run at 1000 concepts, 0 skips it"
    )
    parser.add_argument("--skip-naive-1000", action="store_true", help="skip the ~minutes-long reference at 1000")
    parser.add_argument(
        "--only", nargs="+", choices=("uce", "rece", "nullspace"), help="run only these methods' rows (and no cold run)"
    )
    args = parser.parse_args()
    pin_threads(args.threads)

    unet = sd14_unet()
    pipe = SimpleNamespace(unet=unet)
    targets = find_targets(unet)
    assert len(targets) == 32 and targets.n_params == 19_169_280, (len(targets), targets.n_params)
    weights = {t.name: t.weight.detach().double() for t in targets}
    enc = RandomEncoder()
    print(f"SD1.4-shaped U-Net: {len(targets)} K/V layers, {targets.n_params / 1e6:.1f} M parameters; "
          f"{torch.get_num_threads()} threads; torch {torch.__version__}")  # fmt: skip

    cases = [
        ("uce, 1 concept", "uce", 1, {}),
        ("rece, 1 concept, 5 epochs", "rece", 1, {"epochs": 5}),
        ("nullspace, 1 concept", "nullspace", 1, {}),
        ("uce, 100 concepts", "uce", 100, {}),
        ("uce, 1000 concepts", "uce", 1000, {}),
    ]
    if args.only:
        cases = [case for case in cases if case[1] in args.only]
    rows = []
    for label, method, n, overrides in cases:
        rows.append(run_case(args, pipe, targets, weights, enc, label, method, n, overrides))
        print(f"{label}: {rows[-1]['median_s']:.4f} s (reference {rows[-1]['naive_median_s']:.3f} s)", flush=True)
    print()
    print_table(rows)
    if args.only:
        return
    print("\nFirst call on a new model also hashes its weights (fingerprint) and, for RECE, caches Σ WᵀW:")
    fresh = find_targets(unet)
    cold = timed(lambda: erasekit.erase(pipe, ["nudity"], "rece", encoder=enc, targets=fresh, epochs=5), repeats=1)
    print(f"rece, 1 concept, 5 epochs, cold: {cold[0]:.3f} s")


def run_case(args, pipe, targets, weights, enc, label, method, n, overrides) -> dict:
    """Time the fast path and the reference on one case; compare their ΔW."""
    concepts = ["nudity"] if n == 1 else [f"concept{i}" for i in range(n)]
    enc([*concepts, " ", ""])  # text encoding excluded: fill the cache first
    med, best, edit = timed(
        lambda: erasekit.erase(pipe, concepts, method, encoder=enc, targets=targets, **overrides),
        repeats=args.repeats if n < 1000 else max(3, args.repeats // 2),
    )
    guides = [" "] * n
    reference = {
        "uce": lambda: oracle.uce_reference(enc.oracle, weights, concepts, guides, [""], 0.5, 1.0, 1.0),
        "rece": lambda: oracle.rece_reference(
            enc.oracle, weights, concepts, " ", guides, 5, 0.1, 0.1, 1.0, 0.1, 0.5, 1.0, [""]
        ),
        "nullspace": lambda: oracle.nullspace_reference(enc.oracle, weights, concepts, guides, [""], 0.5, 1.0, 1e-6),
    }[method]
    naive_med, err = float("nan"), float("nan")
    if args.naive_repeats and not (n == 1000 and args.skip_naive_1000):
        naive_med, _, ref = timed(reference, repeats=1 if n == 1000 else args.naive_repeats, warmup=0)
        err = oracle.max_rel_err({k: edit.delta(k) for k in edit.updates}, ref)
    return {
        "case": label,
        "median_s": med,
        "min_s": best,
        "naive_median_s": naive_med,
        "ratio": naive_med / med,
        "max_rel_err": err,
        "rank": edit.info["rank"],
    }


if __name__ == "__main__":
    main()
