"""SAFMN: parameter counts and layouts against spandrel on identical random weights (spandrel's
SAFMN keys are sunny2109/SAFMN's), flat and in the BasicSR wrapper of the official files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo

from ..util import assert_loads_correctly


def _ref_safmn(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.SAFMN")
    model: nn.Module = arch.SAFMN(**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    # spandrel's own loader detects the configuration from the file.
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_counts_match_spandrel(scale: int) -> None:
    with torch.device("meta"):
        ref = _ref_safmn(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=scale)
    assert srzoo.model_info("safmn").num_params(scale) == sum(
        t.numel() for t in ref.state_dict().values()
    )


def test_bad_widths_are_refused_with_a_reason() -> None:
    with pytest.raises(srzoo.ArgumentError, match="multiple of n_levels"):
        srzoo.create("safmn", 4, dim=10)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_safmn_matches_spandrel(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "safmn",
        scale,
        _ref_safmn(dim=16, n_blocks=2, ffn_scale=1.5, upscaling_factor=scale),
        overrides={"dim": 16, "n_blocks": 2, "ffn_scale": 1.5},
        reload_reference=_spandrel_detected,
        seed=3,
        size=(13, 17),
        relative=True,
    )


def test_safmn_full_size_matches_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "safmn",
        4,
        _ref_safmn(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=4),
        container=lambda state: {"params": state},  # the official BasicSR wrapper
        seed=8,
        size=(17, 12),
        relative=True,
    )
