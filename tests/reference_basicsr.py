"""Small stand-ins for BasicSR's and KAIR's EDSR, RCAN, MSRResNet and the GAN discriminators.

BasicSR itself does not import beside current torchvision, so these rebuild its module trees
(the attribute names are what a checkpoint's keys are made of) and its forward formulas, read
from BasicSR ``basicsr/archs/{edsr,rcan,discriminator}_arch.py``, KAIR
``models/network_msrresnet.py`` and Real-ESRGAN ``realesrgan/archs/discriminator_arch.py``.
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


class BasicSRVGGStyleDiscriminator(nn.Module):
    """BasicSR's VGGStyleDiscriminator, layer by layer as its file spells it out."""

    def __init__(self, num_in_ch: int, num_feat: int, input_size: int = 128) -> None:
        super().__init__()
        f = num_feat
        self.input_size = input_size
        self.conv0_0 = nn.Conv2d(num_in_ch, f, 3, 1, 1, bias=True)
        self.conv0_1 = nn.Conv2d(f, f, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(f, affine=True)
        self.conv1_0 = nn.Conv2d(f, f * 2, 3, 1, 1, bias=False)
        self.bn1_0 = nn.BatchNorm2d(f * 2, affine=True)
        self.conv1_1 = nn.Conv2d(f * 2, f * 2, 4, 2, 1, bias=False)
        self.bn1_1 = nn.BatchNorm2d(f * 2, affine=True)
        self.conv2_0 = nn.Conv2d(f * 2, f * 4, 3, 1, 1, bias=False)
        self.bn2_0 = nn.BatchNorm2d(f * 4, affine=True)
        self.conv2_1 = nn.Conv2d(f * 4, f * 4, 4, 2, 1, bias=False)
        self.bn2_1 = nn.BatchNorm2d(f * 4, affine=True)
        self.conv3_0 = nn.Conv2d(f * 4, f * 8, 3, 1, 1, bias=False)
        self.bn3_0 = nn.BatchNorm2d(f * 8, affine=True)
        self.conv3_1 = nn.Conv2d(f * 8, f * 8, 4, 2, 1, bias=False)
        self.bn3_1 = nn.BatchNorm2d(f * 8, affine=True)
        self.conv4_0 = nn.Conv2d(f * 8, f * 8, 3, 1, 1, bias=False)
        self.bn4_0 = nn.BatchNorm2d(f * 8, affine=True)
        self.conv4_1 = nn.Conv2d(f * 8, f * 8, 4, 2, 1, bias=False)
        self.bn4_1 = nn.BatchNorm2d(f * 8, affine=True)
        if input_size == 256:
            self.conv5_0 = nn.Conv2d(f * 8, f * 8, 3, 1, 1, bias=False)
            self.bn5_0 = nn.BatchNorm2d(f * 8, affine=True)
            self.conv5_1 = nn.Conv2d(f * 8, f * 8, 4, 2, 1, bias=False)
            self.bn5_1 = nn.BatchNorm2d(f * 8, affine=True)
        self.linear1 = nn.Linear(f * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        feat = self.lrelu(self.bn1_0(self.conv1_0(feat)))
        feat = self.lrelu(self.bn1_1(self.conv1_1(feat)))
        feat = self.lrelu(self.bn2_0(self.conv2_0(feat)))
        feat = self.lrelu(self.bn2_1(self.conv2_1(feat)))
        feat = self.lrelu(self.bn3_0(self.conv3_0(feat)))
        feat = self.lrelu(self.bn3_1(self.conv3_1(feat)))
        feat = self.lrelu(self.bn4_0(self.conv4_0(feat)))
        feat = self.lrelu(self.bn4_1(self.conv4_1(feat)))
        if self.input_size == 256:
            feat = self.lrelu(self.bn5_0(self.conv5_0(feat)))
            feat = self.lrelu(self.bn5_1(self.conv5_1(feat)))
        feat = feat.view(feat.size(0), -1)
        return self.linear2(self.lrelu(self.linear1(feat)))


class RealESRGANUNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's UNetDiscriminatorSN, with ``norm`` choosing the spectral-norm flavour."""

    def __init__(
        self,
        num_in_ch: int,
        num_feat: int = 64,
        skip_connection: bool = True,
        parametrized: bool = False,
    ) -> None:
        super().__init__()
        self.skip_connection = skip_connection
        norm = nn.utils.parametrizations.spectral_norm if parametrized else nn.utils.spectral_norm
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, kernel_size=3, stride=1, padding=1)
        self.conv1 = norm(nn.Conv2d(f, f * 2, 4, 2, 1, bias=False))
        self.conv2 = norm(nn.Conv2d(f * 2, f * 4, 4, 2, 1, bias=False))
        self.conv3 = norm(nn.Conv2d(f * 4, f * 8, 4, 2, 1, bias=False))
        self.conv4 = norm(nn.Conv2d(f * 8, f * 4, 3, 1, 1, bias=False))
        self.conv5 = norm(nn.Conv2d(f * 4, f * 2, 3, 1, 1, bias=False))
        self.conv6 = norm(nn.Conv2d(f * 2, f, 3, 1, 1, bias=False))
        self.conv7 = norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv8 = norm(nn.Conv2d(f, f, 3, 1, 1, bias=False))
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = F.leaky_relu(self.conv0(x), negative_slope=0.2)
        x1 = F.leaky_relu(self.conv1(x0), negative_slope=0.2)
        x2 = F.leaky_relu(self.conv2(x1), negative_slope=0.2)
        x3 = F.leaky_relu(self.conv3(x2), negative_slope=0.2)
        x3 = F.interpolate(x3, scale_factor=2, mode="bilinear", align_corners=False)
        x4 = F.leaky_relu(self.conv4(x3), negative_slope=0.2)
        if self.skip_connection:
            x4 = x4 + x2
        x4 = F.interpolate(x4, scale_factor=2, mode="bilinear", align_corners=False)
        x5 = F.leaky_relu(self.conv5(x4), negative_slope=0.2)
        if self.skip_connection:
            x5 = x5 + x1
        x5 = F.interpolate(x5, scale_factor=2, mode="bilinear", align_corners=False)
        x6 = F.leaky_relu(self.conv6(x5), negative_slope=0.2)
        if self.skip_connection:
            x6 = x6 + x0
        out = F.leaky_relu(self.conv7(x6), negative_slope=0.2)
        out = F.leaky_relu(self.conv8(out), negative_slope=0.2)
        return self.conv9(out)
