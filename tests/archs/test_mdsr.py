"""MDSR: one official checkpoint with three branches loads at each scale and matches a stand-in
of EDSR-PyTorch's ``src/model/mdsr.py`` run with that scale's index; parameter counts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs.mdsr import convert_mdsr

from ..util import assert_loads_correctly

_MEAN = (0.4488, 0.4371, 0.4040)


class _RefMeanShift(nn.Conv2d):
    def __init__(self, sign: int) -> None:
        super().__init__(3, 3, 1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * 255.0 * torch.tensor(_MEAN)
        for p in self.parameters():
            p.requires_grad = False


class _RefResBlock(nn.Module):
    def __init__(self, n: int, k: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n, n, k, padding=k // 2), nn.ReLU(True), nn.Conv2d(n, n, k, padding=k // 2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class _RefUpsampler(nn.Sequential):
    def __init__(self, s: int, n: int) -> None:
        layers: list[nn.Module] = []
        if s == 3:
            layers += [nn.Conv2d(n, 9 * n, 3, padding=1), nn.PixelShuffle(3)]
        else:
            for _ in range(s.bit_length() - 1):
                layers += [nn.Conv2d(n, 4 * n, 3, padding=1), nn.PixelShuffle(2)]
        super().__init__(*layers)


class RefMDSR(nn.Module):
    """EDSR-PyTorch's MDSR module tree with every branch; works on 0..255."""

    def __init__(self, n_resblocks: int, n_feats: int, scales: tuple[int, ...] = (2, 3, 4)):
        super().__init__()
        self.scale_idx = 0
        self.sub_mean = _RefMeanShift(-1)
        self.add_mean = _RefMeanShift(1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        self.pre_process = nn.ModuleList(
            [nn.Sequential(_RefResBlock(n_feats, 5), _RefResBlock(n_feats, 5)) for _ in scales]
        )
        self.body = nn.Sequential(
            *[_RefResBlock(n_feats, 3) for _ in range(n_resblocks)],
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.upsample = nn.ModuleList([_RefUpsampler(s, n_feats) for s in scales])
        self.tail = nn.Sequential(nn.Conv2d(n_feats, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre_process[self.scale_idx](self.head(self.sub_mean(x)))
        res = self.body(x)
        res += x
        return self.add_mean(self.tail(self.upsample[self.scale_idx](res)))


def _run_at(index: int):  # type: ignore[no-untyped-def]
    def run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        assert isinstance(module, RefMDSR)
        module.scale_idx = index
        out: torch.Tensor = module(x * 255) / 255
        return out

    return run


# Values in an official checkpoint (all three branches) and in srzoo's module (one branch).
CHECKPOINT_PARAMS = {80: 7_954_011, 16: 3_227_227}  # the paper's 8.0M and 3.2M
MODULE_PARAMS = {2: 6_506_523, 3: 6_691_163, 4: 6_654_235}


@pytest.mark.parametrize("n_resblocks", sorted(CHECKPOINT_PARAMS))
def test_parameter_count_of_the_official_checkpoint(n_resblocks: int) -> None:
    with torch.device("meta"):
        ref = RefMDSR(n_resblocks, 64)
    assert sum(t.numel() for t in ref.state_dict().values()) == CHECKPOINT_PARAMS[n_resblocks]


@pytest.mark.parametrize("scale", sorted(MODULE_PARAMS))
def test_parameter_counts_of_one_branch(scale: int) -> None:
    assert srzoo.model_info("mdsr").num_params(scale) == MODULE_PARAMS[scale]


@pytest.mark.parametrize(("index", "scale"), [(0, 2), (1, 3), (2, 4)])
def test_one_official_checkpoint_loads_at_each_scale(
    tmp_path: Path, index: int, scale: int
) -> None:
    # The same random three-branch checkpoint (seed 5) at every scale.
    model = assert_loads_correctly(
        tmp_path,
        "mdsr",
        scale,
        RefMDSR(3, 16),
        overrides={"n_resblocks": 3, "n_feats": 16},
        run_reference=_run_at(index),
        seed=5,
        size=(9, 10),
    )
    branches = {k.split(".")[1] for k in model.state_dict() if k.startswith(("pre_", "upsample"))}
    assert branches == {str(index)}


def test_a_checkpoint_without_the_branch_fails_loudly(tmp_path: Path) -> None:
    ref = RefMDSR(1, 8, scales=(2,))
    path = tmp_path / "mdsr_x2_only.pt"
    torch.save(ref.state_dict(), path)
    srzoo.load("mdsr", scale=2, weights=path, n_resblocks=1, n_feats=8)
    with pytest.raises(srzoo.IncompatibleWeightsError, match="missing"):
        srzoo.load("mdsr", scale=4, weights=path, n_resblocks=1, n_feats=8)


def test_converter_keeps_the_shared_tensors_and_one_branch() -> None:
    official = RefMDSR(2, 8).state_dict()
    net = srzoo.create("mdsr", 3, n_resblocks=2, n_feats=8)
    converted = convert_mdsr(official, net)
    assert set(converted) == set(net.state_dict())
    assert converted["upsample.1.0.weight"] is official["upsample.1.0.weight"]
    assert converted["body.2.weight"] is official["body.2.weight"]
