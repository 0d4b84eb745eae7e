"""RCAN: parameter counts, and the official / torchSR, spandrel and BasicSR layouts against
torchSR, spandrel and a BasicSR stand-in on identical random weights.

yulunzhang/RCAN's files, torchSR's and spandrel's share one key layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs.rcan import convert_rcan

from ..reference_basicsr import BasicSRRCAN
from ..util import assert_loads_correctly


def _torchsr() -> Any:
    return pytest.importorskip("torchsr.models")


# State-dict values of the official configurations, measured on EDSR-PyTorch / torchSR.
PARAMS = {("rcan", 4): 15_592_379, ("rcan", 2): 15_444_667}


@pytest.mark.parametrize(("name", "scale"), list(PARAMS))
def test_parameter_counts_of_official_configurations(name: str, scale: int) -> None:
    assert srzoo.model_info(name).num_params(scale) == PARAMS[(name, scale)]


@pytest.mark.parametrize("scale", [2, 3, 4, 8])
def test_rcan_matches_torchsr_small(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "rcan",
        scale,
        pytest.importorskip("torchsr.models.rcan").RCAN(2, 3, 32, 8, scale),
        overrides={"n_resgroups": 2, "n_resblocks": 3, "n_feats": 32, "reduction": 8},
        seed=scale,
        size=(9, 10),
    )


@pytest.mark.slow
def test_rcan_matches_torchsr_full_size(tmp_path: Path) -> None:
    assert_loads_correctly(tmp_path, "rcan", 4, _torchsr().rcan(4), seed=11, size=(8, 9))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rcan_matches_spandrel(tmp_path: Path, scale: int) -> None:
    spandrel = pytest.importorskip("spandrel")
    from spandrel.architectures.RCAN import RCAN as SpandrelRCAN

    def detected(path: Path) -> nn.Module:
        # spandrel's own loader detects the configuration from the file.
        model: nn.Module = spandrel.ModelLoader().load_from_file(path).model
        return model

    assert_loads_correctly(
        tmp_path,
        "rcan",
        scale,
        SpandrelRCAN(scale=scale, n_resgroups=2, n_resblocks=2, n_feats=32),
        overrides={"n_resgroups": 2, "n_resblocks": 2, "n_feats": 32},
        reload_reference=detected,
        seed=5,
        size=(11, 7),
    )


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rcan_loads_basicsr_layout(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "rcan",
        scale,
        BasicSRRCAN(num_feat=16, num_group=2, num_block=3, upscale=scale),
        overrides={"n_resgroups": 2, "n_resblocks": 3, "n_feats": 16, "reduction": 4},
        # BasicSR's training saves both; the EMA weights are the ones to use.
        container=lambda state: {"params_ema": state, "params": {}},
        seed=4,
        size=(7, 8),
    )


def test_converter_maps_basicsr_keys_onto_every_module_key() -> None:
    net = srzoo.create("rcan", 2, n_resgroups=2, n_resblocks=3, n_feats=16, reduction=4)
    basicsr = BasicSRRCAN(num_feat=16, num_group=2, num_block=3, upscale=2).state_dict()
    converted = convert_rcan(basicsr, net)
    assert set(converted) == set(net.state_dict())
    assert converted["body.2.weight"] is basicsr["conv_after_body.weight"]
    assert converted["body.1.body.3.weight"] is basicsr["body.1.conv.weight"]
    key = "body.0.body.2.body.3.conv_du.2.bias"
    assert converted[key] is basicsr["body.0.residual_group.2.rcab.3.attention.3.bias"]
    torch.testing.assert_close(converted["add_mean.bias"], net.add_mean.default_state()[1])


def test_converter_leaves_the_official_layout_alone() -> None:
    net = srzoo.create("rcan", 2, n_resgroups=1, n_resblocks=1, n_feats=16, reduction=4)
    official = {k: v for k, v in net.state_dict().items() if "mean" not in k}
    converted = convert_rcan(official, net)
    assert converted.keys() == official.keys()
    assert all(converted[k] is v for k, v in official.items())
