"""ESPCN: the efficient sub-pixel convolutional network.

Paper: Shi, Caballero, Huszár, Totz, Aitken, Bishop, Rueckert, Wang, "Real-Time Single Image and
Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016,
arXiv:1609.05158. The configuration is the paper's: (f1, n1) = (5, 64), (f2, n2) = (3, 32),
f3 = 3, tanh activations, a sub-pixel (pixel-shuffle) output layer.

Parameter names follow yjn870/ESPCN-pytorch ``models.py`` (``first_part`` / ``last_part``), so its
``espcn_x3.pth`` loads unchanged. The network works on the luma (Y) channel: one channel in, one
out.

Unlike FSRCNN's, SRCNN's and VDSR's, ESPCN's weights carry their scale: the last convolution
has ``scale**2`` outputs, so a checkpoint of another scale is refused by its shapes.

Receptive field: 2 + 1 + 1 = 4 input pixels at every scale (all convolutions run at low
resolution; the pixel shuffle adds nothing).
"""

from __future__ import annotations

import torch
from torch import nn

from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import image_forward, pixel_shuffle_head, receptive_radius

__all__ = ["ESPCN", "detect_espcn"]


class ESPCN(nn.Module):
    """Efficient Sub-Pixel CNN on the Y channel.

    Args:
        scale: Upscaling factor (the pixel-shuffle factor).
        n1: Filters of the first (5x5) layer.
        n2: Filters of the second (3x3) layer.
    """

    def __init__(self, *, scale: int = 3, n1: int = 64, n2: int = 32) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = 1
        self.out_channels = 1
        # 5x5, 3x3 and the head's 3x3 at low resolution; the shuffle reaches no further.
        self.receptive_field: int | None = receptive_radius([("conv", 2 + 1 + 1), ("up", scale)])
        self.first_part = nn.Sequential(
            nn.Conv2d(1, n1, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(n1, n2, 3, padding=1),
            nn.Tanh(),
        )
        self.last_part = pixel_shuffle_head(n2, 1, scale)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.first_part(x))


register_model(
    ModelSpec(
        name="espcn",
        family="espcn",
        builder=ESPCN,
        scales=(2, 3, 4),
        paper=Paper(
            title=(
                "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel "
                "Convolutional Neural Network"
            ),
            venue="CVPR",
            year=2016,
            arxiv="1609.05158",
        ),
        code_license="none published",
        description="ESPCN (5-3-3, 64/32 filters, tanh) on the Y channel, sub-pixel upsampler",
        task="psnr",
        colour="y",
        default_scale=3,
        defaults={"n1": 64, "n2": 32},
    )
)


_LAYOUTS = {
    "official": ("first_part.0.weight", "first_part.2.weight", "last_part.0.weight"),
}
_KEYS = {
    f"{k.removesuffix('.weight')}.{kind}"
    for k in _LAYOUTS["official"]
    for kind in ("weight", "bias")
}


def detect_espcn(shapes: Shapes) -> Detected | None:
    """Recognise an ESPCN checkpoint (yjn870/ESPCN-pytorch keys) from its shapes.

    Reads ``n1``, ``n2`` and the scale (the last convolution's ``scale**2`` outputs). Nothing is
    left to a default.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an ESPCN.
    """
    first, second, last = _LAYOUTS["official"]
    if not shapes.has(first, second, last) or set(shapes) - _KEYS:
        return None
    if shapes[first][1:] != (1, 5, 5):
        return None
    scale = shuffle_factor(shapes.dim(last), 1)
    if not scale:
        return None
    return Detected("espcn", scale, {"n1": shapes.dim(first), "n2": shapes.dim(second)}, "official")


register_detector("espcn", detect_espcn, layouts=_LAYOUTS)
