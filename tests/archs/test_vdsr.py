"""VDSR: parameter count, the Y-channel input, the global residual over MATLAB's enlargement,
twtygqyy's layout on identical random weights (a stand-in of twtygqyy/pytorch-vdsr ``vdsr.py``,
fed the MATLAB enlargement it expects), and torchSR's different "vdsr" refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import srzoo
from srzoo.metrics import imresize

from ..util import TINY, assert_loads_correctly, randomize_


class TwtygqyyVDSR(nn.Module):
    """twtygqyy/pytorch-vdsr Net: expects an already enlarged Y image."""

    class _Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(64, 64, 3, 1, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.conv(x))

    def __init__(self) -> None:
        super().__init__()
        self.residual_layer = nn.Sequential(*(self._Block() for _ in range(18)))
        self.input = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        self.output = nn.Conv2d(64, 1, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.output(self.residual_layer(torch.relu(self.input(x))))
        return out + x


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_count_of_the_paper_configuration(scale: int) -> None:
    # 20 bias-free 3x3 layers: 1 -> 64, 18 x (64 -> 64), 64 -> 1; one network for every scale.
    expected = 9 * 64 + 18 * 9 * 64 * 64 + 9 * 64
    assert srzoo.model_info("vdsr").num_params(scale) == expected


def test_rgb_input_is_refused_with_a_clear_message() -> None:
    model = srzoo.create("vdsr", 2, **TINY["vdsr"]).eval()
    with pytest.raises(srzoo.ArgumentError, match="Y channel"):
        model(torch.rand(1, 3, 8, 8))


def test_vdsr_is_a_residual_over_the_matlab_enlargement() -> None:
    # With a zero output layer VDSR must return exactly the bicubic enlargement it was trained on.
    net = randomize_(srzoo.create("vdsr", 3, depth=3, n_feats=4)).eval()
    nn.init.zeros_(net.output.weight)
    x = torch.rand(1, 1, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(net(x), imresize(x, scale=3), atol=1e-6, rtol=0)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upstream_layout_loads_and_matches(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "vdsr",
        scale,
        TwtygqyyVDSR(),
        run_reference=lambda ref, x: ref(imresize(x, scale=scale)),
        seed=scale,
        channels=1,
    )


def test_torchsr_vdsr_file_is_refused(tmp_path: Path) -> None:
    # torchSR's "vdsr" is EDSR-PyTorch's RGB network (biased convolutions, mean shift,
    # PyTorch bicubic), not the paper's: its file must fail loudly, never load partially.
    torchsr_models = pytest.importorskip("torchsr.models")
    ref = torchsr_models.vdsr(2)
    path = tmp_path / "vdsr_torchsr.pt"
    torch.save(ref.state_dict(), path)
    with pytest.raises(srzoo.IncompatibleWeightsError):
        srzoo.load("vdsr", 2, weights=path)
