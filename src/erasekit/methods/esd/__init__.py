"""ESD: Erasing Concepts from Diffusion Models (Gandikota et al., ICCV 2023, arXiv 2303.07345), Eq. 7.

Fine-tune the U-Net so that its noise prediction for the concept ``c`` becomes a negatively guided
prediction of the frozen original ``θ*``:

    ε_θ(x_t, c, t)  ←  ε_θ*(x_t, ∅, t) − η (ε_θ*(x_t, c, t) − ε_θ*(x_t, ∅, t))

with ``x_t`` a latent partially denoised (DDIM, classifier-free guidance ``start_guidance``) from
random noise for a random number of steps. As the reference runs it:
rohitgandikota/erasing ``train-scripts/train-esd.py`` (``train_esd``, parent of commit 414dc94):
one concept per iteration drawn at random, batch 1, Adam, MSE, the latent sampled by the model
being trained, ``eta = 0``. Defaults are that script's argparse defaults.

Where we deviate, and why:

- **A LoRA, not full weights.** The update of every trained ``nn.Linear`` is ``ΔW = B A``
  (``B [d_out, r]`` zero-initialised, ``A [r, d_in]`` as peft initialises it), added to the layer's
  output by forward hooks that are removed afterwards: the pipeline's weights are never written,
  and the result is an :class:`Edit` like every other method's. The reference's ``lr`` (1e-5) was
  tuned for full weights; a LoRA from ``B = 0`` moves less per step, so the default erases less
  than the reference's model would: the ``"lora"`` settings (lr 3e-3, 300 iterations; the lr chosen
  on the val split) is what erases a concept of the embedded world (see ``SETTINGS``).
- **Layers.** ESD-x trains the cross-attention ``to_k``/``to_v`` (the reference's ``xattn`` also
  trains ``attn2.to_q``/``to_out``; K/V only is its later ``esd-x-strict``), the layers
  :meth:`Edit.apply` knows. ESD-u trains the ``nn.Linear`` layers of self-attention and
  feed-forward blocks; the reference's ``noxattn`` also trains convolutions and norms, which a
  LoRA of ``nn.Linear`` layers cannot hold.
- **Timestep.** The reference evaluates the U-Net at a DDPM step drawn from
  ``[1000 t/T, 1000 (t+1)/T)`` after ``t`` DDIM steps from noise, which counts from the wrong end
  (the latent is at ``≈ 1000 (1 − t/T)``); we use the scheduler's timestep the latent is actually
  at, as the reference's diffusers script ``esd_sd.py`` does.
- **Randomness** comes from one ``torch.Generator`` seeded with ``seed``, never the global RNG.
"""

from __future__ import annotations

from ...edit import Edit
from .. import EraseRequest, register
from .config import SETTINGS, ESDConfig, ESDState, Variant
from .run import Checkpoints
from .train import train_esd

__all__ = ["SETTINGS", "Checkpoints", "ESDConfig", "ESDState", "Variant", "esd", "train_esd"]


@register(
    "esd",
    ESDConfig,
    settings=SETTINGS,
    takes_preserve=False,
    default_settings="lora",
    variants={"esd-x": {"variant": "x"}, "esd-u": {"variant": "u"}},
)
def esd(request: EraseRequest, cfg: ESDConfig) -> Edit:
    """ESD fine-tuning (x: cross-attention K/V, u: self-attention and feed-forward) as a LoRA (ESD Eq. 7)."""
    return train_esd(request, cfg)
