"""ATD: parameter counts, the official layout against spandrel on identical random weights (and
spandrel's own detection of the same file), the converter's handling of the stored index table,
the mirror padding, detection from a bare state dict, compile capture and bfloat16.

LabShuHangGU/Adaptive-Token-Dictionary's files (``params_ema``) and spandrel's state dicts share
one key layout, index table included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.atd import ATD, convert_atd, detect_atd, symmetric_pad
from srzoo.errors import ArgumentError, IncompatibleWeightsError
from srzoo.registry import Shapes

from ..util import TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_

NAMES = ("atd", "atd-light")
StateDict = dict[str, torch.Tensor]


def _spandrel_atd(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.ATD")
    model: nn.Module = arch.ATD(img_size=64, **config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _params_ema(state: StateDict) -> object:
    return {"params_ema": state}


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

# The paper's 20.26M (ATD) and 769K (ATD-light) at x4; spandrel's state dicts also hold the
# index table, which srzoo computes instead of storing.
PARAMS = {
    ("atd", 2): 20_113_217,
    ("atd", 3): 20_297_857,
    ("atd", 4): 20_260_929,
    ("atd-light", 2): 753_204,
    ("atd-light", 3): 759_699,
    ("atd-light", 4): 768_792,
}


@pytest.mark.parametrize(
    ("name", "scale"),
    [case if case[1] == 4 else pytest.param(*case, marks=pytest.mark.slow) for case in PARAMS],
)
def test_parameter_counts_of_the_official_configurations(name: str, scale: int) -> None:
    info = srzoo.model_info(name)
    assert info.num_params(scale) == PARAMS[(name, scale)]
    with torch.device("meta"):
        ref = _spandrel_atd(upscale=scale, **info.defaults)
        ours = info.build(scale)
    assert sum(p.numel() for p in ref.parameters()) == PARAMS[(name, scale)]
    # Every parameter has the official name and shape.
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items() if k != "relative_position_index_SA"
    }


@pytest.mark.parametrize("name", NAMES)
def test_registry_entries(name: str) -> None:
    info = srzoo.model_info(name)
    assert info.family == "atd" and info.colour == "rgb" and info.size_multiple == 16
    assert info.scales == (2, 3, 4) and info.scale == 4 and info.task == "psnr"
    assert info.paper.arxiv == "2401.08209" and info.paper.venue == "CVPR"
    assert info.code_license == "Apache-2.0"
    # Published only on Google Drive: nothing registered (the module docstring says why).
    assert info.weights == ()
    light = name == "atd-light"
    assert info.defaults["upsampler"] == ("pixelshuffledirect" if light else "pixelshuffle")


def test_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match="embed_dim"):
        ATD(embed_dim=20)
    with pytest.raises(ArgumentError, match="depths and num_heads"):
        ATD(depths=(6, 6), num_heads=(6,))
    with pytest.raises(ArgumentError, match="odd"):
        ATD(convffn_kernel_size=4)
    small = {"embed_dim": 6, "depths": (1,), "num_heads": (1,)}
    with pytest.raises(ArgumentError, match="upsampler"):
        ATD(upsampler="bicubic", **small)
    with pytest.raises(ArgumentError, match="resi_connection"):
        ATD(resi_connection="identity", **small)
    with pytest.raises(ArgumentError, match="nearest"):
        ATD(scale=3, upsampler="nearest+conv", **small)


def test_symmetric_pad_repeats_the_edge_and_pads_any_size() -> None:
    x = torch.arange(3.0).view(1, 1, 1, 3).expand(1, 1, 4, 3)
    # Upstream's torch.cat([x, x.flip(-1)]) where it is defined, then periodic.
    assert symmetric_pad(x, 4)[0, 0, 0].tolist() == [0, 1, 2, 2]
    assert symmetric_pad(x, 8)[0, 0, 0].tolist() == [0, 1, 2, 2, 1, 0, 0, 1]
    rows = torch.arange(3.0).view(1, 1, 3, 1).expand(1, 1, 3, 4)
    assert symmetric_pad(rows, 4)[0, 0, :, 0].tolist() == [0, 1, 2, 2]
    assert symmetric_pad(torch.ones(1, 1, 1, 1), 16).shape == (1, 1, 16, 16)


# --------------------------------------------------------------------------------------------
# The official layout against spandrel
# --------------------------------------------------------------------------------------------

# Small widths, window 4; category sizes that leave the last group of a 16x16 (256 tokens) and
# of a padded 13x11 (192 tokens) image to be filled up. spandrel fixes num_feat at 64.
SMALL: dict[str, dict[str, Any]] = {
    "atd": {
        "embed_dim": 24,
        "depths": (3, 2),
        "num_heads": (3, 2),
        "window_size": 4,
        "category_size": 40,
        "num_tokens": 8,
        "reducted_dim": 4,
    },
    "atd-light": {
        "embed_dim": 12,
        "depths": (2, 2),
        "num_heads": (2, 2),
        "window_size": 4,
        "category_size": 24,
        "num_tokens": 6,
        "reducted_dim": 3,
        "convffn_kernel_size": 3,
    },
}
CASES = [("atd", 2), ("atd", 3), ("atd", 4), ("atd-light", 4)]
OTHER_CASES = [("atd-light", 2), ("atd-light", 3)]


@pytest.mark.parametrize(
    ("name", "scale"),
    [*CASES, *(pytest.param(*case, marks=pytest.mark.slow) for case in OTHER_CASES)],
)
def test_official_layout_matches_spandrel(tmp_path: Path, name: str, scale: int) -> None:
    # 13x11 pads to 16x12; at x4 also a multiple of the window (no padding).
    sizes = [(13, 11), (16, 16)] if scale == 4 else [(13, 11)]
    config = {**srzoo.model_info(name).defaults, **SMALL[name]}
    for size in sizes:
        assert_loads_correctly(
            tmp_path,
            name,
            scale,
            _spandrel_atd(upscale=scale, **config),
            overrides=config,
            container=_params_ema,
            safetensors=size == (16, 16),
            seed=scale,
            size=size,
            atol=1e-4,
            relative=True,
        )


def test_other_heads_and_no_mean_shift_match_spandrel(tmp_path: Path) -> None:
    # The real-world head, the 3conv bottlenecks and spandrel's files without the mean shift.
    config = {
        **srzoo.model_info("atd").defaults,
        **SMALL["atd"],
        "upsampler": "nearest+conv",
        "resi_connection": "3conv",
        "norm": False,
    }
    assert_loads_correctly(
        tmp_path,
        "atd",
        4,
        _spandrel_atd(upscale=4, **config),
        overrides=config,
        seed=9,
        size=(13, 11),
        atol=1e-4,
        relative=True,
    )


def test_spandrel_detects_the_same_file(tmp_path: Path) -> None:
    # spandrel's loader fixes the category size at 256 (ATD's): one group here.
    config = {**srzoo.model_info("atd").defaults, **SMALL["atd"], "category_size": 256}
    assert_loads_correctly(
        tmp_path,
        "atd",
        4,
        _spandrel_atd(upscale=4, **config),
        overrides=config,
        container=_params_ema,
        safetensors=False,
        reload_reference=_spandrel_detected,
        seed=4,
        size=(13, 11),
        atol=1e-4,
        relative=True,
    )


def test_the_official_window_matches_spandrel(tmp_path: Path) -> None:
    # Window 16: the released index table; 33x20 pads to 48x32, six windows with shifted-window
    # masks at both edges; 1536 tokens in groups of 128 (ATD-light's category size).
    config = {**srzoo.model_info("atd-light").defaults, **SMALL["atd-light"]}
    config.update(window_size=16, category_size=128, depths=(2,), num_heads=(2,))
    assert_loads_correctly(
        tmp_path,
        "atd-light",
        2,
        _spandrel_atd(upscale=2, **config),
        overrides=config,
        container=_params_ema,
        safetensors=False,
        seed=5,
        size=(33, 20),
        atol=1e-4,
        relative=True,
    )


def test_converter_drops_and_checks_the_index_table() -> None:
    config = {**SMALL["atd"], "upsampler": "pixelshuffle"}
    net = ATD(scale=2, **config)
    ref = _spandrel_atd(upscale=2, **config).state_dict()
    converted = convert_atd(ref, net)
    assert set(converted) == set(net.state_dict())
    assert all(converted[k] is ref[k] for k in converted)
    own = net.state_dict()
    assert convert_atd(own, net).keys() == own.keys()
    # A file of another window size fails on its index table, naming it.
    other = _spandrel_atd(upscale=2, **{**config, "window_size": 8}).state_dict()
    with pytest.raises(IncompatibleWeightsError, match="relative_position_index_SA"):
        convert_atd(other, net)


# --------------------------------------------------------------------------------------------
# Detection from a bare state dict
# --------------------------------------------------------------------------------------------

DETECT_GRID: list[tuple[str, int, dict[str, Any]]] = [
    ("atd", 2, SMALL["atd"]),
    (
        "atd",
        4,
        {
            **SMALL["atd"],
            "depths": (1, 2, 1),
            "num_heads": (2, 3, 1),
            "mlp_ratio": 1.5,
            "convffn_kernel_size": 3,
            "upsampler": "nearest+conv",
            "resi_connection": "3conv",
            "qkv_bias": False,
            "patch_norm": False,
            "norm": False,
            "num_feat": 16,
        },
    ),
    ("atd-light", 3, SMALL["atd-light"]),
]


@pytest.mark.parametrize(("name", "scale", "config"), DETECT_GRID)
def test_bare_state_dicts_are_detected(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any]
) -> None:
    # The category size holds no weights: the detector gives the variant's release value.
    defaults = srzoo.model_info(name).defaults
    config = {**config, "category_size": defaults["category_size"]}
    original = randomize_(srzoo.create(name, scale, **config), seed=scale).eval()
    # Every constructor argument the detector reports, as the original was built.
    built = {**(ATD.__init__.__kwdefaults__ or {}), **defaults, **config}
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        expected = original(x)
    state = {k: v.contiguous() for k, v in original.state_dict().items()}
    torch.save(state, tmp_path / "bare.pth")
    save_file(state, str(tmp_path / "bare.safetensors"))
    for path in (tmp_path / "bare.pth", tmp_path / "bare.safetensors"):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "atd",
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


def test_official_files_are_detected_with_their_table() -> None:
    config = {**SMALL["atd-light"], "upsampler": "pixelshuffledirect"}
    state = _spandrel_atd(upscale=3, **config).state_dict()
    found = detect_atd(Shapes({k: v.shape for k, v in state.items()}))
    assert found is not None and found.name == "atd-light" and found.scale == 3
    assert found.model_args["num_tokens"] == 6 and found.model_args["window_size"] == 4
    # A group missing its first layer is an incomplete file, not an ATD.
    del state["layers.1.residual_group.layers.0.norm1.weight"]
    assert detect_atd(Shapes({k: v.shape for k, v in state.items()})) is None


# --------------------------------------------------------------------------------------------
# Compile, bfloat16
# --------------------------------------------------------------------------------------------


def _tiny(name: str = "atd", scale: int = 2, **overrides: Any) -> nn.Module:
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
