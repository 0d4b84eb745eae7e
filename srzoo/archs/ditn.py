"""DITN: a deployment-friendly inner-patch transformer network.

Paper: Liu, Dong, Liang, Liu, Dong, Chen, Chen, Fu, Wang, "Unfolding Once is Enough: A
Deployment-Friendly Transformer Unit for Super-Resolution", ACM Multimedia 2023,
arXiv:2308.02794.

Parameter names follow yongliuy/DITN ``models/DITN_Real.py`` (spandrel's ``DITN`` has the same
keys); the authors' ``test.py`` loads every released file (DITN, DITN-Tiny, DITN-Real, x2 / x3
/ x4) into that module, from a bare state dict or from ``params``.

The network: a 3x3 convolution; ``ufone_blocks`` UFONE units, each unfolding the features once
into ``patch_size`` patches for ``itl_blocks`` inner-patch transformer layers (ITL: channel
self-attention inside a patch, then a gated depthwise feed-forward, each after a tanh and a 1x1
convolution, each with a skip) and folding them back for ``sal_blocks`` spatial-aware layers
(SAL: a large-kernel depthwise attention, 5x5 then 7x7 dilated by 3, and the same feed-forward);
a 3x3 convolution, a skip, and a one-step pixel-shuffle head to RGB.

Inputs are RGB in [0, 1] (the authors' ``test.py`` divides by 255 and clamps to [0, 1]). Any
size works: the image is reflect-padded at the bottom and right to a multiple of 8 (upstream's
``check_image_size`` pads to the least common multiple of its fixed ``patch_sizes = [8, 8]``;
srzoo to that of 8 and ``patch_size``, the same for every patch size that divides 8) and the
output cropped. ``size_multiple`` in the registry is 8.

DITN declares no receptive-field radius (``receptive_field = None``): the channel attention of an
ITL mixes every pixel of its patch, and the patches are anchored at the image's corner, so what
a pixel sees depends on where it lies, and no tile overlap reproduces the whole image.

The inner-patch attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention`: the channels of a patch are the tokens,
the temperature is folded into the normalised queries and the scale is 1; the query, key and
value projection (upstream's ``nn.Linear``, stored as such) runs as a 1x1 convolution on the
patches, which saves the transposes around it.

Registered model:

- ``ditn``: the code's defaults (60 features, one UFONE of 4 ITL and 4 SAL, feed-forward
  expansion 2, patch 8), x2 / x3 / x4.

Weights: none registered. The authors publish ``DITN``, ``DITN_Tiny``, ``DITN_Real`` and
``DITN_Real_GAN`` files for x2 / x3 / x4 only in a Google Drive folder (no direct download, no
sha256); ``srzoo.load_file`` reads any of them by detection. Their benchmark numbers are in the
paper's tables; srzoo does not restate them without weights to reproduce them with.

Example:
    >>> model = srzoo.load("ditn", scale=4, weights="DITN_x4.pth")
"""

from __future__ import annotations

import math

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
from ._blocks import image_forward
from ._window import pad_to_multiple

__all__ = ["DITN", "ISA", "ITL", "SAL", "SDA", "UFONE", "FeedForward", "detect_ditn"]


class FeedForward(nn.Module):
    """Gated depthwise feed-forward: 1x1 to twice the hidden width, depthwise 3x3, GELU gate.

    Args:
        dim: Feature channels.
        ffn_expansion_factor: Hidden channels per feature channel.
        bias: Biases of the three convolutions.
    """

    def __init__(self, *, dim: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class ISA(nn.Module):
    """Inner-patch self-attention: channel attention over the pixels of one patch.

    Args:
        dim: Feature channels.
        bias: Bias of the output projection (the query, key and value projection always has
            one, as upstream's).
    """

    def __init__(self, *, dim: int, bias: bool) -> None:
        super().__init__()
        self.temperature = nn.Parameter(torch.ones(1, 1, 1))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # The linear projection of every pixel, as a 1x1 convolution: (b, 3c, h, w).
        weight = self.qkv.weight.view(3 * c, c, 1, 1)
        q, k, v = F.conv2d(x, weight, self.qkv.bias).view(b, 3, 1, c, h * w).unbind(1)
        # softmax(normalize(q) normalize(k)^T * t) = SDPA of (t * normalize(q)) at scale 1.
        q = F.normalize(q, dim=-1) * self.temperature
        k = F.normalize(k, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return self.project_out(out.view(b, c, h, w))


class SDA(nn.Module):
    """Spatial-aware depthwise attention: a large-kernel depthwise gate on half the channels.

    Args:
        n_feats: Feature channels.
    """

    def __init__(self, *, n_feats: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, n_feats, 1, 1))
        self.DConvs = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 5, padding=2, groups=n_feats),
            nn.Conv2d(n_feats, n_feats, 7, padding=9, groups=n_feats, dilation=3),
            nn.Conv2d(n_feats, n_feats, 1),
        )
        self.proj_first = nn.Sequential(nn.Conv2d(n_feats, 2 * n_feats, 1))
        self.proj_last = nn.Sequential(nn.Conv2d(n_feats, n_feats, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, x = self.proj_first(x).chunk(2, dim=1)
        return self.proj_last(x * self.DConvs(a)) * self.scale


class ITL(nn.Module):
    """Inner-patch transformer layer: ``x + ISA(conv1(tanh x))``, then ``x + FFN(conv2(tanh x))``.

    Args:
        n_feats: Feature channels.
        ffn_expansion_factor: Hidden channels of the feed-forward per feature channel.
        bias: Biases of the attention's output and of the feed-forward.
    """

    def __init__(self, *, n_feats: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        self.attn = ISA(dim=n_feats, bias=bias)
        self.conv1 = nn.Conv2d(n_feats, n_feats, 1)
        self.conv2 = nn.Conv2d(n_feats, n_feats, 1)
        self.ffn = FeedForward(dim=n_feats, ffn_expansion_factor=ffn_expansion_factor, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.conv1(torch.tanh(x)))
        return x + self.ffn(self.conv2(torch.tanh(x)))


class SAL(nn.Module):
    """Spatial-aware layer: ``x + SDA(conv1(tanh x))``, then ``x + FFN(conv2(tanh x))``.

    Args:
        n_feats: Feature channels.
        ffn_expansion_factor: Hidden channels of the feed-forward per feature channel.
        bias: Biases of the feed-forward.
    """

    def __init__(self, *, n_feats: int, ffn_expansion_factor: float, bias: bool) -> None:
        super().__init__()
        self.SDA = SDA(n_feats=n_feats)
        self.ffn = FeedForward(dim=n_feats, ffn_expansion_factor=ffn_expansion_factor, bias=bias)
        self.conv1 = nn.Conv2d(n_feats, n_feats, 1)
        self.conv2 = nn.Conv2d(n_feats, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.SDA(self.conv1(torch.tanh(x)))
        return x + self.ffn(self.conv2(torch.tanh(x)))


class UFONE(nn.Module):
    """Unfold once into patches for the ITLs, fold back for the SALs.

    Args:
        dim: Feature channels.
        ffn_expansion_factor: Hidden channels of the feed-forwards per feature channel.
        bias: Biases of the attention outputs and feed-forwards.
        itl_blocks: Inner-patch transformer layers.
        sal_blocks: Spatial-aware layers.
        patch_size: Side of the patches.
    """

    def __init__(
        self,
        *,
        dim: int,
        ffn_expansion_factor: float,
        bias: bool,
        itl_blocks: int,
        sal_blocks: int,
        patch_size: int,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        f, b = ffn_expansion_factor, bias
        self.ITLs = nn.Sequential(
            *(ITL(n_feats=dim, ffn_expansion_factor=f, bias=b) for _ in range(itl_blocks))
        )
        self.SALs = nn.Sequential(
            *(SAL(n_feats=dim, ffn_expansion_factor=f, bias=b) for _ in range(sal_blocks))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        p = self.patch_size
        patches = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        patches = self.ITLs(patches.reshape(-1, c, p, p))
        folded = patches.view(b, h // p, w // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
        return self.SALs(folded.reshape(b, c, h, w))


class DITN(nn.Module):
    """Deployment-friendly Inner-patch Transformer Network (upstream's ``DITN_Real``).

    Args:
        scale: Upscaling factor (any integer >= 1; the authors release x2, x3, x4).
        inp_channels: Input channels (the output is RGB, as upstream's head).
        dim: Feature channels.
        itl_blocks: Inner-patch transformer layers per UFONE.
        sal_blocks: Spatial-aware layers per UFONE.
        ufone_blocks: UFONE units.
        ffn_expansion_factor: Hidden channels of the feed-forwards per feature channel.
        bias: Biases of the attention outputs and of the feed-forwards.
        patch_size: Side of the ITL patches.

    Raises:
        ArgumentError: A non-positive size or scale, or a feed-forward without hidden channels.

    Example:
        >>> DITN(scale=4)(torch.rand(1, 3, 20, 20)).shape
        torch.Size([1, 3, 80, 80])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        inp_channels: int = 3,
        dim: int = 60,
        itl_blocks: int = 4,
        sal_blocks: int = 4,
        ufone_blocks: int = 1,
        ffn_expansion_factor: float = 2.0,
        bias: bool = False,
        patch_size: int = 8,
    ) -> None:
        super().__init__()
        sizes = {
            "scale": scale,
            "inp_channels": inp_channels,
            "dim": dim,
            "patch_size": patch_size,
        }
        for name, value in sizes.items():
            if value < 1:
                raise ArgumentError(f"DITN: {name} must be a positive integer, got {value}")
        for name, value in (("itl_blocks", itl_blocks), ("sal_blocks", sal_blocks)):
            if value < 0:
                raise ArgumentError(f"DITN: {name} must be 0 or more, got {value}")
        if ufone_blocks < 1:
            raise ArgumentError(
                f"DITN: ufone_blocks must be a positive integer, got {ufone_blocks}"
            )
        if int(dim * ffn_expansion_factor) < 1:
            raise ArgumentError(
                f"DITN: ffn_expansion_factor {ffn_expansion_factor} leaves the feed-forward of "
                f"{dim} channels no hidden channel"
            )
        self.scale = scale
        self.in_channels = inp_channels
        self.out_channels = 3
        self.receptive_field: int | None = None
        self.patch_size = patch_size
        # Upstream pads to the lcm of its fixed patch_sizes [8, 8]; any patch must tile it too.
        self.pad_multiple = math.lcm(8, patch_size)
        self.sft = nn.Conv2d(inp_channels, dim, 3, padding=1)
        self.UFONE = nn.Sequential(
            *(
                UFONE(
                    dim=dim,
                    ffn_expansion_factor=ffn_expansion_factor,
                    bias=bias,
                    itl_blocks=itl_blocks,
                    sal_blocks=sal_blocks,
                    patch_size=patch_size,
                )
                for _ in range(ufone_blocks)
            )
        )
        self.conv_after_body = nn.Conv2d(dim, dim, 3, padding=1)
        self.upsample = nn.Sequential(
            nn.Conv2d(dim, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        sft = self.sft(pad_to_multiple(x, self.pad_multiple))
        out = self.upsample(self.conv_after_body(self.UFONE(sft)) + sft)
        return out[..., : h * self.scale, : w * self.scale]


register_model(
    ModelSpec(
        name="ditn",
        family="ditn",
        builder=DITN,
        scales=(2, 3, 4),
        paper=Paper(
            title=(
                "Unfolding Once is Enough: A Deployment-Friendly Transformer Unit for "
                "Super-Resolution"
            ),
            venue="ACM Multimedia",
            year=2023,
            arxiv="2308.02794",
        ),
        code_license="Apache-2.0",
        description=(
            "DITN: one UFONE of 4 inner-patch transformer and 4 spatial-aware layers, 60 "
            "features, patch 8; the authors' weights are on Google Drive only"
        ),
        defaults={
            "dim": 60,
            "itl_blocks": 4,
            "sal_blocks": 4,
            "ufone_blocks": 1,
            "ffn_expansion_factor": 2.0,
            "bias": False,
            "patch_size": 8,
        },
        size_multiple=8,
    )
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_ITL0 = "UFONE.0.ITLs.0."
_LAYOUTS = {
    "official": (
        "sft.weight",
        _ITL0 + "attn.temperature",
        _ITL0 + "attn.qkv.weight",
        _ITL0 + "ffn.project_in.weight",
        _ITL0 + "ffn.dwconv.weight",
        "conv_after_body.weight",
        "upsample.0.weight",
    ),
}


def detect_ditn(shapes: Shapes) -> Detected | None:
    """Recognise a DITN checkpoint (yongliuy/DITN ``DITN_Real`` keys) from keys and shapes.

    Reads ``dim`` and the input channels (``sft``), ``ufone_blocks``, ``itl_blocks`` and
    ``sal_blocks`` (the layers of the first UFONE), ``ffn_expansion_factor`` (the feed-forward's
    hidden width over ``dim``), ``bias`` (whether the attention's output projection has one)
    and the scale (the head has ``3 * scale**2`` outputs), as spandrel does. Not in the
    weights: ``patch_size`` (8, upstream's and every release's).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a DITN.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    dim, in_ch = shapes.dim("sft.weight"), shapes.dim("sft.weight", 1)
    ufone = shapes.count(r"UFONE\.(\d+)\.ITLs\.0\.attn\.temperature")
    itl = shapes.count(r"UFONE\.0\.ITLs\.(\d+)\.attn\.temperature")
    sal = shapes.count(r"UFONE\.0\.SALs\.(\d+)\.SDA\.scale")
    hidden = shapes.dim(_ITL0 + "ffn.project_in.weight") // 2
    scale = shuffle_factor(shapes.dim("upsample.0.weight"), 3)
    if min(dim, in_ch, ufone, itl, hidden, scale) < 1 or shapes.dim(_ITL0 + "attn.qkv.weight") != (
        3 * dim
    ):
        return None
    ratio = hidden / dim
    if int(dim * ratio) != hidden:  # int() rounded down: one just above the quotient
        ratio = (hidden + 0.5) / dim
    args: dict[str, object] = {
        "inp_channels": in_ch,
        "dim": dim,
        "itl_blocks": itl,
        "sal_blocks": sal,
        "ufone_blocks": ufone,
        "ffn_expansion_factor": ratio,
        "bias": shapes.has(_ITL0 + "attn.project_out.bias"),
        "patch_size": 8,
    }
    return Detected("ditn", scale, args, "official")


register_detector("ditn", detect_ditn, layouts=_LAYOUTS)
