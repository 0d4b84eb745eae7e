"""CRAFT: the registered configuration and a wider one (where the position bias is live) against
spandrel on identical random weights (spandrel's CRAFT keys are AVC2-UESTC/CRAFT-SR's), in the
official ``{"params": ...}`` wrapper with the position tables the official files hold; the
authors' mirror padding, also for inputs smaller than its reach; detection of bare files;
parameter counts of the released models; torch.compile capture and bfloat16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.craft import CRAFT, WindowAttention, convert_craft, mirror_pad

from ..util import assert_loads_correctly, assert_no_graph_breaks, randomize_

# Tensors the official files hold but the network computes from its configuration.
_COMPUTED = ("relative_position_index_h", "relative_position_index_v", "biases_h", "biases_v")

# 64 features: the position-bias MLP is embed_dim // 32 wide, so two units (at the released 48
# it is one unit and the bias a constant per head); two groups of different depths and heads.
WIDE: dict[str, Any] = {"embed_dim": 64, "depths": [1, 2], "num_heads": [4, 2]}

# The authors' README, parameters in thousands (truncated).
PAPER_PARAMS = {2: 737, 3: 744, 4: 753}


def _spandrel_craft(**config: Any) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """spandrel's CRAFT and the position tables its state dict holds.

    The tables become non-persistent so that ``randomize_`` leaves them alone; they are put back
    into the saved file, as the official files have them.
    """
    arch = pytest.importorskip("spandrel.architectures.CRAFT")
    model: nn.Module = arch.CRAFT(**config)
    computed = {name: getattr(model, name).clone() for name in _COMPUTED}
    for name, table in computed.items():
        model.register_buffer(name, table.clone(), persistent=False)
    return model, computed


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _overrides(config: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


@pytest.mark.parametrize(
    ("config", "scale"),
    [
        pytest.param({}, 4, marks=pytest.mark.slow),
        (WIDE, 2),
        pytest.param({}, 2, marks=pytest.mark.slow),
        pytest.param(WIDE, 3, marks=pytest.mark.slow),
    ],
    ids=["released-x4", "wide-x2", "released-x2", "wide-x3"],
)
def test_matches_spandrel_in_the_official_layout(
    tmp_path: Path, config: dict[str, Any], scale: int
) -> None:
    reference, computed = _spandrel_craft(upscale=scale, **config)
    # 13x11 pads to 16x16; 16x16 is a multiple and pads to 32x32 (one more window, as upstream).
    # The released depth runs the second size with the slow tests.
    sizes = ((13, 11),) if not config and scale == 4 else ((13, 11), (16, 16))
    for size in sizes:
        assert_loads_correctly(
            tmp_path,
            "craft",
            scale,
            reference,
            overrides=_overrides(config),
            to_upstream=lambda state: {**state, **computed},
            container=lambda state: {"params": state},
            reload_reference=_spandrel_detected if size == (13, 11) else None,
            safetensors=size == (13, 11),
            seed=scale,
            size=size,
            atol=1e-4,
            relative=True,
        )


@pytest.mark.slow
def test_matches_spandrel_with_another_window_and_tail(tmp_path: Path) -> None:
    config = {
        "embed_dim": 64,
        "depths": [2],
        "num_heads": [8],
        "split_size_0": 2,
        "split_size_1": 8,
        "mlp_ratio": 1.5,
        "qkv_bias": False,
        "resi_connection": "identity",
    }
    reference, computed = _spandrel_craft(upscale=3, **config)
    for size in ((17, 21), (32, 16)):
        assert_loads_correctly(
            tmp_path,
            "craft",
            3,
            reference,
            overrides=_overrides(config),
            to_upstream=lambda state: {**state, **computed},
            container=lambda state: {"params_ema": state},
            reload_reference=_spandrel_detected if size == (17, 21) else None,
            seed=5,
            size=size,
            atol=1e-4,
            relative=True,
        )


def test_mirror_pad_is_the_authors_where_it_reaches_and_repeats_beyond() -> None:
    x = torch.rand(1, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    # The authors' padding (inference_CRAFT.py) for pads up to the side.
    upstream = torch.cat([x, torch.flip(x, [2])], 2)[:, :, :9, :]
    upstream = torch.cat([upstream, torch.flip(upstream, [3])], 3)[:, :, :, :14]
    assert torch.equal(mirror_pad(x, 4, 7), upstream)
    # Beyond: the mirrored pair repeats (period twice the side).
    row = torch.arange(3.0).view(1, 1, 1, 3)
    assert mirror_pad(row, 0, 9).flatten().tolist() == [0, 1, 2, 2, 1, 0, 0, 1, 2, 2, 1, 0]
    assert mirror_pad(torch.ones(1, 1, 1, 1), 15, 15).shape == (1, 1, 16, 16)


def test_inputs_beyond_the_authors_padding_run_upstreams_network_on_the_mirrored_image() -> None:
    # Upstream's padding reaches at most the image's own size (a 5-pixel side cannot reach 16);
    # srzoo keeps mirroring. The result is upstream's network on that padded image.
    reference, _ = _spandrel_craft(upscale=2, **WIDE)
    randomize_(reference, seed=3).eval()
    model = srzoo.create("craft", 2, **_overrides(WIDE))
    model.load_state_dict(convert_craft(reference.state_dict(), model))
    model.eval()
    x = torch.rand(1, 3, 5, 12, generator=torch.Generator().manual_seed(0))
    padded = mirror_pad(x, 11, 4)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    with torch.no_grad():
        feats = reference.conv_first(padded - mean)
        body = reference.conv_after_body(reference.forward_features(feats)) + feats
        expected = (reference.upsample(body) + mean)[..., :10, :24]
        got = model(x)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_the_constant_position_bias_of_the_release_is_skipped_exactly() -> None:
    # At 48 features the bias MLP is one unit wide: a constant per head. srzoo leaves it out
    # and freezes it; computing it anyway gives the same output.
    model = randomize_(srzoo.create("craft", 2, depths=(1,), num_heads=(6,)), seed=1).eval()
    attns = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert attns and all(a.constant_bias for a in attns)
    assert not any(p.requires_grad for a in attns for p in a.parameters())
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        skipped = model(x)
        for a in attns:
            a.constant_bias = False
        computed = model(x)
    torch.testing.assert_close(skipped, computed, atol=1e-5, rtol=1e-5)
    wide = srzoo.create("craft", 2, **_overrides(WIDE))
    assert not any(m.constant_bias for m in wide.modules() if isinstance(m, WindowAttention))


@pytest.mark.parametrize(
    "scale", [pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow), 4]
)
def test_parameter_counts_match_spandrel_and_the_readme(scale: int) -> None:
    with torch.device("meta"):
        reference, _ = _spandrel_craft(upscale=scale)
        ours = srzoo.model_info("craft").build(scale)
    params = sum(p.numel() for p in ours.parameters())
    assert params == sum(p.numel() for p in reference.parameters())
    assert srzoo.model_info("craft").num_params(scale) == params
    assert params // 1000 == PAPER_PARAMS[scale]


def test_the_window_of_a_checkpoint_is_checked() -> None:
    # The parameters do not depend on the window: only the position tables in the file do.
    config = {**WIDE, "split_size_0": 2, "split_size_1": 8}
    reference, computed = _spandrel_craft(upscale=2, **config)
    state = {**reference.state_dict(), **computed}
    with pytest.raises(srzoo.IncompatibleWeightsError, match="biases_h"):
        convert_craft(state, srzoo.create("craft", 2, **_overrides(WIDE)))
    converted = convert_craft(state, srzoo.create("craft", 2, **_overrides(config)))
    assert set(converted) == set(reference.state_dict())
    assert not set(_COMPUTED) & set(converted)


# --------------------------------------------------------------------------------------------
# Detection of bare files
# --------------------------------------------------------------------------------------------

_GRID: list[tuple[int, dict[str, Any]]] = [
    (2, {**WIDE, "split_size_0": 2, "split_size_1": 8, "qkv_bias": False}),
    (3, {"embed_dim": 32, "depths": [1], "num_heads": [2], "resi_connection": "identity"}),
    (4, {"embed_dim": 48, "depths": [1, 1], "num_heads": [6, 4], "mlp_ratio": 1.5}),
]
_DEFAULTS: dict[str, Any] = {
    "in_chans": 3,
    "split_size_0": 4,
    "split_size_1": 16,
    "window_size": 16,
    "mlp_ratio": 2.0,
    "qkv_bias": True,
    "resi_connection": "1conv",
}


@pytest.mark.parametrize(("scale", "config"), _GRID, ids=[f"x{s}" for s, _ in _GRID])
def test_bare_files_are_detected_and_load(
    tmp_path: Path, scale: int, config: dict[str, Any]
) -> None:
    reference, computed = _spandrel_craft(upscale=scale, **config)
    randomize_(reference, seed=scale).eval()
    state = {**{k: v.detach().clone() for k, v in reference.state_dict().items()}, **computed}
    pth, st = tmp_path / "ckpt.pth", tmp_path / "ckpt.safetensors"
    torch.save({"params": state}, pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    x = torch.rand(1, 3, 17, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = reference(x)
    for path in (pth, st):
        found = srzoo.detect(path)
        assert (found.name, found.scale, found.family, found.layout) == (
            "craft",
            scale,
            "craft",
            "official",
        )
        for key, value in _overrides({**_DEFAULTS, **config}).items():
            assert found.model_args[key] == value, key
        model = srzoo.load_file(path)
        with torch.no_grad():
            got = model(x)
        assert (got - want).abs().max().item() <= 1e-4 * max(1.0, want.abs().max().item())


def test_srzoos_own_state_dict_is_detected_with_the_released_window() -> None:
    model = srzoo.create("craft", 3, embed_dim=32, depths=(1, 2, 1), num_heads=(2, 4, 2))
    found = srzoo.detect(model.state_dict())
    assert (found.name, found.scale) == ("craft", 3)
    assert (found.model_args["split_size_0"], found.model_args["split_size_1"]) == (4, 16)
    assert found.model_args["depths"] == (1, 2, 1)
    assert found.model_args["num_heads"] == (2, 4, 2)


# --------------------------------------------------------------------------------------------
# Registry, arguments
# --------------------------------------------------------------------------------------------


def test_registry_entry() -> None:
    info = srzoo.model_info("craft")
    assert info.family == "craft" and info.scales == (2, 3, 4)
    assert info.code_license == "Apache-2.0" and info.paper.arxiv == "2308.05022"
    assert info.size_multiple == 16
    # Google Drive only: nothing to register (see the module docstring).
    assert info.weights == ()
    model = srzoo.create("craft", 4, depths=(1,), num_heads=(6,))
    assert model.receptive_field is None
    assert (model.scale, model.in_channels, model.out_channels) == (4, 3, 3)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"num_heads": (5,) * 4}, "head count"),
        ({"embed_dim": 16, "num_heads": (2,) * 4}, "at least 32"),
        ({"depths": (2, 2), "num_heads": (6,)}, "one positive entry"),
        ({"split_size_0": 3}, "multiple of both split sizes"),
        ({"window_size": 8}, "multiple of both split sizes"),
        ({"resi_connection": "3conv"}, "resi_connection"),
        ({"mlp_ratio": 0.0}, "mlp_ratio"),
    ],
)
def test_bad_configurations_are_refused_with_a_reason(
    overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(srzoo.ArgumentError, match=match):
        srzoo.create("craft", 4, **overrides)


# --------------------------------------------------------------------------------------------
# torch.compile, bfloat16
# --------------------------------------------------------------------------------------------


def _tiny() -> CRAFT:
    # Both windows' halves, shifted and not, with the live (two-unit) position bias.
    model = srzoo.create(
        "craft", 2, embed_dim=64, depths=(1,), num_heads=(4,), split_size_0=2, split_size_1=4
    )
    assert isinstance(model, CRAFT)
    return randomize_(model, seed=3).eval()  # type: ignore[return-value]


@pytest.mark.slow  # 11 s of capture on two cores
def test_compiles_without_graph_breaks_at_two_sizes() -> None:
    assert_no_graph_breaks(_tiny(), ((13, 11), (16, 16)))


def test_bfloat16_forward_is_finite_and_close_to_float32() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16
    assert torch.isfinite(got).all()
    assert (got.float() - expected).abs().max().item() < 0.05 * max(expected.abs().max().item(), 1)
