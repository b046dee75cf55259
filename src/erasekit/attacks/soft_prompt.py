"""``soft_prompt``: learn ``k`` continuous token embeddings that bring the concept back (textual inversion).

Textual inversion (Gal et al., ICLR 2023) turned into an attack on erasure (Pham et al., "Circumventing
Concept Erasure Methods for Text-to-Image Generative Models", ICLR 2024): the *original* model still
draws the concept, so its images ``x0`` are the training data, and ``k`` new input embeddings ``v``
placed before each prompt are fitted so that the *edited* model denoises them:

    min_v  E_{image, t, ε} ‖ target(x0, ε, t) − U_edited(x_t, t, E(start, v, prompt words)) ‖²

with ``x_t``, ``target`` as in :mod:`erasekit.diffusion` (ε for SD 1.x, v for v-prediction models).
One ``v`` serves every prompt of the set (a universal soft prompt, as a learned pseudo-word is).

The training images are not the evaluation images: ``train_images`` images of the original model,
image ``j`` drawn from the prompt of case ``j mod N`` with a seed taken from the request's seed and
never equal to a case's seed; the attack is then judged on the cases' own seeds, which training never
saw. The defaults are the paper's budget (NYU-DICE-Lab/circumventing-concept-erasure ``esd/train.sh``:
25 training images, 5000 steps of 4 images × 4 accumulated, lr 5e-3 scaled by those 16 as
``--scale_lr`` does, constant): Adam, ``steps`` updates of ``batch_size`` draws each, ``t`` uniform
over the training timesteps. The reference uses AdamW (weight decay 1e-2, on a single embedding row);
we use plain Adam. Everything random comes from the request's seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..diffusion import alphas_cumprod, noisy, predict, target
from ..errors import ConfigError
from ..progress import Progress
from . import AttackRequest, register
from .base import Case, Findings, Outcome, check_counts

PROBE_DRAWS = 8  # fixed (image, t, ε) draws the loss is reported on before and after
SEED_RANGE = 2**31  # training seeds are drawn below this


@dataclass(frozen=True)
class SoftPromptConfig:
    k: int = 1  # learned tokens (textual inversion learns one pseudo-word)
    steps: int = 5000  # Adam updates (esd/train.sh --max_train_steps=5000)
    lr: float = 0.08  # --learning_rate=5e-3 × 16 draws per update (--scale_lr)
    batch_size: int = 16  # (image, t, ε) draws per update (--train_batch_size=4 × --gradient_accumulation_steps=4)
    train_images: int = 25  # original-model images to train on (--num_train_images=25)
    init: Literal["concept", "random"] = "concept"  # start from the concept's word embeddings, or random words

    def __post_init__(self) -> None:
        check_counts(self, "steps", "k", "batch_size", "train_images")
        if not self.lr > 0:
            raise ConfigError(f"SoftPromptConfig.lr must be > 0, got {self.lr}.")


@register("soft_prompt", SoftPromptConfig)
def soft_prompt(request: AttackRequest, cfg: SoftPromptConfig, *, progress: Progress | None = None) -> Findings:
    """Textual inversion against the edited model on the original model's images (seeds apart from the cases')."""
    text, unet = request.text, request.victim.pipe.unet
    scheduler = request.victim.pipe.scheduler
    abar, prediction = alphas_cumprod(scheduler), scheduler.config.prediction_type
    train = training_cases(request, cfg.train_images)
    x0 = request.original_latents(train)  # [train_images, C, h, w]
    train_ids = text.slotted([c.prompt for c in train], cfg.k)
    gen = request.generator("soft_prompt")
    v = _init(request, cfg, gen).requires_grad_(True)  # [k, d_tok]
    opt = torch.optim.Adam([v], lr=cfg.lr)

    def loss_on(draw: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        rows, t, noise = draw
        x0_b = x0[rows]
        states = text.encode(train_ids.ids[rows], slots=train_ids.slots, slot_embeds=v)
        pred = predict(unet, noisy(x0_b, noise, t, abar), t, states)
        return F.mse_loss(pred, target(x0_b, noise, t, abar, prediction))

    probe = _draw(x0, PROBE_DRAWS, len(abar), request.generator("soft_prompt", "probe"))
    with torch.no_grad():
        loss_start = float(loss_on(probe))
    losses = []
    for step in range(cfg.steps):
        loss = loss_on(_draw(x0, cfg.batch_size, len(abar), gen))
        (v.grad,) = torch.autograd.grad(loss, [v])
        opt.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, cfg.steps)
    v = v.detach()
    slotted = text.slotted([c.prompt for c in request.cases], cfg.k)
    with torch.no_grad():
        loss_end = float(loss_on(probe))
        states = text.encode(slotted.ids, slots=slotted.slots, slot_embeds=v).float().cpu()
    images, verdicts = request.judged(states, request.cases)
    outcomes = [Outcome(s, img, ok, info={"k": cfg.k}) for s, img, ok in zip(states, images, verdicts)]
    info = {
        "loss_start": loss_start,
        "loss_end": loss_end,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "train_seeds": [c.seed for c in train],
    }
    return Findings(outcomes, info=info, tensors={"soft_tokens": v.cpu().float()})


def training_cases(request: AttackRequest, n: int) -> list[Case]:
    """``n`` training cases: case ``j mod N``'s prompt, a seed drawn from the request's seed, none a case's seed."""
    taken = {c.seed for c in request.cases}
    gen = request.generator("soft_prompt", "train seeds")
    seeds: list[int] = []
    while len(seeds) < n:
        seed = int(torch.randint(SEED_RANGE, (), generator=gen))
        if seed not in taken:
            taken.add(seed)
            seeds.append(seed)
    return [Case(request.cases[j % len(request.cases)].prompt, seed) for j, seed in enumerate(seeds)]


def _init(request: AttackRequest, cfg: SoftPromptConfig, gen: torch.Generator) -> Tensor:
    """``[k, d_tok]`` float32 starting embeddings: the concept's word tokens (cycled), or random words."""
    table = request.text.table.weight.detach()
    if cfg.init == "concept":
        ids = request.text.tokenizer(request.concept, add_special_tokens=False).input_ids
        if not ids:
            raise ConfigError(f"Concept {request.concept!r} tokenises to nothing: use init='random'.")
        chosen = torch.tensor([ids[i % len(ids)] for i in range(cfg.k)])
    else:
        vocab = request.text.vocabulary()
        chosen = vocab[torch.randint(len(vocab), (cfg.k,), generator=gen)]
    return table[chosen.to(table.device)].float().clone()


def _draw(x0: Tensor, n: int, num_timesteps: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` random (case row, timestep, noise) draws, on ``x0``'s device."""
    rows = torch.randint(x0.shape[0], (n,), generator=gen)
    t = torch.randint(num_timesteps, (n,), generator=gen)
    noise = torch.randn((n, *x0.shape[1:]), generator=gen)
    return rows, t.to(x0.device), noise.to(x0.device, x0.dtype)
