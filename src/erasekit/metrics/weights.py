"""Where the judges' weights come from: an explicit path, an environment variable, or a local cache.

erasekit never downloads. Each judge that needs weights has one entry in ``WEIGHTS`` saying what the
file is, where it is published, and where erasekit looks for it; a miss raises
:class:`MissingWeightsError` with all of that, so the message alone is enough to fix it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from erasekit.errors import ConfigError, MissingWeightsError


@dataclass(frozen=True)
class WeightsSpec:
    """How to find one judge's weights.

    Attributes:
        name: the key of ``--weights NAME=PATH``.
        env: the environment variable that points to the weights.
        what: the file or folder expected, in words.
        source: where it is published.
        fetch: a command that fetches it on a machine with network access.
        candidates: default local places, in the order they are tried.
    """

    name: str
    env: str
    what: str
    source: str
    fetch: str
    candidates: Callable[[], list[Path]]


def _torch_hub(filename: str) -> Callable[[], list[Path]]:
    def candidates() -> list[Path]:
        import torch

        return [Path(torch.hub.get_dir()) / "checkpoints" / filename]

    return candidates


def _hf_cache(repo_id: str) -> Callable[[], list[Path]]:
    def candidates() -> list[Path]:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
        return [Path(found).parent] if isinstance(found, str) else []

    return candidates


def _package_file(package: str, *parts: str) -> Callable[[], list[Path]]:
    def candidates() -> list[Path]:
        from importlib.util import find_spec

        spec = find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return []
        return [Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)]

    return candidates


def _first(*sources: Callable[[], list[Path]]) -> Callable[[], list[Path]]:
    return lambda: [path for source in sources for path in source()]


WEIGHTS: dict[str, WeightsSpec] = {
    spec.name: spec
    for spec in (
        WeightsSpec(
            "clip",
            "ERASEKIT_CLIP",
            "CLIP ViT-B/32 as a transformers folder (config.json, model.safetensors, tokenizer and "
            "preprocessor_config.json)",
            "openai/clip-vit-base-patch32 on the Hugging Face Hub",
            "huggingface-cli download openai/clip-vit-base-patch32",
            _hf_cache("openai/clip-vit-base-patch32"),
        ),
        WeightsSpec(
            "inception",
            "ERASEKIT_INCEPTION",
            "the FID Inception-v3 as TorchScript, inception-2015-12-05.pt (StyleGAN2-ADA / clean-fid's file)",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            "wget https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            _torch_hub("inception-2015-12-05.pt"),
        ),
        WeightsSpec(
            "alexnet",
            "ERASEKIT_ALEXNET",
            "torchvision's ImageNet AlexNet state dict, alexnet-owt-7be5be79.pth (the LPIPS backbone)",
            "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            "wget https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
            _torch_hub("alexnet-owt-7be5be79.pth"),
        ),
        WeightsSpec(
            "lpips",
            "ERASEKIT_LPIPS",
            "the LPIPS v0.1 linear layers for AlexNet, alex.pth (ships in the torchmetrics and lpips wheels)",
            "richzhang/PerceptualSimilarity on GitHub: lpips/weights/v0.1/alex.pth",
            "pip install torchmetrics",
            _first(
                _package_file("torchmetrics", "functional", "image", "lpips_models", "alex.pth"),
                _package_file("lpips", "weights", "v0.1", "alex.pth"),
            ),
        ),
        WeightsSpec(
            "imagenet",
            "ERASEKIT_IMAGENET_CLASSIFIER",
            "an ImageNet-1k ResNet-50 classifier as a transformers folder (config.json, model.safetensors, "
            "preprocessor_config.json)",
            "microsoft/resnet-50 on the Hugging Face Hub",
            "huggingface-cli download microsoft/resnet-50",
            _hf_cache("microsoft/resnet-50"),
        ),
    )
}


def resolve_weights(name: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Returns the local path of judge ``name``'s weights: ``path``, else ``$ENV``, else the cache.

    Args:
        name: a key of ``WEIGHTS`` ("clip", "inception", "alexnet", "lpips", "imagenet").
        path: an explicit file or folder; when given it must exist (no fallback hides a typo).

    Raises:
        ConfigError: ``name`` is not a known judge.
        MissingWeightsError: nothing found; the message says which file, from where, and how to point to it.
    """
    if name not in WEIGHTS:
        raise ConfigError(f"unknown judge weights {name!r}; known: {', '.join(sorted(WEIGHTS))}.")
    spec = WEIGHTS[name]
    how = (
        f"Get it from {spec.source} (e.g. `{spec.fetch}` on a machine with network access), then pass "
        f"--weights {name}=PATH or set {spec.env}=PATH. erasekit never downloads weights."
    )
    explicit = Path(path) if path is not None else None
    where = "given"
    if explicit is None and os.environ.get(spec.env):
        explicit, where = Path(os.environ[spec.env]), f"${spec.env}"
    if explicit is not None:
        if not explicit.exists():
            raise MissingWeightsError(f"{spec.what}: the {where} path {explicit} does not exist. {how}")
        return explicit
    looked = spec.candidates()
    for candidate in looked:
        if candidate.exists():
            return candidate
    places = ", ".join(str(p) for p in looked) or "the local Hugging Face cache"
    raise MissingWeightsError(f"{spec.what} not found (looked in {places}). {how}")
