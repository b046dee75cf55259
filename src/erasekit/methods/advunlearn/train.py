"""AdvUnlearn's training loop: ESD's target through the text encoder, on adversarial prompts, with a retain set.

Per iteration ``i`` (one concept ``c``, drawn every ``attack_every`` iterations):

1. after ``warmup``, every ``attack_every`` iterations: new adversarial tokens ``a`` (:mod:`.attack`);
2. erase: ``x_t`` sampled by the frozen original from ``c``, then

       L_erase = ‖ε(x_t, τ_θ(p), t) − [ε*(x_t, ∅, t) − η (ε*(x_t, c, t) − ε*(x_t, ∅, t))]‖²

   with ``p = [a; c]`` (``c`` itself during warmup), ``τ_θ`` the text encoder with its LoRA and ``ε*``
   the U-Net on the original encodings (the U-Net is never trained, so ``ε`` and ``ε*`` are one network);
3. retain, on a batch ``r`` of the retain set: ``L_retain = ‖ε(x_t^r, τ_θ(r), t) − ε*(x_t^r, r, t)‖²``,
   a separate Adam step (``retain="iter"``, the reference's default) or ``L_erase + w L_retain``
   (``retain="reg"``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...edit import Edit
from ...errors import ConfigError
from ...text import Slotted, TextEncoder
from .. import EraseRequest
from ..esd.run import Checkpoints, LoRARun
from ..esd.train import _sample_till
from ..frozen import frozen
from .attack import random_tokens, soft_prompt_attack
from .config import AdvUnlearnConfig, AdvUnlearnState
from .retain import retain_prompts

_ATTENTION = ("attn", "attention")  # CLIP's self_attn.*, BERT's attention.*


def erase_loss(e_n: Tensor, e_0: Tensor, e_p: Tensor, eta: float) -> Tensor:
    """``‖e_n − (e_0 − η (e_p − e_0))‖²`` mean: ESD's negatively guided target (ESD Eq. 7, AdvUnlearn Eq. 3)."""
    return F.mse_loss(e_n.float(), (e_0 - eta * (e_p - e_0)).float())


def retain_loss(e_n: Tensor, e_orig: Tensor) -> Tensor:
    """``‖e_n − e_orig‖²`` mean: the retain prompts' predictions kept at the original's."""
    return F.mse_loss(e_n.float(), e_orig.float())


def text_layers(text_encoder: nn.Module, component: str) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` layers of the encoder's transformer blocks, as ``text_encoder.<path>``.

    ``component``: ``"all"``, ``"attn"`` (self-attention) or ``"ffn"`` (the MLP), the reference's
    ``text_encoder_full`` with ``--component``. Embeddings, pooler and norms are not trained.
    """
    layers = {}
    for name, module in text_encoder.named_modules():
        if not isinstance(module, nn.Linear) or "encoder.layer" not in name:
            continue
        attention = any(w in name for w in _ATTENTION)
        if component == "all" or (component == "attn") == attention:
            layers[f"text_encoder.{name}"] = module
    if not layers:
        raise ConfigError(
            f"{type(text_encoder).__name__} has no nn.Linear layers under 'encoder.layer' for component "
            f"{component!r}: AdvUnlearn trains the transformer blocks of a CLIP or BERT text encoder."
        )
    return layers


def train_advunlearn(
    request: EraseRequest, cfg: AdvUnlearnConfig, *, checkpoints: Checkpoints[AdvUnlearnState] = Checkpoints()
) -> Edit:
    """An AdvUnlearn edit of ``request.concepts``: a LoRA of the text encoder (see the module docstring).

    Args:
        request: the concepts, the preserve set (joins the retain set), the pipeline and ``progress``, called
            after every iteration.
        cfg: the hyper-parameters.
        checkpoints: where the run's :class:`AdvUnlearnState` goes, and the state it resumes from.
    Returns:
        The edit (``text_encoder.*`` layers only), ``info["losses"]`` the erase loss of every iteration.
    Raises:
        ConfigError: no pipeline, guides given, a retain set that names a concept, an SDXL pipeline,
            or a state to resume from another config or other layers.
    """
    if request.guides is not None:
        raise ConfigError("AdvUnlearn erases towards the unconditional prediction and takes no guides: drop them.")
    if request.pipe is None or getattr(request.pipe, "text_encoder", None) is None:
        raise ConfigError("AdvUnlearn trains the pipeline's text encoder: call erasekit.erase(pipe, ...) with one.")
    text = request.encoder if isinstance(request.encoder, TextEncoder) else TextEncoder(request.pipe)
    text.check_single_encoder()
    run = LoRARun(request, cfg, lambda _: text_layers(text.encoder, cfg.component), cfg.ddim_steps, checkpoints)
    unet, scheduler, device, dtype, generator = run.unet, run.scheduler, run.device, run.dtype, run.generator
    adversary, k = None, 0
    resume = run.resume()
    if resume is not None:
        adversary, k = resume.adversary, resume.concept

    concepts, pool = list(request.concepts), retain_prompts(request.concepts, request.preserve, cfg)
    orig = text([*concepts, "", *pool]).states.to(device, dtype)  # [n + 1 + R, L, d] by the original encoder
    C, null, R = orig[: len(concepts)], orig[len(concepts) : len(concepts) + 1], orig[len(concepts) + 1 :]
    slotted = text.slotted(concepts, cfg.attack_tokens)  # [n, L]: start, k slots, the concept
    ids_c, ids_r = text.ids(concepts), text.ids(pool)

    def predict(x_t: Tensor, t: Tensor, states: Tensor) -> Tensor:
        return unet(x_t, t, encoder_hidden_states=states.to(dtype)).sample

    def sample(c: Tensor) -> tuple[Tensor, Tensor]:
        """``x_t`` drawn by the original from ``c [B, L, d]`` after a random number of DDIM steps, and its ``t``."""
        n = int(torch.randint(cfg.ddim_steps, (1,), generator=generator))
        x_t = _sample_till(
            unet, scheduler, run.noise(c.shape[0]), c, null.expand(c.shape[0], -1, -1), n, cfg.start_guidance
        )
        return x_t, scheduler.timesteps[n]

    def retained() -> Tensor:
        idx = torch.randperm(len(pool), generator=generator)[: cfg.retain_batch]
        x_t, t = sample(R[idx])
        with torch.no_grad():
            e_orig = predict(x_t, t, R[idx])
        return retain_loss(predict(x_t, t, text.encode(ids_r[idx])), e_orig)

    with frozen(unet), frozen(text.encoder), run.lora.hooked():
        for i in run.remaining():
            if i % cfg.attack_every == 0:
                k = int(torch.randint(len(concepts), (1,), generator=generator))  # the concept of the next round
                if i >= cfg.warmup:
                    adversary = _attack(text, cfg, Slotted(slotted.ids[k : k + 1], slotted.slots), C[k : k + 1],
                                        adversary, sample, predict, generator)  # fmt: skip
            c = C[k : k + 1]
            x_t, t = sample(c)
            with torch.no_grad():
                e_0, e_p = predict(torch.cat([x_t, x_t]), t, torch.cat([null, c])).chunk(2)
            if i >= cfg.warmup and adversary is not None:
                states = text.encode(slotted.ids[k : k + 1], slots=slotted.slots, slot_embeds=adversary)
            else:
                states = text.encode(ids_c[k : k + 1])
            loss = erase_loss(predict(x_t, t, states), e_0, e_p, cfg.negative_guidance)
            total = loss + cfg.retain_weight * retained() if cfg.retain == "reg" else loss
            run.step(total)
            for _ in range(cfg.retain_steps if cfg.retain == "iter" else 0):
                run.step(retained())
            if run.done(loss):
                run.save(AdvUnlearnState, adversary, k)
    info = {"rank": cfg.rank, "losses": run.losses, "retain_prompts": len(pool), "layers": len(run.lora.layers)}
    return request.make_edit("advunlearn", cfg, run.lora.updates(), guides=[""] * len(concepts), info=info)


def _attack(
    text: TextEncoder,
    cfg: AdvUnlearnConfig,
    slotted: Slotted,
    c: Tensor,
    latest: Tensor | None,
    sample: Callable[[Tensor], tuple[Tensor, Tensor]],
    predict: Callable[[Tensor, Tensor, Tensor], Tensor],
    generator: torch.Generator,
) -> Tensor:
    """New adversarial tokens for the concept ``c [1, L, d]`` (original encoding), from the latest or random ones."""
    init = latest if cfg.attack_init == "latest" and latest is not None else None
    if init is None:
        init = random_tokens(text, cfg.attack_tokens, generator)

    def target() -> tuple[Tensor, Tensor, Tensor]:
        x_t, t = sample(c)
        with torch.no_grad():
            return x_t, t, predict(x_t, t, c)

    return soft_prompt_attack(text, slotted, init, target, predict, steps=cfg.attack_steps, lr=cfg.attack_lr)
