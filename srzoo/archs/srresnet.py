"""SRResNet (with batch norm, as in the SRGAN paper) and MSRResNet (BasicSR's variant without).

Paper: Ledig et al., "Photo-Realistic Single Image Super-Resolution Using a Generative
Adversarial Network", CVPR 2017, arXiv:1609.04802.

``SRResNet`` follows the parameter names of Lornatang/SRGAN-PyTorch ``model.py`` (the most used
PyTorch SRResNet with released weights): ``conv1`` / ``trunk.N.rcb`` / ``conv2`` /
``upsampling.N.upsample_block`` / ``conv3``. Unlike that code it shuffles by 3 at x3 and does not
clamp its output.

``MSRResNet`` follows XPixelGroup/BasicSR ``basicsr/archs/srresnet_arch.py``; the KAIR layout
(``recon_trunk`` / ``HRconv``) of the same network is converted on load.

Receptive field (16 blocks): SRResNet's 9x9 and 3x3 convolutions reach 37 low-resolution
pixels and its upsampler and 9x9 convolution at high resolution 3 more (40 at every scale);
MSRResNet's reach 33 and 2 more (35; its bilinear skip reaches one pixel).

``srgan`` is the GAN-trained generator of the paper: the SRResNet network, registered without
weights. The only GAN-trained SRResNet checkpoint srzoo knows, KAIR's ``msrresnet_x4_gan.pth``
(``msrresnet``, tag ``gan``), is a different network (no batch norm) and has no published digest.

KAIR's MSRResNet files (``msrresnet_x4_psnr.pth``, ``msrresnet_x4_gan.pth``) are flat state
dicts in KAIR's keys (``conv_first`` / ``recon_trunk.N`` / ``upconv1`` / ``upconv2`` /
``HRconv`` / ``conv_last``), which :func:`convert_msrresnet` maps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UnsupportedScaleError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    StateDict,
    WeightSpec,
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import (
    FieldStep,
    conv3x3,
    image_forward,
    receptive_radius,
    rename_keys,
    shuffle_factors,
    upsampler_steps,
)

__all__ = ["MSRResNet", "ResidualBlockNoBN", "SRResNet", "convert_msrresnet", "detect_srresnet"]


class _ResidualConvBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.rcb = nn.Sequential(
            conv3x3(channels, channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(),
            conv3x3(channels, channels, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rcb(x) + x


class _UpsampleBlock(nn.Module):
    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.upsample_block = nn.Sequential(
            conv3x3(channels, channels * factor * factor),
            nn.PixelShuffle(factor),
            nn.PReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample_block(x)


class SRResNet(nn.Module):
    """SRResNet: residual blocks with batch norm and PReLU, sub-pixel upsampling.

    Takes and returns RGB in [0, 1].

    Args:
        scale: Upscaling factor: 3 or a power of two.
        channels: Feature channels.
        num_blocks: Residual blocks.
        in_channels: Input channels.
        out_channels: Output channels.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        channels: int = 64,
        num_blocks: int = 16,
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, channels, 9, padding=4), nn.PReLU())
        self.trunk = nn.Sequential(*(_ResidualConvBlock(channels) for _ in range(num_blocks)))
        self.conv2 = nn.Sequential(
            conv3x3(channels, channels, bias=False), nn.BatchNorm2d(channels)
        )
        self.upsampling = nn.Sequential(
            *(_UpsampleBlock(channels, f) for f in shuffle_factors(scale, name="SRResNet"))
        )
        self.conv3 = nn.Conv2d(channels, out_channels, 9, padding=4)
        # 9x9, the blocks' 3x3 pairs and conv2 at LR; the upsampler; the 9x9 conv3 at HR.
        self.receptive_field: int | None = receptive_radius(
            [("conv", 4 + 2 * num_blocks + 1), *upsampler_steps(scale), ("conv", 4)]
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv1(x)
        out = self.conv2(self.trunk(feat)) + feat
        return self.conv3(self.upsampling(out))


class ResidualBlockNoBN(nn.Module):
    """Conv-ReLU-conv residual block without batch norm (BasicSR's ``ResidualBlockNoBN``).

    Args:
        num_feat: Feature channels.
        res_scale: Multiplier of the residual branch.
    """

    def __init__(self, *, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = conv3x3(num_feat, num_feat)
        self.conv2 = conv3x3(num_feat, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.conv2(F.relu(self.conv1(x)))
        if self.res_scale != 1.0:
            res = res * self.res_scale
        return x + res


class MSRResNet(nn.Module):
    """Modified SRResNet: no batch norm, LeakyReLU, and a bilinear global skip.

    Takes and returns RGB in [0, 1].

    Args:
        scale: Upscaling factor: 2, 3 or 4.
        num_feat: Feature channels.
        num_block: Residual blocks.
        num_in_ch: Input channels.
        num_out_ch: Output channels.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 16,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise UnsupportedScaleError("MSRResNet", scale, (2, 3, 4))
        self.scale = scale
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlockNoBN(num_feat=num_feat) for _ in range(num_block)))
        self.upconv1: nn.Conv2d
        self.upconv2: nn.Conv2d | None = None
        if scale == 4:
            self.upconv1 = conv3x3(num_feat, num_feat * 4)
            self.upconv2 = conv3x3(num_feat, num_feat * 4)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv1 = conv3x3(num_feat, num_feat * scale * scale)
            self.pixel_shuffle = nn.PixelShuffle(scale)
        self.conv_hr = conv3x3(num_feat, num_feat)
        self.conv_last = conv3x3(num_feat, num_out_ch)
        up: list[tuple[FieldStep, int]] = (
            [("conv", 1), ("up", 2), ("conv", 1), ("up", 2)]
            if scale == 4
            else [("conv", 1), ("up", scale)]
        )
        # conv_first and the blocks at LR, the upsampler, conv_hr and conv_last at HR; the
        # bilinear skip reaches one pixel.
        self.receptive_field: int | None = max(
            receptive_radius([("conv", 1 + 2 * num_block), *up, ("conv", 2)]), 1
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(F.leaky_relu(self.conv_first(x), 0.1))
        out = F.leaky_relu(self.pixel_shuffle(self.upconv1(out)), 0.1)
        if self.upconv2 is not None:
            out = F.leaky_relu(self.pixel_shuffle(self.upconv2(out)), 0.1)
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1))
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out + base


def convert_msrresnet(state: StateDict, module: nn.Module) -> StateDict:
    """Map an MSRResNet state dict in the BasicSR or KAIR layout to :class:`MSRResNet` keys.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` etc.).
        module: The :class:`MSRResNet` it is meant for.

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_msrresnet(torch.load("msrresnet_x4_psnr.pth"), net)
    """
    return rename_keys(state, ((r"recon_trunk\.", "body."), (r"HRconv\.", "conv_hr.")))


_SRGAN = Paper(
    title="Photo-Realistic Single Image Super-Resolution Using a Generative Adversarial Network",
    venue="CVPR",
    year=2017,
    arxiv="1609.04802",
)

register_model(
    ModelSpec(
        name="srresnet",
        family="srresnet",
        builder=SRResNet,
        scales=(2, 3, 4),
        paper=_SRGAN,
        code_license="Apache-2.0",
        description="SRResNet: 16 residual blocks with batch norm and PReLU",
        defaults={"channels": 64, "num_blocks": 16},
    )
)
# The GAN-trained generator of the paper: SRResNet's network, trained adversarially.
register_model(
    ModelSpec(
        name="srgan",
        family="srresnet",
        builder=SRResNet,
        scales=(2, 3, 4),
        paper=_SRGAN,
        code_license="Apache-2.0",
        description="SRGAN generator: SRResNet trained with adversarial and VGG losses",
        task="gan",
        defaults={"channels": 64, "num_blocks": 16},
    )
)
_KAIR = "https://github.com/cszn/KAIR/releases/download/v1.0/"
_KAIR_NOTE = (
    "KAIR publishes no checksum or size for its release files; srzoo records the sha256 of the "
    "first download and checks the cached copy against it"
)
# KAIR's own weights (cszn/KAIR main_test_msrresnet.py loads them into MSRResNet1 with strict
# key matching); BasicSR's reproduced MSRResNet weights exist only on Google Drive.
_MSRRESNET_WEIGHTS = (
    WeightSpec(
        scale=4,
        source=f"{_KAIR}msrresnet_x4_psnr.pth",
        sha256=None,
        input_range="0-1 (RGB)",
        train_data="not stated by KAIR (bicubic x4, L1 loss per options/train_msrresnet_psnr.json)",
        license="MIT (cszn/KAIR)",
        sha256_note=_KAIR_NOTE,
    ),
    WeightSpec(
        scale=4,
        tag="gan",
        source=f"{_KAIR}msrresnet_x4_gan.pth",
        sha256=None,
        input_range="0-1 (RGB)",
        train_data="not stated by KAIR (bicubic x4, adversarial training)",
        license="MIT (cszn/KAIR)",
        sha256_note=_KAIR_NOTE,
    ),
)

register_model(
    ModelSpec(
        name="msrresnet",
        family="srresnet",
        builder=MSRResNet,
        scales=(2, 3, 4),
        paper=_SRGAN,
        code_license="Apache-2.0",
        description="Modified SRResNet (BasicSR): no batch norm, bilinear global skip",
        defaults={"num_feat": 64, "num_block": 16},
        converter=convert_msrresnet,
        weights=_MSRRESNET_WEIGHTS,
    )
)


_LAYOUTS = {
    "srresnet": (
        "conv1.0.weight",
        "trunk.0.rcb.0.weight",
        "conv2.0.weight",
        "upsampling.0.upsample_block.0.weight",
        "conv3.weight",
    ),
    "basicsr": (
        "conv_first.weight",
        "body.0.conv1.weight",
        "upconv1.weight",
        "conv_hr.weight",
        "conv_last.weight",
    ),
    "kair": (
        "conv_first.weight",
        "recon_trunk.0.conv1.weight",
        "upconv1.weight",
        "HRconv.weight",
        "conv_last.weight",
    ),
}


def detect_srresnet(shapes: Shapes) -> Detected | None:
    """Recognise an SRResNet (Lornatang/SRGAN-PyTorch keys) or an MSRResNet (BasicSR or KAIR).

    SRResNet: reads ``channels``, ``num_blocks``, the image channels and the scale (its
    upsampling stages). The SRGAN generator is the same network trained differently, which the
    weights cannot tell: such files are named ``srresnet``.

    MSRResNet: reads ``num_feat``, ``num_block``, the image channels and the scale (x4 has two
    upsampling convolutions; x2 and x3 one, widened by ``scale**2``).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is neither.
    """
    if shapes.has(*_LAYOUTS["srresnet"]):
        channels = shapes.dim("conv1.0.weight")
        blocks = shapes.count(r"trunk\.(\d+)\.rcb\.0\.weight")
        scale = shapes.stacked_shuffle_scale("upsampling.", ".upsample_block.0.weight", channels)
        if not blocks or not scale:
            return None
        args = {
            "channels": channels,
            "num_blocks": blocks,
            "in_channels": shapes.dim("conv1.0.weight", 1),
            "out_channels": shapes.dim("conv3.weight"),
        }
        return Detected("srresnet", scale, args, "srresnet")
    layout = next((n for n in ("basicsr", "kair") if shapes.has(*_LAYOUTS[n])), "")
    if not layout:
        return None
    trunk = "body" if layout == "basicsr" else "recon_trunk"
    nf = shapes.dim("conv_first.weight")
    blocks = shapes.count(rf"{trunk}\.(\d+)\.conv1\.weight")
    first = shuffle_factor(shapes.dim("upconv1.weight"), nf)
    if shapes.has("upconv2.weight"):
        scale = 4 if first == 2 and shuffle_factor(shapes.dim("upconv2.weight"), nf) == 2 else 0
    else:
        scale = first if first in (2, 3) else 0
    if not blocks or not scale:
        return None
    args = {
        "num_feat": nf,
        "num_block": blocks,
        "num_in_ch": shapes.dim("conv_first.weight", 1),
        "num_out_ch": shapes.dim("conv_last.weight"),
    }
    return Detected("msrresnet", scale, args, layout)


register_detector("srresnet", detect_srresnet, layouts=_LAYOUTS)
