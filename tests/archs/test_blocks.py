"""Layers shared by several families: MATLAB's cubic kernel, MATLAB-exact bicubic enlargement,
and the receptive-field arithmetic of chains of layers.

SRCNN and VDSR enlarge their input inside ``forward`` exactly as MATLAB's ``imresize`` does
(:func:`srzoo.metrics.imresize` is checked against MATLAB itself in ``tests/test_metrics.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srzoo._util import matlab_cubic
from srzoo.archs._blocks import (
    DySample,
    FieldStep,
    matlab_bicubic_upsample,
    receptive_radius,
    upsampler_steps,
)
from srzoo.errors import ArgumentError
from srzoo.metrics import imresize


def test_matlab_cubic_is_keys_kernel_with_a_minus_one_half() -> None:
    x = torch.tensor([-2.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
    # Keys (1981) with a = -0.5: (a+2)|x|^3 - (a+3)|x|^2 + 1 up to 1,
    # a|x|^3 - 5a|x|^2 + 8a|x| - 4a up to 2, zero beyond.
    expected = torch.tensor(
        [0.0, 0.0, -0.0625, 0.0, 0.5625, 1.0, 0.8671875, 0.5625, 0.0, -0.0625, 0.0, 0.0]
    )
    assert torch.equal(matlab_cubic(x), expected)
    assert matlab_cubic(x.double()).dtype == torch.float64


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
    with pytest.raises(ArgumentError, match="positive integer"):
        matlab_bicubic_upsample(torch.rand(1, 1, 4, 4), 0)


# --------------------------------------------------------------------------------------------
# receptive_radius: the exact radius of a chain of layers, checked against autograd
# --------------------------------------------------------------------------------------------


class _Chain(nn.Module):
    """Single-channel layers for the steps of :func:`receptive_radius`, with random weights.

    A ``("zeros", f)`` step is the input side of a stride-``f`` transposed convolution, so it
    must be followed by the ``("conv", n)`` of the kernel; the two become one
    ``ConvTranspose2d`` (as in FSRCNN).
    """

    def __init__(self, steps: list[tuple[FieldStep, int]]) -> None:
        super().__init__()
        self.ops: list[Callable[[torch.Tensor], torch.Tensor]] = []
        self.layers = nn.ModuleList()
        i = 0
        while i < len(steps):
            kind, n = steps[i]
            layer: nn.Module | None = None
            if kind == "conv":
                layer = nn.Conv2d(1, 1, 2 * n + 1, padding=n)
            elif kind == "zeros":
                _, reach = steps[i + 1]
                layer = nn.ConvTranspose2d(
                    1, 1, 2 * reach + 1, stride=n, padding=reach, output_padding=n - 1
                )
                i += 1
            elif kind == "up":
                self.ops.append(lambda x, n=n: F.interpolate(x, scale_factor=n, mode="nearest"))
            else:
                self.ops.append(lambda x, n=n: matlab_bicubic_upsample(x, n))
            if layer is not None:
                torch.nn.init.uniform_(layer.weight, 0.5, 1.5)  # no tap weighs zero
                self.layers.append(layer)
                self.ops.append(layer)
            i += 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op(x)
        return x


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([("conv", 3)], 3),
        ([("conv", 1), ("up", 4), ("conv", 1)], 2),
        ([("conv", 1), ("up", 2), ("conv", 1), ("up", 2), ("conv", 1)], 2),
        ([("conv", 2), ("up", 3), ("conv", 4)], 4),
        ([("conv", 6), ("zeros", 2), ("conv", 4)], 8),  # FSRCNN x2
        ([("conv", 6), ("zeros", 3), ("conv", 4)], 8),  # FSRCNN x3
        ([("conv", 6), ("zeros", 4), ("conv", 4)], 7),  # FSRCNN x4
        ([("bicubic", 2)], 2),
        ([("bicubic", 3)], 2),
        ([("bicubic", 3), ("conv", 8)], 4),  # SRCNN x3: not 2 + ceil(8 / 3)
        ([("bicubic", 2), ("conv", 8)], 6),
        ([("bicubic", 4), ("conv", 20)], 7),  # VDSR x4
    ],
)
def test_receptive_radius_is_the_measured_one(
    steps: list[tuple[FieldStep, int]], expected: int
) -> None:
    assert receptive_radius(steps) == expected
    torch.manual_seed(0)
    chain = _Chain(steps).double()
    factor = math.prod(n for kind, n in steps if kind != "conv")
    side = 2 * expected + 9
    centre = side // 2
    x = torch.rand(1, 1, side, side, dtype=torch.float64, requires_grad=True)
    y = chain(x)
    assert y.shape[-1] == side * factor
    y[
        0, 0, centre * factor : (centre + 1) * factor, centre * factor : (centre + 1) * factor
    ].sum().backward()
    assert x.grad is not None
    rows, cols = (x.grad[0, 0] != 0).nonzero(as_tuple=True)
    measured = int(torch.maximum((rows - centre).abs(), (cols - centre).abs()).max())
    assert measured == expected


def test_upsampler_steps() -> None:
    assert upsampler_steps(3) == [("conv", 1), ("up", 3)]
    assert upsampler_steps(8) == [("conv", 1), ("up", 2)] * 3
    with pytest.raises(ArgumentError, match="powers of two"):
        upsampler_steps(5)


# --------------------------------------------------------------------------------------------
# DySample: learned offsets around the regular sub-pixel positions
# --------------------------------------------------------------------------------------------


def _unshifted_dysample(channels: int, scale: int) -> DySample:
    """A DySample whose learned offsets are zero: it samples at the regular positions only."""
    layer = DySample(channels, channels, scale, groups=2, end_kernel=None)
    nn.init.zeros_(layer.offset.weight)
    assert layer.offset.bias is not None
    nn.init.zeros_(layer.offset.bias)
    return layer


@pytest.mark.parametrize("scale", [2, 3])
def test_dysample_without_offsets_is_bilinear_enlargement(scale: int) -> None:
    # The regular positions (init_pos) are bilinear upsampling's: a mix-up of x and y or of
    # the sub-pixel order shows on a non-square image.
    x = torch.rand(2, 4, 5, 7, dtype=torch.float64)
    got = _unshifted_dysample(4, scale).double()(x)
    expected = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    # init_pos is a float32 buffer: 1/3 is exact to ~1e-8 only.
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_dysample_refuses_channels_its_groups_do_not_divide() -> None:
    with pytest.raises(ArgumentError, match=r"Net: DySample .* multiple of 4"):
        DySample(6, 3, 2, groups=4, name="Net")
