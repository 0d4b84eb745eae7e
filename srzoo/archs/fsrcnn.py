"""FSRCNN: the fast super-resolution CNN with a deconvolution upsampler.

Paper: Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural Network",
ECCV 2016, arXiv:1608.00367. FSRCNN(d=56, s=12, m=4) is the paper's main network.

Parameter names follow yjn870/FSRCNN-pytorch ``models.py`` (``first_part`` / ``mid_part`` /
``last_part``), so its ``fsrcnn_x{2,3,4}.pth`` files load unchanged. Like that code the
convolutions are zero-padded so the output is exactly ``scale`` times the input.

The network works on the luma (Y) channel of the low-resolution image: one channel in, one out.
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import ModelSpec, Paper, register_model
from ._blocks import check_luma_input

__all__ = ["FSRCNN"]


class FSRCNN(nn.Module):
    """Fast Super-Resolution CNN on the Y channel.

    Feature extraction (5x5, ``d`` filters), shrinking (1x1 to ``s``), ``m`` 3x3 mapping layers,
    expanding (1x1 back to ``d``), each followed by a PReLU, then a 9x9 transposed convolution
    with stride ``scale``.

    Args:
        scale: Upscaling factor (stride of the deconvolution).
        d: Feature channels (LR feature dimension).
        s: Channels after shrinking.
        m: Mapping layers.
    """

    def __init__(self, *, scale: int = 3, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(f"FSRCNN needs a positive integer scale, got {scale}")
        self.scale = scale
        self.in_channels = 1
        self.out_channels = 1
        self.first_part = nn.Sequential(nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d))
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        # padding 4 and output_padding scale - 1 make the output exactly scale * input.
        self.last_part = nn.ConvTranspose2d(
            d, 1, 9, stride=scale, padding=4, output_padding=scale - 1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_luma_input(x, self.in_channels, "FSRCNN")
        return self.last_part(self.mid_part(self.first_part(x)))


register_model(
    ModelSpec(
        name="fsrcnn",
        family="fsrcnn",
        builder=FSRCNN,
        scales=(2, 3, 4),
        paper=Paper(
            title="Accelerating the Super-Resolution Convolutional Neural Network",
            venue="ECCV",
            year=2016,
            arxiv="1608.00367",
        ),
        code_license="none published",
        description="FSRCNN(56, 12, 4) on the Y channel, deconvolution upsampler",
        task="psnr",
        colour="y",
        default_scale=3,
        defaults={"d": 56, "s": 12, "m": 4},
    )
)
