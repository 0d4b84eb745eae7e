"""EDSR and EDSR-baseline: parameter counts, the mean shift, and the official, torchSR and BasicSR
layouts against torchSR and a BasicSR stand-in on identical random weights.

The official EDSR-PyTorch files and torchSR's share one key layout (torchSR's ``edsr`` is the
official module tree), so torchSR's module stands for both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import srzoo
from srzoo.archs.edsr import convert_edsr

from ..reference_basicsr import BasicSREDSR
from ..util import assert_loads_correctly


def _torchsr() -> Any:
    return pytest.importorskip("torchsr.models")


# State-dict values of the official configurations, measured on EDSR-PyTorch / torchSR.
PARAMS = {
    ("edsr", 4): 43_089_947,
    ("edsr-baseline", 4): 1_517_595,
    ("edsr-baseline", 2): 1_369_883,
}


@pytest.mark.parametrize(("name", "scale"), list(PARAMS))
def test_parameter_counts_of_official_configurations(name: str, scale: int) -> None:
    assert srzoo.model_info(name).num_params(scale) == PARAMS[(name, scale)]


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


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_matches_torchsr_small(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "edsr",
        scale,
        pytest.importorskip("torchsr.models.edsr").EDSR(3, 24, scale, 0.1),
        overrides={"n_resblocks": 3, "n_feats": 24, "res_scale": 0.1},
        seed=scale,
    )


@pytest.mark.parametrize(("name", "scale"), [("edsr-baseline", 4), ("edsr-baseline", 2)])
def test_edsr_baseline_matches_torchsr_full_size(tmp_path: Path, name: str, scale: int) -> None:
    assert_loads_correctly(
        tmp_path, name, scale, _torchsr().edsr_baseline(scale), seed=7, size=(13, 10)
    )


@pytest.mark.slow
def test_edsr_matches_torchsr_full_size(tmp_path: Path) -> None:
    assert_loads_correctly(tmp_path, "edsr", 4, _torchsr().edsr(4), seed=3, size=(9, 8))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_loads_basicsr_layout(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "edsr",
        scale,
        BasicSREDSR(num_feat=16, num_block=2, upscale=scale, res_scale=0.1),
        overrides={"n_resblocks": 2, "n_feats": 16, "res_scale": 0.1},
        container=lambda state: {"params": state},
        seed=2,
        size=(7, 8),
    )


def test_converter_maps_basicsr_keys_onto_every_module_key() -> None:
    net = srzoo.create("edsr", 2, n_resblocks=2, n_feats=8)
    basicsr = BasicSREDSR(num_feat=8, num_block=2, upscale=2, res_scale=0.1).state_dict()
    converted = convert_edsr(basicsr, net)
    assert set(converted) == set(net.state_dict())
    assert converted["body.2.weight"] is basicsr["conv_after_body.weight"]
    assert converted["body.1.body.2.bias"] is basicsr["body.1.conv2.bias"]


def test_converter_leaves_the_official_layout_alone() -> None:
    net = srzoo.create("edsr", 2, n_resblocks=2, n_feats=8)
    official = {k: v for k, v in net.state_dict().items() if "mean" not in k}
    # Without its mean shifts an official file stays incomplete (loading then fails loudly).
    converted = convert_edsr(official, net)
    assert converted.keys() == official.keys()
    assert all(converted[k] is v for k, v in official.items())
