"""PAN: parameter counts, scales, compile capture at x3, and the official layout (a stand-in of
zhaohengyuan1/PAN on identical random weights).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import srzoo

from ..util import TINY, assert_loads_correctly, check_compiles, randomize_
from .reference_lightweight import RefPAN

# Element counts of the official PANx{2,4}_DF2K.pth (the PAN README's "272K").
OFFICIAL_COUNTS = {4: 272_419, 2: 261_403}


@pytest.mark.parametrize("scale", list(OFFICIAL_COUNTS))
def test_parameter_counts_of_official_configurations(scale: int) -> None:
    assert srzoo.model_info("pan").num_params(scale) == OFFICIAL_COUNTS[scale]


def test_pan_compiles_at_x3() -> None:
    # x3 takes the single-stage upsampling path; x4 (the registry-wide test) the two-stage one.
    check_compiles(randomize_(srzoo.create("pan", 3, **TINY["pan"])))


def test_pan_rejects_unsupported_scale() -> None:
    with pytest.raises(srzoo.UnsupportedScaleError):
        srzoo.create("pan", 8)
    with pytest.raises(srzoo.UnsupportedScaleError, match="supported scales: x2, x3, x4"):
        srzoo.archs.pan.PAN(scale=5)
    with pytest.raises(srzoo.ArgumentError, match="in_nc"):
        srzoo.archs.pan.PAN(in_nc=3, out_nc=1)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pan_matches_upstream_layout(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "pan",
        scale,
        RefPAN(nf=8, unf=6, nb=2, scale=scale),
        overrides={"nf": 8, "unf": 6, "nb": 2},
        seed=scale,
        size=(9, 12),
        relative=True,
    )


def test_full_size_matches_upstream_layout(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "pan",
        4,
        RefPAN(nf=40, unf=24, nb=16, scale=4),
        seed=21,
        size=(15, 16),
        relative=True,
    )
