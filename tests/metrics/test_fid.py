import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image
from torch import nn

from erasekit.errors import ConfigError, MissingWeightsError
from erasekit.metrics import FID, InceptionFeatures


class PooledPixels(nn.Module):
    """A stand-in feature extractor: uint8 [B, 3, H, W] -> 4×4 average-pooled pixels [B, 48]."""

    num_features = 48

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x.float() / 255, 4).flatten(1)


def _images(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [
        Image.fromarray(torch.randint(0, 256, (16, 16, 3), generator=g, dtype=torch.uint8).numpy()) for _ in range(n)
    ]


def _reference_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of two Gaussians fitted to rows of a and b (Heusel et al. 2017, Eq. 6)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * covmean))


def test_fid_matches_the_frechet_formula():
    edited, original = _images(64, 0), [im.rotate(90) for im in _images(64, 1)]
    metric = FID(feature=PooledPixels())
    metric.update(edited[:40], ["p"] * 40, references=original[:40])
    metric.update(edited[40:], ["p"] * 24, references=original[40:])
    feats = PooledPixels()
    to = lambda ims: feats(torch.from_numpy(np.stack([np.asarray(i) for i in ims])).permute(0, 3, 1, 2)).double()  # noqa: E731
    expected = _reference_fid(to(edited).numpy(), to(original).numpy())
    assert metric.compute()["fid"] == pytest.approx(expected, rel=1e-3)


def test_fid_of_a_set_with_itself_is_zero():
    images = _images(60, 2)
    metric = FID(feature=PooledPixels())
    metric.update(images, ["p"] * 60, references=images)
    assert metric.compute()["fid"] == pytest.approx(0.0, abs=1e-3)


def test_fid_needs_references_and_two_images():
    metric = FID(feature=PooledPixels())
    with pytest.raises(ConfigError, match="needs references"):
        metric.update(_images(2, 0), ["p", "p"])
    metric.update(_images(1, 0), ["p"], references=_images(1, 1))
    with pytest.raises(ConfigError, match="at least 2 images"):
        metric.compute()


@pytest.mark.filterwarnings("ignore:.*torch.jit:DeprecationWarning")
def test_inception_loads_torchscript_and_reports_missing_or_wrong_files(tmp_path, monkeypatch):
    monkeypatch.delenv("ERASEKIT_INCEPTION", raising=False)
    scripted = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(PooledPixels()).save(str(scripted))
    features = InceptionFeatures(scripted)
    assert features(torch.zeros(2, 3, 8, 8, dtype=torch.uint8)).shape == (2, 48)
    with pytest.raises(MissingWeightsError, match=r"inception-2015-12-05\.pt.*ERASEKIT_INCEPTION"):
        InceptionFeatures(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not torchscript")
    with pytest.raises(MissingWeightsError, match="is not the TorchScript FID Inception"):
        InceptionFeatures(junk)
