"""SwinIR: the official layout against spandrel on identical random weights (every registered
configuration, sizes on and off the window grid), parameter counts of the official
configurations, the buffers srzoo computes instead of storing, torch.compile capture (static and
dynamic shapes), bfloat16, and tiling of this global network.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import srzoo
from srzoo.archs.swinir import DropPath, SwinIR, convert_swinir
from srzoo.errors import ArgumentError

from ..util import NARROW, TINY, assert_loads_correctly, randomize_

NAMES = ["swinir", "swinir-light", "swinir-real", "swinir-real-large"]

# Small configurations of each registered variant (what its defaults fix stays: the head, the
# RSTB closing); three layers in the first RSTB and two in the second, so that both ways out
# of a group (after a plain and after a shifted layer) are run.
SMALL: dict[str, dict[str, Any]] = {
    "swinir": {"embed_dim": 12, "depths": (3, 2), "num_heads": (2, 3), "num_feat": 8},
    "swinir-light": {"embed_dim": 12, "depths": (3, 2), "num_heads": (2, 3)},
    "swinir-real": {"embed_dim": 12, "depths": (3, 2), "num_heads": (2, 3), "num_feat": 8},
    "swinir-real-large": {"embed_dim": 16, "depths": (3, 2), "num_heads": (2, 4), "num_feat": 8},
}
SIZES = [(13, 11), (16, 16), (9, 21)]


class _LinspaceOnCpu(TorchFunctionMode):
    """spandrel's SwinIR calls ``.item()`` on a ``linspace``: keep that one off the meta device."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        if func is torch.linspace:
            kwargs["device"] = "cpu"
        return func(*args, **kwargs)


def _ref(scale: int, img_size: int = 64, **config: Any) -> nn.Module:
    """spandrel's SwinIR (the upstream code) in srzoo's argument names."""
    arch = pytest.importorskip("spandrel.architectures.SwinIR")
    kwargs: dict[str, Any] = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    num_feat: int = kwargs.pop("num_feat", 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.meshgrid's indexing notice
        model: nn.Module = arch.SwinIR(upscale=scale, img_size=img_size, img_range=1.0, **kwargs)
    if num_feat != 64:
        # Upstream fixes num_feat at 64; rebuild the heads narrower, in the same layout.
        _narrow_heads(model, num_feat, scale)
    return model


def _narrow_heads(model: Any, num_feat: int, scale: int) -> None:
    embed = model.conv_first.out_channels
    out = model.conv_last.out_channels
    model.conv_before_upsample = nn.Sequential(
        nn.Conv2d(embed, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
    )
    if model.upsampler == "pixelshuffle":
        arch = pytest.importorskip("spandrel.architectures.SwinIR.__arch.SwinIR")
        model.upsample = arch.Upsample(scale, num_feat)
    else:
        model.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        if scale == 4:
            model.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        model.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    model.conv_last = nn.Conv2d(num_feat, out, 3, 1, 1)


def _reference_config(name: str, **overrides: Any) -> dict[str, Any]:
    return {**srzoo.model_info(name).defaults, **overrides}


def _params(state: dict[str, torch.Tensor]) -> object:
    return {"params": state}


def _params_ema(state: dict[str, torch.Tensor]) -> object:
    return {"params_ema": state}


CONTAINERS = {
    "swinir": _params,
    "swinir-light": _params,
    "swinir-real": _params_ema,
    "swinir-real-large": _params_ema,
}


def _restore_masks(model: nn.Module) -> None:
    """Put upstream's own shift masks back after randomize_ filled every float buffer."""
    with torch.no_grad():
        block: Any
        for block in model.modules():
            if getattr(block, "attn_mask", None) is not None:
                block.attn_mask.copy_(block.calculate_mask(block.input_resolution))


def _spandrel_detected(path: Path) -> nn.Module:
    spandrel = pytest.importorskip("spandrel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model: nn.Module = spandrel.ModelLoader().load_from_file(path).model
    return model


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

# spandrel's parameters (its state dicts also hold the index and mask buffers). The papers
# count without the relative-position tables: SwinIR-S x2 is 878K there, 910,152 - 24 * 225 * 6
# here.
COUNTS = {
    ("swinir", 2): 11_752_487,
    ("swinir", 3): 11_937_127,
    ("swinir", 4): 11_900_199,
    ("swinir", 8): 12_047_911,
    ("swinir-light", 2): 910_152,
    ("swinir-light", 3): 918_267,
    ("swinir-light", 4): 929_628,
    ("swinir-real", 2): 11_678_631,
    ("swinir-real", 4): 11_715_559,
    ("swinir-real-large", 2): 27_976_131,
    ("swinir-real-large", 4): 28_013_059,
}


def _spandrel_count(name: str, scale: int) -> int:
    with torch.device("meta"), _LinspaceOnCpu():
        ref = _ref(scale, **srzoo.model_info(name).defaults)
    with torch.device("meta"):
        ours = srzoo.model_info(name).build(scale)
    # The same tensors but the buffers srzoo computes.
    assert set(ours.state_dict()) == set(convert_swinir(ref.state_dict(), ours))
    return sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize(("name", "scale"), sorted(COUNTS))
def test_parameter_counts_of_the_official_configurations(name: str, scale: int) -> None:
    assert srzoo.model_info(name).num_params(scale) == COUNTS[name, scale]


@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_equal_spandrels(name: str) -> None:
    scale = srzoo.model_info(name).scale
    assert _spandrel_count(name, scale) == COUNTS[name, scale]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scale"), sorted(COUNTS))
def test_parameter_counts_equal_spandrels_at_every_scale(name: str, scale: int) -> None:
    assert _spandrel_count(name, scale) == COUNTS[name, scale]


def test_paper_parameter_count_of_swinir_light() -> None:
    # Table 3 of the paper: 878K, 886K, 897K without the 24 relative-position tables.
    tables = 24 * (2 * 8 - 1) ** 2 * 6
    for scale, paper in ((2, 878), (3, 886), (4, 897)):
        count = srzoo.model_info("swinir-light").num_params(scale) - tables
        assert round(count / 1000) == paper


def test_registry_entries() -> None:
    expected = {
        "swinir": ((2, 3, 4, 8), "psnr", {"default", "div2k"}),
        "swinir-light": ((2, 3, 4), "psnr", {"default"}),
        "swinir-real": ((2, 4), "real-world", {"default", "psnr"}),
        "swinir-real-large": ((2, 4), "real-world", {"default", "psnr"}),
    }
    for name, (scales, task, tags) in expected.items():
        info = srzoo.model_info(name)
        assert info.family == "swinir" and info.colour == "rgb" and info.task == task
        assert info.scales == scales and info.scale == 4 and info.size_multiple == 8
        assert info.paper.arxiv == "2108.10257" and info.code_license == "Apache-2.0"
        assert info.converter is convert_swinir
        for s in scales if name != "swinir-real-large" else (4,):
            assert {w.tag for w in info.weights if w.scale == s} == tags, (name, s)
        for w in info.weights:
            assert w.source.startswith("https://github.com/JingyunLiang/SwinIR/releases/")
            assert w.license == "Apache-2.0" and w.train_data and w.input_range.startswith("0-1")
            if w.sha256 is None:
                assert w.tag == "psnr" and w.sha256_note
            else:
                assert len(w.sha256) == 64 and w.size and w.size > 10_000_000
            for m in w.metrics:
                assert m.scale == w.scale and m.dataset in {"Set5", "Set14"} and "Table" in m.source


def test_default_classical_weights_are_df2k_and_carry_the_paper_numbers() -> None:
    info = srzoo.model_info("swinir")
    default, div2k = info.weights_for(4), info.weights_for(4, "div2k")
    assert default is not None and div2k is not None
    assert "DF2K_s64w8_SwinIR-M_x4" in default.source and "DIV2K_s48w8" in div2k.source
    assert [(m.dataset, m.value) for m in default.metrics] == [("Set5", 32.92), ("Set14", 29.09)]
    assert [(m.dataset, m.value) for m in div2k.metrics] == [("Set5", 32.72), ("Set14", 28.94)]
    x8 = info.weights_for(8)
    assert x8 is not None and x8.metrics == ()  # the paper has no x8 rows
    light = srzoo.model_info("swinir-light").weights_for(2)
    assert light is not None and [m.value for m in light.metrics] == [38.14, 33.86]


def test_every_swinir_row_of_the_weights_table_is_registered() -> None:
    from ..util import DATA

    table = DATA / "weights.tsv"
    if not table.exists():
        pytest.skip(f"reference data not available: {table}")
    rows = [
        line.split("\t") for line in table.read_text().splitlines() if line.startswith("swinir_")
    ]
    registered = {w.source: w for n in NAMES for w in srzoo.model_info(n).weights}
    assert len(rows) == len(registered) == 17
    for row in rows:
        url, sha, size = row[4], row[5], row[6]
        w = registered[url]
        assert w.scale == int(row[3])
        assert (w.sha256 or "") == sha and (str(w.size) if w.size else "") == size


# --------------------------------------------------------------------------------------------
# Layouts against spandrel
# --------------------------------------------------------------------------------------------

PARITY = [
    ("swinir", 2),
    ("swinir", 3),
    ("swinir", 4),
    ("swinir", 8),
    ("swinir-light", 2),
    ("swinir-light", 3),
    ("swinir-light", 4),
    ("swinir-real", 2),
    ("swinir-real", 4),
    ("swinir-real-large", 4),
]


@pytest.mark.parametrize("size", SIZES[:2], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("name", "scale"), PARITY)
def test_official_layout_matches_spandrel(
    tmp_path: Path, name: str, scale: int, size: tuple[int, int]
) -> None:
    # randomize_ also fills spandrel's attn_mask buffers with noise: they are saved so, and
    # srzoo must ignore them (spandrel recomputes the mask for any size but its img_size).
    config = SMALL[name]
    # spandrel's loader fixes num_feat at 64: its detection can check the pixel-shuffle heads.
    detect = _spandrel_detected if "num_feat" not in config else None
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        _ref(scale, **_reference_config(name, **config)),
        overrides=config,
        container=CONTAINERS[name],
        reload_reference=detect,
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize("name", NAMES)
def test_off_grid_size_and_the_stored_mask_path(name: str) -> None:
    # spandrel uses its stored attn_mask where the input is exactly img_size: the same mask
    # srzoo computes (restored after randomisation), at a non-square padded size elsewhere.
    scale = srzoo.model_info(name).scale
    config = SMALL[name]
    ref = randomize_(_ref(scale, img_size=16, **_reference_config(name, **config)), seed=3)
    _restore_masks(ref)
    ref.eval()
    model = srzoo.create(name, scale, **config).eval()
    model.load_state_dict(convert_swinir(ref.state_dict(), model))
    for size in ((16, 16), SIZES[2]):
        x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            expected, got = ref(x.clone()), model(x)
        bound = 1e-4 * max(1.0, expected.abs().max().item())
        assert (got - expected).abs().max().item() <= bound, size


def test_full_width_swinir_light_matches_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "swinir-light",
        4,
        _ref(4, **_reference_config("swinir-light")),
        container=_params,
        reload_reference=_spandrel_detected,
        seed=11,
        size=(13, 11),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scale"), [("swinir", 4), ("swinir-real-large", 4)])
def test_full_width_matches_spandrel(tmp_path: Path, name: str, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        _ref(scale, **_reference_config(name)),
        container=CONTAINERS[name],
        safetensors=False,
        seed=12,
        size=(13, 11),
        atol=1e-4,
        relative=True,
    )


# --------------------------------------------------------------------------------------------
# The computed buffers
# --------------------------------------------------------------------------------------------


def test_converter_drops_exactly_the_computed_buffers() -> None:
    ref = _ref(2, img_size=48, **_reference_config("swinir", **SMALL["swinir"]))
    upstream = ref.state_dict()
    masks = [k for k in upstream if k.endswith(".attn_mask")]
    indices = [k for k in upstream if k.endswith(".relative_position_index")]
    # The training patch size shows in the stored masks: 48 / 8 = 6 windows a side.
    assert masks and all(upstream[k].shape == (36, 64, 64) for k in masks)
    assert len(indices) == 5
    model = srzoo.create("swinir", 2, **SMALL["swinir"])
    converted = convert_swinir(dict(upstream), model)
    assert set(upstream) - set(converted) == set(masks) | set(indices)
    assert set(converted) == set(model.state_dict())
    # srzoo's own layout passes unchanged, and holds no buffer at all.
    own = model.state_dict()
    assert convert_swinir(dict(own), model).keys() == own.keys()
    assert not [k for k, _ in model.named_buffers() if k in own]


def test_img_size_of_a_checkpoint_does_not_matter(tmp_path: Path) -> None:
    # The DIV2K classical files were trained at 48, the others at 64: the same weights saved
    # with either size of stored mask load into one module and give the same output.
    config = _reference_config("swinir", **SMALL["swinir"])
    weights = randomize_(_ref(2, img_size=48, **config)).state_dict()
    learned = {k: v for k, v in weights.items() if not k.endswith("attn_mask")}
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    outputs = []
    for img_size in (48, 64):
        ref = _ref(2, img_size=img_size, **config)
        ref.load_state_dict(learned, strict=False)
        state = ref.state_dict()
        assert state["layers.0.residual_group.blocks.1.attn_mask"].shape[0] == (img_size // 8) ** 2
        path = tmp_path / f"s{img_size}.pth"
        torch.save({"params": state}, path)
        model = srzoo.load("swinir", scale=2, weights=path, **SMALL["swinir"])
        with torch.no_grad():
            outputs.append(model(x))
    torch.testing.assert_close(outputs[0], outputs[1], atol=0, rtol=0)


# --------------------------------------------------------------------------------------------
# torch.compile, bfloat16
# --------------------------------------------------------------------------------------------


def _tiny(name: str = "swinir", scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create(name, scale, **TINY[name]), seed=1).eval()


def test_no_graph_breaks_at_two_sizes() -> None:
    model = _tiny()
    for size in ((16, 16), (13, 21)):
        torch._dynamo.reset()
        with torch.no_grad():
            explained = torch._dynamo.explain(model)(torch.rand(1, 3, *size))
        assert explained.graph_break_count == 0, explained.break_reasons
        assert explained.graph_count == 1


@pytest.mark.slow  # tracing with symbolic shapes takes half a minute on two cores
def test_dynamic_shapes_compile_once() -> None:
    torch._dynamo.reset()
    model = _tiny("swinir-light", 2)
    graphs: list[int] = []

    def backend(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable[..., Any]:
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    compiled = torch.compile(model, backend=backend, dynamic=True, fullgraph=True)
    with torch.no_grad():
        # Not square at first: equal sides would let the compiler assume H == W (duck sizing).
        for size in ((24, 40), (32, 48), (48, 16)):
            x = torch.rand(1, 3, *size)
            torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    assert len(graphs) == 1, f"recompiled for a new tile size: {len(graphs)} graphs"


def test_bfloat16_forward() -> None:
    model = _tiny("swinir", 2)
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, atol=5e-2, rtol=0)


# --------------------------------------------------------------------------------------------
# Tiling a global network
# --------------------------------------------------------------------------------------------


def test_tiling_warns_and_stays_close() -> None:
    # The numbers the guide quotes: tiles of 32 (overlap 8, a quarter of the tile) against the
    # whole 64x64 image, for the tiny classical x2 network on random weights.
    model = _tiny("swinir", 2).double()
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    whole = srzoo.upscale(model, x, tile=None)
    with pytest.warns(srzoo.TilingWarning):
        tiled = srzoo.upscale(model, x, tile=32)
    assert tiled.shape == whole.shape == (3, 128, 128)
    diff = (tiled - whole).abs()
    print(f"swinir tiny x2, 64x64, tile 32: max {diff.max():.4g}, mean {diff.mean():.4g}")
    assert 0 < diff.max() < 0.5 and diff.mean() < 0.02


# --------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------


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


def test_input_padding_and_cropping() -> None:
    model = _tiny("swinir-real", 4)
    for size in ((1, 1), (7, 9), (8, 8), (17, 3)):
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            assert model(x).shape == (1, 3, size[0] * 4, size[1] * 4)


def test_drop_path_only_in_training() -> None:
    drop = DropPath(0.5)
    x = torch.ones(64, 3, 2)
    torch.manual_seed(0)
    y = drop(x)
    kept = (y[:, 0, 0] != 0).float().mean()
    assert 0.2 < kept < 0.8 and set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ArgumentError, match="DropPath"):
        DropPath(1.0)


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="nearest\\+conv"):
        SwinIR(scale=3, upsampler="nearest+conv")
    with pytest.raises(ArgumentError, match="scale 3 and powers of two"):
        SwinIR(scale=6, upsampler="pixelshuffle")
    with pytest.raises(ArgumentError, match="depths and num_heads"):
        SwinIR(depths=(2, 2), num_heads=(2,))
    with pytest.raises(ArgumentError, match="multiple of num_heads"):
        SwinIR(embed_dim=10, depths=(2,), num_heads=(3,))
    with pytest.raises(ArgumentError, match="upsampler"):
        SwinIR(embed_dim=8, depths=(2,), num_heads=(2,), upsampler="bilinear")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="resi_connection"):
        SwinIR(embed_dim=8, depths=(2,), num_heads=(2,), resi_connection="2conv")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="scale"):
        SwinIR(scale=0)
    # pixelshuffledirect takes any scale.
    assert SwinIR(scale=5, embed_dim=8, depths=(2,), num_heads=(2,), upsampler="pixelshuffledirect")
