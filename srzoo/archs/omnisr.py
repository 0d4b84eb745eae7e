"""Omni-SR: omni self-attention for lightweight super-resolution.

Paper: Wang, Chen, Ni, Liu, Liu, "Omni Aggregation Networks for Lightweight Image
Super-Resolution", CVPR 2023, arXiv:2304.10244.

Parameter names follow Francis0625/Omni-SR (``components/OmniSR.py``, ``ops/OSAG.py``,
``ops/OSA.py``, ``ops/esa.py``; spandrel's ``OmniSR`` has the same keys), so the authors' files
load unchanged once srzoo's reader has unwrapped them.

The network: a 3x3 convolution; ``res_num`` omni self-attention groups (OSAG), each
``block_num`` omni self-attention blocks, a 1x1 convolution, a skip and an enhanced spatial
attention (ESA); a 3x3 convolution and a skip over the body; a one-step pixel-shuffle head. An
OSA block is an MBConv (with squeeze-excitation), then self-attention in ``window_size`` blocks
(with a learned relative-position bias when ``pe``), a gated convolutional feed-forward,
channel attention inside each block, a feed-forward, the same spatial attention over a sparse
grid (every ``H / window_size``-th pixel), a feed-forward, channel attention across the grid,
and a last feed-forward: each a pre-norm residual.

Input range: the authors trained and evaluated on images mapped to [-1, 1]
(``ToTensor`` then ``Normalize(0.5, 0.5)`` in ``data_tools/test_dataloader_rcan.py``, the same
map in the training loaders), and their output is read back from [-1, 1]. With ``signed=True``
(the default) the module does that mapping inside, so it takes and returns [0, 1] like every
srzoo model; ``signed=False`` runs the network on [0, 1] directly, as spandrel does.

Any size works: the (mapped) input is zero-padded at the bottom and right to a multiple of the
window (8), as the original's ``check_image_size`` does, and at least to 15 pixels a side (the
ESA's strided 7x7 max pool has nothing to pool below that; upstream fails there), then the
output is cropped. ``size_multiple`` in the registry is the window.

Omni-SR declares no receptive-field radius (``receptive_field = None``): the grid attention and
the grid channel attention mix pixels across the whole image, the squeeze-excitation pools it
globally, and the windows are anchored at the image's corner.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`: the spatial
attention with the relative-position bias as a float ``attn_mask`` and upstream's scale
``dim_head ** -0.5``; the channel attention with the per-head temperature folded into the
normalised queries and a scale of 1.

Registered model:

- ``omnisr``: 64 features, 5 groups of 1 block, window 8, relative-position bias, x2 / x3 / x4.

Weights: none registered. The authors publish x2 / x3 / x4 files trained on DIV2K and on DF2K
(Flickr2K added) only as zip archives on Google Drive and Baidu Cloud (no direct download);
OpenModelDB's model-hub mirrors three of them as GitHub release assets
(``4x-OmniSR-DF2K.pth``, ``3x-OmniSR-DIV2K.pth``, ``2x-OmniSR-DIV2K.pth``) without a published
sha256, so none can be registered; ``srzoo.load_file`` reads any of them by detection. The
paper's Set5 / Set14 PSNR (Y channel; ``result.tex`` in the authors' repository, Table 2):
DIV2K-trained x2 38.22 / 33.98, x3 34.70 / 30.57, x4 32.49 / 28.78; DF2K-trained (Omni-SR
dagger) x2 38.29 / 34.27, x3 34.77 / 30.70, x4 32.57 / 28.95.

Example:
    >>> model = srzoo.load("omnisr", scale=4, weights="4x-OmniSR-DF2K.pth")
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    register_detector,
    register_model,
    shuffle_split,
)
from ._blocks import ESA, LayerNorm2d, image_forward
from ._transformer import merge_heads
from ._window import relative_position_index, window_partition, window_reverse

__all__ = [
    "OSAG",
    "OSABlock",
    "OmniSR",
    "detect_omnisr",
]

# The ESA's stride-2 3x3 convolution and 7x7 max pool of stride 3 need this many pixels a side.
_MIN_SIZE = 15


class _SqueezeExcitation(nn.Module):
    """Global-average gate of an MBConv; ``gate.1`` / ``gate.3`` are upstream's linear layers."""

    def __init__(self, dim: int, shrinkage_rate: float = 0.25) -> None:
        super().__init__()
        hidden = int(dim * shrinkage_rate)
        # Index 0 is upstream's pooling (an einops Reduce); kept as a slot so the keys match.
        self.gate = nn.Sequential(
            nn.Identity(),
            nn.Linear(dim, hidden, bias=False),
            nn.SiLU(),
            nn.Linear(hidden, dim, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean((2, 3)))[:, :, None, None]


class _MBConv(nn.Module):
    """Inverted bottleneck (expansion 1): 1x1, GELU, depthwise 3x3, GELU, SE, 1x1, plus a skip."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fn = nn.Sequential(
            nn.Conv2d(dim, dim, 1),
            nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.GELU(),
            _SqueezeExcitation(dim),
            nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fn(x) + x
        return out


class _Attention(nn.Module):
    """Multi-head self-attention over ``(windows, N, C)`` tokens with a relative-position bias."""

    def __init__(self, dim: int, heads: int, window_size: int, with_pe: bool) -> None:
        super().__init__()
        self.heads = heads
        self.window_size = window_size
        self.scale = (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim, bias=False))
        self.rel_pos_bias = nn.Embedding((2 * window_size - 1) ** 2, heads) if with_pe else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        windows, n, c = x.shape
        q, k, v = (
            self.to_qkv(x).view(windows, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        )
        mask = None
        if self.rel_pos_bias is not None:
            table = self.rel_pos_bias.weight
            index = relative_position_index(self.window_size, table.device)
            bias = table.t()[:, index].to(x.dtype)  # (heads, N, N)
            # A stride-0 expansion keeps SDPA on its fused CPU kernel.
            mask = bias.unsqueeze(0).expand(windows, -1, -1, -1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        out_tokens: torch.Tensor = self.to_out(merge_heads(out))
        return out_tokens


class _PreNormAttention(nn.Module):
    """``x + attention(layer_norm(x))`` on channel-last window tokens (``PreNormResidual``)."""

    def __init__(self, dim: int, window_size: int, with_pe: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        # Four heads of dim // 4 features, as upstream's ``dim_head = channel_num // 4``.
        self.fn = _Attention(dim, 4, window_size, with_pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fn(self.norm(x)) + x
        return out


class _GatedFeedForward(nn.Module):
    """Gated depthwise-convolutional feed-forward (``Gated_Conv_FeedForward``, no biases)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project_in = nn.Conv2d(dim, 2 * dim, 1, bias=False)
        self.dwconv = nn.Conv2d(2 * dim, 2 * dim, 3, padding=1, groups=2 * dim, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        out: torch.Tensor = self.project_out(F.gelu(x1) * x2)
        return out


class _ChannelAttention(nn.Module):
    """Channel attention per head over the pixels of each window, or across the window grid.

    ``grid=False`` (``Channel_Attention``): the tokens of one attention are the channels of one
    head, each a vector over the pixels of one ``window x window`` block. ``grid=True``
    (``Channel_Attention_grid``): one attention per position inside the blocks, each channel a
    vector over the blocks.
    """

    def __init__(self, dim: int, heads: int, window_size: int, grid: bool) -> None:
        super().__init__()
        self.heads = heads
        self.window_size = window_size
        self.grid = grid
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h = x.shape[0], x.shape[2]
        ws = self.window_size
        qkv = self.qkv_dwconv(self.qkv(x))
        if self.grid:
            pattern = "b (s head d) (h ph) (w pw) -> s (b ph pw) head d (h w)"
        else:
            pattern = "b (s head d) (h ph) (w pw) -> s (b h w) head d (ph pw)"
        q, k, v = rearrange(qkv, pattern, s=3, head=self.heads, ph=ws, pw=ws)
        # softmax(normalize(q) normalize(k)^T * t) = SDPA of (t * normalize(q)) at scale 1.
        q = F.normalize(q, dim=-1) * self.temperature
        k = F.normalize(k, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        if self.grid:
            back = "(b ph pw) head d (h w) -> b (head d) (h ph) (w pw)"
        else:
            back = "(b h w) head d (ph pw) -> b (head d) (h ph) (w pw)"
        out = rearrange(out, back, b=b, h=h // ws, ph=ws, pw=ws)
        result: torch.Tensor = self.project_out(out)
        return result


class _ConvPreNorm(nn.Module):
    """``x + fn(layer_norm_2d(x))`` on ``(N, C, H, W)`` maps (``Conv_PreNormResidual``)."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = LayerNorm2d(dim, channels_last=False)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fn(self.norm(x)) + x
        return out


class OSABlock(nn.Module):
    """Omni self-attention block: MBConv, block and grid attention, channel attention, FFNs.

    Upstream builds it as one ``nn.Sequential`` whose slots 1, 3, 7 and 9 are parameter-free
    rearrangements; ``layer`` keeps the other slots under the same indices.

    Args:
        channel_num: Feature channels (a multiple of 4: four attention heads).
        window_size: Side of the attention blocks and of the grid.
        with_pe: Learn a relative-position bias for the spatial attention.
    """

    def __init__(self, *, channel_num: int = 64, window_size: int = 8, with_pe: bool = True):
        super().__init__()
        dim, ws = channel_num, window_size
        self.window_size = ws
        self.layer = nn.ModuleDict(
            {
                "0": _MBConv(dim),
                "2": _PreNormAttention(dim, ws, with_pe),
                "4": _ConvPreNorm(dim, _GatedFeedForward(dim)),
                "5": _ConvPreNorm(dim, _ChannelAttention(dim, 4, ws, grid=False)),
                "6": _ConvPreNorm(dim, _GatedFeedForward(dim)),
                "8": _PreNormAttention(dim, ws, with_pe),
                "10": _ConvPreNorm(dim, _GatedFeedForward(dim)),
                "11": _ConvPreNorm(dim, _ChannelAttention(dim, 4, ws, grid=True)),
                "12": _ConvPreNorm(dim, _GatedFeedForward(dim)),
            }
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ws = self.window_size
        layer = self.layer
        x = layer["0"](x)
        b, _, h, w = x.shape
        # Block attention: row-major windows of the channel-last map.
        tokens = window_partition(x.permute(0, 2, 3, 1), ws)
        x = window_reverse(layer["2"](tokens), ws, h, w).permute(0, 3, 1, 2)
        x = layer["6"](layer["5"](layer["4"](x)))
        # Grid attention: window (i, j) holds the pixels (a * h / ws + i, b * w / ws + j).
        grid = "b c (w1 x) (w2 y) -> (b x y) (w1 w2) c"
        tokens = rearrange(x, grid, w1=ws, w2=ws)
        back = "(b x y) (w1 w2) c -> b c (w1 x) (w2 y)"
        x = rearrange(layer["8"](tokens), back, b=b, x=h // ws, w1=ws)
        out: torch.Tensor = layer["12"](layer["11"](layer["10"](x)))
        return out


class OSAG(nn.Module):
    """Omni self-attention group: OSA blocks, a 1x1 convolution, a skip, then ESA.

    Args:
        channel_num: Feature channels.
        bias: Bias of the closing 1x1 convolution.
        block_num: OSA blocks.
        window_size: Side of the attention windows.
        pe: Relative-position bias in the spatial attention.
    """

    def __init__(
        self,
        *,
        channel_num: int = 64,
        bias: bool = True,
        block_num: int = 1,
        window_size: int = 8,
        pe: bool = True,
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = [
            OSABlock(channel_num=channel_num, window_size=window_size, with_pe=pe)
            for _ in range(block_num)
        ]
        blocks.append(nn.Conv2d(channel_num, channel_num, 1, bias=bias))
        self.residual_layer = nn.Sequential(*blocks)
        self.esa = ESA(esa_channels=max(channel_num // 4, 16), n_feats=channel_num)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.esa(self.residual_layer(x) + x)
        return out


class OmniSR(nn.Module):
    """Omni-SR: omni self-attention groups between a convolution and a pixel-shuffle head.

    Args:
        scale: Upscaling factor (any integer >= 1; the authors train x2, x3, x4).
        num_in_ch: Input channels.
        num_out_ch: Output channels.
        num_feat: Feature channels (a multiple of 4: four heads in every attention).
        block_num: OSA blocks per group.
        pe: Learn a relative-position bias in the spatial attention.
        window_size: Side of the attention windows and of the grid.
        res_num: Omni self-attention groups.
        bias: Biases of the outer convolutions and of each group's 1x1 convolution.
        signed: Run the network on [-1, 1] (the authors' training and test range; the module
            maps its [0, 1] input there and the output back); ``False`` feeds [0, 1] as it is.

    Raises:
        ArgumentError: A non-positive size or scale, or ``num_feat`` not a multiple of 4.

    Example:
        >>> OmniSR(scale=4)(torch.rand(1, 3, 20, 20)).shape
        torch.Size([1, 3, 80, 80])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        block_num: int = 1,
        pe: bool = True,
        window_size: int = 8,
        res_num: int = 5,
        bias: bool = True,
        signed: bool = True,
    ) -> None:
        super().__init__()
        sizes = {
            "scale": scale,
            "num_in_ch": num_in_ch,
            "num_out_ch": num_out_ch,
            "num_feat": num_feat,
            "block_num": block_num,
            "window_size": window_size,
            "res_num": res_num,
        }
        for name, value in sizes.items():
            if value < 1:
                raise ArgumentError(f"OmniSR: {name} must be a positive integer, got {value}")
        if num_feat % 4:
            raise ArgumentError(
                f"OmniSR: num_feat must be a multiple of 4 (four attention heads), got {num_feat}"
            )
        self.scale = scale
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.signed = signed
        self.input = nn.Conv2d(num_in_ch, num_feat, 3, padding=1, bias=bias)
        self.residual_layer = nn.Sequential(
            *(
                OSAG(
                    channel_num=num_feat,
                    bias=bias,
                    block_num=block_num,
                    window_size=window_size,
                    pe=pe,
                )
                for _ in range(res_num)
            )
        )
        self.output = nn.Conv2d(num_feat, num_feat, 3, padding=1, bias=bias)
        self.up = nn.Sequential(
            nn.Conv2d(num_feat, num_out_ch * scale * scale, 3, padding=1, bias=bias),
            nn.PixelShuffle(scale),
        )

    def _padded(self, n: int) -> int:
        ws = self.window_size
        # sym_max and a remainder keep the size free while exporting (max() would fix the traced
        # case, and ONNX divides integers toward zero, so -(-n // ws) rounds the wrong way).
        n = cast(int, torch.sym_max(n, _MIN_SIZE))
        return n + -n % ws

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.signed:
            x = x * 2.0 - 1.0
        # Zeros, as upstream pads (0 is mid-grey in the signed range).
        x = F.pad(x, (0, self._padded(w) - w, 0, self._padded(h) - h))
        residual = self.input(x)
        out = self.output(self.residual_layer(residual)) + residual
        out = self.up(out)[..., : h * self.scale, : w * self.scale]
        if self.signed:
            out = (out + 1.0) * 0.5
        return out


_PAPER = Paper(
    title="Omni Aggregation Networks for Lightweight Image Super-Resolution",
    venue="CVPR",
    year=2023,
    arxiv="2304.10244",
)

register_model(
    ModelSpec(
        name="omnisr",
        family="omnisr",
        builder=OmniSR,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="Apache-2.0",
        description=(
            "Omni-SR: 5 omni self-attention groups, 64 features, window 8; the authors' "
            "DIV2K / DF2K weights are on Google Drive only (load them with srzoo.load_file)"
        ),
        defaults={
            "num_feat": 64,
            "block_num": 1,
            "pe": True,
            "window_size": 8,
            "res_num": 5,
            "bias": True,
            "signed": True,
        },
        size_multiple=8,
    )
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "residual_layer.0.residual_layer.0.layer."
_LAYOUTS = {
    "official": (
        "input.weight",
        "output.weight",
        "up.0.weight",
        _BLOCK0 + "0.fn.0.weight",
        _BLOCK0 + "2.fn.to_qkv.weight",
        _BLOCK0 + "5.fn.temperature",
        "residual_layer.0.esa.conv1.weight",
    ),
}


def detect_omnisr(shapes: Shapes) -> Detected | None:
    """Recognise an Omni-SR checkpoint (Francis0625/Omni-SR keys) from keys and shapes.

    Reads ``num_feat`` and the input channels (``input``), ``bias`` (whether ``input`` has
    one), ``res_num`` (the groups), ``block_num`` (the entries of a group's
    ``residual_layer`` but its closing convolution), ``pe`` (whether the attention has a
    ``rel_pos_bias`` table) and then ``window_size`` (the table has ``(2 * window - 1) ** 2``
    rows), and the scale and output channels from the pixel-shuffle head (``up.0``), as
    spandrel does. Not in the weights: ``window_size`` without ``pe`` (8, the authors'), and
    the input range (``signed=True``, the authors' [-1, 1]: every published file was trained
    so; pass ``signed=False`` to ``srzoo.load_file`` for a network trained on [0, 1]).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an Omni-SR.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    num_feat, in_ch = shapes.dim("input.weight"), shapes.dim("input.weight", 1)
    res_num = shapes.count(r"residual_layer\.(\d+)\.esa\.conv1\.weight")
    entries = shapes.indices(r"residual_layer\.0\.residual_layer\.(\d+)\..*")
    block_num = len(entries) - 1
    if (
        min(num_feat, in_ch, res_num, block_num) < 1
        or num_feat % 4
        or entries != list(range(block_num + 1))
        or shapes.dim(f"residual_layer.0.residual_layer.{block_num}.weight", 1) != num_feat
    ):
        return None
    scale, out_ch = shuffle_split(shapes.dim("up.0.weight"), in_ch)
    if not scale:
        return None
    table = shapes.dim(_BLOCK0 + "2.fn.rel_pos_bias.weight")
    window_size = 8
    if table:
        side = math.isqrt(table)
        if side * side != table or side % 2 == 0:
            return None
        window_size = (side + 1) // 2
    args: dict[str, object] = {
        "num_in_ch": in_ch,
        "num_out_ch": out_ch,
        "num_feat": num_feat,
        "block_num": block_num,
        "pe": bool(table),
        "window_size": window_size,
        "res_num": res_num,
        "bias": shapes.has("input.bias"),
        "signed": True,
    }
    return Detected("omnisr", scale, args, "official")


register_detector("omnisr", detect_omnisr, layouts=_LAYOUTS)
