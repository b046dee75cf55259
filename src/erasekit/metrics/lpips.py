"""LPIPS (AlexNet, v0.1) between edited and original images, at 64 × 64 as RECE Table 3 and ESD report it.

LPIPS (Zhang et al. 2018, Eq. 1): for each of AlexNet's five ReLU outputs ``f_l`` [B, C_l, H_l, W_l],
unit-normalise along channels, square the difference, weight the channels with the learnt ``w_l``
(a 1×1 conv) and average over space; sum the five layers::

    d(x, y) = Σ_l mean_hw( w_l · (f̂_l(x) − f̂_l(y))² )

Images are resized (shorter side to 64, bilinear, then a 64 × 64 centre crop, as the ESD/UCE evaluation
scripts' ``transforms.Resize(64)``) and mapped to [-1, 1]. The style-erasure score is
``LPIPS_d = LPIPS_e − LPIPS_u``: distance on the erased artist's prompts minus distance on the others'.

torchmetrics' LPIPS builds AlexNet with torchvision, which erasekit does not depend on; the network
below has torchvision's layout, so torchvision's checkpoint loads into it unchanged.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Sequence

import torch
from PIL import Image
from torch import Tensor, nn

from erasekit.errors import MissingWeightsError

from .base import Images, Labels, MeanMetric, Prompts, to_tensor
from .weights import resolve_weights

SIZE = 64
CHANNELS = (64, 192, 384, 256, 256)  # AlexNet relu1..relu5
TAPS = (1, 4, 7, 9, 11)  # indices of those ReLUs in torchvision's ``alexnet().features``
SHIFT = (-0.030, -0.088, -0.188)  # LPIPS ScalingLayer: ImageNet statistics in [-1, 1] units
SCALE = (0.458, 0.448, 0.450)


def alexnet_features() -> nn.Sequential:
    """Returns AlexNet's convolutional trunk in torchvision's layout (``features.<i>`` keys)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=False), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=False),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=False),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=False),
    )  # fmt: skip


class LPIPSNet(nn.Module):
    """LPIPS-alex v0.1: ``forward(x, y)`` -> [B] distances for images in [-1, 1], [B, 3, H, W]."""

    def __init__(self) -> None:
        super().__init__()
        self.features = alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        self.register_buffer("shift", torch.tensor(SHIFT)[None, :, None, None], persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE)[None, :, None, None], persistent=False)

    def taps(self, x: Tensor) -> list[Tensor]:
        """Returns the five ReLU outputs for images in [-1, 1]."""
        h, out = (x - self.shift) / self.scale, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in TAPS:
                out.append(h)
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for lin, fx, fy in zip(self.lins, self.taps(x), self.taps(y)):
            diff = (unit_channels(fx) - unit_channels(fy)) ** 2  # [B, C_l, H_l, W_l]
            total = total + lin(diff).mean(dim=(1, 2, 3))  # 1×1 conv to one channel, then spatial mean
        return total


def unit_channels(f: Tensor, eps: float = 1e-10) -> Tensor:
    """Returns ``f`` [B, C, H, W] divided by its L2 norm over channels (LPIPS' ``normalize_tensor``)."""
    return f / torch.sqrt((f**2).sum(dim=1, keepdim=True) + eps)


def load_lpips(
    *, backbone: str | os.PathLike[str] | None = None, linear: str | os.PathLike[str] | None = None
) -> LPIPSNet:
    """Returns LPIPS-alex v0.1 with torchvision's AlexNet weights and LPIPS' linear layers, in eval mode.

    Args:
        backbone: ``alexnet-owt-7be5be79.pth``; default ``$ERASEKIT_ALEXNET`` or torch hub's checkpoints.
        linear: LPIPS' ``alex.pth``; default ``$ERASEKIT_LPIPS`` or the copy in the torchmetrics wheel.

    Raises:
        MissingWeightsError: a file is missing or does not hold the expected tensors.
    """
    net = LPIPSNet()
    backbone_path, linear_path = resolve_weights("alexnet", backbone), resolve_weights("lpips", linear)
    alex = _load_state(backbone_path)
    trunk = {k.removeprefix("features."): v for k, v in alex.items() if k.startswith("features.")}
    lins = {f"{k[3]}.weight": v for k, v in _load_state(linear_path).items() if k.startswith("lin") and "weight" in k}
    for module, state, path in ((net.features, trunk, backbone_path), (net.lins, lins, linear_path)):
        try:
            module.load_state_dict(state)
        except RuntimeError as err:
            raise MissingWeightsError(
                f"{path} does not hold the expected LPIPS-alex tensors: {str(err)[:300]}"
            ) from err
    return net.eval().requires_grad_(False)


def _load_state(path: os.PathLike[str]) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError, struct.error) as err:
        raise MissingWeightsError(f"{path} is not a readable torch state dict: {str(err)[:200]}") from err
    if not isinstance(state, dict):
        raise MissingWeightsError(f"{path} holds a {type(state).__name__}, not a state dict.")
    return state


def preprocess(images: Sequence[Image.Image]) -> Tensor:
    """Returns [B, 3, 64, 64] in [-1, 1]: shorter side to 64 (bilinear), centre crop, as ``Resize(64)``."""
    out = []
    for image in images:
        w, h = image.size
        scale = SIZE / min(w, h)
        resized = image.convert("RGB").resize(
            (max(SIZE, round(w * scale)), max(SIZE, round(h * scale))), Image.BILINEAR
        )
        left, top = (resized.width - SIZE) // 2, (resized.height - SIZE) // 2
        out.append(resized.crop((left, top, left + SIZE, top + SIZE)))
    return to_tensor(out) * 2 - 1


class LPIPS(MeanMetric):
    """Mean LPIPS-alex distance between each edited image and the original model's image for it.

    Args:
        net: an ``LPIPSNet``; default ``load_lpips()`` (local weights only).
        batch_size: pairs per forward pass.
    """

    needs_reference = True
    key, counted = "lpips", "image pair"

    def __init__(self, *, net: LPIPSNet | None = None, batch_size: int = 64) -> None:
        self.net = net if net is not None else load_lpips()
        self.batch_size = batch_size
        self.reset()

    @torch.no_grad()
    def add_batch(self, images: Images, prompts: Prompts, labels: Labels, references: Images | None) -> None:
        for i in range(0, len(images), self.batch_size):
            x = preprocess(images[i : i + self.batch_size])
            y = preprocess(references[i : i + self.batch_size])
            self.add(float(self.net(x, y).double().sum()), len(x))
