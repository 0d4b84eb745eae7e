"""CRAFT: the cross-refinement adaptive feature modulation transformer.

Paper: Li, Zhang, Liu, Zhu, "Feature Modulation Transformer: Cross-Refinement of Global
Representation via High-Frequency Prior for Image Super-Resolution", ICCV 2023,
arXiv:2308.05022.

Parameter names follow AVC2-UESTC/CRAFT-SR ``basicsr/archs/craft_arch.py`` (identical to
spandrel's CRAFT), so the official ``CRAFT_MODEL_X{2,3,4}.pth`` files load once the BasicSR
``params`` / ``params_ema`` wrapper is removed (which srzoo's reader does). The official files also
hold four tensors the network computes from its configuration (``relative_position_index_h/v``
and ``biases_h/v``, the position tables of the two window shapes); :func:`convert_craft` drops
them after checking that their window matches the module's.

The network is a lightweight SwinIR-style frame (3x3 convolution, residual groups, a channel
layer norm, a one-step pixel-shuffle head) whose groups each run ``depth`` cross-refinement
steps on the same features:

- SRWAB (two per step, the second shifted by half a window): rectangle-window self-attention
  in two halves of the channels (``split_size_0 x split_size_1`` windows and their transpose)
  with a dynamic relative position bias, plus a depth-wise convolution of the values;
- HFERB: a high-frequency branch (3x3 max pooling, 1x1 convolution) and a local branch (3x3
  convolution) on the two halves of the channels;
- HFB: Restormer's transposed (channel) attention with queries from the HFERB output and keys and
  values from the SRWAB output, then a gated depth-wise feed-forward network.

Like the authors' inference script (``inference/inference_CRAFT.py``, the protocol behind the
paper's numbers), the input is padded by mirroring (``cat(x, flip(x))``) at the bottom and right
to the next multiple of ``window_size`` *above* its size, so a side that is already a multiple
gains one more window; the output is cropped. The channel attention of HFB sees the whole image,
so the padding is part of the result. Upstream's mirror stops at twice the image; here it
continues periodically, so every ``H, W >= 1`` works and every size upstream runs gives its result.

Differences from the upstream code, none of them in the result: windows are cut and shifted by
one index gather per half (upstream: roll, view, permute and copy); the window attention runs in
``F.scaled_dot_product_attention``. In the paper's configuration (48 features) the position-bias
MLP is one unit wide, and a layer norm over one unit returns its bias whatever the offset: the
"dynamic" bias is one constant per head, which the softmax ignores. There it is not computed and
its parameters are frozen (their values stay in the state dict).

Weights: none registered. The authors publish the x2, x3 and x4 checkpoints only as one Google
Drive archive (``https://drive.google.com/file/d/13wAmc93BPeBUBQ24zUZOuUpdBFG2aAY5``, linked
from the README), with no direct download or published sha256. They load with
``srzoo.load("craft", scale=s, weights=path)`` or ``srzoo.load_file(path)``.

Reported PSNR / SSIM on the Y channel (the authors' README, "Results"):

=====  =======  ==============  ==============  ==============  ==============  ==============
scale  params   Set5            Set14           BSD100          Urban100        Manga109
=====  =======  ==============  ==============  ==============  ==============  ==============
x2     737K     38.23 / 0.9615  33.92 / 0.9211  32.33 / 0.9016  32.86 / 0.9343  39.39 / 0.9786
x3     744K     34.71 / 0.9295  30.61 / 0.8469  29.24 / 0.8093  28.77 / 0.8635  34.29 / 0.9491
x4     753K     32.52 / 0.8989  28.85 / 0.7872  27.72 / 0.7418  26.56 / 0.7995  31.18 / 0.9168
=====  =======  ==============  ==============  ==============  ==============  ==============

CRAFT declares no receptive-field radius (``receptive_field = None``): HFB's channel attention
attends over the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError, IncompatibleWeightsError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    StateDict,
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import DIV2K_RGB_MEAN, image_forward, pixel_shuffle_head
from ._transformer import (
    DynamicPosBias,
    Mlp,
    image_mean,
    init_transformer_weights,
    merge_heads,
    to_image,
    to_tokens,
)
from ._window import (
    floor_mod,
    padded_window_order,
    relative_coords,
    relative_position_index,
    shape_cached,
)

__all__ = [
    "CRAFT",
    "CRFB",
    "HFB",
    "HFERB",
    "RCRFG",
    "SRWAB",
    "ChannelAttention",
    "ChannelNorm",
    "GatedFeedForward",
    "WindowAttention",
    "convert_craft",
    "detect_craft",
    "mirror_pad",
]

ResiConnection = Literal["1conv", "identity"]

# HFB's feed-forward width and bias, fixed upstream.
_FFN_EXPANSION = 2.66


# --------------------------------------------------------------------------------------------
# Padding
# --------------------------------------------------------------------------------------------


@shape_cached(maxsize=32)
def _mirror_indices(n: int, pad: int, device: torch.device) -> torch.Tensor:
    # cat(x, flip(x)) repeated: period 2n, the edge pixel repeated at each turn.
    i = floor_mod(torch.arange(n + pad, device=device), 2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def mirror_pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Pad ``x`` (``(..., H, W)``) at the bottom and right by mirroring with the edge repeated.

    Equal to the authors' ``torch.cat([x, torch.flip(x, [2])], 2)[:, :, :H + pad_h]`` (and the
    same for the width) wherever that reaches (pads up to the side); beyond it the mirroring
    repeats, so a 1x1 image pads too.

    Args:
        x: The image batch.
        pad_h: Rows added at the bottom.
        pad_w: Columns added at the right.

    Returns:
        ``(..., H + pad_h, W + pad_w)``.

    Example:
        >>> mirror_pad(torch.arange(3.0).view(1, 1, 1, 3), 0, 4)
        tensor([[[[0., 1., 2., 2., 1., 0., 0.]]]])
    """
    h, w = x.shape[-2], x.shape[-1]
    rows = _mirror_indices(h, pad_h, x.device)
    cols = _mirror_indices(w, pad_w, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


# --------------------------------------------------------------------------------------------
# SRWAB: shifted rectangle-window attention
# --------------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Self-attention in rectangular windows over one half of the channels, with position bias.

    Holds only the position-bias MLP (upstream's ``Attention_regular``, key ``pos``); the
    queries, keys and values come from the block's shared projection.

    Args:
        dim: Channels of this half.
        num_heads: Heads of this half.
        window: Window height and width.
        qk_scale: Scale of the logits (default ``head_dim ** -0.5``).
    """

    def __init__(
        self, *, dim: int, num_heads: int, window: tuple[int, int], qk_scale: float | None = None
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window = window
        self.shift = (window[0] // 2, window[1] // 2)
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.pos = DynamicPosBias(dim=dim // 4, num_heads=num_heads)
        # One unit wide, the MLP's layer norms return their bias whatever the offset: the bias
        # is one constant per head, which the softmax ignores (see the module docstring).
        self.constant_bias = self.pos.pos_dim == 1
        if self.constant_bias:
            self.pos.requires_grad_(False)

    def position_bias(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The ``(heads, N, N)`` bias of one window (``N = wh * ww``), from the offsets' MLP."""
        table = self.pos(relative_coords(self.window, device, dtype))  # (offsets, heads)
        return table.t()[:, relative_position_index(self.window, device)]

    def forward(self, qkv: torch.Tensor, size: tuple[int, int], shifted: bool) -> torch.Tensor:
        """Attend within windows.

        Args:
            qkv: ``(B, H*W, 3, C)``: queries, keys and values of this half for the tokens of an
                ``H x W`` image (sides multiples of the window's) in row-major order.
            size: ``(H, W)``.
            shifted: Shift the windows by half a window (cyclically, without a mask, as
                upstream does).

        Returns:
            ``(B, H*W, C)`` in row-major order.
        """
        b, _, _, c = qkv.shape
        shift = self.shift if shifted else (0, 0)
        # One gather rolls and partitions: (B, windows * N, 3, C).
        gather, scatter = padded_window_order(size, 1, self.window, shift, qkv.device)
        tokens = qkv.index_select(1, gather)
        n = self.window[0] * self.window[1]
        head_dim = c // self.num_heads
        q, k, v = tokens.view(b, -1, n, 3, self.num_heads, head_dim).unbind(3)
        q, k, v = (t.flatten(0, 1).transpose(1, 2) for t in (q, k, v))
        mask = None if self.constant_bias else self.position_bias(qkv.device, qkv.dtype)[None]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        out = merge_heads(out).view(b, -1, c)
        return out.index_select(1, scatter)


class SRWAB(nn.Module):
    """Shift rectangle-window attention block: two window attentions and a convolution of the
    values, then an MLP, each pre-normed with a skip.

    Args:
        dim: Channels (even).
        num_heads: Heads, split evenly between the two halves of the channels.
        split_size: Window height and width of the first half (the second is transposed).
        shifted: Shift both halves' windows by half a window.
        mlp_ratio: Hidden width of the MLP relative to ``dim``.
        qkv_bias: Bias in the query/key/value projection.
        qk_scale: Scale of the logits (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        split_size: tuple[int, int],
        shifted: bool,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.shifted = shifted
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        # Locality complementary module: a depth-wise convolution of the values.
        self.get_v = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        windows = (split_size, (split_size[1], split_size[0]))
        self.attns = nn.ModuleList(
            WindowAttention(dim=dim // 2, num_heads=num_heads // 2, window=win, qk_scale=qk_scale)
            for win in windows
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        qkv = self.qkv(self.norm1(x))
        # The convolution sees the values as they are, not shifted.
        lcm = to_tokens(self.get_v(to_image(qkv[..., 2 * c :])))
        halves = qkv.reshape(b, h * w, 3, 2, c // 2)
        attended = torch.cat(
            [attn(halves[:, :, :, i], (h, w), self.shifted) for i, attn in enumerate(self.attns)],
            dim=-1,
        ).view(b, h, w, c)
        x = x + self.proj(attended + lcm)
        return x + self.mlp(self.norm2(x))


# --------------------------------------------------------------------------------------------
# HFERB and HFB
# --------------------------------------------------------------------------------------------


class HFERB(nn.Module):
    """High-frequency enhancement residual block: a local branch and a high-frequency branch on
    the two halves of the channels, fused by a 1x1 convolution with a skip.

    Args:
        dim: Channels (even).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mid_dim = dim // 2
        self.conv = nn.Conv2d(self.mid_dim, self.mid_dim, 3, padding=1)
        self.max_pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.fc = nn.Conv2d(self.mid_dim, self.mid_dim, 1)
        self.act = nn.GELU()
        self.last_fc = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local, high = x[:, : self.mid_dim], x[:, self.mid_dim :]
        local = self.act(self.conv(local))
        high = self.act(self.fc(self.max_pool(high)))
        return x + self.last_fc(torch.cat([local, high], dim=1))


class ChannelNorm(nn.Module):
    """Layer norm over the channels of a ``(B, C, H, W)`` image (upstream's ``LayerNorm`` with
    bias, key ``body``).

    Args:
        dim: Channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.body = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_image(self.body(to_tokens(x)))


class ChannelAttention(nn.Module):
    """Restormer's transposed attention across channels, queries from the high-frequency
    features, keys and values from the windowed-attention features.

    Queries and keys are L2-normalised over the pixels and their products scaled by a learned
    per-head ``temperature``; every pixel takes part, so this sees the whole image.

    Args:
        dim: Channels.
        num_heads: Heads (each ``dim / num_heads`` channels).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, 1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim, bias=False)
        self.kv = nn.Conv2d(dim, dim * 2, 1, bias=False)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, 3, padding=1, groups=dim * 2, bias=False)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        b, c, h, w = low.shape
        q = self.q_dwconv(self.q(high)).reshape(b, self.num_heads, -1, h * w)
        k, v = self.kv_dwconv(self.kv(low)).reshape(b, 2, self.num_heads, -1, h * w).unbind(1)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        return self.project_out((attn @ v).reshape(b, c, h, w))


class GatedFeedForward(nn.Module):
    """Restormer's gated depth-wise feed-forward network (keys ``project_in`` / ``dwconv`` /
    ``project_out``).

    Args:
        dim: Channels in and out.
        hidden: Hidden channels (each half of the doubled projection).
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=False)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, 3, padding=1, groups=hidden * 2, bias=False)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


class HFB(nn.Module):
    """Hybrid fusion block: channel cross-attention, then the gated feed-forward network, each
    pre-normed with a skip.

    Args:
        dim: Channels.
        num_heads: Heads of the channel attention.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.norm1 = ChannelNorm(dim)
        self.attn = ChannelAttention(dim, num_heads)
        self.norm2 = ChannelNorm(dim)
        self.ffn = GatedFeedForward(dim, int(dim * _FFN_EXPANSION))

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = low + self.attn(self.norm1(low), high)
        return x + self.ffn(self.norm2(x))


# --------------------------------------------------------------------------------------------
# Groups and the network
# --------------------------------------------------------------------------------------------


class CRFB(nn.Module):
    """Cross-refinement fusion block: ``depth`` steps of (two SRWABs, one HFERB) fused by an HFB.

    Args:
        dim: Channels.
        depth: Steps.
        num_heads: Attention heads.
        split_size: Window height and width of SRWAB's first half.
        mlp_ratio: Hidden width of SRWAB's MLP relative to ``dim``.
        qkv_bias: Bias in SRWAB's query/key/value projection.
        qk_scale: Scale of SRWAB's logits.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        split_size: tuple[int, int],
        mlp_ratio: float,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.srwa_blocks = nn.ModuleList(
            SRWAB(
                dim=dim,
                num_heads=num_heads,
                split_size=split_size,
                shifted=i % 2 == 1,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
            )
            for i in range(2 * depth)
        )
        self.hfer_blocks = nn.ModuleList(HFERB(dim) for _ in range(depth))
        self.hf_blocks = nn.ModuleList(HFB(dim, num_heads) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (hfer, hf) in enumerate(zip(self.hfer_blocks, self.hf_blocks, strict=True)):
            low = self.srwa_blocks[2 * i + 1](self.srwa_blocks[2 * i](to_tokens(x)))
            x = hf(to_image(low), hfer(x))
        return x


class RCRFG(nn.Module):
    """Residual cross-refinement fusion group: a CRFB and a 3x3 convolution, with a skip.

    Args:
        dim: Channels.
        depth: Steps of the CRFB.
        num_heads: Attention heads.
        split_size: Window height and width of SRWAB's first half.
        mlp_ratio: Hidden width of SRWAB's MLP relative to ``dim``.
        qkv_bias: Bias in SRWAB's query/key/value projection.
        qk_scale: Scale of SRWAB's logits.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        split_size: tuple[int, int],
        mlp_ratio: float,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.residual_group = CRFB(
            dim=dim,
            depth=depth,
            num_heads=num_heads,
            split_size=split_size,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
        )
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.residual_group(x)) + x


class CRAFT(nn.Module):
    """Cross-Refinement Adaptive Feature modulation Transformer (lightweight super-resolution).

    Takes RGB in [0, 1] at any size: the input is mirror-padded at the bottom and right to the
    next multiple of ``window_size`` above its size (as the authors' inference script does; see
    the module docstring) and the output cropped.

    Args:
        scale: Upscaling factor (any positive integer: one convolution and one pixel shuffle).
        in_chans: Image channels (3: the DIV2K mean is removed inside; else none is).
        embed_dim: Feature channels (even, at least 32: the position-bias MLP is
            ``embed_dim // 32`` wide).
        depths: Cross-refinement steps in each residual group.
        num_heads: Attention heads in each residual group (at least 2, dividing ``embed_dim``;
            the window attention splits them between its two halves).
        split_size_0: Window height of SRWAB's first half (its width in the second).
        split_size_1: Window width of SRWAB's first half (its height in the second).
        window_size: The multiple the input is padded to (a multiple of both split sizes).
        mlp_ratio: Hidden width of SRWAB's MLP relative to ``embed_dim``.
        qkv_bias: Bias in SRWAB's query/key/value projection.
        qk_scale: Scale of SRWAB's logits (default ``head_dim ** -0.5``).
        img_range: Value range the network works in.
        resi_connection: ``"1conv"`` (a 3x3 convolution closes the body) or ``"identity"``.

    Example:
        >>> model = CRAFT(scale=4)
        >>> model(torch.rand(1, 3, 24, 20)).shape
        torch.Size([1, 3, 96, 80])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_chans: int = 3,
        embed_dim: int = 48,
        depths: Sequence[int] = (2, 2, 2, 2),
        num_heads: Sequence[int] = (6, 6, 6, 6),
        split_size_0: int = 4,
        split_size_1: int = 16,
        window_size: int = 16,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        img_range: float = 1.0,
        resi_connection: ResiConnection = "1conv",
    ) -> None:
        super().__init__()
        _check_config(
            scale=scale,
            in_chans=in_chans,
            embed_dim=embed_dim,
            depths=depths,
            num_heads=num_heads,
            split_size=(split_size_0, split_size_1),
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            resi_connection=resi_connection,
        )
        self.scale = scale
        self.in_channels = in_chans
        self.out_channels = in_chans
        # HFB's channel attention sees the whole image (see the module docstring).
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.split_size = (split_size_0, split_size_1)
        self.img_range = img_range
        self.rgb_mean: tuple[float, ...] | None = DIV2K_RGB_MEAN if in_chans == 3 else None

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, padding=1)
        self.layers = nn.ModuleList(
            RCRFG(
                dim=embed_dim,
                depth=d,
                num_heads=num_heads[i],
                split_size=self.split_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
            )
            for i, d in enumerate(depths)
        )
        self.norm = ChannelNorm(embed_dim)
        self.conv_after_body: nn.Module = (
            nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
            if resi_connection == "1conv"
            else nn.Identity()
        )
        self.upsample = pixel_shuffle_head(embed_dim, in_chans, scale)
        self.apply(init_transformer_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep features: the residual groups and the closing channel norm.

        Args:
            x: Shallow features ``(N, embed_dim, H, W)``, sides multiples of ``window_size``.

        Returns:
            Deep features ``(N, embed_dim, H, W)``.
        """
        for layer in self.layers:
            x = layer(x)
        out: torch.Tensor = self.norm(x)
        return out

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ws = self.window_size
        # Upstream's protocol: one more window even where the side is a multiple already.
        x = mirror_pad(x, ws - h % ws, ws - w % ws)
        mean = None if self.rgb_mean is None else image_mean(self.rgb_mean, x.device, x.dtype)
        if mean is not None:
            x = x - mean
        x = self.conv_first(x * self.img_range)
        x = self.upsample(self.conv_after_body(self.forward_features(x)) + x)
        x = x / self.img_range
        if mean is not None:
            x = x + mean
        return x[..., : h * self.scale, : w * self.scale].contiguous()


def _check_config(
    *,
    scale: int,
    in_chans: int,
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    split_size: tuple[int, int],
    window_size: int,
    mlp_ratio: float,
    resi_connection: str,
) -> None:
    """Refuse configurations the network cannot be built for, with the reason."""
    name = "CRAFT"
    if scale < 1 or in_chans < 1:
        raise ArgumentError(
            f"{name}: scale and in_chans must be positive integers, got {scale} and {in_chans}"
        )
    if min(split_size) < 1 or window_size < 1 or any(window_size % s for s in split_size):
        raise ArgumentError(
            f"{name}: window_size must be a positive multiple of both split sizes, got "
            f"window_size={window_size} and split sizes {split_size}"
        )
    if not depths or len(depths) != len(num_heads) or min(depths) < 1:
        raise ArgumentError(
            f"{name}: depths and num_heads need one positive entry per residual group, got "
            f"depths={tuple(depths)} and num_heads={tuple(num_heads)}"
        )
    if embed_dim < 32 or embed_dim % 2:
        # The window attention halves the channels; its position-bias MLP is embed_dim // 32 wide.
        raise ArgumentError(f"{name}: embed_dim must be even and at least 32, got {embed_dim}")
    for heads in num_heads:
        if heads < 2 or embed_dim % heads or (embed_dim // 2) % (heads // 2):
            raise ArgumentError(
                f"{name}: each head count must be at least 2 and divide embed_dim ({embed_dim}), "
                f"and half of it divide embed_dim / 2; got {heads}"
            )
    if int(embed_dim * mlp_ratio) < 1:
        raise ArgumentError(f"{name}: mlp_ratio must leave a hidden width, got {mlp_ratio}")
    if resi_connection not in ("1conv", "identity"):
        raise ArgumentError(
            f"{name}: resi_connection must be '1conv' or 'identity', got {resi_connection!r}"
        )


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------

# Tensors upstream stores as buffers but that srzoo computes from the configuration, with the
# window each describes: the first half's (split_size_0 x split_size_1) or the transpose.
_COMPUTED = {
    "relative_position_index_h": False,
    "biases_h": False,
    "relative_position_index_v": True,
    "biases_v": True,
}


def _computed_shape(key: str, split: tuple[int, int]) -> tuple[int, ...]:
    wh, ww = (split[1], split[0]) if _COMPUTED[key] else split
    if key.startswith("biases"):
        return ((2 * wh - 1) * (2 * ww - 1), 2)
    return (wh * ww, wh * ww)


def convert_craft(state: StateDict, module: nn.Module) -> StateDict:
    """Map a CRAFT state dict in the official (or spandrel's) layout to srzoo's keys.

    The keys are the same; the position tables the network computes (``biases_h/v``,
    ``relative_position_index_h/v``) are dropped. Their shapes name the window the weights were
    trained with, so a checkpoint for another window (the parameters do not depend on it) is
    refused instead of loaded.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` etc.).
        module: The :class:`CRAFT` it is meant for.

    Returns:
        The state dict in srzoo's keys.

    Raises:
        IncompatibleWeightsError: The checkpoint's window differs from the module's.

    Example:
        >>> convert_craft(torch.load("CRAFT_MODEL_X4.pth")["params"], srzoo.create("craft", 4))
    """
    split = getattr(module, "split_size", None)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    if isinstance(split, tuple):
        for key in _COMPUTED:
            if key in state:
                expected = _computed_shape(key, split)
                if tuple(state[key].shape) != expected:
                    mismatched.append((key, expected, tuple(state[key].shape)))
    if mismatched:
        raise IncompatibleWeightsError(type(module).__name__, mismatched=mismatched)
    return {k: v for k, v in state.items() if k not in _COMPUTED}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

register_model(
    ModelSpec(
        name="craft",
        family="craft",
        builder=CRAFT,
        scales=(2, 3, 4),
        paper=Paper(
            title=(
                "Feature Modulation Transformer: Cross-Refinement of Global Representation via "
                "High-Frequency Prior for Image Super-Resolution"
            ),
            venue="ICCV",
            year=2023,
            arxiv="2308.05022",
        ),
        code_license="Apache-2.0",
        description="CRAFT: 4 groups x 2 cross-refinement steps, 48 features, 4x16 windows",
        defaults={
            "embed_dim": 48,
            "depths": (2, 2, 2, 2),
            "num_heads": (6, 6, 6, 6),
            "split_size_0": 4,
            "split_size_1": 16,
            "window_size": 16,
            "mlp_ratio": 2.0,
            "resi_connection": "1conv",
        },
        converter=convert_craft,
        size_multiple=16,
    )
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_GROUP0 = "layers.0.residual_group."
# AVC2-UESTC/CRAFT-SR's keys (spandrel's); srzoo's state dicts are these without the computed
# buffers.
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        _GROUP0 + "srwa_blocks.0.qkv.weight",
        _GROUP0 + "srwa_blocks.0.get_v.weight",
        _GROUP0 + "srwa_blocks.0.attns.0.pos.pos_proj.weight",
        _GROUP0 + "srwa_blocks.0.mlp.fc1.weight",
        _GROUP0 + "hfer_blocks.0.last_fc.weight",
        _GROUP0 + "hf_blocks.0.attn.temperature",
        _GROUP0 + "hf_blocks.0.ffn.project_in.weight",
        "layers.0.conv.weight",
        "norm.body.weight",
        "upsample.0.weight",
    ),
}
# The window of the release.
_SPLIT = (4, 16)
_WINDOW = 16


def _split_size(shapes: Shapes) -> tuple[int, int] | None:
    # biases_h has (2h - 1)(2w - 1) rows and relative_position_index_h is (h * w, h * w): from
    # the two, h + w follows, and h and w are the roots of t**2 - (h + w) t + h * w (the smaller
    # taken as split_size_0: the halves use the window and its transpose, so the shapes are the
    # same either way, and the release has h <= w).
    offsets = shapes.dim("biases_h")
    area = shapes.dim("relative_position_index_h")
    if area and offsets:
        total, odd = divmod(4 * area + 1 - offsets, 2)
        root = math.isqrt(max(total * total - 4 * area, 0))
        h, w = (total - root) // 2, (total + root) // 2
        ok = not odd and h >= 1 and h * w == area and (2 * h - 1) * (2 * w - 1) == offsets
        return (h, w) if ok else None
    if area or offsets:
        return None
    return _SPLIT


def detect_craft(shapes: Shapes) -> Detected | None:
    """Recognise a CRAFT checkpoint (AVC2-UESTC/CRAFT-SR keys) from keys and shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the steps of each residual group
    (``depths``: the HFBs, with twice as many SRWABs), the heads of each group (the HFB's
    ``temperature``), ``mlp_ratio`` (SRWAB's MLP width over ``embed_dim``), ``qkv_bias``,
    ``resi_connection`` (``1conv`` where ``conv_after_body`` exists, else ``identity``) and the
    scale (the pixel-shuffle head).

    The window (``split_size_0``, ``split_size_1``) is read from the position tables the
    official files store (``biases_h`` has ``(2h - 1)(2w - 1)`` rows, ``relative_position_index_h``
    is ``(h * w, h * w)``); the order of the two sides cannot be read and the smaller is taken as
    ``split_size_0``, as released. A file without them (srzoo's own state dicts) gets ``(4, 16)``,
    the release's. ``window_size`` (the padding multiple) cannot be read: 16 where both sides
    divide it (the release), else their least common multiple. ``qk_scale`` (the default) and
    ``img_range`` (1) cannot be read either.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a CRAFT.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    embed_dim, in_chans = shapes.dim("conv_first.weight"), shapes.dim("conv_first.weight", 1)
    n_groups = shapes.count(r"layers\.(\d+)\.conv\.weight")
    depths = tuple(
        shapes.count(rf"layers\.{i}\.residual_group\.hf_blocks\.(\d+)\.attn\.temperature")
        for i in range(n_groups)
    )
    srwa = tuple(
        shapes.count(rf"layers\.{i}\.residual_group\.srwa_blocks\.(\d+)\.qkv\.weight")
        for i in range(n_groups)
    )
    heads = tuple(
        shapes.dim(f"layers.{i}.residual_group.hf_blocks.0.attn.temperature")
        for i in range(n_groups)
    )
    hidden, split = shapes.dim(_GROUP0 + "srwa_blocks.0.mlp.fc1.weight"), _split_size(shapes)
    if (
        split is None
        or min((in_chans, n_groups, hidden, *depths, *heads), default=0) < 1
        or srwa != tuple(2 * d for d in depths)
        or embed_dim < 32
        or embed_dim % 2
        or any(h < 2 or embed_dim % h or (embed_dim // 2) % (h // 2) for h in heads)
    ):
        return None
    scale = shuffle_factor(shapes.dim("upsample.0.weight"), in_chans)
    if not scale:
        return None
    window = _WINDOW if all(_WINDOW % s == 0 for s in split) else math.lcm(*split)
    ratio = hidden / embed_dim
    mlp_ratio = ratio if int(embed_dim * ratio) == hidden else (hidden + 0.5) / embed_dim
    args: dict[str, object] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads": heads,
        "split_size_0": split[0],
        "split_size_1": split[1],
        "window_size": window,
        "mlp_ratio": mlp_ratio,
        "qkv_bias": shapes.has(_GROUP0 + "srwa_blocks.0.qkv.bias"),
        "resi_connection": "1conv" if shapes.has("conv_after_body.weight") else "identity",
    }
    return Detected("craft", scale, args, "official")


register_detector("craft", detect_craft, layouts=_LAYOUTS)
