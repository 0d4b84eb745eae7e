"""FDAT (FastDAT): a lighter DAT-style attention network for real-world super-resolution.

Provenance: a community architecture, with no paper. Author: Vaibhav Bhat ("sharekhan" /
stinkybread on GitHub), repository https://github.com/stinkybread/FDAT (``fdat.py``, MIT licence,
first published June 2025, last code change 2025-06-20, commit ``bcb42ee6``). Its README
describes it as "DAT inspired lightweight attention network for real world image super
resolution", built from DAT (Chen et al., "Dual Aggregation Transformer for Image
Super-Resolution", ICCV 2023, arXiv:2308.03364) with ideas from PLKSR and SPAN, written with the
help of LLMs. traiNNer-redux ships it for training (``traiNNer/archs/fdat_arch.py``, the same
keys and variants) and spandrel 0.4.2 for inference (``spandrel/architectures/FDAT``).

Parameter names follow the authors' ``fdat.py`` (identical to spandrel's), so community files
(flat state dicts, safetensors or ``.pth``) load unchanged, including the ``upsampler
.MetaUpsample`` record (block version, upsampler kind, scale, widths) the upsampler stores as a
``uint8`` buffer; :func:`convert_fdat` rewrites that record from the module's configuration, as
spandrel does.

The network: a 3x3 convolution to ``embed_dim`` features, ``num_groups`` residual groups of
blocks that alternate (``group_block_pattern``) between window self-attention (8x8 windows with a
learned per-head ``(N, N)`` bias, zero-padded to the window) and channel self-attention
(L2-normalised queries and keys, a learned temperature per head), a 3x3 convolution, the shallow
features added back, and one of several upsamplers. In each block a depth-wise convolution
branch runs beside the attention and the two are fused by a simplified adaptive interaction
module (a channel gate after spatial attention, a spatial gate after channel attention); the
feed-forward network mixes space with a depth-wise 3x3 convolution between its linears.

Upstream builds both gates in every block and uses one: the unused gate is kept (so files keep
their keys both ways, and srzoo's files load in other tools) and frozen, since no gradient ever
reaches it.

Variants (the authors' ``fdat_*`` builders): tiny (96 features, 2 groups x 2 x 2 blocks, 3
heads, FFN 1.5x), light (108, 3 x 2 x 2, 4 heads), medium = ``fdat`` (120, 4 x 3 x 2, 4 heads),
large (180, 4 x 4 x 2, 6 heads), xl (180, 6 x 6 x 2, 6 heads); the authors' tiny and light use the
``pixelshuffle`` upsampler, the others ``transpose+conv`` (traiNNer-redux defaults all five to
``transpose+conv``; a file's own upsampler is detected).

Upsamplers (``upsampler_type``, the upstream names): ``conv`` (scale 1), ``pixelshuffledirect``,
``pixelshuffle``, ``nearest+conv``, ``dysample``, ``transpose+conv`` and ``pa_up``; spandrel's
``lda`` (a deformable attention upsampler no released model is known to use) is not supported.
``unshuffle_mod`` (spandrel's and traiNNer-redux's option for scales 1 and 2) pixel-unshuffles
the input first and upsamples by 4.

Weights: none registered. The author publishes code only; trained FDAT models are community
files (various trainers, licences and upsamplers, shared through OpenModelDB), which load with
``srzoo.load_file(path)`` (the detector reads the configuration) or
``srzoo.load("fdat-...", scale=s, weights=path, **overrides)``. There is no paper and no
reported benchmark number.

Unlike upstream, the window attention runs in ``F.scaled_dot_product_attention`` with the bias
as its additive mask, tokens stay ``(B, H, W, C)`` (channels-last images) throughout the body,
and the channel attention divides its small ``head_dim x head_dim`` product by the norms instead
of normalising the whole image's queries and keys. FDAT declares no receptive-field radius
(``receptive_field = None``): channel attention and the channel gate's pooling see the whole
image.

Example:
    >>> model = srzoo.load_file("4x_community_fdat.safetensors")
    >>> model = srzoo.create("fdat-tiny", 4)  # random weights, the authors' configuration
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    StateDict,
    register_detector,
    register_model,
)
from ._blocks import DySample, image_forward
from ._transformer import DropPath, merge_heads, to_image, to_tokens
from ._window import pad_to_multiple, window_partition, window_reverse

__all__ = [
    "FDAT",
    "UPSAMPLERS",
    "ChannelAttention",
    "FDATBlock",
    "FDATGroup",
    "SpatialWindowAttention",
    "UniUpsample",
    "UpsamplerKind",
    "convert_fdat",
    "detect_fdat",
]

UpsamplerKind = Literal[
    "conv",
    "pixelshuffledirect",
    "pixelshuffle",
    "nearest+conv",
    "dysample",
    "transpose+conv",
    "lda",
    "pa_up",
]
# Upstream's order: the index of a kind in this tuple is what ``MetaUpsample`` records.
UPSAMPLERS: tuple[str, ...] = get_args(UpsamplerKind)
BlockKind = Literal["spatial", "channel"]

# The block version ``MetaUpsample`` records (upstream's ``UniUpsampleV3``).
_META_VERSION = 3
# DySample's channel groups (upstream's fixed argument).
_DYSAMPLE_GROUPS = 4


# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------


class SpatialWindowAttention(nn.Module):
    """Self-attention in non-overlapping square windows with a learned ``(heads, N, N)`` bias.

    Keys ``qkv`` (no bias), ``proj`` and ``bias``. The tokens are zero-padded at the bottom and
    right to whole windows; padded tokens take part in the softmax with zero queries, keys and
    values, as upstream's.

    Args:
        dim: Token features.
        num_heads: Attention heads.
        window: Window side.
    """

    def __init__(self, *, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.bias = nn.Parameter(torch.zeros(num_heads, window * window, window * window))
        nn.init.trunc_normal_(self.bias, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens in, the same shape out."""
        _, h, w, c = x.shape
        ws, n = self.window, self.window * self.window
        # The projection has no bias, so projecting before padding gives the zero q, k and v
        # upstream's padded tokens have, on fewer tokens.
        qkv = F.pad(self.qkv(x), (0, 0, 0, -w % ws, 0, -h % ws))
        hp, wp = qkv.shape[1], qkv.shape[2]
        windows = window_partition(qkv, ws)  # (B * windows, N, 3C)
        q, k, v = windows.view(-1, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=self.bias.to(q.dtype)[None], scale=self.scale
        )
        out = window_reverse(merge_heads(out), ws, hp, wp)
        # Projecting after the crop: the padded tokens are dropped anyway.
        projected: torch.Tensor = self.proj(out[:, :h, :w])
        return projected


class ChannelAttention(nn.Module):
    """Self-attention across channels over the whole image (keys ``temp``, ``qkv``, ``proj``).

    Queries and keys are L2-normalised over the pixels; each head scales its logits by a learned
    temperature.

    Args:
        dim: Token features.
        num_heads: Attention heads.
    """

    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temp = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens in, the same shape out."""
        b, h, w, c = x.shape
        # 3 x (B, heads, head_dim, H*W): channels attend to channels.
        q, k, v = self.qkv(x).view(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 4, 1)
        # Dividing the (head_dim x head_dim) product by the norms is upstream's cosine
        # similarity without normalising q and k over the whole image. Plain matmuls: the
        # per-head temperature is not a scalar scale SDPA could take.
        eps = 1e-12  # F.normalize's
        q_norm = torch.linalg.vector_norm(q, dim=-1).clamp_min(eps)
        k_norm = torch.linalg.vector_norm(k, dim=-1).clamp_min(eps)
        logits = (q @ k.transpose(-2, -1)) / (q_norm[..., :, None] * k_norm[..., None, :])
        attn = (logits * self.temp).softmax(dim=-1)
        out = (attn @ v).permute(0, 3, 1, 2).reshape(b, h, w, c)
        projected: torch.Tensor = self.proj(out)
        return projected


class _Interaction(nn.Module):
    """Upstream's simplified AIM: a spatial gate ``sg`` and a channel gate ``cg``.

    After spatial attention the convolution branch's pooled channels gate the attention
    (``attn * cg(conv) + conv``); after channel attention the attention's 1x1 spatial map gates
    the convolution branch (``attn + conv * sg(attn)``).
    """

    def __init__(self, dim: int, reduction: int, kind: BlockKind) -> None:
        super().__init__()
        self.kind = kind
        self.sg = nn.Sequential(nn.Conv2d(dim, 1, 1, bias=False), nn.Sigmoid())
        self.cg = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim // reduction, 1, bias=False),
            nn.GELU(),
            nn.Conv2d(dim // reduction, dim, 1, bias=False),
            nn.Sigmoid(),
        )
        # The other kind's gate holds weights in every upstream file but never runs.
        unused = self.sg if kind == "spatial" else self.cg
        for p in unused.parameters():
            p.requires_grad_(False)

    def forward(self, attn: torch.Tensor, conv: torch.Tensor) -> torch.Tensor:
        """Fuse ``(B, H, W, C)`` attention and convolution features."""
        if self.kind == "spatial":
            return attn * to_tokens(self.cg(to_image(conv))) + conv
        return attn + conv * to_tokens(self.sg(to_image(attn)))


class _FeedForward(nn.Module):
    """Linear, GELU, depth-wise 3x3 convolution, linear; no biases (keys ``fc1``, ``smix``,
    ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.act = nn.GELU()
        self.smix = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.fc1(x))
        out: torch.Tensor = self.fc2(to_tokens(self.smix(to_image(hidden))))
        return out


class FDATBlock(nn.Module):
    """One block: pre-norm attention beside a depth-wise convolution, fused, then the FFN.

    Args:
        dim: Token features.
        num_heads: Attention heads.
        window: Window side of the spatial attention.
        kind: ``"spatial"`` (window attention) or ``"channel"`` (channel attention).
        ffn_expansion_ratio: Hidden width of the FFN over ``dim`` (rounded down).
        aim_reduction_ratio: Channel reduction of the channel gate.
        drop_path: Stochastic-depth rate of both residual branches.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window: int,
        kind: BlockKind,
        ffn_expansion_ratio: float,
        aim_reduction_ratio: int,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.n2 = nn.LayerNorm(dim)
        self.attn: nn.Module = (
            SpatialWindowAttention(dim=dim, num_heads=num_heads, window=window)
            if kind == "spatial"
            else ChannelAttention(dim=dim, num_heads=num_heads)
        )
        self.conv = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False), nn.GELU()
        )
        self.inter = _Interaction(dim, aim_reduction_ratio, kind)
        self.dp = DropPath(drop_path)
        self.ffn = _FeedForward(dim, int(dim * ffn_expansion_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens in, the same shape out."""
        normed = self.n1(x)
        conv = to_tokens(self.conv(to_image(normed)))
        x = x + self.dp(self.inter(self.attn(normed), conv))
        out: torch.Tensor = x + self.dp(self.ffn(self.n2(x)))
        return out


class FDATGroup(nn.Module):
    """Blocks, then a 3x3 convolution (no bias), with a skip (keys ``blocks``, ``conv``).

    Args:
        dim: Token features.
        kinds: The kind of each block.
        drop_paths: The stochastic-depth rate of each block.
        num_heads: Attention heads.
        window: Window side.
        ffn_expansion_ratio: Hidden width of the FFN over ``dim``.
        aim_reduction_ratio: Channel reduction of the channel gate.
    """

    def __init__(
        self,
        *,
        dim: int,
        kinds: Sequence[BlockKind],
        drop_paths: Sequence[float],
        num_heads: int,
        window: int,
        ffn_expansion_ratio: float,
        aim_reduction_ratio: int,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            FDATBlock(
                dim=dim,
                num_heads=num_heads,
                window=window,
                kind=kind,
                ffn_expansion_ratio=ffn_expansion_ratio,
                aim_reduction_ratio=aim_reduction_ratio,
                drop_path=rate,
            )
            for kind, rate in zip(kinds, drop_paths, strict=True)
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` features (channels-last in memory) in, the same shape out."""
        tokens = to_tokens(x)
        for block in self.blocks:
            tokens = block(tokens)
        out: torch.Tensor = self.conv(to_image(tokens)) + x
        return out


# --------------------------------------------------------------------------------------------
# Upsamplers
# --------------------------------------------------------------------------------------------


class _PixelAttention(nn.Module):
    """``x * sigmoid(conv1x1(x))`` (upstream's ``PA``, key ``conv.0``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(dim, dim, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv(x)


def _doublings(scale: int, kind: str) -> int:
    """How many x2 stages a power-of-two scale takes (0 for 3); refuses other scales."""
    if scale == 3:
        return 0
    if scale >= 2 and scale & (scale - 1) == 0:
        return scale.bit_length() - 1
    raise ArgumentError(
        f"FDAT: the {kind!r} upsampler supports scales 2**n and 3, got {scale}; "
        "choose another scale or upsampler_type"
    )


def _lrelu(slope: float = 0.01) -> nn.Module:
    return nn.LeakyReLU(slope)


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


def _upsampler_layers(
    kind: str, scale: int, in_dim: int, out_dim: int, mid_dim: int
) -> tuple[list[nn.Module], int]:
    """Upstream's layers for one upsampler, in its order (their indices are the keys), and the
    ``in_dim`` it records (``pa_up`` overwrites it with ``mid_dim`` after its first stage)."""
    if scale == 1:
        return [_conv(in_dim, out_dim)], in_dim
    if kind == "conv":
        raise ArgumentError(
            f"FDAT: the 'conv' upsampler does not enlarge, so it serves scale 1 only, got {scale}"
        )
    if kind == "pixelshuffledirect":
        return [_conv(in_dim, out_dim * scale * scale), nn.PixelShuffle(scale)], in_dim
    if kind == "pixelshuffle":
        stages = _doublings(scale, kind)
        layers: list[nn.Module] = [_conv(in_dim, mid_dim), _lrelu()]
        for factor in [2] * stages if stages else [3]:
            layers += [_conv(mid_dim, factor * factor * mid_dim), nn.PixelShuffle(factor)]
        return [*layers, _conv(mid_dim, out_dim)], in_dim
    if kind == "nearest+conv":
        stages = _doublings(scale, kind)
        layers = []
        if stages:
            for _ in range(stages):
                layers += [_conv(in_dim, in_dim), nn.Upsample(scale_factor=2), _lrelu(0.2)]
            layers += [_conv(in_dim, in_dim), _lrelu(0.2)]
        else:
            layers += [_conv(in_dim, in_dim), nn.Upsample(scale_factor=3), _lrelu(0.2)]
            layers += [_conv(in_dim, in_dim), _lrelu(0.2)]
        return [*layers, _conv(in_dim, out_dim)], in_dim
    if kind == "dysample":
        layers = [_conv(in_dim, mid_dim), _lrelu()] if mid_dim != in_dim else []
        if mid_dim <= _DYSAMPLE_GROUPS or mid_dim % _DYSAMPLE_GROUPS:
            raise ArgumentError(
                f"FDAT: the dysample upsampler needs a multiple of {_DYSAMPLE_GROUPS} channels "
                f"above {_DYSAMPLE_GROUPS}, got mid_dim={mid_dim}; choose another mid_dim"
            )
        upsampler = DySample(mid_dim, out_dim, scale, groups=_DYSAMPLE_GROUPS, name="FDAT")
        return [*layers, upsampler], in_dim
    if kind == "transpose+conv":
        if scale == 2:
            layers = [nn.ConvTranspose2d(in_dim, out_dim, 4, 2, 1)]
        elif scale == 3:
            layers = [nn.ConvTranspose2d(in_dim, out_dim, 3, 3, 0)]
        elif scale == 4:
            layers = [
                nn.ConvTranspose2d(in_dim, in_dim, 4, 2, 1),
                nn.GELU(),
                nn.ConvTranspose2d(in_dim, out_dim, 4, 2, 1),
            ]
        else:
            raise ArgumentError(
                f"FDAT: the 'transpose+conv' upsampler supports scales 2, 3 and 4, got {scale}; "
                "choose another scale or upsampler_type"
            )
        return [*layers, _conv(out_dim, out_dim)], in_dim
    if kind == "pa_up":
        stages = _doublings(scale, kind)
        layers = []
        recorded = in_dim
        for factor in [2] * stages if stages else [3]:
            layers += [
                nn.Upsample(scale_factor=factor),
                _conv(in_dim, mid_dim),
                _PixelAttention(mid_dim),
                _lrelu(0.2),
                _conv(mid_dim, mid_dim),
                _lrelu(0.2),
            ]
            if stages:  # upstream's power-of-two loop rebinds in_dim, which MetaUpsample records
                in_dim = recorded = mid_dim
        return [*layers, _conv(mid_dim, out_dim)], recorded
    if kind == "lda":
        raise ArgumentError(
            "FDAT: the 'lda' upsampler is not supported; choose one of "
            + ", ".join(k for k in UPSAMPLERS if k != "lda")
        )
    raise ArgumentError(
        f"FDAT: upsampler_type must be one of {', '.join(UPSAMPLERS)}, got {kind!r}"
    )


def _meta_record(kind: str, scale: int, in_dim: int, out_dim: int, mid_dim: int) -> list[int]:
    return [
        _META_VERSION,
        UPSAMPLERS.index(kind),
        scale,
        in_dim,
        out_dim,
        mid_dim,
        _DYSAMPLE_GROUPS,
    ]


class UniUpsample(nn.Sequential):
    """Upstream's ``UniUpsampleV3``: the upsampler ``kind``'s layers, and a ``MetaUpsample``
    record of its configuration (``uint8``: block version, kind index, scale, in, out and middle
    widths, DySample groups) that tools read to rebuild it.

    Args:
        kind: One of :data:`UPSAMPLERS` but ``"lda"``.
        scale: Upscaling factor (1: one convolution, whatever the kind).
        in_dim: Features in.
        out_dim: Image channels out.
        mid_dim: Middle features (``pixelshuffle``, ``dysample``, ``pa_up``).
    """

    def __init__(self, *, kind: str, scale: int, in_dim: int, out_dim: int, mid_dim: int) -> None:
        layers, recorded = _upsampler_layers(kind, scale, in_dim, out_dim, mid_dim)
        super().__init__(*layers)
        record = _meta_record(kind, scale, recorded, out_dim, mid_dim)
        if max(record) > 255:
            raise ArgumentError(
                f"FDAT: widths and scale are recorded as uint8 (at most 255), got {record[2:6]}; "
                "choose smaller embed_dim or mid_dim"
            )
        self.record = record
        self.register_buffer("MetaUpsample", torch.tensor(record, dtype=torch.uint8))


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class FDAT(nn.Module):
    """FDAT: alternating window and channel attention with convolution branches.

    Args:
        scale: Upscaling factor (1 to 4; scale 1 ends in one convolution).
        num_in_ch: Input image channels.
        num_out_ch: Output image channels.
        embed_dim: Features of the body.
        num_groups: Residual groups.
        depth_per_group: Repetitions of ``group_block_pattern`` in each group.
        num_heads: Heads of both attentions (divides ``embed_dim``).
        window_size: Window side of the spatial attention.
        ffn_expansion_ratio: Hidden width of the FFN over ``embed_dim`` (rounded down).
        aim_reduction_ratio: Channel reduction of the channel gate.
        group_block_pattern: The block kinds one repetition holds, in order.
        drop_path_rate: Stochastic depth, rising linearly from 0 to this over all blocks.
        mid_dim: Middle features of the ``pixelshuffle``, ``dysample`` and ``pa_up``
            upsamplers.
        upsampler_type: One of :data:`UPSAMPLERS` but ``"lda"``.
        unshuffle_mod: For scales 1 and 2, pixel-unshuffle the input by ``4 // scale`` first
            and upsample by 4 (``num_out_ch`` channels in).

    Example:
        >>> model = FDAT(scale=4, embed_dim=96, num_groups=2, depth_per_group=2, num_heads=3)
        >>> model(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 64, 64])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        embed_dim: int = 120,
        num_groups: int = 4,
        depth_per_group: int = 3,
        num_heads: int = 4,
        window_size: int = 8,
        ffn_expansion_ratio: float = 2.0,
        aim_reduction_ratio: int = 8,
        group_block_pattern: Sequence[BlockKind] = ("spatial", "channel"),
        drop_path_rate: float = 0.1,
        mid_dim: int = 64,
        upsampler_type: UpsamplerKind = "transpose+conv",
        unshuffle_mod: bool = False,
    ) -> None:
        super().__init__()
        _check(
            scale=scale,
            channels=(num_in_ch, num_out_ch, embed_dim, num_groups, depth_per_group, window_size),
            embed_dim=embed_dim,
            num_heads=num_heads,
            ffn_expansion_ratio=ffn_expansion_ratio,
            aim_reduction_ratio=aim_reduction_ratio,
            pattern=group_block_pattern,
            drop_path_rate=drop_path_rate,
        )
        self.scale = scale
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.unshuffle = 4 // scale if unshuffle_mod and scale < 3 else 0
        if self.unshuffle:
            if num_in_ch != num_out_ch:
                raise ArgumentError(
                    f"FDAT: unshuffle_mod needs num_in_ch == num_out_ch, got {num_in_ch} and "
                    f"{num_out_ch}"
                )
            self.conv_first: nn.Module = nn.Sequential(
                nn.PixelUnshuffle(self.unshuffle),
                nn.Conv2d(num_in_ch * self.unshuffle**2, embed_dim, 3, padding=1),
            )
        else:
            self.conv_first = nn.Conv2d(num_in_ch, embed_dim, 3, padding=1)
        kinds = [
            group_block_pattern[i % len(group_block_pattern)]
            for i in range(depth_per_group * len(group_block_pattern))
        ]
        per_group = len(kinds)
        total = num_groups * per_group
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.groups = nn.Sequential(
            *(
                FDATGroup(
                    dim=embed_dim,
                    kinds=kinds,
                    drop_paths=rates[g * per_group : (g + 1) * per_group],
                    num_heads=num_heads,
                    window=window_size,
                    ffn_expansion_ratio=ffn_expansion_ratio,
                    aim_reduction_ratio=aim_reduction_ratio,
                )
                for g in range(num_groups)
            )
        )
        self.conv_after = nn.Conv2d(embed_dim, embed_dim, 3, padding=1, bias=False)
        self.upsampler = UniUpsample(
            kind=upsampler_type,
            scale=4 if self.unshuffle else scale,
            in_dim=embed_dim,
            out_dim=num_out_ch,
            mid_dim=mid_dim,
        )
        self.apply(_init_weights)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.unshuffle:
            x = pad_to_multiple(x, self.unshuffle)
        # Channels-last features: the body's (B, H, W, C) tokens are then free views.
        shallow = self.conv_first(x).contiguous(memory_format=torch.channels_last)
        deep = self.conv_after(self.groups(shallow))
        out: torch.Tensor = self.upsampler(deep + shallow)
        if self.unshuffle:
            out = out[..., : h * self.scale, : w * self.scale]
        return out.contiguous()


def _check(
    *,
    scale: int,
    channels: Sequence[int],
    embed_dim: int,
    num_heads: int,
    ffn_expansion_ratio: float,
    aim_reduction_ratio: int,
    pattern: Sequence[str],
    drop_path_rate: float,
) -> None:
    if scale not in (1, 2, 3, 4):
        raise ArgumentError(f"FDAT: scale must be 1, 2, 3 or 4, got {scale}")
    if min(channels) < 1:
        raise ArgumentError(
            "FDAT: channels, embed_dim, num_groups, depth_per_group and window_size must be "
            f"positive, got {tuple(channels)}"
        )
    if num_heads < 1 or embed_dim % num_heads:
        raise ArgumentError(
            f"FDAT: num_heads must divide embed_dim, got {num_heads} heads for {embed_dim}"
        )
    if int(embed_dim * ffn_expansion_ratio) < 1:
        raise ArgumentError(
            f"FDAT: ffn_expansion_ratio must leave a hidden feature, got {ffn_expansion_ratio}"
        )
    if not 1 <= aim_reduction_ratio <= embed_dim:
        raise ArgumentError(
            f"FDAT: aim_reduction_ratio must be in [1, embed_dim], got {aim_reduction_ratio}"
        )
    if not pattern or any(kind not in ("spatial", "channel") for kind in pattern):
        raise ArgumentError(
            "FDAT: group_block_pattern must be a non-empty sequence of 'spatial' and 'channel', "
            f"got {pattern!r}"
        )
    if not 0.0 <= drop_path_rate < 1.0:
        raise ArgumentError(f"FDAT: drop_path_rate must be in [0, 1), got {drop_path_rate}")


@torch.no_grad()
def _init_weights(module: nn.Module) -> None:
    # Upstream's: truncated normal (std 0.02) weights and zero biases for linears and
    # convolutions; transposed convolutions keep torch's default.
    if isinstance(module, nn.Linear | nn.Conv2d):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# --------------------------------------------------------------------------------------------
# Converter
# --------------------------------------------------------------------------------------------

_META_KEY = "upsampler.MetaUpsample"


def convert_fdat(state: StateDict, module: nn.Module) -> StateDict:
    """Rewrite a checkpoint's ``upsampler.MetaUpsample`` record from the module's configuration.

    The record describes the upsampler; the module computes it, so a file's copy (or its
    absence, in a file written without it) does not matter, as in spandrel's loader.

    Args:
        state: The checkpoint's tensors, upstream keys.
        module: The :class:`FDAT` being loaded.

    Returns:
        The tensors, with the module's record.
    """
    upsampler = getattr(module, "upsampler", None)
    if not isinstance(upsampler, UniUpsample):
        return state
    return {**state, _META_KEY: torch.tensor(upsampler.record, dtype=torch.uint8)}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title="FDAT (FastDAT): DAT inspired lightweight attention network for real world image "
    "super resolution (no paper)",
    venue="stinkybread/FDAT on GitHub",
    year=2025,
)

# The authors' builders (fdat.py, fdat_tiny ... fdat_xl).
_VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "fdat-tiny": (
        "FDAT tiny: 96 features, 2 groups x 2 (window + channel) pairs, 3 heads, FFN 1.5x",
        {
            "embed_dim": 96,
            "num_groups": 2,
            "depth_per_group": 2,
            "num_heads": 3,
            "ffn_expansion_ratio": 1.5,
            "drop_path_rate": 0.05,
            "upsampler_type": "pixelshuffle",
        },
    ),
    "fdat-light": (
        "FDAT light: 108 features, 3 groups x 2 (window + channel) pairs, 4 heads",
        {
            "embed_dim": 108,
            "num_groups": 3,
            "depth_per_group": 2,
            "num_heads": 4,
            "drop_path_rate": 0.08,
            "upsampler_type": "pixelshuffle",
        },
    ),
    "fdat": (
        "FDAT (medium): 120 features, 4 groups x 3 (window + channel) pairs, 4 heads",
        {"embed_dim": 120, "num_groups": 4, "depth_per_group": 3, "num_heads": 4},
    ),
    "fdat-large": (
        "FDAT large: 180 features, 4 groups x 4 (window + channel) pairs, 6 heads",
        {"embed_dim": 180, "num_groups": 4, "depth_per_group": 4, "num_heads": 6},
    ),
    "fdat-xl": (
        "FDAT XL: 180 features, 6 groups x 6 (window + channel) pairs, 6 heads",
        {"embed_dim": 180, "num_groups": 6, "depth_per_group": 6, "num_heads": 6},
    ),
}

for _name, (_description, _defaults) in _VARIANTS.items():
    register_model(
        ModelSpec(
            name=_name,
            family="fdat",
            builder=FDAT,
            scales=(1, 2, 3, 4),
            default_scale=4,
            paper=_PAPER,
            code_license="MIT",
            description=_description,
            task="real-world",
            colour="rgb",
            defaults={
                "window_size": 8,
                "ffn_expansion_ratio": 2.0,
                "aim_reduction_ratio": 8,
                "drop_path_rate": 0.1,
                "mid_dim": 64,
                "upsampler_type": "transpose+conv",
                **_defaults,
            },
            converter=convert_fdat,
            # The window attention pads its tokens to whole windows.
            size_multiple=8,
        )
    )


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "groups.0.blocks.0."
_LAYOUTS = {
    "official": (
        _BLOCK0 + "n1.weight",
        _BLOCK0 + "conv.0.weight",
        _BLOCK0 + "inter.sg.0.weight",
        _BLOCK0 + "inter.cg.1.weight",
        _BLOCK0 + "ffn.fc1.weight",
        _BLOCK0 + "ffn.smix.weight",
        "groups.0.conv.weight",
        "conv_after.weight",
        _META_KEY,
    ),
}


def _detect_upsampler(
    shapes: Shapes, embed_dim: int, in_ch: int
) -> tuple[str, int, int, int, tuple[int, ...]] | None:
    """``(kind, scale, out_ch, mid_dim, other scales)`` read from the upsampler's tensors.

    ``in_ch`` is the input's channels, or 0 where ``unshuffle_mod`` hides them (the output
    then has as many and the upsampler enlarges by 4).
    """
    convs = shapes.indices(r"upsampler\.(\d+)\.weight")
    dysample = shapes.indices(r"upsampler\.(\d+)\.offset\.weight")
    pa = shapes.indices(r"upsampler\.(\d+)\.conv\.0\.weight")
    if dysample:
        d = f"upsampler.{dysample[-1]}."
        channels = shapes.dim(d + "offset.weight")
        scale = math.isqrt(channels // (2 * _DYSAMPLE_GROUPS))
        if 2 * _DYSAMPLE_GROUPS * scale * scale != channels or scale < 2:
            return None
        if shapes.dim(d + "end_conv.weight", 2) != 1:
            return None  # upstream's end convolution is 1x1
        mid = shapes.dim(d + "offset.weight", 1)
        return "dysample", scale, shapes.dim(d + "end_conv.weight"), mid, ()
    if not convs:
        return None
    out_ch = shapes.dim(f"upsampler.{convs[-1]}.weight")
    if pa:
        # Six layers per stage (upsample, conv, PA, act, conv, act); x3 is laid out as x2.
        if pa != [2 + 6 * i for i in range(len(pa))]:
            return None
        mid = shapes.dim(f"upsampler.{pa[0]}.conv.0.weight")
        return "pa_up", 2 ** len(pa), out_ch, mid, (2, 3) if len(pa) == 1 else ()
    first = "upsampler.0.weight"
    if convs[0] != 0:
        return None
    if convs == [0]:
        # One convolution: to out_ch (scale 1) or to out_ch * scale**2, pixel-shuffled.
        n = shapes.dim(first)
        channels = in_ch or n // 16
        scale = math.isqrt(n // channels) if channels else 0
        if scale * scale * channels != n or scale > 4 or (not in_ch and scale != 4):
            return None
        return ("conv" if scale == 1 else "pixelshuffledirect"), scale, channels, 64, ()
    kernel = shapes.dim(first, 2)
    # ConvTranspose2d weights are (in, out, k, k).
    if convs == [0, 1] and kernel in (3, 4):
        return "transpose+conv", 2 if kernel == 4 else 3, shapes.dim(first, 1), 64, ()
    if convs == [0, 2, 3] and kernel == 4:
        return "transpose+conv", 4, shapes.dim("upsampler.2.weight", 1), 64, ()
    stages = len(convs) - 2
    if convs == [3 * i for i in range(stages + 1)] + [3 * stages + 2]:
        # nearest+conv: (conv, upsample, act) per stage, then conv, act, conv.
        return "nearest+conv", 2**stages, out_ch, 64, (2, 3) if stages == 1 else ()
    if convs == [2 * i for i in range(stages + 2)]:
        # pixelshuffle: conv to mid, act, (conv, shuffle) per stage, conv out.
        mid = shapes.dim(first)
        factors = [math.isqrt(shapes.dim(f"upsampler.{i}.weight") // mid) for i in convs[1:-1]]
        if factors == [3]:
            return "pixelshuffle", 3, out_ch, mid, ()
        if all(f == 2 for f in factors):
            return "pixelshuffle", 2**stages, out_ch, mid, ()
    return None


def _pattern(shapes: Shapes, count: int) -> tuple[BlockKind, ...] | None:
    kinds: list[BlockKind] = []
    for j in range(count):
        if shapes.has(f"groups.0.blocks.{j}.attn.bias"):
            kinds.append("spatial")
        elif shapes.has(f"groups.0.blocks.{j}.attn.temp"):
            kinds.append("channel")
        else:
            return None
    # The shortest repeating unit.
    for period in range(1, count + 1):
        if count % period == 0 and kinds == kinds[:period] * (count // period):
            return tuple(kinds[:period])
    return None


def detect_fdat(shapes: Shapes) -> Detected | None:
    """Recognise an FDAT checkpoint (the authors' / spandrel's keys) from keys and shapes.

    Reads ``embed_dim`` (``conv_after``), the image channels (``conv_first``; with
    ``unshuffle_mod`` its ``PixelUnshuffle`` folds ``4 // scale`` squared copies of them in,
    and the input channels are taken equal to the output's), ``num_groups``, the block pattern
    and ``depth_per_group`` (which blocks hold window and which channel attention), the heads and
    ``window_size`` (the window bias's ``(heads, N, N)`` shape), ``ffn_expansion_ratio``,
    ``aim_reduction_ratio``, the upsampler and the scale from the upsampler's tensors.

    The ``MetaUpsample`` record's values are not read (a detector sees shapes only), so where
    two configurations have the same tensors the detector picks one: the ``nearest+conv`` and
    ``pa_up`` upsamplers are laid out alike at x2 and x3 (x2 is read, ``scales`` lists both),
    and ``mid_dim`` of the upsamplers that have none is 64 (the default). ``drop_path_rate``
    (training only) is the default. Files with spandrel's ``lda`` upsampler are not detected.

    Names: ``fdat-tiny`` (96 features), ``fdat-light`` (108), ``fdat-large`` (180, 4 groups),
    ``fdat-xl`` (180, 6 groups), ``fdat`` otherwise (the same builder).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an FDAT.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    embed_dim = shapes.dim("conv_after.weight")
    unshuffle = shapes.has("conv_first.1.weight")
    first = "conv_first.1.weight" if unshuffle else "conv_first.weight"
    if shapes.dim(first) != embed_dim:
        return None
    n_groups = len(shapes.indices(r"groups\.(\d+)\.conv\.weight"))
    n_blocks = len(shapes.indices(r"groups\.0\.blocks\.(\d+)\.n1\.weight"))
    pattern = _pattern(shapes, n_blocks)
    if pattern is None:
        return None
    # Heads and window from the first window-attention block (a pattern may start with a
    # channel block, or hold none: then the window is the default and does not matter).
    spatial = (
        f"groups.0.blocks.{pattern.index('spatial')}.attn.bias" if "spatial" in pattern else ""
    )
    heads = shapes.dim(spatial) if spatial else shapes.dim(_BLOCK0 + "attn.temp")
    area = shapes.dim(spatial, 1) if spatial else 64
    window = math.isqrt(area)
    reduced = shapes.dim(_BLOCK0 + "inter.cg.1.weight")
    upsampler = _detect_upsampler(shapes, embed_dim, 0 if unshuffle else shapes.dim(first, 1))
    if upsampler is None or n_groups < 1 or window * window != area:
        return None
    kind, up_scale, out_ch, mid_dim, scales = upsampler
    if unshuffle:
        factor = math.isqrt(shapes.dim(first, 1) // out_ch) if out_ch else 0
        if (
            up_scale != 4
            or factor not in (2, 4)
            or factor * factor * out_ch != shapes.dim(first, 1)
        ):
            return None
        in_ch, scale = out_ch, 4 // factor
    else:
        in_ch, scale = shapes.dim(first, 1), up_scale
    if reduced < 1 or heads < 1 or embed_dim % heads:
        return None
    hidden = shapes.dim(_BLOCK0 + "ffn.fc1.weight")
    ratio = hidden / embed_dim
    expansion = ratio if int(embed_dim * ratio) == hidden else (hidden + 0.5) / embed_dim
    args: dict[str, object] = {
        "num_in_ch": in_ch,
        "num_out_ch": out_ch,
        "embed_dim": embed_dim,
        "num_groups": n_groups,
        "depth_per_group": n_blocks // len(pattern),
        "num_heads": heads,
        "window_size": window,
        "ffn_expansion_ratio": expansion,
        "aim_reduction_ratio": embed_dim // reduced,
        "group_block_pattern": pattern,
        "mid_dim": mid_dim,
        "upsampler_type": kind,
        "unshuffle_mod": unshuffle,
    }
    names = {96: "fdat-tiny", 108: "fdat-light"}
    name = names.get(embed_dim, "fdat")
    if embed_dim == 180:
        name = "fdat-xl" if n_groups == 6 else "fdat-large"
    return Detected(name, scale, args, "official", scales=scales)


register_detector("fdat", detect_fdat, layouts=_LAYOUTS)
