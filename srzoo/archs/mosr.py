"""MoSR: Mamba Out Super-Resolution, a community network of MambaOut's gated CNN blocks.

There is no paper. MoSR was published by umzi (GitHub ``umzi2``) in the repository
https://github.com/umzi2/MoSR (MIT licence, first commit 2024-06-29, architecture in
``neosr/archs/mosr_arch.py``, trained with a copy of the neosr framework). Its README says
"This architecture was inspired by MambaOut" (Yu and Wang, "MambaOut: Do We Really Need Mamba
for Vision?", arXiv:2405.07992): the body is a stack of MambaOut's gated CNN blocks (channel
layer norm, a 3x3 expansion split into gate / identity / depth-wise-convolved parts, Mish, a
3x3 projection) on the full-resolution features, with a residual ``ConvBlock`` shortcut from
the image (borrowed, as the upstream comment says, from AST, joshyZhou/AST) and a pixel-shuffle
(``ps``), geometric-ensemble pixel-shuffle (``gps``) or DySample (``dys``) upsampler. spandrel
ships the same code (``spandrel/architectures/MoSR``), with the same keys.

Parameter names follow ``neosr/archs/mosr_arch.py``: ``gblocks.0`` (3x3 conv), ``gblocks.1 ..
gblocks.<n_block>`` (``norm``, ``fc1``, ``conv``, ``fc2``), ``gblocks.<n_block + 1>`` /
``<n_block + 3>`` / ``<n_block + 5>`` (the tail convolutions, Mish between), ``shortcut.block.0``
/ ``shortcut.block.2`` / ``shortcut.conv11`` and ``upsampler.*`` (``upsampler.0`` for ``ps``,
``upsampler.in_to_k`` for ``gps``, ``upsampler.offset`` / ``scope`` / ``init_pos`` /
``end_conv`` for ``dys``), so community files load unchanged.

Variants: ``mosr`` (24 blocks, 64 features, 7x7 depth-wise kernels, expansion 1.5) and
``mosr-t`` (the upstream ``mosr_t``: 5 blocks, 48 features). The network works at any scale
(1 to 4 are registered: community files are mostly x4 and x2, some x1).

Weights: the authors publish none (the README lists "release pretrain" as a to-do, last commit
2024-08-21). Community-trained files circulate (OpenModelDB among others) without a digest from
the authors, so none is registered; any of them
loads with ``srzoo.load_file(path)`` or ``srzoo.load("mosr", scale=s, weights=path)``.

Receptive field: with the sub-pixel upsamplers each output pixel sees ``1 + n_block *
(2 + kernel_size // 2) + 3`` low-resolution pixels on each side (124 for ``mosr``, 29 for
``mosr-t``). DySample samples where learned, unbounded offsets point, so a ``dys`` network
declares none (global).

Example:
    >>> model = srzoo.load("mosr", scale=4, weights="4x_community_mosr.safetensors")
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import DySample, FieldStep, LayerNorm2d, image_forward, receptive_radius
from ._transformer import DropPath

__all__ = ["GPS", "ConvBlock", "GatedCNNBlock", "MoSR", "detect_mosr"]

UpsamplerType = Literal["ps", "gps", "dys"]


class GatedCNNBlock(nn.Module):
    """MambaOut's gated CNN block as MoSR uses it (3x3 projections, Mish, a -0.5 skip).

    ``fc1`` expands to ``2 * hidden`` channels, split into a gate (``hidden``), an identity part
    and ``conv_channels`` filtered depth-wise; ``fc2(mish(gate) * [identity, filtered])`` goes
    through Mish and is added to the input minus 0.5, as upstream.

    Args:
        dim: Feature channels.
        expansion_ratio: ``hidden = int(expansion_ratio * dim)``.
        conv_ratio: ``conv_channels = int(conv_ratio * dim)`` (at most ``hidden``).
        kernel_size: Side of the depth-wise kernel (odd).
        drop_path: Stochastic-depth rate during training.
    """

    def __init__(
        self,
        *,
        dim: int,
        expansion_ratio: float = 1.5,
        conv_ratio: float = 1.0,
        kernel_size: int = 7,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = int(expansion_ratio * dim)
        conv_channels = int(conv_ratio * dim)
        if not 0 < conv_channels <= hidden:
            raise ArgumentError(
                f"MoSR: conv_ratio * dim ({conv_channels}) must be between 1 and "
                f"expansion_ratio * dim ({hidden}); use a smaller conv_ratio"
            )
        self.split = [hidden, hidden - conv_channels, conv_channels]
        self.norm = LayerNorm2d(dim)
        self.fc1 = nn.Conv2d(dim, 2 * hidden, 3, padding=1)
        self.act = nn.Mish()
        self.conv = nn.Conv2d(
            conv_channels,
            conv_channels,
            kernel_size,
            padding=kernel_size // 2,
            groups=conv_channels,
        )
        self.fc2 = nn.Conv2d(hidden, dim, 3, padding=1)
        self.drop_path: nn.Module = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, ident, part = torch.split(self.fc1(self.norm(x)), self.split, dim=1)
        y = self.act(self.fc2(self.act(gate) * torch.cat((ident, self.conv(part)), dim=1)))
        out: torch.Tensor = self.drop_path(y)
        return out + (x - 0.5)


class ConvBlock(nn.Module):
    """The shortcut from the image: two 3x3 convolutions with Mish, plus a 1x1 projection.

    Keys ``block.0``, ``block.2`` and ``conv11``, as upstream.

    Args:
        in_ch: Image channels.
        dim: Feature channels.
    """

    def __init__(self, in_ch: int, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(in_ch, dim, 3, padding=1),
            nn.Mish(),
            nn.Conv2d(dim, dim, 3, padding=1),
            nn.Mish(),
        )
        self.conv11 = nn.Conv2d(in_ch, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.block(x) + self.conv11(x)
        return out


class GPS(nn.Module):
    """Geometric-ensemble pixel shuffle: eight sub-pixel predictions, averaged, then shuffled.

    Args:
        dim: Feature channels.
        scale: Upscaling factor.
        out_ch: Image channels.
        kernel_size: Side of the convolution (3 upstream).
    """

    def __init__(self, *, dim: int, scale: int, out_ch: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.in_to_k = nn.Conv2d(
            dim, 8 * out_ch * scale * scale, kernel_size, padding=kernel_size // 2
        )
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.in_to_k(x)
        y = y.unflatten(1, (8, -1)).mean(dim=1)
        return F.pixel_shuffle(y, self.scale)


def _check(scale: int, n_block: int, dim: int, kernel_size: int, upsampler: str) -> None:
    if scale < 1:
        raise ArgumentError(f"MoSR: scale must be a positive integer, got {scale}")
    if n_block < 1 or dim < 1:
        raise ArgumentError(f"MoSR: n_block and dim must be positive, got {n_block} and {dim}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ArgumentError(f"MoSR: kernel_size must be odd, got {kernel_size}")
    if upsampler not in ("ps", "gps", "dys"):
        raise ArgumentError(f"MoSR: upsampler must be 'ps', 'gps' or 'dys', got {upsampler!r}")
    if upsampler == "dys" and dim % 4:
        raise ArgumentError(
            f"MoSR: DySample splits the features into 4 groups; dim ({dim}) must be a multiple of 4"
        )


class MoSR(nn.Module):
    """Mamba Out Super-Resolution (umzi2/MoSR).

    ``gblocks``: a 3x3 convolution, ``n_block`` :class:`GatedCNNBlock`, and a tail (3x3 to
    ``2 * dim``, Mish, 3x3 back, Mish, 1x1); plus a :class:`ConvBlock` shortcut from the image
    minus 0.5; then the upsampler. Takes values in [0, 1] like the original, at any size.

    Args:
        scale: Upscaling factor (any positive integer).
        in_ch: Image channels.
        out_ch: Output channels; the sub-pixel upsamplers (``ps``, ``gps``) return ``in_ch``,
            as upstream, whatever is given.
        n_block: Number of gated CNN blocks.
        dim: Feature channels.
        upsampler: ``"ps"`` (3x3 conv and pixel shuffle), ``"gps"`` (:class:`GPS`) or
            ``"dys"`` (DySample; ``dim`` a multiple of 4).
        drop_path: Largest stochastic-depth rate (linear over the blocks), for training.
        kernel_size: Side of each block's depth-wise kernel.
        expansion_ratio: Hidden width of each block over ``dim``.
        conv_ratio: Depth-wise filtered channels over ``dim``.

    Example:
        >>> net = MoSR(scale=2, n_block=2, dim=16)
        >>> net(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_ch: int = 3,
        out_ch: int = 3,
        n_block: int = 24,
        dim: int = 64,
        upsampler: UpsamplerType = "ps",
        drop_path: float = 0.0,
        kernel_size: int = 7,
        expansion_ratio: float = 1.5,
        conv_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        _check(scale, n_block, dim, kernel_size, upsampler)
        if upsampler != "dys":
            out_ch = in_ch
        self.scale = scale
        self.in_channels = in_ch
        self.out_channels = out_ch
        rates = [drop_path * i / max(n_block - 1, 1) for i in range(n_block)]
        self.gblocks = nn.Sequential(
            nn.Conv2d(in_ch, dim, 3, padding=1),
            *(
                GatedCNNBlock(
                    dim=dim,
                    expansion_ratio=expansion_ratio,
                    conv_ratio=conv_ratio,
                    kernel_size=kernel_size,
                    drop_path=rate,
                )
                for rate in rates
            ),
            nn.Conv2d(dim, 2 * dim, 3, padding=1),
            nn.Mish(),
            nn.Conv2d(2 * dim, dim, 3, padding=1),
            nn.Mish(),
            nn.Conv2d(dim, dim, 1),
        )
        self.shortcut = ConvBlock(in_ch, dim)
        self.upsampler: nn.Module
        if upsampler == "ps":
            self.upsampler = nn.Sequential(
                nn.Conv2d(dim, out_ch * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
            )
        elif upsampler == "gps":
            self.upsampler = GPS(dim=dim, scale=scale, out_ch=out_ch)
        else:
            self.upsampler = DySample(dim, out_ch, scale, groups=4, name="MoSR")
        self.receptive_field: int | None = None
        if upsampler != "dys":
            steps: list[tuple[FieldStep, int]] = [("conv", 1)]
            steps += [("conv", 2 + kernel_size // 2)] * n_block
            steps += [("conv", 1), ("conv", 1), ("conv", 1), ("up", scale)]
            self.receptive_field = receptive_radius(steps)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.gblocks(x) + (self.shortcut(x) - 0.5)
        # The trunk runs channels-last (see LayerNorm2d); hand back an ordinary tensor.
        out: torch.Tensor = self.upsampler(features)
        return out.contiguous()


_PAPER = Paper(
    title="MoSR: Mamba Out Super-Resolution (no paper; after MambaOut, arXiv:2405.07992)",
    venue="umzi2/MoSR on GitHub",
    year=2024,
)

_COMMON = {"upsampler": "ps", "kernel_size": 7, "expansion_ratio": 1.5, "conv_ratio": 1.0}

register_model(
    ModelSpec(
        name="mosr",
        family="mosr",
        builder=MoSR,
        scales=(1, 2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="MoSR: 24 MambaOut gated CNN blocks, 64 features, 7x7 depth-wise kernels "
        "(community real-world weights)",
        task="real-world",
        colour="rgb",
        defaults={"n_block": 24, "dim": 64, **_COMMON},
    )
)
register_model(
    ModelSpec(
        name="mosr-t",
        family="mosr",
        builder=MoSR,
        scales=(1, 2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="MoSR-T (upstream mosr_t): 5 gated CNN blocks, 48 features",
        task="real-world",
        colour="rgb",
        defaults={"n_block": 5, "dim": 48, **_COMMON},
    )
)


_LAYOUTS = {
    "official": (
        "gblocks.0.weight",
        "gblocks.1.norm.weight",
        "gblocks.1.fc1.weight",
        "gblocks.1.conv.weight",
        "gblocks.1.fc2.weight",
        "shortcut.conv11.weight",
    ),
}


def _ratio(part: int, dim: int) -> float:
    """A ratio whose ``int(dim * ratio)`` is ``part``: the quotient, unless it rounds down."""
    ratio = part / dim
    return ratio if int(dim * ratio) == part else (part + 0.5) / dim


def _upsampler(shapes: Shapes, in_ch: int, dim: int) -> tuple[str, int, int]:
    """``(upsampler, scale, out_ch)`` from the upsampler's tensors, or ``("", 0, 0)``."""
    if shapes.has("upsampler.offset.weight", "upsampler.end_conv.weight"):
        scale = math.isqrt(shapes.dim("upsampler.offset.weight") // 8)
        if scale < 1 or 8 * scale * scale != shapes.dim("upsampler.offset.weight") or dim % 4:
            return "", 0, 0
        return "dys", scale, shapes.dim("upsampler.end_conv.weight")
    if shapes.has("upsampler.in_to_k.weight"):
        return "gps", shuffle_factor(shapes.dim("upsampler.in_to_k.weight"), 8 * in_ch), in_ch
    if shapes.has("upsampler.0.weight"):
        return "ps", shuffle_factor(shapes.dim("upsampler.0.weight"), in_ch), in_ch
    return "", 0, 0


def detect_mosr(shapes: Shapes) -> Detected | None:
    """Recognise a MoSR checkpoint (umzi2/MoSR keys, as spandrel's MoSR) from keys and shapes.

    Reads the image channels, ``dim``, ``n_block`` (the gated blocks ``gblocks.1 ..``),
    ``expansion_ratio`` and ``conv_ratio`` (from the widths of ``fc1`` and the depth-wise
    ``conv``, as ratios the builder truncates back to those widths), ``kernel_size``, the
    upsampler (DySample's ``offset``, GPS's ``in_to_k`` or a pixel shuffle's ``upsampler.0``),
    the scale and the output channels. ``drop_path`` only acts in training: 0 is used. Files
    with 5 blocks of 48 features (and the other defaults) are named ``mosr-t``, the others
    ``mosr``.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a MoSR.

    Example:
        >>> state = MoSR(scale=2, n_block=2, dim=16).state_dict()
        >>> detect_mosr(Shapes({k: v.shape for k, v in state.items()})).scale
        2
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    found = shapes.indices(r"gblocks\.(\d+)\.norm\.weight")
    n_block = len(found)
    dim, in_ch = shapes.dim("gblocks.0.weight"), shapes.dim("gblocks.0.weight", 1)
    fc1, conv = shapes["gblocks.1.fc1.weight"], shapes["gblocks.1.conv.weight"]
    tail = f"gblocks.{n_block + 5}.weight"
    if (
        found != list(range(1, n_block + 1))
        or fc1[0] % 2
        or shapes.dim(f"gblocks.{n_block + 1}.weight") != 2 * dim
        or (shapes.dim(tail), shapes.dim(tail, 1)) != (dim, dim)
        or len(conv) != 4
        or conv[2] != conv[3]
        or conv[2] % 2 == 0
    ):
        return None
    upsampler, scale, out_ch = _upsampler(shapes, in_ch, dim)
    if not scale:
        return None
    args: dict[str, object] = {
        "in_ch": in_ch,
        "out_ch": out_ch,
        "n_block": n_block,
        "dim": dim,
        "upsampler": upsampler,
        "drop_path": 0.0,
        "kernel_size": conv[2],
        "expansion_ratio": _ratio(fc1[0] // 2, dim),
        "conv_ratio": _ratio(conv[0], dim),
    }
    tiny = (n_block, dim, conv[2], fc1[0] // 2, conv[0]) == (5, 48, 7, 72, 48)
    return Detected("mosr-t" if tiny else "mosr", scale, args, "official")


register_detector("mosr", detect_mosr, layouts=_LAYOUTS)
