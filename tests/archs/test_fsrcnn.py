"""FSRCNN: parameter count, the Y-channel input, yjn870's layout on identical random weights (a
stand-in of yjn870/FSRCNN-pytorch ``models.py``), x3 against the author's own output image with
the author's checkpoint, and that checkpoint refused at x2 and x4 (its tensors have the same
shapes at every scale, so only its registered digest tells).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
from torch import nn

import srzoo
from srzoo.errors import ArgumentError, WeightsError

from ..util import CHECKPOINTS, DATA, TINY, assert_loads_correctly, require_shared


class YjnFSRCNN(nn.Module):
    """yjn870/FSRCNN-pytorch FSRCNN(scale, d=56, s=12, m=4)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.first_part = nn.Sequential(nn.Conv2d(1, 56, 5, padding=2), nn.PReLU(56))
        mid: list[nn.Module] = [nn.Conv2d(56, 12, 1), nn.PReLU(12)]
        for _ in range(4):
            mid.extend([nn.Conv2d(12, 12, 3, padding=1), nn.PReLU(12)])
        mid.extend([nn.Conv2d(12, 56, 1), nn.PReLU(56)])
        self.mid_part = nn.Sequential(*mid)
        self.last_part = nn.ConvTranspose2d(56, 1, 9, scale, 4, output_padding=scale - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_count_of_the_paper_configuration(scale: int) -> None:
    # d = 56, s = 12, m = 4: conv(5x5) + shrink(1x1) + 4 x map(3x3) + expand(1x1), each with a
    # PReLU of one slope per channel, then a 9x9 deconvolution to one channel.
    d, s, m = 56, 12, 4
    feature = 25 * d + d + d
    shrink = d * s + s + s
    mapping = m * (9 * s * s + s + s)
    expand = s * d + d + d
    deconv = d * 81 + 1
    expected = feature + shrink + mapping + expand + deconv
    assert srzoo.model_info("fsrcnn").num_params(scale) == expected


def test_registered_x3_checkpoint() -> None:
    (w,) = srzoo.model_info("fsrcnn").weights
    assert (w.scale, w.tag, w.size) == (3, "default", 54_998)
    assert w.sha256 == "f65b55819c1258048bc8c1ca96f9e24bd4339f779951d7f928144c08e3868d75"
    assert w.source == "https://www.dropbox.com/s/pm1ed2nyboulz5z/fsrcnn_x3.pth?dl=1"
    assert [(m.value, m.dataset, m.scale, m.metric) for m in w.metrics] == [
        (33.22, "Set5", 3, "psnr_y")
    ]
    assert "Ours (91-image)" in w.metrics[0].source
    assert w.license.startswith("none published")


def test_the_shared_x3_file_is_the_registered_checkpoint() -> None:
    path = require_shared(CHECKPOINTS / "fsrcnn_x3.pth")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (w,) = srzoo.model_info("fsrcnn").weights
    assert (digest, path.stat().st_size) == (w.sha256, w.size)


@pytest.mark.parametrize("scale", [2, 4])
def test_x3_weights_are_refused_at_another_scale(scale: int) -> None:
    # Every FSRCNN tensor has the same shape at every scale: only the file's digest tells that
    # these are x3 weights, which would otherwise load and upscale to garbage.
    weights = require_shared(CHECKPOINTS / "fsrcnn_x3.pth")
    with pytest.raises(WeightsError, match=r"registered checkpoint of 'fsrcnn' at x3") as info:
        srzoo.load("fsrcnn", scale, weights=weights)
    assert f"not of 'fsrcnn' at x{scale}" in str(info.value)
    assert str(weights) in str(info.value)


def test_rgb_input_is_refused_with_a_clear_message() -> None:
    model = srzoo.create("fsrcnn", 2, **TINY["fsrcnn"]).eval()
    with pytest.raises(ArgumentError, match="Y channel"):
        model(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_upstream_layout_loads_and_matches(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(tmp_path, "fsrcnn", scale, YjnFSRCNN(scale), seed=scale, channels=1)


# --------------------------------------------------------------------------------------------
# x3: the author's checkpoint reproduces the author's output image
# --------------------------------------------------------------------------------------------

GOLDEN = DATA / "golden" / "fsrcnn_x3"


def _yjn_rgb_to_ycbcr(img: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    # yjn870's utils.py formula, kept as published (its 64.738 differs from BT.601's 65.738):
    # reproducing the author's image needs the author's conversion.
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    y = 16.0 + (64.738 * r + 129.057 * g + 25.064 * b) / 256.0
    cb = 128.0 + (-37.945 * r - 74.494 * g + 112.439 * b) / 256.0
    cr = 128.0 + (112.439 * r - 94.154 * g - 18.285 * b) / 256.0
    return np.stack([y, cb, cr], axis=-1)


def _yjn_ycbcr_to_rgb(img: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    y, cb, cr = img[..., 0], img[..., 1], img[..., 2]
    r = 298.082 * y / 256.0 + 408.583 * cr / 256.0 - 222.921
    g = 298.082 * y / 256.0 - 100.291 * cb / 256.0 - 208.120 * cr / 256.0 + 135.576
    b = 298.082 * y / 256.0 + 516.412 * cb / 256.0 - 276.836
    return np.stack([r, g, b], axis=-1)


def test_fsrcnn_x3_reproduces_the_authors_lenna() -> None:
    image_module = pytest.importorskip("PIL.Image")
    weights = require_shared(CHECKPOINTS / "fsrcnn_x3.pth")
    require_shared(GOLDEN / "lenna_fsrcnn_x3.bmp")
    scale = 3
    model = srzoo.load("fsrcnn", scale, weights=weights)

    # yjn870's test.py: resize (not crop) the HR image to a multiple of the scale with PIL
    # bicubic, PIL bicubic down, PIL bicubic up for the chroma.
    image = image_module.open(GOLDEN / "lenna.bmp").convert("RGB")
    w, h = (image.width // scale) * scale, (image.height // scale) * scale
    hr = image.resize((w, h), resample=image_module.BICUBIC)
    lr = hr.resize((w // scale, h // scale), resample=image_module.BICUBIC)
    bicubic = lr.resize((w, h), resample=image_module.BICUBIC)
    assert np.array_equal(
        np.asarray(bicubic), np.asarray(image_module.open(GOLDEN / "lenna_bicubic_x3.bmp"))
    ), "PIL's bicubic differs from the author's: the comparison below would be meaningless"

    def y_of(img: Any) -> torch.Tensor:
        y = _yjn_rgb_to_ycbcr(np.asarray(img, dtype=np.float32))[..., 0] / 255.0
        return torch.from_numpy(y.astype(np.float32))[None, None]

    with torch.no_grad():
        pred = model(y_of(lr)).clamp(0.0, 1.0)
    assert pred.shape == (1, 1, h, w)

    ycbcr = _yjn_rgb_to_ycbcr(np.asarray(bicubic, dtype=np.float32))
    ycbcr[..., 0] = pred[0, 0].double().numpy() * 255.0
    # The author's np.clip(...).astype(np.uint8) truncates rather than rounds.
    ours = np.clip(_yjn_ycbcr_to_rgb(ycbcr), 0.0, 255.0).astype(np.uint8)
    golden = np.asarray(image_module.open(GOLDEN / "lenna_fsrcnn_x3.bmp"))
    assert ours.shape == golden.shape
    assert np.abs(ours.astype(np.int16) - golden.astype(np.int16)).max() <= 1

    # The author's PSNR: Y (their formula) of the resized HR against the clamped prediction,
    # both /255, no border crop, no rounding; printed to two decimals.
    mse = torch.mean((y_of(hr).double() - pred.double()) ** 2).item()
    assert round(10 * math.log10(1.0 / mse), 2) == 34.66
