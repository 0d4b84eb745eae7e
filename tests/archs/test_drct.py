"""DRCT: parameter counts, the official layout against spandrel on identical random weights (and
spandrel's own detection of the same files), the converter's handling of the stored index tables
and masks, detection from a bare state dict, compile capture and bfloat16.

ming053l/DRCT's files (``params_ema``) and spandrel's state dicts share one key layout, index
tables and shifted-window masks included. spandrel's DRCT does not pad: its reference runs pad
by reflection to a multiple of the window and crop, as the authors' test code does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.drct import DRCT, convert_drct, detect_drct, layer_heads
from srzoo.errors import ArgumentError, IncompatibleWeightsError
from srzoo.registry import Shapes

from ..util import TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_

NAMES = ("drct", "drct-l")
StateDict = dict[str, torch.Tensor]


def _spandrel_drct(monkeypatch: pytest.MonkeyPatch | None = None, **config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.DRCT")
    if monkeypatch is not None:
        # spandrel reads its drop-path rates with .item(), which a meta tensor refuses.
        monkeypatch.setattr(torch, "linspace", functools.partial(torch.linspace, device="cpu"))
    # The training patch fixes the stored masks' shape (spandrel's loader reads it back from
    # them): the releases' 64, or 32 for the small windows here. Never the padded size of a
    # test input: there spandrel would use its stored masks, which randomize_ overwrites.
    patch = 64 if config.get("window_size", 16) >= 16 else 32
    model: nn.Module = arch.DRCT(img_size=patch, upsampler="pixelshuffle", **config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _padded(window: int) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    def run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y: torch.Tensor = module(F.pad(x, (0, -w % window, 0, -h % window), mode="reflect"))
        scale = y.shape[-1] // (w + -w % window)
        return y[..., : h * scale, : w * scale]

    return run


def _with_masks(reference: nn.Module) -> Callable[[StateDict], StateDict]:
    # randomize_ overwrites the stored masks (float buffers) of the reference; the files carry
    # the ones upstream computes, as the official checkpoints do. Call before randomising.
    fresh = {k: v.clone() for k, v in reference.state_dict().items() if k.endswith("attn_mask")}

    def apply(state: StateDict) -> StateDict:
        return {**state, **fresh}

    return apply


def _params_ema(state: StateDict) -> object:
    return {"params_ema": state}


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

# The README's 14.13M (DRCT) and 27.58M (DRCT-L) at x4; spandrel's state dicts also hold the
# index tables and masks, which srzoo computes instead of storing.
PARAMS = {
    ("drct", 2): 13_991_867,
    ("drct", 3): 14_176_507,
    ("drct", 4): 14_139_579,
    ("drct-l", 2): 27_433_007,
    ("drct-l", 3): 27_617_647,
    ("drct-l", 4): 27_580_719,
}


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        case
        if case in {("drct", 4), ("drct-l", 4)}
        else pytest.param(*case, marks=pytest.mark.slow)
        for case in PARAMS
    ],
)
def test_parameter_counts_of_the_official_configurations(
    name: str, scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = srzoo.model_info(name)
    assert info.num_params(scale) == PARAMS[(name, scale)]
    with torch.device("meta"):
        ref = _spandrel_drct(monkeypatch, upscale=scale, **info.defaults)
        ours = info.build(scale)
    assert sum(p.numel() for p in ref.parameters()) == PARAMS[(name, scale)]
    # Every parameter has the official name and shape.
    derived = ("relative_position_index", "attn_mask")
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items() if not k.endswith(derived)
    }


@pytest.mark.parametrize("name", NAMES)
def test_registry_entries(name: str) -> None:
    info = srzoo.model_info(name)
    assert info.family == "drct" and info.colour == "rgb" and info.size_multiple == 16
    assert info.scales == (2, 3, 4) and info.scale == 4 and info.task == "psnr"
    assert info.paper.arxiv == "2404.00722" and info.paper.year == 2024
    assert info.code_license == "MIT"
    # Published only on Google Drive: nothing registered (the module docstring says why).
    assert info.weights == ()
    assert len(info.defaults["num_heads"]) == (12 if name == "drct-l" else 6)


def test_layer_heads_follow_upstream() -> None:
    # 180 + k * 32 channels in a group of 6 heads: 6, 4, 2, 6, 4 heads.
    assert [layer_heads(180 + k * 32, 6) for k in range(1, 5)] == [4, 2, 6, 4]


def test_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match="depths and num_heads"):
        DRCT(depths=(6, 6), num_heads=(6,))
    with pytest.raises(ArgumentError, match="do not divide"):
        DRCT(embed_dim=26, depths=(6,), num_heads=(6,))
    with pytest.raises(ArgumentError, match="window_size"):
        DRCT(window_size=1)
    with pytest.raises(ArgumentError, match="resi_connection"):
        DRCT(resi_connection="3conv")
    with pytest.raises(ArgumentError, match="pixelshuffle"):
        DRCT(scale=5, embed_dim=12, depths=(6,), num_heads=(2,), gc=6)


# --------------------------------------------------------------------------------------------
# The official layout against spandrel
# --------------------------------------------------------------------------------------------

# Small widths whose dense layers all divide into heads: DRCT 24 + k * 8 channels with 6 and 3
# heads (6, 4, 2, 6, 4 and 3, 1, 2, 3, 1 heads along a group); DRCT-L (its depth only differs)
# two groups of 12 + k * 6 channels with 2 heads. spandrel fixes num_feat at 64.
SMALL: dict[str, dict[str, Any]] = {
    "drct": {"embed_dim": 24, "depths": (6, 6), "num_heads": (6, 3), "window_size": 4, "gc": 8},
    "drct-l": {"embed_dim": 12, "depths": (6,) * 2, "num_heads": (2,) * 2, "window_size": 4},
}
SMALL["drct-l"]["gc"] = 6
CASES = [("drct", 2), ("drct", 3), ("drct", 4), ("drct-l", 4)]
OTHER_CASES = [("drct-l", 2), ("drct-l", 3)]


@pytest.mark.parametrize(
    ("name", "scale"),
    [*CASES, *(pytest.param(*case, marks=pytest.mark.slow) for case in OTHER_CASES)],
)
def test_official_layout_matches_spandrel(tmp_path: Path, name: str, scale: int) -> None:
    # 13x11 pads to 16x12; at x4 also a multiple of the window (no padding).
    sizes = [(13, 11), (16, 16)] if scale == 4 else [(13, 11)]
    config = {**srzoo.model_info(name).defaults, **SMALL[name]}
    for size in sizes:
        ref = _spandrel_drct(upscale=scale, **config)
        assert_loads_correctly(
            tmp_path,
            name,
            scale,
            ref,
            overrides=config,
            to_upstream=_with_masks(ref),
            container=_params_ema,
            safetensors=size == (16, 16),
            run_reference=_padded(4),
            # spandrel's own loader detects the configuration (img_size from the masks).
            reload_reference=_spandrel_detected if size == (13, 11) and scale == 4 else None,
            seed=scale,
            size=size,
            atol=1e-4,
            relative=True,
        )


def test_the_official_window_matches_spandrel(tmp_path: Path) -> None:
    # Window 16: the released index tables; 33x20 pads to 48x32, six windows with
    # shifted-window masks at both edges.
    config = {"embed_dim": 12, "depths": (6,), "num_heads": (2,), "window_size": 16, "gc": 6}
    ref = _spandrel_drct(upscale=2, **config)
    assert_loads_correctly(
        tmp_path,
        "drct",
        2,
        ref,
        overrides=config,
        to_upstream=_with_masks(ref),
        container=_params_ema,
        safetensors=False,
        run_reference=_padded(16),
        seed=5,
        size=(33, 20),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
def test_drct_full_size_matches_spandrel(tmp_path: Path) -> None:
    info = srzoo.model_info("drct")
    ref = _spandrel_drct(upscale=4, **info.defaults)
    assert_loads_correctly(
        tmp_path,
        "drct",
        4,
        ref,
        to_upstream=_with_masks(ref),
        container=_params_ema,
        safetensors=False,
        run_reference=_padded(16),
        seed=11,
        size=(20, 17),
        atol=1e-4,
        relative=True,
    )


def test_converter_drops_and_checks_the_index_tables() -> None:
    config = {"embed_dim": 12, "depths": (6,), "num_heads": (2,), "gc": 6}
    net = DRCT(scale=2, window_size=4, **config)
    ref = _spandrel_drct(upscale=2, window_size=4, **config).state_dict()
    assert any(k.endswith("attn_mask") for k in ref)
    converted = convert_drct(ref, net)
    assert set(converted) == set(net.state_dict())
    assert all(converted[k] is ref[k] for k in converted)
    own = net.state_dict()
    assert convert_drct(own, net).keys() == own.keys()
    # A file of another window size fails on its index tables, naming them.
    other = _spandrel_drct(upscale=2, window_size=8, **config).state_dict()
    with pytest.raises(IncompatibleWeightsError, match="relative_position_index"):
        convert_drct(other, net)


# --------------------------------------------------------------------------------------------
# Detection from a bare state dict
# --------------------------------------------------------------------------------------------

DETECT_GRID: list[tuple[str, int, dict[str, Any]]] = [
    ("drct", 2, {"embed_dim": 12, "depths": (6,), "num_heads": (2,), "window_size": 4, "gc": 6}),
    (
        "drct",
        3,
        {
            "embed_dim": 24,
            "depths": (6, 6),
            "num_heads": (6, 3),
            "window_size": 8,
            "gc": 8,
            "mlp_ratio": 1.5,
            "num_feat": 16,
            "resi_connection": "identity",
            "qkv_bias": False,
            "patch_norm": False,
        },
    ),
    ("drct-l", 4, {"embed_dim": 6, "depths": (6,) * 7, "num_heads": (1,) * 7, "gc": 2}),
]


@pytest.mark.parametrize(("name", "scale", "config"), DETECT_GRID)
def test_bare_state_dicts_are_detected(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any]
) -> None:
    original = randomize_(srzoo.create(name, scale, **config), seed=scale).eval()
    # Every constructor argument the detector reports, as the original was built.
    built = {**(DRCT.__init__.__kwdefaults__ or {}), **srzoo.model_info(name).defaults, **config}
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        expected = original(x)
    state = {k: v.contiguous() for k, v in original.state_dict().items()}
    torch.save(state, tmp_path / "bare.pth")
    save_file(state, str(tmp_path / "bare.safetensors"))
    for path in (tmp_path / "bare.pth", tmp_path / "bare.safetensors"):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "drct",
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


def test_official_files_are_detected_with_their_tables() -> None:
    config = {"embed_dim": 12, "depths": (6,) * 2, "num_heads": (2,) * 2, "window_size": 4}
    state = _spandrel_drct(upscale=3, gc=6, **config).state_dict()
    found = detect_drct(Shapes({k: v.shape for k, v in state.items()}))
    assert found is not None and found.scale == 3 and found.model_args["gc"] == 6
    # A layer of the wrong width is not a DRCT.
    state["layers.1.swin3.norm1.weight"] = torch.zeros(5)
    assert detect_drct(Shapes({k: v.shape for k, v in state.items()})) is None


# --------------------------------------------------------------------------------------------
# Compile, bfloat16
# --------------------------------------------------------------------------------------------


def _tiny(name: str = "drct", scale: int = 2, **overrides: Any) -> nn.Module:
    return randomize_(srzoo.create(name, scale, **{**TINY[name], **overrides})).eval()


def test_fullgraph_capture_without_graph_breaks_at_two_sizes() -> None:
    model = _tiny()
    assert_no_graph_breaks(model, ((13, 11), (16, 24)))


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and bool(torch.isfinite(got).all())
    assert (got.float() - expected).abs().max().item() < 0.05 * max(1.0, expected.abs().max())
