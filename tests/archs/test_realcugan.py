"""Real-CUGAN: the official layout against spandrel on identical random weights (x2, x3, x4, pro,
fast; sizes on and off the pad multiple), detection from a bare state dict, parameter counts,
registry entries, small images, compile and bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.realcugan import UpCunet, detect_realcugan
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import assert_loads_correctly, assert_no_graph_breaks, randomize_


def _ref(scale: int, *, fast: bool = False, **config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.RealCUGAN")
    if fast:
        model: nn.Module = arch.UpCunet2x_fast(**config)
    else:
        model = {2: arch.UpCunet2x, 3: arch.UpCunet3x, 4: arch.UpCunet4x}[scale](**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


# Reflection padding in spandrel (and upstream) needs each side larger than the pad (18 at x2,
# 14 at x3, 19 at x4, 38 fast): sizes just above, on and off the pad multiple (2, or 4 at x3).
_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("name", "scale", "config", "size"),
    [
        ("realcugan", 3, {}, (16, 18)),
        pytest.param("realcugan-fast", 2, {"fast": True}, (40, 44), marks=_SLOW),
        pytest.param("realcugan", 2, {}, (20, 21), marks=_SLOW),
        pytest.param("realcugan", 4, {}, (21, 20), marks=_SLOW),
        pytest.param("realcugan-pro", 2, {"pro": True}, (22, 20), marks=_SLOW),
        pytest.param("realcugan-pro", 3, {"pro": True}, (18, 19), marks=_SLOW),
    ],
)
def test_matches_spandrel(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any], size: tuple[int, int]
) -> None:
    fast = bool(config.get("fast"))
    ref = _ref(scale, fast=fast, **({"pro": True} if config.get("pro") else {}))
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        ref,
        reload_reference=_spandrel_detected,
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


@_SLOW
def test_channel_variants_match_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "realcugan",
        3,
        _ref(3, in_channels=1, out_channels=1),
        overrides={"in_channels": 1, "out_channels": 1},
        reload_reference=_spandrel_detected,
        seed=7,
        size=(18, 16),
        channels=1,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize(
    ("scale", "fast", "pro"),
    [(2, False, False), (3, False, True), (4, False, False), (2, True, False)],
)
def test_parameter_counts_match_spandrel(scale: int, fast: bool, pro: bool) -> None:
    with torch.device("meta"):
        ref = _ref(scale, fast=fast, **({"pro": True} if pro else {}))
        ours = UpCunet(scale=scale, fast=fast, pro=pro)
    theirs = {k: v.shape for k, v in ref.state_dict().items() if k != "pro"}
    assert {k: v.shape for k, v in ours.state_dict().items()} == theirs
    name = "realcugan-fast" if fast else "realcugan-pro" if pro else "realcugan"
    assert srzoo.model_info(name).num_params(scale) == sum(s.numel() for s in theirs.values())


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> list[Path]:
    pth, st = tmp_path / "m.pth", tmp_path / "m.safetensors"
    torch.save(state, pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    return [pth, st]


@pytest.mark.parametrize(
    ("config", "name", "scale"),
    [
        ({"scale": 2}, "realcugan", 2),
        ({"scale": 3, "out_channels": 1, "in_channels": 1}, "realcugan", 3),
        ({"scale": 4}, "realcugan", 4),
        ({"scale": 3, "pro": True}, "realcugan-pro", 3),
        ({"scale": 2, "fast": True}, "realcugan-fast", 2),
    ],
)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, config: dict[str, Any], name: str, scale: int
) -> None:
    model = randomize_(UpCunet(**config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if config.get("pro"):
        state["pro"] = torch.zeros(1)  # the marker of the pro files
    channels = config.get("in_channels", 3)
    x = torch.rand(1, channels, 12, 9)
    with torch.no_grad():
        want = model(x)
    for path in _save(tmp_path, state):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale) == ("realcugan", name, scale)
        assert found.model_args["pro"] == bool(config.get("pro"))
        assert found.model_args["fast"] == bool(config.get("fast"))
        assert found.model_args["in_channels"] == channels
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=0)


def test_detection_agrees_with_spandrel() -> None:
    spandrel = pytest.importorskip("spandrel")
    for scale, fast in ((2, False), (3, False), (4, False), (2, True)):
        state = dict(UpCunet(scale=scale, fast=fast).state_dict())
        found = srzoo.detect(state)
        theirs = spandrel.ModelLoader().load_from_state_dict(dict(state))
        assert theirs.architecture.id == "RealCUGAN" and found.family == "realcugan"
        assert theirs.scale == found.scale == scale
        assert ("fast" in theirs.tags) == found.model_args["fast"]


def test_only_real_cugan_files_match() -> None:
    shapes = Shapes({k: tuple(v.shape) for k, v in UpCunet(scale=2).state_dict().items()})
    assert detect_realcugan(shapes) is not None
    partial = Shapes({k: v for k, v in shapes.items() if not k.startswith("unet2.")})
    assert detect_realcugan(partial) is None


def test_small_images_pad_by_repeated_reflection() -> None:
    # Far below the padding (18 pixels): the reflection repeats; output sizes follow the input.
    model = randomize_(UpCunet(scale=3)).eval()
    with torch.no_grad():
        for size in ((1, 1), (2, 5), (7, 3)):
            y = model(torch.rand(1, 3, *size))
            assert y.shape == (1, 3, 3 * size[0], 3 * size[1]) and torch.isfinite(y).all()


def test_alpha_scales_the_deep_features() -> None:
    plain = randomize_(UpCunet(scale=2), seed=1).eval()
    soft = UpCunet(scale=2, alpha=0.5).eval()
    soft.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 10, 10)
    with torch.no_grad():
        assert not torch.allclose(plain(x), soft(x))


def test_registry_entries() -> None:
    for name, scales in (
        ("realcugan", (2, 3, 4)),
        ("realcugan-pro", (2, 3)),
        ("realcugan-fast", (2,)),
    ):
        info = srzoo.model_info(name)
        assert info.family == "realcugan" and info.scales == scales and info.scale == 2
        assert info.code_license == "MIT" and info.task == "real-world"
        assert info.size_multiple == 4 and info.converter is not None
        assert not info.weights  # Google Drive / Baidu / packaged only, no digest
    assert UpCunet().receptive_field is None


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="scale"):
        UpCunet(scale=8)
    with pytest.raises(ArgumentError, match="fast"):
        UpCunet(scale=4, fast=True)


@pytest.mark.parametrize(("scale", "fast"), [(3, False), pytest.param(2, True, marks=_SLOW)])
def test_compiles_without_graph_breaks_at_two_sizes(scale: int, fast: bool) -> None:
    model = randomize_(UpCunet(scale=scale, fast=fast)).eval()
    assert_no_graph_breaks(model, ((8, 8), (7, 5)), one_graph=False)


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = randomize_(UpCunet(scale=4), seed=2).eval()
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        full = model(x)
        half = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    bound = 5e-2 * max(1.0, full.abs().max().item())
    torch.testing.assert_close(half.float(), full, atol=bound, rtol=0)
