"""IMDN: information multi-distillation network.

Paper: Hui, Gao, Yang, Wang, "Lightweight Image Super-Resolution with Information
Multi-distillation Network", ACM Multimedia 2019, arXiv:1909.11856.

Parameter names follow Zheng222/IMDN ``model/architecture.py`` (class ``IMDN``) and
``model/block.py``, so the official ``IMDN_x{2,3,4}.pth`` files load unchanged once the
``module.`` prefix of their DataParallel keys is stripped (which srzoo's reader does).

IMDN declares no receptive-field radius (``receptive_field = None``): every block's
contrast-aware channel attention takes the mean and standard deviation of its features over the
whole image.
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
    set5_set14,
    shuffle_split,
)
from ._blocks import DistillationNet

__all__ = ["IMDN", "CCALayer", "IMDModule", "detect_imdn"]


class CCALayer(nn.Module):
    """Contrast-aware channel attention: (standard deviation + mean) per channel, squeeze, excite.

    Args:
        channels: Feature channels.
        reduction: Squeeze ratio of the bottleneck.
    """

    def __init__(self, *, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ArgumentError(
                f"CCALayer needs at least {reduction} channels for reduction {reduction}, "
                f"got {channels}"
            )
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Population variance (divided by H*W), as the original computes it.
        var, mean = torch.var_mean(x, dim=(2, 3), correction=0, keepdim=True)
        return x * self.conv_du(var.sqrt() + mean)


class IMDModule(nn.Module):
    """Information multi-distillation block: three split-and-refine steps, CCA, 1x1 fusion.

    Each 3x3 step keeps ``distillation_rate`` of its channels and refines the rest.

    Args:
        channels: Feature channels.
        distillation_rate: Fraction of channels kept at each step.
    """

    def __init__(self, *, channels: int, distillation_rate: float = 0.25) -> None:
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        if self.distilled < 1:
            raise ArgumentError(f"IMDModule: {channels} channels leave nothing to distil")
        self.c1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2 = nn.Conv2d(self.remaining, channels, 3, padding=1)
        self.c3 = nn.Conv2d(self.remaining, channels, 3, padding=1)
        self.c4 = nn.Conv2d(self.remaining, self.distilled, 3, padding=1)
        self.act = nn.LeakyReLU(0.05, inplace=True)
        self.c5 = nn.Conv2d(4 * self.distilled, channels, 1)
        self.cca = CCALayer(channels=4 * self.distilled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = [self.distilled, self.remaining]
        d1, r1 = torch.split(self.act(self.c1(x)), split, dim=1)
        d2, r2 = torch.split(self.act(self.c2(r1)), split, dim=1)
        d3, r3 = torch.split(self.act(self.c3(r2)), split, dim=1)
        out = torch.cat([d1, d2, d3, self.c4(r3)], dim=1)
        return self.c5(self.cca(out)) + x


class IMDN(DistillationNet):
    """Information Multi-Distillation Network.

    Takes RGB in [0, 1] like the original (no mean shift, no range change).

    Args:
        scale: Upscaling factor (the sub-pixel head works for any integer).
        in_nc: Input channels.
        out_nc: Output channels.
        nf: Feature channels.
        num_modules: Number of IMDBs (named ``IMDB1`` ... as in the official checkpoints).
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 64,
        num_modules: int = 6,
    ) -> None:
        super().__init__(
            scale=scale,
            in_nc=in_nc,
            out_nc=out_nc,
            nf=nf,
            num_modules=num_modules,
            prefix="IMDB",
            make_block=IMDModule,
            # Contrast-aware channel attention pools every channel over the whole image.
            block_reach=None,
        )


_PAPER = Paper(
    title="Lightweight Image Super-Resolution with Information Multi-distillation Network",
    venue="ACM Multimedia",
    year=2019,
    arxiv="1909.11856",
)

# Y-PSNR on Set5 / Set14 from the paper's comparison with lightweight methods (the x2 rows are
# reproduced in the repository's images/psnr_ssim.png).
_REPORTED = {
    2: (38.00, 33.63),
    3: (34.36, 30.32),
    4: (32.21, 28.58),
}
_CHECKPOINTS = {
    2: ("740b39653592bd3f49955a21cd9e16f2d37f2c413368cc09327601b8fbe42ce1", 2_796_052),
    3: ("11b1716a19bc16e5e353e1db798d476169338e631eb170c82d765559888cb028", 2_830_672),
    4: ("e660c38221147217a136debeb99eb304d62d9c0f73ac421ed66281b619719714", 2_879_112),
}


def _weights(scale: int) -> WeightSpec:
    sha, size = _CHECKPOINTS[scale]
    set5, set14 = _REPORTED[scale]
    source = "IMDN paper (arXiv:1909.11856), comparison table"
    return WeightSpec(
        scale=scale,
        source=f"https://github.com/Zheng222/IMDN/raw/master/checkpoints/IMDN_x{scale}.pth",
        sha256=sha,
        size=size,
        input_range="0-1",
        train_data="DIV2K",
        license="none published (the repository has no licence file)",
        metrics=set5_set14(scale, set5, set14, source=source),
        sha256_note="sha256 of the file committed to Zheng222/IMDN (checkpoints/)",
    )


register_model(
    ModelSpec(
        name="imdn",
        family="imdn",
        builder=IMDN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="none published",
        description="IMDN: 6 information multi-distillation blocks, 64 features",
        defaults={"nf": 64, "num_modules": 6},
        weights=tuple(_weights(s) for s in (2, 3, 4)),
    )
)


_LAYOUTS = {
    "official": (
        "fea_conv.weight",
        "IMDB1.c1.weight",
        "IMDB1.cca.conv_du.0.weight",
        "c.0.weight",
        "LR_conv.weight",
        "upsampler.0.weight",
    ),
}


def detect_imdn(shapes: Shapes) -> Detected | None:
    """Recognise an IMDN checkpoint (Zheng222/IMDN keys) from its shapes.

    Reads ``in_nc``, ``nf``, ``num_modules`` and the scale with ``out_nc`` from the pixel-shuffle
    head (``out_nc`` is taken equal to ``in_nc`` where that fits, else 3, else 1).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an IMDN.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    blocks = shapes.indices(r"IMDB(\d+)\.c1\.weight")
    in_nc, nf = shapes.dim("fea_conv.weight", 1), shapes.dim("fea_conv.weight")
    scale, out_nc = shuffle_split(shapes.dim("upsampler.0.weight"), in_nc)
    if blocks != list(range(1, len(blocks) + 1)) or not scale:
        return None
    args = {"in_nc": in_nc, "out_nc": out_nc, "nf": nf, "num_modules": len(blocks)}
    return Detected("imdn", scale, args, "official")


register_detector("imdn", detect_imdn, layouts=_LAYOUTS)
