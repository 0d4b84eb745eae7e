"""SAFMN-BCIE: SAFMN's authors' network for blind compressed image enhancement (x1).

SAFMN_BCIE comes from the authors of SAFMN (Long Sun, Jiangxin Dong, Jinhui Tang, Jinshan Pan,
IMAG Lab, Nanjing University of Science and Technology) and lives in their repository
https://github.com/sunny2109/SAFMN (Apache-2.0), ``basicsr/archs/safmn_bcie_arch.py``. The
repository names no paper or challenge of its own for it: its news of 2024-03-16 says it
"enhances the quality of JPEG images compressed with a large range of quality factors", and its
README shows it under "Results on Blind Compressed Images", whence BCIE: blind compressed image
enhancement (restoration at scale 1, the quality factor unknown). The repository cites the SAFMN
paper, whose building blocks it reuses: Sun, Dong, Tang, Pan, "Spatially-Adaptive Feature
Modulation for Efficient Image Super-Resolution", ICCV 2023, arXiv:2302.13800.

The network: a pixel-unshuffle by ``upscaling_factor`` (2) and a 3x3 convolution to ``dim``
features; ``n_blocks`` residual groups of ``num_layers`` SAFMN feature mixing modules (LayerNorm,
SAFM, LayerNorm, convolutional channel mixer) and a 3x3 convolution; a long skip; a 3x3
convolution, pixel shuffle back to full resolution and a 3x3 convolution to RGB. It works at
half resolution inside and returns the input's size. Parameter names follow
``safmn_bcie_arch.py`` (``to_feat.1``, ``feats.<i>.layers.<j>.{norm1, safm.mfr.<k>, safm.aggr,
norm2, ccm.ccm.0, ccm.ccm.2}``, ``feats.<i>.conv``, ``to_img.0``, ``to_img.2``), the same as
spandrel's ``SAFMNBCIE``, so the authors' file loads unchanged.

Weights: ``SAFMN_BCIE.pth`` (dim 128, 8 groups of 6 layers, the configuration of the authors'
``inference/inference_safmn_bcie.py``, BasicSR ``params`` wrapper) is published as a GitHub
release asset, https://github.com/sunny2109/SAFMN/releases/download/v0.1.1/SAFMN_BCIE.pth,
without a digest, so it is not registered; it loads with ``srzoo.load_file(path)`` or
``srzoo.load("safmn-bcie", scale=1, weights=path)``. The authors report no benchmark numbers
for it.

Sizes: the original needs sides that are multiples of ``upscaling_factor`` (the unshuffle) and,
for its coarsest pooling level, at least ``8 * upscaling_factor`` pixels (spandrel asks for
multiples of 16). Here any size works: odd sides are reflect-padded to the factor and cropped,
and pooling levels smaller than a pixel are clamped to one pixel (a global maximum).

SAFMN-BCIE declares no receptive-field radius (``receptive_field = None``): each SAFM max-pools
its features to ``(h // 2**i, w // 2**i)`` of the image's size, so the pooling windows follow the
size of the image and no tile overlap reproduces the whole image's output exactly.

Example:
    >>> model = srzoo.load("safmn-bcie", scale=1, weights="SAFMN_BCIE.pth")
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
    register_detector,
    register_model,
)
from ._blocks import SAFM, LayerNorm2d, image_forward
from ._window import pad_to_multiple

__all__ = ["SAFMNBCIE", "BasicLayer", "detect_safmnbcie"]

_LEVELS = 4  # SAFM's pooling levels, fixed upstream


class _CCM(nn.Module):
    """Convolutional channel mixer (key ``ccm``): 3x3 expansion, GELU, 1x1 projection."""

    def __init__(self, dim: int, growth_rate: float) -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self.ccm = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, dim, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.ccm(x)
        return out


class _AttBlock(nn.Module):
    """SAFMN's feature mixing module: pre-norm SAFM and pre-norm CCM, each with a skip."""

    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.norm2 = LayerNorm2d(dim)
        self.safm = SAFM(dim=dim, n_levels=_LEVELS)
        self.ccm = _CCM(dim, ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.safm(self.norm1(x)) + x
        out: torch.Tensor = self.ccm(self.norm2(x)) + x
        return out


class BasicLayer(nn.Module):
    """A residual group: ``num_layers`` feature mixing modules and a 3x3 convolution.

    Args:
        num_layers: Feature mixing modules.
        dim: Feature channels.
        ffn_scale: Expansion of each channel mixer.
    """

    def __init__(self, *, num_layers: int, dim: int, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(_AttBlock(dim, ffn_scale) for _ in range(num_layers)))
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(self.layers(x)) + x
        return out


class SAFMNBCIE(nn.Module):
    """SAFMN for blind compressed image enhancement (sunny2109/SAFMN ``SAFMN_BCIE``), x1.

    Takes RGB in [0, 1] like the original and returns the enhanced image at the same size; any
    size works (see the module docstring).

    Args:
        scale: Must be 1 (an enhancement network); accepted so every family builds alike.
        dim: Feature channels (a multiple of 4).
        n_blocks: Residual groups.
        num_layers: Feature mixing modules per group.
        ffn_scale: Expansion of each channel mixer.
        upscaling_factor: The pixel-unshuffle factor into the half-resolution trunk.

    Example:
        >>> net = SAFMNBCIE(dim=16, n_blocks=1, num_layers=1)
        >>> net(torch.rand(1, 3, 17, 20)).shape
        torch.Size([1, 3, 17, 20])
    """

    def __init__(
        self,
        *,
        scale: int = 1,
        dim: int = 128,
        n_blocks: int = 8,
        num_layers: int = 6,
        ffn_scale: float = 2.0,
        upscaling_factor: int = 2,
    ) -> None:
        super().__init__()
        if scale != 1:
            raise ArgumentError(
                f"SAFMN-BCIE restores images at their size: scale must be 1, got {scale}"
            )
        if dim < _LEVELS or dim % _LEVELS:
            raise ArgumentError(f"SAFMN-BCIE: dim must be a positive multiple of 4, got {dim}")
        if min(n_blocks, num_layers, upscaling_factor) < 1:
            raise ArgumentError(
                f"SAFMN-BCIE: n_blocks, num_layers and upscaling_factor must be positive, got "
                f"{n_blocks}, {num_layers}, {upscaling_factor}"
            )
        self.scale = 1
        self.in_channels = 3
        self.out_channels = 3
        self.factor = upscaling_factor
        # Size-dependent pooling in every module (see the module docstring): no local radius.
        self.receptive_field: int | None = None
        f2 = upscaling_factor * upscaling_factor
        self.to_feat = nn.Sequential(
            nn.PixelUnshuffle(upscaling_factor), nn.Conv2d(3 * f2, dim, 3, padding=1)
        )
        self.feats = nn.Sequential(
            *(
                BasicLayer(num_layers=num_layers, dim=dim, ffn_scale=ffn_scale)
                for _ in range(n_blocks)
            )
        )
        self.to_img = nn.Sequential(
            nn.Conv2d(dim, dim * f2, 3, padding=1),
            nn.PixelShuffle(upscaling_factor),
            nn.Conv2d(dim, 3, 3, padding=1),
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        features = self.to_feat(pad_to_multiple(x, self.factor))
        out: torch.Tensor = self.to_img(self.feats(features) + features)
        # The trunk runs channels-last (see LayerNorm2d); hand back an ordinary tensor.
        return out[:, :, :h, :w].contiguous()


_PAPER = Paper(
    title="Spatially-Adaptive Feature Modulation for Efficient Image Super-Resolution "
    "(SAFMN; the BCIE network has no paper of its own)",
    venue="ICCV",
    year=2023,
    arxiv="2302.13800",
)

register_model(
    ModelSpec(
        name="safmn-bcie",
        family="safmnbcie",
        builder=SAFMNBCIE,
        scales=(1,),
        paper=_PAPER,
        code_license="Apache-2.0",
        description="SAFMN-BCIE: JPEG artefact removal at x1 for unknown quality factors, "
        "8 groups of 6 SAFMN modules at half resolution, 128 features",
        task="real-world",
        colour="rgb",
        defaults={
            "dim": 128,
            "n_blocks": 8,
            "num_layers": 6,
            "ffn_scale": 2.0,
            "upscaling_factor": 2,
        },
        size_multiple=2,
    )
)


_LAYOUTS = {
    "official": (
        "to_feat.1.weight",
        "feats.0.layers.0.norm1.weight",
        "feats.0.layers.0.safm.mfr.0.weight",
        "feats.0.layers.0.ccm.ccm.0.weight",
        "feats.0.conv.weight",
        "to_img.0.weight",
        "to_img.2.weight",
    ),
}


def detect_safmnbcie(shapes: Shapes) -> Detected | None:
    """Recognise a SAFMN-BCIE checkpoint (sunny2109/SAFMN ``safmn_bcie_arch.py`` keys).

    Reads ``dim``, ``n_blocks``, ``num_layers``, ``ffn_scale`` (the channel mixer's hidden width
    over ``dim``, as a ratio the builder truncates back to that width) and ``upscaling_factor``
    (from the ``3 * factor**2`` channels of ``to_feat.1``). The scale is 1. Nothing is left to
    a default: the image channels (3) and the four pooling levels are fixed by the network.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a SAFMN-BCIE.

    Example:
        >>> state = SAFMNBCIE(dim=16, n_blocks=1, num_layers=1).state_dict()
        >>> detect_safmnbcie(Shapes({k: v.shape for k, v in state.items()})).name
        'safmn-bcie'
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    dim, packed = shapes.dim("to_feat.1.weight"), shapes.dim("to_feat.1.weight", 1)
    factor = next((f for f in range(1, 9) if 3 * f * f == packed), 0)
    n_blocks = shapes.count(r"feats\.(\d+)\.conv\.weight")
    num_layers = shapes.count(r"feats\.0\.layers\.(\d+)\.norm1\.weight")
    hidden = shapes.dim("feats.0.layers.0.ccm.ccm.0.weight")
    if (
        not factor
        or not n_blocks
        or dim % _LEVELS
        or shapes.dim("to_img.0.weight") != dim * factor * factor
        or shapes.dim("to_img.2.weight") != 3
        or shapes.count(r"feats\.0\.layers\.0\.safm\.mfr\.(\d+)\.weight") != _LEVELS
    ):
        return None
    ffn_scale = hidden / dim
    if int(dim * ffn_scale) != hidden:  # a quotient rounded below: int() would lose one
        ffn_scale = (hidden + 0.5) / dim
    args = {
        "dim": dim,
        "n_blocks": n_blocks,
        "num_layers": num_layers,
        "ffn_scale": ffn_scale,
        "upscaling_factor": factor,
    }
    return Detected("safmn-bcie", 1, args, "official")


register_detector("safmnbcie", detect_safmnbcie, layouts=_LAYOUTS)
