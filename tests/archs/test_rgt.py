"""RGT: both registered configurations against spandrel on identical random weights (spandrel's
RGT keys are zhengchen1999/RGT's), in the official ``{"params": ...}`` wrapper with the computed
buffers the official files hold; inputs below upstream's 16-pixel minimum; detection of bare
files; parameter counts of the official configurations; torch.compile capture and bfloat16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.rgt import RGT, convert_rgt, recursion_steps

from ..util import assert_loads_correctly, assert_no_graph_breaks, randomize_

NAMES = ("rgt", "rgt-s")

# The registered configurations, as spandrel's constructor arguments (options/test/*.yml).
OFFICIAL: dict[str, dict[str, Any]] = {
    "rgt": {"embed_dim": 180, "depth": [6] * 8, "num_heads": [6] * 8},
    "rgt-s": {"embed_dim": 180, "depth": [6] * 6, "num_heads": [6] * 6},
}
_COMMON = {"mlp_ratio": 2.0, "split_size": [8, 32], "c_ratio": 0.5}

# Two groups (both shift schedules: group 0 shifts block 2, group 1 block 0), an RG-SA block in
# each, the official 8x32 window; 96 features: the position-bias MLP is embed_dim // 32 wide, and
# its layer norms over one or two units can make the bias independent of the offset.
SMALL: dict[str, Any] = {"embed_dim": 96, "depth": [3, 2], "num_heads": [4, 2]}

# Tensors the official files hold but the network computes from its configuration.
_COMPUTED = ("rpe_biases", "relative_position_index", "attn_mask_0", "attn_mask_1")

# The README's parameter counts at x4, in millions.
PAPER_PARAMS = {"rgt": 13.37, "rgt-s": 10.20}


def _spandrel_rgt(**config: Any) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """spandrel's RGT and the computed buffers its state dict holds.

    The buffers become non-persistent so that ``randomize_`` leaves them alone; they are put
    back into the saved file, as the official files have them.
    """
    arch = pytest.importorskip("spandrel.architectures.RGT")
    model: nn.Module = arch.RGT(**{**_COMMON, **config})
    computed: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if name in _COMPUTED:
                computed[f"{prefix}.{name}"] = buf.clone()
                module.register_buffer(name, buf, persistent=False)
    return model, computed


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _overrides(config: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


@pytest.mark.parametrize(
    ("name", "scale"), [("rgt", 4), pytest.param("rgt-s", 3, marks=pytest.mark.slow)]
)
def test_matches_spandrel_in_the_official_layout(tmp_path: Path, name: str, scale: int) -> None:
    reference, computed = _spandrel_rgt(upscale=scale, **SMALL)
    # 20x18 pads to the 32 multiple inside the attention; 32x32 is one.
    for size in ((20, 18), (32, 32)):
        assert_loads_correctly(
            tmp_path,
            name,
            scale,
            reference,
            overrides=_overrides(SMALL),
            to_upstream=lambda state: {**state, **computed},
            container=lambda state: {"params": state},
            reload_reference=_spandrel_detected if size == (20, 18) else None,
            safetensors=size == (20, 18),
            seed=scale,
            size=size,
            atol=1e-4,
            relative=True,
        )


@pytest.mark.slow
def test_matches_spandrel_with_another_window_ratios_and_tail(tmp_path: Path) -> None:
    # A square window (spandrel's detection reads it), 3conv, no qkv bias, other ratios; 16x24
    # is a multiple of the window and the smallest side upstream runs at.
    config = {
        "embed_dim": 64,
        "depth": [2, 3],
        "num_heads": [2, 4],
        "split_size": [4, 4],
        "mlp_ratio": 1.5,
        "c_ratio": 0.25,
        "qkv_bias": False,
        "resi_connection": "3conv",
    }
    reference, computed = _spandrel_rgt(upscale=2, **config)
    for size in ((16, 24), (19, 21)):
        assert_loads_correctly(
            tmp_path,
            "rgt",
            2,
            reference,
            overrides=_overrides(config),
            to_upstream=lambda state: {**state, **computed},
            reload_reference=_spandrel_detected if size == (19, 21) else None,
            safetensors=False,
            seed=7,
            size=size,
            atol=1e-4,
            relative=True,
        )


def test_inputs_below_upstreams_minimum_are_reflect_padded_to_it() -> None:
    # Upstream refuses a side under 16 pixels; srzoo pads such an image to the smallest size
    # upstream runs (reflecting) and crops: upstream's output of the padded image.
    reference, _ = _spandrel_rgt(upscale=2, **SMALL)
    randomize_(reference, seed=3).eval()
    model = srzoo.create("rgt", 2, **_overrides(SMALL))
    model.load_state_dict(reference.state_dict())
    model.eval()
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (0, 5, 0, 3), mode="reflect")
    with torch.no_grad():
        expected = reference(padded)[..., :26, :22]
        got = model(x)
        tiny = model(x[..., :1, :1])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert tiny.shape == (1, 3, 2, 2) and torch.isfinite(tiny).all()


def test_recursion_steps_follow_upstream() -> None:
    # Inference: at least two steps, then one more per factor 4 of the longer side over 16.
    assert [recursion_steps(s, 16, False) for s in (16, 63, 64, 255, 256, 1024)] == [
        2,
        2,
        2,
        2,
        2,
        3,
    ]
    assert recursion_steps(16, 2048, False) == 3
    # Training (64x64 patches): log4(side // 4).
    assert [recursion_steps(s, s, True) for s in (16, 63, 64)] == [1, 1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_parameter_counts_match_spandrel_and_the_paper(name: str) -> None:
    # spandrel's constructor reads its drop-path rates with .item(): it cannot be built on the
    # meta device.
    reference, _ = _spandrel_rgt(upscale=4, **OFFICIAL[name])
    with torch.device("meta"):
        ours = srzoo.model_info(name).build(4)
    params = sum(p.numel() for p in ours.parameters())
    assert params == sum(p.numel() for p in reference.parameters())
    assert srzoo.model_info(name).num_params(4) == params
    assert round(params / 1e6, 2) == PAPER_PARAMS[name]


def test_the_window_of_a_checkpoint_is_checked() -> None:
    # The parameters do not depend on the window: only the computed offsets in the file do.
    config = {**SMALL, "split_size": [8, 16]}
    reference, computed = _spandrel_rgt(upscale=2, **config)
    state = {**reference.state_dict(), **computed}
    with pytest.raises(srzoo.IncompatibleWeightsError, match="rpe_biases"):
        convert_rgt(state, srzoo.create("rgt", 2, **_overrides(SMALL)))
    converted = convert_rgt(state, srzoo.create("rgt", 2, **_overrides(config)))
    assert not any(k.endswith(_COMPUTED) for k in converted)
    assert set(converted) == set(reference.state_dict())


# --------------------------------------------------------------------------------------------
# Detection of bare files
# --------------------------------------------------------------------------------------------

_GRID: list[tuple[str, int, dict[str, Any]]] = [
    ("rgt", 3, {**SMALL, "split_size": [4, 8]}),
    (
        "rgt",
        2,
        {
            "embed_dim": 64,
            "depth": [2],
            "num_heads": [2],
            "split_size": [8, 8],
            "mlp_ratio": 1.5,
            "c_ratio": 0.25,
            "qkv_bias": False,
            "resi_connection": "3conv",
        },
    ),
    # Six groups: RGT-S's layout; one block each, so c_ratio is the default.
    ("rgt-s", 4, {"embed_dim": 32, "depth": [1] * 6, "num_heads": [2] * 6, "split_size": [2, 4]}),
]


@pytest.mark.parametrize(("name", "scale", "config"), _GRID, ids=[f"{n}-x{s}" for n, s, _ in _GRID])
def test_bare_files_are_detected_and_load(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any]
) -> None:
    reference, computed = _spandrel_rgt(upscale=scale, **config)
    randomize_(reference, seed=scale).eval()
    state = {**{k: v.detach().clone() for k, v in reference.state_dict().items()}, **computed}
    pth, st = tmp_path / "ckpt.pth", tmp_path / "ckpt.safetensors"
    torch.save({"params": state}, pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    expected = {**_COMMON, "qkv_bias": True, "resi_connection": "1conv", **config}
    x = torch.rand(1, 3, 17, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = reference(x)
    for path in (pth, st):
        found = srzoo.detect(path)
        assert (found.name, found.scale, found.family, found.layout) == (
            name,
            scale,
            "rgt",
            "official",
        )
        for key, value in _overrides(expected).items():
            assert found.model_args[key] == value, key
        model = srzoo.load_file(path)
        with torch.no_grad():
            got = model(x)
        assert (got - want).abs().max().item() <= 1e-4 * max(1.0, want.abs().max().item())


def test_srzoos_own_state_dict_is_detected_with_the_released_window() -> None:
    model = srzoo.create("rgt-s", 2, embed_dim=32, depth=(2,) * 6, num_heads=(2,) * 6)
    found = srzoo.detect(model.state_dict())
    assert found.name == "rgt-s" and found.model_args["split_size"] == (8, 32)
    assert found.model_args["depth"] == (2,) * 6 and found.model_args["c_ratio"] == 0.5


# --------------------------------------------------------------------------------------------
# Registry, arguments
# --------------------------------------------------------------------------------------------


def test_registry_entries() -> None:
    for name in NAMES:
        info = srzoo.model_info(name)
        assert info.family == "rgt" and info.scales == (2, 3, 4)
        assert info.code_license == "Apache-2.0" and info.paper.arxiv == "2303.06373"
        assert info.size_multiple == 32
        # Google Drive only: nothing to register (see the module docstring).
        assert info.weights == ()
    assert srzoo.create("rgt", 4, **_overrides(SMALL)).receptive_field is None


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"num_heads": (7,) * 8}, "head count"),
        ({"embed_dim": 16, "num_heads": (2,) * 8}, "at least 32"),
        ({"depth": (6, 6), "num_heads": (6,)}, "one positive entry"),
        ({"split_size": (8,)}, "two positive"),
        ({"resi_connection": "2conv"}, "resi_connection"),
        ({"mlp_ratio": 1.25, "embed_dim": 36, "depth": (2,), "num_heads": (6,)}, "even"),
        ({"drop_path_rate": 1.0}, "drop_path_rate"),
    ],
)
def test_bad_configurations_are_refused_with_a_reason(
    overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(srzoo.ArgumentError, match=match):
        srzoo.create("rgt", 4, **overrides)


# --------------------------------------------------------------------------------------------
# torch.compile, bfloat16
# --------------------------------------------------------------------------------------------


def _tiny() -> RGT:
    # Every path once: unshifted L-SA, RG-SA and shifted L-SA in group 0, shifted L-SA in
    # group 1.
    model = srzoo.create("rgt", 2, embed_dim=32, depth=(3, 1), num_heads=(2, 2), split_size=(2, 4))
    assert isinstance(model, RGT)
    return randomize_(model, seed=3).eval()  # type: ignore[return-value]


def test_compiles_without_graph_breaks_at_two_sizes() -> None:
    model = _tiny()
    assert_no_graph_breaks(model, ((13, 11), (16, 16)))


def test_bfloat16_forward_is_finite_and_close_to_float32() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16
    assert torch.isfinite(got).all()
    assert (got.float() - expected).abs().max().item() < 0.05 * max(expected.abs().max().item(), 1)
