"""The single-channel classics: SRCNN, FSRCNN, ESPCN and VDSR.

Besides the model contract, each family is checked against a stand-in of its upstream code
(the module tree that makes the checkpoint keys, and the forward formula, written from
yjn870/{SRCNN,FSRCNN,ESPCN}-pytorch ``models.py`` and twtygqyy/pytorch-vdsr ``vdsr.py``) fed
through ``srzoo.metrics.imresize`` where the paper enlarges first, and FSRCNN x3 against the
author's own output image with the author's checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srzoo
from srzoo.archs._blocks import matlab_bicubic_upsample
from srzoo.metrics import imresize

from .util import (
    CHECKPOINTS,
    DATA,
    TINY,
    randomize_,
    require_shared,
)

CLASSIC = ("srcnn", "fsrcnn", "espcn", "vdsr")

# --------------------------------------------------------------------------- #
# MATLAB bicubic enlargement
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [(1, 1), (1, 6), (2, 3), (13, 11), (24, 17)])
def test_bicubic_upsample_matches_matlab_imresize(
    scale: int, dtype: torch.dtype, size: tuple[int, int]
) -> None:
    torch.manual_seed(scale)
    x = torch.rand(2, 3, *size, dtype=dtype)
    got = matlab_bicubic_upsample(x, scale)
    expected = imresize(x, scale=scale)
    assert got.shape == expected.shape == (2, 3, size[0] * scale, size[1] * scale)
    assert got.dtype == dtype
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_bicubic_upsample_is_not_pytorch_bicubic() -> None:
    # PyTorch's a = -0.75 kernel and clamped border give visibly different values: the
    # enlargement the papers trained on must not silently be replaced by F.interpolate.
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    torch_bicubic = F.interpolate(x, scale_factor=3, mode="bicubic", align_corners=False)
    assert (matlab_bicubic_upsample(x, 3) - torch_bicubic).abs().max() > 1e-3


def test_bicubic_upsample_rejects_bad_scale() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        matlab_bicubic_upsample(torch.rand(1, 1, 4, 4), 0)


# --------------------------------------------------------------------------- #
# The model contract
# --------------------------------------------------------------------------- #


def test_classics_are_registered_as_y_channel_models() -> None:
    for name in CLASSIC:
        spec = srzoo.model_info(name)
        assert spec.colour == "y"
        assert spec.task == "psnr"
        assert spec.scales == (2, 3, 4)
        model = spec.build(spec.scale)
        assert model.in_channels == model.out_channels == 1


@pytest.mark.parametrize("name", CLASSIC)
def test_rgb_input_is_refused_with_a_clear_message(name: str) -> None:
    model = srzoo.create(name, 2, **TINY[name]).eval()
    with pytest.raises(ValueError, match="Y channel"):
        model(torch.rand(1, 3, 8, 8))


def _srcnn_params() -> int:
    # 9-5-5 with n1 = 64, n2 = 32 on one channel.
    return (1 * 64 * 81 + 64) + (64 * 32 * 25 + 32) + (32 * 1 * 25 + 1)


def _fsrcnn_params() -> int:
    # d = 56, s = 12, m = 4: conv(5x5) + shrink(1x1) + 4 x map(3x3) + expand(1x1), each with a
    # PReLU of one slope per channel, then a 9x9 deconvolution to one channel.
    d, s, m = 56, 12, 4
    feature = 25 * d + d + d
    shrink = d * s + s + s
    mapping = m * (9 * s * s + s + s)
    expand = s * d + d + d
    deconv = d * 81 + 1
    return feature + shrink + mapping + expand + deconv


def _espcn_params(scale: int) -> int:
    return (25 * 64 + 64) + (64 * 32 * 9 + 32) + (32 * scale * scale * 9 + scale * scale)


def _vdsr_params() -> int:
    # 20 bias-free 3x3 layers: 1 -> 64, 18 x (64 -> 64), 64 -> 1.
    return 9 * 64 + 18 * 9 * 64 * 64 + 9 * 64


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_counts_of_paper_configurations(scale: int) -> None:
    assert srzoo.model_info("srcnn").num_params(scale) == _srcnn_params()
    assert srzoo.model_info("fsrcnn").num_params(scale) == _fsrcnn_params()
    assert srzoo.model_info("espcn").num_params(scale) == _espcn_params(scale)
    assert srzoo.model_info("vdsr").num_params(scale) == _vdsr_params()


def test_vdsr_is_a_residual_over_the_matlab_enlargement() -> None:
    # With a zero output layer VDSR must return exactly the bicubic enlargement it was trained on.
    net = randomize_(srzoo.create("vdsr", 3, depth=3, n_feats=4)).eval()
    nn.init.zeros_(net.output.weight)
    x = torch.rand(1, 1, 7, 9)
    with torch.no_grad():
        torch.testing.assert_close(net(x), imresize(x, scale=3), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- #
# Upstream layouts on identical random weights
# --------------------------------------------------------------------------- #


class _YjnSRCNN(nn.Module):
    """yjn870/SRCNN-pytorch: expects an already enlarged Y image."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 9, padding=4)
        self.conv2 = nn.Conv2d(64, 32, 5, padding=2)
        self.conv3 = nn.Conv2d(32, 1, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(torch.relu(self.conv2(torch.relu(self.conv1(x)))))


class _YjnFSRCNN(nn.Module):
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


class _YjnESPCN(nn.Module):
    """yjn870/ESPCN-pytorch ESPCN(scale)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.first_part = nn.Sequential(
            nn.Conv2d(1, 64, 5, padding=2), nn.Tanh(), nn.Conv2d(64, 32, 3, padding=1), nn.Tanh()
        )
        self.last_part = nn.Sequential(
            nn.Conv2d(32, scale**2, 3, padding=1), nn.PixelShuffle(scale)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.first_part(x))


class _TwtygqyyVDSR(nn.Module):
    """twtygqyy/pytorch-vdsr Net: expects an already enlarged Y image."""

    class _Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(64, 64, 3, 1, 1, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.conv(x))

    def __init__(self) -> None:
        super().__init__()
        self.residual_layer = nn.Sequential(*(self._Block() for _ in range(18)))
        self.input = nn.Conv2d(1, 64, 3, 1, 1, bias=False)
        self.output = nn.Conv2d(64, 1, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.output(self.residual_layer(torch.relu(self.input(x))))
        return out + x


def _reference(name: str, scale: int) -> tuple[nn.Module, bool]:
    """The upstream stand-in, and whether it expects a MATLAB-enlarged input."""
    if name == "srcnn":
        return _YjnSRCNN(), True
    if name == "fsrcnn":
        return _YjnFSRCNN(scale), False
    if name == "espcn":
        return _YjnESPCN(scale), False
    return _TwtygqyyVDSR(), True


@pytest.mark.parametrize(("name", "scale"), [(n, s) for n in CLASSIC for s in (2, 3, 4)])
def test_upstream_layout_loads_and_matches(tmp_path: Path, name: str, scale: int) -> None:
    ref, enlarge_first = _reference(name, scale)
    ref = randomize_(ref, seed=scale).eval()
    path = tmp_path / f"{name}_x{scale}.pth"
    torch.save(ref.state_dict(), path)
    ours = srzoo.load(name, scale, weights=path)
    torch.manual_seed(1)
    x = torch.rand(2, 1, 11, 9)
    with torch.no_grad():
        expected = ref(imresize(x, scale=scale) if enlarge_first else x)
        got = ours(x)
    assert got.shape == expected.shape == (2, 1, 11 * scale, 9 * scale)
    assert (got - expected).abs().max().item() <= 1e-5


def test_torchsr_vdsr_file_is_refused(tmp_path: Path) -> None:
    # torchSR's "vdsr" is EDSR-PyTorch's RGB network (biased convolutions, mean shift,
    # PyTorch bicubic), not the paper's: its file must fail loudly, never load partially.
    torchsr_models = pytest.importorskip("torchsr.models")
    ref = torchsr_models.vdsr(2)
    path = tmp_path / "vdsr_torchsr.pt"
    torch.save(ref.state_dict(), path)
    with pytest.raises(srzoo.IncompatibleWeightsError):
        srzoo.load("vdsr", 2, weights=path)


# --------------------------------------------------------------------------- #
# FSRCNN x3: the author's checkpoint reproduces the author's output image
# --------------------------------------------------------------------------- #

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
