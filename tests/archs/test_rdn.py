"""RDN: parameter counts, torchSR's layout against torchSR's module on identical random weights,
and EDSR-PyTorch's layout (other names, 0..255) against a stand-in of its module tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs.rdn import convert_rdn

from ..util import assert_loads_correctly


def _torchsr_rdn() -> Any:
    return pytest.importorskip("torchsr.models.rdn")


# State-dict values of configuration B (D=16, C=8, G=64, G0=64), measured on torchSR's rdn.
PARAMS = {2: 22_123_395, 3: 22_308_035, 4: 22_271_107}


@pytest.mark.parametrize("scale", sorted(PARAMS))
def test_parameter_counts_of_the_paper_configuration(scale: int) -> None:
    assert srzoo.model_info("rdn").num_params(scale) == PARAMS[scale]


def test_receptive_field_of_the_paper_configuration() -> None:
    # sfe1, sfe2, 16 x 8 dense layers and gff's 3x3 reach 131 LR pixels; upsampler + output 2.
    for scale in (2, 3, 4):
        with torch.device("meta"):
            net = srzoo.model_info("rdn").build(scale)
        assert net.receptive_field == 133


def test_unsupported_scale_is_refused() -> None:
    with pytest.raises(srzoo.UnsupportedScaleError):
        srzoo.create("rdn", 8)


_SMALL = {"g0": 16, "n_blocks": 3, "n_layers": 3, "growth": 8}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rdn_matches_torchsr_small(tmp_path: Path, scale: int) -> None:
    # G0 != G, so a swapped width in the upsampler or the dense layers shows.
    reference = _torchsr_rdn().RDN(scale, G0=16, D=3, C=3, G=8)
    assert_loads_correctly(tmp_path, "rdn", scale, reference, overrides=_SMALL, seed=scale)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rdn_matches_torchsr_full_size(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path, "rdn", scale, _torchsr_rdn().rdn(scale), seed=scale, size=(9, 8)
    )


# --------------------------------------------------------------------------------------------
# EDSR-PyTorch's layout: a stand-in of src/model/rdn.py's module tree, run on 0..255
# --------------------------------------------------------------------------------------------


class _RefRDBConv(nn.Module):
    def __init__(self, cin: int, g: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, g, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(x)), 1)


class _RefRDB(nn.Module):
    def __init__(self, g0: int, g: int, c: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[_RefRDBConv(g0 + i * g, g) for i in range(c)])
        self.LFF = nn.Conv2d(g0 + c * g, g0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LFF(self.convs(x)) + x


class RefEDSRPyTorchRDN(nn.Module):
    """EDSR-PyTorch's RDN: SFENet1/2, RDBs, GFF, and UPNet ending in the last convolution."""

    def __init__(self, r: int, g0: int, d: int, c: int, g: int) -> None:
        super().__init__()
        self.D = d
        self.SFENet1 = nn.Conv2d(3, g0, 3, padding=1)
        self.SFENet2 = nn.Conv2d(g0, g0, 3, padding=1)
        self.RDBs = nn.ModuleList([_RefRDB(g0, g, c) for _ in range(d)])
        self.GFF = nn.Sequential(nn.Conv2d(d * g0, g0, 1), nn.Conv2d(g0, g0, 3, padding=1))
        if r in (2, 3):
            up: list[nn.Module] = [nn.Conv2d(g0, g * r * r, 3, padding=1), nn.PixelShuffle(r)]
        else:
            up = [
                nn.Conv2d(g0, g * 4, 3, padding=1),
                nn.PixelShuffle(2),
                nn.Conv2d(g, g * 4, 3, padding=1),
                nn.PixelShuffle(2),
            ]
        self.UPNet = nn.Sequential(*up, nn.Conv2d(g, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.SFENet1(x)
        h = self.SFENet2(f1)
        outs = []
        for i in range(self.D):
            h = self.RDBs[i](h)
            outs.append(h)
        return self.UPNet(self.GFF(torch.cat(outs, 1)) + f1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rdn_loads_edsr_pytorch_layout(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "rdn",
        scale,
        RefEDSRPyTorchRDN(scale, 16, 3, 3, 8),
        overrides=_SMALL,
        run_reference=lambda m, x: m(x * 255) / 255,
        seed=10 + scale,
    )


def test_converter_maps_edsr_pytorch_keys_onto_every_module_key() -> None:
    for scale in (2, 3, 4):
        net = srzoo.create("rdn", scale, **_SMALL)
        upstream = RefEDSRPyTorchRDN(scale, 16, 3, 3, 8).state_dict()
        converted = convert_rdn(upstream, net)
        assert set(converted) == set(net.state_dict())
        torch.testing.assert_close(
            converted["output.bias"],
            upstream["UPNet." + str(2 * (2 if scale == 4 else 1)) + ".bias"] / 255,
        )


def test_converter_leaves_torchsr_layout_alone() -> None:
    net = srzoo.create("rdn", 2, **_SMALL)
    state = net.state_dict()
    converted = convert_rdn(state, net)
    assert converted.keys() == state.keys()
    assert all(converted[k] is v for k, v in state.items())
