"""Training losses: the pixel losses and their arithmetic, the perceptual loss against
torchvision's VGG19 (layer names, ImageNet normalisation, a local weights file, the errors when
the ImageNet weights cannot be had), and the three GAN losses by their formulas."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import srzoo
from srzoo.discriminators import UNetDiscriminatorSN
from srzoo.losses import L1, VGG19_LAYERS, Charbonnier, GANLoss, Perceptual, SumLoss

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _pair(seed: int = 0, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, size, size, generator=g), torch.rand(2, 3, size, size, generator=g)


def test_pixel_losses_and_their_sums() -> None:
    sr, hr = _pair()
    assert torch.allclose(L1()(sr, hr), (sr - hr).abs().mean())
    eps = 1e-3
    assert torch.allclose(Charbonnier(eps=eps)(sr, hr), ((sr - hr) ** 2 + eps**2).sqrt().mean())
    assert torch.allclose(Charbonnier(eps=eps)(hr, hr), torch.tensor(eps))
    combined = L1() + 0.5 * Charbonnier()
    assert isinstance(combined, SumLoss) and combined.weights == [1.0, 0.5]
    expected = L1()(sr, hr) + 0.5 * Charbonnier()(sr, hr)
    assert torch.allclose(combined(sr, hr), expected)
    doubled = 2 * combined
    assert doubled.weights == [2.0, 1.0] and torch.allclose(doubled(sr, hr), 2 * expected)
    sr.requires_grad_(True)
    combined(sr, hr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    with pytest.raises(srzoo.ArgumentError):
        Charbonnier(eps=0)


def _torchvision_vgg19_features() -> torch.nn.Sequential:
    """torchvision's VGG19 ``features`` up to relu3_4 (the rest only costs time here)."""
    tv = pytest.importorskip("torchvision.models.vgg")
    torch.manual_seed(0)
    cfg = tv.cfgs["E"]
    features = tv.make_layers(cfg[: cfg.index(256) + 4])
    for m in features:  # torchvision's biases start at zero: make them visible
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.uniform_(m.bias, -0.1, 0.1)
    return features.eval()


def test_perceptual_loss_matches_torchvision_vgg19_layers(tmp_path: Path) -> None:
    features = _torchvision_vgg19_features()
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    weights = {"conv1_2": 0.1, "relu2_2": 0.5, "conv3_4": 1.0}
    loss = Perceptual(weights, weights=path)
    sr, hr = _pair(1, size=32)
    with torch.no_grad():
        taps = {}
        x, y = (sr - MEAN) / STD, (hr - MEAN) / STD
        for i, layer in enumerate(features):
            x, y = layer(x), layer(y)  # torchvision's ReLUs work in place: keep copies
            taps[VGG19_LAYERS[i]] = (x.clone(), y.clone())
        expected = sum(w * F.l1_loss(*taps[name]) for name, w in weights.items())
        assert torch.allclose(loss(sr, hr), torch.as_tensor(expected), rtol=1e-4)
        # relu is after conv: relu3_4's features are conv3_4's, clamped at zero.
        assert torch.equal(loss.features(sr)["conv3_4"].clamp(min=0), taps["relu3_4"][0])
        assert float(loss(hr, hr)) == 0.0
    # Keys without the "features." prefix load too; range_norm maps [-1, 1] to [0, 1].
    torch.save(features.state_dict(), tmp_path / "bare.pth")
    bare = Perceptual(weights, weights=tmp_path / "bare.pth", range_norm=True)
    with torch.no_grad():
        assert torch.allclose(bare(sr * 2 - 1, hr * 2 - 1), loss(sr, hr), rtol=1e-4)


def test_perceptual_loss_trains_the_input_not_the_vgg() -> None:
    loss = Perceptual({"relu3_4": 1.0}, weights=None)
    assert not any(p.requires_grad for p in loss.parameters())
    assert len(loss.vgg) == VGG19_LAYERS.index("relu3_4") + 1  # no layer past the last one used
    sr, hr = _pair(2)
    sr.requires_grad_(True)
    (0.01 * loss + L1())(sr, hr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_perceptual_loss_errors_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(srzoo.ArgumentError, match="conv5_4"):
        Perceptual({"conv6_1": 1.0}, weights=None)
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(srzoo.WeightsError, match="not a VGG19 state dict"):
        Perceptual(weights=tmp_path / "bad.pth")

    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    pytest.importorskip("torchvision")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(srzoo.WeightsError, match=r"vgg19-dcbb9e9d\.pth.*weights="):
        Perceptual()
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(srzoo.MissingDependencyError, match=r"srzoo\[train\]"):
        Perceptual()


def test_gan_losses_follow_their_formulas() -> None:
    logits = torch.tensor([[-2.0, 0.5], [1.5, 3.0]])
    vanilla, ls, hinge = GANLoss("vanilla"), GANLoss("lsgan"), GANLoss("hinge")
    sig = torch.sigmoid(logits)
    assert torch.allclose(vanilla(logits, True), -sig.log().mean())
    assert torch.allclose(vanilla(logits, False), -(1 - sig).log().mean())
    assert torch.allclose(ls(logits, True), ((logits - 1) ** 2).mean())
    assert torch.allclose(ls(logits, False), (logits**2).mean())
    assert torch.allclose(hinge(logits, True), (1 - logits).clamp(min=0).mean())
    assert torch.allclose(hinge(logits, False), (1 + logits).clamp(min=0).mean())
    assert torch.allclose(hinge(logits, True, for_discriminator=False), -logits.mean())
    assert torch.allclose(
        vanilla(logits, True, for_discriminator=False), vanilla(logits, True)
    )  # the generator's vanilla loss is the non-saturating one
    with pytest.raises(srzoo.ArgumentError):
        GANLoss("wgan")  # type: ignore[arg-type]


def test_gan_loss_trains_a_discriminator() -> None:
    torch.manual_seed(0)
    net_d = UNetDiscriminatorSN(num_feat=8)
    opt = torch.optim.Adam(net_d.parameters(), lr=1e-3)
    gan = GANLoss("vanilla")
    real = torch.rand(2, 3, 32, 32)
    fake = real.flip(-1).roll(5, -2) * 0.5
    losses = []
    for _ in range(8):
        d = gan(net_d(real), True) + gan(net_d(fake), False)
        opt.zero_grad()
        d.backward()
        opt.step()
        losses.append(float(d.detach()))
    assert losses[-1] < losses[0]
