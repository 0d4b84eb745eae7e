"""MoESR2: umzi2/MoESR's ``MoESR2`` layout against spandrel's MoESR on identical random weights
(every upsampler), detection from a bare state dict, parameter counts, the MetaUpsample record,
the registry entry, the receptive field, compile and bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.moesr import MoESR, detect_moesr
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_


def _ref(scale: int, **config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.MoESR")
    model: nn.Module = arch.MoESR(scale=scale, **config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


_SMALL = {"dim": 8, "n_blocks": 1, "n_block": 1, "expansion_factor": 2.0}


_SLOW = pytest.mark.slow  # further upsamplers against spandrel: with the slow tests


@pytest.mark.parametrize(
    ("scale", "config", "size"),
    [
        (4, {**_SMALL, "upsampler": "pixelshuffledirect"}, (13, 11)),
        pytest.param(
            2,
            {"dim": 8, "n_blocks": 1, "n_block": 2, "upsampler": "pixelshuffle"},
            (16, 16),
            marks=_SLOW,
        ),
        pytest.param(
            3,
            {**_SMALL, "upsampler": "nearest+conv", "expansion_msg": 1.25},
            (9, 14),
            marks=_SLOW,
        ),
        (
            2,
            {
                "dim": 12,
                "n_blocks": 1,
                "n_block": 1,
                "expansion_factor": 8 / 3,
                "upsampler": "dysample",
            },
            (13, 11),
        ),
        (1, {**_SMALL, "upsampler": "conv"}, (7, 6)),
    ],
)
def test_moesr_matches_spandrel(
    tmp_path: Path, scale: int, config: dict[str, Any], size: tuple[int, int]
) -> None:
    upsample_dim = {"upsample_dim": 12} if config["upsampler"] == "pixelshuffle" else {}
    config = {**config, **upsample_dim}
    assert_loads_correctly(
        tmp_path,
        "moesr",
        scale,
        _ref(scale, **config),
        overrides=config,
        reload_reference=_spandrel_detected,  # spandrel reads the MetaUpsample record
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
def test_full_size_matches_spandrel(tmp_path: Path) -> None:
    defaults = dict(srzoo.model_info("moesr").defaults)
    assert_loads_correctly(
        tmp_path, "moesr", 4, _ref(4, **defaults), seed=3, size=(12, 9), atol=1e-4, relative=True
    )


@pytest.mark.parametrize(
    ("scale", "upsampler"), [(4, "pixelshuffledirect"), (2, "pixelshuffle"), (3, "dysample")]
)
def test_parameter_counts_match_spandrel(scale: int, upsampler: str) -> None:
    defaults = {**srzoo.model_info("moesr").defaults, "upsampler": upsampler}
    with torch.device("meta"):
        ref = _ref(scale, **defaults)
        ours = srzoo.create("moesr", scale, upsampler=upsampler)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }
    if upsampler == "pixelshuffledirect":
        count = sum(t.numel() for t in ref.state_dict().values())
        assert srzoo.model_info("moesr").num_params(scale) == count


@pytest.mark.parametrize(
    ("scale", "upsampler"), [(4, "pixelshuffle"), (3, "nearest+conv"), (1, "dysample")]
)
def test_meta_upsample_record_equals_upstream(scale: int, upsampler: str) -> None:
    config = {"dim": 8, "n_blocks": 1, "n_block": 1, "upsampler": upsampler, "upsample_dim": 12}
    ours = MoESR(scale=scale, **config).state_dict()["upscale.MetaUpsample"]
    theirs = _ref(scale, **config).state_dict()["upscale.MetaUpsample"]
    assert ours.dtype == torch.uint8 and torch.equal(ours, theirs)


def test_files_without_the_record_load(tmp_path: Path) -> None:
    model = randomize_(MoESR(scale=2, **TINY["moesr"])).eval()
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("MetaUpsample")}
    path = tmp_path / "stripped.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = srzoo.load("moesr", scale=2, weights=path, **TINY["moesr"])
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-6, rtol=0)


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> list[Path]:
    pth, st = tmp_path / "m.pth", tmp_path / "m.safetensors"
    torch.save(state, pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    return [pth, st]


_DETECTED = [
    (4, {"dim": 8, "n_blocks": 2, "n_block": 1, "upsampler": "pixelshuffledirect"}),
    (3, {"dim": 8, "n_blocks": 1, "n_block": 2, "upsampler": "pixelshuffle", "upsample_dim": 12}),
    (4, {"dim": 12, "n_blocks": 1, "n_block": 1, "upsampler": "nearest+conv"}),
    (2, {"dim": 8, "n_blocks": 1, "n_block": 0, "upsampler": "dysample", "out_ch": 1}),
    (1, {"dim": 12, "n_blocks": 1, "n_block": 1, "upsampler": "conv", "expansion_factor": 1.3}),
]


@pytest.mark.parametrize(("scale", "config"), _DETECTED)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, scale: int, config: dict[str, Any]
) -> None:
    model = randomize_(MoESR(scale=scale, **config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = {**srzoo.model_info("moesr").defaults, **config}
    x = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        want = model(x)
    for path in _save(tmp_path, state):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale) == ("moesr", "moesr", scale)
        for key, value in expected.items():
            if key.startswith("expansion"):  # a ratio that truncates to the same width
                dim = found.model_args["dim"]
                assert int(found.model_args[key] * dim) == int(value * dim), key
            else:
                assert found.model_args[key] == value, key
        loaded = srzoo.load_file(path)
        assert loaded.out_channels == model.out_channels
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=0)


def test_one_stage_nearest_upsampler_serves_x2_and_x3(tmp_path: Path) -> None:
    # Its tensors are the same at x2 and x3: x2 is assumed, x3 asked for.
    model = randomize_(MoESR(scale=3, **{**TINY["moesr"], "upsampler": "nearest+conv"})).eval()
    path = _save(tmp_path, dict(model.state_dict()))[1]
    found = srzoo.detect(path)
    assert (found.scale, found.scales) == (2, (2, 3))
    loaded = srzoo.load_file(path, scale=3)
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=1e-5, rtol=0)


def test_spandrel_and_srzoo_detect_the_same_network() -> None:
    spandrel = pytest.importorskip("spandrel")
    for scale, config in _DETECTED[:3]:
        state = dict(MoESR(scale=scale, **config).state_dict())
        found = srzoo.detect(state)
        theirs = spandrel.ModelLoader().load_from_state_dict(dict(state))
        assert theirs.architecture.id == "MoESR" and found.family == "moesr"
        assert theirs.scale == found.scale


def test_other_layouts_are_not_detected() -> None:
    state = MoESR(scale=2, dim=8, n_blocks=2, n_block=1).state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert detect_moesr(Shapes(shapes)) is not None
    # The first MoESR (an ESA block in place of the gate) has no "msg" tensors.
    no_gate = {k: v for k, v in shapes.items() if ".msg." not in k}
    assert detect_moesr(Shapes(no_gate)) is None
    gapped = {k: v for k, v in shapes.items() if not k.startswith("blocks.0.msg.")}
    assert detect_moesr(Shapes(gapped)) is None
    headless = {k: v for k, v in shapes.items() if not k.startswith("upscale.")}
    assert detect_moesr(Shapes(headless)) is None


def test_registry_entry() -> None:
    info = srzoo.model_info("moesr")
    assert info.family == "moesr" and info.colour == "rgb" and info.task == "real-world"
    assert info.code_license == "MIT" and info.paper.arxiv is None and "MoESR2" in info.paper.title
    assert info.size_multiple == 2 and info.scales == (1, 2, 3, 4)
    assert not info.weights  # no digest of the one pretrained file is published
    assert info.defaults["n_blocks"] == 9 and info.defaults["n_block"] == 4
    assert set(NARROW["moesr"]) <= {"dim", "upsample_dim"}


def test_receptive_field_follows_the_upsampler() -> None:
    # Measured by autograd at the tiny depth in tests/archs/test_registry.py.
    with torch.device("meta"):
        assert MoESR(upsampler="dysample").receptive_field is None
        x1 = MoESR(scale=1).receptive_field
        assert MoESR(upsampler="dysample", scale=1).receptive_field == x1
        assert isinstance(x1, int) and x1 > 1 + 9 * (4 * 7 + 2 * (3 * 7 + 1))
        assert MoESR(scale=4, upsampler="pixelshuffle").receptive_field == x1 + 2
        assert MoESR(scale=4, upsampler="nearest+conv").receptive_field == x1 + 1


@pytest.mark.parametrize(
    ("scale", "upsampler"), [(4, "pixelshuffle"), pytest.param(3, "nearest+conv", marks=_SLOW)]
)
def test_other_heads_fields_are_measured(scale: int, upsampler: str) -> None:
    # The registry-wide measurement runs the default head; these add their own layers.
    config = {"dim": 8, "n_blocks": 1, "n_block": 0, "upsample_dim": 8, "upsampler": upsampler}
    model = randomize_(MoESR(scale=scale, **config)).double().eval()
    radius = model.receptive_field
    assert isinstance(radius, int)
    side = 2 * radius + 9
    c = side // 2
    x = torch.rand(1, 3, side, side, dtype=torch.float64).requires_grad_()
    model(x)[0, :, scale * c : scale * (c + 1), scale * c : scale * (c + 1)].sum().backward()
    assert x.grad is not None
    rows, cols = (x.grad[0].abs().sum(0) != 0).nonzero(as_tuple=True)
    assert int(torch.maximum((rows - c).abs(), (cols - c).abs()).max()) == radius


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="upsampler"):
        MoESR(upsampler="bicubic")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="multiple of 4"):
        MoESR(dim=10)
    with pytest.raises(ArgumentError, match="power of two"):
        MoESR(scale=5, upsampler="pixelshuffle")
    with pytest.raises(ArgumentError, match="expansion ratio"):
        MoESR(dim=8, expansion_factor=0.5)
    with pytest.raises(ArgumentError, match="uint8"):
        MoESR(dim=256)
    assert MoESR(scale=4, upsampler="conv", **TINY["moesr"]).scale == 1  # as upstream


def test_one_pixel_sides_pad() -> None:
    # Upstream's reflection needs two pixels a side; one is enough here.
    model = randomize_(MoESR(scale=2, **TINY["moesr"])).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 1, 5))
    assert y.shape == (1, 3, 2, 10) and torch.isfinite(y).all()


def test_dysample_compiles_without_graph_breaks_at_two_sizes() -> None:
    # The other upsamplers' graphs are captured by the registry-wide compile test.
    model = randomize_(MoESR(scale=2, **{**TINY["moesr"], "upsampler": "dysample"})).eval()
    assert_no_graph_breaks(model, ((8, 8), (7, 5)))


@pytest.mark.parametrize("upsampler", ["pixelshuffle", "dysample"])
def test_bfloat16_forward_is_finite_and_close(upsampler: str) -> None:
    model = randomize_(MoESR(scale=4, **{**TINY["moesr"], "upsampler": upsampler}), seed=1)
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        full = model.eval()(x)
        half = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(
        half.float(), full, atol=5e-2 * max(1.0, full.abs().max().item()), rtol=0
    )
