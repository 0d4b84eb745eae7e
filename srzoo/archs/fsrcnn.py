"""FSRCNN: the fast super-resolution CNN with a deconvolution upsampler.

Paper: Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural Network",
ECCV 2016, arXiv:1608.00367. FSRCNN(d=56, s=12, m=4) is the paper's main network.

Parameter names follow yjn870/FSRCNN-pytorch ``models.py`` (``first_part`` / ``mid_part`` /
``last_part``), so its ``fsrcnn_x{2,3,4}.pth`` files load unchanged. Like that code the
convolutions are zero-padded so the output is exactly ``scale`` times the input.

The network works on the luma (Y) channel of the low-resolution image: one channel in, one out.

FSRCNN's tensors have the same shapes at every scale (the deconvolution's stride is not a
tensor), so a checkpoint cannot tell its scale from its keys and shapes: x3 weights would load
into an x2 network and upscale to garbage. srzoo recognises a checkpoint's scale only when the
file is registered: ``srzoo.load("fsrcnn", scale=s, weights=path)`` refuses a registered
checkpoint of another scale (by its sha256), and trusts ``s`` for any other file.

Registered: yjn870's ``fsrcnn_x3.pth`` (a flat ``torch.save`` state dict in the keys above,
Dropbox link of the repository's README). yjn870's ``fsrcnn_x2.pth`` and ``fsrcnn_x4.pth``
(``https://www.dropbox.com/s/1k3dker6g7hz76s/fsrcnn_x2.pth?dl=1`` and
``https://www.dropbox.com/s/vsvumpopupdpmmu/fsrcnn_x4.pth?dl=1``) are not registered: no
digest of them is published or could be taken from the files, and registered without one they
could not be recognised, which for FSRCNN is the only way to tell a checkpoint's scale. They
load as local files, at the scale the caller names.

Receptive field: the convolutions reach ``2 + m`` low-resolution pixels (6); the 9x9
deconvolution adds 2, 2 and 1 at x2, x3 and x4 (8, 8 and 7 in all).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    ReportedMetric,
    Shapes,
    WeightSpec,
    register_detector,
    register_model,
)
from ._blocks import image_forward, receptive_radius

__all__ = ["FSRCNN", "detect_fsrcnn"]


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
            raise ArgumentError(f"FSRCNN needs a positive integer scale, got {scale}")
        self.scale = scale
        self.in_channels = 1
        self.out_channels = 1
        # 5x5 and m 3x3 convolutions at low resolution; the transposed convolution spreads
        # each pixel over a 9x9 window of the stride-``scale`` grid.
        self.receptive_field: int | None = receptive_radius(
            [("conv", 2 + m), ("zeros", scale), ("conv", 4)]
        )
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

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_part(self.mid_part(self.first_part(x)))


_README_TABLE = (
    "yjn870/FSRCNN-pytorch README, Results: Set5 table, column 'Ours (91-image)' (the paper, "
    "arXiv:1608.00367, reports 33.06 for its own x3 weights)"
)

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
        weights=(
            WeightSpec(
                scale=3,
                source="https://www.dropbox.com/s/pm1ed2nyboulz5z/fsrcnn_x3.pth?dl=1",
                sha256="f65b55819c1258048bc8c1ca96f9e24bd4339f779951d7f928144c08e3868d75",
                size=54_998,
                input_range="0-1 (Y channel of yjn870's YCbCr conversion)",
                train_data="91-image (yjn870/FSRCNN-pytorch's training set)",
                license="none published (the repository has no licence file)",
                # The README reports Set5 only (Y channel, the repository's own evaluation).
                metrics=(ReportedMetric(33.22, "Set5", 3, "psnr_y", source=_README_TABLE),),
                sha256_note=(
                    "sha256 of the file linked from yjn870/FSRCNN-pytorch's README (flat "
                    "torch.save state dict in the repository's keys)"
                ),
            ),
        ),
    )
)


_LAYOUTS = {
    "official": ("first_part.0.weight", "mid_part.0.weight", "last_part.weight"),
}
_SCALES = (2, 3, 4)
_DEFAULT_SCALE = 3


def detect_fsrcnn(shapes: Shapes) -> Detected | None:
    """Recognise an FSRCNN checkpoint (yjn870/FSRCNN-pytorch keys) from its shapes.

    Reads ``d``, ``s`` and ``m`` (the mapping layers). The scale is only the stride of the last
    (transposed) convolution, whose kernel is the same at every scale: it cannot be read, so
    x3 (the paper's and the registered weights' scale) is the default and
    ``Detected.scales`` lists (2, 3, 4). A registered file is recognised by its sha256 instead.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an FSRCNN.
    """
    if not shapes.has(*_LAYOUTS["official"]) or shapes["last_part.weight"][1:] != (1, 9, 9):
        return None
    d, s = shapes.dim("first_part.0.weight"), shapes.dim("mid_part.0.weight")
    mid = [
        i
        for i in shapes.indices(r"mid_part\.(\d+)\.weight")
        if len(shapes[f"mid_part.{i}.weight"]) == 4
    ]
    if mid != list(range(0, 2 * len(mid), 2)) or len(mid) < 2:
        return None
    args = {"d": d, "s": s, "m": len(mid) - 2}
    return Detected("fsrcnn", _DEFAULT_SCALE, args, "official", scales=_SCALES)


register_detector("fsrcnn", detect_fsrcnn, layouts=_LAYOUTS)
