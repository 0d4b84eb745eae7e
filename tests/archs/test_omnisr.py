"""Omni-SR: the official layout against spandrel on identical random weights (sizes on and off
the window grid, both input ranges), detection from bare state dicts, parameter counts of the
official configurations, torch.compile capture and bfloat16.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.omnisr import OmniSR, detect_omnisr
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_

SIZES = [(17, 15), (16, 16)]  # off and on the grid of windows 4 and 8

# Small configurations: two groups of two blocks with the position bias, one group without it
# (and without biases) on window 4, and one on the released window with one block.
CONFIGS: list[dict[str, Any]] = [
    {"num_feat": 16, "block_num": 2, "res_num": 2, "window_size": 8, "pe": True},
    {"num_feat": 8, "block_num": 1, "res_num": 1, "window_size": 4, "pe": False, "bias": False},
    {"num_feat": 12, "block_num": 1, "res_num": 2, "window_size": 8, "pe": True},
]


def _ref(scale: int, **config: Any) -> nn.Module:
    """spandrel's Omni-SR (the upstream code) in srzoo's argument names."""
    arch = pytest.importorskip("spandrel.architectures.OmniSR")
    kwargs = {k: v for k, v in config.items() if k != "signed"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.meshgrid's indexing notice
        model: nn.Module = arch.OmniSR(up_scale=scale, **kwargs)
    return model


def _signed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # The authors' test loader: [0, 1] -> [-1, 1] in, back out.
    y: torch.Tensor = model(x * 2 - 1)
    return (y + 1) / 2


def _spandrel_detected(path: Path) -> nn.Module:
    spandrel = pytest.importorskip("spandrel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model: nn.Module = spandrel.ModelLoader().load_from_file(path).model
    return model


# --------------------------------------------------------------------------------------------
# Against spandrel
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("index", "scale"), [(0, 2), (1, 3), (2, 4)])
def test_official_layout_matches_spandrel(
    tmp_path: Path, index: int, scale: int, size: tuple[int, int]
) -> None:
    # On [0, 1] as spandrel runs it; spandrel's own detection must build the same network
    # (it reads the window from the position-bias table, and takes 8 without one).
    config = {**CONFIGS[index], "signed": False}
    detect = _spandrel_detected if config["pe"] else None
    assert_loads_correctly(
        tmp_path,
        "omnisr",
        scale,
        _ref(scale, **config),
        overrides=config,
        reload_reference=detect,
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_signed_range_is_the_authors_test_protocol(tmp_path: Path, size: tuple[int, int]) -> None:
    # The default maps [0, 1] to [-1, 1] and back, around upstream's zero padding.
    config = CONFIGS[0]
    assert_loads_correctly(
        tmp_path,
        "omnisr",
        4,
        _ref(4, **config),
        overrides=config,
        run_reference=_signed,
        seed=7,
        size=size,
        atol=1e-4,
        relative=True,
    )


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

GRID = [
    (2, {"num_feat": 8, "block_num": 1, "res_num": 1, "window_size": 8, "pe": True}),
    (3, {"num_feat": 12, "block_num": 2, "res_num": 2, "window_size": 4, "pe": True}),
    (4, {"num_feat": 8, "block_num": 1, "res_num": 3, "window_size": 8, "pe": False}),
    (4, {"num_feat": 8, "block_num": 1, "res_num": 1, "bias": False, "num_out_ch": 1}),
]


@pytest.mark.parametrize(("scale", "config"), GRID)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, scale: int, config: dict[str, Any]
) -> None:
    model = randomize_(OmniSR(scale=scale, **config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pth, st = tmp_path / "omnisr.pth", tmp_path / "omnisr.safetensors"
    torch.save(state, pth)
    save_file(state, str(st))
    defaults = srzoo.model_info("omnisr").defaults
    expected = {"num_in_ch": 3, "num_out_ch": 3, **defaults, **config}
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
    for path in (pth, st):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "omnisr",
            "omnisr",
            scale,
            "official",
        )
        assert dict(found.model_args) == expected
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=1e-5)


def test_detection_needs_the_whole_signature() -> None:
    model = OmniSR(scale=2, num_feat=8, res_num=2)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert detect_omnisr(Shapes(shapes)) is not None
    for key in ("up.0.weight", "residual_layer.0.esa.conv1.weight", "input.weight"):
        assert detect_omnisr(Shapes({k: s for k, s in shapes.items() if k != key})) is None
    # A gap in the groups is an incomplete file, not a smaller network.
    gap = {k: s for k, s in shapes.items() if not k.startswith("residual_layer.0.")}
    assert detect_omnisr(Shapes(gap)) is None


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

# spandrel's parameters at the authors' configuration. The paper (Table 2) lists 772K, 780K
# and 792K; the released code has about 13K more at every scale.
COUNTS = {2: 784_604, 3: 793_259, 4: 805_376}


@pytest.mark.parametrize("scale", sorted(COUNTS))
def test_parameter_counts_equal_spandrels(scale: int) -> None:
    info = srzoo.model_info("omnisr")
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ref = _ref(scale, **info.defaults)
        ours = info.build(scale)
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert sum(p.numel() for p in ref.parameters()) == COUNTS[scale]
    assert info.num_params(scale) == COUNTS[scale]


def test_registry_entry() -> None:
    info = srzoo.model_info("omnisr")
    assert info.family == "omnisr" and info.task == "psnr" and info.colour == "rgb"
    assert info.paper.arxiv == "2304.10244" and info.code_license == "Apache-2.0"
    assert info.scales == (2, 3, 4) and info.scale == 4 and info.size_multiple == 8
    # The authors' files are on Google Drive, the mirrors without a published sha256.
    assert info.weights == ()
    assert info.defaults["window_size"] == 8 and info.defaults["signed"] is True


# --------------------------------------------------------------------------------------------
# torch.compile, bfloat16, the module
# --------------------------------------------------------------------------------------------


def _tiny(scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create("omnisr", scale, **TINY["omnisr"]), seed=1).eval()


def test_no_graph_breaks_at_two_sizes() -> None:
    model = _tiny()
    assert_no_graph_breaks(model, ((16, 16), (13, 21)))


def test_bfloat16_forward() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, atol=5e-2, rtol=0)


def test_any_size_pads_and_crops() -> None:
    # Upstream fails below 9 pixels (nothing left for the ESA's pooling); srzoo pads further.
    model = _tiny(3)
    for size in ((1, 1), (7, 9), (8, 8), (17, 3)):
        with torch.no_grad():
            assert model(torch.rand(1, 3, *size)).shape == (1, 3, size[0] * 3, size[1] * 3)


def test_contract_attributes_and_tiny_entries() -> None:
    with torch.device("meta"):
        model = srzoo.model_info("omnisr").build(4)
    assert model.receptive_field is None and model.window_size == 8
    assert (model.scale, model.in_channels, model.out_channels) == (4, 3, 3)
    assert NARROW["omnisr"]["num_feat"] < 64 and "res_num" not in NARROW["omnisr"]


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="multiple of 4"):
        OmniSR(num_feat=10)
    with pytest.raises(ArgumentError, match="res_num"):
        OmniSR(res_num=0)
    with pytest.raises(ArgumentError, match="scale"):
        OmniSR(scale=0)
