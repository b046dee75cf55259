"""Receler's training loop: erasers after every cross-attention, trained on adversarial prompts with ESD's target
and the concept-localised regularisation.

Per iteration (one concept ``c``): ``x_t`` is sampled by the model with its erasers (CFG, as ESD);
the original (erasers off) gives ``ε*(x_t, ∅)``, ``ε*(x_t, c)`` and the concept's mask ``M``
(:mod:`.regions`); ``adversary_steps`` Adam steps move the concept's adversarial token states ``a``
(put after its words) towards ``min_a ‖ε(x_t, [c; a]) − ε*(x_t, c)‖²``; the erasers then take one
step on

    L = ‖ε(x_t, [c; a]) − (ε*(x_t, ∅) − η (ε*(x_t, c) − ε*(x_t, ∅)))‖² + λ L_reg(M)

with the prediction of the last attack step (``a`` before that step's update, as the reference).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...edit import Edit
from ...errors import ConfigError
from .. import EraseRequest
from ..advunlearn.train import erase_loss
from ..esd.lora import _LoRA
from ..esd.run import Checkpoints, LoRARun
from ..esd.train import _sample_till
from ..frozen import frozen
from .config import RecelerConfig, RecelerState
from .regions import attention_maps, concept_masks, cross_attentions, outside_loss


def eraser_layers(unet: nn.Module) -> dict[str, nn.Linear]:
    """The output projection ``<attn2>.to_out.0`` of every cross-attention: where each eraser sits."""
    return {f"{name}.to_out.0": attn.to_out[0] for name, attn in cross_attentions(unet).items()}


@contextmanager
def eraser_outputs(lora: _LoRA, out: dict[str, Tensor]) -> Iterator[None]:
    """Inside, each eraser's output ``B A h`` ``[B, hw, d]`` (with gradient) goes into ``out[<attn2 path>]``."""

    def hook(name: str):
        B, A = lora.factors[name]

        def capture(module: nn.Module, args: tuple, output: Tensor) -> None:
            out[name.removesuffix(".to_out.0")] = F.linear(F.linear(args[0].to(A.dtype), A), B)

        return capture

    handles = [linear.register_forward_hook(hook(name)) for name, linear in lora.layers.items()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def with_adversary(c: Tensor, a: Tensor, start: int) -> Tensor:
    """``c [1, L, d]`` with the states at ``start .. start + K`` replaced by ``a [K, d]`` (differentiable in ``a``)."""
    return torch.cat([c[:, :start], a[None].to(c.dtype), c[:, start + a.shape[0] :]], dim=1)


def train_receler(
    request: EraseRequest, cfg: RecelerConfig, *, checkpoints: Checkpoints[RecelerState] = Checkpoints()
) -> Edit:
    """A Receler edit of ``request.concepts``: one rank-``rank`` eraser on every ``attn2.to_out.0``.

    Args:
        request: the concepts, the pipeline (for its U-Net) and ``progress``, called after every iteration.
        cfg: the hyper-parameters.
        checkpoints: where the run's :class:`RecelerState` goes, and the state it resumes from.
    Returns:
        The edit, ``info["losses"]`` the erase loss and ``info["reg_losses"]`` the regularisation of every iteration.
    Raises:
        ConfigError: no pipeline, guides or a preserve set given, an SDXL U-Net, a concept whose words
            and adversarial tokens overflow the context, or a state to resume from another config.
    """
    if request.guides is not None or request.preserve:
        raise ConfigError(
            "Receler erases towards the unconditional prediction and keeps the rest by its concept-localised "
            "regularisation: it takes no guides and no preserve set. Drop them."
        )
    run = LoRARun(request, cfg, eraser_layers, cfg.ddim_steps, checkpoints)
    unet, scheduler, lora, device, dtype = run.unet, run.scheduler, run.lora, run.device, run.dtype

    concepts = list(request.concepts)
    enc = request.encoder([*concepts, ""])
    C, null = enc.states[:-1].to(device, dtype), enc.states[-1:].to(device, dtype)  # [n, L, d], [1, L, d]
    n_words = [int(i) for i in enc.last_word[:-1]]  # the words sit at 1 .. n_words
    too_long = [c for c, n in zip(concepts, n_words) if 1 + n + cfg.adversary_tokens > C.shape[1]]
    if too_long:
        raise ConfigError(
            f"{too_long[0]!r} and {cfg.adversary_tokens} adversarial tokens overflow the text context of "
            f"{C.shape[1]} tokens: lower adversary_tokens, or shorten the concept."
        )
    # the reference's init: uniform in [0, 1); one adversary and one Adam per concept
    adversaries = [torch.rand(cfg.adversary_tokens, C.shape[-1], generator=run.generator).to(device) for _ in concepts]
    adversaries = [a.requires_grad_() for a in adversaries]
    attack_opts = [
        torch.optim.Adam([a], lr=cfg.adversary_lr, weight_decay=cfg.adversary_weight_decay) for a in adversaries
    ]
    reg_losses: list[float] = []
    resume = run.resume()
    if resume is not None:
        reg_losses = list(resume.reg_losses)
        with torch.no_grad():
            for a, opt, saved, opt_saved in zip(
                adversaries, attack_opts, resume.adversaries, resume.adversary_optimizers
            ):
                a.copy_(saved)
                opt.load_state_dict(copy.deepcopy(opt_saved))

    h = run.latent[1]
    with frozen(unet), lora.hooked():
        for _ in run.remaining():
            k = int(torch.randint(len(C), (1,), generator=run.generator))
            n = int(torch.randint(cfg.ddim_steps, (1,), generator=run.generator))
            c = C[k : k + 1]
            x_t = _sample_till(unet, scheduler, run.noise(), c, null, n, cfg.start_guidance)  # by the model, erasers on
            t = scheduler.timesteps[n]
            maps: dict[str, Tensor] = {}
            with torch.no_grad(), lora.disabled():  # the original θ*
                e_0 = unet(x_t, t, encoder_hidden_states=null).sample
                with attention_maps(unet, torch.arange(1, 1 + n_words[k]), maps):
                    e_p = unet(x_t, t, encoder_hidden_states=c).sample
            masks = concept_masks(maps, cfg.mask_threshold, side=max(h // 4, 1))
            outs: dict[str, Tensor] = {}
            e_n = _attacked(unet, lora, x_t, t, c, e_p, adversaries[k], attack_opts[k], 1 + n_words[k], cfg, outs)
            loss = erase_loss(e_n, e_0, e_p, cfg.negative_guidance)
            reg = outside_loss(outs, masks)
            run.step(loss + cfg.reg_weight * reg)
            reg_losses.append(float(reg.detach()))
            if run.done(loss):
                advs = ([a.detach().clone() for a in adversaries], [copy.deepcopy(o.state_dict()) for o in attack_opts])
                run.save(RecelerState, list(reg_losses), *advs)
    info = {"rank": cfg.rank, "losses": run.losses, "reg_losses": reg_losses, "layers": len(lora.layers)}
    return request.make_edit("receler", cfg, lora.updates(), guides=[""] * len(concepts), info=info)


def _attacked(
    unet: nn.Module,
    lora: _LoRA,
    x_t: Tensor,
    t: Tensor,
    c: Tensor,
    e_p: Tensor,
    a: Tensor,
    opt: torch.optim.Optimizer,
    start: int,
    cfg: RecelerConfig,
    outs: dict[str, Tensor],
) -> Tensor:
    """``ε(x_t, [c; a])`` of the last of ``adversary_steps`` attack steps on ``a`` (``ε(x_t, c)`` with none),
    its erasers' outputs in ``outs``; ``a`` and ``opt`` are stepped in place."""
    if cfg.adversary_steps == 0:
        with eraser_outputs(lora, outs):
            return unet(x_t, t, encoder_hidden_states=c).sample
    for step in range(cfg.adversary_steps):
        last = step == cfg.adversary_steps - 1
        with eraser_outputs(lora, outs):
            e_n = unet(x_t, t, encoder_hidden_states=with_adversary(c, a, start)).sample
        (a.grad,) = torch.autograd.grad(F.mse_loss(e_n.float(), e_p.float()), a, retain_graph=last)
        opt.step()
    return e_n
