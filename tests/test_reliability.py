"""Nothing silently wrong: bad models, bad inputs and bad arguments fail loudly and clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import srzoo
from srzoo.cli import main
from srzoo.image import write_image

from .util import randomize_

TINY = {"n_resblocks": 1, "n_feats": 8, "res_scale": 1.0}


def _tiny() -> torch.nn.Module:
    return randomize_(srzoo.create("edsr-baseline", 2, **TINY)).eval()


def _nan_model() -> torch.nn.Module:
    model = _tiny()
    with torch.no_grad():
        model.get_parameter("tail.0.0.weight")[0, 0, 0, 0] = float("nan")
    return model


# --------------------------------------------------------------------------------------------------
# Non-finite output


@pytest.mark.parametrize("tile", [None, 8])
def test_nan_output_is_an_error_not_a_black_image(tile: int | None) -> None:
    model = _nan_model()
    with pytest.raises(srzoo.NonFiniteOutputError, match="NaN or infinite"):
        srzoo.upscale(model, np.full((16, 16, 3), 128, np.uint8), tile=tile, overlap=2)
    with pytest.raises(srzoo.NonFiniteOutputError):
        srzoo.upscale(model, torch.rand(1, 3, 16, 16), tile=tile, overlap=2)


def test_the_error_names_the_model_and_its_weights(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    save_file({k: v.contiguous() for k, v in _nan_model().state_dict().items()}, path)
    model = srzoo.load("edsr-baseline", 2, weights=path, **TINY)
    with pytest.raises(
        srzoo.NonFiniteOutputError, match=r"'edsr-baseline' x2 with weights .*broken"
    ):
        srzoo.upscale(model, np.zeros((8, 8, 3), np.uint8))


def test_a_finite_model_is_not_flagged() -> None:
    out = srzoo.upscale(_tiny(), torch.rand(1, 3, 12, 12), tile=8, overlap=2)
    assert out.shape == (1, 3, 24, 24)


def test_evaluate_and_the_command_refuse_non_finite_output(tmp_path: Path) -> None:
    hr = tmp_path / "hr"
    hr.mkdir()
    write_image(hr / "a.png", np.random.default_rng(0).integers(0, 256, (16, 16, 3), np.uint8))
    with pytest.raises(srzoo.NonFiniteOutputError):
        srzoo.evaluate(_nan_model(), hr, scale=2)
    weights = tmp_path / "nan.safetensors"
    out = tmp_path / "out"
    # Command-line models take no constructor overrides: a full-size NaN EDSR-baseline.
    full = srzoo.create("edsr-baseline", 2)
    with torch.no_grad():
        full.get_parameter("tail.0.0.weight").fill_(float("nan"))
    save_file({k: v.contiguous() for k, v in full.state_dict().items()}, weights)
    status = main(
        [
            "upscale",
            str(hr / "a.png"),
            "-o",
            str(out),
            "-m",
            "edsr-baseline",
            "--scale",
            "2",
            "--weights",
            str(weights),
            "--quiet",
        ]
    )
    assert status == 1
    assert not out.exists() or not any(out.iterdir()), "no image was written"


# --------------------------------------------------------------------------------------------------
# Float input outside [0, 1]


def test_float_images_in_0_255_are_refused_with_the_conversion() -> None:
    image = np.random.default_rng(0).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    with pytest.raises(srzoo.ArgumentError, match="divide by 255"):
        srzoo.upscale(_tiny(), image)
    with pytest.raises(srzoo.ArgumentError, match="divide by 255"):
        srzoo.upscale(_tiny(), torch.from_numpy(image).permute(2, 0, 1))


def test_float_images_in_minus_one_to_one_are_refused() -> None:
    x = torch.rand(1, 3, 8, 8) * 2 - 1
    with pytest.raises(srzoo.ArgumentError, match=r"\(x \+ 1\) / 2"):
        srzoo.upscale(_tiny(), x)


def test_a_small_overshoot_is_within_the_documented_tolerance() -> None:
    x = torch.rand(1, 3, 8, 8)
    x[0, 0, 0, 0] = 1 + srzoo.inference.FLOAT_TOLERANCE / 2
    x[0, 0, 0, 1] = -srzoo.inference.FLOAT_TOLERANCE / 2
    assert srzoo.upscale(_tiny(), x).shape == (1, 3, 16, 16)


# --------------------------------------------------------------------------------------------------
# Arguments


def test_numpy_integer_scales_work_everywhere() -> None:
    s = np.int64(2)
    model = srzoo.load("edsr-baseline", s, weights=None, **TINY)  # type: ignore[arg-type]
    assert model.scale == 2 and type(model.scale) is int
    assert srzoo.create("edsr-baseline", s, **TINY).scale == 2  # type: ignore[arg-type]
    assert srzoo.load_default(s).scale == 2  # type: ignore[arg-type]
    out = srzoo.upscale(np.zeros((4, 4, 3), np.uint8), scale=s)  # type: ignore[call-overload]
    assert out.shape == (8, 8, 3)
    assert srzoo.model_info("edsr").num_params(s) > 0  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [4.0, 2.5, "4", True])
def test_non_integer_scales_are_refused(bad: object) -> None:
    for call in (
        lambda: srzoo.load("edsr-baseline", bad, weights=None),  # type: ignore[arg-type]
        lambda: srzoo.create("edsr-baseline", bad),  # type: ignore[arg-type]
        lambda: srzoo.load_default(bad),  # type: ignore[arg-type]
        lambda: srzoo.upscale(np.zeros((4, 4, 3), np.uint8), scale=bad),  # type: ignore[call-overload]
    ):
        with pytest.raises(srzoo.ArgumentTypeError, match="integer") as caught:
            call()
        assert isinstance(caught.value, (srzoo.SrzooError, TypeError))
    if isinstance(bad, float):
        with pytest.raises(srzoo.ArgumentTypeError, match="outscale"):
            srzoo.create("edsr-baseline", bad)  # type: ignore[arg-type]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    for call in (
        lambda: srzoo.load("edsr-baseline", 2, weights=None, device="cuda"),
        lambda: srzoo.upscale(_tiny(), torch.rand(1, 3, 4, 4), device="cuda"),
        lambda: srzoo.load_default(2, device="cuda:0"),
    ):
        with pytest.raises(srzoo.ArgumentError, match="CUDA is not available"):
            call()


def test_malformed_device_names_are_argument_errors() -> None:
    with pytest.raises(srzoo.ArgumentError, match="not a device name"):
        srzoo.load("edsr-baseline", 2, weights=None, device="gpu0")
    with pytest.raises(srzoo.ArgumentTypeError):
        srzoo.load("edsr-baseline", 2, weights=None, device=1.5)  # type: ignore[arg-type]


def test_every_deliberate_error_is_an_srzoo_error() -> None:
    for cls in (
        srzoo.ArgumentError,
        srzoo.ArgumentTypeError,
        srzoo.ImageReadError,
        srzoo.TileOutOfMemoryError,
        srzoo.NonFiniteOutputError,
        srzoo.MissingDependencyError,
        srzoo.UnknownModelError,
        srzoo.UnsupportedScaleError,
        srzoo.WeightsError,
        srzoo.IncompatibleWeightsError,
    ):
        assert issubclass(cls, srzoo.SrzooError), cls
    assert issubclass(srzoo.ArgumentError, ValueError)
    assert issubclass(srzoo.ArgumentTypeError, TypeError)


def test_dtypes_are_floating_types_or_their_names() -> None:
    model = srzoo.load("edsr-baseline", 2, weights=None, dtype="bf16", **TINY)
    assert next(model.parameters()).dtype == torch.bfloat16
    out = srzoo.upscale(_tiny(), torch.rand(1, 3, 4, 4), dtype="float64")
    assert out.dtype == torch.float32  # computed in float64, returned in the input's dtype
    for bad in (torch.int8, torch.complex64, "int8", 3):
        with pytest.raises(srzoo.ArgumentTypeError, match="floating-point"):
            srzoo.load("edsr-baseline", 2, weights=None, dtype=bad, **TINY)  # type: ignore[arg-type]
        with pytest.raises(srzoo.ArgumentTypeError, match="floating-point"):
            srzoo.upscale(_tiny(), torch.rand(1, 3, 4, 4), dtype=bad)  # type: ignore[call-overload]
