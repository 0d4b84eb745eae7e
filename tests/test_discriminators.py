"""The GAN discriminators: official layouts against stand-ins of BasicSR's and Real-ESRGAN's code.

Random weights (batch-norm statistics and spectral-norm vectors included) saved as the official
files are (``params`` wrapper, hook-based spectral-norm names), read back by
``load_discriminator``, must give the reference's scores; the documented output shapes, the
errors for inputs each discriminator cannot score, and training through them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator, load_discriminator

from .reference_basicsr import BasicSRVGGStyleDiscriminator, RealESRGANUNetDiscriminatorSN
from .util import randomize_


@torch.no_grad()
def _randomized(module: nn.Module, seed: int) -> nn.Module:
    randomize_(module, seed=seed)
    # Spectral norm's vectors are unit estimates of the singular vectors; keep them unit length.
    for name, buffer in module.named_buffers():
        if name.endswith(("weight_u", "weight_v", "._u", "._v")):
            buffer.copy_(F.normalize(buffer, dim=0))
    return module


def _save_official(tmp_path: Path, state: dict[str, torch.Tensor]) -> list[Path]:
    pth, st = tmp_path / "net_d.pth", tmp_path / "net_d.safetensors"
    torch.save({"params": state}, pth)
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(st))
    return [pth, st]


@pytest.mark.parametrize(("input_size", "num_feat", "num_in_ch"), [(128, 8, 3), (256, 4, 1)])
def test_vgg_style_official_layout(
    tmp_path: Path, input_size: int, num_feat: int, num_in_ch: int
) -> None:
    ref = _randomized(BasicSRVGGStyleDiscriminator(num_in_ch, num_feat, input_size), 1).eval()
    x = torch.rand(3, num_in_ch, input_size, input_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(x)
    for path in _save_official(tmp_path, ref.state_dict()):
        net = load_discriminator(path)
        assert isinstance(net, VGGStyleDiscriminator) and net.training
        assert net.input_size == input_size and net.in_channels == num_in_ch
        with torch.no_grad():
            got = net.eval()(x)
        assert got.shape == (3, 1)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("skip_connection", [True, False])
@pytest.mark.parametrize("parametrized", [False, True])
def test_unet_official_layout(tmp_path: Path, skip_connection: bool, parametrized: bool) -> None:
    # parametrized: a checkpoint written with torch.nn.utils.parametrizations.spectral_norm.
    ref = RealESRGANUNetDiscriminatorSN(3, 8, skip_connection, parametrized=parametrized)
    ref = _randomized(ref, 2).eval()
    x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(x)
    for path in _save_official(tmp_path, ref.state_dict()):
        net = load_discriminator(path, skip_connection=skip_connection)
        assert isinstance(net, UNetDiscriminatorSN) and net.training
        with torch.no_grad():
            got = net.eval()(x)
        assert got.shape == (2, 1, 24, 40)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_unet_training_steps_match_the_reference() -> None:
    # In training mode spectral norm runs one power iteration per call and updates its vectors:
    # two steps of the same optimiser keep the two in step.
    ref = _randomized(RealESRGANUNetDiscriminatorSN(3, 4), 3).train()
    net = load_discriminator({"params": ref.state_dict()}).train()
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    opt_net = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(2):
        x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(step))
        for model, opt in ((ref, opt_ref), (net, opt_net)):
            opt.zero_grad()
            F.softplus(-model(x)).mean().backward()
            opt.step()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), ref.eval()(x), atol=1e-5, rtol=1e-5)


def test_official_configurations_have_the_reference_sizes() -> None:
    with torch.device("meta"):
        pairs = [
            (UNetDiscriminatorSN(), RealESRGANUNetDiscriminatorSN(3, 64)),
            (VGGStyleDiscriminator(), BasicSRVGGStyleDiscriminator(3, 64, 128)),
            (VGGStyleDiscriminator(input_size=256), BasicSRVGGStyleDiscriminator(3, 64, 256)),
        ]
    for ours, ref in pairs:
        mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
        assert mine == theirs
    # Real-ESRGAN's U-Net (4,376,897 weights) and BasicSR's VGG-128 (14,499,401).
    assert sum(p.numel() for p in pairs[0][0].parameters()) == 4_376_897
    assert sum(p.numel() for p in pairs[1][0].parameters()) == 14_499_401


def test_inputs_they_cannot_score_are_refused() -> None:
    vgg = VGGStyleDiscriminator(num_feat=4)
    with pytest.raises(srzoo.ArgumentError, match="128x128 patches, got 96x128"):
        vgg(torch.rand(1, 3, 96, 128))
    with pytest.raises(srzoo.ArgumentError, match=r"\(N, 3, H, W\)"):
        vgg(torch.rand(1, 1, 128, 128))
    unet = UNetDiscriminatorSN(num_feat=4)
    with pytest.raises(srzoo.ArgumentError, match="multiples of 8"):
        unet(torch.rand(1, 3, 20, 16))
    with pytest.raises(srzoo.ArgumentError, match="128 or 256"):
        VGGStyleDiscriminator(input_size=192)
    with pytest.raises(srzoo.ArgumentError, match="positive"):
        UNetDiscriminatorSN(num_feat=0)


def test_weights_that_are_no_discriminator_are_refused(tmp_path: Path) -> None:
    generator = srzoo.create("realesr-animevideov3", 4, num_feat=8, num_conv=1)
    path = tmp_path / "g.pth"
    torch.save({"params": generator.state_dict()}, path)
    with pytest.raises(srzoo.WeightsError, match="not a discriminator") as info:
        load_discriminator(path)
    assert str(path) in str(info.value)
    state = RealESRGANUNetDiscriminatorSN(3, 8).state_dict()
    del state["conv4.weight_u"]
    state["conv9.weight"] = torch.zeros(1, 8, 5, 5)
    with pytest.raises(srzoo.IncompatibleWeightsError, match=r"conv4\.weight_u") as wrong:
        load_discriminator(state)
    assert "conv9.weight: expected (1, 8, 3, 3), found (1, 8, 5, 5)" in str(wrong.value)
    # strict=False loads what fits and leaves the rest as initialised.
    net = load_discriminator(state, strict=False)
    assert torch.equal(net.state_dict()["conv8.weight_orig"], state["conv8.weight_orig"])
    assert net.state_dict()["conv9.weight"].shape == (1, 8, 3, 3)


def test_a_gan_step_through_both() -> None:
    for net, size in (
        (UNetDiscriminatorSN(num_feat=4), 16),
        (VGGStyleDiscriminator(num_feat=2), 128),
    ):
        x = torch.rand(2, 3, size, size, requires_grad=True)
        F.softplus(-net(x)).mean().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        for name, p in net.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
