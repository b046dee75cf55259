"""CLIP score as RECE, UCE and MACE report it: 100 × cosine(image, prompt) with CLIP ViT-B/32.

That is the diagonal of CLIP's ``logits_per_image`` (``logit_scale.exp()`` is 100 for ViT-B/32),
averaged over images. Prompts longer than CLIP's 77 tokens are truncated by the tokenizer, which keeps
the end-of-text token the text embedding is read from.

torchmetrics' ``CLIPScore`` computes the same quantity but breaks on transformers >= 5 (its
``get_image_features`` returns a ``ModelOutput``, not a tensor), and it cuts long prompts after
tokenising, which drops the end-of-text token; so the few lines are here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from PIL import Image

from erasekit.errors import MissingWeightsError

from .base import Images, Labels, MeanMetric, Prompts, check_batch
from .weights import resolve_weights


class CLIPScore(MeanMetric):
    """Mean of 100 × cos(CLIP image embedding, CLIP text embedding) over (image, prompt) pairs.

    Args:
        weights: a transformers CLIP folder; default ``$ERASEKIT_CLIP`` or
            ``openai/clip-vit-base-patch32`` from the local Hugging Face cache.
        device: where CLIP runs.
        batch_size: images per forward pass.

    Raises:
        MissingWeightsError: no CLIP weights found locally (the message says how to provide them).
    """

    key = "clip_score"

    def __init__(
        self,
        *,
        weights: str | os.PathLike[str] | None = None,
        device: str | torch.device = "cpu",
        batch_size: int = 32,
    ) -> None:
        from transformers import CLIPModel, CLIPProcessor

        path = resolve_weights("clip", weights)
        try:
            self.model = CLIPModel.from_pretrained(path, local_files_only=True).eval().to(device)
            self.processor = CLIPProcessor.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise MissingWeightsError(
                f"{path} is not a complete transformers CLIP folder ({type(err).__name__}: {str(err)[:200]}); "
                "it needs config.json, the weights, the tokenizer files and preprocessor_config.json."
            ) from err
        self.device, self.batch_size = torch.device(device), batch_size
        self.reset()

    @torch.no_grad()
    def scores(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        """Returns 100 × cosine for each (image, prompt) pair, [B] float64."""
        check_batch(images, prompts, "prompts")
        out = []
        for i in range(0, len(images), self.batch_size):
            inputs = self.processor(
                text=list(prompts[i : i + self.batch_size]),
                images=[im.convert("RGB") for im in images[i : i + self.batch_size]],
                return_tensors="pt",
                padding=True,
                truncation=True,
            ).to(self.device)
            result = self.model(**inputs)
            image = torch.nn.functional.normalize(result.image_embeds.double(), dim=-1)  # [b, d]
            text = torch.nn.functional.normalize(result.text_embeds.double(), dim=-1)  # [b, d]
            out.append(100.0 * (image * text).sum(-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)

    def add_batch(self, images: Images, prompts: Prompts, labels: Labels, references: Images | None) -> None:
        scores = self.scores(images, prompts)
        self.add(float(scores.sum()), len(scores))
