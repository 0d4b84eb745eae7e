"""RFDN: parameter count, the official layout and 0..255 range (a stand-in of njulj/RFDN on
identical random weights), and small inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srzoo

from ..util import TINY, assert_loads_correctly, randomize_
from .reference_lightweight import RefRFDN


def _in_unit_range(ref: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # The official network takes and returns 0..255; srzoo's takes and returns [0, 1].
    y: torch.Tensor = ref(x * 255.0) / 255.0
    return y


def test_parameter_count_of_the_official_configuration() -> None:
    # Element count of the official RFDN_AIM.pth.
    assert srzoo.model_info("rfdn").num_params(4) == 433_448


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rfdn_matches_upstream_layout_and_range(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "rfdn",
        scale,
        RefRFDN(nf=8, n=2, upscale=scale),
        overrides={"nf": 8, "num_modules": 2},
        run_reference=_in_unit_range,
        seed=scale,
        # 15 is the smallest size the original accepts; 22 makes the pooling windows uneven.
        size=(15, 22),
        relative=True,
    )


def test_full_size_matches_upstream_layout(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "rfdn",
        4,
        RefRFDN(nf=50, n=4, upscale=4),
        run_reference=_in_unit_range,
        seed=21,
        size=(15, 16),
        relative=True,
    )


def test_rfdn_pads_small_inputs_by_edge_replication() -> None:
    # Below 15 pixels the original's attention pooling has nothing to pool (it raises); srzoo
    # replicates the bottom and right edges up to 15 pixels and crops the result.
    model = randomize_(srzoo.create("rfdn", 2, **TINY["rfdn"]), seed=5).eval()
    x = torch.rand(1, 3, 4, 17)
    padded = F.pad(x, (0, 0, 0, 11), mode="replicate")
    with torch.no_grad():
        y = model(x)
        expected = model(padded)[..., :8, :]
    assert y.shape == (1, 3, 8, 34)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)
