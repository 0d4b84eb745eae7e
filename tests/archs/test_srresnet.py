"""SRResNet and MSRResNet: parameter counts, and their upstream layouts on identical random weights.

SRResNet's keys are Lornatang/SRGAN-PyTorch's and MSRResNet's BasicSR's, both srzoo's own module
trees, so srzoo's modules stand for those layouts; KAIR's MSRResNet layout is checked against a
stand-in of KAIR's network.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import srzoo
from srzoo.archs.srresnet import MSRResNet, SRResNet

from ..reference_basicsr import KairMSRResNet
from ..util import assert_loads_correctly


def test_msrresnet_parameter_count_of_the_official_configuration() -> None:
    # BasicSR's MSRResNet x4, measured on BasicSR.
    assert srzoo.model_info("msrresnet").num_params(4) == 1_517_571


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


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_srresnet_loads_its_upstream_layout(tmp_path: Path, scale: int) -> None:
    # Lornatang's checkpoints hold the batch-norm statistics too: they must drive eval mode.
    assert_loads_correctly(
        tmp_path,
        "srresnet",
        scale,
        SRResNet(scale=scale, channels=16, num_blocks=2),
        overrides={"channels": 16, "num_blocks": 2},
        seed=scale,
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_msrresnet_loads_basicsr_layout(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "msrresnet",
        scale,
        MSRResNet(scale=scale, num_feat=16, num_block=2),
        overrides={"num_feat": 16, "num_block": 2},
        container=lambda state: {"params": state},
        seed=scale,
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_msrresnet_loads_kair_layout(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "msrresnet",
        scale,
        KairMSRResNet(nc=16, nb=2, upscale=scale),
        overrides={"num_feat": 16, "num_block": 2},
        seed=6,
        size=(7, 8),
    )


def test_srgan_is_the_srresnet_network_as_a_gan_model() -> None:
    srgan, srresnet = srzoo.model_info("srgan"), srzoo.model_info("srresnet")
    assert srgan.task == "gan" and srgan.family == "srresnet"
    assert srgan.builder is SRResNet and srgan.defaults == srresnet.defaults
    assert srgan.paper == srresnet.paper
    # No GAN-trained SRResNet checkpoint with a published digest is known.
    assert not srgan.weights
    assert srgan.num_params(4) == srresnet.num_params(4)
