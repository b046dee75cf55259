"""SPM's training loop: ESD's erase target on the adapted model plus latent anchoring on random embeddings,
checkpointed and resumed bit for bit (the run state and helpers are ESD's, ``methods/esd``)."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from diffusers import Transformer2DModel
from diffusers.optimization import get_scheduler
from torch import Tensor, nn

from ...edit import Edit
from ...errors import ConfigError
from ...prompt_scale import PromptScale
from ...text import Encoded
from .. import EraseRequest
from ..esd.config import ESDState
from ..esd.run import Checkpoints, LoRARun
from ..esd.train import _sample_till
from ..frozen import frozen
from .config import SPMConfig


def adapted_layers(unet: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` inside the U-Net's ``Transformer2DModel`` blocks, named by module path (the reference's
    ``SPMNetwork`` targets; its ``Conv2d`` ``proj_in``/``proj_out`` are left out, see the package docstring).

    Raises:
        ConfigError: the U-Net has no transformer block.
    """
    layers = {
        f"{name}.{sub}": linear
        for name, block in unet.named_modules()
        if isinstance(block, Transformer2DModel)
        for sub, linear in block.named_modules()
        if isinstance(linear, nn.Linear)
    }
    if not layers:
        raise ConfigError(f"{type(unet).__name__} has no Transformer2DModel blocks with nn.Linear layers for SPM.")
    return layers


def anchor_states(target: Tensor, k: int, *, generator: torch.Generator) -> Tensor:
    """``k`` latent anchors ``[k, L, d]`` for the concept's token states ``target [L, d]`` (``sampling.sample``).

    Each is a direction ``u`` drawn uniformly on the sphere of ``[L·d]``, accepted with probability
    ``1 − cos(target, u)`` (so rarely near the concept), scaled to ``s ‖target‖`` with ``s ~ U(0.8, 1.2)``.
    """
    flat, out = target.flatten().float(), []
    while len(out) < k:
        u = torch.randn(flat.shape, generator=generator)
        u = u / u.norm()
        if float(torch.rand((), generator=generator)) < 1 - float(flat @ u / flat.norm()):
            s = float(torch.rand((), generator=generator)) * 0.4 + 0.8
            out.append((s * flat.norm() * u).view_as(target))
    return torch.stack(out).to(target.dtype)


def spm_loss(
    e_target: Tensor,
    e_positive: Tensor,
    e_neutral: Tensor,
    e_anchor: Tensor | None = None,
    e_anchor_orig: Tensor | None = None,
    *,
    guidance: float,
    la_strength: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """``(loss, erase, anchoring)`` of ``PromptEmbedsPair._erase_with_la`` (``_erase`` without anchors).

        erase     = ‖ε_θ(x_t, c) − [ε*(x_t, n) − η (ε*(x_t, p) − ε*(x_t, n))]‖² / N
        anchoring = ‖ε_θ(x_t, a) − ε*(x_t, a)‖² / N
        loss      = erase + la_strength · anchoring

    with θ the adapted model, ε* the frozen original, c the concept, p its positive prompt (c itself),
    n the neutral prompt and a the anchors; all ``[B, C, h, w]``, means over elements.
    """
    erase = F.mse_loss(e_target.float(), (e_neutral - guidance * (e_positive - e_neutral)).float())
    if e_anchor is None or e_anchor_orig is None:
        return erase, erase, None
    anchoring = F.mse_loss(e_anchor.float(), e_anchor_orig.float())
    return erase + la_strength * anchoring, erase, anchoring


def train_spm(request: EraseRequest, cfg: SPMConfig, *, checkpoints: Checkpoints[ESDState] = Checkpoints()) -> Edit:
    """An SPM edit of ``request.concepts``: a rank-``cfg.rank`` LoRA on every transformer-block ``nn.Linear``.

    Args:
        request: the concepts, optional guides (each concept's neutral prompt, default ``""``), the pipeline
            and ``progress``, called after every iteration.
        cfg: the hyper-parameters.
        checkpoints: where the run's :class:`ESDState` goes, and the state it resumes from.
    Returns:
        The edit; ``info["losses"]`` the loss of every iteration; with ``cfg.facilitated_transport``, its
        ``prompt_scale`` is Facilitated Transport (:func:`transport`), which training does not depend on.
    Raises:
        ConfigError: no pipeline, a preserve set (SPM is data-free), an SDXL U-Net, or a state to resume
            of another config (``iterations`` included: it shapes the learning-rate schedule) or other layers.
    """
    if request.preserve:
        raise ConfigError(
            "SPM is data-free: latent anchoring preserves random embeddings, not a preserve set. Drop the "
            "preserve set, or use uce/rece/speed."
        )
    resume = checkpoints.resume
    if resume is not None and resume.config.get("iterations") != cfg.iterations:
        raise ConfigError(
            f"Cannot resume: the checkpoint ran with iterations={resume.config.get('iterations')}, this run asks "
            f"for {cfg.iterations}; SPM's cosine schedule depends on it. Resume with the same iterations."
        )
    run = LoRARun(request, cfg, adapted_layers, cfg.max_denoising_steps, checkpoints, optimizer=torch.optim.AdamW)
    unet, scheduler, lora = run.unet, run.scheduler, run.lora
    schedule = get_scheduler(
        "cosine_with_restarts",
        run.optimizer,
        num_warmup_steps=cfg.lr_warmup_steps,
        num_training_steps=cfg.iterations,
        num_cycles=cfg.lr_cycles,
    )
    if (state := run.resume()) is not None:  # after the schedule is built: building it sets the lr to step 0's
        schedule.last_epoch = state.iteration  # the schedule is a function of the iteration alone

    neutrals = request.guides_or("")
    emb = request.encoder([*request.concepts, *neutrals, ""]).states.to(run.device, run.dtype)  # [2n + 1, L, d]
    n = len(request.concepts)
    C, N, null = emb[:n], emb[n : 2 * n], emb[-1:]  # concepts, their neutral prompts, the empty prompt
    with frozen(unet), lora.hooked():
        for _ in run.remaining():
            k = int(torch.randint(n, (1,), generator=run.generator))  # one concept per iteration
            steps = int(torch.randint(1, cfg.max_denoising_steps, (1,), generator=run.generator))
            c = C[k : k + 1]
            x_t = _sample_till(unet, scheduler, run.noise(), c, null, steps, cfg.start_guidance)  # by the adapted model
            t = scheduler.timesteps[steps]  # the timestep x_t is at
            with torch.no_grad(), lora.disabled():  # the frozen original: positive (= c) and neutral
                e_p, e_n = unet(
                    torch.cat([x_t, x_t]), t, encoder_hidden_states=torch.cat([c, N[k : k + 1]])
                ).sample.chunk(2)
            e_c = unet(x_t, t, encoder_hidden_states=c).sample
            e_a = e_a_orig = None
            if cfg.latent_anchoring:
                a = anchor_states(C[k].cpu(), cfg.anchors, generator=run.generator).to(run.device, run.dtype)
                x_a = x_t.expand(cfg.anchors, -1, -1, -1)  # a: [A, L, d]
                e_a = unet(x_a, t, encoder_hidden_states=a).sample
                with torch.no_grad(), lora.disabled():
                    e_a_orig = unet(x_a, t, encoder_hidden_states=a).sample
            loss, _, _ = spm_loss(
                e_c, e_p, e_n, e_a, e_a_orig, guidance=cfg.guidance_scale, la_strength=cfg.la_strength
            )
            run.step(loss, cfg.max_grad_norm)
            schedule.step()
            if run.done(loss):
                run.save(ESDState)
    info = {"rank": cfg.rank, "layers": len(lora.layers), "losses": run.losses}
    edit = request.make_edit("spm", cfg, lora.updates(), guides=neutrals, info=info)
    if not cfg.facilitated_transport:
        return edit
    return dataclasses.replace(edit, prompt_scale=transport(request.encoder(request.concepts), cfg))


def transport(concepts: Encoded, cfg: SPMConfig) -> PromptScale:
    """Facilitated Transport's multiplier (``infer_spm.calculate_matching_score``, max over the concepts) as a
    :class:`PromptScale` of the concepts' token states, their words being positions ``1 .. last_word``."""
    positions = torch.arange(concepts.states.shape[1])
    words = (positions >= 1) & (positions <= concepts.last_word[:, None])
    return PromptScale(concepts.states.float().cpu(), words, cfg.ft_metric, cfg.ft_threshold)
