"""Small stand-ins for BasicSR's and KAIR's EDSR, RCAN and MSRResNet, for layout tests.

BasicSR itself does not import beside current torchvision, so these rebuild its module trees
(the attribute names are what a checkpoint's keys are made of) and its forward formulas, read
from BasicSR ``basicsr/archs/{edsr,rcan}_arch.py`` and KAIR ``models/network_msrresnet.py``.
They are written independently of srzoo's modules so that a wrong mapping shows up as a
different output.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MEAN = (0.4488, 0.4371, 0.4040)


class _Block(nn.Module):
    def __init__(self, c: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, 1, 1)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1)
        self.relu = nn.ReLU()
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


def _upsample(scale: int, c: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    if scale == 3:
        layers += [nn.Conv2d(c, 9 * c, 3, 1, 1), nn.PixelShuffle(3)]
    else:
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(c, 4 * c, 3, 1, 1), nn.PixelShuffle(2)]
    return nn.Sequential(*layers)


class BasicSREDSR(nn.Module):
    def __init__(self, num_feat: int, num_block: int, upscale: int, res_scale: float) -> None:
        super().__init__()
        self.mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[_Block(num_feat, res_scale) for _ in range(num_block)])
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = _upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_first((x - self.mean) * 255.0)
        res = self.conv_after_body(self.body(x)) + x
        return self.conv_last(self.upsample(res)) / 255.0 + self.mean


class _CA(nn.Module):
    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(c, c // squeeze, 1),
            nn.ReLU(),
            nn.Conv2d(c // squeeze, c, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class _RCAB(nn.Module):
    def __init__(self, c: int, squeeze: int) -> None:
        super().__init__()
        self.rcab = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1), _CA(c, squeeze)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rcab(x) + x


class _Group(nn.Module):
    def __init__(self, c: int, n: int, squeeze: int) -> None:
        super().__init__()
        self.residual_group = nn.Sequential(*[_RCAB(c, squeeze) for _ in range(n)])
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.residual_group(x)) + x


class BasicSRRCAN(nn.Module):
    def __init__(self, num_feat: int, num_group: int, num_block: int, upscale: int) -> None:
        super().__init__()
        self.mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[_Group(num_feat, num_block, 4) for _ in range(num_group)])
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = _upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_first((x - self.mean) * 255.0)
        res = self.conv_after_body(self.body(x)) + x
        return self.conv_last(self.upsample(res)) / 255.0 + self.mean


class KairMSRResNet(nn.Module):
    def __init__(self, nc: int, nb: int, upscale: int) -> None:
        super().__init__()
        self.upscale = upscale
        self.conv_first = nn.Conv2d(3, nc, 3, 1, 1)
        self.recon_trunk = nn.Sequential(*[_Block(nc) for _ in range(nb)])
        if upscale == 4:
            self.upconv1 = nn.Conv2d(nc, nc * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(nc, nc * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv1 = nn.Conv2d(nc, nc * upscale**2, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(upscale)
        self.HRconv = nn.Conv2d(nc, nc, 3, 1, 1)
        self.conv_last = nn.Conv2d(nc, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.recon_trunk(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.upscale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.HRconv(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode="bilinear")
