"""DCTLSA: the official layout against spandrel on identical random weights (sizes on and off the
window grid), detection from bare state dicts, the registered weights, parameter counts of the
official configuration, torch.compile capture and bfloat16.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.dctlsa import DCTLSA, detect_dctlsa
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import DATA, NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_

SIZES = [(13, 11), (16, 16), (20, 35)]  # off, on, and across the 16x16 windows


def _ref(scale: int, **config: Any) -> nn.Module:
    """spandrel's DCTLSA (the upstream code)."""
    arch = pytest.importorskip("spandrel.architectures.DCTLSA")
    model: nn.Module = arch.DCTLSA(upscale=scale, **config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    spandrel = pytest.importorskip("spandrel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model: nn.Module = spandrel.ModelLoader().load_from_file(path).model
    return model


@pytest.mark.parametrize("size", SIZES[:2], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(
    ("scale", "config"), [(2, {"nf": 10, "num_head": 5}), (4, {"nf": 12, "num_head": 3})]
)
def test_official_layout_matches_spandrel(
    tmp_path: Path, scale: int, config: dict[str, Any], size: tuple[int, int]
) -> None:
    # spandrel's own detection takes 5 heads, as srzoo's: only that file reloads there.
    assert_loads_correctly(
        tmp_path,
        "dctlsa",
        scale,
        _ref(scale, **config),
        overrides=config,
        reload_reference=_spandrel_detected if config["num_head"] == 5 else None,
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


def test_across_several_windows_and_shifts(tmp_path: Path) -> None:
    # 20x35 pads to 32x48: six windows, and the shifted ones wrap around both borders.
    assert_loads_correctly(
        tmp_path,
        "dctlsa",
        3,
        _ref(3, nf=10, num_head=2),
        overrides={"nf": 10, "num_head": 2},
        safetensors=False,
        seed=5,
        size=SIZES[2],
        atol=1e-4,
        relative=True,
    )


GRID = [
    (2, {"nf": 10}),
    (3, {"nf": 8}),  # 5 does not divide 8: detected with 4 heads
    (4, {"nf": 5, "in_nc": 1, "out_nc": 1}),
]


@pytest.mark.parametrize(("scale", "config"), GRID)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, scale: int, config: dict[str, Any]
) -> None:
    heads = 4 if config["nf"] == 8 else 5
    model = randomize_(DCTLSA(scale=scale, num_head=heads, **config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pth, st = tmp_path / "X.pt", tmp_path / "X.safetensors"
    torch.save(state, pth)
    save_file(state, str(st))
    expected = {"in_nc": 3, "out_nc": 3, "num_head": heads, **config}
    x = torch.rand(1, expected["in_nc"], 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
    for path in (pth, st):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "dctlsa",
            "dctlsa",
            scale,
            "official",
        )
        assert dict(found.model_args) == expected
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=1e-5)


def test_detection_needs_the_whole_signature() -> None:
    shapes = {k: tuple(v.shape) for k, v in DCTLSA(scale=2, nf=5).state_dict().items()}
    assert detect_dctlsa(Shapes(shapes)) is not None
    for key in (
        "upsampler.0.weight",
        "c5.0.weight",
        "B6.body.1.transformer_body.0.blocks.0.attn.qkv.weight",
    ):
        assert detect_dctlsa(Shapes({k: s for k, s in shapes.items() if k != key})) is None


# spandrel's parameters at the authors' configuration; the registry also counts the 48 batch
# norms' statistics (2 * 55 + 1 values each).
COUNTS = {2: 867_472, 3: 874_912, 4: 885_328}
BN_STATISTICS = 48 * (2 * 55 + 1)


@pytest.mark.parametrize("scale", sorted(COUNTS))
def test_parameter_counts_equal_spandrels(scale: int) -> None:
    info = srzoo.model_info("dctlsa")
    with torch.device("meta"):
        ref = _ref(scale, **info.defaults)
        ours = info.build(scale)
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert sum(p.numel() for p in ref.parameters()) == COUNTS[scale]
    assert info.num_params(scale) == COUNTS[scale] + BN_STATISTICS


def test_registry_entry_and_weights() -> None:
    info = srzoo.model_info("dctlsa")
    assert info.family == "dctlsa" and info.task == "psnr" and info.colour == "rgb"
    assert info.code_license == "Apache-2.0" and info.paper.year == 2023
    assert info.scales == (2, 3, 4) and info.scale == 4 and info.size_multiple == 16
    assert [w.scale for w in info.weights] == [2, 3, 4]
    for w in info.weights:
        assert w.source.startswith("https://github.com/zengkun301/DCTLSA/raw/")
        assert w.source.endswith(f"/pretrained/X{w.scale}.pt")
        assert w.sha256 is not None and len(w.sha256) == 64 and w.size and w.size > 3_000_000
        assert w.input_range == "0-1" and w.license == "Apache-2.0"
    if (DATA / "weights.tsv").exists():
        # Not in the shared table (it lists Google Drive and mirror files only).
        assert "dctlsa" not in (DATA / "weights.tsv").read_text().lower()


def _tiny(scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create("dctlsa", scale, **TINY["dctlsa"]), seed=1).eval()


def _explain(sizes: tuple[tuple[int, int], ...]) -> None:
    model = _tiny()
    assert_no_graph_breaks(model, sizes)


@pytest.mark.slow
def test_no_graph_breaks_at_two_sizes() -> None:
    # The six blocks are fixed, so even the tiny network traces 24 attention blocks: slow. By
    # default tests/archs/test_registry.py captures it with fullgraph=True once.
    _explain(((16, 16), (13, 21)))


def test_bfloat16_forward() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, atol=5e-2, rtol=0)


def test_any_size_pads_and_crops() -> None:
    # Upstream's reflect padding fails below 9 pixels a side; srzoo's repeats the reflection.
    model = _tiny(3)
    for size in ((1, 1), (3, 9), (17, 2)):
        with torch.no_grad():
            assert model(torch.rand(1, 3, *size)).shape == (1, 3, size[0] * 3, size[1] * 3)


def test_contract_attributes_and_tiny_entries() -> None:
    with torch.device("meta"):
        model = srzoo.model_info("dctlsa").build(4)
    assert model.receptive_field is None
    assert (model.scale, model.in_channels, model.out_channels) == (4, 3, 3)
    assert NARROW["dctlsa"]["nf"] < 55


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="multiple of num_head"):
        DCTLSA(nf=12, num_head=5)
    with pytest.raises(ArgumentError, match="nf"):
        DCTLSA(nf=0)
    with pytest.raises(ArgumentError, match="scale"):
        DCTLSA(scale=0)
