"""RGT: the recursive generalization transformer.

Paper: Chen, Zhang, Gu, Kong, Yang, "Recursive Generalization Transformer for Image
Super-Resolution", ICLR 2024, arXiv:2303.06373.

Parameter names follow zhengchen1999/RGT ``basicsr/archs/rgt_arch.py`` (identical to spandrel's
RGT), so the official ``RGT_x{2,3,4}.pth`` / ``RGT_S_x{2,3,4}.pth`` files load once the BasicSR
``params`` wrapper is removed (which srzoo's reader does). The official files also hold tensors
the network computes from its configuration (``rpe_biases``, ``relative_position_index`` and the
shift masks ``attn_mask_0/1`` of a 64x64 input); :func:`convert_rgt` drops them after checking
that their window matches the module's.

RGT is DAT's sibling. Its residual groups alternate two blocks, each a pre-norm attention and a
pre-norm spatial-gate feed-forward network, closed by the hybrid adaptive integration (HAI: the
block's input, scaled per channel by ``gamma``, is added to its output):

- L-SA (even blocks): DAT's rectangular-window self-attention in two halves (``split_size`` and
  its transpose, some blocks shifted by half a window), with a dynamic relative position bias,
  plus a depth-wise convolution of the values (``get_v``);
- RG-SA (odd blocks): the recursive-generalization self-attention. The features are shrunk
  recursively by one depth-wise 4x4 stride-4 convolution (``reduction1``, applied ``T`` times,
  ``T = max(2, floor(log4(side // 16)))`` in inference), and every token attends to these few
  representative tokens, with queries and keys reduced to ``c_ratio`` of the channels.

Differences from the upstream code, none of them in the result: the shift masks, relative
offsets and index tables are tensor operations on the input's device, cached per shape (upstream
builds the masks with index assignments on the CPU during ``forward``); both attentions run in
``F.scaled_dot_product_attention``; the windows are cut with one index gather instead of
pad / roll / partition copies. Upstream fails on inputs with a side under 16 pixels (the
recursion count takes the logarithm of ``side // 16``) or so elongated that the shorter side
vanishes in the recursion; here such inputs are reflect-padded to the smallest size upstream
accepts and the output is cropped, so every ``H, W >= 1`` works and every size upstream runs
gives its result.

Weights: none registered. The authors publish RGT and RGT-S at x2, x3 and x4 only on Google
Drive and Baidu Disk (folders linked from the README); OpenModelDB lists ``4x-RGT``
(``RGT_x4.pth``, sha256 ``8335d4d3...a45133c``, 180,352,241 bytes) and ``4x-RGT-S``
(``RGT_S_x4.pth``, sha256 ``2ff12e25...6901d0c0``, 135,963,303 bytes), also on Google Drive
only, with no direct download. Any of them loads with ``srzoo.load("rgt", scale=s,
weights=path)`` (or ``"rgt-s"``), or ``srzoo.load_file(path)``.

Reported Y-PSNR (Set5 / Set14 / Urban100, paper Table 2, ``figs/T1.png`` in the repository):

======  ======================  ======================  ======================
model   x2                      x3                      x4
======  ======================  ======================  ======================
RGT-S   38.56 / 34.77 / 34.32   35.11 / 31.05 / 30.18   32.98 / 29.18 / 27.89
RGT     38.59 / 34.83 / 34.47   35.15 / 31.13 / 30.28   33.12 / 29.23 / 27.98
======  ======================  ======================  ======================

RGT declares no receptive-field radius (``receptive_field = None``): RG-SA attends over the
whole image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

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
)
from ._blocks import DIV2K_RGB_MEAN, image_forward
from ._transformer import (
    DropPath,
    DynamicPosBias,
    ReconstructionHead,
    ToTokens,
    image_mean,
    init_transformer_weights,
    merge_heads,
    residual_conv,
    to_image,
    to_tokens,
)
from ._window import (
    padded_window_order,
    reflect_pad,
    relative_coords,
    relative_position_index,
    shift_mask,
)

__all__ = [
    "LSA",
    "RGSA",
    "RGT",
    "Block",
    "DynamicPosBias",
    "GatedMlp",
    "ResidualGroup",
    "WindowAttention",
    "convert_rgt",
    "detect_rgt",
    "recursion_steps",
]

# The smallest side upstream runs at (the recursion count takes log4(side // 16)).
MIN_SIDE = 16


# --------------------------------------------------------------------------------------------
# Shape-only tensors, cached per shape, device and dtype
# --------------------------------------------------------------------------------------------
def recursion_steps(h: int, w: int, training: bool) -> int:
    """How many times RG-SA shrinks an ``h x w`` feature map by 4 (upstream's ``_time``).

    Upstream's formula, floating-point logarithm included, so that every size gives its count:
    ``max(log4(h // 4), log4(w // 4))`` (floored) in training, ``max(2, log4(h // 16),
    log4(w // 16))`` in inference (at least the two steps of training on 64x64 patches).

    Args:
        h: Feature height (at least 16, 4 in training).
        w: Feature width (likewise).
        training: The module's training mode.

    Returns:
        The number of stride-4 reductions.
    """
    if training:
        return max(int(math.log(h // 4, 4)), int(math.log(w // 4, 4)))
    return max(int(math.log(h // 16, 4)), int(math.log(w // 16, 4)), 2)


def _runnable_size(h: int, w: int, training: bool) -> tuple[int, int]:
    # The smallest size at least h x w that upstream runs: both sides at least 16, and both at
    # least 4 ** steps, so that the recursion leaves a pixel (padding the shorter side up to it
    # keeps the step count, which the longer side sets).
    h, w = max(h, MIN_SIDE), max(w, MIN_SIDE)
    side = 4 ** recursion_steps(h, w, training)
    return max(h, side), max(w, side)


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Self-attention in rectangular windows over one half of the channels, with position bias.

    Args:
        dim: Channels of this half.
        num_heads: Heads of this half.
        window: Window height and width.
        branch: Which half of the channels (0 or 1).
        qk_scale: Scale of the logits (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window: tuple[int, int],
        branch: int,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.branch = branch
        self.num_heads = num_heads
        self.window = window
        self.shift = (window[0] // 2, window[1] // 2)
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.pos = DynamicPosBias(dim=dim // 4, num_heads=num_heads)

    def position_bias(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """The ``(heads, N, N)`` bias of one window (``N = wh * ww``), from the offsets' MLP."""
        table = self.pos(relative_coords(self.window, device, dtype))  # (offsets, heads)
        return table.t()[:, relative_position_index(self.window, device)]

    def forward(
        self, qkv: torch.Tensor, size: tuple[int, int], multiple: int, shifted: bool
    ) -> torch.Tensor:
        """Attend within windows.

        Args:
            qkv: ``(B, H*W + 1, 3, 2, C)``: queries, keys and values of both halves for the
                tokens of an ``H x W`` image in row-major order, then one zero token (the
                padding).
            size: ``(H, W)``.
            multiple: The image is zero-padded at the bottom and right to this multiple.
            shifted: Shift the windows by half a window (with the Swin mask).

        Returns:
            ``(B, H*W, C)`` in row-major order.
        """
        b = qkv.shape[0]
        shift = self.shift if shifted else (0, 0)
        gather, scatter = padded_window_order(size, multiple, self.window, shift, qkv.device)
        # One gather pads, rolls and partitions: (B, windows * N, 3, C).
        tokens = qkv.index_select(1, gather)[..., self.branch, :]
        n = self.window[0] * self.window[1]
        head_dim = tokens.shape[-1] // self.num_heads
        q, k, v = tokens.view(b, -1, n, 3, self.num_heads, head_dim).unbind(3)
        q, k, v = (t.flatten(0, 1).transpose(1, 2) for t in (q, k, v))
        bias = self.position_bias(qkv.device, qkv.dtype)
        if shifted:
            h, w = (side + -side % multiple for side in size)
            mask = shift_mask(h, w, self.window, shift, device=qkv.device, dtype=qkv.dtype)
            attn_mask = mask[:, None] + bias  # (windows, heads, N, N)
            if b > 1:
                # The mask differs per window, the bias per head: fold the windows into the head
                # axis so that one (1, windows * heads, N, N) mask serves every image.
                folded = attn_mask.shape[0] * self.num_heads
                attn_mask = attn_mask.reshape(1, folded, n, n)
                q, k, v = (t.reshape(b, folded, n, -1) for t in (q, k, v))
        else:
            attn_mask = bias[None]  # 4-D: SDPA's fused CPU kernel broadcasts it
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=self.scale)
        out = out.reshape(-1, self.num_heads, n, head_dim).transpose(1, 2)
        return out.reshape(b, -1, tokens.shape[-1]).index_select(1, scatter)


class LSA(nn.Module):
    """L-SA: window self-attention in two halves plus a depth-wise convolution of the values.

    Args:
        dim: Channels.
        num_heads: Heads, split evenly between the two halves.
        split_size: Window height and width of the first half (the second is transposed).
        shifted: Whether this block shifts its windows.
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
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.shifted = shifted
        self.multiple = max(split_size)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        windows = (split_size, (split_size[1], split_size[0]))
        self.attns = nn.ModuleList(
            WindowAttention(
                dim=dim // 2, num_heads=num_heads // 2, window=win, branch=i, qk_scale=qk_scale
            )
            for i, win in enumerate(windows)
        )
        self.get_v = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        qkv = self.qkv(x)
        # The convolution sees the values of the image as it is, not padded.
        lcm = self.get_v(to_image(qkv[..., 2 * c :]))
        # Upstream zero-pads q, k and v to a multiple of the larger window side; padded tokens
        # take part in the softmax with zero logits (plus bias). One zero token after the
        # image's stands for all of them in the gathers.
        tokens = torch.cat([qkv.flatten(1, 2), qkv.new_zeros(b, 1, 3 * c)], dim=1)
        tokens = tokens.view(b, -1, 3, 2, c // 2)
        attended = torch.cat(
            [attn(tokens, (h, w), self.multiple, self.shifted) for attn in self.attns], dim=-1
        ).view(b, h, w, c)
        return self.proj(attended + to_tokens(lcm))


class RGSA(nn.Module):
    """RG-SA: every token attends to a recursively shrunk summary of the image.

    Args:
        dim: Channels.
        num_heads: Heads.
        c_ratio: Channels of queries and keys relative to ``dim``.
        qkv_bias: Bias in the query/key/value projections.
        qk_scale: Scale of the logits (default ``(head_dim * c_ratio) ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        c_ratio: float = 0.5,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.cr = int(dim * c_ratio)
        self.scale = qk_scale or (dim // num_heads * c_ratio) ** -0.5
        # The recursive-generalization module: one stride-4 convolution, applied repeatedly.
        self.reduction1 = nn.Conv2d(dim, dim, 4, stride=4, groups=dim)
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.conv = nn.Conv2d(dim, self.cr, 1)
        self.norm_act = nn.Sequential(nn.LayerNorm(self.cr), nn.GELU())
        self.q = nn.Linear(dim, self.cr, bias=qkv_bias)
        self.k = nn.Linear(self.cr, self.cr, bias=qkv_bias)
        self.v = nn.Linear(self.cr, dim, bias=qkv_bias)
        # Conditional position encoding of the values, on the shrunk map.
        self.cpe = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        summary = to_image(x)
        for _ in range(recursion_steps(h, w, self.training)):
            summary = self.reduction1(summary)
        summary = self.conv(self.dwconv(summary))  # (B, cr, h', w')
        hs, ws = summary.shape[-2:]
        summary = self.norm_act(to_tokens(summary).reshape(b, hs * ws, self.cr))
        heads = self.num_heads
        q = self.q(x).view(b, h * w, heads, -1).transpose(1, 2)
        k = self.k(summary).view(b, hs * ws, heads, -1).transpose(1, 2)
        v = self.v(summary)  # (B, N', C)
        v = v + to_tokens(self.cpe(to_image(v.view(b, hs, ws, c)))).reshape(b, hs * ws, c)
        v = v.view(b, hs * ws, heads, -1).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(merge_heads(out).view(b, h, w, c))


class _Gate(nn.Module):
    """Half the channels, normalised and filtered depth-wise, gate the other half."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return x1 * to_tokens(self.conv(to_image(self.norm(x2))))


class GatedMlp(nn.Module):
    """The spatial-gate feed-forward network: linear, GELU, gate, linear (keys ``fc1`` / ``sg``
    / ``fc2``; the shared ``Mlp`` has no gate).

    Args:
        dim: Channels in and out.
        hidden: Hidden channels (even: the gate halves them).
    """

    def __init__(self, *, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.sg = _Gate(hidden // 2)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.sg(self.act(self.fc1(x))))


def _shifted(group_index: int, block_index: int) -> bool:
    # Upstream's schedule: in even groups the L-SA blocks 2, 6, 10, ... shift, in odd groups
    # blocks 0, 4, 8, ...; consecutive L-SA blocks alternate across the groups.
    if group_index % 2 == 0:
        return block_index % 4 == 2
    return block_index % 4 == 0


class Block(nn.Module):
    """Pre-norm attention (L-SA in even blocks, RG-SA in odd ones), pre-norm gated MLP, HAI.

    Args:
        dim: Channels.
        num_heads: Attention heads.
        split_size: Window height and width of L-SA.
        mlp_ratio: Hidden width of the MLP relative to ``dim``.
        c_ratio: Query/key channels of RG-SA relative to ``dim``.
        group_index: Index of the residual group (the shift pattern alternates with it).
        block_index: Index of the block in its group.
        qkv_bias: Bias in the query/key/value projections.
        qk_scale: Scale of the logits (default: each attention's own).
        drop_path: Stochastic-depth rate of both branches while training.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        split_size: tuple[int, int],
        mlp_ratio: float,
        c_ratio: float,
        group_index: int,
        block_index: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn: nn.Module
        if block_index % 2 == 0:
            self.attn = LSA(
                dim=dim,
                num_heads=num_heads,
                split_size=split_size,
                shifted=_shifted(group_index, block_index),
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
            )
        else:
            self.attn = RGSA(
                dim=dim, num_heads=num_heads, c_ratio=c_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale
            )
        self.drop_path = DropPath(drop_path)
        self.mlp = GatedMlp(dim=dim, hidden=int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)
        # HAI: the block's input, scaled per channel, joins its output.
        self.gamma = nn.Parameter(torch.full((dim,), 1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x + res * self.gamma


class ResidualGroup(nn.Module):
    """``depth`` blocks and a convolution, with a skip over the group.

    Args:
        dim: Channels.
        depth: Blocks in the group.
        num_heads: Attention heads.
        split_size: Window height and width of L-SA.
        mlp_ratio: Hidden width of the MLPs relative to ``dim``.
        c_ratio: Query/key channels of RG-SA relative to ``dim``.
        group_index: Index of the group in the network.
        resi_connection: ``"1conv"`` or ``"3conv"``, the convolution closing the group.
        qkv_bias: Bias in the query/key/value projections.
        qk_scale: Scale of the logits.
        drop_paths: Stochastic-depth rate of each block.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        split_size: tuple[int, int],
        mlp_ratio: float,
        c_ratio: float,
        group_index: int,
        resi_connection: str,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_paths: Sequence[float] = (),
    ) -> None:
        super().__init__()
        rates = list(drop_paths) or [0.0] * depth
        self.blocks = nn.ModuleList(
            Block(
                dim=dim,
                num_heads=num_heads,
                split_size=split_size,
                mlp_ratio=mlp_ratio,
                c_ratio=c_ratio,
                group_index=group_index,
                block_index=i,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_path=rates[i],
            )
            for i in range(depth)
        )
        self.conv = residual_conv(dim, resi_connection, name="RGT")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x
        for block in self.blocks:
            x = block(x)
        return to_tokens(self.conv(to_image(x))) + res


ResiConnection = Literal["1conv", "3conv"]


class RGT(ReconstructionHead):
    """Recursive Generalization Transformer.

    Takes RGB in [0, 1] at any size: L-SA pads its queries, keys and values with zeros to a
    multiple of the larger window side, as the original does; inputs smaller than upstream
    accepts (a side under 16 pixels) are reflect-padded first; the output is cropped back.

    Args:
        scale: Upscaling factor (3 or a power of two).
        in_chans: Image channels (3: the DIV2K mean is removed inside; else none is).
        embed_dim: Feature channels (even, at least 32, divisible by every head count).
        depth: Blocks in each residual group.
        num_heads: Attention heads in each residual group (at least 2: L-SA splits them
            between its two halves).
        split_size: Window height and width of L-SA's first half.
        mlp_ratio: Hidden width of the gated MLPs relative to ``embed_dim``.
        c_ratio: Query/key channels of RG-SA relative to ``embed_dim``.
        qkv_bias: Bias in the query/key/value projections.
        qk_scale: Scale of the logits (default: ``head_dim ** -0.5`` in L-SA,
            ``(head_dim * c_ratio) ** -0.5`` in RG-SA).
        img_range: Value range the network works in.
        resi_connection: ``"1conv"`` or ``"3conv"``, the convolution closing each group and
            the body.
        drop_path_rate: Largest stochastic-depth rate, reached linearly by the last block; only
            active in training mode (the authors trained with 0.1).

    Example:
        >>> model = RGT(scale=4, depth=(6,) * 6, num_heads=(6,) * 6)  # RGT-S
        >>> model(torch.rand(1, 3, 48, 48)).shape
        torch.Size([1, 3, 192, 192])
    """

    #: Why ``srzoo.export_onnx`` needs ``dynamic=False`` for this network.
    onnx_fixed_size_reason: ClassVar[str] = (
        "how many stride-4 steps its recursive attention takes follows the input size, so the "
        "graph itself changes with the size"
    )

    def __init__(
        self,
        *,
        scale: int = 4,
        in_chans: int = 3,
        embed_dim: int = 180,
        depth: Sequence[int] = (6, 6, 6, 6, 6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6, 6, 6),
        split_size: Sequence[int] = (8, 32),
        mlp_ratio: float = 2.0,
        c_ratio: float = 0.5,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        img_range: float = 1.0,
        resi_connection: ResiConnection = "1conv",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        split = _check_config(
            scale=scale,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            split_size=split_size,
            mlp_ratio=mlp_ratio,
            c_ratio=c_ratio,
            drop_path_rate=drop_path_rate,
        )
        self.in_channels = in_chans
        self.out_channels = in_chans
        # RG-SA attends over the whole image (see the module docstring).
        self.receptive_field: int | None = None
        self.img_range = img_range
        self.rgb_mean: tuple[float, ...] | None = DIV2K_RGB_MEAN if in_chans == 3 else None

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, padding=1)
        self.before_RG = nn.Sequential(ToTokens(), nn.LayerNorm(embed_dim))
        total = sum(depth)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList(
            ResidualGroup(
                dim=embed_dim,
                depth=d,
                num_heads=num_heads[i],
                split_size=split,
                mlp_ratio=mlp_ratio,
                c_ratio=c_ratio,
                group_index=i,
                resi_connection=resi_connection,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_paths=rates[sum(depth[:i]) : sum(depth[: i + 1])],
            )
            for i, d in enumerate(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection, name="RGT")
        self.build_head(
            "pixelshuffle", dim=embed_dim, num_feat=64, out_chans=in_chans, scale=scale, name="RGT"
        )
        self.apply(init_transformer_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep features: the residual groups between two layer norms.

        Args:
            x: Shallow features ``(N, embed_dim, H, W)``, both sides at least 16.

        Returns:
            Deep features ``(N, embed_dim, H, W)`` (channels-last in memory).
        """
        t = self.before_RG(x)
        for layer in self.layers:
            t = layer(t)
        return to_image(self.norm(t))

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        hp, wp = _runnable_size(h, w, self.training)
        if (hp, wp) != (h, w):
            x = reflect_pad(x, hp - h, wp - w)
        mean = None if self.rgb_mean is None else image_mean(self.rgb_mean, x.device, x.dtype)
        if mean is not None:
            x = x - mean
        x = self.conv_first(x * self.img_range)
        x = self.reconstruct(self.conv_after_body(self.forward_features(x)) + x)
        x = x / self.img_range
        if mean is not None:
            x = x + mean
        return x[..., : h * self.scale, : w * self.scale].contiguous()


def _check_config(
    *,
    scale: int,
    embed_dim: int,
    depth: Sequence[int],
    num_heads: Sequence[int],
    split_size: Sequence[int],
    mlp_ratio: float,
    c_ratio: float,
    drop_path_rate: float,
) -> tuple[int, int]:
    """Refuse configurations the network cannot be built for; returns the window as a pair."""
    name = "RGT"
    if scale < 1:
        raise ArgumentError(f"{name}: scale must be a positive integer, got {scale}")
    if len(split_size) != 2 or min(split_size) < 1:
        raise ArgumentError(
            f"{name}: split_size must be two positive window sides, got {tuple(split_size)}"
        )
    if not depth or len(depth) != len(num_heads) or min(depth) < 1:
        raise ArgumentError(
            f"{name}: depth and num_heads need one positive entry per residual group, got "
            f"depth={tuple(depth)} and num_heads={tuple(num_heads)}"
        )
    if embed_dim < 32 or embed_dim % 2:
        # L-SA halves the channels, and its position-bias MLP is embed_dim // 32 wide.
        raise ArgumentError(f"{name}: embed_dim must be even and at least 32, got {embed_dim}")
    cr = int(embed_dim * c_ratio)
    for heads in num_heads:
        if heads < 2 or embed_dim % heads or (embed_dim // 2) % (heads // 2) or cr % heads:
            raise ArgumentError(
                f"{name}: each head count must be at least 2 and divide embed_dim ({embed_dim}), "
                f"half of it divide embed_dim / 2, and it divide embed_dim * c_ratio ({cr}); "
                f"got {heads}"
            )
    if int(embed_dim * mlp_ratio) % 2 or int(embed_dim * mlp_ratio) < 2:
        raise ArgumentError(
            f"{name}: embed_dim * mlp_ratio must be an even width (the spatial gate halves it), "
            f"got {int(embed_dim * mlp_ratio)}"
        )
    if not 0.0 <= drop_path_rate < 1.0:
        raise ArgumentError(f"{name}: drop_path_rate must be in [0, 1), got {drop_path_rate}")
    return (int(split_size[0]), int(split_size[1]))


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------

# Tensors upstream stores as buffers but that srzoo computes from the configuration.
_COMPUTED = (".rpe_biases", ".relative_position_index", ".attn_mask_0", ".attn_mask_1")


def convert_rgt(state: StateDict, module: nn.Module) -> StateDict:
    """Map an RGT state dict in the official (or spandrel's) layout to srzoo's keys.

    The keys are the same; the tensors the network computes (relative offsets and indices, the
    shift masks of a 64x64 input) are dropped. Their shapes name the window the weights were
    trained with, so a checkpoint for another window (the parameters do not depend on it) is
    refused instead of loaded.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` etc.).
        module: The :class:`RGT` it is meant for.

    Returns:
        The state dict in srzoo's keys.

    Raises:
        IncompatibleWeightsError: The checkpoint's window differs from the module's.

    Example:
        >>> convert_rgt(torch.load("RGT_x4.pth")["params"], srzoo.create("rgt", 4))
    """
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for key, value in state.items():
        if not key.endswith(".rpe_biases"):
            continue
        try:
            attn = module.get_submodule(key.removesuffix(".rpe_biases"))
        except AttributeError:
            continue  # not a key of this module: strict loading reports it
        if isinstance(attn, WindowAttention):
            wh, ww = attn.window
            expected = ((2 * wh - 1) * (2 * ww - 1), 2)
            if tuple(value.shape) != expected:
                mismatched.append((key, expected, tuple(value.shape)))
    if mismatched:
        raise IncompatibleWeightsError(type(module).__name__, mismatched=mismatched)
    return {k: v for k, v in state.items() if not k.endswith(_COMPUTED)}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title="Recursive Generalization Transformer for Image Super-Resolution",
    venue="ICLR",
    year=2024,
    arxiv="2303.06373",
)


def _register(name: str, description: str, groups: int) -> None:
    register_model(
        ModelSpec(
            name=name,
            family="rgt",
            builder=RGT,
            scales=(2, 3, 4),
            paper=_PAPER,
            code_license="Apache-2.0",
            description=description,
            defaults={
                "embed_dim": 180,
                "depth": (6,) * groups,
                "num_heads": (6,) * groups,
                "split_size": (8, 32),
                "mlp_ratio": 2.0,
                "c_ratio": 0.5,
                "resi_connection": "1conv",
            },
            converter=convert_rgt,
            # L-SA pads to a multiple of its larger window side.
            size_multiple=32,
        )
    )


_register("rgt", "RGT: 8 residual groups x 6 blocks, 180 features, 8x32 windows", 8)
_register("rgt-s", "RGT-S: 6 residual groups x 6 blocks, 180 features, 8x32 windows", 6)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "layers.0.blocks.0."
_WINDOW0 = _BLOCK0 + "attn.attns.0."
# zhengchen1999/RGT's keys (spandrel's); srzoo's state dicts are these without the computed
# buffers.
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        "before_RG.1.weight",
        _BLOCK0 + "gamma",
        _BLOCK0 + "norm1.weight",
        _BLOCK0 + "attn.qkv.weight",
        _BLOCK0 + "attn.get_v.weight",
        _WINDOW0 + "pos.pos_proj.weight",
        _BLOCK0 + "mlp.fc1.weight",
        _BLOCK0 + "mlp.sg.conv.weight",
        "norm.weight",
        "conv_before_upsample.0.weight",
        "conv_last.weight",
    ),
}
# The window of every release.
_WINDOW = (8, 32)


def _split_size(shapes: Shapes) -> tuple[int, int] | None:
    # rpe_biases has (2h - 1)(2w - 1) rows and relative_position_index is (h * w, h * w): from
    # the product and the area, h + w follows, and h and w are the roots of
    # t**2 - (h + w) t + h * w (the smaller taken as the height: the two halves use the window
    # and its transpose, so the shapes are the same either way, and every release has h <= w).
    offsets = shapes.dim(_WINDOW0 + "rpe_biases")
    area = shapes.dim(_WINDOW0 + "relative_position_index") or next(
        (shapes.dim(k, 1) for k in shapes if k.endswith(".attn.attn_mask_0")), 0
    )
    if area and offsets:
        total, odd = divmod(4 * area + 1 - offsets, 2)
        root = math.isqrt(max(total * total - 4 * area, 0))
        h, w = (total - root) // 2, (total + root) // 2
        ok = not odd and h >= 1 and h * w == area and (2 * h - 1) * (2 * w - 1) == offsets
        return (h, w) if ok else None
    if area or offsets:
        h, w = _WINDOW
        fits = area in (0, h * w) and offsets in (0, (2 * h - 1) * (2 * w - 1))
        return _WINDOW if fits else None
    return _WINDOW


def detect_rgt(shapes: Shapes) -> Detected | None:
    """Recognise an RGT checkpoint (zhengchen1999/RGT keys) from keys and shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the blocks of each residual
    group (``depth``), the heads of each group (twice the outputs of L-SA's position-bias MLP,
    plus one where an even count would not divide ``embed_dim``, as spandrel reads them),
    ``mlp_ratio`` (the MLP's hidden width over ``embed_dim``), ``c_ratio`` (RG-SA's query/key
    width over ``embed_dim``, from the first group with a second block; 0.5 where no group has
    one), ``qkv_bias``, ``resi_connection`` (``1conv`` or ``3conv``) and the scale (the
    sub-pixel stages of the 64-feature head).

    ``split_size`` (L-SA's window) is read from the buffers the official files store:
    ``rpe_biases`` (``(2h - 1)(2w - 1)`` offsets) with ``relative_position_index`` (``(h * w,
    h * w)``) or a shift mask give ``h`` and ``w``; the parameters do not depend on it. A file
    with neither (srzoo's own state dicts) gets ``(8, 32)``, the window of every release; the
    order of the two sides cannot be read and the smaller is taken as the height, as released.
    ``qk_scale`` (the default) and ``img_range`` (1) cannot be read.

    Names: ``rgt-s`` for six residual groups, ``rgt`` otherwise (the same builder and
    converter; ``model_args`` carries the configuration).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an RGT.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    embed_dim, in_chans = shapes.dim("conv_first.weight"), shapes.dim("conv_first.weight", 1)
    n_groups = shapes.count(r"layers\.(\d+)\.blocks\.0\.norm1\.weight")
    depth = tuple(
        shapes.count(rf"layers\.{i}\.blocks\.(\d+)\.norm1\.weight") for i in range(n_groups)
    )
    halves = [
        shapes.dim(f"layers.{i}.blocks.0.attn.attns.0.pos.pos3.2.weight") for i in range(n_groups)
    ]
    heads = tuple(2 * n if n and embed_dim % (2 * n) == 0 else 2 * n + 1 for n in halves)
    hidden, split = shapes.dim(_BLOCK0 + "mlp.fc1.weight"), _split_size(shapes)
    second = next((i for i, d in enumerate(depth) if d >= 2), None)
    cr = shapes.dim(f"layers.{second}.blocks.1.attn.conv.weight") if second is not None else 0
    c_ratio = cr / embed_dim if cr else 0.5
    if cr and int(embed_dim * c_ratio) != cr:  # a ratio that floats round below cr
        c_ratio = (cr + 0.5) / embed_dim
    if (
        split is None
        or min((in_chans, n_groups, hidden, *depth, *halves)) < 1
        or embed_dim < 32
        or any(embed_dim % h or int(embed_dim * c_ratio) % h for h in heads)
    ):
        return None
    if shapes.has("layers.0.conv.weight"):
        resi = "1conv"
    elif shapes.has("layers.0.conv.0.weight", "layers.0.conv.4.weight"):
        resi = "3conv"
    else:
        return None
    num_feat = shapes.dim("conv_before_upsample.0.weight")
    scale = shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat)
    if not scale or num_feat != 64 or shapes.dim("conv_last.weight") != in_chans:
        return None
    ratio = hidden / embed_dim
    mlp_ratio = ratio if int(embed_dim * ratio) == hidden else (hidden + 0.5) / embed_dim
    args: dict[str, object] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": heads,
        "split_size": split,
        "mlp_ratio": mlp_ratio,
        "c_ratio": c_ratio,
        "qkv_bias": shapes.has(_BLOCK0 + "attn.qkv.bias"),
        "resi_connection": resi,
    }
    return Detected("rgt-s" if n_groups == 6 else "rgt", scale, args, "official")


register_detector("rgt", detect_rgt, layouts=_LAYOUTS)
