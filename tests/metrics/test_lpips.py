import pytest
import torch
from PIL import Image

from erasekit.errors import ConfigError, MissingWeightsError
from erasekit.metrics import LPIPS, LPIPSNet, load_lpips
from erasekit.metrics.lpips import CHANNELS, preprocess, unit_channels


@pytest.fixture
def net():
    torch.manual_seed(0)
    return LPIPSNet().eval()


def _images(n, seed, size=(80, 72)):
    g = torch.Generator().manual_seed(seed)
    return [
        Image.fromarray(torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy())
        for _ in range(n)
    ]


def test_preprocess_resizes_to_64_and_maps_to_minus_one_one():
    x = preprocess(_images(2, 0))
    assert x.shape == (2, 3, 64, 64) and x.min() >= -1 and x.max() <= 1


@torch.no_grad()
def test_distance_is_zero_for_identical_images_and_symmetric(net):
    x, y = preprocess(_images(3, 0)), preprocess(_images(3, 1))
    torch.testing.assert_close(net(x, x), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(net(x, y), net(y, x))


@torch.no_grad()
def test_distance_follows_lpips_eq_1(net):
    # with all channel weights 1, LPIPS is Σ_l mean_hw ||f̂_l(x) − f̂_l(y)||² over channels
    for lin in net.lins:
        lin.weight.data.fill_(1.0)
    x, y = preprocess(_images(2, 2)), preprocess(_images(2, 3))
    expected = sum(
        ((torch.nn.functional.normalize(fx, dim=1, eps=0) - torch.nn.functional.normalize(fy, dim=1, eps=0)) ** 2)
        .sum(1)
        .mean((1, 2))
        for fx, fy in zip(net.taps(x), net.taps(y))
    )
    torch.testing.assert_close(net(x, y), expected, rtol=1e-4, atol=1e-6)


def test_unit_channels():
    f = torch.randn(2, 5, 3, 3)
    torch.testing.assert_close(unit_channels(f).norm(dim=1), torch.ones(2, 3, 3), rtol=1e-5, atol=1e-5)


def test_metric_averages_pairs_and_needs_references(net):
    metric = LPIPS(net=net, batch_size=2)
    edited, original = _images(3, 4), _images(3, 5)
    metric.update(edited, ["p"] * 3, references=original)
    with torch.no_grad():
        expected = net(preprocess(edited), preprocess(original)).mean()
    assert metric.compute()["lpips"] == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ConfigError, match="needs references"):
        metric.update(edited, ["p"] * 3)


def _write_weights(tmp_path, net):
    backbone = {f"features.{k}": v for k, v in net.features.state_dict().items()}
    backbone["classifier.1.weight"] = torch.zeros(2, 2)  # torchvision's file also holds the classifier
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(CHANNELS)}
    torch.save(backbone, tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(linear, tmp_path / "alex.pth")
    return tmp_path / "alexnet-owt-7be5be79.pth", tmp_path / "alex.pth", linear


def test_load_lpips_reads_torchvision_and_lpips_files(tmp_path, net):
    backbone, linear, lin_state = _write_weights(tmp_path, net)
    loaded = load_lpips(backbone=backbone, linear=linear)
    torch.testing.assert_close(loaded.features[0].weight, net.features[0].weight)
    torch.testing.assert_close(loaded.lins[4].weight, lin_state["lin4.model.1.weight"])
    assert not any(p.requires_grad for p in loaded.parameters())


def test_load_lpips_errors(tmp_path, net, monkeypatch):
    monkeypatch.delenv("ERASEKIT_ALEXNET", raising=False)
    backbone, linear, _ = _write_weights(tmp_path, net)
    with pytest.raises(MissingWeightsError, match=r"alexnet-owt-7be5be79\.pth"):
        load_lpips(backbone=tmp_path / "none.pth", linear=linear)
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3)}, wrong)
    with pytest.raises(MissingWeightsError, match="does not hold the expected LPIPS-alex tensors"):
        load_lpips(backbone=wrong, linear=linear)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk")
    with pytest.raises(MissingWeightsError, match="not a readable torch state dict"):
        load_lpips(backbone=backbone, linear=junk)
