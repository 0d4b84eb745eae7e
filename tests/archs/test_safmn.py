"""SAFMN: parameter counts and layouts against spandrel on identical random weights (spandrel's
SAFMN keys are sunny2109/SAFMN's), flat and in the BasicSR wrapper of the official files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo

from ..util import TINY, assert_loads_correctly, randomize_
from .reference_ntire import RefSAFMNNTIRE


def _ref_safmn(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.SAFMN")
    model: nn.Module = arch.SAFMN(**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    # spandrel's own loader detects the configuration from the file.
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_counts_match_spandrel(scale: int) -> None:
    with torch.device("meta"):
        ref = _ref_safmn(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=scale)
    assert srzoo.model_info("safmn").num_params(scale) == sum(
        t.numel() for t in ref.state_dict().values()
    )


def test_bad_widths_are_refused_with_a_reason() -> None:
    with pytest.raises(srzoo.ArgumentError, match="multiple of n_levels"):
        srzoo.create("safmn", 4, dim=10)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_safmn_matches_spandrel(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "safmn",
        scale,
        _ref_safmn(dim=16, n_blocks=2, ffn_scale=1.5, upscaling_factor=scale),
        overrides={"dim": 16, "n_blocks": 2, "ffn_scale": 1.5},
        reload_reference=_spandrel_detected,
        seed=3,
        size=(13, 17),
        relative=True,
    )


def test_safmn_full_size_matches_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "safmn",
        4,
        _ref_safmn(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=4),
        container=lambda state: {"params": state},  # the official BasicSR wrapper
        seed=8,
        size=(17, 12),
        relative=True,
    )


# --------------------------------------------------------------------------------------------
# The NTIRE 2023 variant (sunny2109/SAFMN NTIRE2023_ESR/models/team15_SAFMN.py)
# --------------------------------------------------------------------------------------------


def test_ntire2023_parameter_count_is_the_official_files() -> None:
    # Element count of the official team15_SAFMN.pth (= SAFMN_NTIRE_ESR_x4.pth).
    with torch.device("meta"):
        ref = RefSAFMNNTIRE(36, 8, 2.0, 4)
    count = srzoo.model_info("safmn-ntire2023").num_params(4)
    assert count == sum(t.numel() for t in ref.state_dict().values()) == 237_000


@pytest.mark.parametrize(("scale", "size"), [(2, (16, 16)), (3, (17, 21)), (4, (35, 16))])
def test_ntire2023_matches_upstream(tmp_path: Path, scale: int, size: tuple[int, int]) -> None:
    # The original needs 16 pixels a side (its coarsest level pools to h // 16).
    assert_loads_correctly(
        tmp_path,
        "safmn-ntire2023",
        scale,
        RefSAFMNNTIRE(8, 2, 1.5, scale),
        overrides={"dim": 8, "n_blocks": 2, "ffn_scale": 1.5},
        container=lambda state: {"params": state},  # the official BasicSR wrapper
        seed=scale,
        size=size,
        relative=True,
    )


def test_ntire2023_full_size_matches_upstream(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "safmn-ntire2023",
        4,
        RefSAFMNNTIRE(36, 8, 2.0, 4),
        container=lambda state: {"params": state},
        seed=9,
        size=(16, 19),
        relative=True,
    )


def test_ntire2023_keys_are_the_official_ones() -> None:
    keys = set(srzoo.create("safmn-ntire2023", 4).state_dict())
    assert keys == set(RefSAFMNNTIRE(36, 8, 2.0, 4).state_dict())
    assert "norm.gamma" in keys and not any("norm1" in k or k.endswith("aggr.bias") for k in keys)


def test_ntire2023_small_inputs_clamp_the_pooling() -> None:
    model = randomize_(srzoo.create("safmn-ntire2023", 2, **TINY["safmn-ntire2023"])).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 5, 3))
    assert y.shape == (1, 3, 10, 6) and torch.isfinite(y).all()


def _tiny_ntire(scale: int = 4) -> nn.Module:
    return randomize_(srzoo.create("safmn-ntire2023", scale, **TINY["safmn-ntire2023"]), seed=4)


def test_ntire2023_compiles_without_graph_breaks_at_two_sizes() -> None:
    model = _tiny_ntire().eval()
    for size in ((16, 16), (37, 21)):
        torch._dynamo.reset()
        explained = torch._dynamo.explain(model)(torch.rand(1, 3, *size))
        assert explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="aten's adaptive_max_pool2d specializes its output size under dynamic shapes, so "
    "every new pooled size (h >> k) recompiles SAFM, in both SAFMN variants",
)
def test_ntire2023_dynamic_compile_does_not_recompile_for_a_new_size() -> None:
    torch._dynamo.reset()
    model = _tiny_ntire().eval()
    graphs = 0

    def counting(gm: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> Any:
        nonlocal graphs
        graphs += 1
        return gm.forward

    compiled = torch.compile(model, backend=counting, dynamic=True, fullgraph=True)
    with torch.no_grad():
        for size in ((32, 40), (48, 36)):
            x = torch.rand(1, 3, *size)
            torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    assert graphs == 1


def test_ntire2023_bfloat16_and_float16_are_finite_and_close() -> None:
    model = _tiny_ntire().eval()
    x = torch.rand(1, 3, 20, 18)
    with torch.no_grad():
        ref = model(x)
        for dtype in (torch.bfloat16, torch.float16):
            low = model.to(dtype)(x.to(dtype))
            assert low.dtype == dtype and torch.isfinite(low).all()
            assert (low.float() - ref).abs().max() < 0.05 * ref.abs().max()


def test_ntire2023_tiling_warns() -> None:
    model = _tiny_ntire().eval()
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(3))
    whole = srzoo.upscale(model, x, tile=None)
    with pytest.warns(srzoo.TilingWarning):
        tiled = srzoo.upscale(model, x, tile=32)
    assert tiled.shape == whole.shape == (3, 256, 256)


def test_ntire2023_registered_weights() -> None:
    (w,) = srzoo.model_info("safmn-ntire2023").weights
    assert w.scale == 4 and w.size == 971_051 and w.input_range == "0-1"
    assert w.sha256 == "93fe3d7175ef1446cfcb3a884ddf8bbb4391f31190e9d1bf6c6c1cb768f8b565"
