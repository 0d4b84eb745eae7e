"""RFDN: residual feature distillation network.

Paper: Liu, Tang, Wu, "Residual Feature Distillation Network for Lightweight Image
Super-Resolution", ECCV Workshops (AIM 2020), 2020, arXiv:2009.11551.

Parameter names follow njulj/RFDN ``RFDN.py`` and ``block.py``, so the official
``trained_model/RFDN_AIM.pth`` (the AIM 2020 winning model: 50 features, 4 blocks, x4) loads
unchanged. That checkpoint works on pixel values in 0..255 (its ``test.py`` feeds ``uint8``
images cast to float and clamps the output to 0..255); the module scales by ``rgb_range``
inside, so it takes and returns [0, 1] like every srzoo model.

RFDN declares no receptive-field radius (``receptive_field = None``) although each pixel sees a
bounded neighbourhood: every block's ESA max-pools a stride-2 map with 7x7 windows of stride 3
on a grid anchored at the image's corner, then resizes the pooled map back by the ratio of the
two sizes. Which pixels share a window, and the interpolation weights, follow the image's size
and a pixel's position in it, so a tile computes a different function of the same pixels than
the whole image does, whatever the overlap.
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
    shuffle_split,
)
from ._blocks import ESA, DistillationNet, image_forward
from ._window import pad_to_min_size

__all__ = ["RFDB", "RFDN", "detect_rfdn"]

# ESA reduces its input with a stride-2 3x3 convolution and a 7x7 max pool of stride 3:
# anything smaller than this on either side leaves nothing to pool.
_MIN_SIZE = 15


class RFDB(nn.Module):
    """Residual feature distillation block: three (1x1 distil, 3x3 residual refine) steps.

    Args:
        channels: Feature channels; each distilled branch has half of them.
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        dc = channels // 2
        self.c1_d = nn.Conv2d(channels, dc, 1)
        self.c1_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2_d = nn.Conv2d(channels, dc, 1)
        self.c2_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c3_d = nn.Conv2d(channels, dc, 1)
        self.c3_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c4 = nn.Conv2d(channels, dc, 3, padding=1)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = nn.Conv2d(4 * dc, channels, 1)
        if channels < 4:
            raise ArgumentError(f"ESA needs at least 4 feature channels, got {channels}")
        self.esa = ESA(esa_channels=channels // 4, n_feats=channels, refine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.act(self.c1_d(x))
        r1 = self.act(self.c1_r(x) + x)
        d2 = self.act(self.c2_d(r1))
        r2 = self.act(self.c2_r(r1) + r1)
        d3 = self.act(self.c3_d(r2))
        r3 = self.act(self.c3_r(r2) + r2)
        r4 = self.act(self.c4(r3))
        return self.esa(self.c5(torch.cat([d1, d2, d3, r4], dim=1)))


class RFDN(DistillationNet):
    """Residual Feature Distillation Network.

    Takes RGB in [0, 1]. Inputs smaller than 15 pixels on a side (too small for the attention
    branch's pooling, where the original fails) are padded by edge replication and the output
    cropped back.

    Args:
        scale: Upscaling factor (the sub-pixel head works for any integer; the official code
            builds only x4).
        in_nc: Input channels.
        out_nc: Output channels.
        nf: Feature channels.
        num_modules: Number of RFDBs (named ``B1`` ... as in the official checkpoint).
        rgb_range: Pixel range the network works in (255 for the official weights).
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 50,
        num_modules: int = 4,
        rgb_range: float = 255.0,
    ) -> None:
        super().__init__(
            scale=scale,
            in_nc=in_nc,
            out_nc=out_nc,
            nf=nf,
            num_modules=num_modules,
            prefix="B",
            make_block=RFDB,
            # ESA pools on a grid anchored at the image's corner and resizes the pooled mask
            # by the ratio of the pooled size to the image size: what a pixel sees depends on
            # where it lies in the image and on the image's size, so no overlap makes tiles
            # reproduce the whole image.
            block_reach=None,
        )
        self.rgb_range = rgb_range

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_min_size(x, _MIN_SIZE, mode="replicate")
        y = self.upsampler(self.features(x * self.rgb_range)) / self.rgb_range
        return y[..., : h * self.scale, : w * self.scale]


register_model(
    ModelSpec(
        name="rfdn",
        family="rfdn",
        builder=RFDN,
        scales=(2, 3, 4),
        paper=Paper(
            title="Residual Feature Distillation Network for Lightweight Image Super-Resolution",
            venue="ECCV Workshops",
            year=2020,
            arxiv="2009.11551",
        ),
        code_license="MIT",
        description="RFDN (AIM 2020 release): 4 residual feature distillation blocks, 50 features",
        defaults={"nf": 50, "num_modules": 4, "rgb_range": 255.0},
        weights=(
            WeightSpec(
                scale=4,
                source="https://github.com/njulj/RFDN/raw/master/trained_model/RFDN_AIM.pth",
                sha256="11af8ec8ebd68689e90ef1e29044f9804c72d3bd9f7573820b7b26035782760c",
                size=1_754_927,
                input_range="0-255",
                train_data="AIM 2020 efficient SR challenge data (not detailed upstream)",
                license="MIT",
                sha256_note="sha256 of the file committed to njulj/RFDN (trained_model/)",
            ),
        ),
    )
)


_LAYOUTS = {
    "official": (
        "fea_conv.weight",
        "B1.c1_d.weight",
        "B1.esa.conv1.weight",
        "c.0.weight",
        "LR_conv.weight",
        "upsampler.0.weight",
    ),
}


def detect_rfdn(shapes: Shapes) -> Detected | None:
    """Recognise an RFDN checkpoint (njulj/RFDN keys) from its shapes.

    Reads ``in_nc``, ``nf``, ``num_modules`` and the scale with ``out_nc`` from the pixel-shuffle
    head (``out_nc`` is taken equal to ``in_nc`` where that fits, else 3, else 1). Not in the
    weights, so the default: ``rgb_range`` 255 (the official weights' range).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an RFDN.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    blocks = shapes.indices(r"B(\d+)\.c1_d\.weight")
    in_nc, nf = shapes.dim("fea_conv.weight", 1), shapes.dim("fea_conv.weight")
    scale, out_nc = shuffle_split(shapes.dim("upsampler.0.weight"), in_nc)
    if blocks != list(range(1, len(blocks) + 1)) or not scale:
        return None
    args = {
        "in_nc": in_nc,
        "out_nc": out_nc,
        "nf": nf,
        "num_modules": len(blocks),
        "rgb_range": 255.0,
    }
    return Detected("rfdn", scale, args, "official")


register_detector("rfdn", detect_rfdn, layouts=_LAYOUTS)
