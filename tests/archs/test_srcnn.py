"""SRCNN: parameter count of the 9-5-5 network, the Y-channel input, and yjn870's layout on
identical random weights (a stand-in of yjn870/SRCNN-pytorch ``models.py``, fed the MATLAB
enlargement it expects).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import srzoo
from srzoo.metrics import imresize

from ..util import TINY, assert_loads_correctly


class YjnSRCNN(nn.Module):
    """yjn870/SRCNN-pytorch: expects an already enlarged Y image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 9, padding=4)
        self.conv2 = nn.Conv2d(64, 32, 5, padding=2)
        self.conv3 = nn.Conv2d(32, 1, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_count_of_the_paper_configuration(scale: int) -> None:
    # 9-5-5 with n1 = 64, n2 = 32 on one channel, whatever the scale.
    expected = (1 * 64 * 81 + 64) + (64 * 32 * 25 + 32) + (32 * 1 * 25 + 1)
    assert srzoo.model_info("srcnn").num_params(scale) == expected


def test_rgb_input_is_refused_with_a_clear_message() -> None:
    model = srzoo.create("srcnn", 2, **TINY["srcnn"]).eval()
    with pytest.raises(srzoo.ArgumentError, match="Y channel"):
        model(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upstream_layout_loads_and_matches(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "srcnn",
        scale,
        YjnSRCNN(),
        run_reference=lambda ref, x: ref(imresize(x, scale=scale)),
        seed=scale,
        channels=1,
    )
