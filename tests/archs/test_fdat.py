"""FDAT: every registered variant against spandrel's FDAT (the authors' keys) on identical random
weights, flat as the community files are and in traiNNer-redux's ``{"params_ema": ...}``
wrapper, with spandrel's own loader detecting the same file; every upsampler kind and
``unshuffle_mod``; detection of a grid of configurations; parameter counts; torch.compile
capture and bfloat16.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.fdat import FDAT, convert_fdat

from ..util import assert_loads_correctly, assert_no_graph_breaks, randomize_

NAMES = ("fdat-tiny", "fdat-light", "fdat", "fdat-large", "fdat-xl")

# Small widths and depths (two groups, one window + channel pair each, 4x4 windows so that
# 13x11 pads and spans several windows); each variant keeps its own upsampler and FFN ratio.
SMALL: dict[str, Any] = {
    "embed_dim": 24,
    "num_groups": 2,
    "depth_per_group": 1,
    "num_heads": 2,
    "window_size": 4,
    "mid_dim": 16,
}


def _spandrel_fdat(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.FDAT")
    model: nn.Module = arch.FDAT(**config)
    for module in model.modules():
        if type(module).__name__ == "DySample":
            # spandrel's FDAT DySample asks for pinned memory, which needs a GPU; its generic
            # DySample is the same computation without it.
            helper = pytest.importorskip("spandrel.architectures.__arch_helpers.dysample")
            module.forward = types.MethodType(helper.DySample.forward, module)  # type: ignore[method-assign]
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _config(name: str, **extra: Any) -> dict[str, Any]:
    defaults = dict(srzoo.model_info(name).defaults)
    defaults.pop("group_block_pattern", None)
    return {**defaults, **SMALL, **extra}


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        ("fdat-tiny", 4),
        pytest.param("fdat", 3, marks=pytest.mark.slow),
        pytest.param("fdat-tiny", 2, marks=pytest.mark.slow),
        pytest.param("fdat-light", 2, marks=pytest.mark.slow),
        pytest.param("fdat", 4, marks=pytest.mark.slow),
        pytest.param("fdat-large", 2, marks=pytest.mark.slow),
        pytest.param("fdat-xl", 4, marks=pytest.mark.slow),
    ],
)
def test_matches_spandrel_in_the_community_layouts(tmp_path: Path, name: str, scale: int) -> None:
    reference = _spandrel_fdat(scale=scale, **_config(name))
    # 13x11 pads the windows; 16x16 is a multiple of them.
    for size, wrapped in (((13, 11), False), ((16, 16), True)):
        assert_loads_correctly(
            tmp_path,
            name,
            scale,
            reference,
            overrides=SMALL,
            container=(lambda state: {"params_ema": state}) if wrapped else None,
            reload_reference=_spandrel_detected if not wrapped else None,
            safetensors=not wrapped,
            seed=scale,
            size=size,
            atol=1e-4,
            relative=True,
        )


_RELOADABLE = ("pixelshuffledirect", "pixelshuffle", "nearest+conv", "conv", "transpose+conv")


@pytest.mark.parametrize(
    ("kind", "scale"),
    [
        pytest.param("pixelshuffledirect", 4, marks=pytest.mark.slow),
        pytest.param("pixelshuffle", 2, marks=pytest.mark.slow),
        pytest.param("nearest+conv", 4, marks=pytest.mark.slow),
        pytest.param("nearest+conv", 3, marks=pytest.mark.slow),
        ("dysample", 2),
        pytest.param("pa_up", 4, marks=pytest.mark.slow),
        pytest.param("pa_up", 3, marks=pytest.mark.slow),
        pytest.param("conv", 1, marks=pytest.mark.slow),
        pytest.param("transpose+conv", 1, marks=pytest.mark.slow),
    ],
)
def test_every_upsampler_matches_spandrel(tmp_path: Path, kind: str, scale: int) -> None:
    config = _config("fdat", upsampler_type=kind)
    reference = _spandrel_fdat(scale=scale, **config)
    assert_loads_correctly(
        tmp_path,
        "fdat",
        scale,
        reference,
        overrides={**SMALL, "upsampler_type": kind},
        # spandrel reads x3 as x2 where the layers are alike (nearest+conv, pa_up): only the
        # MetaUpsample values, which its loader rewrites, tell them apart.
        # spandrel's own loader would rebuild the DySample that needs a GPU, and reads pa_up's
        # embed_dim from the record's in_dim, which upstream overwrites with mid_dim.
        reload_reference=_spandrel_detected if scale != 3 and kind in _RELOADABLE else None,
        safetensors=False,
        seed=7,
        size=(13, 11),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize("scale", [pytest.param(1, marks=pytest.mark.slow), 2])
def test_unshuffle_mod_matches_spandrel(tmp_path: Path, scale: int) -> None:
    reference = _spandrel_fdat(scale=scale, unshuffle_mod=True, **_config("fdat"))
    assert_loads_correctly(
        tmp_path,
        "fdat",
        scale,
        reference,
        overrides={**SMALL, "unshuffle_mod": True},
        reload_reference=_spandrel_detected,
        safetensors=False,
        seed=8,
        size=(13, 11),  # odd: the input is reflect-padded to the unshuffle factor
        atol=1e-4,
        relative=True,
    )


def test_srzoo_state_dicts_load_in_spandrel_and_the_unused_gates_are_frozen() -> None:
    model = randomize_(srzoo.create("fdat-tiny", 4, **SMALL), seed=2).eval()
    loaded = pytest.importorskip("spandrel").ModelLoader().load_from_state_dict(model.state_dict())
    x = torch.rand(1, 3, 9, 14)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(x), model(x), atol=1e-5, rtol=1e-5)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    # Window blocks run the channel gate only, channel blocks the spatial gate only.
    assert frozen == {
        f"groups.{g}.blocks.{b}.inter.{gate}"
        for g in range(2)
        for b, gates in ((0, ("sg.0.weight",)), (1, ("cg.1.weight", "cg.3.weight")))
        for gate in gates
    }


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

GRID: list[tuple[int, dict[str, Any], str]] = [
    (
        4,
        {"embed_dim": 96, "num_heads": 3, "ffn_expansion_ratio": 1.5, "depth_per_group": 1},
        "fdat-tiny",
    ),
    (2, {"group_block_pattern": ("spatial", "spatial", "channel"), "depth_per_group": 1}, "fdat"),
    (3, {"embed_dim": 108, "upsampler_type": "pixelshuffle", "mid_dim": 32}, "fdat-light"),
    (
        4,
        {"embed_dim": 180, "num_heads": 6, "upsampler_type": "dysample", "mid_dim": 32},
        "fdat-large",
    ),
    (2, {"upsampler_type": "pixelshuffledirect", "aim_reduction_ratio": 4}, "fdat"),
    (1, {"unshuffle_mod": True, "num_groups": 3}, "fdat"),
    (4, {"upsampler_type": "pa_up", "window_size": 2, "num_in_ch": 1, "num_out_ch": 1}, "fdat"),
    (1, {"upsampler_type": "conv"}, "fdat"),
]


@pytest.mark.parametrize(
    ("scale", "args", "name"),
    [*GRID[:2], *(pytest.param(*case, marks=pytest.mark.slow) for case in GRID[2:])],
)
def test_detects_the_configuration(
    tmp_path: Path, scale: int, args: dict[str, Any], name: str
) -> None:
    config: dict[str, Any] = {
        "embed_dim": 24,
        "num_groups": 2,
        "depth_per_group": 2,
        "num_heads": 2,
        "window_size": 4,
        "ffn_expansion_ratio": 2.0,
        "aim_reduction_ratio": 8,
        "group_block_pattern": ("spatial", "channel"),
        "mid_dim": 64,
        "upsampler_type": "transpose+conv",
        "unshuffle_mod": False,
        "num_in_ch": 3,
        "num_out_ch": 3,
        **args,
    }
    if scale == 1 and not config["unshuffle_mod"]:
        config["upsampler_type"] = "conv"
    model = randomize_(FDAT(scale=scale, drop_path_rate=0.0, **config), seed=4).eval()
    state = model.state_dict()
    torch.save(state, tmp_path / "f.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "f.safetensors"))
    channels = config["num_in_ch"]
    x = torch.rand(1, channels, 11, 13)
    with torch.no_grad():
        expected = model(x)
    for path in (tmp_path / "f.pth", tmp_path / "f.safetensors"):
        detected = srzoo.detect(path)
        assert (detected.name, detected.family, detected.scale) == (name, "fdat", scale)
        got = dict(detected.model_args)
        if config["upsampler_type"] not in ("pixelshuffle", "dysample", "pa_up"):
            got.pop("mid_dim")
            config.pop("mid_dim", None)
        for key, value in config.items():
            assert got[key] == value, key
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), expected, atol=1e-5, rtol=1e-5)


def test_other_families_are_not_fdat() -> None:
    state = randomize_(srzoo.create("fdat", 4, **SMALL)).state_dict()
    state.pop("groups.0.blocks.0.inter.cg.1.weight")
    with pytest.raises(srzoo.WeightsError):
        srzoo.detect(state)


# --------------------------------------------------------------------------------------------
# Registry, parameters, arguments
# --------------------------------------------------------------------------------------------


def _count_matches_spandrel(name: str, scale: int) -> None:
    with torch.device("meta"):
        ours = srzoo.model_info(name).build(scale)
    defaults = dict(srzoo.model_info(name).defaults)
    defaults.pop("group_block_pattern", None)
    # spandrel's constructor reads its drop-path rates with .item(): not on the meta device.
    reference = _spandrel_fdat(scale=scale, **defaults)
    expected = sum(p.numel() for p in reference.parameters())
    assert sum(p.numel() for p in ours.parameters()) == expected
    assert set(ours.state_dict()) == set(reference.state_dict())


@pytest.mark.parametrize(
    ("name", "scale"), [("fdat-tiny", 4), pytest.param("fdat-light", 3, marks=pytest.mark.slow)]
)
def test_parameter_counts_match_spandrel(name: str, scale: int) -> None:
    _count_matches_spandrel(name, scale)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["fdat", "fdat-large", "fdat-xl"])
def test_parameter_counts_of_the_larger_variants_match_spandrel(name: str) -> None:
    _count_matches_spandrel(name, 4)


def test_registry_entries() -> None:
    layout = {
        "fdat-tiny": (96, 2, 2, 3, "pixelshuffle"),
        "fdat-light": (108, 3, 2, 4, "pixelshuffle"),
        "fdat": (120, 4, 3, 4, "transpose+conv"),
        "fdat-large": (180, 4, 4, 6, "transpose+conv"),
        "fdat-xl": (180, 6, 6, 6, "transpose+conv"),
    }
    for name in NAMES:
        info = srzoo.model_info(name)
        assert info.family == "fdat" and info.task == "real-world"
        assert info.scales == (1, 2, 3, 4) and info.size_multiple == 8
        assert info.code_license == "MIT" and not info.weights
        d = info.defaults
        got = (d["embed_dim"], d["num_groups"], d["depth_per_group"], d["num_heads"])
        assert (*got, d["upsampler_type"]) == layout[name]
    assert srzoo.create("fdat", 4, **SMALL).receptive_field is None


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"num_heads": 5}, "divide"),
        ({"upsampler_type": "lda"}, "not supported"),
        ({"upsampler_type": "bicubic"}, "upsampler_type"),
        ({"group_block_pattern": ("spatial", "global")}, "group_block_pattern"),
        ({"embed_dim": 264, "num_heads": 4}, "uint8"),
        ({"aim_reduction_ratio": 0}, "aim_reduction_ratio"),
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
    ],
)
def test_bad_configurations_are_refused_with_a_reason(
    overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(srzoo.ArgumentError, match=match):
        srzoo.create("fdat", 4, **{**SMALL, **overrides})


def test_scales_an_upsampler_cannot_serve_are_refused() -> None:
    with pytest.raises(srzoo.ArgumentError, match="scale 1 only"):
        srzoo.create("fdat", 2, **{**SMALL, "upsampler_type": "conv"})


def test_the_converter_rewrites_the_upsampler_record() -> None:
    model = srzoo.create("fdat", 4, **SMALL)
    state = {k: v for k, v in model.state_dict().items() if k != "upsampler.MetaUpsample"}
    converted = convert_fdat(state, model)
    # Block version 3, transpose+conv (index 5), x4, 24 in, 3 out, mid 16, 4 DySample groups.
    assert converted["upsampler.MetaUpsample"].tolist() == [3, 5, 4, 24, 3, 16, 4]
    model.load_state_dict(converted)


# --------------------------------------------------------------------------------------------
# torch.compile, bfloat16
# --------------------------------------------------------------------------------------------


def _tiny(scale: int = 2) -> FDAT:
    model = srzoo.create("fdat", scale, **{**SMALL, "depth_per_group": 1, "num_groups": 1})
    assert isinstance(model, FDAT)
    return randomize_(model, seed=3).eval()  # type: ignore[return-value]


def test_compiles_without_graph_breaks_at_two_sizes() -> None:
    assert_no_graph_breaks(_tiny(), [(13, 11), (16, 16)])


def test_bfloat16_forward_is_finite_and_close_to_float32() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16
    assert torch.isfinite(got).all()
    scale = expected.abs().max().item()
    assert (got.float() - expected).abs().max().item() < 0.05 * max(scale, 1.0)
