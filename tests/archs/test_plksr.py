"""PLKSR and RealPLKSR: the official layouts against spandrel on identical random weights (every
mixer, attention on and off, RealPLKSR's group norm, layer norm and DySample), detection from a
bare state dict, parameter counts, registry entries, compile and bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.plksr import PLKSR, RealPLKSR, detect_plksr
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_


def _ref(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.PLKSR")
    model: nn.Module = arch.PLKSR(**config)
    return model


def _ref_real(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.PLKSR")
    model: nn.Module = arch.RealPLKSR(**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _params(state: dict[str, torch.Tensor]) -> object:
    return {"params": state}  # BasicSR's wrapper, as in the authors' files


@pytest.mark.parametrize(
    ("name", "scale", "config", "size"),
    [
        (
            "plksr",
            4,
            {"dim": 8, "n_blocks": 2, "kernel_size": 7, "ccm_type": "DCCM", "use_ea": True},
            (13, 11),
        ),
        (
            "plksr",
            3,
            {"dim": 12, "n_blocks": 1, "kernel_size": 5, "ccm_type": "CCM", "use_ea": True},
            (16, 16),
        ),
        (
            "plksr-tiny",
            2,
            {"dim": 8, "n_blocks": 2, "kernel_size": 5, "ccm_type": "ICCM", "use_ea": False},
            (9, 14),
        ),
    ],
)
def test_plksr_matches_spandrel(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any], size: tuple[int, int]
) -> None:
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        _ref(upscaling_factor=scale, **config),
        overrides=config,
        container=_params,
        reload_reference=_spandrel_detected,
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize(
    ("scale", "config", "size"),
    [
        (4, {"dim": 8, "n_blocks": 2, "kernel_size": 7}, (13, 11)),
        (2, {"dim": 8, "n_blocks": 1, "kernel_size": 5, "layer_norm": True}, (16, 16)),
        (4, {"dim": 8, "n_blocks": 2, "kernel_size": 5, "dysample": True}, (13, 11)),
        (3, {"dim": 8, "n_blocks": 1, "kernel_size": 3, "dysample": True, "use_ea": False}, (8, 9)),
        (1, {"dim": 8, "n_blocks": 1, "kernel_size": 3, "dysample": True}, (7, 6)),
    ],
)
def test_realplksr_matches_spandrel(
    tmp_path: Path, scale: int, config: dict[str, Any], size: tuple[int, int]
) -> None:
    assert_loads_correctly(
        tmp_path,
        "realplksr",
        scale,
        _ref_real(upscaling_factor=scale, **config),
        overrides=config,
        container=_params,
        reload_reference=_spandrel_detected,
        seed=10 + scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["plksr", "plksr-tiny", "realplksr"])
def test_full_size_matches_spandrel(tmp_path: Path, name: str) -> None:
    defaults = dict(srzoo.model_info(name).defaults)
    ref = (
        _ref_real(upscaling_factor=4, **defaults)
        if name == "realplksr"
        else _ref(upscaling_factor=4, **defaults)
    )
    assert_loads_correctly(
        tmp_path, name, 4, ref, container=_params, seed=3, size=(12, 9), atol=1e-4, relative=True
    )


@pytest.mark.parametrize(
    ("name", "scale"),
    [(n, s) for n in ("plksr", "plksr-tiny", "realplksr") for s in (2, 3, 4)],
)
def test_parameter_counts_match_spandrel(name: str, scale: int) -> None:
    defaults = dict(srzoo.model_info(name).defaults)
    with torch.device("meta"):
        if name == "realplksr":
            ref = _ref_real(upscaling_factor=scale, **defaults)
        else:
            ref = _ref(upscaling_factor=scale, **defaults)
    count = sum(t.numel() for t in ref.state_dict().values())
    assert srzoo.model_info(name).num_params(scale) == count


def test_dysample_parameter_count_matches_spandrel() -> None:
    with torch.device("meta"):
        ref = _ref_real(upscaling_factor=4, dysample=True, layer_norm=True)
        ours = RealPLKSR(scale=4, dysample=True, layer_norm=True)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }


def test_dysample_initial_positions_equal_spandrel() -> None:
    ref = _ref_real(upscaling_factor=3, dim=8, n_blocks=1, dysample=True)
    ours = RealPLKSR(scale=3, dim=8, n_blocks=1, dysample=True)
    torch.testing.assert_close(
        ours.state_dict()["to_img.init_pos"], ref.state_dict()["to_img.init_pos"]
    )


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> list[Path]:
    pth, st = tmp_path / "m.pth", tmp_path / "m.safetensors"
    torch.save(_params(state), pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    return [pth, st]


@pytest.mark.parametrize(
    ("cls", "scale", "config", "name"),
    [
        (PLKSR, 4, {"dim": 8, "n_blocks": 2, "kernel_size": 7, "ccm_type": "CCM"}, "plksr"),
        (PLKSR, 2, {"dim": 12, "n_blocks": 1, "split_ratio": 0.5, "ccm_type": "ICCM"}, "plksr"),
        (
            PLKSR,
            3,
            {"dim": 4, "n_blocks": 12, "kernel_size": 13, "use_ea": False},
            "plksr-tiny",
        ),
        (PLKSR, 4, {"dim": 10, "n_blocks": 1, "kernel_size": 3, "split_ratio": 0.3}, "plksr"),
        (RealPLKSR, 4, {"dim": 8, "n_blocks": 2, "kernel_size": 5}, "realplksr"),
        (RealPLKSR, 2, {"dim": 8, "n_blocks": 1, "layer_norm": True}, "realplksr"),
        (RealPLKSR, 3, {"dim": 8, "n_blocks": 1, "dysample": True, "use_ea": False}, "realplksr"),
        (RealPLKSR, 1, {"dim": 8, "n_blocks": 1, "dysample": True}, "realplksr"),
    ],
)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, cls: type[nn.Module], scale: int, config: dict[str, Any], name: str
) -> None:
    model = randomize_(cls(scale=scale, **config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    spec = srzoo.model_info(name)
    expected = {**spec.defaults, **config}
    x = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        want = model(x)
    for path in _save(tmp_path, state):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale) == ("plksr", name, scale)
        for key, value in expected.items():
            assert found.model_args[key] == value, key
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=0)


def test_spandrel_and_srzoo_detect_the_same_network() -> None:
    spandrel = pytest.importorskip("spandrel")
    for model in (
        PLKSR(scale=3, dim=8, n_blocks=2, kernel_size=5, ccm_type="ICCM"),
        RealPLKSR(scale=2, dim=8, n_blocks=1, dysample=True),
    ):
        state = dict(model.state_dict())
        found = srzoo.detect(state)
        theirs = spandrel.ModelLoader().load_from_state_dict(dict(state))
        assert theirs.architecture.id == "PLKSR" and found.family == "plksr"
        assert theirs.scale == found.scale


def test_ablation_kernels_are_not_detected() -> None:
    shapes = {k: tuple(v.shape) for k, v in PLKSR(scale=2, n_blocks=1, dim=8).state_dict().items()}
    assert detect_plksr(Shapes(shapes)) is not None
    shapes["feats.1.lk.convs.0.weight"] = shapes.pop("feats.1.lk.conv.weight")
    assert detect_plksr(Shapes(shapes)) is None


def test_registry_entries() -> None:
    for name in ("plksr", "plksr-tiny", "realplksr"):
        info = srzoo.model_info(name)
        assert info.family == "plksr" and info.colour == "rgb"
        assert info.paper.arxiv == "2404.11848" and info.code_license == "MIT"
        assert info.size_multiple == 1
        assert not info.weights  # the official files are on Google Drive only
    assert srzoo.model_info("plksr").task == "psnr"
    assert srzoo.model_info("realplksr").task == "real-world"


def test_receptive_fields() -> None:
    with torch.device("meta"):
        assert PLKSR().receptive_field == 1 + 28 * (2 + 8 + 1) + 1
        assert srzoo.create("plksr-tiny", 4).receptive_field == 1 + 12 * (2 + 6) + 1
        # Group norm and DySample see the whole image; the layer-norm variant is local.
        assert RealPLKSR().receptive_field is None
        assert RealPLKSR(layer_norm=True, dysample=True).receptive_field is None
        assert RealPLKSR(layer_norm=True).receptive_field == PLKSR().receptive_field
    for name in ("plksr", "plksr-tiny", "realplksr"):
        assert set(NARROW[name]) == {"dim"}


def test_layer_norm_variant_is_local_and_measured() -> None:
    model = randomize_(RealPLKSR(scale=2, dim=4, n_blocks=1, kernel_size=3, layer_norm=True))
    model = model.double().eval()
    radius = model.receptive_field
    assert radius == 1 + (2 + 1 + 1) + 1
    side = 2 * radius + 7
    c = side // 2
    x = torch.rand(1, 3, side, side, dtype=torch.float64).requires_grad_()
    model(x)[0, :, 2 * c : 2 * c + 2, 2 * c : 2 * c + 2].sum().backward()
    assert x.grad is not None
    rows, cols = (x.grad[0].abs().sum(0) != 0).nonzero(as_tuple=True)
    assert int(torch.maximum((rows - c).abs(), (cols - c).abs()).max()) == radius


def test_inference_leaves_the_input_and_matches_training_arithmetic() -> None:
    # The no-grad path writes the large kernel's output in place; the autograd path concatenates.
    model = randomize_(PLKSR(scale=2, **TINY["plksr"])).eval()
    x = torch.rand(1, 3, 9, 8)
    before = x.clone()
    with torch.no_grad():
        fast = model(x)
    slow = model(x)
    assert torch.equal(x, before)
    torch.testing.assert_close(fast, slow.detach(), atol=1e-6, rtol=0)


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="ccm_type"):
        PLKSR(ccm_type="XCCM")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="split_ratio"):
        PLKSR(dim=4, split_ratio=0.1)
    with pytest.raises(ArgumentError, match="kernel_size"):
        PLKSR(kernel_size=4)
    with pytest.raises(ArgumentError, match="norm_groups"):
        RealPLKSR(dim=6, norm_groups=4)
    with pytest.raises(ArgumentError, match="scale"):
        RealPLKSR(scale=0)


@pytest.mark.parametrize(
    ("cls", "config"),
    [
        (PLKSR, {"dim": 4, "n_blocks": 1, "kernel_size": 3}),
        (RealPLKSR, {"dim": 4, "n_blocks": 1, "kernel_size": 3, "dysample": True}),
    ],
)
def test_compiles_without_graph_breaks_at_two_sizes(
    cls: type[nn.Module], config: dict[str, Any]
) -> None:
    model = randomize_(cls(scale=2, **config)).eval()
    assert_no_graph_breaks(model, ((8, 8), (7, 5)), one_graph=False)


@pytest.mark.parametrize("cls", [PLKSR, RealPLKSR])
def test_bfloat16_forward_is_finite_and_close(cls: type[nn.Module]) -> None:
    model = randomize_(cls(scale=4, **TINY["plksr"]), seed=1).eval()
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        full = model(x)
        half = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(
        half.float(), full, atol=5e-2 * max(1.0, full.abs().max().item()), rtol=0
    )
