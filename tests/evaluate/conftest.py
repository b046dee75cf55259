from __future__ import annotations

import numpy as np
import pytest

import erasekit
from erasekit.evaluate import parse_protocol


class StubJudge:
    """The embedded judge's interface: reads "monet" in bright images, "picasso" in dark ones."""

    def predict(self, images):
        out = []
        for im in images:
            bright = np.asarray(im.convert("L")).mean() > 127
            out.append({"object": "car", "color": "red", "style": "monet" if bright else "picasso", "unsafe": False})
        return out

    def detects(self, images, concept):
        return [p["style"] == concept for p in self.predict(images)]


TINY_PRESET = {
    "name": "tiny-embedded",
    "concept": "monet",
    "baseline": True,
    "generation": {"steps": 2, "guidance": 2.0, "batch_size": 3},
    "prompts": {
        "target": {"embedded": "target", "n": 3, "seeds": [0, 1]},
        "generality": {"embedded": "generality", "n": 2, "seeds": [0]},
        "specificity": {"embedded": "specificity", "n": 3, "seeds": [0]},
    },
    "metrics": [
        {"name": "detection_rate", "group": "efficacy", "prompt_set": "target", "suffix": "_target"},
        {"name": "detection_rate", "group": "generality", "prompt_set": "generality", "suffix": "_generality"},
        {"name": "attribute_accuracy", "group": "specificity", "prompt_set": "specificity", "suffix": "_specificity"},
    ],
    "derived": [
        {
            "name": "mace_h_o",
            "group": "quality",
            "fn": "mace_h_o",
            "inputs": [
                "efficacy.judge_detect_rate_target",
                "specificity.judge_acc_specificity",
                "generality.judge_detect_rate_generality",
            ],
        }
    ],
}


@pytest.fixture
def tiny_preset():
    return parse_protocol(TINY_PRESET)


@pytest.fixture
def stub_judge():
    return StubJudge


@pytest.fixture
def monet_edit(tiny_pipe):
    return erasekit.erase(tiny_pipe, ["monet"], method="uce")
