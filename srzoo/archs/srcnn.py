"""SRCNN: the three-layer super-resolution convolutional network.

Paper: Dong, Loy, He, Tang, "Image Super-Resolution Using Deep Convolutional Networks",
IEEE TPAMI 2016 (first version ECCV 2014), arXiv:1501.00092. The 9-5-5 configuration
(f1=9, f2=5, f3=5, n1=64, n2=32) is the paper's best network.

Parameter names follow yjn870/SRCNN-pytorch ``models.py`` (``conv1`` / ``conv2`` / ``conv3``,
zero-padded so the output keeps the input size), so its checkpoints load unchanged.

SRCNN works on the luma (Y) channel of an image that was first enlarged with MATLAB's bicubic
``imresize``; this module performs that enlargement itself (see
:func:`~srzoo.archs._blocks.matlab_bicubic_upsample`), so it takes the low-resolution Y channel
like every other srzoo model takes its low-resolution input. yjn870's released weights were
trained on PIL-bicubic inputs instead; they still load, the input differs slightly.

The scale of SRCNN's weights lives only in the data they were trained on: the network is the
same at every scale (the enlargement happens before it), so a checkpoint's tensors cannot tell
x2 weights from x4 ones. srzoo recognises a checkpoint's scale only when the file is registered
(by its sha256); no SRCNN checkpoint is registered, so ``srzoo.load("srcnn", scale=s,
weights=path)`` trusts ``s``.

Receptive field: the three convolutions reach ``f1 // 2 + f2 // 2 + f3 // 2`` pixels (8) of the
enlarged image, which the bicubic enlargement's taps (two input pixels each side) turn into 6,
4 and 4 input pixels at x2, x3 and x4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import Detected, ModelSpec, Paper, Shapes, register_detector, register_model
from ._blocks import image_forward, matlab_bicubic_upsample, receptive_radius

__all__ = ["SRCNN", "detect_srcnn"]


class SRCNN(nn.Module):
    """Super-Resolution Convolutional Neural Network on the Y channel.

    ``forward`` enlarges the input with MATLAB-exact bicubic interpolation, then applies patch
    extraction (``conv1``), non-linear mapping (``conv2``) and reconstruction (``conv3``).

    Args:
        scale: Upscaling factor of the bicubic pre-enlargement.
        n1: Filters of the first layer.
        n2: Filters of the second layer.
        f1: Kernel size of the first layer.
        f2: Kernel size of the second layer.
        f3: Kernel size of the third layer.
    """

    def __init__(
        self,
        *,
        scale: int = 3,
        n1: int = 64,
        n2: int = 32,
        f1: int = 9,
        f2: int = 5,
        f3: int = 5,
    ) -> None:
        super().__init__()
        for k in (f1, f2, f3):
            if k % 2 == 0:
                raise ArgumentError(f"SRCNN kernel sizes must be odd to keep the size, got {k}")
        self.scale = scale
        self.in_channels = 1
        self.out_channels = 1
        self.receptive_field: int | None = receptive_radius(
            [("bicubic", scale), ("conv", f1 // 2 + f2 // 2 + f3 // 2)]
        )
        self.conv1 = nn.Conv2d(1, n1, f1, padding=f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.conv3 = nn.Conv2d(n2, 1, f3, padding=f3 // 2)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = matlab_bicubic_upsample(x, self.scale)
        # In place: the feature maps are at HR resolution.
        x = F.relu(self.conv1(x), inplace=True)
        x = F.relu(self.conv2(x), inplace=True)
        return self.conv3(x)


register_model(
    ModelSpec(
        name="srcnn",
        family="srcnn",
        builder=SRCNN,
        scales=(2, 3, 4),
        paper=Paper(
            title="Image Super-Resolution Using Deep Convolutional Networks",
            venue="IEEE TPAMI",
            year=2016,
            arxiv="1501.00092",
        ),
        code_license="none published",
        description="SRCNN 9-5-5 (64/32 filters) on the Y channel of a bicubic-enlarged image",
        task="psnr",
        colour="y",
        default_scale=3,
        defaults={"n1": 64, "n2": 32, "f1": 9, "f2": 5, "f3": 5},
    )
)


_LAYOUTS = {"official": ("conv1.weight", "conv2.weight", "conv3.weight")}
_KEYS = {f"conv{i}.{kind}" for i in (1, 2, 3) for kind in ("weight", "bias")}
_SCALES = (2, 3, 4)
_DEFAULT_SCALE = 3


def detect_srcnn(shapes: Shapes) -> Detected | None:
    """Recognise an SRCNN checkpoint (yjn870/SRCNN-pytorch keys) from its shapes.

    Reads ``n1``, ``n2`` and the kernel sizes ``f1``, ``f2``, ``f3``. The network enlarges its
    input by bicubic interpolation first, so its tensors are the same at every scale: x3 (the
    paper's) is the default and ``Detected.scales`` lists (2, 3, 4).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an SRCNN.
    """
    if set(shapes) != _KEYS:
        return None
    c1, c2, c3 = (shapes[f"conv{i}.weight"] for i in (1, 2, 3))
    if len(c1) != 4 or c1[1] != 1 or c3[0] != 1 or c2[1] != c1[0] or c3[1] != c2[0]:
        return None
    args = {"n1": c1[0], "n2": c2[0], "f1": c1[2], "f2": c2[2], "f3": c3[2]}
    return Detected("srcnn", _DEFAULT_SCALE, args, "official", scales=_SCALES)


register_detector("srcnn", detect_srcnn, layouts=_LAYOUTS)
