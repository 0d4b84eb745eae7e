"""DITN: the official layout against spandrel on identical random weights (sizes on and off the
padding grid), detection from bare state dicts, parameter counts of the official configuration,
torch.compile capture and bfloat16.
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
from srzoo.archs.ditn import DITN, detect_ditn
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_

SIZES = [(13, 11), (16, 16)]  # off and on the grid of 8

# Two UFONEs of two ITLs and one SAL without biases; one UFONE of one ITL and two SALs with
# biases and a fractional feed-forward expansion.
CONFIGS: list[dict[str, Any]] = [
    {"dim": 12, "itl_blocks": 2, "sal_blocks": 1, "ufone_blocks": 2, "bias": False},
    {
        "dim": 8,
        "itl_blocks": 1,
        "sal_blocks": 2,
        "ufone_blocks": 1,
        "ffn_expansion_factor": 1.5,
        "bias": True,
    },
]

_UPSTREAM_NAMES = {"itl_blocks": "ITL_blocks", "sal_blocks": "SAL_blocks"}


def _ref(scale: int, **config: Any) -> nn.Module:
    """spandrel's DITN (upstream's ``DITN_Real``) in srzoo's argument names."""
    arch = pytest.importorskip("spandrel.architectures.DITN")
    names = {**_UPSTREAM_NAMES, "ufone_blocks": "UFONE_blocks"}
    kwargs = {names.get(k, k): v for k, v in config.items()}
    model: nn.Module = arch.DITN(upscale=scale, **kwargs)
    return model


def _params(state: dict[str, torch.Tensor]) -> object:
    return {"params": state}


def _spandrel_detected(path: Path) -> nn.Module:
    spandrel = pytest.importorskip("spandrel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model: nn.Module = spandrel.ModelLoader().load_from_file(path).model
    return model


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("index", "scale"), [(0, 2), (1, 3), (0, 4)])
def test_official_layout_matches_spandrel(
    tmp_path: Path, index: int, scale: int, size: tuple[int, int]
) -> None:
    # Saved bare (the authors' test.py reads bare files and ``params``), also read back by
    # spandrel's own detection.
    config = CONFIGS[index]
    assert_loads_correctly(
        tmp_path,
        "ditn",
        scale,
        _ref(scale, **config),
        overrides=config,
        container=_params if scale == 3 else None,
        reload_reference=_spandrel_detected,
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


GRID = [
    (2, {"dim": 8, "itl_blocks": 1, "sal_blocks": 1, "ufone_blocks": 1}),
    (3, {"dim": 12, "itl_blocks": 2, "sal_blocks": 0, "ufone_blocks": 2, "bias": True}),
    (4, {"dim": 10, "itl_blocks": 1, "sal_blocks": 2, "ffn_expansion_factor": 2.66}),
    (4, {"dim": 8, "itl_blocks": 1, "sal_blocks": 1, "inp_channels": 1}),
]


@pytest.mark.parametrize(("scale", "config"), GRID)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, scale: int, config: dict[str, Any]
) -> None:
    model = randomize_(DITN(scale=scale, **config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pth, st = tmp_path / "ditn.pth", tmp_path / "ditn.safetensors"
    torch.save(state, pth)
    save_file(state, str(st))
    expected = {"inp_channels": 3, **srzoo.model_info("ditn").defaults, **config}
    x = torch.rand(1, expected["inp_channels"], 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
    for path in (pth, st):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "ditn",
            "ditn",
            scale,
            "official",
        )
        args = dict(found.model_args)
        # The hidden width is what the file fixes; the factor may be any that gives it.
        factor = args.pop("ffn_expansion_factor")
        assert int(config["dim"] * factor) == int(config["dim"] * expected["ffn_expansion_factor"])
        assert args == {k: v for k, v in expected.items() if k != "ffn_expansion_factor"}
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=1e-5)


def test_detection_needs_the_whole_signature() -> None:
    shapes = {k: tuple(v.shape) for k, v in DITN(scale=2, dim=8, itl_blocks=1).state_dict().items()}
    assert detect_ditn(Shapes(shapes)) is not None
    for key in ("upsample.0.weight", "UFONE.0.ITLs.0.attn.temperature", "sft.weight"):
        assert detect_ditn(Shapes({k: s for k, s in shapes.items() if k != key})) is None


# spandrel's parameters at the authors' configuration.
COUNTS = {2: 424_636, 3: 432_751, 4: 444_112}


@pytest.mark.parametrize("scale", sorted(COUNTS))
def test_parameter_counts_equal_spandrels(scale: int) -> None:
    info = srzoo.model_info("ditn")
    with torch.device("meta"):
        ref = _ref(scale, **info.defaults)
        ours = info.build(scale)
    assert set(ours.state_dict()) == set(ref.state_dict())
    assert sum(p.numel() for p in ref.parameters()) == COUNTS[scale]
    assert info.num_params(scale) == COUNTS[scale]


def test_registry_entry() -> None:
    info = srzoo.model_info("ditn")
    assert info.family == "ditn" and info.task == "psnr" and info.colour == "rgb"
    assert info.paper.arxiv == "2308.02794" and info.code_license == "Apache-2.0"
    assert info.scales == (2, 3, 4) and info.scale == 4 and info.size_multiple == 8
    assert info.weights == ()  # Google Drive only


def _tiny(scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create("ditn", scale, **TINY["ditn"]), seed=1).eval()


def test_no_graph_breaks_at_two_sizes() -> None:
    model = _tiny()
    assert_no_graph_breaks(model, ((16, 16), (13, 21)))


def test_bfloat16_forward() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, atol=5e-2, rtol=0)


def test_any_size_and_patch_pads_and_crops() -> None:
    # Upstream's reflect padding fails where the pad exceeds the side; srzoo's repeats it.
    for patch in (8, 16):
        model = randomize_(DITN(scale=2, dim=8, itl_blocks=1, sal_blocks=1, patch_size=patch))
        for size in ((1, 1), (3, 9), (17, 3)):
            with torch.no_grad():
                assert model.eval()(torch.rand(1, 3, *size)).shape == (
                    1,
                    3,
                    2 * size[0],
                    2 * size[1],
                )


def test_contract_attributes_and_tiny_entries() -> None:
    with torch.device("meta"):
        model = srzoo.model_info("ditn").build(4)
    assert model.receptive_field is None and model.pad_multiple == 8
    assert (model.scale, model.in_channels, model.out_channels) == (4, 3, 3)
    assert NARROW["ditn"]["dim"] < 60 and "itl_blocks" not in NARROW["ditn"]


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="dim"):
        DITN(dim=0)
    with pytest.raises(ArgumentError, match="ufone_blocks"):
        DITN(ufone_blocks=0)
    with pytest.raises(ArgumentError, match="hidden"):
        DITN(dim=4, ffn_expansion_factor=0.1)
