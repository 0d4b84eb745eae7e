"""The model contract for the core families: SRResNet, MSRResNet, EDSR, RCAN."""

from __future__ import annotations

import pytest
import torch

import srzoo

# State-dict values of the official configurations, measured on the reference implementations
# (EDSR-PyTorch / torchSR for EDSR and RCAN, BasicSR for MSRResNet).
PARAMS = {
    ("edsr", 4): 43_089_947,
    ("edsr-baseline", 4): 1_517_595,
    ("edsr-baseline", 2): 1_369_883,
    ("rcan", 4): 15_592_379,
    ("rcan", 2): 15_444_667,
    ("msrresnet", 4): 1_517_571,
}


@pytest.mark.parametrize(("name", "scale"), list(PARAMS))
def test_parameter_counts_of_official_configurations(name: str, scale: int) -> None:
    assert srzoo.model_info(name).num_params(scale) == PARAMS[(name, scale)]


def test_srresnet_parameter_count_matches_the_paper_layout() -> None:
    # 9x9 conv in/out, 16 blocks of two bias-free 3x3 convs with batch norm and PReLU, two x2
    # sub-pixel stages with PReLU; learnable parameters only (no batch-norm statistics).
    net = srzoo.create("srresnet", 4)
    learnable = sum(p.numel() for p in net.parameters())
    conv_in = 3 * 64 * 81 + 64 + 1
    block = 2 * (64 * 64 * 9 + 2 * 64) + 1
    mid = 64 * 64 * 9 + 2 * 64
    up = 2 * (64 * 256 * 9 + 256 + 1)
    conv_out = 64 * 3 * 81 + 3
    assert learnable == conv_in + 16 * block + mid + up + conv_out


def test_mean_shift_is_frozen_and_exact() -> None:
    net = srzoo.create("edsr-baseline", 2)
    assert not net.sub_mean.weight.requires_grad
    assert not net.add_mean.bias.requires_grad
    torch.testing.assert_close(net.sub_mean.weight.flatten(), torch.eye(3).flatten())
    torch.testing.assert_close(net.add_mean.bias, 255 * torch.tensor([0.4488, 0.4371, 0.4040]))


def test_constant_image_through_fresh_edsr_is_finite_and_in_range() -> None:
    # With a zero-residual network EDSR must be the identity on the mean colour path.
    net = srzoo.create("edsr-baseline", 2, n_resblocks=1, n_feats=8).eval()
    for p in [*net.head.parameters(), *net.body.parameters(), *net.tail.parameters()]:
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 3, 5, 5)
    with torch.no_grad():
        y = net(x)
    # All convs zero: output is sub_mean followed by add_mean of a zero map = the mean colour.
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    torch.testing.assert_close(y, mean.expand_as(y), atol=1e-6, rtol=0)
