"""DAT: every registered configuration against spandrel on identical random weights (spandrel's
DAT keys are zhengchen1999/DAT's), in the official ``{"params": ...}`` wrapper with the computed
buffers the official files hold, and flat as OpenModelDB re-saves them; parameter counts of the
official configurations; torch.compile capture, dynamic shapes and bfloat16; tiling.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs.dat import DAT, convert_dat

from ..util import assert_loads_correctly, randomize_

NAMES = ("dat", "dat-s", "dat-2", "dat-light")

# The registered configurations, as spandrel's constructor arguments.
OFFICIAL: dict[str, dict[str, Any]] = {
    "dat": {
        "embed_dim": 180,
        "depth": [6] * 6,
        "num_heads": [6] * 6,
        "split_size": [8, 32],
        "expansion_factor": 4.0,
    },
    "dat-s": {
        "embed_dim": 180,
        "depth": [6] * 6,
        "num_heads": [6] * 6,
        "split_size": [8, 16],
        "expansion_factor": 2.0,
    },
    "dat-2": {
        "embed_dim": 180,
        "depth": [6] * 6,
        "num_heads": [6] * 6,
        "split_size": [8, 32],
        "expansion_factor": 2.0,
    },
    "dat-light": {
        "embed_dim": 60,
        "depth": [18],
        "num_heads": [6],
        "split_size": [8, 32],
        "expansion_factor": 2.0,
        "resi_connection": "3conv",
        "upsampler": "pixelshuffledirect",
    },
}

# Small widths and depths with each configuration's own window, expansion and tail: two groups
# (both shift schedules), 96 features: the position-bias MLP is embed_dim // 32 wide, and with
# one unit (below 64 features) its layer norms make the bias independent of the offset, with two
# it takes two values.
SMALL = {"embed_dim": 96, "depth": [3, 2], "num_heads": [4, 2]}

# Tensors the official files hold but the network computes from its configuration.
_COMPUTED = ("rpe_biases", "attn_mask_0", "attn_mask_1")

# The paper's parameter counts at x4 (README and supplementary tables), in units of 10k.
PAPER_PARAMS = {"dat": 1480, "dat-s": 1121, "dat-2": 1121, "dat-light": 57.3}


def _spandrel_dat(**config: Any) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """spandrel's DAT, and the computed buffers its state dict holds.

    The buffers become non-persistent so that ``randomize_`` leaves them alone (random
    relative offsets and masks are not DAT); they are put back into the saved file, as the
    official files have them.
    """
    arch = pytest.importorskip("spandrel.architectures.DAT")
    model: nn.Module = arch.DAT(**config)
    computed: dict[str, torch.Tensor] = {}
    for prefix, module in model.named_modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if name in _COMPUTED:
                computed[f"{prefix}.{name}"] = buf.clone()
                module.register_buffer(name, buf, persistent=False)
    return model, computed


def _spandrel_detected(path: Path) -> nn.Module:
    # spandrel's own loader detects the configuration from the file.
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _overrides(config: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}


def _small(name: str) -> dict[str, Any]:
    return {**OFFICIAL[name], **SMALL}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_matches_spandrel_in_the_official_layout(tmp_path: Path, name: str, scale: int) -> None:
    config = _small(name)
    reference, computed = _spandrel_dat(upscale=scale, **config)
    # 13x11 pads to one window multiple inside the attention; 16x16 is a multiple of DAT-S's.
    for size in ((13, 11), (16, 16)):
        assert_loads_correctly(
            tmp_path,
            name,
            scale,
            reference,
            overrides=_overrides(SMALL),
            to_upstream=lambda state: {**state, **computed},
            container=lambda state: {"params": state},
            reload_reference=_spandrel_detected if size == (13, 11) and scale == 4 else None,
            seed=scale,
            size=size,
            atol=1e-4,
            relative=True,
        )


def test_matches_spandrel_on_a_window_multiple_and_in_the_flat_layout(tmp_path: Path) -> None:
    # 32x32: no padding, and the masks of a padded side equal to spandrel's stored 64x64 ones
    # at 64x64. The flat file is the layout of OpenModelDB's re-saves.
    reference, computed = _spandrel_dat(upscale=4, **_small("dat-2"))
    for size in ((32, 32), (64, 40)):
        assert_loads_correctly(
            tmp_path,
            "dat-2",
            4,
            reference,
            overrides=_overrides(SMALL),
            to_upstream=lambda state: {**state, **computed},
            safetensors=False,
            seed=5,
            size=size,
            atol=1e-4,
            relative=True,
        )


def test_dat_light_full_size_matches_spandrel(tmp_path: Path) -> None:
    reference, computed = _spandrel_dat(upscale=4, **OFFICIAL["dat-light"])
    assert_loads_correctly(
        tmp_path,
        "dat-light",
        4,
        reference,
        to_upstream=lambda state: {**state, **computed},
        container=lambda state: {"params": state},
        safetensors=False,
        seed=11,
        size=(19, 13),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dat", "dat-s", "dat-2"])
def test_full_size_matches_spandrel(tmp_path: Path, name: str) -> None:
    reference, computed = _spandrel_dat(upscale=3, **OFFICIAL[name])
    assert_loads_correctly(
        tmp_path,
        name,
        3,
        reference,
        to_upstream=lambda state: {**state, **computed},
        container=lambda state: {"params": state},
        safetensors=False,
        seed=12,
        size=(20, 17),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize(
    ("name", "scale"),
    [*((n, 4) for n in NAMES), ("dat", 2), ("dat", 3), ("dat-light", 2), ("dat-light", 3)],
)
def test_parameter_counts_match_spandrel(name: str, scale: int) -> None:
    # spandrel's constructor reads its drop-path rates with .item(): it cannot be built on the
    # meta device.
    reference, _ = _spandrel_dat(upscale=scale, **OFFICIAL[name])
    with torch.device("meta"):
        ours = srzoo.model_info(name).build(scale)
    # Parameters and batch-norm statistics; the computed buffers are not part of srzoo's.
    state = reference.state_dict()
    expected = sum(t.numel() for k, t in state.items() if not k.endswith("position_index"))
    assert srzoo.model_info(name).num_params(scale) == expected
    params = sum(p.numel() for p in ours.parameters())
    assert params == sum(p.numel() for p in reference.parameters())
    if scale == 4:
        assert round(params / 1e4, 1 if name == "dat-light" else 0) == PAPER_PARAMS[name]


def test_the_window_of_a_checkpoint_is_checked() -> None:
    # DAT-S (8x16 windows) and DAT-2 (8x32) have parameters of the same shapes: only the
    # computed offsets in the file tell them apart.
    reference, computed = _spandrel_dat(upscale=2, **_small("dat-s"))
    state = {**reference.state_dict(), **computed}
    with pytest.raises(srzoo.IncompatibleWeightsError, match="rpe_biases"):
        convert_dat(state, srzoo.create("dat-2", 2, **_overrides(SMALL)))
    converted = convert_dat(state, srzoo.create("dat-s", 2, **_overrides(SMALL)))
    assert not any(k.endswith((*_COMPUTED, "relative_position_index")) for k in converted)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"num_heads": (5, 5, 5, 5, 5, 5)}, "even"),
        ({"embed_dim": 16}, "at least 32"),
        ({"depth": (6, 6), "num_heads": (6,)}, "one positive entry"),
        ({"split_size": (8,)}, "two positive"),
        ({"upsampler": "nearest+conv"}, "upsampler"),
        ({"resi_connection": "2conv"}, "resi_connection"),
        ({"embed_dim": 36, "num_heads": (6,), "depth": (2,), "expansion_factor": 1.25}, "even"),
    ],
)
def test_bad_configurations_are_refused_with_a_reason(
    overrides: dict[str, Any], match: str
) -> None:
    with pytest.raises(srzoo.ArgumentError, match=match):
        srzoo.create("dat", 4, **overrides)


def test_registry_entries() -> None:
    for name in NAMES:
        info = srzoo.model_info(name)
        assert info.family == "dat" and info.scales == (2, 3, 4)
        assert info.size_multiple == max(OFFICIAL[name]["split_size"])
        defaults = {w.scale for w in info.weights if w.tag == "default"}
        assert defaults == {2, 3, 4}
        for w in info.weights:
            assert w.source.startswith("https://")
            assert w.sha256 is not None or (w.tag == "modelhub" and w.sha256_note)
            assert {m.dataset for m in w.metrics} == {"Set5", "Set14", "Urban100"}
            assert all(m.scale == w.scale and m.source for m in w.metrics)
    assert srzoo.create("dat", 4, **_overrides(SMALL)).receptive_field is None


# --------------------------------------------------------------------------------------------
# torch.compile, bfloat16, tiling
# --------------------------------------------------------------------------------------------


def _tiny(name: str = "dat", scale: int = 2) -> DAT:
    # Every path once: an unshifted spatial block, a channel block and a shifted spatial block
    # in group 0, a spatial block shifted by group 1's schedule.
    overrides = {**_overrides(SMALL), "depth": (3, 1), "split_size": (2, 4)}
    model = srzoo.create(name, scale, **overrides)
    assert isinstance(model, DAT)
    return randomize_(model, seed=3).eval()  # type: ignore[return-value]


def test_compiles_without_graph_breaks_at_two_sizes() -> None:
    model = _tiny()
    torch._dynamo.reset()
    for size in ((13, 11), (16, 16)):
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            explanation = torch._dynamo.explain(model)(x)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1


@pytest.mark.slow  # SwinIR's, Swin2SR's and HAT's files check the same in the default run
def test_dynamic_compile_does_not_recompile_for_a_new_size() -> None:
    from torch._dynamo.testing import CompileCounter

    model = _tiny()
    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    # Sizes on one side of a threshold of torch's own convolution-backend choice (64 * H * W
    # <= 20480 for the depth-wise convolutions), which guards any network's compiled graph.
    with torch.no_grad():
        for size in ((24, 23), (29, 31), (40, 37)):
            x = torch.rand(1, 3, *size)
            torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    assert counter.frame_count == 1


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


def test_tiling_a_global_network_warns_and_stays_close() -> None:
    model = _tiny("dat-light", 2).double()
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = srzoo.upscale(model, x, tile=None)
    with pytest.warns(srzoo.TilingWarning):
        tiled = srzoo.upscale(model, x, tile=32)
    assert tiled.shape == whole.shape == (3, 128, 128)
    diff = (tiled - whole).abs()
    print(f"dat tiled (32, default overlap) vs whole: max {diff.max():.3g}, mean {diff.mean():.3g}")
    assert torch.isfinite(tiled).all()
    assert diff.mean() < 0.05
