"""DAT: the dual aggregation transformer.

Paper: Chen, Zhang, Gu, Kong, Yang, Yu, "Dual Aggregation Transformer for Image
Super-Resolution", ICCV 2023, arXiv:2308.03364.

Parameter names follow zhengchen1999/DAT ``basicsr/archs/dat_arch.py`` (identical to spandrel's
DAT), so the official ``DAT*_x{2,3,4}.pth`` files load once the BasicSR ``params`` wrapper is
removed (which srzoo's reader does). The official files also hold tensors that the network
computes from its configuration (``rpe_biases``, ``relative_position_index`` and the shift masks
``attn_mask_0/1`` of a 64x64 input); :func:`convert_dat` drops them after checking that their
window matches the module's, since DAT-S and DAT-2 have the same parameter shapes and differ only
in the window.

DAT alternates two kinds of block. A spatial block splits its channels in two halves and runs
window self-attention over rectangular windows, ``split_size`` (height x width) on the first half
and the transposed window on the second; some blocks shift the windows by half a window, as Swin
does. A channel block attends across channels over the whole image. Both mix a depth-wise
convolution branch in through the adaptive interaction module and are followed by the spatial-gate
feed-forward network. The relative position bias of the windows is a small MLP over relative
coordinates (``DynamicPosBias``).

Unlike the upstream code, which builds the shift masks with index assignments on the CPU during
``forward``, everything here is tensor operations on the input's device and dtype: the masks, the
relative coordinates and the index tables are cached per shape, and the attention runs in
``F.scaled_dot_product_attention`` with the position bias (and shift mask) as its additive mask.

DAT declares no receptive-field radius (``receptive_field = None``): channel self-attention and
the channel interaction's global average pooling see the whole image.
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
    ReportedMetric,
    Shapes,
    StateDict,
    WeightSpec,
    register_detector,
    register_model,
    set5_set14,
    shuffle_factor,
)
from ._blocks import DIV2K_RGB_MEAN, image_forward
from ._transformer import (
    DynamicPosBias,
    ReconstructionHead,
    ResiConnection,
    ToTokens,
    drop_path,
    image_mean,
    init_transformer_weights,
    masked_window_attention,
    merge_heads,
    residual_conv,
    to_image,
    to_tokens,
)
from ._window import padded_window_order, relative_coords, relative_position_index, shift_mask

__all__ = [
    "DAT",
    "DATB",
    "SGFN",
    "AdaptiveChannelAttention",
    "AdaptiveSpatialAttention",
    "DynamicPosBias",
    "ResidualGroup",
    "SpatialAttention",
    "SpatialGate",
    "convert_dat",
    "detect_dat",
]


# --------------------------------------------------------------------------------------------
# Shape-only tensors, cached per shape, device and dtype
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------------------------


class SpatialAttention(nn.Module):
    """Self-attention in rectangular windows, with a dynamic relative position bias.

    Args:
        dim: Channels of this branch (half the block's).
        num_heads: Heads of this branch.
        window: Window height and width.
        branch: Which half of the block's channels this attention takes (0 or 1).
        qk_scale: Scale of the logits (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window: tuple[int, int],
        branch: int = 0,
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
        """The ``(heads, N, N)`` bias added to the logits of one window (``N = wh * ww``).

        Args:
            device: Device of the activations.
            dtype: Floating-point type of the activations.

        Returns:
            The bias, computed by the MLP from the cached relative offsets.
        """
        table = self.pos(relative_coords(self.window, device, dtype))  # (offsets, heads)
        index = relative_position_index(self.window, device)
        return table.t()[:, index]

    def forward(
        self, qkv: torch.Tensor, size: tuple[int, int], multiple: int, shifted: bool
    ) -> torch.Tensor:
        """Attend within windows.

        Args:
            qkv: ``(B, H*W + 1, 3, 2, C)`` queries, keys and values of both halves for the
                tokens of an ``H x W`` image in row-major order, then one token of zeros (the
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
        # One gather pads, shifts and partitions into windows; gathering both halves' channels
        # costs no more than first copying this half out of them: (B, windows * N, 3, C).
        tokens = qkv.index_select(1, gather)[..., self.branch, :]
        n = self.window[0] * self.window[1]
        # Views of the gathered tokens as (B * windows, heads, N, head_dim): SDPA takes the
        # strides as they are.
        head_dim = tokens.shape[-1] // self.num_heads
        q, k, v = tokens.view(b, -1, n, 3, self.num_heads, head_dim).unbind(3)
        q, k, v = (t.flatten(0, 1).transpose(1, 2) for t in (q, k, v))
        # A 4-D bias: SDPA's fused CPU kernel broadcasts it, a 3-D one sends it to the unfused
        # path.
        bias = self.position_bias(qkv.device, qkv.dtype)[None]
        if shifted:
            h, w = (side + -side % multiple for side in size)
            mask = shift_mask(h, w, self.window, shift, device=qkv.device, dtype=qkv.dtype)
            out = masked_window_attention(q, k, v, bias, mask, scale=self.scale)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        # (B * windows, heads, N, d) -> (B, windows * N, C), then back to the image's tokens
        # (shift undone, padding dropped) with the inverse gather.
        out = merge_heads(out).view(b, -1, tokens.shape[-1])
        return out.index_select(1, scatter)


class _Interaction(nn.Module):
    """The convolution branch and the adaptive interaction module (AIM) both attentions share.

    The attention output and a depth-wise convolution of the values gate each other: one side
    through a channel map (global average pool, two 1x1 convs), the other through a spatial map
    (two 1x1 convs to one channel).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.BatchNorm2d(dim), nn.GELU()
        )
        self.channel_interaction = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim // 8, 1),
            nn.BatchNorm2d(dim // 8),
            nn.GELU(),
            nn.Conv2d(dim // 8, dim, 1),
        )
        self.spatial_interaction = nn.Sequential(
            nn.Conv2d(dim, dim // 16, 1),
            nn.BatchNorm2d(dim // 16),
            nn.GELU(),
            nn.Conv2d(dim // 16, 1, 1),
        )


class AdaptiveSpatialAttention(_Interaction):
    """Spatial window self-attention in two halves, with AIM (the DSTB's attention).

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
        super().__init__(dim)
        self.shifted = shifted
        self.multiple = max(split_size)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        windows = (split_size, (split_size[1], split_size[0]))
        self.attns = nn.ModuleList(
            SpatialAttention(
                dim=dim // 2, num_heads=num_heads // 2, window=win, branch=i, qk_scale=qk_scale
            )
            for i, win in enumerate(windows)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w, c = x.shape[1:]
        qkv = self.qkv(x)
        # The convolution branch sees the values of the image as it is, not padded.
        conv_x = self.dwconv(to_image(qkv[..., 2 * c :]))
        # Upstream pads q, k and v (not the image) with zeros to a multiple of the larger window
        # side; padded tokens take part in the softmax with zero logits (plus bias). One zero
        # token after the image's stands for all of them in the gathers.
        tokens = torch.cat([qkv.flatten(1, 2), qkv.new_zeros(qkv.shape[0], 1, 3 * c)], dim=1)
        tokens = tokens.view(tokens.shape[0], -1, 3, 2, c // 2)
        attened = torch.cat(
            [attn(tokens, (h, w), self.multiple, self.shifted) for attn in self.attns], dim=-1
        ).view(-1, h, w, c)
        channel_map = self.channel_interaction(conv_x)  # (B, C, 1, 1)
        spatial_map = self.spatial_interaction(to_image(attened))  # (B, 1, H, W)
        attened = attened * torch.sigmoid(to_tokens(channel_map))
        conv_x = torch.sigmoid(spatial_map) * conv_x
        return self.proj(attened + to_tokens(conv_x))


class AdaptiveChannelAttention(_Interaction):
    """Channel self-attention over the whole image, with AIM (the DCTB's attention).

    Queries and keys are L2-normalised over the pixels; each head scales its logits by a learned
    temperature.

    Args:
        dim: Channels.
        num_heads: Heads.
        qkv_bias: Bias in the query/key/value projection.
    """

    def __init__(self, *, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__(dim)
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        qkv = self.qkv(x)
        conv_x = self.dwconv(to_image(qkv[..., 2 * c :]))
        # (B, H, W, 3C) -> 3 x (B, heads, head_dim, H*W): channels attend to channels.
        q, k, v = qkv.view(b, h * w, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 4, 1)
        # Upstream L2-normalises q and k over the pixels before the product; dividing the small
        # (head_dim x head_dim) product by the norms instead is the same cosine similarity
        # without two passes over the image. Plain matmuls rather than SDPA: the learned
        # per-head temperature scales the logits, which SDPA's scalar scale cannot express.
        eps = 1e-12  # F.normalize's
        q_norm = torch.linalg.vector_norm(q, dim=-1).clamp_min(eps)
        k_norm = torch.linalg.vector_norm(k, dim=-1).clamp_min(eps)
        logits = (q @ k.transpose(-2, -1)) / (q_norm[..., :, None] * k_norm[..., None, :])
        attn = (logits * self.temperature).softmax(dim=-1)
        attened = (attn @ v).permute(0, 3, 1, 2).reshape(b, h, w, c)
        channel_map = self.channel_interaction(to_image(attened))  # (B, C, 1, 1)
        spatial_map = self.spatial_interaction(conv_x)  # (B, 1, H, W)
        attened = attened * torch.sigmoid(to_tokens(spatial_map))
        conv_x = conv_x * torch.sigmoid(channel_map)
        return self.proj(attened + to_tokens(conv_x))


class SpatialGate(nn.Module):
    """Half the channels, normalised and filtered depth-wise, gate the other half.

    Args:
        dim: Channels of one half.
    """

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=-1)
        return x1 * to_tokens(self.conv(to_image(self.norm(x2))))


class SGFN(nn.Module):
    """Spatial-gate feed-forward network: linear, GELU, spatial gate, linear.

    Args:
        dim: Channels in and out.
        hidden: Hidden channels (even: the gate halves them).
    """

    def __init__(self, *, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.sg = SpatialGate(dim=hidden // 2)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.sg(self.act(self.fc1(x))))


class DATB(nn.Module):
    """Dual aggregation transformer block: pre-norm attention and pre-norm SGFN, with skips.

    Even blocks of a group attend spatially (DSTB), odd ones across channels (DCTB).

    Args:
        dim: Channels.
        num_heads: Attention heads.
        split_size: Window height and width of the spatial attention.
        expansion_factor: Hidden width of the SGFN relative to ``dim``.
        group_index: Index of the residual group (the shift pattern alternates with it).
        block_index: Index of the block in its group.
        qkv_bias: Bias in the query/key/value projections.
        qk_scale: Scale of the spatial attention's logits (default ``head_dim ** -0.5``).
        drop_path: Stochastic-depth rate of both branches while training.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        split_size: tuple[int, int],
        expansion_factor: float,
        group_index: int,
        block_index: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.drop_path = drop_path
        self.norm1 = nn.LayerNorm(dim)
        self.attn: nn.Module
        if block_index % 2 == 0:
            # Upstream's schedule: in even groups blocks 2, 6, 10, ... shift, in odd groups
            # blocks 0, 4, 8, ...; so consecutive spatial blocks alternate across the groups.
            shifted = (block_index % 4 == 2) if group_index % 2 == 0 else (block_index % 4 == 0)
            self.attn = AdaptiveSpatialAttention(
                dim=dim,
                num_heads=num_heads,
                split_size=split_size,
                shifted=shifted,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
            )
        else:
            self.attn = AdaptiveChannelAttention(dim=dim, num_heads=num_heads, qkv_bias=qkv_bias)
        self.ffn = SGFN(dim=dim, hidden=int(dim * expansion_factor))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path, self.training)
        return x + drop_path(self.ffn(self.norm2(x)), self.drop_path, self.training)


class ResidualGroup(nn.Module):
    """``depth`` DATBs and a convolution, with a skip over the group.

    Args:
        dim: Channels.
        depth: Blocks in the group.
        num_heads: Attention heads.
        split_size: Window height and width of the spatial attention.
        expansion_factor: Hidden width of the SGFNs relative to ``dim``.
        group_index: Index of the group in the network.
        resi_connection: ``"1conv"`` or ``"3conv"``, the convolution closing the group.
        qkv_bias: Bias in the query/key/value projections.
        qk_scale: Scale of the spatial attention's logits.
        drop_paths: Stochastic-depth rate of each block.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        split_size: tuple[int, int],
        expansion_factor: float,
        group_index: int,
        resi_connection: str,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        drop_paths: Sequence[float] = (),
    ) -> None:
        super().__init__()
        rates = list(drop_paths) or [0.0] * depth
        self.blocks = nn.ModuleList(
            DATB(
                dim=dim,
                num_heads=num_heads,
                split_size=split_size,
                expansion_factor=expansion_factor,
                group_index=group_index,
                block_index=i,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_path=rates[i],
            )
            for i in range(depth)
        )
        self.conv = residual_conv(dim, resi_connection, name="DAT")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x
        for block in self.blocks:
            x = block(x)
        return to_tokens(self.conv(to_image(x))) + res


Upsampling = Literal["pixelshuffle", "pixelshuffledirect"]


class DAT(ReconstructionHead):
    """Dual Aggregation Transformer.

    Takes RGB in [0, 1] at any size; the spatial attention pads its queries, keys and values
    with zeros to a multiple of the larger window side, as the original does, and the output
    is cropped back.

    Args:
        scale: Upscaling factor (3 or a power of two with ``"pixelshuffle"``; any with
            ``"pixelshuffledirect"``).
        in_chans: Image channels (3: the DIV2K mean is removed inside; else none is).
        embed_dim: Feature channels (at least 32, a multiple of every head count).
        depth: Blocks in each residual group.
        num_heads: Attention heads in each residual group (even: the spatial attention splits
            them between its two halves).
        split_size: Window height and width of the spatial attention's first half.
        expansion_factor: Hidden width of the SGFNs relative to ``embed_dim``.
        qkv_bias: Bias in the query/key/value projections.
        qk_scale: Scale of the spatial attention's logits (default ``head_dim ** -0.5``).
        img_range: Value range the network works in.
        resi_connection: ``"1conv"`` or ``"3conv"``, the convolution closing each group and
            the body.
        upsampler: ``"pixelshuffle"`` (conv, 64-feature sub-pixel stages, conv; classic SR) or
            ``"pixelshuffledirect"`` (one conv and shuffle; the lightweight model).
        drop_path_rate: Largest stochastic-depth rate, reached linearly by the last block; only
            active in training mode (the authors trained with 0.1).
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_chans: int = 3,
        embed_dim: int = 180,
        depth: Sequence[int] = (6, 6, 6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
        split_size: Sequence[int] = (8, 32),
        expansion_factor: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        img_range: float = 1.0,
        resi_connection: ResiConnection = "1conv",
        upsampler: Upsampling = "pixelshuffle",
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        split = _check_config(
            scale=scale,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            split_size=split_size,
            expansion_factor=expansion_factor,
            resi_connection=resi_connection,
            upsampler=upsampler,
        )
        self.scale = scale
        self.in_channels = in_chans
        self.out_channels = in_chans
        # Channel attention and global pooling in every block (see the module docstring).
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
                expansion_factor=expansion_factor,
                group_index=i,
                resi_connection=resi_connection,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_paths=rates[sum(depth[:i]) : sum(depth[: i + 1])],
            )
            for i, d in enumerate(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection, name="DAT")
        # The classic head's 64 features are fixed upstream (no num_feat argument).
        self.build_head(
            upsampler, dim=embed_dim, num_feat=64, out_chans=in_chans, scale=scale, name="DAT"
        )
        self.apply(init_transformer_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep features: the residual groups between two layer norms.

        Args:
            x: Shallow features ``(N, embed_dim, H, W)``.

        Returns:
            Deep features ``(N, embed_dim, H, W)`` (channels-last in memory).
        """
        t = self.before_RG(x)
        for layer in self.layers:
            t = layer(t)
        return to_image(self.norm(t))

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = None if self.rgb_mean is None else image_mean(self.rgb_mean, x.device, x.dtype)
        if mean is not None:
            x = x - mean
        x = self.conv_first(x * self.img_range)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.reconstruct(x) / self.img_range
        if mean is not None:
            x = x + mean
        return x.contiguous()


def _check_config(
    *,
    scale: int,
    embed_dim: int,
    depth: Sequence[int],
    num_heads: Sequence[int],
    split_size: Sequence[int],
    expansion_factor: float,
    resi_connection: str,
    upsampler: str,
) -> tuple[int, int]:
    """Refuse configurations the network cannot be built for; returns the window as a pair."""
    name = "DAT"
    if scale < 1:
        raise ArgumentError(f"{name}: scale must be a positive integer, got {scale}")
    if upsampler not in ("pixelshuffle", "pixelshuffledirect"):
        raise ArgumentError(
            f"{name}: upsampler must be 'pixelshuffle' or 'pixelshuffledirect', got {upsampler!r}"
        )
    if resi_connection not in ("1conv", "3conv"):
        raise ArgumentError(
            f"{name}: resi_connection must be '1conv' or '3conv', got {resi_connection!r}"
        )
    if len(split_size) != 2 or min(split_size) < 1:
        raise ArgumentError(
            f"{name}: split_size must be two positive window sides, got {tuple(split_size)}"
        )
    if not depth or len(depth) != len(num_heads) or min(depth) < 1:
        raise ArgumentError(
            f"{name}: depth and num_heads need one positive entry per residual group, got "
            f"depth={tuple(depth)} and num_heads={tuple(num_heads)}"
        )
    if embed_dim < 32:
        # The position-bias MLP is embed_dim // 32 wide and AIM squeezes to embed_dim // 16.
        raise ArgumentError(f"{name}: embed_dim must be at least 32, got {embed_dim}")
    for heads in num_heads:
        if heads < 2 or heads % 2 or embed_dim % heads:
            raise ArgumentError(
                f"{name}: each head count must be even (the spatial attention splits the heads "
                f"between two windows) and divide embed_dim ({embed_dim}), got {heads}"
            )
    if int(embed_dim * expansion_factor) % 2:
        raise ArgumentError(
            f"{name}: embed_dim * expansion_factor must be an even width (the spatial gate "
            f"halves it), got {int(embed_dim * expansion_factor)}"
        )
    return (int(split_size[0]), int(split_size[1]))


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------

# Tensors upstream stores as buffers but that srzoo computes from the configuration.
_COMPUTED = (".rpe_biases", ".relative_position_index", ".attn_mask_0", ".attn_mask_1")


def convert_dat(state: StateDict, module: nn.Module) -> StateDict:
    """Map a DAT state dict in the official (or spandrel's) layout to srzoo's keys.

    The keys are the same; the tensors the network computes (relative offsets and indices,
    the shift masks of a 64x64 input) are dropped. Their shapes name the window the weights
    were trained with, so a checkpoint for another window (DAT-S's 8x16 loaded as DAT-2's
    8x32: the parameters have the same shapes) is refused instead of loaded.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` etc.).
        module: The :class:`DAT` it is meant for.

    Returns:
        The state dict in srzoo's keys.

    Raises:
        IncompatibleWeightsError: The checkpoint's window differs from the module's.

    Example:
        >>> convert_dat(torch.load("DAT_x4.pth")["params"], srzoo.create("dat", 4))
    """
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    for key, value in state.items():
        if not key.endswith(".rpe_biases"):
            continue
        owner = key.removesuffix(".rpe_biases")
        try:
            attn = module.get_submodule(owner)
        except AttributeError:
            continue  # not a key of this module: strict loading reports it
        if isinstance(attn, SpatialAttention):
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
    title="Dual Aggregation Transformer for Image Super-Resolution",
    venue="ICCV",
    year=2023,
    arxiv="2308.03364",
)
_MAIN_TABLE = "DAT paper (arXiv:2308.03364), Table 2"
_SUPP_TABLE1 = "DAT supplementary material, Table 1 (figs/Table-2.png in zhengchen1999/DAT)"
_SUPP_TABLE2 = "DAT supplementary material, Table 2 (figs/Table-3.png in zhengchen1999/DAT)"
_DATA = "DF2K (DIV2K + Flickr2K), bicubic"
_CCRESTORATION = "https://github.com/TensoRaws/ccrestoration/releases/download/model_zoo"
_MODELHUB = "https://github.com/OpenModelDB/model-hub/releases/download/dat"
_DRIVE_ONLY = (
    "the authors publish {file} only on Google Drive / Baidu Disk; this is the byte-identical "
    "copy TensoRaws/ccrestoration re-hosts as {mirror} (sha256 pinned in its dat_config.py)"
)


def _reported(
    scale: int, set5: float, set14: float, urban100: float, source: str
) -> tuple[ReportedMetric, ...]:
    return (
        *set5_set14(scale, set5, set14, source=source),
        ReportedMetric(urban100, "Urban100", scale, "psnr_y", source=source),
    )


def _weight(
    scale: int,
    source: str,
    sha256: str | None,
    size: int | None,
    metrics: tuple[ReportedMetric, ...],
    note: str,
    tag: str = "default",
) -> WeightSpec:
    return WeightSpec(
        scale=scale,
        source=source,
        tag=tag,
        sha256=sha256,
        size=size,
        input_range="0-1",
        train_data=_DATA,
        license="Apache-2.0",
        metrics=metrics,
        sha256_note=note if size is not None else f"{note}; its byte size is not published",
    )


def _modelhub(scale: int, file: str, metrics: tuple[ReportedMetric, ...]) -> WeightSpec:
    # Other bytes than the official file: spandrel's flat re-save of the same weights.
    return _weight(
        scale,
        f"{_MODELHUB}/{file}",
        None,
        None,
        metrics,
        "OpenModelDB model-hub's re-save of the official weights through spandrel (a flat state "
        "dict, not the official {'params': ...} file, so other bytes); no sha256 or size is "
        "published. srzoo records the sha256 of the first download and checks the cached copy "
        "against it",
        tag="modelhub",
    )


# Per scale: (Set5, Set14, Urban100) Y-PSNR.
_DAT_S_PSNR = {2: (38.54, 34.60, 34.12), 3: (35.12, 31.04, 29.98), 4: (33.00, 29.20, 27.68)}
_DAT_PSNR = {2: (38.58, 34.81, 34.37), 3: (35.16, 31.11, 30.18), 4: (33.08, 29.23, 27.87)}
_DAT_2_PSNR = {2: (38.58, 34.78, 34.31), 3: (35.14, 31.06, 30.13), 4: (33.01, 29.21, 27.86)}
_DAT_LIGHT_PSNR = {2: (38.24, 34.01, 32.89), 3: (34.76, 30.63, 28.89), 4: (32.57, 28.87, 26.64)}

# (sha256, size) of the registered files.
_DAT_S_FILES: dict[int, tuple[str, int | None]] = {
    2: ("160330dd8a40b141e12713ca9bfde09e36a03c533b455965f157d023672cb794", None),
    3: ("d1446d3eb2fbaad472c6fd6c2ac03a3467265c5f93822a741b09838b80f18b62", None),
    4: ("2ba8a7cbe2fd88f3499d08d1b353fa17a98b815832f4426a7144a0ef9f3bfcf7", None),
}
_DAT_FILES: dict[int, tuple[str, int | None]] = {
    2: ("7760aa96e4ee77e29d4f89c3a4486200042e019461fdb8aa286f49aa00b89b51", 154_100_481),
    3: ("581973e02c06f90d4eb90acf743ec9604f56f3c2c6f9e1e2c2b38ded1f80d197", 154_839_041),
    4: ("391a6ce69899dff5ea3214557e9d585608254579217169faf3d4c353caff049e", 154_692_051),
}
_DAT_2_FILES: dict[int, tuple[str, int | None]] = {
    2: ("aea2c76996c2b3e7cb034380e07738608bd59cc34c667331df7269e4b670ac18", 139_741_569),
    3: ("e19fbb2e6addf5cecf90472937fabdd905853b79c4ef807b4dd184c30bb22a28", 140_480_129),
    4: ("05b5c17bb5d1939ec0ec6b9368368d82d8c45b80c134e370f798efec0aeec395", 140_333_139),
}
_DAT_LIGHT_FILES: dict[int, tuple[str, int | None]] = {
    2: ("3888bf067c1a3790adb64210e108690859f4900ffd158fe39a2cfe057ae8300c", None),
    3: ("dfb99deab865db05771080c73c50a06b67c9499c3a27ca64ab3729fa573d5cfe", None),
    4: ("e18223fc41500e72e6bd576f2a576eae0818f58fa8cc8646a2233f5faf7d0f74", None),
}


def _ccrestoration_weights(
    official: str,
    mirror: str,
    files: dict[int, tuple[str, int | None]],
    psnr: dict[int, tuple[float, float, float]],
    table: str,
) -> tuple[WeightSpec, ...]:
    return tuple(
        _weight(
            scale,
            f"{_CCRESTORATION}/{mirror.format(scale=scale)}",
            sha,
            size,
            _reported(scale, *psnr[scale], table),
            _DRIVE_ONLY.format(
                file=official.format(scale=scale), mirror=mirror.format(scale=scale)
            ),
        )
        for scale, (sha, size) in files.items()
    )


def _dat_weights() -> tuple[WeightSpec, ...]:
    hf = "https://huggingface.co/w-e-w/DAT/resolve/main/experiments/pretrained_models/DAT"
    return tuple(
        _weight(
            scale,
            f"{hf}/DAT_x{scale}.pth",
            sha,
            size,
            _reported(scale, *_DAT_PSNR[scale], _MAIN_TABLE),
            f"a byte-identical copy of the authors' DAT_x{scale}.pth (published on Google Drive "
            "only) on the Hugging Face Hub, hash-pinned by AUTOMATIC1111/stable-diffusion-webui "
            f"and equal to TensoRaws/ccrestoration's DAT_{scale}x.pth",
        )
        for scale, (sha, size) in _DAT_FILES.items()
    )


def _register(
    name: str,
    description: str,
    split_size: tuple[int, int],
    defaults: dict[str, object],
    weights: tuple[WeightSpec, ...],
) -> None:
    register_model(
        ModelSpec(
            name=name,
            family="dat",
            builder=DAT,
            scales=(2, 3, 4),
            paper=_PAPER,
            code_license="Apache-2.0",
            description=description,
            defaults={**defaults, "split_size": split_size},
            converter=convert_dat,
            weights=weights,
            # The spatial attention pads to a multiple of its larger window side.
            size_multiple=max(split_size),
        )
    )


_CLASSIC: dict[str, object] = {
    "embed_dim": 180,
    "depth": (6, 6, 6, 6, 6, 6),
    "num_heads": (6, 6, 6, 6, 6, 6),
    "resi_connection": "1conv",
    "upsampler": "pixelshuffle",
}

_register(
    "dat",
    "DAT: 6 residual groups x 6 blocks, 180 features, 8x32 windows, SGFN expansion 4",
    (8, 32),
    {**_CLASSIC, "expansion_factor": 4.0},
    (*_dat_weights(), _modelhub(4, "4x-DAT.pth", _reported(4, *_DAT_PSNR[4], _MAIN_TABLE))),
)
_register(
    "dat-s",
    "DAT-S: 6 residual groups x 6 blocks, 180 features, 8x16 windows, SGFN expansion 2",
    (8, 16),
    {**_CLASSIC, "expansion_factor": 2.0},
    _ccrestoration_weights(
        "DAT_S_x{scale}.pth", "DAT_S_{scale}x.pth", _DAT_S_FILES, _DAT_S_PSNR, _MAIN_TABLE
    )
    + tuple(
        _modelhub(s, f"{s}x-DAT_S.pth", _reported(s, *_DAT_S_PSNR[s], _MAIN_TABLE)) for s in (3, 4)
    ),
)
_register(
    "dat-2",
    "DAT-2: 6 residual groups x 6 blocks, 180 features, 8x32 windows, SGFN expansion 2",
    (8, 32),
    {**_CLASSIC, "expansion_factor": 2.0},
    (
        *_ccrestoration_weights(
            "DAT_2_x{scale}.pth", "DAT_2_{scale}x.pth", _DAT_2_FILES, _DAT_2_PSNR, _SUPP_TABLE1
        ),
        _modelhub(4, "4x-DAT_2.pth", _reported(4, *_DAT_2_PSNR[4], _SUPP_TABLE1)),
    ),
)
_register(
    "dat-light",
    "DAT-light: one residual group of 18 blocks, 60 features, 8x32 windows, one-step upsampler",
    (8, 32),
    {
        "embed_dim": 60,
        "depth": (18,),
        "num_heads": (6,),
        "expansion_factor": 2.0,
        "resi_connection": "3conv",
        "upsampler": "pixelshuffledirect",
    },
    _ccrestoration_weights(
        "DAT_light_x{scale}.pth",
        "DAT_light_{scale}x.pth",
        _DAT_LIGHT_FILES,
        _DAT_LIGHT_PSNR,
        _SUPP_TABLE2,
    ),
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "layers.0.blocks.0."
_SPATIAL0 = _BLOCK0 + "attn.attns.0."
# zhengchen1999/DAT's keys (spandrel's); srzoo's state dicts are these without the computed
# buffers.
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        "before_RG.1.weight",
        _BLOCK0 + "norm1.weight",
        _BLOCK0 + "attn.qkv.weight",
        _BLOCK0 + "attn.dwconv.0.weight",
        _BLOCK0 + "attn.channel_interaction.1.weight",
        _SPATIAL0 + "pos.pos_proj.weight",
        _BLOCK0 + "ffn.fc1.weight",
        _BLOCK0 + "ffn.sg.conv.weight",
        "norm.weight",
    ),
}
# The windows of the released models, (height, width); the first is the default.
_WINDOWS = ((8, 32), (8, 16))


def _split_size(shapes: Shapes) -> tuple[int, int] | None:
    # rpe_biases has (2h - 1)(2w - 1) rows, relative_position_index is (h * w, h * w) and the
    # shifted blocks' masks (windows, h * w, h * w): with the product and the area, h + w
    # follows, and h and w are the roots of t**2 - (h + w) t + h * w (the smaller taken as the
    # height: the two halves of the attention use the window and its transpose, so the
    # shapes are the same either way, and every release has h <= w).
    offsets = shapes.dim(_SPATIAL0 + "rpe_biases")
    area = shapes.dim(_SPATIAL0 + "relative_position_index") or next(
        (shapes.dim(k, 1) for k in shapes if k.endswith(".attn.attn_mask_0")), 0
    )
    if area and offsets:
        total, odd = divmod(4 * area + 1 - offsets, 2)
        root = math.isqrt(max(total * total - 4 * area, 0))
        h, w = (total - root) // 2, (total + root) // 2
        ok = not odd and h >= 1 and h * w == area and (2 * h - 1) * (2 * w - 1) == offsets
        return (h, w) if ok else None
    if area or offsets:  # one of the two: the released window that fits it, if any
        fits = [
            (h, w)
            for h, w in _WINDOWS
            if area in (0, h * w) and offsets in (0, (2 * h - 1) * (2 * w - 1))
        ]
        return fits[0] if fits else None
    return _WINDOWS[0]


def detect_dat(shapes: Shapes) -> Detected | None:
    """Recognise a DAT checkpoint (zhengchen1999/DAT keys) from keys and shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the blocks of each residual
    group (``depth``), the heads of each group (twice the outputs of the spatial attention's
    position-bias MLP: each half of the attention has half the heads), ``expansion_factor``
    (the SGFN's hidden width over ``embed_dim``), ``qkv_bias``, ``resi_connection`` (``1conv``
    or ``3conv``), the upsampler and the scale: ``conv_before_upsample`` is the classic
    ``pixelshuffle`` head (64 features, the scale from its sub-pixel stages), a lone
    ``upsample.0`` the lightweight ``pixelshuffledirect`` head (``in_chans * scale**2``
    outputs).

    ``split_size`` (the spatial attention's window) is read from the buffers the official
    files store: ``rpe_biases`` (``(2h - 1)(2w - 1)`` offsets) with ``relative_position_index``
    (``(h * w, h * w)``) or a shift mask give ``h`` and ``w``; the parameters do not depend on
    it. A file with neither (srzoo's own state dicts) gets ``(8, 32)``, the window of every
    release but DAT-S; the order of the two sides cannot be read (both halves of the attention
    use the window and its transpose) and the smaller is taken as the height, as released.
    ``qk_scale`` (the default) and ``img_range`` (1) cannot be read.

    Names: ``dat-light`` for the ``pixelshuffledirect`` head, ``dat-s`` for the ``(8, 16)``
    window, ``dat-2`` for an expansion factor below 4, ``dat`` otherwise (the same builder and
    converter; ``model_args`` carries the window).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a DAT.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    embed_dim, in_chans = shapes.dim("conv_first.weight"), shapes.dim("conv_first.weight", 1)
    n_groups = shapes.count(r"layers\.(\d+)\.blocks\.0\.norm1\.weight")
    depth = tuple(
        shapes.count(rf"layers\.{i}\.blocks\.(\d+)\.norm1\.weight") for i in range(n_groups)
    )
    heads = tuple(
        2 * shapes.dim(f"layers.{i}.blocks.0.attn.attns.0.pos.pos3.2.weight")
        for i in range(n_groups)
    )
    hidden, split = shapes.dim(_BLOCK0 + "ffn.fc1.weight"), _split_size(shapes)
    if (
        split is None
        or embed_dim < 32
        or min((in_chans, n_groups, hidden, *depth, *heads)) < 1
        or any(embed_dim % h for h in heads)
        or any(
            shapes.dim(f"layers.{i}.blocks.1.attn.temperature") not in (0, h)
            for i, h in enumerate(heads)
        )
    ):
        return None
    if shapes.has("layers.0.conv.weight"):
        resi = "1conv"
    elif shapes.has("layers.0.conv.0.weight", "layers.0.conv.4.weight"):
        resi = "3conv"
    else:
        return None
    if shapes.has("conv_before_upsample.0.weight"):
        upsampler = "pixelshuffle"
        num_feat = shapes.dim("conv_before_upsample.0.weight")
        scale = shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat)
        if num_feat != 64 or shapes.dim("conv_last.weight") != in_chans:
            return None
    else:
        upsampler = "pixelshuffledirect"
        scale = shuffle_factor(shapes.dim("upsample.0.weight"), in_chans)
        if shapes.dim("upsample.0.weight", 1) != embed_dim:
            return None
    if not scale:
        return None
    ratio = hidden / embed_dim
    expansion = ratio if int(embed_dim * ratio) == hidden else (hidden + 0.5) / embed_dim
    args: dict[str, object] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": heads,
        "split_size": split,
        "expansion_factor": expansion,
        "qkv_bias": shapes.has(_BLOCK0 + "attn.qkv.bias"),
        "resi_connection": resi,
        "upsampler": upsampler,
    }
    if upsampler == "pixelshuffledirect":
        name = "dat-light"
    elif split == (8, 16):
        name = "dat-s"
    else:
        name = "dat-2" if expansion < 4 else "dat"
    return Detected(name, scale, args, "official")


register_detector("dat", detect_dat, layouts=_LAYOUTS)
