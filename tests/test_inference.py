"""upscale(): every kind of image in, the same kind out; Y models; alpha; ensemble; compare()."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo import registry
from srzoo.errors import UnknownModelError, UnsupportedScaleError
from srzoo.image import ImageReadError
from srzoo.metrics import imresize, rgb_to_y

from .util import CHECKPOINTS, DATA, randomize_, require_shared

RNG = np.random.default_rng(0)
OVERLAP = 8


class Nearest(nn.Module):
    """Nearest-neighbour "network": its output is known exactly, so round trips are exact.

    Records what it was fed and whether it ran in eval mode.
    """

    def __init__(self, scale: int = 2, channels: int = 3, gain: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = channels
        self.out_channels = channels
        self.gain = gain
        self.seen: list[torch.Tensor] = []
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        self.modes.append(self.training)
        y = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return y * self.gain - (self.gain - 1) / 2


def _edsr(scale: int = 2) -> nn.Module:
    net = srzoo.create("edsr-baseline", scale, n_resblocks=1, n_feats=8)
    return randomize_(net, seed=scale).eval()


def _nearest_np(a: np.ndarray, s: int) -> np.ndarray:
    return a.repeat(s, axis=0).repeat(s, axis=1)


def _rgb(h: int = 9, w: int = 7) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- #
# Kinds in, same kind out
# --------------------------------------------------------------------------- #


def test_pil_in_pil_out() -> None:
    lr = Image.fromarray(_rgb())
    sr = srzoo.upscale(Nearest(2), lr)
    assert isinstance(sr, Image.Image) and sr.mode == "RGB" and sr.size == (14, 18)
    assert sr.tobytes() == lr.resize((14, 18), Image.Resampling.NEAREST).tobytes()


def test_path_in_pil_out_with_exif_orientation(tmp_path: Path) -> None:
    pixels = _rgb(2, 4)
    path = tmp_path / "photo.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif)
    sr = srzoo.upscale(Nearest(3), path)
    assert isinstance(sr, Image.Image) and sr.size == (6, 12)
    np.testing.assert_array_equal(np.asarray(sr), _nearest_np(np.rot90(pixels, -1), 3))
    assert srzoo.upscale(Nearest(3), str(path)).size == (6, 12)


@pytest.mark.parametrize(
    "array",
    [
        _rgb(),
        RNG.integers(0, 65536, (9, 7, 3), dtype=np.uint16),
        RNG.random((9, 7, 3), dtype=np.float32),
        RNG.random((9, 7, 3)),
        RNG.random((9, 7, 3)).astype(np.float16),
    ],
    ids=["uint8", "uint16", "float32", "float64", "float16"],
)
def test_numpy_in_numpy_out_same_dtype_and_layout(array: np.ndarray) -> None:
    sr = srzoo.upscale(Nearest(2), array)
    assert isinstance(sr, np.ndarray) and sr.dtype == array.dtype and sr.shape == (18, 14, 3)
    if array.dtype.kind == "u":
        np.testing.assert_array_equal(sr, _nearest_np(array, 2))
    else:
        # Floats are computed in float32 and stored back in their own dtype.
        np.testing.assert_allclose(sr, _nearest_np(array, 2), atol=1e-7, rtol=1e-6)


def test_flipped_and_byte_swapped_arrays() -> None:
    rgb = _rgb()
    flipped = rgb[::-1, :, ::-1]
    np.testing.assert_array_equal(srzoo.upscale(Nearest(2), flipped), _nearest_np(flipped, 2))
    swapped = RNG.integers(0, 65536, (9, 7), dtype=np.uint16).astype(">u2")
    sr = srzoo.upscale(Nearest(2), swapped)
    np.testing.assert_array_equal(sr, _nearest_np(swapped, 2))


def test_sixteen_bit_pil_stays_sixteen_bit() -> None:
    values = RNG.integers(0, 65536, (5, 6), dtype=np.uint16)
    sr = srzoo.upscale(Nearest(2), Image.fromarray(values))
    assert sr.mode == "I;16"
    np.testing.assert_array_equal(np.asarray(sr), _nearest_np(values, 2))


@pytest.mark.parametrize("shape", [(9, 7), (9, 7, 1)])
def test_gray_runs_as_rgb_and_comes_back_gray(shape: tuple[int, ...]) -> None:
    gray = RNG.integers(0, 256, shape, dtype=np.uint8)
    net = Nearest(2)
    sr = srzoo.upscale(net, gray)
    assert sr.shape == (18, 14, *shape[2:]) and sr.dtype == np.uint8
    np.testing.assert_array_equal(sr, _nearest_np(gray, 2))
    fed = torch.cat(net.seen)
    assert (
        fed.shape[1] == 3
        and torch.equal(fed[:, 0], fed[:, 1])
        and torch.equal(fed[:, 0], fed[:, 2])
    )
    pil = srzoo.upscale(Nearest(2), Image.fromarray(gray.reshape(9, 7)))
    assert pil.mode == "L" and pil.size == (14, 18)


def test_rgba_alpha_bicubic_or_model() -> None:
    rgba = RNG.integers(0, 256, (9, 7, 4), dtype=np.uint8)
    sr = srzoo.upscale(Nearest(2), rgba)
    assert sr.shape == (18, 14, 4)
    np.testing.assert_array_equal(sr[..., :3], _nearest_np(rgba[..., :3], 2))
    alpha = imresize(rgba[..., 3].astype(np.float64) / 255, scale=2)
    expected = np.round(np.clip(alpha, 0, 1) * 255)
    assert np.abs(sr[..., 3].astype(float) - expected).max() <= 1
    assert not np.array_equal(sr[..., 3], _nearest_np(rgba[..., 3], 2)), "bicubic, not nearest"
    by_model = srzoo.upscale(Nearest(2), rgba, alpha="model")
    np.testing.assert_array_equal(by_model, _nearest_np(rgba, 2))
    pil = srzoo.upscale(Nearest(2), Image.fromarray(rgba))
    assert pil.mode == "RGBA"
    gray_alpha = srzoo.upscale(Nearest(2), Image.fromarray(rgba[..., 2:]))
    assert gray_alpha.mode == "LA"


def test_palette_image() -> None:
    image = Image.fromarray(_rgb()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    sr = srzoo.upscale(Nearest(2), image)
    assert sr.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(sr), _nearest_np(np.asarray(image.convert("RGB")), 2))


@pytest.mark.parametrize("shape", [(3, 9, 7), (2, 3, 9, 7), (1, 1, 9, 7), (2, 4, 9, 7)])
def test_tensor_in_tensor_out(shape: tuple[int, ...]) -> None:
    x = torch.rand(shape, dtype=torch.float64)
    sr = srzoo.upscale(Nearest(2), x, alpha="model")
    assert sr.dtype == x.dtype and sr.shape == (*shape[:-2], 18, 14)
    expected = F.interpolate(x if x.ndim == 4 else x[None], scale_factor=2, mode="nearest")
    torch.testing.assert_close(sr, expected if x.ndim == 4 else expected[0], atol=1e-6, rtol=0)


def test_uint8_tensor() -> None:
    x = torch.from_numpy(_rgb()).permute(2, 0, 1).contiguous()
    sr = srzoo.upscale(Nearest(2), x)
    assert sr.dtype == torch.uint8 and sr.shape == (3, 18, 14)
    assert torch.equal(sr, x.repeat_interleave(2, 1).repeat_interleave(2, 2))


# --------------------------------------------------------------------------- #
# Single-channel (Y) models
# --------------------------------------------------------------------------- #


def test_y_model_sees_bt601_y_and_keeps_bicubic_chroma() -> None:
    rgb = _rgb(10, 8)
    net = Nearest(2, channels=1)
    sr = srzoo.upscale(net, rgb)
    assert sr.shape == (20, 16, 3) and sr.dtype == np.uint8
    fed = torch.cat(net.seen)
    assert fed.shape == (1, 1, 10, 8)
    expected_y = rgb_to_y(rgb) / 255
    np.testing.assert_allclose(fed[0, 0].numpy(), expected_y, atol=1e-6)
    # Recompute the result the papers' way: Y through the model, CbCr bicubic, back to RGB.
    y = _nearest_np(rgb_to_y(rgb), 2)
    x = rgb.astype(np.float64)
    cb = 128 + (-37.797 * x[..., 0] - 74.203 * x[..., 1] + 112.0 * x[..., 2]) / 255
    cr = 128 + (112.0 * x[..., 0] - 93.786 * x[..., 1] - 18.214 * x[..., 2]) / 255
    cb, cr = imresize(cb, scale=2), imresize(cr, scale=2)
    # MATLAB's ycbcr2rgb, as published.
    r = 1.164 * (y - 16) + 1.596 * (cr - 128)
    g = 1.164 * (y - 16) - 0.392 * (cb - 128) - 0.813 * (cr - 128)
    b = 1.164 * (y - 16) + 2.017 * (cb - 128)
    expected = np.clip(np.round(np.stack([r, g, b], -1)), 0, 255)
    assert np.abs(sr.astype(float) - expected).max() <= 2


def test_y_model_on_gray_and_on_a_y_tensor() -> None:
    gray = RNG.integers(0, 256, (10, 8), dtype=np.uint8)
    sr = srzoo.upscale(Nearest(2, channels=1), gray)
    assert sr.shape == (20, 16)
    assert np.abs(sr.astype(int) - _nearest_np(gray, 2)).max() <= 1
    y = torch.rand(1, 1, 10, 8)
    out = srzoo.upscale(Nearest(2, channels=1), y)
    torch.testing.assert_close(out, F.interpolate(y, scale_factor=2, mode="nearest"))


# --------------------------------------------------------------------------- #
# Tiling, ensemble, clamping, outscale, dtype
# --------------------------------------------------------------------------- #


def test_tiled_upscale_equals_untiled_for_an_8bit_image() -> None:
    net = _edsr(2)
    image = _rgb(40, 33)
    whole = srzoo.upscale(net, image)
    tiled = srzoo.upscale(net, image, tile=20, overlap=OVERLAP, batch_size=3)
    assert tiled.dtype == np.uint8
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    assert (whole != tiled).mean() < 1e-3
    auto = srzoo.upscale(net, image, tile="auto", overlap=OVERLAP)
    assert np.abs(whole.astype(int) - auto.astype(int)).max() <= 1


def test_self_ensemble_averages_the_eight_transforms() -> None:
    net = _edsr(2)
    x = torch.rand(1, 3, 24, 20)
    outputs = []
    with torch.no_grad():
        for flip in (False, True):
            xf = x.flip(-1) if flip else x
            for k in range(4):
                y = torch.rot90(net(torch.rot90(xf, k, (-2, -1))), -k, (-2, -1))
                outputs.append(y.flip(-1) if flip else y)
    expected = torch.stack(outputs).mean(0).clamp(0, 1)
    got = srzoo.upscale(net, x, self_ensemble=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    plain = srzoo.upscale(net, x)
    assert (plain - got).abs().max() > 1e-3
    tiled = srzoo.upscale(net, x, self_ensemble=True, tile=18, overlap=6)
    torch.testing.assert_close(tiled, got, atol=1e-5, rtol=0)


def test_output_is_clamped_to_the_valid_range() -> None:
    loud = Nearest(2, gain=3.0)
    image = _rgb()
    sr = srzoo.upscale(loud, image)
    expected = np.clip(np.round((image / 255 * 3 - 1) * 255), 0, 255)
    np.testing.assert_array_equal(sr, _nearest_np(expected, 2))
    t = srzoo.upscale(Nearest(2, gain=3.0), torch.rand(1, 3, 5, 5))
    assert t.min() == 0 and t.max() == 1


@pytest.mark.parametrize(("outscale", "size"), [(3.0, (27, 21)), (1.0, (9, 7)), (2.5, (22, 18))])
def test_outscale_resizes_the_model_output(outscale: float, size: tuple[int, int]) -> None:
    flat = np.full((9, 7, 3), 77, np.uint8)
    sr = srzoo.upscale(Nearest(2), flat, outscale=outscale)
    assert sr.shape == (*size, 3) and sr.dtype == np.uint8
    assert np.abs(sr.astype(int) - 77).max() <= 1
    noise = torch.rand(1, 3, 9, 7)
    noise[..., ::2, :] = 0.0
    noise[..., 1::2, :] = 1.0
    t = srzoo.upscale(Nearest(2), noise, outscale=outscale)
    assert t.shape == (1, 3, *size)
    assert t.min() >= 0 and t.max() <= 1, "bicubic overshoot is clamped too"


def test_inputs_are_never_modified() -> None:
    net = _edsr(2)
    array = _rgb()
    array.setflags(write=False)  # as np.asarray(pil_image) gives
    copy_ = array.copy()
    tensor = torch.rand(1, 3, 9, 7)
    tensor_copy = tensor.clone()
    pil = Image.fromarray(copy_)
    pil_bytes = pil.tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = srzoo.upscale(net, array)
    srzoo.upscale(net, tensor)
    srzoo.upscale(net, pil)
    np.testing.assert_array_equal(array, copy_)
    assert torch.equal(tensor, tensor_copy)
    assert pil.tobytes() == pil_bytes
    assert not np.shares_memory(out, array)


def test_model_runs_in_eval_mode_and_is_left_as_it_was() -> None:
    net = Nearest(2)
    net.train()
    srzoo.upscale(net, _rgb())
    assert net.modes == [False] and net.training
    edsr = _edsr(2)
    before = {k: v.clone() for k, v in edsr.state_dict().items()}
    out = srzoo.upscale(edsr, torch.rand(1, 3, 8, 8), dtype=torch.bfloat16)
    assert out.dtype == torch.float32
    ref = srzoo.upscale(edsr, torch.rand(1, 3, 8, 8))
    assert ref.shape == out.shape
    assert all(v.dtype == torch.float32 for v in edsr.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in edsr.state_dict().items())


def test_bfloat16_is_close_to_float32() -> None:
    edsr = _edsr(2)
    x = torch.rand(1, 3, 12, 12)
    full = srzoo.upscale(edsr, x)
    half = srzoo.upscale(edsr, x, dtype=torch.bfloat16)
    assert (full - half).abs().max() < 0.05


# --------------------------------------------------------------------------- #
# Named models
# --------------------------------------------------------------------------- #


@pytest.fixture
def tiny_registered(tmp_path: Path) -> Iterator[str]:
    net = _edsr(2)
    weights = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    base = registry.get_spec("edsr-baseline")
    spec = registry.ModelSpec(
        name="tiny-test-edsr",
        family="edsr",
        builder=base.builder,
        scales=(2,),
        paper=base.paper,
        code_license="MIT",
        defaults={**base.defaults, "n_resblocks": 1, "n_feats": 8},
        weights=(registry.WeightSpec(scale=2, source=str(weights)),),
        size_multiple=4,
    )
    srzoo.register_model(spec)
    try:
        yield spec.name
    finally:
        registry._REGISTRY.pop(spec.name, None)


def test_model_by_name(tiny_registered: str) -> None:
    image = _rgb()
    sr = srzoo.upscale(tiny_registered, image, scale=2)
    np.testing.assert_array_equal(sr, srzoo.upscale(_edsr(2), image))


def test_unknown_model_or_scale() -> None:
    with pytest.raises(UnknownModelError, match="edsr-baseline"):
        srzoo.upscale("edsr-basline", _rgb())
    with pytest.raises(UnsupportedScaleError, match="x5"):
        srzoo.upscale("edsr-baseline", _rgb(), scale=5)
    with pytest.raises(ValueError, match="scale=3 but the model upscales x2"):
        srzoo.upscale(Nearest(2), _rgb(), scale=3)


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (np.full((4, 4, 3), np.nan, np.float32), ValueError, "NaN"),
        (torch.full((1, 3, 4, 4), float("nan")), ValueError, "NaN"),
        (torch.rand(4, 4), ValueError, r"\(N, C, H, W\) or \(C, H, W\)"),
        (torch.rand(1, 1, 3, 4, 4), ValueError, r"\(N, C, H, W\) or \(C, H, W\)"),
        (torch.rand(1, 5, 4, 4), ValueError, "5 channels"),
        (torch.rand(1, 2, 4, 4), ValueError, "2 channels"),
        (torch.rand(1, 3, 0, 4), ValueError, "empty"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
        (torch.zeros(1, 3, 4, 4, dtype=torch.int32), TypeError, "float in"),
        (np.zeros((4, 4), np.int64), TypeError, "int64"),
        ([[0, 1], [1, 0]], TypeError, "path, a PIL image, a numpy array or a torch tensor"),
    ],
)
def test_bad_images_are_clear_errors(image: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        srzoo.upscale(Nearest(2), image)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ImageReadError, match=r"notes\.png"):
        srzoo.upscale(Nearest(2), bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alpha": "nearest"}, "alpha"),
        ({"outscale": 0}, "outscale"),
        ({"outscale": float("nan")}, "outscale"),
        ({"overlap": -1}, "overlap"),
        ({"tile": "big"}, "tile"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        srzoo.upscale(Nearest(2), _rgb(), **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- #
# compare()
# --------------------------------------------------------------------------- #


def test_compare_sheet() -> None:
    lr = _rgb(12, 10)
    a = srzoo.upscale(Nearest(2), lr)
    b = srzoo.upscale(_edsr(2), lr)
    sheet = srzoo.compare(lr, {"nearest net": a, "edsr": torch.from_numpy(b).permute(2, 0, 1)})
    assert sheet.mode == "RGB"
    # Four panels of 20x24 side by side, each under a 16-pixel label, 4-pixel gaps.
    assert sheet.size == (4 * 20 + 5 * 4, 24 + 16 + 2 * 4)
    panel = np.asarray(sheet)[4 + 16 : 4 + 16 + 24, 4 : 4 + 20]
    np.testing.assert_array_equal(panel, _nearest_np(lr, 2))
    labelled = np.asarray(sheet)[4 : 4 + 16, 4 : 4 + 20]
    assert (labelled < 128).any(), "a label was drawn"
    zoomed = srzoo.compare(lr, [a, b], crop=(2, 3, 5, 4), labels=["x", "y"])
    assert zoomed.size[1] > sheet.size[1]


def test_compare_errors() -> None:
    lr = _rgb(12, 10)
    a = srzoo.upscale(Nearest(2), lr)
    with pytest.raises(ValueError, match="at least one output"):
        srzoo.compare(lr, [])
    with pytest.raises(ValueError, match="1 labels for 2 outputs"):
        srzoo.compare(lr, [a, a], labels=["x"])
    with pytest.raises(ValueError, match="is 10x12"):
        srzoo.compare(lr, [a, lr])
    with pytest.raises(ValueError, match="outside"):
        srzoo.compare(lr, [a], crop=(8, 0, 5, 5))


def test_y_model_on_real_data_matches_the_authors_output() -> None:
    # FSRCNN x3 with the official checkpoint on the author's own test image. The author's
    # pipeline converts colour with slightly different BT.601 constants and upsamples chroma with
    # PIL's bicubic, so agreement is close rather than exact.
    golden = require_shared(DATA / "golden/fsrcnn_x3")
    weights = require_shared(CHECKPOINTS / "fsrcnn_x3.pth")
    hr = Image.open(golden / "lenna.bmp").convert("RGB")
    size = (hr.width // 3 * 3, hr.height // 3 * 3)
    hr = hr.resize(size, Image.Resampling.BICUBIC)
    lr = hr.resize((size[0] // 3, size[1] // 3), Image.Resampling.BICUBIC)
    model = srzoo.load("fsrcnn", 3, weights=weights)
    sr = np.asarray(srzoo.upscale(model, lr)).astype(int)
    expected = np.asarray(Image.open(golden / "lenna_fsrcnn_x3.bmp").convert("RGB")).astype(int)
    assert sr.shape == expected.shape
    assert np.abs(sr - expected).max() <= 6 and np.abs(sr - expected).mean() < 2
    tiled = np.asarray(srzoo.upscale(model, lr, tile=48, overlap=8)).astype(int)
    np.testing.assert_array_equal(tiled, sr)
