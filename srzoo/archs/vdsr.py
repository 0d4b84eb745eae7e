"""VDSR: very deep super-resolution with a global residual.

Paper: Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks",
CVPR 2016, arXiv:1511.04587. Twenty 3x3 layers of 64 filters; the network predicts the
residual between a bicubic enlargement and the high-resolution Y channel.

Parameter names follow twtygqyy/pytorch-vdsr ``vdsr.py`` (``input`` /
``residual_layer.N.conv`` / ``output``, convolutions without bias). torchSR's ``vdsr`` is a
different network (EDSR-PyTorch's RGB variant: biased convolutions, a DIV2K mean shift and
PyTorch's a = -0.75 bicubic), and its files are refused with an explicit key mismatch.

The bicubic enlargement VDSR expects (MATLAB ``imresize``, a = -0.5) happens inside
:class:`VDSR`, so it takes the low-resolution Y channel like every other srzoo model.

The scale of VDSR's weights lives only in the data they were trained on: the network is the
same at every scale (the paper trains one set of weights for x2, x3 and x4 together), so a
checkpoint's tensors cannot tell which scales it was trained for. srzoo recognises a
checkpoint's scale only when the file is registered (by its sha256); no VDSR checkpoint is
registered, so ``srzoo.load("vdsr", scale=s, weights=path)`` trusts ``s``.

Receptive field: ``depth`` 3x3 convolutions reach ``depth`` pixels (20) of the enlarged image,
which the bicubic enlargement's taps (two input pixels each side) turn into 12, 8 and 7 input
pixels at x2, x3 and x4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import Detected, ModelSpec, Paper, Shapes, register_detector, register_model
from ._blocks import image_forward, matlab_bicubic_upsample, receptive_radius

__all__ = ["VDSR", "ConvReLU", "detect_vdsr"]


class ConvReLU(nn.Module):
    """A bias-free 3x3 convolution followed by ReLU (twtygqyy's ``Conv_ReLU_Block``).

    Args:
        n_feats: Input and output channels.
    """

    def __init__(self, *, n_feats: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(n_feats, n_feats, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place: at HR resolution every saved feature map is tens of megabytes.
        return F.relu(self.conv(x), inplace=True)


class VDSR(nn.Module):
    """Very Deep Super-Resolution network on the Y channel.

    Args:
        scale: Upscaling factor of the bicubic pre-enlargement (the network itself is the same
            at every scale: the paper trains one model for x2, x3 and x4).
        depth: Convolution layers in total (input and output layers included).
        n_feats: Filters per hidden layer.
    """

    def __init__(self, *, scale: int = 4, depth: int = 20, n_feats: int = 64) -> None:
        super().__init__()
        if depth < 2:
            raise ArgumentError(
                f"VDSR needs at least an input and an output layer, got depth={depth}"
            )
        self.scale = scale
        self.in_channels = 1
        self.out_channels = 1
        # The residual path (the enlargement alone) reaches less than the convolutions' path.
        self.receptive_field: int | None = receptive_radius([("bicubic", scale), ("conv", depth)])
        self.input = nn.Conv2d(1, n_feats, 3, padding=1, bias=False)
        self.residual_layer = nn.Sequential(*(ConvReLU(n_feats=n_feats) for _ in range(depth - 2)))
        self.output = nn.Conv2d(n_feats, 1, 3, padding=1, bias=False)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = matlab_bicubic_upsample(x, self.scale)
        out = self.residual_layer(F.relu(self.input(up), inplace=True))
        return self.output(out).add_(up)


register_model(
    ModelSpec(
        name="vdsr",
        family="vdsr",
        builder=VDSR,
        scales=(2, 3, 4),
        paper=Paper(
            title="Accurate Image Super-Resolution Using Very Deep Convolutional Networks",
            venue="CVPR",
            year=2016,
            arxiv="1511.04587",
        ),
        code_license="MIT",
        description="VDSR: 20 bias-free 3x3 layers, global residual over a bicubic enlargement (Y)",
        task="psnr",
        colour="y",
        defaults={"depth": 20, "n_feats": 64},
    )
)


_LAYOUTS = {
    "official": ("input.weight", "residual_layer.0.conv.weight", "output.weight"),
}
_SCALES = (2, 3, 4)
_DEFAULT_SCALE = 4


def detect_vdsr(shapes: Shapes) -> Detected | None:
    """Recognise a VDSR checkpoint (twtygqyy/pytorch-vdsr keys) from its shapes.

    Reads ``depth`` and ``n_feats``. The network enlarges its input by bicubic interpolation
    first and the paper trains one model for x2, x3 and x4, so the tensors do not tell the
    scale: x4 (the module's default) is the default and ``Detected.scales`` lists (2, 3, 4).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a VDSR.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    hidden = shapes.count(r"residual_layer\.(\d+)\.conv\.weight")
    if not hidden or shapes.dim("input.weight", 1) != 1 or shapes.dim("output.weight") != 1:
        return None
    args = {"depth": hidden + 2, "n_feats": shapes.dim("input.weight")}
    return Detected("vdsr", _DEFAULT_SCALE, args, "official", scales=_SCALES)


register_detector("vdsr", detect_vdsr, layouts=_LAYOUTS)
