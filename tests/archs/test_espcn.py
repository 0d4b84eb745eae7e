"""ESPCN: parameter count, the Y-channel input, and yjn870's layout on identical random weights
(a stand-in of yjn870/ESPCN-pytorch ``models.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import srzoo

from ..util import TINY, assert_loads_correctly


class YjnESPCN(nn.Module):
    """yjn870/ESPCN-pytorch ESPCN(scale)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.first_part = nn.Sequential(
            nn.Conv2d(1, 64, 5, padding=2), nn.Tanh(), nn.Conv2d(64, 32, 3, padding=1), nn.Tanh()
        )
        self.last_part = nn.Sequential(
            nn.Conv2d(32, scale**2, 3, padding=1), nn.PixelShuffle(scale)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.first_part(x))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_count_of_the_paper_configuration(scale: int) -> None:
    expected = (25 * 64 + 64) + (64 * 32 * 9 + 32) + (32 * scale * scale * 9 + scale * scale)
    assert srzoo.model_info("espcn").num_params(scale) == expected


def test_rgb_input_is_refused_with_a_clear_message() -> None:
    model = srzoo.create("espcn", 2, **TINY["espcn"]).eval()
    with pytest.raises(srzoo.ArgumentError, match="Y channel"):
        model(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upstream_layout_loads_and_matches(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(tmp_path, "espcn", scale, YjnESPCN(scale), seed=scale, channels=1)
