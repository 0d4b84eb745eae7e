"""AuraSR: the released layout against spandrel on identical random weights (and spandrel's own
detection of the same files), upstream's stochastic sampling reproduced draw for draw, parameter
counts of the released configuration (meta device), detection from bare state dicts, the
registered weights, compile capture and bfloat16.

spandrel's ``AuraSR`` is fal-ai/aura-sr's ``UnetUpsampler`` (its own assertions on fixed tile
sizes removed). Its forward always dithers the input with ``torch.randn_like`` and, without a
``noise`` argument, draws the latent with ``torch.randn``: the deterministic references pass
srzoo's fixed latent (all ones) and switch the dithering off; the stochastic ones seed torch's
generator before each model. spandrel does not pad: the references reflect-pad to a multiple
of 8 and crop, as the authors' ``upscale_4x`` pads to its tiles.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.aurasr import AuraSR, detect_aurasr
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_

NAMES = ("aurasr", "aurasr-v2")

# Small configurations spandrel's loader detects too: upstream's six blocks per level and eight
# heads (spandrel reads neither), with every other width and depth reduced.
SMALL: list[dict[str, Any]] = [
    {
        "dim": 4,
        "self_attn_dim_head": 4,
        "num_conv_kernels": 2,
        "attn_depths": (1, 1, 1, 1, 2),
        "mid_attn_depth": 1,
        "style_dim_in": 8,
        "style_dim": 16,
        "style_depth": 2,
    },
    {
        "dim": 2,
        "self_attn_dim_head": 2,
        "num_conv_kernels": 3,
        "full_attn": (False, True, False, True, True),
        "attn_depths": (1, 2, 1, 1, 1),
        "mid_attn_depth": 2,
        "style_dim_in": 4,
        "style_dim": 8,
        "style_depth": 1,
    },
]


def _spandrel(config: dict[str, Any]) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.AuraSR")
    defaults = AuraSR.__init__.__kwdefaults__ or {}
    c = {**defaults, **config}
    model: nn.Module = arch.AuraSR(
        dim=c["dim"],
        image_size=None,
        input_image_size=None,
        style_network={
            "dim_in": c["style_dim_in"],
            "dim_out": c["style_dim"],
            "depth": c["style_depth"],
        },
        up_dim_mults=tuple(c["up_dim_mults"]),
        down_dim_mults=tuple(c["down_dim_mults"]),
        full_attn=tuple(c["full_attn"]),
        attn_depths=tuple(c["attn_depths"]),
        mid_attn_depth=c["mid_attn_depth"],
        self_attn_heads=c["self_attn_heads"],
        self_attn_dim_head=c["self_attn_dim_head"],
        num_conv_kernels=c["num_conv_kernels"],
        skip_connect_scale=c["skip_connect_scale"],
    )
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _pad8(x: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % 8, 0, -h % 8), mode="reflect")


def _fixed_style(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """spandrel's forward on srzoo's fixed latent, without its input dithering, cropped."""
    h, w = x.shape[-2:]
    latent = torch.ones(x.shape[0], module.style_network.dim_in)
    with mock.patch("torch.randn_like", torch.zeros_like):
        y: torch.Tensor = module(_pad8(x), noise=latent)
    return y[..., : h * 4, : w * 4]


# --------------------------------------------------------------------------------------------
# Registry, arguments, parameter counts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_registry_entries(name: str) -> None:
    info = srzoo.model_info(name)
    assert info.family == "aurasr" and info.scales == (4,) and info.task == "real-world"
    assert info.size_multiple == 8 and info.code_license == "CC-BY-SA-4.0"
    assert info.paper.arxiv == "2303.05511"
    (weights,) = info.weights
    repo = "fal/AuraSR" if name == "aurasr" else "fal/AuraSR-v2"
    assert weights.source.startswith(f"hf://{repo}/model.safetensors@")
    assert len(weights.source.rsplit("@", 1)[1]) == 40  # pinned to a revision
    assert weights.sha256 is not None and len(weights.sha256) == 64
    int(weights.sha256, 16)
    assert weights.license == ("CC-BY-SA-4.0" if name == "aurasr" else "Apache-2.0")
    assert (weights.size is None) == (name == "aurasr-v2") and weights.sha256_note


def test_the_released_configuration_has_upstreams_parameters() -> None:
    spandrel = pytest.importorskip("spandrel.architectures.AuraSR")
    # Both names build the same network (the two releases share one config.json).
    assert srzoo.model_info("aurasr").defaults == srzoo.model_info("aurasr-v2").defaults
    with torch.device("meta"):
        model = srzoo.model_info("aurasr").build(4)
        upstream = spandrel.AuraSR(
            dim=64,
            image_size=256,
            input_image_size=64,
            style_network={"dim_in": 128, "dim_out": 512, "depth": 4},
            skip_connect_scale=0.4,
        )
    count = sum(p.numel() for p in upstream.parameters())
    assert count == 617_554_917
    # Upstream's unused attention scalars are buffers here: one per attention layer.
    unused = [k for k, _ in model.named_buffers() if k.endswith("attend.scale")]
    assert len(unused) == 10
    assert sum(p.numel() for p in model.parameters()) + len(unused) == count
    assert {k: v.shape for k, v in model.state_dict().items()} == {
        k: v.shape for k, v in upstream.state_dict().items()
    }
    assert model.receptive_field is None and model.scale == 4


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"scale": 2}, "enlarge by"),
        ({"down_dim_mults": (2, 8, 16)}, "down_dim_mults"),
        ({"full_attn": (True, False)}, "one entry per decoder level"),
        ({"attn_depths": (2, 2, 0, 2, 4)}, "attn_depths"),
        ({"num_conv_kernels": 1}, "num_conv_kernels"),
        ({"dim": 0}, "dim"),
        ({"resnet_blocks": 0}, "resnet_blocks"),
        ({"up_dim_mults": (1, 0, 4, 8, 16)}, "multipliers"),
    ],
)
def test_bad_arguments(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        AuraSR(**overrides)


def test_random_initialisation_loads_with_channels_last() -> None:
    # The 5-D kernel banks stay as they are; the 4-D convolutions go channels-last.
    model = srzoo.load("aurasr", weights=None, **TINY["aurasr"])
    assert model.mid_block1.block1.proj.weights.dim() == 5
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)


# --------------------------------------------------------------------------------------------
# Parity with spandrel
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "size"),
    [(SMALL[0], (13, 11)), pytest.param(SMALL[1], (16, 16), marks=pytest.mark.slow)],
)
def test_released_layout_matches_spandrel(
    tmp_path: Path, config: dict[str, Any], size: tuple[int, int]
) -> None:
    assert_loads_correctly(
        tmp_path,
        "aurasr",
        4,
        _spandrel(config),
        overrides=config,
        run_reference=_fixed_style,
        reload_reference=_spandrel_detected,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
def test_the_v2_name_reads_the_same_layout(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "aurasr-v2",
        4,
        _spandrel(SMALL[1]),
        overrides=SMALL[1],
        run_reference=_fixed_style,
        size=(9, 17),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow  # about 30 s of CPU: the whole network twice per draw
@pytest.mark.parametrize("size", [(16, 8), (11, 13)])
def test_stochastic_mode_draws_as_upstream(size: tuple[int, int]) -> None:
    reference = randomize_(_spandrel(SMALL[0]), seed=3).eval()
    ours = AuraSR(**SMALL[0], stochastic=True).eval()
    ours.load_state_dict(reference.state_dict())
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    h, w = size
    with torch.no_grad():
        torch.manual_seed(11)
        expected = reference(_pad8(x))[..., : h * 4, : w * 4]
        torch.manual_seed(11)
        got = ours(x)
        again = ours(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    # A new latent per call and per image: the same image upscales differently.
    assert (again - got).abs().max() > 1e-6
    ours.stochastic = False
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ours(x), atol=0, rtol=0)
        torch.testing.assert_close(ours(x[1:]), ours(x)[1:], atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

# Eight heads throughout: the tensors give only the attention width, which the detector splits
# into upstream's eight heads.
DETECT_GRID: list[dict[str, Any]] = [
    {**TINY["aurasr"], "self_attn_heads": 8, "self_attn_dim_head": 1},
    {**SMALL[0], "in_channels": 1},
    {
        **SMALL[1],
        "resnet_blocks": 2,
        "up_dim_mults": (1, 2, 3, 5),
        "down_dim_mults": (3, 5),
        "full_attn": (False, True, True, True),
        "attn_depths": (1, 1, 3, 2),
    },
]


def _built(config: dict[str, Any]) -> dict[str, object]:
    """The constructor arguments the detector reports for a network built with ``config``."""
    full = {**(AuraSR.__init__.__kwdefaults__ or {}), **config}
    for key in ("scale", "style_lr_mul", "skip_connect_scale", "stochastic"):
        del full[key]  # not in the tensors: the detector leaves them to the defaults
    wanted = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in full.items()}
    # A level without attention has no depth in the tensors: upstream's default 2 is reported.
    wanted["attn_depths"] = tuple(
        d if on else 2 for d, on in zip(full["attn_depths"], full["full_attn"], strict=True)
    )
    return wanted


@pytest.mark.parametrize("config", DETECT_GRID)
def test_bare_state_dicts_are_detected(tmp_path: Path, config: dict[str, Any]) -> None:
    original = randomize_(AuraSR(**config), seed=1).eval()
    x = torch.rand(1, original.in_channels, 9, 7)
    with torch.no_grad():
        expected = original(x)
    state = {k: v.contiguous() for k, v in original.state_dict().items()}
    torch.save(state, tmp_path / "bare.pth")
    save_file(state, str(tmp_path / "bare.safetensors"))
    for path in (tmp_path / "bare.pth", tmp_path / "bare.safetensors"):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "aurasr",
            "aurasr",
            4,
            "official",
        )
        assert dict(found.model_args) == _built(config)
        model = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_inconsistent_files_are_not_detected() -> None:
    state = AuraSR(**TINY["aurasr"]).state_dict()
    shapes = {k: v.shape for k, v in state.items()}
    assert detect_aurasr(Shapes(shapes)) is not None
    for key, shape in (
        ("ups.1.0.0.block1.proj.weights", (2, 4, 5, 3, 3)),  # a block of the wrong width
        ("style_to_conv_modulations.weight", (7, 8)),  # a style projection that does not fit
    ):
        assert detect_aurasr(Shapes({**shapes, key: shape})) is None
    # One decoder level fewer: x2, which no released file is.
    trimmed = {k: v for k, v in shapes.items() if not k.startswith("ups.4.")}
    assert detect_aurasr(Shapes(trimmed)) is None


# --------------------------------------------------------------------------------------------
# Compile, bfloat16
# --------------------------------------------------------------------------------------------


def _tiny(**overrides: Any) -> nn.Module:
    return randomize_(srzoo.create("aurasr", 4, **{**TINY["aurasr"], **overrides})).eval()


@pytest.mark.slow  # 7 s of capture per mode on two cores
@pytest.mark.parametrize("stochastic", [False, True])
def test_fullgraph_capture_without_graph_breaks_at_two_sizes(stochastic: bool) -> None:
    assert_no_graph_breaks(_tiny(stochastic=stochastic), ((13, 11), (16, 24)))


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and bool(torch.isfinite(got).all())
    assert (got.float() - expected).abs().max().item() < 0.05 * max(1.0, expected.abs().max())
