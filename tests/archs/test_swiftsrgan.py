"""Swift-SRGAN: the official ``{"model": ...}`` layout against spandrel on identical random
weights, detection from a bare state dict, parameter counts, registry entries, compile and bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.swiftsrgan import SwiftSRGAN, detect_swiftsrgan
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_


def _ref(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.SwiftSRGAN")
    model: nn.Module = arch.SwiftSRGAN(**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _training_checkpoint(state: dict[str, torch.Tensor]) -> object:
    # What the authors' train.py writes to netG_<scale>x_epoch<N>.pth.tar.
    return {"model": state}


@pytest.mark.parametrize(
    ("scale", "channels", "blocks", "size"),
    [(4, 8, 2, (13, 11)), (2, 16, 1, (16, 16)), (8, 4, 3, (5, 7))],
)
def test_official_layout_matches_spandrel(
    tmp_path: Path, scale: int, channels: int, blocks: int, size: tuple[int, int]
) -> None:
    assert_loads_correctly(
        tmp_path,
        "swiftsrgan",
        scale,
        _ref(num_channels=channels, num_blocks=blocks, upscale_factor=scale),
        overrides={"num_channels": channels, "num_blocks": blocks},
        container=_training_checkpoint,
        reload_reference=_spandrel_detected,
        seed=scale + blocks,
        size=size,
        atol=1e-4,
        relative=True,
    )


def test_full_size_matches_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "swiftsrgan",
        4,
        _ref(upscale_factor=4),
        container=_training_checkpoint,
        safetensors=False,
        seed=4,
        size=(9, 8),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_parameter_counts_match_spandrel(scale: int) -> None:
    with torch.device("meta"):
        ref = _ref(upscale_factor=scale)
    count = sum(t.numel() for t in ref.state_dict().values())
    assert srzoo.model_info("swiftsrgan").num_params(scale) == count
    # Keys and shapes are upstream's, unused PReLU slopes included.
    with torch.device("meta"):
        ours = SwiftSRGAN(scale=scale)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }


def test_unused_slopes_are_stored_but_never_trained() -> None:
    model = SwiftSRGAN(scale=2, num_channels=4, num_blocks=1)
    assert "residual.0.block2.act.weight" in model.state_dict()
    assert "convblock.act.weight" in model.state_dict()
    trainable = {name for name, _ in model.named_parameters()}
    assert "residual.0.block2.act.weight" not in trainable
    assert "residual.0.block1.act.weight" in trainable


@pytest.mark.parametrize(
    ("scale", "config"),
    [
        (2, {"num_channels": 8, "num_blocks": 2}),
        (4, {"num_channels": 6, "num_blocks": 1}),
        (8, {"num_channels": 4, "num_blocks": 0}),
        (4, {"in_channels": 1, "num_channels": 4, "num_blocks": 3}),
    ],
)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, scale: int, config: dict[str, Any]
) -> None:
    model = randomize_(SwiftSRGAN(scale=scale, **config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pth, st = tmp_path / "g.pth.tar", tmp_path / "g.safetensors"
    torch.save(_training_checkpoint(state), pth)
    save_file(state, str(st))
    expected = {"in_channels": 3, "num_channels": 64, "num_blocks": 16, **config}
    x = torch.rand(1, expected["in_channels"], 7, 6)
    with torch.no_grad():
        want = model(x)
    for path in (pth, st):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "swiftsrgan",
            "swiftsrgan",
            scale,
            "official",
        )
        assert dict(found.model_args) == expected
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-6, rtol=0)


def test_detection_needs_the_whole_signature() -> None:
    shapes = {k: tuple(v.shape) for k, v in SwiftSRGAN(scale=2, num_blocks=1).state_dict().items()}
    assert detect_swiftsrgan(Shapes(shapes)) is not None
    del shapes["final_conv.pointwise.weight"]
    assert detect_swiftsrgan(Shapes(shapes)) is None


def test_registry_entry() -> None:
    info = srzoo.model_info("swiftsrgan")
    assert info.family == "swiftsrgan" and info.task == "gan" and info.colour == "rgb"
    assert info.paper.arxiv == "2111.14320" and info.code_license == "CC0-1.0"
    assert info.scales == (2, 4, 8) and info.scale == 4 and info.size_multiple == 1
    assert sorted(w.scale for w in info.weights) == [2, 4]
    for w in info.weights:
        assert w.source.startswith("https://github.com/Koushik0901/Swift-SRGAN/releases/")
        assert w.source.endswith(f"swift_srgan_{w.scale}x.pth.tar")
        assert w.sha256 is not None and len(w.sha256) == 64 and w.size
        assert w.license == "CC0-1.0"


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="power of two"):
        SwiftSRGAN(scale=3)
    with pytest.raises(ArgumentError, match="num_channels"):
        SwiftSRGAN(num_channels=0)


@pytest.mark.parametrize("scale", [2, 4])
def test_receptive_field_is_measured_exactly(scale: int) -> None:
    # The outputs of the centre input pixel depend on input pixels exactly that far away.
    model = randomize_(SwiftSRGAN(scale=scale, num_channels=4, num_blocks=1), seed=2)
    model = model.double().eval()
    radius = model.receptive_field
    assert isinstance(radius, int) and radius > 7  # 9x9 head, two blocks' worth of 3x3, more
    side = 2 * radius + 7
    c = side // 2
    x = torch.rand(1, 3, side, side, dtype=torch.float64).requires_grad_()
    model(x)[0, :, scale * c : scale * (c + 1), scale * c : scale * (c + 1)].sum().backward()
    assert x.grad is not None
    rows, cols = (x.grad[0].abs().sum(0) != 0).nonzero(as_tuple=True)
    assert int(torch.maximum((rows - c).abs(), (cols - c).abs()).max()) == radius


def test_narrow_entry_keeps_the_paper_depth() -> None:
    assert set(NARROW["swiftsrgan"]) == {"num_channels"}
    full = SwiftSRGAN(scale=4).receptive_field
    assert SwiftSRGAN(scale=4, **NARROW["swiftsrgan"]).receptive_field == full


def test_compiles_without_graph_breaks_at_two_sizes() -> None:
    model = randomize_(SwiftSRGAN(scale=2, **TINY["swiftsrgan"])).eval()
    assert_no_graph_breaks(model, ((8, 8), (7, 5)), one_graph=False)


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = randomize_(SwiftSRGAN(scale=4, **TINY["swiftsrgan"]), seed=1).eval()
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        full = model(x)
        half = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), full, atol=3e-2, rtol=0)
