"""RLFN: parameter counts, both upstream layouts and the 0..255 range (a stand-in of
bytedance/RLFN and of the NTIRE 2022 repository's copy on identical random weights), small
inputs, compile capture, bfloat16 and tiling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srzoo
from srzoo.archs.rlfn import RLFN, convert_rlfn

from ..util import CHECKPOINTS, DATA, TINY, assert_loads_correctly, randomize_, require_shared
from .reference_ntire import RefRLFN

# Reference arguments of the official configurations.
CONFIGS: dict[str, dict[str, Any]] = {
    "rlfn": {"nf": 52, "nb": 6},
    "rlfn-s": {"nf": 48, "nb": 6},
    "rlfn-ntire": {"nf": 46, "nb": 4, "mf": 48},
}
# name -> (srzoo overrides, reference arguments) of a small configuration: the official block
# count where it is cheap, and a pruned middle width for the challenge model.
SMALL: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "rlfn": ({"feature_channels": 12, "esa_channels": 4}, {"nf": 12, "nb": 6, "esa": 4}),
    "rlfn-s": (
        {"feature_channels": 8, "num_blocks": 2, "esa_channels": 4},
        {"nf": 8, "nb": 2, "esa": 4},
    ),
    "rlfn-ntire": (
        {"feature_channels": 10, "mid_channels": 12, "esa_channels": 4},
        {"nf": 10, "nb": 4, "mf": 12, "esa": 4},
    ),
}


def _in_unit_range(ref: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # Every released RLFN takes and returns 0..255; srzoo's takes and returns [0, 1].
    y: torch.Tensor = ref(x * 255.0) / 255.0
    return y


# Element counts of the official files (bytedance/RLFN model_zoo; team04_rlfn.pth has the same).
OFFICIAL_COUNTS = {
    ("rlfn", 2): 526_856,
    ("rlfn", 4): 543_740,
    ("rlfn-s", 2): 454_620,
    ("rlfn-s", 4): 470_208,
    ("rlfn-ntire", 4): 317_218,
}


@pytest.mark.parametrize(("name", "scale"), sorted(OFFICIAL_COUNTS))
def test_parameter_counts_of_the_official_configurations(name: str, scale: int) -> None:
    with torch.device("meta"):
        ref = RefRLFN(upscale=scale, **CONFIGS[name])
    count = srzoo.model_info(name).num_params(scale)
    assert count == sum(t.numel() for t in ref.state_dict().values())
    assert count == OFFICIAL_COUNTS[name, scale]


# 15 is the smallest size the original accepts; 22 makes the pooling windows uneven. RLFN-S is
# RLFN's code at another width: one scale suffices.
@pytest.mark.parametrize(
    ("name", "scale", "size"),
    [
        ("rlfn", 2, (15, 22)),
        ("rlfn", 3, (16, 16)),
        ("rlfn", 4, (19, 17)),
        ("rlfn-s", 2, (16, 16)),
        ("rlfn-ntire", 2, (17, 16)),
        ("rlfn-ntire", 4, (15, 22)),
    ],
)
def test_rlfn_matches_upstream_layout_and_range(
    tmp_path: Path, name: str, scale: int, size: tuple[int, int]
) -> None:
    overrides, ref_args = SMALL[name]
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        RefRLFN(upscale=scale, **ref_args),
        overrides=overrides,
        run_reference=_in_unit_range,
        seed=scale,
        size=size,
        relative=True,
    )


@pytest.mark.parametrize(
    "name",
    [
        "rlfn-ntire",
        pytest.param("rlfn", marks=pytest.mark.slow),
        pytest.param("rlfn-s", marks=pytest.mark.slow),
    ],
)
def test_official_configurations_match_upstream(tmp_path: Path, name: str) -> None:
    assert_loads_correctly(
        tmp_path,
        name,
        4,
        RefRLFN(upscale=4, **CONFIGS[name]),
        run_reference=_in_unit_range,
        seed=21,
        size=(16, 15),
        relative=True,
    )


def test_ntire2022_repository_layout_loads(tmp_path: Path) -> None:
    # ofsoundof/NTIRE2022_ESR's team04_rlfn.pth: fea_conv / B1..B4 / LR_conv.
    ref = RefRLFN(upscale=4, ntire2022_names=True, **CONFIGS["rlfn-ntire"])
    assert {k.split(".")[0] for k in ref.state_dict()} == {
        "fea_conv",
        "B1",
        "B2",
        "B3",
        "B4",
        "LR_conv",
        "upsampler",
    }
    assert_loads_correctly(
        tmp_path,
        "rlfn-ntire",
        4,
        ref,
        run_reference=_in_unit_range,
        seed=4,
        size=(17, 16),
        relative=True,
    )


def test_converter_leaves_the_own_layout_alone() -> None:
    model = srzoo.create("rlfn-ntire", 4)
    state = model.state_dict()
    assert convert_rlfn(dict(state), model).keys() == state.keys()


def test_rlfn_pads_small_inputs_by_edge_replication() -> None:
    # Below 15 pixels the attention pooling has nothing to pool (the original raises); srzoo
    # replicates the bottom and right edges up to 15 pixels and crops the result.
    model = randomize_(srzoo.create("rlfn", 2, **TINY["rlfn"]), seed=5).eval()
    x = torch.rand(1, 3, 4, 17)
    padded = F.pad(x, (0, 0, 0, 11), mode="replicate")
    with torch.no_grad():
        y = model(x)
        expected = model(padded)[..., :8, :]
    assert y.shape == (1, 3, 8, 34)
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs",
    [{"scale": 0}, {"feature_channels": 0}, {"num_blocks": 0}, {"esa_channels": 0}],
)
def test_bad_arguments_are_refused_with_a_reason(kwargs: dict[str, int]) -> None:
    with pytest.raises(srzoo.ArgumentError, match="RLFN"):
        RLFN(**kwargs)


def test_registered_weights() -> None:
    for name in CONFIGS:
        for w in srzoo.model_info(name).weights:
            assert w.source.startswith("https://raw.githubusercontent.com/")
            assert w.sha256 is not None and len(w.sha256) == 64 and w.size
            assert w.input_range == "0-255"
            found = srzoo.registry.find_weights(w.sha256)
            assert [(m.name, v.scale, v.tag) for m, v in found] == [(name, w.scale, w.tag)]
    assert [w.tag for w in srzoo.model_info("rlfn-ntire").weights] == ["default", "ntire2022"]


def _tiny(name: str, scale: int = 4) -> nn.Module:
    return randomize_(srzoo.create(name, scale, **TINY[name]), seed=11).eval()


def test_compiles_without_graph_breaks_at_two_sizes() -> None:
    # The three variants run the same code; the challenge model's pruned middle is the widest.
    model = _tiny("rlfn-ntire")
    for size in ((16, 16), (23, 18)):
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(torch.rand(1, 3, *size))
        assert explained.graph_break_count == 0, explained.break_reasons


def test_dynamic_compile_does_not_recompile_for_a_new_size() -> None:
    torch._dynamo.reset()
    model = _tiny("rlfn-ntire")
    graphs = 0

    def counting(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> Any:
        nonlocal graphs
        graphs += 1
        return gm.forward

    compiled = torch.compile(model, backend=counting, dynamic=True, fullgraph=True)
    with torch.no_grad():
        for size in ((24, 20), (31, 17)):
            x = torch.rand(1, 3, *size)
            torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    assert graphs == 1


def test_bfloat16_is_finite_and_close_to_float32() -> None:
    model = _tiny("rlfn")
    x = torch.rand(1, 3, 20, 18)
    with torch.no_grad():
        ref = model(x)
        low = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert low.dtype == torch.bfloat16 and torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_tiling_warns_and_stays_close() -> None:
    # ESA's pooling follows the image's size: tiles differ slightly from the whole image.
    model = _tiny("rlfn-ntire")
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))
    whole = srzoo.upscale(model, x, tile=None)
    with pytest.warns(srzoo.TilingWarning):
        tiled = srzoo.upscale(model, x, tile=32)
    assert tiled.shape == whole.shape == (3, 256, 256)
    assert (tiled - whole).abs().mean() < 0.05


@pytest.mark.slow
@pytest.mark.parametrize(("name", "scale", "file", "psnr"), [("rlfn", 4, "rlfn_x4.pth", 28.62)])
def test_official_checkpoint_reproduces_set14(
    name: str, scale: int, file: str, psnr: float
) -> None:
    path = require_shared(CHECKPOINTS / file)
    hr = require_shared(DATA / "benchmark" / "Set14" / "HR")
    model = srzoo.load(name, scale=scale, weights=path)
    result = srzoo.evaluate(model, hr, lr_dir=hr.parent / "LR_bicubic" / f"X{scale}")
    assert result.psnr == pytest.approx(psnr, abs=0.01)
