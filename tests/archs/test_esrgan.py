"""RRDBNet (ESRGAN, Real-ESRGAN, BSRGAN, RealSR): every published key layout against spandrel's
ESRGAN on identical random weights, the pixel-unshuffle variant, parameter counts, the converter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs.esrgan import RRDBNet, convert_rrdbnet

from ..util import assert_loads_correctly, randomize_

StateDict = dict[str, torch.Tensor]


def _ref_esrgan(**config: object) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.ESRGAN")
    model: nn.Module = arch.ESRGAN(**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _tail_names(state: StateDict) -> dict[int, str]:
    """Index -> name of the ``model.N`` convolutions after the trunk, in the old layout."""
    indices = sorted({int(k.split(".")[1]) for k in state if re.match(r"model\.\d+\.weight$", k)})
    tail = [i for i in indices if i >= 2]
    names = {i: f"up{n + 1}" for n, i in enumerate(tail[:-2])}
    names[tail[-2]] = "hr"
    names[tail[-1]] = "last"
    return names


def _old_to_new(state: StateDict, kair: bool) -> StateDict:
    """spandrel's (original xinntao/ESRGAN) keys -> BasicSR's, or KAIR / BSRGAN / RealSR's."""
    n_block = max(int(m.group(1)) for k in state if (m := re.match(r"model\.1\.sub\.(\d+)\.", k)))
    tail = _tail_names(state)
    out: StateDict = {}
    for key, value in state.items():
        kind = key.rsplit(".", 1)[1]
        if m := re.match(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.", key):
            i, k, j = m.groups()
            new = f"RRDB_trunk.{i}.RDB{k}.conv{j}" if kair else f"body.{i}.rdb{k}.conv{j}"
        elif key.startswith(f"model.1.sub.{n_block}."):
            new = "trunk_conv" if kair else "conv_body"
        elif key.startswith("model.0."):
            new = "conv_first"
        else:
            name = tail[int(key.split(".")[1])]
            if name.startswith("up"):
                new = f"upconv{name[2:]}" if kair else f"conv_up{name[2:]}"
            else:
                new = {"hr": "HRconv" if kair else "conv_hr", "last": "conv_last"}[name]
        out[f"{new}.{kind}"] = value
    return out


def _basicsr(state: StateDict) -> StateDict:
    return _old_to_new(state, kair=False)


def _kair(state: StateDict) -> StateDict:
    return _old_to_new(state, kair=True)


LAYOUTS: dict[
    str, tuple[Callable[[StateDict], StateDict], Callable[[StateDict], object] | None]
] = {
    "xinntao-original": (dict, None),
    "basicsr-params-ema": (_basicsr, lambda s: {"params_ema": s}),
    "basicsr-params": (_basicsr, lambda s: {"params": s}),
    "kair-bsrgan-realsr": (_kair, None),
}


# --------------------------------------------------------------------------------------------
# Parity with spandrel, every layout
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_full_size_x4_matches_spandrel(tmp_path: Path, layout: str) -> None:
    to_upstream, container = LAYOUTS[layout]
    assert_loads_correctly(
        tmp_path,
        "esrgan",
        4,
        _ref_esrgan(in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=4),
        to_upstream=to_upstream,
        container=container,
        reload_reference=_spandrel_detected,
        safetensors=False,
        seed=3,
        size=(5, 7),
    )


@pytest.mark.slow
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_six_blocks_match_spandrel(tmp_path: Path, layout: str) -> None:
    to_upstream, container = LAYOUTS[layout]
    assert_loads_correctly(
        tmp_path,
        "realesrgan-x4plus-anime-6b",
        4,
        _ref_esrgan(in_nc=3, out_nc=3, num_filters=64, num_blocks=6, scale=4),
        to_upstream=to_upstream,
        container=container,
        reload_reference=_spandrel_detected,
        seed=5,
        size=(9, 6),
    )


@pytest.mark.parametrize("layout", ["basicsr-params-ema", "xinntao-original"])
@pytest.mark.parametrize("size", [(9, 13), (8, 10), (3, 5)])
def test_x2plus_pixel_unshuffle_matches_spandrel(
    tmp_path: Path, layout: str, size: tuple[int, int]
) -> None:
    to_upstream, container = LAYOUTS[layout]
    model = assert_loads_correctly(
        tmp_path,
        "realesrgan-x2plus",
        2,
        _ref_esrgan(in_nc=12, out_nc=3, num_filters=16, num_blocks=2, scale=4, shuffle_factor=2),
        overrides={"num_feat": 16, "num_block": 2},
        to_upstream=to_upstream,
        container=container,
        reload_reference=_spandrel_detected,
        seed=6,
        size=size,
    )
    assert model.in_channels == 3 and model.get_parameter("conv_first.weight").shape[1] == 12


@pytest.mark.slow
def test_full_size_x2plus_matches_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "realesrgan-x2plus",
        2,
        _ref_esrgan(in_nc=12, out_nc=3, num_filters=64, num_blocks=23, scale=4, shuffle_factor=2),
        to_upstream=_basicsr,
        container=lambda s: {"params_ema": s},
        safetensors=False,
        seed=7,
        size=(7, 9),
    )


@pytest.mark.parametrize("layout", ["kair-bsrgan-realsr", "xinntao-original"])
def test_bsrgan_x2_one_upconv_matches_spandrel(tmp_path: Path, layout: str) -> None:
    to_upstream, container = LAYOUTS[layout]
    model = assert_loads_correctly(
        tmp_path,
        "bsrgan",
        2,
        _ref_esrgan(in_nc=3, out_nc=3, num_filters=16, num_blocks=2, scale=2),
        overrides={"num_feat": 16, "num_block": 2},
        to_upstream=to_upstream,
        container=container,
        reload_reference=_spandrel_detected,
        seed=8,
        size=(9, 8),
    )
    names = {k.split(".")[0] for k in model.state_dict()}
    assert "conv_up1" in names and "conv_up2" not in names


def test_x1_pixel_unshuffle_4_matches_spandrel() -> None:
    # Real-ESRGAN's x1 configuration: no registered weights, but the module builds it.
    ref = randomize_(
        _ref_esrgan(in_nc=48, out_nc=3, num_filters=8, num_blocks=1, scale=4, shuffle_factor=4),
        seed=9,
    ).eval()
    model = RRDBNet(scale=1, num_feat=8, num_block=1, pixel_unshuffle=True).eval()
    model.load_state_dict(convert_rrdbnet(ref.state_dict(), model))
    x = torch.rand(2, 3, 11, 6, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=0)
    assert model(x).shape == (2, 3, 11, 6)


# --------------------------------------------------------------------------------------------
# Parameter counts, converter, configuration errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scale", "count"),
    [
        ("esrgan", 4, 16_697_987),
        ("realesrgan-x4plus", 4, 16_697_987),
        ("bsrgan", 4, 16_697_987),
        ("bsrgan", 2, 16_661_059),  # one upsampling convolution fewer
        ("realesrgan-x2plus", 2, 16_703_171),  # conv_first takes 12 channels
        ("realesrgan-x4plus-anime-6b", 4, 4_467_779),
    ],
)
def test_parameter_counts(name: str, scale: int, count: int) -> None:
    assert srzoo.model_info(name).num_params(scale) == count
    with torch.device("meta"):
        ref = _ref_esrgan(
            in_nc=12 if name == "realesrgan-x2plus" else 3,
            out_nc=3,
            num_blocks=6 if name.endswith("6b") else 23,
            scale=4 if name == "realesrgan-x2plus" else scale,
            shuffle_factor=2 if name == "realesrgan-x2plus" else None,
        )
    assert sum(t.numel() for t in ref.state_dict().values()) == count


def test_srzoo_keys_pass_through_the_converter_unchanged() -> None:
    model = randomize_(RRDBNet(scale=4, num_feat=8, num_block=2, num_grow_ch=4), seed=1)
    state = model.state_dict()
    converted = convert_rrdbnet(dict(state), model)
    assert list(converted) == list(state)
    assert all(converted[k] is v for k, v in state.items())


def test_keys_follow_basicsr() -> None:
    with torch.device("meta"):
        keys = set(RRDBNet(scale=4, num_block=2).state_dict())
    assert {"conv_first.weight", "body.1.rdb3.conv5.bias", "conv_body.weight"} <= keys
    assert {"conv_up1.weight", "conv_up2.weight", "conv_hr.weight", "conv_last.bias"} <= keys


def test_receptive_field_follows_the_block_count() -> None:
    with torch.device("meta"):
        assert RRDBNet(scale=4).receptive_field == 349  # 15 * 23 + 2 at LR, 2 more at x4
        assert RRDBNet(scale=2).receptive_field == 349
        assert RRDBNet(scale=4, num_block=6).receptive_field == 94
        assert RRDBNet(scale=2, pixel_unshuffle=True).receptive_field == 698


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scale": 3}, "powers of two"),
        ({"scale": 4, "pixel_unshuffle": True}, "scale 1 or 2"),
    ],
)
def test_unsupported_configurations(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(srzoo.ArgumentError, match=match):
        RRDBNet(**kwargs)  # type: ignore[arg-type]


def test_registry_entries() -> None:
    expected = {
        "esrgan": ("gan", (2, 4)),
        "esrgan-psnr": ("psnr", (2, 4)),
        "realesrgan-x4plus": ("real-world", (2, 4)),
        "realesrnet-x4plus": ("real-world", (2, 4)),
        "realesrgan-x2plus": ("real-world", (2,)),
        "realesrgan-x4plus-anime-6b": ("real-world", (2, 4)),
        "bsrgan": ("real-world", (2, 4)),
        "bsrnet": ("real-world", (2, 4)),
        "realsr-dped": ("real-world", (2, 4)),
        "realsr-df2k": ("real-world", (2, 4)),
        "realsr-df2k-jpeg": ("real-world", (2, 4)),
    }
    assert srzoo.list_models(family="esrgan") == sorted(expected)
    for name, (task, scales) in expected.items():
        spec = srzoo.model_info(name)
        assert (spec.task, spec.scales) == (task, scales), name
        assert spec.converter is convert_rrdbnet
        for w in spec.weights:
            assert w.source.startswith("https://github.com/"), w.source
            assert w.sha256 is not None and len(w.sha256) == 64
            int(w.sha256, 16)
    assert srzoo.model_info("realesrgan-x2plus").size_multiple == 2
    unweighted = {n for n in expected if not srzoo.model_info(n).weights}
    assert unweighted == {"esrgan-psnr", "realsr-dped", "realsr-df2k", "realsr-df2k-jpeg"}
