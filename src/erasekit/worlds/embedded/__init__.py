"""The embedded world: procedural captioned images, a small text-to-image model trained on them, its judge.

It is erasekit's default model: erasure can be seen, attacked and scored offline on a CPU, through the
code paths a Stable Diffusion pipeline uses (cross-attention K/V, classifier-free guidance, LoRA loading)::

    from erasekit.worlds import embedded
    pipe = embedded.load_pipeline()
    images = pipe(["a painting of a red car by van gogh"], generator=torch.Generator().manual_seed(0)).images
    embedded.load_judge().predict(images)   # [{"object": "car", "color": "red", "style": "van gogh", "unsafe": False}]
"""

from __future__ import annotations

from .judge import Judge, load_judge
from .load import load_pipeline
from .pipeline import DEFAULT_GUIDANCE, DEFAULT_STEPS, EmbeddedPipeline
from .prompts import concepts, prompt_suite, suite_rows, write_prompt_suite_csv
from .renderer import Renderer, Scene

__all__ = [
    "DEFAULT_GUIDANCE",
    "DEFAULT_STEPS",
    "EmbeddedPipeline",
    "Judge",
    "Renderer",
    "Scene",
    "concepts",
    "load_judge",
    "load_pipeline",
    "prompt_suite",
    "suite_rows",
    "write_prompt_suite_csv",
]
