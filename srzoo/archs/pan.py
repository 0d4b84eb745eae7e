"""PAN: pixel attention network.

Paper: Zhao, Kong, He, Qiao, Dong, "Efficient Image Super-Resolution Using Pixel Attention",
ECCV Workshops (AIM 2020), 2020, arXiv:2010.01073.

Parameter names follow zhaohengyuan1/PAN ``codes/models/archs/PAN_arch.py``, so the official
``experiments/pretrained_models/PANx{2,3,4}_DF2K.pth`` files load unchanged.

Receptive field (16 blocks): the first convolution, two 3x3 convolutions per SCPA block (its
attention branch) and the trunk convolution reach 34 low-resolution pixels; the 3x3
convolutions after the nearest-neighbour enlargements (three at the output resolution, and at
x4 two more at double resolution) add 2 at x2, 1 at x3 and 2 at x4. The bilinear skip reaches
one pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError, UnsupportedScaleError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    WeightSpec,
    register_detector,
    register_model,
    set5_set14,
)
from ._blocks import FieldStep, image_forward, receptive_radius

__all__ = ["PA", "PAN", "SCPA", "PAConv", "detect_pan"]


class PA(nn.Module):
    """Pixel attention: a sigmoid mask from a 1x1 convolution, applied to its own input.

    Args:
        nf: Feature channels.
    """

    def __init__(self, *, nf: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(nf, nf, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class PAConv(nn.Module):
    """A 3x3 convolution gated by pixel attention, followed by another 3x3 convolution.

    Args:
        nf: Feature channels.
    """

    def __init__(self, *, nf: int) -> None:
        super().__init__()
        self.k2 = nn.Conv2d(nf, nf, 1)
        self.k3 = nn.Conv2d(nf, nf, 3, padding=1, bias=False)
        self.k4 = nn.Conv2d(nf, nf, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k4(self.k3(x) * torch.sigmoid(self.k2(x)))


class SCPA(nn.Module):
    """Self-calibrated block with pixel attention: a plain and an attention branch, fused.

    Args:
        nf: Feature channels (each branch works on ``nf // reduction``).
        reduction: Channel split between the two branches.
    """

    def __init__(self, *, nf: int, reduction: int = 2) -> None:
        super().__init__()
        width = nf // reduction
        self.conv1_a = nn.Conv2d(nf, width, 1, bias=False)
        self.conv1_b = nn.Conv2d(nf, width, 1, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False))
        self.PAConv = PAConv(nf=width)
        self.conv3 = nn.Conv2d(width * reduction, nf, 1, bias=False)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.lrelu(self.k1(self.lrelu(self.conv1_a(x))))
        b = self.lrelu(self.PAConv(self.lrelu(self.conv1_b(x))))
        return self.conv3(torch.cat([a, b], dim=1)) + x


class PAN(nn.Module):
    """Pixel Attention Network.

    Takes RGB in [0, 1] like the original; the network predicts a residual over a bilinear
    upscale of its input.

    Args:
        scale: Upscaling factor: 2 or 3 (one nearest-neighbour stage) or 4 (two x2 stages).
        in_nc: Input channels.
        out_nc: Output channels.
        nf: Feature channels of the trunk.
        unf: Feature channels of the upsampling stages.
        nb: Number of SCPA blocks.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 40,
        unf: int = 24,
        nb: int = 16,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise UnsupportedScaleError("PAN", scale, (2, 3, 4))
        if in_nc != out_nc:
            raise ArgumentError(
                f"PAN adds an upscaled copy of its input: in_nc ({in_nc}) must equal out_nc "
                f"({out_nc})"
            )
        self.scale = scale
        self.in_channels = in_nc
        self.out_channels = out_nc
        self.conv_first = nn.Conv2d(in_nc, nf, 3, padding=1)
        self.SCPA_trunk = nn.Sequential(*(SCPA(nf=nf) for _ in range(nb)))
        self.trunk_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.upconv1 = nn.Conv2d(nf, unf, 3, padding=1)
        self.att1 = PA(nf=unf)
        self.HRconv1 = nn.Conv2d(unf, unf, 3, padding=1)
        if scale == 4:
            self.upconv2 = nn.Conv2d(unf, unf, 3, padding=1)
            self.att2 = PA(nf=unf)
            self.HRconv2 = nn.Conv2d(unf, unf, 3, padding=1)
        self.conv_last = nn.Conv2d(unf, out_nc, 3, padding=1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        # Each upsampling stage: nearest enlargement, upconv, (1x1 attention), HRconv.
        up: list[tuple[FieldStep, int]] = (
            [("up", 2), ("conv", 2), ("up", 2), ("conv", 2)]
            if scale == 4
            else [("up", scale), ("conv", 2)]
        )
        # conv_first, the SCPA blocks (1x1, 3x3 k3, 3x3 k4 in the attention branch) and
        # trunk_conv at LR; the upsampling stages; conv_last. The bilinear skip reaches 1.
        self.receptive_field: int | None = max(
            receptive_radius([("conv", 1 + 2 * nb + 1), *up, ("conv", 1)]), 1
        )

    def _up(
        self, fea: torch.Tensor, factor: int, upconv: nn.Module, att: nn.Module, hr: nn.Module
    ) -> torch.Tensor:
        fea = upconv(F.interpolate(fea, scale_factor=factor, mode="nearest"))
        return self.lrelu(hr(self.lrelu(att(fea))))

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))
        if self.scale == 4:
            fea = self._up(fea, 2, self.upconv1, self.att1, self.HRconv1)
            fea = self._up(fea, 2, self.upconv2, self.att2, self.HRconv2)
        else:
            fea = self._up(fea, self.scale, self.upconv1, self.att1, self.HRconv1)
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.conv_last(fea) + base


_PAPER = Paper(
    title="Efficient Image Super-Resolution Using Pixel Attention",
    venue="ECCV Workshops",
    year=2020,
    arxiv="2010.01073",
)

# Y-PSNR on Set5 / Set14 from the paper's comparison table; the same values (to more digits)
# are in the authors' test logs, results/PANx{s}_DF2K/*.log in the repository.
_REPORTED = {2: (38.00, 33.59), 3: (34.40, 30.36), 4: (32.13, 28.61)}
_CHECKPOINTS = {
    2: ("fcf8ed48656abbaae46309ee91745684b80235a9c8b37a2d8fb0715a3ad3f00f", 1_076_593),
    3: ("86491751d73645a8816a0d6ec62ccde6b22ce5da930e36b3b87f5437167fbc89", 1_076_593),
    4: ("739fab99ee7b7058dab4d1b84aa2869bb9fc3995a1c08789c20355bee943833c", 1_121_681),
}


def _weights(scale: int) -> WeightSpec:
    sha, size = _CHECKPOINTS[scale]
    set5, set14 = _REPORTED[scale]
    source = "PAN paper (arXiv:2010.01073), comparison table"
    return WeightSpec(
        scale=scale,
        source=(
            "https://github.com/zhaohengyuan1/PAN/raw/master/experiments/pretrained_models/"
            f"PANx{scale}_DF2K.pth"
        ),
        sha256=sha,
        size=size,
        input_range="0-1",
        train_data="DF2K (DIV2K + Flickr2K)",
        license="none published (the repository has no licence file)",
        metrics=set5_set14(scale, set5, set14, source=source),
        sha256_note="sha256 of the file committed to zhaohengyuan1/PAN",
    )


register_model(
    ModelSpec(
        name="pan",
        family="pan",
        builder=PAN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="none published",
        description="PAN: 16 SCPA blocks with pixel attention, 40/24 features (272K at x4)",
        defaults={"nf": 40, "unf": 24, "nb": 16},
        weights=tuple(_weights(s) for s in (2, 3, 4)),
    )
)


_LAYOUTS = {
    "official": (
        "conv_first.weight",
        "SCPA_trunk.0.conv1_a.weight",
        "trunk_conv.weight",
        "upconv1.weight",
        "att1.conv.weight",
        "HRconv1.weight",
        "conv_last.weight",
    ),
}


def detect_pan(shapes: Shapes) -> Detected | None:
    """Recognise a PAN checkpoint (zhaohengyuan1/PAN keys) from its shapes.

    Reads ``in_nc``, ``out_nc``, ``nf``, ``unf``, ``nb`` and whether the network is x4 (a second
    upsampling stage). x2 and x3 networks have the same tensors (one nearest-neighbour stage of
    either factor): x2 is the default and ``Detected.scales`` lists (2, 3); the registered
    files are recognised by their sha256 instead.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a PAN.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    nb = shapes.count(r"SCPA_trunk\.(\d+)\.conv1_a\.weight")
    if not nb:
        return None
    args = {
        "in_nc": shapes.dim("conv_first.weight", 1),
        "out_nc": shapes.dim("conv_last.weight"),
        "nf": shapes.dim("conv_first.weight"),
        "unf": shapes.dim("upconv1.weight"),
        "nb": nb,
    }
    if shapes.has("upconv2.weight", "att2.conv.weight", "HRconv2.weight"):
        return Detected("pan", 4, args, "official")
    return Detected("pan", 2, args, "official", scales=(2, 3))


register_detector("pan", detect_pan, layouts=_LAYOUTS)
