"""Real-ESRGAN Compact (SRVGGNetCompact): parameter counts, the official layout against spandrel
on identical random weights, and the exact receptive field of this all-local network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs.compact import SRVGGNetCompact
from srzoo.errors import ArgumentError

from ..util import NARROW, TINY, assert_loads_correctly, randomize_

NAMES = [
    "realesr-animevideov3",
    "realesr-general-x4v3",
    "realesr-general-wdn-x4v3",
    "realesrganv2-animevideo-xsx2",
    "realesrganv2-animevideo-xsx4",
]


def _ref(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.Compact")
    model: nn.Module = arch.Compact(**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _params(state: dict[str, torch.Tensor]) -> object:
    return {"params": state}


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scale", "count"),
    [
        ("realesr-animevideov3", 4, 621_424),
        ("realesr-general-x4v3", 4, 1_213_296),
        ("realesr-general-wdn-x4v3", 4, 1_213_296),
        ("realesrganv2-animevideo-xsx2", 2, 600_652),
        ("realesrganv2-animevideo-xsx4", 4, 621_424),
    ],
)
def test_parameter_counts_of_the_official_configurations(name: str, scale: int, count: int) -> None:
    info = srzoo.model_info(name)
    assert info.scales == (2, 3, 4) and info.scale == scale
    assert [w.scale for w in info.weights if w.tag == "default"] == [scale]
    assert info.num_params(scale) == count
    defaults = info.defaults
    with torch.device("meta"):
        ref = _ref(num_feat=defaults["num_feat"], num_conv=defaults["num_conv"], upscale=scale)
    assert sum(t.numel() for t in ref.state_dict().values()) == count


@pytest.mark.parametrize("name", NAMES)
def test_registry_entries(name: str) -> None:
    info = srzoo.model_info(name)
    assert info.family == "compact" and info.task == "real-world" and info.colour == "rgb"
    assert info.paper.arxiv == "2107.10833" and info.code_license == "BSD-3-Clause"
    assert info.weights
    for w in info.weights:
        assert w.source.startswith("https://github.com/xinntao/Real-ESRGAN/releases/download/")
        assert w.sha256 is not None and len(w.sha256) == 64 and w.size
        assert w.license == "BSD-3-Clause" and w.train_data


def test_the_denoise_option_pairs_the_two_general_checkpoints() -> None:
    general = srzoo.model_info("realesr-general-x4v3")
    default, wdn = general.weights_for(4), general.weights_for(4, "wdn")
    assert default is not None and wdn is not None
    assert default.blend is not None and default.blend.option == "denoise_strength"
    assert default.blend.other == "wdn" and wdn.blend is None
    assert wdn.source.endswith("/realesr-general-wdn-x4v3.pth")
    alone = srzoo.model_info("realesr-general-wdn-x4v3").weights_for(4)
    assert alone is not None and alone.sha256 == wdn.sha256


# --------------------------------------------------------------------------------------------
# Layouts against spandrel
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "num_conv", "scale"),
    [
        ("realesr-animevideov3", 16, 4),
        ("realesr-general-x4v3", 32, 4),
        ("realesrganv2-animevideo-xsx2", 16, 2),
    ],
)
def test_official_layout_matches_spandrel(
    tmp_path: Path, name: str, num_conv: int, scale: int
) -> None:
    # The official files wrap the tensors in "params"; the safetensors copy is flat.
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        _ref(num_feat=8, num_conv=num_conv, upscale=scale),
        overrides={"num_feat": 8},
        container=_params,
        reload_reference=_spandrel_detected,
        seed=num_conv,
        size=(9, 13),
    )


def test_full_width_matches_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "realesr-animevideov3",
        4,
        _ref(num_feat=64, num_conv=16, upscale=4),
        container=_params,
        seed=5,
        size=(7, 11),
    )


@pytest.mark.parametrize("size", [(1, 1), (5, 3), (2, 17)])
def test_odd_sizes_match_spandrel(size: tuple[int, int]) -> None:
    ref = randomize_(_ref(num_feat=8, num_conv=2, upscale=4), seed=3).eval()
    model = srzoo.create("realesr-animevideov3", 4, num_feat=8, num_conv=2).eval()
    model.load_state_dict(ref.state_dict())
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        expected = ref(x.clone())
        got = model(x)
    assert got.shape == (1, 3, size[0] * 4, size[1] * 4)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("act_type", ["relu", "leakyrelu"])
def test_other_activations_match_spandrel(act_type: str) -> None:
    ref = randomize_(_ref(num_feat=8, num_conv=2, upscale=2, act_type=act_type), seed=1).eval()
    model = SRVGGNetCompact(scale=2, num_feat=8, num_conv=2, act_type=act_type).eval()  # type: ignore[arg-type]
    model.load_state_dict(ref.state_dict())
    x = torch.rand(2, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x.clone()), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("num_conv", "scale"), [(0, 1), (1, 2), (16, 4), (32, 4), (5, 3)])
def test_receptive_field_is_num_conv_plus_two(num_conv: int, scale: int) -> None:
    model = SRVGGNetCompact(scale=scale, num_feat=4, num_conv=num_conv)
    assert model.receptive_field == num_conv + 2


def test_receptive_field_is_measured_exactly() -> None:
    # The gradient of the outputs of one input pixel reaches exactly num_conv + 2 pixels away.
    model = randomize_(SRVGGNetCompact(scale=3, num_feat=4, num_conv=3), seed=2).double()
    radius = model.receptive_field
    assert radius == 5
    side = 2 * radius + 7
    c = side // 2
    x = torch.rand(1, 3, side, side, dtype=torch.float64).requires_grad_()
    model(x)[0, :, 3 * c : 3 * c + 3, 3 * c : 3 * c + 3].sum().backward()
    assert x.grad is not None
    rows, cols = (x.grad[0].abs().sum(0) != 0).nonzero(as_tuple=True)
    assert int(torch.maximum((rows - c).abs(), (cols - c).abs()).max()) == radius


def test_tiny_and_narrow_entries() -> None:
    for name in NAMES:
        assert TINY[name] == {"num_feat": 8, "num_conv": 1}
        assert set(NARROW[name]) == {"num_feat"}  # width only: the depth sets the field
        assert srzoo.create(name, None, **NARROW[name]).receptive_field == (
            srzoo.model_info(name).defaults["num_conv"] + 2
        )


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="num_in_ch and num_out_ch"):
        SRVGGNetCompact(num_in_ch=3, num_out_ch=1)
    with pytest.raises(ArgumentError, match="act_type"):
        SRVGGNetCompact(act_type="gelu")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="scale"):
        SRVGGNetCompact(scale=0)
