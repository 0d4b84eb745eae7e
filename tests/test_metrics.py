"""Tests for srzoo.metrics: MATLAB-compatible imresize, Y conversion, PSNR and SSIM."""

from __future__ import annotations

import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from srzoo.metrics import imresize, psnr, rgb_to_y, ssim

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
SET14 = DATA_ROOT / "benchmark" / "Set14"
SCALES = (2, 3, 4)
# A few Set14 images of different kinds (colour photo, grayscale, screen content).
FEW_IMAGES = ("baboon", "bridge", "ppt3")

PEAK_PSNR_ONE_LEVEL = 20.0 * math.log10(255.0)


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #


def _set14_names() -> list[str]:
    if not (SET14 / "HR").is_dir():
        pytest.skip(f"Set14 benchmark data not found at {SET14}")
    return sorted(p.stem for p in (SET14 / "HR").glob("*.png"))


def _read_png(path: Path) -> np.ndarray[Any, Any]:
    pil_image = pytest.importorskip("PIL.Image")
    with pil_image.open(path) as image:
        return np.asarray(image)


def _hr_lr(name: str, scale: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """HR cropped to a multiple of ``scale`` (as the benchmark was made) and the MATLAB LR."""
    hr = _read_png(SET14 / "HR" / f"{name}.png")
    height, width = hr.shape[:2]
    hr = hr[: height - height % scale, : width - width % scale]
    lr = _read_png(SET14 / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png")
    return hr, lr


def _hwc_to_chw(image: np.ndarray[Any, Any]) -> torch.Tensor:
    tensor = torch.from_numpy(np.array(image, order="C"))
    return tensor.unsqueeze(0) if image.ndim == 2 else tensor.permute(2, 0, 1)


def _chw_to_hwc(tensor: torch.Tensor) -> np.ndarray[Any, Any]:
    array: np.ndarray[Any, Any] = tensor.permute(1, 2, 0).numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array


def _noisy(image: np.ndarray[Any, Any], seed: int, sigma: float = 6.0) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    noisy = image.astype(np.float64) + rng.normal(0.0, sigma, image.shape)
    result: np.ndarray[Any, Any] = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    return result


def _skimage_metrics() -> ModuleType:
    module: ModuleType = pytest.importorskip("skimage.metrics")
    return module


# --------------------------------------------------------------------------- #
# imresize on the real benchmark
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("scale", SCALES)
def test_imresize_reproduces_set14_lr_bicubic(scale: int) -> None:
    mismatches = {}
    for name in _set14_names():
        hr, lr = _hr_lr(name, scale)
        out = imresize(hr, scale=1 / scale)
        assert out.dtype == np.uint8
        assert out.shape == lr.shape, name
        differing = int(np.count_nonzero(out != lr))
        if differing:
            mismatches[name] = differing
    assert not mismatches, f"pixels differing from MATLAB's LR files: {mismatches}"


@pytest.mark.parametrize("scale", SCALES)
def test_imresize_uint8_tensor_gives_the_same_bytes(scale: int) -> None:
    _set14_names()
    for name in FEW_IMAGES:
        hr, lr = _hr_lr(name, scale)
        out = imresize(_hwc_to_chw(hr), scale=1 / scale)
        assert out.dtype == torch.uint8
        np.testing.assert_array_equal(_chw_to_hwc(out), lr, err_msg=name)


@pytest.mark.parametrize("scale", SCALES)
def test_imresize_float_path_is_within_one_level_almost_everywhere(scale: int) -> None:
    # The uint8 path rounds and saturates between the two 1-D passes, the float
    # path does not. Rounding alone moves a value by at most ~1.09 levels (see
    # the synthetic test below); near saturated regions (text in ppt3, white
    # highlights) the intermediate clipping changes results by several levels,
    # so "within 1 level" holds for >98% of values per image, not all.
    _set14_names()
    for name in FEW_IMAGES:
        hr, lr = _hr_lr(name, scale)
        hr_float = _hwc_to_chw(hr).to(torch.float32).div(255.0).unsqueeze(0)
        out = imresize(hr_float, scale=1 / scale)
        assert out.dtype == torch.float32
        levels = _chw_to_hwc(out[0].clamp(0.0, 1.0).mul(255.0)).astype(np.float64)
        within = float(np.mean(np.abs(levels - lr) <= 1.0))
        assert within >= 0.98, f"{name}: only {within:.4%} of values within 1 level"


@pytest.mark.parametrize("factor", [1 / 2, 1 / 3, 1 / 4, 2.0, 3.0])
def test_imresize_float_and_uint8_differ_only_by_rounding_away_from_saturation(
    factor: float,
) -> None:
    # Values in 64..191 never reach 0 or 255 after the first pass (the cubic's
    # negative lobes overshoot by < 10% of the range), so the only difference is
    # rounding: <= 0.5 after the last pass plus 0.5 times the second pass's
    # largest absolute row sum (1.1875 for these factors) = 1.09375.
    rng = np.random.default_rng(1)
    image = rng.integers(64, 192, size=(48, 60, 3), dtype=np.uint8)
    as_uint8 = imresize(image, scale=factor).astype(np.float64)
    as_float = imresize(image.astype(np.float64), scale=factor)
    assert as_float.dtype == np.float64
    assert np.max(np.abs(as_float - as_uint8)) <= 1.09375 + 1e-9


# --------------------------------------------------------------------------- #
# imresize behaviour
# --------------------------------------------------------------------------- #


def test_imresize_output_sizes_follow_matlab_ceil() -> None:
    image = np.zeros((7, 5, 3), dtype=np.uint8)
    assert imresize(image, scale=2).shape == (14, 10, 3)
    assert imresize(image, scale=3).shape == (21, 15, 3)
    assert imresize(image, scale=0.5).shape == (4, 3, 3)
    assert imresize(image, size=(9, 4)).shape == (9, 4, 3)
    assert imresize(image[:, :, 0], scale=4).shape == (28, 20)
    tensor = torch.zeros(2, 3, 7, 5)
    assert imresize(tensor, scale=2).shape == (2, 3, 14, 10)
    assert imresize(tensor[0], size=(3, 11)).shape == (3, 3, 11)


@pytest.mark.parametrize("factor", [2.0, 3.0, 4.0, 0.5, 1 / 3])
def test_imresize_keeps_a_constant_image_constant(factor: float) -> None:
    image = np.full((12, 9, 3), 77, dtype=np.uint8)
    assert np.all(imresize(image, scale=factor) == 77)
    tensor = torch.full((1, 3, 12, 9), 0.3, dtype=torch.float64)
    torch.testing.assert_close(
        imresize(tensor, scale=factor),
        torch.full_like(imresize(tensor, scale=factor), 0.3),
        rtol=0,
        atol=1e-12,
    )


@pytest.mark.filterwarnings("error")
def test_imresize_preserves_dtype_layout_and_type() -> None:
    image = np.random.default_rng(2).random((10, 8, 3))
    image.setflags(write=False)  # arrays decoded by PIL are read-only
    assert imresize(image, scale=2).dtype == np.float64
    assert imresize(image.astype(np.float32), scale=2).dtype == np.float32
    assert imresize(torch.rand(3, 10, 8), scale=2).dtype == torch.float32
    assert imresize(torch.rand(3, 10, 8, dtype=torch.float64), scale=2).dtype == torch.float64
    assert imresize(torch.zeros(3, 10, 8, dtype=torch.uint8), scale=2).dtype == torch.uint8


def test_imresize_float_tensor_is_differentiable() -> None:
    def upscale(t: torch.Tensor) -> torch.Tensor:
        return imresize(t, scale=2)

    def to_size(t: torch.Tensor) -> torch.Tensor:
        return imresize(t, size=(3, 4))

    x = torch.rand(1, 2, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(upscale, (x,))
    assert torch.autograd.gradcheck(to_size, (x,))
    (grad,) = torch.autograd.grad(imresize(x, scale=0.5).sum(), x)
    assert torch.all(torch.isfinite(grad))
    assert torch.any(grad != 0)


def test_imresize_batched_equals_per_image() -> None:
    batch = torch.rand(3, 3, 20, 17, generator=torch.Generator().manual_seed(3))
    for kwargs in ({"scale": 2.0}, {"scale": 0.25}, {"size": (31, 9)}):
        together = imresize(batch, **kwargs)
        one_by_one = torch.stack([imresize(image, **kwargs) for image in batch])
        torch.testing.assert_close(together, one_by_one, rtol=0, atol=1e-6)


def test_imresize_resizes_the_smaller_scale_dimension_first() -> None:
    # MATLAB sorts the per-axis scales and resizes along the smallest first.
    # With uint8 rounding after each pass the order is visible in the output.
    image = np.random.default_rng(4).integers(0, 256, size=(16, 24, 3), dtype=np.uint8)
    direct = imresize(image, size=(32, 12))
    width_first = imresize(imresize(image, size=(16, 12)), size=(32, 12))
    height_first = imresize(imresize(image, size=(32, 24)), size=(32, 12))
    np.testing.assert_array_equal(direct, width_first)
    assert np.any(direct != height_first)


def test_imresize_rejects_bad_arguments() -> None:
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(image)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(image, scale=2, size=(16, 16))
    for bad_scale in (0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale"):
            imresize(image, scale=bad_scale)
    with pytest.raises(ValueError, match="positive"):
        imresize(image, size=(0, 4))
    with pytest.raises(ValueError, match="shape"):
        imresize(np.zeros((1, 8, 8, 3), dtype=np.uint8), scale=2)
    with pytest.raises(ValueError, match="shape"):
        imresize(torch.zeros(8, 8), scale=2)
    with pytest.raises(TypeError, match="int16"):
        imresize(image.astype(np.int16), scale=2)
    with pytest.raises(TypeError, match="int32"):
        imresize(torch.zeros(3, 8, 8, dtype=torch.int32), scale=2)
    with pytest.raises(TypeError):
        imresize([[0, 1], [2, 3]], scale=2)  # type: ignore[call-overload]


# --------------------------------------------------------------------------- #
# rgb_to_y
# --------------------------------------------------------------------------- #


def test_rgb_to_y_matches_matlab_range_and_is_not_rounded() -> None:
    white = np.full((2, 3, 3), 255, dtype=np.uint8)
    black = np.zeros((2, 3, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(white), 235.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(rgb_to_y(black), 16.0, rtol=0, atol=0)
    red = np.zeros((1, 1, 3), dtype=np.uint8)
    red[..., 0] = 1
    y = rgb_to_y(red)
    assert y.dtype == np.float64
    assert y.shape == (1, 1)
    assert y[0, 0] == pytest.approx(16.0 + 65.481 / 255.0, abs=1e-12)

    tensor = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1).expand(2, 3, 2, 2)
    y_t = rgb_to_y(tensor)
    assert y_t.shape == (2, 1, 2, 2)
    assert y_t.dtype == torch.float32
    torch.testing.assert_close(y_t[0], torch.full((1, 2, 2), 235.0 / 255.0))
    torch.testing.assert_close(y_t[1], torch.full((1, 2, 2), 16.0 / 255.0))


def test_rgb_to_y_treats_grayscale_as_equal_channels() -> None:
    gray = np.random.default_rng(5).integers(0, 256, size=(6, 7), dtype=np.uint8)
    as_rgb = np.repeat(gray[:, :, None], 3, axis=2)
    np.testing.assert_array_equal(rgb_to_y(gray), rgb_to_y(as_rgb))
    np.testing.assert_array_equal(rgb_to_y(gray[:, :, None]), rgb_to_y(as_rgb))
    gray_t = torch.from_numpy(gray).double().div(255.0).view(1, 1, 6, 7)
    torch.testing.assert_close(rgb_to_y(gray_t), rgb_to_y(gray_t.expand(1, 3, 6, 7)))


# --------------------------------------------------------------------------- #
# PSNR / SSIM: hand-computed values and conventions
# --------------------------------------------------------------------------- #


def test_psnr_of_a_one_level_offset_is_20_log10_255() -> None:
    hr = np.random.default_rng(6).integers(0, 255, size=(20, 24, 3), dtype=np.uint8)
    assert psnr(hr + 1, hr) == pytest.approx(PEAK_PSNR_ONE_LEVEL, rel=1e-13)
    assert psnr(hr, hr + 1) == pytest.approx(PEAK_PSNR_ONE_LEVEL, rel=1e-13)
    hr_t = torch.from_numpy(hr).double().permute(2, 0, 1).unsqueeze(0) / 255.0
    value = psnr(hr_t + 1.0 / 255.0, hr_t)
    assert value.dtype == torch.float64
    assert value.shape == (1,)
    assert float(value[0]) == pytest.approx(PEAK_PSNR_ONE_LEVEL, abs=1e-6)


def test_identical_images_give_inf_psnr_and_unit_ssim() -> None:
    image = np.random.default_rng(7).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    assert psnr(image, image) == math.inf
    assert ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    tensor = torch.rand(2, 3, 16, 16)
    assert torch.all(torch.isinf(psnr(tensor, tensor)))
    torch.testing.assert_close(ssim(tensor, tensor), torch.ones(2, dtype=torch.float64))


def test_ssim_of_two_constant_images_matches_the_formula() -> None:
    # Zero variance leaves only the luminance term (2ab + C1) / (a^2 + b^2 + C1).
    a, b = 100.0, 120.0
    c1 = (0.01 * 255) ** 2
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    sr = np.full((16, 16), a, dtype=np.uint8)
    hr = np.full((16, 16), b, dtype=np.uint8)
    assert ssim(sr, hr) == pytest.approx(expected, abs=1e-12)


def test_crop_border_ignores_differences_in_the_border() -> None:
    rng = np.random.default_rng(8)
    hr = rng.integers(0, 256, size=(32, 30, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[:4] = 255 - sr[:4]
    sr[:, -4:] = 0
    assert psnr(sr, hr) < 20.0
    assert psnr(sr, hr, crop_border=4) == math.inf
    assert psnr(sr, hr, crop_border=4, y_channel=True) == math.inf
    assert ssim(sr, hr, crop_border=4) == pytest.approx(1.0, abs=1e-12)
    sr[10, 10] = 0
    assert psnr(sr, hr, crop_border=4) == pytest.approx(psnr(sr[4:-4, 4:-4], hr[4:-4, 4:-4]))
    assert ssim(sr, hr, crop_border=4) == pytest.approx(ssim(sr[4:-4, 4:-4], hr[4:-4, 4:-4]))


@pytest.mark.parametrize("y_channel", [False, True])
def test_tensor_path_equals_numpy_path_and_batches_per_image(y_channel: bool) -> None:
    rng = np.random.default_rng(9)
    hrs = rng.integers(0, 256, size=(3, 40, 36, 3), dtype=np.uint8)
    srs = np.stack([_noisy(hr, seed) for seed, hr in enumerate(hrs)])
    kwargs: dict[str, Any] = {"crop_border": 3, "y_channel": y_channel}
    sr_t = torch.from_numpy(srs).permute(0, 3, 1, 2).double() / 255.0
    hr_t = torch.from_numpy(hrs).permute(0, 3, 1, 2).double() / 255.0
    for metric in (psnr, ssim):
        batched = metric(sr_t, hr_t, **kwargs)
        assert batched.dtype == torch.float64
        assert batched.shape == (3,)
        for i in range(3):
            from_numpy = metric(srs[i], hrs[i], **kwargs)
            assert isinstance(from_numpy, float)
            assert float(batched[i]) == pytest.approx(from_numpy, abs=1e-6)
            single = metric(sr_t[i : i + 1], hr_t[i : i + 1], **kwargs)
            assert float(single[0]) == pytest.approx(float(batched[i]), abs=1e-12)
    # float32 tensors are promoted to float64 for the computation.
    assert psnr(sr_t.float(), hr_t.float()).dtype == torch.float64


def test_metrics_reject_mismatched_or_unsupported_inputs() -> None:
    a = np.zeros((8, 10, 3), dtype=np.uint8)
    b = np.zeros((10, 8, 3), dtype=np.uint8)
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match=r"\(8, 10, 3\).*\(10, 8, 3\)"):
            metric(a, b)
        with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\).*\(1, 3, 8, 9\)"):
            metric(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 9))
        with pytest.raises(TypeError):
            metric(a, torch.zeros(1, 3, 8, 10))  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="uint8"):
            metric(a.astype(np.float32), a.astype(np.float32))
        with pytest.raises(ValueError, match="crop_border"):
            metric(a, a, crop_border=4)
        with pytest.raises(ValueError, match="crop_border"):
            metric(a, a, crop_border=-1)
    with pytest.raises(ValueError, match="11x11"):
        ssim(a, a)


# --------------------------------------------------------------------------- #
# Agreement with scikit-image on real images
# --------------------------------------------------------------------------- #


def test_psnr_and_ssim_match_scikit_image_on_set14_y_channel() -> None:
    sk = _skimage_metrics()
    border = 4
    for seed, name in enumerate(_set14_names()):
        hr = _read_png(SET14 / "HR" / f"{name}.png")
        sr = _noisy(hr, seed)
        y_hr = rgb_to_y(hr)[border:-border, border:-border]
        y_sr = rgb_to_y(sr)[border:-border, border:-border]
        expected_psnr = sk.peak_signal_noise_ratio(y_hr, y_sr, data_range=255)
        expected_ssim = sk.structural_similarity(
            y_hr,
            y_sr,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
        got_psnr = psnr(sr, hr, crop_border=border, y_channel=True)
        got_ssim = ssim(sr, hr, crop_border=border, y_channel=True)
        assert got_psnr == pytest.approx(expected_psnr, abs=1e-6), name
        assert got_ssim == pytest.approx(expected_ssim, abs=1e-6), name


def test_psnr_and_ssim_match_scikit_image_on_set14_rgb() -> None:
    sk = _skimage_metrics()
    _set14_names()
    for seed, name in enumerate(FEW_IMAGES):
        hr = _read_png(SET14 / "HR" / f"{name}.png")
        sr = _noisy(hr, seed, sigma=10.0)
        channel_axis = None if hr.ndim == 2 else -1
        expected_psnr = sk.peak_signal_noise_ratio(hr, sr, data_range=255)
        expected_ssim = sk.structural_similarity(
            hr.astype(np.float64),
            sr.astype(np.float64),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=channel_axis,
        )
        assert psnr(sr, hr) == pytest.approx(expected_psnr, abs=1e-6), name
        assert ssim(sr, hr) == pytest.approx(expected_ssim, abs=1e-6), name


def test_low_precision_tensors_are_scored_in_float64() -> None:
    """The luma conversion runs in float64 too, not in the input's bfloat16."""
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, 24, 24, generator=g)
    sr = (hr + 0.01 * torch.randn(1, 3, 24, 24, generator=g)).clamp(0, 1)
    sr16, hr16 = sr.bfloat16(), hr.bfloat16()
    exact = psnr(sr16.double(), hr16.double(), crop_border=2, y_channel=True)
    assert psnr(sr16, hr16, crop_border=2, y_channel=True) == pytest.approx(exact, abs=1e-9)
    exact_ssim = ssim(sr16.double(), hr16.double(), crop_border=2, y_channel=True)
    assert ssim(sr16, hr16, crop_border=2, y_channel=True) == pytest.approx(exact_ssim, abs=1e-9)
