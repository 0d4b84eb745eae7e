"""SRFormer: the official layout against a stand-in of the authors' code on identical random
weights (both registered variants, odd and even shifts, sizes on and off the window grid), the
buffers srzoo computes instead of storing, detection of bare state dicts, parameter counts,
torch.compile capture and bfloat16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.srformer import SRFormer, convert_srformer
from srzoo.errors import ArgumentError

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_
from .reference_srformer import SRFormer as Reference

NAMES = ["srformer", "srformer-light"]

# Small configurations of each variant. srformer's window of 6 shifts by 3, an odd shift like
# the released window of 22 (shift 11), where the key tokens' regions shift by ceil(3 / 2);
# srformer-light's window of 8 shifts by an even 4, like its release (16, shift 8). Three
# layers in the first group and two in the second: both ways out of a group are run.
SMALL: dict[str, dict[str, Any]] = {
    "srformer": {
        "embed_dim": 12,
        "depths": (3, 2),
        "num_heads": (2, 3),
        "window_size": 6,
        "num_feat": 8,
    },
    "srformer-light": {"embed_dim": 16, "depths": (3, 2), "num_heads": (4, 2), "window_size": 8},
}
# Off the grid, and on it (two windows of 6 or 8 a side).
SIZES = {"srformer": [(13, 11), (12, 12)], "srformer-light": [(13, 11), (16, 16)]}


def _reference(name: str, scale: int, img_size: int = 64, **config: Any) -> nn.Module:
    """The stand-in of the authors' SRFormer, built as the variant's release is."""
    defaults = srzoo.model_info(name).defaults
    return Reference(upscale=scale, img_size=img_size, **{**defaults, **config})


def _params(state: dict[str, torch.Tensor]) -> object:
    return {"params": state}  # the authors' BasicSR files


def _restore_masks(model: nn.Module) -> None:
    """Put upstream's own shift masks back after randomize_ filled every float buffer."""
    with torch.no_grad():
        block: Any
        for block in model.modules():
            if getattr(block, "attn_mask", None) is not None:
                block.attn_mask.copy_(block.calculate_mask(block.input_resolution))


# --------------------------------------------------------------------------------------------
# Parity with the authors' code
# --------------------------------------------------------------------------------------------

PARITY = [("srformer", s) for s in (2, 3, 4)] + [("srformer-light", s) for s in (2, 3, 4)]


@pytest.mark.parametrize("on_grid", [False, True], ids=["off-grid", "on-grid"])
@pytest.mark.parametrize(("name", "scale"), PARITY)
def test_official_layout_matches_the_authors_code(
    tmp_path: Path, name: str, scale: int, on_grid: bool
) -> None:
    config = SMALL[name]
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        _reference(name, scale, **config),
        overrides=config,
        container=_params,
        seed=scale,
        size=SIZES[name][on_grid],
        atol=1e-4,
        relative=True,
    )


def test_full_width_srformer_light_matches_the_authors_code(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "srformer-light",
        4,
        _reference("srformer-light", 4),
        container=_params,
        safetensors=False,
        seed=11,
        size=(13, 11),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
def test_full_width_srformer_matches_the_authors_code(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "srformer",
        4,
        _reference("srformer", 4),
        container=_params,
        safetensors=False,
        seed=12,
        size=(23, 13),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize("name", NAMES)
def test_the_stored_mask_path_and_its_masks(name: str) -> None:
    # An input of the training size runs upstream's stored masks: srzoo's computed ones must
    # be the same, for the odd and the even shift.
    config = SMALL[name]
    side = 2 * config["window_size"]
    ref = randomize_(_reference(name, 2, img_size=side, **config), seed=3)
    _restore_masks(ref)
    ref.eval()
    model = srzoo.create(name, 2, **config).eval()
    model.load_state_dict(convert_srformer(ref.state_dict(), model))
    x = torch.rand(2, 3, side, side, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected, got = ref(x), model(x)
    assert (got - expected).abs().max().item() <= 1e-4 * max(1.0, expected.abs().max().item())
    masks = [m.attn_mask for m in ref.modules() if getattr(m, "attn_mask", None) is not None]
    assert masks and all((m != 0).any() for m in masks)  # the shift masks something


def test_converter_drops_exactly_the_computed_buffers() -> None:
    ref = _reference("srformer", 2, img_size=48, **SMALL["srformer"])
    upstream = ref.state_dict()
    masks = [k for k in upstream if k.endswith(".attn_mask")]
    indices = [k for k in upstream if k.endswith(".attn.aligned_relative_position_index")]
    # 48 is a multiple of the window 6: 64 windows of 36 pixels and 9 key tokens.
    assert len(masks) == 2 and all(upstream[k].shape == (64, 36, 9) for k in masks)
    assert len(indices) == 5
    model = srzoo.create("srformer", 2, **SMALL["srformer"])
    converted = convert_srformer(dict(upstream), model)
    assert set(upstream) - set(converted) == set(masks) | set(indices)
    assert set(converted) == set(model.state_dict())
    own = model.state_dict()
    assert convert_srformer(dict(own), model).keys() == own.keys()


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

DETECT_GRID = [
    ("srformer", 2, SMALL["srformer"]),
    ("srformer", 3, {**SMALL["srformer"], "mlp_ratio": 3.0, "resi_connection": "3conv"}),
    ("srformer", 4, {**SMALL["srformer"], "upsampler": "nearest+conv", "qkv_bias": False}),
    ("srformer-light", 3, SMALL["srformer-light"]),
    ("srformer-light", 4, {**SMALL["srformer-light"], "patch_norm": False, "window_size": 4}),
]


@pytest.mark.parametrize(("name", "scale", "config"), DETECT_GRID)
def test_bare_state_dicts_are_detected(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any]
) -> None:
    original = randomize_(srzoo.create(name, scale, **config), seed=scale).eval()
    built = {**(SRFormer.__init__.__kwdefaults__ or {}), **srzoo.model_info(name).defaults}
    built.update(config)
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        expected = original(x)
    state = {k: v.contiguous() for k, v in original.state_dict().items()}
    torch.save(state, tmp_path / "bare.pth")
    save_file(state, str(tmp_path / "bare.safetensors"))
    for path in (tmp_path / "bare.pth", tmp_path / "bare.safetensors"):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "srformer",
            name,
            scale,
            "official",
        )
        for key, value in found.model_args.items():
            want = built[key]
            assert value == (tuple(want) if isinstance(want, list | tuple) else want), key
        model = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_an_upstream_file_is_detected(tmp_path: Path) -> None:
    ref = randomize_(_reference("srformer-light", 2, **SMALL["srformer-light"]), seed=4).eval()
    torch.save({"params": ref.state_dict()}, tmp_path / "light.pth")
    model = srzoo.load_file(tmp_path / "light.pth")
    x = torch.rand(1, 3, 10, 9)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# Registry and parameter counts
# --------------------------------------------------------------------------------------------

# Table 5 of the paper lists SRFormer-light at 853K, 861K and 873K parameters.
COUNTS = {
    ("srformer", 2): 10_376_783,
    ("srformer", 3): 10_561_423,
    ("srformer", 4): 10_524_495,
    ("srformer-light", 2): 853_272,
    ("srformer-light", 3): 861_387,
    ("srformer-light", 4): 872_748,
}


@pytest.mark.parametrize(("name", "scale"), sorted(COUNTS))
def test_parameter_counts_equal_the_authors_code(name: str, scale: int) -> None:
    with torch.device("meta"):
        ref = _reference(name, scale)
        ours = srzoo.model_info(name).build(scale)
    assert set(ours.state_dict()) == set(convert_srformer(ref.state_dict(), ours))
    assert sum(p.numel() for p in ref.parameters()) == COUNTS[name, scale]
    assert srzoo.model_info(name).num_params(scale) == COUNTS[name, scale]


def test_registry_entries() -> None:
    for name, window in (("srformer", 22), ("srformer-light", 16)):
        info = srzoo.model_info(name)
        assert info.family == "srformer" and info.task == "psnr" and info.scales == (2, 3, 4)
        assert info.size_multiple == window == info.defaults["window_size"]
        assert info.paper.arxiv == "2303.09735" and info.code_license == "CC-BY-NC-4.0"
        assert info.converter is convert_srformer
        assert info.weights == ()  # Google Drive only


def test_contract_attributes() -> None:
    for name in NAMES:
        info = srzoo.model_info(name)
        with torch.device("meta"):
            model = info.build(info.scale)
        assert model.receptive_field is None
        assert (model.scale, model.in_channels, model.out_channels) == (info.scale, 3, 3)
        assert model.window_size == info.size_multiple


def test_tiny_and_narrow_entries() -> None:
    for name in NAMES:
        tiny = srzoo.create(name, None, **TINY[name])
        assert tiny.receptive_field is None
        depths = TINY[name]["depths"]
        assert len(depths) >= 2 and depths[0] >= 3  # both ways out of a group
        defaults = srzoo.model_info(name).defaults
        assert "depths" not in NARROW[name] and "num_heads" not in NARROW[name]
        assert NARROW[name]["embed_dim"] < defaults["embed_dim"]


# --------------------------------------------------------------------------------------------
# Compilation, dtypes, sizes
# --------------------------------------------------------------------------------------------


def _tiny(name: str = "srformer", scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create(name, scale, **TINY[name]), seed=1).eval()


def test_no_graph_breaks_at_two_sizes() -> None:
    model = _tiny()
    assert_no_graph_breaks(model, ((12, 12), (13, 21)))


def test_bfloat16_forward() -> None:
    model = _tiny("srformer", 2)
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, atol=5e-2, rtol=0)


def test_input_padding_and_cropping() -> None:
    model = _tiny("srformer-light", 4)
    for size in ((1, 1), (7, 9), (8, 8), (17, 3)):
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            assert model(x).shape == (1, 3, size[0] * 4, size[1] * 4)


def test_bad_configurations_are_refused() -> None:
    small = {"embed_dim": 8, "depths": (2,), "num_heads": (2,), "window_size": 4}
    with pytest.raises(ArgumentError, match="window_size must be even"):
        SRFormer(**{**small, "window_size": 5})
    with pytest.raises(ArgumentError, match="multiple of 4"):
        SRFormer(**{**small, "embed_dim": 6})
    with pytest.raises(ArgumentError, match="depths and num_heads"):
        SRFormer(**{**small, "depths": (2, 2)})
    with pytest.raises(ArgumentError, match="nearest\\+conv"):
        SRFormer(scale=3, upsampler="nearest+conv", **small)
    with pytest.raises(ArgumentError, match="scale"):
        SRFormer(scale=0, **small)
    with pytest.raises(ArgumentError, match="resi_connection"):
        SRFormer(resi_connection="2conv", **small)  # type: ignore[arg-type]
