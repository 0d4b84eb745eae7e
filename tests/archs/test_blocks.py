"""Layers shared by several families: MATLAB's cubic kernel and MATLAB-exact bicubic enlargement.

SRCNN and VDSR enlarge their input inside ``forward`` exactly as MATLAB's ``imresize`` does
(:func:`srzoo.metrics.imresize` is checked against MATLAB itself in ``tests/test_metrics.py``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srzoo._util import matlab_cubic
from srzoo.archs._blocks import matlab_bicubic_upsample
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
    with pytest.raises(ValueError, match="positive integer"):
        matlab_bicubic_upsample(torch.rand(1, 1, 4, 4), 0)
