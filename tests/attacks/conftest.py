from __future__ import annotations

import numpy as np
import pytest
import torch

import erasekit
from erasekit.attacks import Sampling
from erasekit.worlds.tiny import tiny_pipeline

FAST = Sampling(steps=2)  # two denoising steps: every code path, little time


class BrightJudge:
    """A stub judge: the concept is "seen" when the image's mean brightness is above ``threshold``."""

    def __init__(self, threshold: float = 127.5, *, always: bool | None = None):
        self.threshold, self.always, self.calls = threshold, always, 0

    def detects(self, images, concept):
        self.calls += 1
        if self.always is not None:
            return [self.always] * len(images)
        return [float(np.asarray(img, dtype=np.float64).mean()) > self.threshold for img in images]


class PromptJudge:
    """A stub judge that flags a fixed set of image indices in the pre-attack pass (its first call)."""

    def __init__(self, flagged: set[int]):
        self.flagged, self.calls = flagged, 0

    def detects(self, images, concept):
        self.calls += 1
        if self.calls == 1:
            return [i in self.flagged for i in range(len(images))]
        return [False] * len(images)


@pytest.fixture
def never():
    return BrightJudge(always=False)


@pytest.fixture
def edited():
    """A tiny SD 1.x pipeline and a UCE edit of "cat" (not applied)."""
    pipe = tiny_pipeline("sd1")
    return pipe, erasekit.erase(pipe, ["cat"], method="uce")


def unet_state(pipe) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in pipe.unet.state_dict().items()}


def same_state(pipe, state) -> bool:
    return all(torch.equal(v, state[k]) for k, v in pipe.unet.state_dict().items())
