"""HAT: parameter counts, the official and spandrel layouts against spandrel on identical random
weights, the converter's handling of the stored index tables, compile capture, bfloat16 and
tiling.

XPixelGroup/HAT's files (``params_ema``) and spandrel's re-saves (flat, as OpenModelDB's model
hub publishes them) share one key layout, index tables included.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs.hat import HAT, convert_hat, overlap_position_index, window_order
from srzoo.errors import ArgumentError, IncompatibleWeightsError

from ..util import TINY, assert_loads_correctly, randomize_

NAMES = ("hat-s", "hat", "hat-l", "real-hat-gan")


def _spandrel_hat(monkeypatch: pytest.MonkeyPatch | None = None, **config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.HAT")
    if monkeypatch is not None:
        # spandrel reads its drop-path rates with .item(), which a meta tensor refuses.
        monkeypatch.setattr(torch, "linspace", functools.partial(torch.linspace, device="cpu"))
    model: nn.Module = arch.HAT(img_size=64, **config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _params_ema(state: dict[str, torch.Tensor]) -> object:
    return {"params_ema": state}


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

# Parameters of the official configurations (spandrel's state dicts hold 212,992 more values:
# the two index tables, which srzoo computes instead of storing).
PARAMS = {
    ("hat-s", 2): 9_473_471,
    ("hat-s", 3): 9_658_111,
    ("hat-s", 4): 9_621_183,
    ("hat", 2): 20_624_795,
    ("hat", 3): 20_809_435,
    ("hat", 4): 20_772_507,
    ("hat-l", 2): 40_698_863,
    ("hat-l", 3): 40_883_503,
    ("hat-l", 4): 40_846_575,
    ("real-hat-gan", 4): 20_772_507,
}


@pytest.mark.parametrize(("name", "scale"), list(PARAMS))
def test_parameter_counts_of_the_official_configurations(
    name: str, scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = srzoo.model_info(name)
    assert info.num_params(scale) == PARAMS[(name, scale)]
    with torch.device("meta"):
        ref = _spandrel_hat(monkeypatch, upscale=scale, **info.defaults)
    assert sum(p.numel() for p in ref.parameters()) == PARAMS[(name, scale)]
    with torch.device("meta"):
        ours = info.build(scale)
    # Every parameter has the official name and shape.
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items() if not k.startswith("relative_position")
    }


@pytest.mark.parametrize("name", NAMES)
def test_registry_entries(name: str) -> None:
    info = srzoo.model_info(name)
    assert info.family == "hat" and info.colour == "rgb" and info.size_multiple == 16
    assert info.scales == (2, 3, 4) and info.scale == 4
    assert info.paper.arxiv == "2205.04437" and info.code_license == "Apache-2.0"
    assert info.task == ("real-world" if name == "real-hat-gan" else "psnr")
    for w in info.weights:
        assert w.source.startswith("https://github.com/") and w.license == "Apache-2.0"
        assert w.train_data and w.sha256_note
        if w.tag == "modelhub":
            assert w.sha256 is None
        else:
            assert w.sha256 is not None and len(w.sha256) == 64
            int(w.sha256, 16)
        for m in w.metrics:
            assert m.scale == w.scale and m.dataset in {"Set5", "Set14"} and m.source


def test_registered_weights() -> None:
    tags = {n: sorted((w.scale, w.tag) for w in srzoo.model_info(n).weights) for n in NAMES}
    assert tags == {
        "hat-s": [(s, t) for s in (2, 3, 4) for t in ("default", "modelhub")],
        "hat": sorted(
            [(s, t) for s in (2, 3, 4) for t in ("default", "imagenet")]
            + [(s, "modelhub") for s in (3, 4)]
        ),
        "hat-l": [(2, "imagenet"), (3, "imagenet"), (4, "imagenet"), (4, "modelhub")],
        "real-hat-gan": [(4, "default"), (4, "sharper")],
    }
    # HAT-L's only release is ImageNet-pretrained: it is also the default.
    hat_l = srzoo.model_info("hat-l").weights_for(4)
    assert hat_l is not None and hat_l.tag == "imagenet"
    hat = srzoo.model_info("hat").weights_for(4)
    assert hat is not None and hat.metrics[0].value == 33.04
    # Official files and the model hub's re-saves are different bytes: distinct entries.
    digests = [w.sha256 for n in NAMES for w in srzoo.model_info(n).weights if w.sha256]
    assert len(digests) == len(set(digests))


def test_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match="embed_dim"):
        HAT(embed_dim=10, num_heads=(6,) * 6)
    with pytest.raises(ArgumentError, match="depths and num_heads"):
        HAT(depths=(6, 6), num_heads=(6,))
    with pytest.raises(ArgumentError, match="even"):
        HAT(window_size=7, embed_dim=12, num_heads=(2,), depths=(2,), squeeze_factor=4)
    with pytest.raises(ArgumentError, match="no channels"):
        HAT(embed_dim=12, num_heads=(2,), depths=(2,))
    with pytest.raises(ArgumentError, match="resi_connection"):
        HAT(resi_connection="3conv")


# --------------------------------------------------------------------------------------------
# Layouts against spandrel
# --------------------------------------------------------------------------------------------

# Small widths and depths, the variant's own compress ratio and squeeze factor where the width
# allows (HAT-S: 48 / 24 = 2 channels in each CAB; HAT: 30 / 3 = 10 and 30 / 30 = 1).
SMALL: dict[str, dict[str, Any]] = {
    "hat-s": {"embed_dim": 48, "depths": (2, 2), "num_heads": (2, 2), "window_size": 4},
    "hat": {"embed_dim": 30, "depths": (2, 2), "num_heads": (2, 2), "window_size": 4},
    "hat-l": {"embed_dim": 30, "depths": (2, 2, 2), "num_heads": (2, 2, 2), "window_size": 4},
    "real-hat-gan": {"embed_dim": 30, "depths": (2, 2), "num_heads": (2, 2), "window_size": 4},
}
# Every upsampler (x2, x3, x4) once for HAT-S, one scale of each other variant (Real-HAT-GAN
# was released at x4 only); the slow test runs the others.
CASES = [("hat-s", 2), ("hat-s", 3), ("hat-s", 4), ("hat", 3), ("hat-l", 2), ("real-hat-gan", 4)]
OTHER_CASES = [("hat", 2), ("hat", 4), ("hat-l", 3), ("hat-l", 4)]


def _reference(name: str, scale: int) -> tuple[nn.Module, dict[str, Any]]:
    config = {**srzoo.model_info(name).defaults, **SMALL[name], "num_feat": 16}
    return _spandrel_hat(upscale=scale, **config), config


@pytest.mark.parametrize(
    ("name", "scale"),
    [*CASES, *(pytest.param(*case, marks=pytest.mark.slow) for case in OTHER_CASES)],
)
def test_official_layout_matches_spandrel(tmp_path: Path, name: str, scale: int) -> None:
    # The official files wrap the tensors (index tables included) in "params_ema". 13x11 pads
    # to 16x12; at x4 also a size that is a multiple of the window (no padding).
    sizes = [(13, 11), (16, 16)] if scale == 4 else [(13, 11)]
    for size in sizes:
        ref, config = _reference(name, scale)
        assert_loads_correctly(
            tmp_path,
            name,
            scale,
            ref,
            overrides=config,
            container=_params_ema,
            safetensors=False,
            # spandrel's own loader detects the configuration from the file.
            reload_reference=_spandrel_detected if scale == 4 and size == (13, 11) else None,
            seed=scale,
            size=size,
            atol=1e-4,
            relative=True,
        )


def test_model_hub_layout_matches_spandrel(tmp_path: Path) -> None:
    # The model hub's re-saves are spandrel's flat state dicts (here also as safetensors).
    ref, config = _reference("hat", 4)
    assert_loads_correctly(
        tmp_path, "hat", 4, ref, overrides=config, seed=7, size=(9, 14), atol=1e-4, relative=True
    )


def test_the_official_window_matches_spandrel(tmp_path: Path) -> None:
    # Window 16 (overlap window 24): the released index tables, with the OCA table's negative
    # entries; 33x20 pads to 48x32, six windows with shifted-window masks at both edges.
    config = {"embed_dim": 24, "depths": (2,), "num_heads": (3,), "num_feat": 8}
    config.update(compress_ratio=24, squeeze_factor=24)
    assert_loads_correctly(
        tmp_path,
        "hat-s",
        2,
        _spandrel_hat(upscale=2, **{**srzoo.model_info("hat-s").defaults, **config}),
        overrides=config,
        container=_params_ema,
        safetensors=False,
        seed=3,
        size=(33, 20),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
def test_hat_s_full_size_matches_spandrel(tmp_path: Path) -> None:
    info = srzoo.model_info("hat-s")
    assert_loads_correctly(
        tmp_path,
        "hat-s",
        4,
        _spandrel_hat(upscale=4, **info.defaults),
        container=_params_ema,
        safetensors=False,
        seed=11,
        size=(20, 17),
        atol=1e-4,
        relative=True,
    )


# --------------------------------------------------------------------------------------------
# Index tables
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [4, 16])
def test_index_tables_equal_the_official_buffers(window: int) -> None:
    ref = _spandrel_hat(upscale=2, embed_dim=8, depths=(2,), num_heads=(2,), window_size=window)
    oca = ref.state_dict()["relative_position_index_OCA"]
    table = ref.state_dict()["layers.0.residual_group.overlap_attn.relative_position_bias_table"]
    ours = overlap_position_index(window, window * 3 // 2, torch.device("cpu"))
    # The official table indexes with negative entries, which wrap around the bias table.
    assert bool((oca < 0).any())
    assert torch.equal(table[oca], table[ours])


def test_window_order_is_roll_then_partition() -> None:
    x = torch.arange(2 * 12 * 8 * 3.0).view(2, 12, 8, 3)
    for shift in (0, 2):
        gather, scatter = window_order(12, 8, 4, shift, torch.device("cpu"))
        rolled = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        expected = rolled.view(2, 3, 4, 2, 4, 3).permute(0, 1, 3, 2, 4, 5).reshape(2, 96, 3)
        windows = x.reshape(2, 96, 3).index_select(1, gather)
        assert torch.equal(windows, expected)
        assert torch.equal(windows.index_select(1, scatter), x.reshape(2, 96, 3))


def test_converter_drops_and_checks_the_index_tables() -> None:
    config = {"embed_dim": 8, "depths": (2,), "num_heads": (2,), "squeeze_factor": 4}
    net = HAT(scale=2, window_size=4, **config)
    ref = _spandrel_hat(upscale=2, window_size=4, **config).state_dict()
    converted = convert_hat(ref, net)
    assert set(converted) == set(net.state_dict())
    assert all(converted[k] is ref[k] for k in converted)
    # srzoo's own layout passes unchanged.
    own = net.state_dict()
    assert convert_hat(own, net).keys() == own.keys()
    # A file of another window size fails on its index tables, naming them.
    other = _spandrel_hat(upscale=2, window_size=8, **config).state_dict()
    with pytest.raises(IncompatibleWeightsError, match="relative_position_index_SA"):
        convert_hat(other, net)


# --------------------------------------------------------------------------------------------
# Compile, bfloat16, tiling
# --------------------------------------------------------------------------------------------


def _tiny(name: str = "hat-s", scale: int = 2, **overrides: Any) -> nn.Module:
    return randomize_(srzoo.create(name, scale, **{**TINY[name], **overrides})).eval()


def _one_group() -> nn.Module:
    # Compile time grows with the blocks traced; one group of a plain and a shifted block
    # still has every kind of layer.
    return _tiny(depths=(2,), num_heads=(2,))


def test_fullgraph_capture_without_graph_breaks_at_two_sizes() -> None:
    model = _one_group()
    for size in ((13, 11), (16, 24)):
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(model)(torch.rand(1, 3, *size))
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1


def test_dynamic_compile_takes_a_new_size_without_recompiling() -> None:
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    model = _one_group()
    counter = CompileCounter()
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    with torch.no_grad():
        for size in ((16, 24), (20, 12)):
            x = torch.rand(1, 3, *size)
            torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    assert counter.frame_count == 1


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and bool(torch.isfinite(got).all())
    assert (got.float() - expected).abs().max().item() < 0.05 * max(1.0, expected.abs().max())


def test_tiling_warns_and_stays_close() -> None:
    # A global network: tiles cannot reproduce the whole image, so srzoo warns; with overlap
    # the seams stay small. (HAT-S at tiny width, 64x64, 32-pixel tiles, default overlap.)
    model = _tiny("hat-s", 2)
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(7))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = srzoo.upscale(model, x, tile=None)
    with pytest.warns(srzoo.TilingWarning):
        tiled = srzoo.upscale(model, x, tile=32)
    assert tiled.shape == whole.shape == (3, 128, 128)
    diff = (tiled - whole).abs()
    # Measured: max 4.0e-4, mean 5.3e-6 (the CABs' channel attention sees each tile alone).
    assert 0 < diff.max().item() < 0.01
    assert diff.mean().item() < 1e-4
