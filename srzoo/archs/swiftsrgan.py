"""Swift-SRGAN: an SRGAN generator built from depthwise-separable convolutions.

Paper: Krishnan, Krishnan, "SwiftSRGAN -- Rethinking Super-Resolution for Efficient and
Real-time Inference", arXiv preprint 2021, arXiv:2111.14320.

Parameter names follow Koushik0901/Swift-SRGAN ``swift-srgan/models.py`` (the same keys as
spandrel's SwiftSRGAN): ``initial``, ``residual.N.block1`` / ``block2``, ``convblock``,
``upsampler.N``, ``final_conv``; every convolution is a ``depthwise`` k x k convolution followed by
a ``pointwise`` 1x1 one. The authors' training script saves the generator as
``{"model": state_dict}`` in a ``.pth.tar`` pickle; srzoo's reader unwraps ``model``, so the
released files load unchanged (tensors only, read with ``weights_only=True``).

The network is SRGAN's: a 9x9 convolution and PReLU, residual blocks (conv, batch norm, PReLU,
conv, batch norm) with a long skip over them and a closing conv + batch norm, ``log2(scale)``
x2 pixel-shuffle stages with PReLU, and a 9x9 convolution whose ``tanh`` is mapped to [0, 1].
The upstream ``ConvBlock`` creates a PReLU even where it is not applied (the second convolution
of each residual block, and ``convblock``): the official files store those slopes, so this module
keeps them as buffers (loaded, saved, never used, never trained).

Receptive field: 4 + 2 * num_blocks + 1 low-resolution pixels (37 with the paper's 16 blocks),
then one 3x3 convolution per x2 stage and the 9x9 convolution at high resolution.

Registered weights: the authors' GitHub release ``v0.1`` (x2 and x4, 64 features, 16 blocks,
trained as a GAN on bicubic downscaling; input RGB in [0, 1]). The x2 file (2.4 MB) is larger
than its generator's tensors (about 0.9 MB, the size of the x4 file); srzoo reads its ``model``
entry. The authors report PSNR/SSIM only in a comparison of GAN generators, not as a benchmark
table srzoo can attach to these files, so no metric is registered.

Example:
    >>> model = srzoo.load("swiftsrgan", scale=4)
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    WeightSpec,
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import FieldStep, image_forward, receptive_radius

__all__ = ["SwiftSRGAN", "detect_swiftsrgan"]


class _SeparableConv(nn.Module):
    """A depthwise ``k x k`` convolution, then a pointwise 1x1 one (``SeperableConv2d``)."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, *, bias: bool = True) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_ch, in_ch, kernel_size, padding=kernel_size // 2, groups=in_ch, bias=bias
        )
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class _StoredSlopes(nn.Module):
    """The PReLU slopes upstream builds but never applies: kept so that the files load."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.full((channels,), 0.25))


class _ConvBlock(nn.Module):
    """Separable conv, batch norm (or none) and PReLU (or none) under upstream's names."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, *, use_bn: bool, use_act: bool
    ) -> None:
        super().__init__()
        self.use_act = use_act
        self.cnn = _SeparableConv(in_ch, out_ch, kernel_size, bias=not use_bn)
        self.bn: nn.Module = nn.BatchNorm2d(out_ch) if use_bn else nn.Identity()
        self.act: nn.Module = nn.PReLU(out_ch) if use_act else _StoredSlopes(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.cnn(x))
        return self.act(x) if self.use_act else x


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1 = _ConvBlock(channels, channels, 3, use_bn=True, use_act=True)
        self.block2 = _ConvBlock(channels, channels, 3, use_bn=True, use_act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block2(self.block1(x)) + x


class _UpsampleBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _SeparableConv(channels, channels * 4, 3)
        self.ps = nn.PixelShuffle(2)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.ps(self.conv(x)))


def _stages(scale: int) -> int:
    """The number of x2 stages of ``scale``, a power of two."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1 or scale & (scale - 1):
        raise ArgumentError(
            f"SwiftSRGAN upscales by x2 stages: scale must be a power of two, got {scale!r}"
        )
    return scale.bit_length() - 1


class SwiftSRGAN(nn.Module):
    """The Swift-SRGAN generator.

    Args:
        scale: Upscaling factor, a power of two (one x2 pixel-shuffle stage per factor of two).
        in_channels: Image channels (input and output).
        num_channels: Feature channels.
        num_blocks: Residual blocks.

    Example:
        >>> SwiftSRGAN(scale=4)(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        num_channels: int = 64,
        num_blocks: int = 16,
    ) -> None:
        super().__init__()
        stages = _stages(scale)
        if in_channels < 1 or num_channels < 1 or num_blocks < 0:
            raise ArgumentError(
                f"SwiftSRGAN: needs in_channels, num_channels >= 1 and num_blocks >= 0, got "
                f"{in_channels}, {num_channels} and {num_blocks}"
            )
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = in_channels
        # 9x9 head, two 3x3 per block, the closing 3x3 at LR; a 3x3 per x2 stage; 9x9 at HR.
        steps: list[tuple[FieldStep, int]] = [("conv", 4 + 2 * num_blocks + 1)]
        steps += [("conv", 1), ("up", 2)] * stages
        self.receptive_field: int | None = receptive_radius([*steps, ("conv", 4)])
        self.initial = _ConvBlock(in_channels, num_channels, 9, use_bn=False, use_act=True)
        self.residual = nn.Sequential(*(_ResidualBlock(num_channels) for _ in range(num_blocks)))
        self.convblock = _ConvBlock(num_channels, num_channels, 3, use_bn=True, use_act=False)
        self.upsampler = nn.Sequential(*(_UpsampleBlock(num_channels) for _ in range(stages)))
        self.final_conv = _SeparableConv(num_channels, in_channels, 9)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        initial = self.initial(x)
        features = self.convblock(self.residual(initial)) + initial
        out = self.final_conv(self.upsampler(features))
        # tanh in [-1, 1] mapped to [0, 1], as upstream; 0.5 * tanh + 0.5 is the same map.
        return torch.tanh(out).add(1.0).div(2.0)


_RELEASES = "https://github.com/Koushik0901/Swift-SRGAN/releases/download/v0.1"
_X2_SHA = "b57a94a2be1e84eded4059aabce31e768a0c1e43887a14d457a586f3b1fcd877"
_X4_SHA = "f741441dccb163c394afe095f76a5ca4a85732e699032732dc29320a900a609e"
_TRAIN = "bicubic-downscaled crops (GAN training of the authors' train.py; images not named)"


def _weights(scale: int, sha: str, size: int) -> WeightSpec:
    return WeightSpec(
        scale=scale,
        source=f"{_RELEASES}/swift_srgan_{scale}x.pth.tar",
        sha256=sha,
        size=size,
        input_range="0-1",
        train_data=_TRAIN,
        license="CC0-1.0",
        sha256_note="digest of the release file; no digest is published by the authors",
    )


register_model(
    ModelSpec(
        name="swiftsrgan",
        family="swiftsrgan",
        builder=SwiftSRGAN,
        scales=(2, 4, 8),
        default_scale=4,
        paper=Paper(
            title="SwiftSRGAN -- Rethinking Super-Resolution for Efficient and Real-time Inference",
            venue="arXiv preprint",
            year=2021,
            arxiv="2111.14320",
        ),
        code_license="CC0-1.0",
        description="Swift-SRGAN: SRGAN with depthwise-separable convolutions, 64 features, "
        "16 blocks",
        task="gan",
        colour="rgb",
        defaults={"in_channels": 3, "num_channels": 64, "num_blocks": 16},
        weights=(
            _weights(2, _X2_SHA, 2_410_125),
            _weights(4, _X4_SHA, 922_571),
        ),
    )
)


_LAYOUTS = {
    "official": (
        "initial.cnn.depthwise.weight",
        "initial.cnn.pointwise.weight",
        "final_conv.pointwise.weight",
    )
}


def detect_swiftsrgan(shapes: Shapes) -> Detected | None:
    """Recognise a Swift-SRGAN generator (Koushik0901/Swift-SRGAN's keys) from its shapes.

    Reads the image channels (the 9x9 depthwise head), the feature channels, the number of
    residual blocks and the scale (2 to the number of x2 upsampling stages). Everything the
    constructor takes is in the shapes.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a Swift-SRGAN generator.

    Example:
        >>> detect_swiftsrgan(Shapes(SwiftSRGAN(scale=2).state_dict())).scale
        2
    """
    if not shapes.has(*_LAYOUTS["official"], "convblock.bn.weight"):
        return None
    in_ch = shapes.dim("initial.cnn.depthwise.weight")
    feats = shapes.dim("initial.cnn.pointwise.weight")
    blocks = shapes.count(r"residual\.(\d+)\.block1\.cnn\.depthwise\.weight")
    stages = shapes.count(r"upsampler\.(\d+)\.conv\.pointwise\.weight")
    if (
        shapes["initial.cnn.depthwise.weight"] != (in_ch, 1, 9, 9)
        or shapes.dim("final_conv.pointwise.weight") != in_ch
        or shapes.dim("final_conv.pointwise.weight", 1) != feats
        or any(
            shuffle_factor(shapes.dim(f"upsampler.{i}.conv.pointwise.weight"), feats) != 2
            for i in range(stages)
        )
        or (blocks == 0 and shapes.has_prefix("residual."))
    ):
        return None
    args = {"in_channels": in_ch, "num_channels": feats, "num_blocks": blocks}
    return Detected("swiftsrgan", 2**stages, args, "official")


register_detector("swiftsrgan", detect_swiftsrgan, layouts=_LAYOUTS)
