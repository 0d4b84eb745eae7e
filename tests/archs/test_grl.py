"""GRL: the official layout (``model.``-prefixed keys with the stored tables) against spandrel's
copy of the authors' code on identical random weights, spandrel's own detection of the same
files, srzoo's detection (stored geometry and bare state dicts), the converter, parameter counts,
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
from srzoo.archs.grl import GRL, convert_grl
from srzoo.errors import ArgumentError

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_

spandrel = pytest.importorskip("spandrel")
from spandrel.architectures.GRL import GRL as Reference  # noqa: E402

NAMES = ["grl", "grl-small", "grl-tiny"]

# Two small configurations per variant: non-square stripes (row and column stripes differ),
# anchors pooled by 2 and by 4, stripes whose anchors shift by 0 (4 // 2 // 4) in one axis, the
# "3conv" closing convolutions, no qkv bias, uneven head counts, stages of 1 to 5 blocks (block
# 4k + 2 and 4k + 3 shift their stripes).
SMALL: dict[str, list[dict[str, Any]]] = {
    "grl": [
        {
            "embed_dim": 24,
            "depths": (4, 2),
            "num_heads_window": (2, 2),
            "num_heads_stripe": (2, 3),
            "window_size": 4,
            "stripe_size": (4, 8),
            "anchor_window_down_factor": 2,
        },
        {
            "embed_dim": 36,
            "depths": (5,),
            "num_heads_window": (3,),
            "num_heads_stripe": (2,),
            "window_size": 8,
            "stripe_size": (8, 8),
            "anchor_window_down_factor": 4,
            "conv_type": "3conv",
            "mlp_ratio": 1.5,
        },
    ],
    "grl-small": [
        {
            "embed_dim": 16,
            "depths": (4, 1),
            "num_heads_window": (2, 2),
            "num_heads_stripe": (2, 2),
            "window_size": 4,
            "stripe_size": (8, 4),
            "anchor_window_down_factor": 4,
        },
        {
            "embed_dim": 16,
            "depths": (3, 3),
            "num_heads_window": (1, 2),
            "num_heads_stripe": (2, 1),
            "window_size": 8,
            "stripe_size": (8, 8),
            "anchor_window_down_factor": 2,
            "qkv_bias": False,
        },
    ],
    "grl-tiny": [
        {
            "embed_dim": 16,
            "depths": (4,),
            "num_heads_window": (2,),
            "num_heads_stripe": (2,),
            "window_size": 4,
            "stripe_size": (4, 4),
            "anchor_window_down_factor": 2,
        },
        {
            "embed_dim": 8,
            "depths": (3, 4),
            "num_heads_window": (2, 1),
            "num_heads_stripe": (1, 2),
            "window_size": 2,
            "stripe_size": (4, 8),
            "anchor_window_down_factor": 4,
        },
    ],
}
SIZES = [(13, 11), (16, 16)]  # off and on the grid of 8


def _reference(name: str, scale: int, img_size: int = 16, **config: Any) -> nn.Module:
    """spandrel's GRL (the authors' code), built as the variant's release is."""
    c = {**srzoo.model_info(name).defaults, **config}
    return Reference(
        img_size=img_size,
        upscale=scale,
        embed_dim=c["embed_dim"],
        depths=list(c["depths"]),
        num_heads_window=list(c["num_heads_window"]),
        num_heads_stripe=list(c["num_heads_stripe"]),
        window_size=c["window_size"],
        stripe_size=list(c["stripe_size"]),
        stripe_groups=[None, None],
        stripe_shift=True,
        mlp_ratio=c["mlp_ratio"],
        qkv_bias=c.get("qkv_bias", True),
        anchor_window_down_factor=c["anchor_window_down_factor"],
        local_connection=c["local_connection"],
        conv_type=c.get("conv_type", "1conv"),
        upsampler=c["upsampler"],
    )


def _official(reference: nn.Module) -> Any:
    """The release's layout: every key under ``model.``, the tables and masks stored beside."""

    def convert(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        tables = reference.set_table_index_mask(reference.input_resolution)  # type: ignore[operator]
        return {f"model.{k}": v for k, v in {**state, **tables}.items()}

    return convert


def _spandrel_load(path: Path) -> nn.Module:
    return spandrel.ModelLoader().load_from_file(path).model  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Parity with the authors' code
# --------------------------------------------------------------------------------------------

PARITY = [
    ("grl", 0, 4),
    ("grl", 1, 2),
    ("grl-small", 0, 3),
    ("grl-small", 1, 4),
    ("grl-tiny", 0, 2),
    ("grl-tiny", 1, 3),
]


@pytest.mark.parametrize(("name", "config", "scale"), PARITY)
def test_official_layout_matches_the_authors_code(
    tmp_path: Path, name: str, config: int, scale: int
) -> None:
    # The first configuration of each variant off the grid of 8, the second on it.
    overrides, size = SMALL[name][config], SIZES[config]
    reference = _reference(name, scale, **overrides)
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        reference,
        overrides=overrides,
        to_upstream=_official(reference),
        reload_reference=_spandrel_load,
        seed=scale + config,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_full_width_matches_the_authors_code(tmp_path: Path, name: str) -> None:
    reference = _reference(name, 4, img_size=64)
    assert_loads_correctly(
        tmp_path,
        name,
        4,
        reference,
        to_upstream=_official(reference),
        reload_reference=_spandrel_load,
        safetensors=False,
        seed=7,
        size=(37, 70),
        atol=1e-4,
        relative=True,
    )


def test_converter_strips_the_prefix_and_drops_exactly_the_stored_tables() -> None:
    config = SMALL["grl"][0]
    reference = _reference("grl", 2, **config)
    upstream = _official(reference)(reference.state_dict())
    model = srzoo.create("grl", 2, **config)
    converted = convert_grl(dict(upstream), model)
    assert set(converted) == set(model.state_dict())
    assert len(upstream) - len(converted) == 13
    own = model.state_dict()
    assert convert_grl(dict(own), model).keys() == own.keys()
    gan = {"model_g." + k: v for k, v in own.items()} | {"model_d.conv.weight": torch.ones(1)}
    assert convert_grl(gan, model).keys() == own.keys()


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "config"), [("grl", 0), ("grl-small", 1), ("grl-tiny", 1)])
def test_an_official_file_is_detected_with_its_stored_geometry(
    tmp_path: Path, name: str, config: int
) -> None:
    overrides = SMALL[name][config]
    reference = randomize_(_reference(name, 2, **overrides), seed=4).eval()
    torch.save(_official(reference)(reference.state_dict()), tmp_path / "sr.ckpt")
    found = srzoo.detect(tmp_path / "sr.ckpt")
    assert (found.name, found.scale, found.layout) == (name, 2, "official")
    for key in ("window_size", "stripe_size", "anchor_window_down_factor", "depths"):
        assert found.model_args[key] == overrides[key], key
    model = srzoo.load_file(tmp_path / "sr.ckpt")
    x = torch.rand(1, 3, 10, 9)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), atol=1e-5, rtol=1e-4)


# Bare state dicts cannot tell the window, stripes and pooling: the release's values are used.
DETECT_GRID = [
    (
        "grl",
        3,
        {"embed_dim": 18, "depths": (1, 1), "num_heads_window": (3, 1), "num_heads_stripe": (1, 3)},
    ),
    ("grl-small", 2, {"embed_dim": 8, "depths": (2,), "conv_type": "3conv", "qkv_bias": False}),
    ("grl-small", 4, {"embed_dim": 8, "depths": (1,), "upsampler": "nearest+conv"}),
    ("grl-tiny", 4, {"embed_dim": 8, "depths": (2,), "mlp_ratio": 3.0}),
]


@pytest.mark.parametrize(("name", "scale", "config"), DETECT_GRID)
def test_bare_state_dicts_are_detected(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any]
) -> None:
    n = len(config["depths"])
    config = {
        "num_heads_window": (1,) * n,
        "num_heads_stripe": (2,) * n,
        "num_feat": 8,
        **config,
    }
    original = randomize_(srzoo.create(name, scale, **config), seed=scale).eval()
    built = {**(GRL.__init__.__kwdefaults__ or {}), **srzoo.model_info(name).defaults, **config}
    if built["upsampler"] == "pixelshuffledirect":
        del built["num_feat"]
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        expected = original(x)
    state = {k: v.contiguous() for k, v in original.state_dict().items()}
    torch.save(state, tmp_path / "bare.pth")
    save_file(state, str(tmp_path / "bare.safetensors"))
    for path in (tmp_path / "bare.pth", tmp_path / "bare.safetensors"):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "grl",
            name,
            scale,
            "state-dict",
        )
        for key, value in found.model_args.items():
            want = built[key]
            assert value == (tuple(want) if isinstance(want, list | tuple) else want), key
        model = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_scale_one_restoration_files_are_not_taken_for_sr() -> None:
    from srzoo.archs.grl import detect_grl
    from srzoo.registry import Shapes

    model = srzoo.create("grl-tiny", 2, **TINY["grl-tiny"])
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if "upsample" not in k}
    shapes["conv_last.weight"] = (3, shapes["conv_first.weight"][0], 3, 3)
    assert detect_grl(Shapes(shapes)) is None


# --------------------------------------------------------------------------------------------
# Registry and parameter counts
# --------------------------------------------------------------------------------------------

# From the authors' code (spandrel's copy); x4: 20.20M, 3.49M and 0.91M.
COUNTS = {
    ("grl", 2): 20_053_587,
    ("grl", 3): 20_238_227,
    ("grl", 4): 20_201_299,
    ("grl-small", 2): 3_340_003,
    ("grl-small", 3): 3_524_643,
    ("grl-small", 4): 3_487_715,
    ("grl-tiny", 2): 885_420,
    ("grl-tiny", 3): 894_075,
    ("grl-tiny", 4): 906_192,
}


@pytest.mark.parametrize(("name", "scale"), sorted(COUNTS))
def test_parameter_counts(name: str, scale: int) -> None:
    assert srzoo.model_info(name).num_params(scale) == COUNTS[name, scale]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scale"), sorted(COUNTS))
def test_parameter_counts_equal_the_authors_code(name: str, scale: int) -> None:
    # spandrel's GRL calls .item() in its constructor: it cannot be built on the meta device.
    ref = _reference(name, scale, img_size=64)
    with torch.device("meta"):
        ours = srzoo.model_info(name).build(scale)
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert sum(p.numel() for p in ref.parameters()) == COUNTS[name, scale]


def test_registry_entries() -> None:
    for name in NAMES:
        info = srzoo.model_info(name)
        assert info.family == "grl" and info.task == "psnr" and info.scales == (2, 3, 4)
        assert info.size_multiple == 64 == max(info.defaults["stripe_size"])
        assert info.defaults["window_size"] == 32
        assert info.paper.arxiv == "2303.00748" and info.code_license == "MIT"
        assert info.converter is convert_grl
        assert info.weights == ()  # release assets without a published sha256


def test_contract_attributes() -> None:
    for name in NAMES:
        info = srzoo.model_info(name)
        with torch.device("meta"):
            model = info.build(info.scale)
        assert model.receptive_field is None
        assert (model.scale, model.in_channels, model.out_channels) == (info.scale, 3, 3)
        assert model.pad_size == info.size_multiple


def test_tiny_and_narrow_entries() -> None:
    for name in NAMES:
        tiny = srzoo.create(name, None, **TINY[name])
        assert tiny.receptive_field is None
        assert max(TINY[name]["depths"]) >= 4  # shifted and unshifted stripes, both directions
        defaults = srzoo.model_info(name).defaults
        assert "depths" not in NARROW[name]
        assert NARROW[name]["embed_dim"] < defaults["embed_dim"]


# --------------------------------------------------------------------------------------------
# Compilation, dtypes, sizes
# --------------------------------------------------------------------------------------------


def _tiny(name: str = "grl", scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create(name, scale, **TINY[name]), seed=1).eval()


@pytest.mark.slow  # 12 s of capture on two cores; the slow run covers it
def test_no_graph_breaks_at_two_sizes() -> None:
    # One stage of four blocks runs every path (and keeps the capture to seconds).
    one_stage = {"depths": (4,), "num_heads_window": (2,), "num_heads_stripe": (2,)}
    model = srzoo.create("grl", 2, **{**TINY["grl"], **one_stage}).eval()
    assert_no_graph_breaks(randomize_(model, seed=1), ((8, 8), (13, 21)))


def test_tables_are_cached_per_shape_on_the_input_device() -> None:
    from srzoo.archs import grl

    model = _tiny("grl-small")
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        model(x)
    mask = grl._stripe_mask(16, 16, (8, 8), 2, True, x.device, x.dtype)
    assert grl._stripe_mask(16, 16, (8, 8), 2, True, x.device, x.dtype) is mask
    assert mask.device == x.device and mask.dtype == x.dtype
    assert mask.shape == (4, 64, 16) and (mask != 0).any()
    order, inverse = grl._order(16, 16, (4, 8), (2, 4), x.device)
    assert torch.equal(order[inverse], torch.arange(256))


def test_bfloat16_forward() -> None:
    model = _tiny("grl", 2)
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, atol=5e-2, rtol=0)


def test_input_padding_and_cropping() -> None:
    model = _tiny("grl-tiny", 4)
    for size in ((1, 1), (7, 9), (8, 8), (17, 3)):
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            assert model(x).shape == (1, 3, size[0] * 4, size[1] * 4)


def test_bad_configurations_are_refused() -> None:
    small = {
        "embed_dim": 8,
        "depths": (2,),
        "num_heads_window": (2,),
        "num_heads_stripe": (2,),
        "window_size": 4,
        "stripe_size": (8, 8),
        "anchor_window_down_factor": 2,
        "local_connection": False,
    }
    with pytest.raises(ArgumentError, match="multiple of twice"):
        GRL(**{**small, "embed_dim": 6})
    with pytest.raises(ArgumentError, match="one positive entry per stage"):
        GRL(**{**small, "depths": (2, 2)})
    with pytest.raises(ArgumentError, match="stripe_size"):
        GRL(**{**small, "stripe_size": (6, 8)})
    with pytest.raises(ArgumentError, match="divide the largest"):
        GRL(**{**small, "window_size": 3})
    with pytest.raises(ArgumentError, match="local_connection"):
        GRL(**{**small, "local_connection": True})
    with pytest.raises(ArgumentError, match="anchor_proj_type"):
        GRL(**{**small, "anchor_proj_type": "conv2d"})  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="nearest\\+conv"):
        GRL(scale=3, upsampler="nearest+conv", **small)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="scale"):
        GRL(scale=0, **small)  # type: ignore[arg-type]
