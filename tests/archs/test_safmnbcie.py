"""SAFMN-BCIE: sunny2109/SAFMN's ``SAFMN_BCIE`` layout against spandrel's SAFMNBCIE on identical
random weights (the BasicSR wrapper of the authors' file, several unshuffle factors, odd sizes
against the original on the reflect-padded image), detection, parameter counts, the registry
entry, compile and bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.safmnbcie import SAFMNBCIE, detect_safmnbcie
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_


def _ref(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.SAFMNBCIE")
    model: nn.Module = arch.SAFMNBCIE(**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _params(state: dict[str, torch.Tensor]) -> object:
    return {"params": state}  # BasicSR's wrapper, as in SAFMN_BCIE.pth


def _padded(factor: int) -> Any:
    # The original takes only multiples of its unshuffle factor: run it on the image
    # reflect-padded at the bottom and right, and crop.
    def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y: torch.Tensor = model(F.pad(x, (0, -w % factor, 0, -h % factor), mode="reflect"))
        return y[:, :, :h, :w]

    return run


@pytest.mark.parametrize(
    ("config", "size"),
    [
        ({"dim": 16, "n_blocks": 2, "num_layers": 2, "ffn_scale": 1.5}, (16, 16)),
        ({"dim": 8, "n_blocks": 1, "num_layers": 2, "upscaling_factor": 2}, (33, 37)),
        ({"dim": 12, "n_blocks": 2, "num_layers": 1, "upscaling_factor": 3}, (25, 27)),
    ],
)
def test_safmnbcie_matches_spandrel(
    tmp_path: Path, config: dict[str, Any], size: tuple[int, int]
) -> None:
    assert_loads_correctly(
        tmp_path,
        "safmn-bcie",
        1,
        _ref(**config),
        overrides=config,
        container=_params,
        run_reference=_padded(config.get("upscaling_factor", 2)),
        reload_reference=_spandrel_detected,
        seed=len(config),
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
def test_full_size_matches_spandrel(tmp_path: Path) -> None:
    defaults = dict(srzoo.model_info("safmn-bcie").defaults)
    assert_loads_correctly(
        tmp_path,
        "safmn-bcie",
        1,
        _ref(**defaults),
        container=_params,
        seed=3,
        size=(32, 34),
        atol=1e-4,
        relative=True,
    )


def test_parameter_count_matches_spandrel() -> None:
    defaults = dict(srzoo.model_info("safmn-bcie").defaults)
    with torch.device("meta"):
        ref = _ref(**defaults)
        ours = srzoo.create("safmn-bcie", 1)
    shapes = {k: v.shape for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes
    count = sum(t.numel() for t in ref.state_dict().values())
    assert srzoo.model_info("safmn-bcie").num_params(1) == count


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> list[Path]:
    pth, st = tmp_path / "m.pth", tmp_path / "m.safetensors"
    torch.save(_params(state), pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    return [pth, st]


@pytest.mark.parametrize(
    "config",
    [
        {"dim": 8, "n_blocks": 2, "num_layers": 1},
        {"dim": 12, "n_blocks": 1, "num_layers": 3, "ffn_scale": 1.3},
        {"dim": 8, "n_blocks": 1, "num_layers": 1, "upscaling_factor": 1},
        {"dim": 8, "n_blocks": 1, "num_layers": 1, "upscaling_factor": 4},
    ],
)
def test_detected_from_a_bare_state_dict(tmp_path: Path, config: dict[str, Any]) -> None:
    model = randomize_(SAFMNBCIE(**config), seed=len(config)).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = {**srzoo.model_info("safmn-bcie").defaults, **config}
    x = torch.rand(1, 3, 9, 14)
    with torch.no_grad():
        want = model(x)
    for path in _save(tmp_path, state):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale) == ("safmnbcie", "safmn-bcie", 1)
        for key, value in expected.items():
            if key == "ffn_scale":  # a ratio that truncates to the same width
                dim = found.model_args["dim"]
                assert int(found.model_args[key] * dim) == int(value * dim), key
            else:
                assert found.model_args[key] == value, key
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=0)


def test_spandrel_and_srzoo_detect_the_same_network() -> None:
    spandrel = pytest.importorskip("spandrel")
    state = dict(SAFMNBCIE(dim=8, n_blocks=2, num_layers=1).state_dict())
    found = srzoo.detect(state)
    theirs = spandrel.ModelLoader().load_from_state_dict(dict(state))
    assert theirs.architecture.id == "SAFMNBCIE" and found.family == "safmnbcie"
    assert theirs.scale == found.scale == 1


def test_safmn_files_are_not_taken_for_bcie() -> None:
    sr = srzoo.create("safmn", 2, **TINY["safmn"]).state_dict()
    assert detect_safmnbcie(Shapes({k: v.shape for k, v in sr.items()})) is None
    assert srzoo.detect(dict(sr)).family == "safmn"
    shapes = {k: tuple(v.shape) for k, v in SAFMNBCIE(dim=8, n_blocks=3).state_dict().items()}
    gapped = {k: v for k, v in shapes.items() if not k.startswith("feats.1.")}
    assert detect_safmnbcie(Shapes(gapped)) is None


def test_registry_entry() -> None:
    info = srzoo.model_info("safmn-bcie")
    assert info.family == "safmnbcie" and info.scales == (1,) and info.task == "real-world"
    assert info.paper.arxiv == "2302.13800" and info.code_license == "Apache-2.0"
    assert info.size_multiple == 2 and not info.weights  # the release asset has no digest
    # The configuration of the authors' inference script for SAFMN_BCIE.pth.
    assert dict(info.defaults) == {
        "dim": 128,
        "n_blocks": 8,
        "num_layers": 6,
        "ffn_scale": 2.0,
        "upscaling_factor": 2,
    }
    assert set(NARROW["safmn-bcie"]) == {"dim"}
    assert srzoo.create("safmn-bcie", 1, **TINY["safmn-bcie"]).receptive_field is None


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="scale must be 1"):
        SAFMNBCIE(scale=2)
    with pytest.raises(ArgumentError, match="multiple of 4"):
        SAFMNBCIE(dim=10)
    with pytest.raises(ArgumentError, match="positive"):
        SAFMNBCIE(num_layers=0)
    with pytest.raises(srzoo.UnsupportedScaleError):
        srzoo.create("safmn-bcie", 2)


def test_small_and_odd_inputs() -> None:
    # The original needs 16 pixels a side and even sides; here the coarse levels clamp.
    model = randomize_(SAFMNBCIE(**TINY["safmn-bcie"])).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 5, 3))
    assert y.shape == (1, 3, 5, 3) and torch.isfinite(y).all()


def test_compiles_without_graph_breaks_at_two_sizes() -> None:
    model = randomize_(SAFMNBCIE(**TINY["safmn-bcie"])).eval()
    assert_no_graph_breaks(model, ((16, 16), (13, 11)))


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = randomize_(SAFMNBCIE(dim=8, n_blocks=2, num_layers=2), seed=1).eval()
    x = torch.rand(1, 3, 20, 18)
    with torch.no_grad():
        full = model(x)
        half = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(
        half.float(), full, atol=5e-2 * max(1.0, full.abs().max().item()), rtol=0
    )
