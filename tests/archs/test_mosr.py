"""MoSR: umzi2/MoSR's layout against spandrel on identical random weights (each upsampler,
several scales), detection from a bare state dict, parameter counts, registry entries, the
receptive field, compile and bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.mosr import MoSR, detect_mosr
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_


def _ref(scale: int, **config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.MoSR")
    model: nn.Module = arch.MoSR(upscale=scale, **config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _params(state: dict[str, torch.Tensor]) -> object:
    return {"params": state}  # neosr's wrapper, as in the files it writes


@pytest.mark.parametrize(
    ("name", "scale", "config", "size"),
    [
        ("mosr", 4, {"n_block": 2, "dim": 16, "kernel_size": 5}, (13, 11)),
        ("mosr", 2, {"n_block": 1, "dim": 12, "upsampler": "gps", "conv_ratio": 0.5}, (16, 16)),
        ("mosr", 3, {"n_block": 2, "dim": 8, "upsampler": "dys", "expansion_ratio": 2.0}, (9, 14)),
        ("mosr-t", 4, {"n_block": 2, "dim": 8, "kernel_size": 3}, (16, 16)),
        ("mosr-t", 1, {"n_block": 1, "dim": 12, "upsampler": "dys"}, (13, 11)),
    ],
)
def test_mosr_matches_spandrel(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any], size: tuple[int, int]
) -> None:
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        _ref(scale, **config),
        overrides=config,
        container=_params,
        reload_reference=_spandrel_detected,
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mosr", "mosr-t"])
def test_full_size_matches_spandrel(tmp_path: Path, name: str) -> None:
    defaults = dict(srzoo.model_info(name).defaults)
    assert_loads_correctly(
        tmp_path, name, 4, _ref(4, **defaults), seed=3, size=(12, 9), atol=1e-4, relative=True
    )


@pytest.mark.parametrize(
    ("name", "scale", "upsampler"),
    [("mosr", 4, "ps"), ("mosr-t", 2, "ps"), ("mosr-t", 3, "dys")],
)
def test_parameter_counts_match_spandrel(name: str, scale: int, upsampler: str) -> None:
    defaults = {**srzoo.model_info(name).defaults, "upsampler": upsampler}
    ref = _ref(scale, **defaults)  # spandrel's constructor calls .item(): not on meta
    with torch.device("meta"):
        ours = srzoo.create(name, scale, upsampler=upsampler)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }
    if upsampler == "ps":
        count = sum(t.numel() for t in ref.state_dict().values())
        assert srzoo.model_info(name).num_params(scale) == count


def test_dysample_initial_positions_equal_spandrel() -> None:
    ref = _ref(3, n_block=1, dim=8, upsampler="dys")
    ours = MoSR(scale=3, n_block=1, dim=8, upsampler="dys")
    torch.testing.assert_close(
        ours.state_dict()["upsampler.init_pos"], ref.state_dict()["upsampler.init_pos"]
    )


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> list[Path]:
    pth, st = tmp_path / "m.pth", tmp_path / "m.safetensors"
    torch.save(_params(state), pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    return [pth, st]


@pytest.mark.parametrize(
    ("scale", "config", "name"),
    [
        (4, {"n_block": 2, "dim": 16, "kernel_size": 5}, "mosr"),
        (2, {"n_block": 3, "dim": 12, "upsampler": "gps", "conv_ratio": 0.5}, "mosr"),
        (3, {"n_block": 1, "dim": 8, "upsampler": "dys", "expansion_ratio": 2.0}, "mosr"),
        (1, {"n_block": 1, "dim": 8, "upsampler": "dys", "out_ch": 1}, "mosr"),
        (2, {"n_block": 2, "dim": 10, "expansion_ratio": 1.3, "conv_ratio": 0.7}, "mosr"),
    ],
)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, scale: int, config: dict[str, Any], name: str
) -> None:
    model = randomize_(MoSR(scale=scale, **config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = {**srzoo.model_info(name).defaults, **config}
    x = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        want = model(x)
    for path in _save(tmp_path, state):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale) == ("mosr", name, scale)
        for key, value in expected.items():
            if key.endswith("ratio"):  # a ratio that truncates to the same width
                assert int(found.model_args[key] * found.model_args["dim"]) == int(
                    value * found.model_args["dim"]
                ), key
            else:
                assert found.model_args[key] == value, key
        loaded = srzoo.load_file(path)
        assert loaded.out_channels == model.out_channels
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("name", "upsampler"), [("mosr-t", "ps"), ("mosr", "gps"), ("mosr", "dys")]
)
def test_variants_are_named_from_their_shapes(name: str, upsampler: str) -> None:
    with torch.device("meta"):
        model = srzoo.create(name, 2, upsampler=upsampler)
    found = detect_mosr(Shapes({k: v.shape for k, v in model.state_dict().items()}))
    assert found is not None and (found.name, found.scale) == (name, 2)
    assert {**found.model_args, "drop_path": 0.0} == {
        **srzoo.model_info(name).defaults,
        "upsampler": upsampler,
        "in_ch": 3,
        "out_ch": 3,
        "drop_path": 0.0,
    }


def test_spandrel_and_srzoo_detect_the_same_network() -> None:
    spandrel = pytest.importorskip("spandrel")
    for model in (
        MoSR(scale=3, n_block=2, dim=8, kernel_size=5),
        MoSR(scale=2, n_block=1, dim=8, upsampler="gps"),
        MoSR(scale=4, n_block=1, dim=8, upsampler="dys"),
    ):
        state = dict(model.state_dict())
        found = srzoo.detect(state)
        theirs = spandrel.ModelLoader().load_from_state_dict(dict(state))
        assert theirs.architecture.id == "MoSR" and found.family == "mosr"
        assert theirs.scale == found.scale


def test_incomplete_files_are_not_detected() -> None:
    state = MoSR(scale=2, n_block=3, dim=8).state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert detect_mosr(Shapes(shapes)) is not None
    gapped = {k: v for k, v in shapes.items() if not k.startswith("gblocks.2.")}
    assert detect_mosr(Shapes(gapped)) is None
    headless = {k: v for k, v in shapes.items() if not k.startswith("upsampler.")}
    assert detect_mosr(Shapes(headless)) is None


def test_registry_entries() -> None:
    for name in ("mosr", "mosr-t"):
        info = srzoo.model_info(name)
        assert info.family == "mosr" and info.colour == "rgb" and info.task == "real-world"
        assert info.code_license == "MIT" and info.paper.arxiv is None
        assert info.size_multiple == 1 and info.scales == (1, 2, 3, 4)
        assert not info.weights  # the authors publish none
        assert set(NARROW[name]) == {"dim"}
    assert srzoo.model_info("mosr").defaults["n_block"] == 24
    assert srzoo.model_info("mosr-t").defaults["dim"] == 48


def test_receptive_field_is_measured() -> None:
    with torch.device("meta"):
        assert MoSR().receptive_field == 1 + 24 * 5 + 3
        assert srzoo.create("mosr-t", 4).receptive_field == 1 + 5 * 5 + 3
        assert MoSR(upsampler="gps").receptive_field == MoSR().receptive_field
        assert MoSR(upsampler="dys").receptive_field is None  # learned, unbounded offsets
    model = randomize_(MoSR(scale=2, n_block=1, dim=4, kernel_size=3)).double().eval()
    radius = model.receptive_field
    assert radius == 1 + 3 + 3
    side = 2 * radius + 7
    c = side // 2
    x = torch.rand(1, 3, side, side, dtype=torch.float64).requires_grad_()
    model(x)[0, :, 2 * c : 2 * c + 2, 2 * c : 2 * c + 2].sum().backward()
    assert x.grad is not None
    rows, cols = (x.grad[0].abs().sum(0) != 0).nonzero(as_tuple=True)
    assert int(torch.maximum((rows - c).abs(), (cols - c).abs()).max()) == radius


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="upsampler"):
        MoSR(upsampler="nearest")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="multiple of 4"):
        MoSR(dim=10, n_block=1, upsampler="dys")
    with pytest.raises(ArgumentError, match="conv_ratio"):
        MoSR(dim=8, n_block=1, conv_ratio=2.0)
    with pytest.raises(ArgumentError, match="kernel_size"):
        MoSR(kernel_size=4)
    with pytest.raises(ArgumentError, match="scale"):
        MoSR(scale=0)


def test_single_channel_network() -> None:
    model = randomize_(MoSR(scale=2, in_ch=1, n_block=1, dim=8)).eval()
    assert (model.in_channels, model.out_channels) == (1, 1)
    with torch.no_grad():
        assert model(torch.rand(1, 1, 5, 4)).shape == (1, 1, 10, 8)


def test_dysample_compiles_without_graph_breaks_at_two_sizes() -> None:
    # The sub-pixel heads are captured by the registry-wide compile test.
    model = randomize_(MoSR(scale=2, n_block=1, dim=8, kernel_size=3, upsampler="dys"))
    assert_no_graph_breaks(model.eval(), ((8, 8), (7, 5)))


@pytest.mark.parametrize("upsampler", ["gps", "dys"])
def test_bfloat16_forward_is_finite_and_close(upsampler: str) -> None:
    model = randomize_(MoSR(scale=4, upsampler=upsampler, **TINY["mosr"]), seed=1).eval()
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        full = model(x)
        half = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(
        half.float(), full, atol=5e-2 * max(1.0, full.abs().max().item()), rtol=0
    )
