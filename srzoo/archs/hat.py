"""HAT: the hybrid attention transformer.

Paper: Chen, Wang, Zhou, Qiao, Dong, "Activating More Pixels in Image Super-Resolution
Transformer", CVPR 2023, arXiv:2205.04437.

Parameter names follow XPixelGroup/HAT ``hat/archs/hat_arch.py`` (identical to spandrel's HAT),
so the authors' ``params_ema`` files load unchanged once srzoo's reader has unwrapped them. The
official files also store two index tables (``relative_position_index_SA`` and
``relative_position_index_OCA``) that follow from the window size alone; srzoo computes them on
the input's device instead, and :func:`convert_hat` checks and drops the stored copies.

The network: a 3x3 convolution; residual hybrid attention groups (RHAG), each a chain of hybrid
attention blocks (HAB: window self-attention, alternately on shifted windows, plus a convolutional
channel-attention branch scaled by ``conv_scale``, then an MLP), one overlapping cross-attention
block (OCAB: queries from a ``window``-sized window, keys and values from the enlarged window of
``window * (1 + overlap_ratio)`` around it) and a 3x3 convolution; BasicSR's pixel-shuffle head.

Variants: ``hat-s`` (144 features, compress ratio 24, squeeze factor 24), ``hat`` (180 features,
compress ratio 3, squeeze factor 30), ``hat-l`` (``hat`` with twelve groups instead of six) and
``real-hat-gan`` (``hat`` trained for real-world x4 upscaling).

The upstream module reduces its window to the training patch size (``img_size``, 64) when that is
smaller; every released configuration has a 16-pixel window, below 64, so srzoo has no
``img_size`` and always uses ``window_size``. Inputs are reflect-padded to a multiple of the
window and the output is cropped, as the authors' test code does.

HAT declares no receptive-field radius (``receptive_field = None``): every block's channel
attention averages its features over the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
)
from ._blocks import DIV2K_RGB_MEAN, conv3x3, image_forward
from ._transformer import (
    Mlp,
    PatchEmbed,
    ReconstructionHead,
    init_transformer_weights,
    masked_window_attention,
    merge_heads,
    to_image,
    to_tokens,
)
from ._window import (
    pad_to_multiple,
    relative_position_index,
    shape_cached,
    shift_mask,
    window_order,
)

__all__ = [
    "CAB",
    "HAB",
    "HAT",
    "OCAB",
    "RHAG",
    "AttenBlocks",
    "ChannelAttention",
    "Mlp",
    "PatchEmbed",
    "WindowAttention",
    "convert_hat",
    "detect_hat",
    "overlap_position_index",
    "window_order",
]


# --------------------------------------------------------------------------------------------
# Position indices
# --------------------------------------------------------------------------------------------


@shape_cached()
def _overlap_position_index(window: int, overlap: int, device: torch.device) -> torch.Tensor:
    ys = torch.arange(window, device=device).repeat_interleave(window)
    xs = torch.arange(window, device=device).repeat(window)
    eys = torch.arange(overlap, device=device).repeat_interleave(overlap)
    exs = torch.arange(overlap, device=device).repeat(overlap)
    # The official formula, offset included: it yields negative entries, which its tensor
    # indexing wraps around the table. The weights were trained with that wrap, so keep it.
    offset = window - overlap + 1
    dy = eys[None, :] - ys[:, None] + offset
    dx = exs[None, :] - xs[:, None] + offset
    size = window + overlap - 1
    return (dy * size + dx) % (size * size)


def overlap_position_index(window: int, overlap: int, device: torch.device) -> torch.Tensor:
    """The OCAB's ``(window**2, overlap**2)`` index into its relative-position bias table.

    Entry ``[i, j]`` names the offset of key ``j`` of the enlarged ``overlap x overlap`` window
    from query ``i`` of the ``window x window`` window, as the official
    ``relative_position_index_OCA`` buffer does (with its negative entries wrapped, as indexing
    wraps them there).

    Args:
        window: Side of the query window.
        overlap: Side of the enlarged key/value window.
        device: Where to build the table.

    Returns:
        A ``long`` tensor, cached per arguments outside ``torch.compile``.

    Example:
        >>> overlap_position_index(16, 24, torch.device("cpu")).shape
        torch.Size([256, 576])
    """
    return _overlap_position_index(window, overlap, device)


def _bias(table: torch.Tensor, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``table[index]`` as a contiguous ``(1, heads, queries, keys)`` additive attention mask.

    Four dimensions, because ``F.scaled_dot_product_attention``'s fused CPU kernel takes a mask
    with a batch dimension of one but falls back to a slow path for a three-dimensional one.
    """
    q, k = index.shape
    bias = table.t().index_select(1, index.reshape(-1))
    return bias.view(1, -1, q, k).to(dtype)


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class ChannelAttention(nn.Module):
    """RCAN's channel attention: global average pool, squeeze, excite, rescale.

    Args:
        num_feat: Feature channels.
        squeeze_factor: Squeeze ratio of the bottleneck.
    """

    def __init__(self, *, num_feat: int, squeeze_factor: int) -> None:
        super().__init__()
        hidden = num_feat // squeeze_factor
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class CAB(nn.Module):
    """Channel attention block: 3x3 compress, GELU, 3x3 expand, channel attention.

    Args:
        num_feat: Feature channels.
        compress_ratio: Channel reduction of the hidden convolution.
        squeeze_factor: Squeeze ratio of the channel attention.
    """

    def __init__(self, *, num_feat: int, compress_ratio: int, squeeze_factor: int) -> None:
        super().__init__()
        hidden = num_feat // compress_ratio
        self.cab = nn.Sequential(
            conv3x3(num_feat, hidden),
            nn.GELU(),
            conv3x3(hidden, num_feat),
            ChannelAttention(num_feat=num_feat, squeeze_factor=squeeze_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cab(x)


def _heads(x: torch.Tensor, parts: int, heads: int) -> tuple[torch.Tensor, ...]:
    """``(B, N, parts * C)`` -> ``parts`` views ``(B, heads, N, C // heads)`` (no copy)."""
    b, n, c = x.shape
    split = x.view(b, n, parts, heads, c // (parts * heads)).permute(2, 0, 3, 1, 4)
    return split.unbind(0)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, heads, N, d)`` -> ``(B, N, heads * d)``."""
    return merge_heads(x)


class WindowAttention(nn.Module):
    """Multi-head self-attention within windows, with a learned relative-position bias.

    Args:
        dim: Token channels.
        window_size: Window side.
        num_heads: Attention heads.
        qkv_bias: Give the query/key/value projection a bias.
        qk_scale: Logit scale (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        window_size: int,
        num_heads: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Attend within each window.

        Args:
            windows: ``(batch * num_windows, window**2, dim)`` tokens.
            mask: The shifted windows' ``(num_windows, N, N)`` additive mask, or ``None``.

        Returns:
            Tokens of the same shape.
        """
        q, k, v = _heads(self.qkv(windows), 3, self.num_heads)
        index = relative_position_index(self.window_size, windows.device)
        bias = _bias(self.relative_position_bias_table, index, q.dtype)
        out = masked_window_attention(q, k, v, bias, mask, scale=self.scale)
        return self.proj(_merge_heads(out))


class HAB(nn.Module):
    """Hybrid attention block: (shifted) window attention plus a scaled CAB, then an MLP.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side.
        shift_size: Cyclic shift of the windows (0 or ``window_size // 2``).
        compress_ratio: Channel reduction inside the CAB.
        squeeze_factor: Squeeze ratio of the CAB's channel attention.
        conv_scale: Weight of the CAB branch.
        mlp_ratio: Hidden width of the MLP relative to ``dim``.
        qkv_bias: Give the query/key/value projection a bias.
        qk_scale: Logit scale (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        compress_ratio: int,
        squeeze_factor: int,
        conv_scale: float,
        mlp_ratio: float,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ArgumentError(
                f"HAB: shift_size must be in [0, window_size), got {shift_size} for {window_size}"
            )
        self.window_size = window_size
        self.shift_size = shift_size
        self.conv_scale = conv_scale
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim=dim,
            window_size=window_size,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
        )
        self.conv_block = CAB(
            num_feat=dim, compress_ratio=compress_ratio, squeeze_factor=squeeze_factor
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens (``H``, ``W`` multiples of the window) -> the same shape."""
        b, h, w, c = x.shape
        y = self.norm1(x)
        # The CAB sees the normalised tokens as a channels-last image: no copy on the way in
        # or out.
        conv_x = to_tokens(self.conv_block(to_image(y)))
        ws, s = self.window_size, self.shift_size
        gather, scatter = window_order(h, w, ws, s, x.device)
        windows = y.reshape(b, h * w, c).index_select(1, gather).view(-1, ws * ws, c)
        mask = shift_mask(h, w, ws, s, device=x.device, dtype=x.dtype) if s else None
        attn = self.attn(windows, mask).view(b, h * w, c).index_select(1, scatter)
        x = torch.add(x + attn.view(b, h, w, c), conv_x, alpha=self.conv_scale)
        return x + self.mlp(self.norm2(x))


class OCAB(nn.Module):
    """Overlapping cross-attention block: window queries attend to an enlarged window.

    Keys and values come from the ``overlap x overlap`` window centred on each query window
    (``overlap = window_size + int(window_size * overlap_ratio)``), zero beyond the image, as
    the official ``nn.Unfold`` with zero padding gives them. Zero keys still take part in the
    softmax (with their position bias), so they are kept, not masked.

    Args:
        dim: Token channels.
        window_size: Side of the query windows.
        overlap_ratio: Enlargement of the key/value windows.
        num_heads: Attention heads.
        mlp_ratio: Hidden width of the MLP relative to ``dim``.
        qkv_bias: Give the query/key/value projection a bias.
        qk_scale: Logit scale (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        window_size: int,
        overlap_ratio: float,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.overlap_win_size = int(window_size * overlap_ratio) + window_size
        if (self.overlap_win_size - window_size) % 2:
            raise ArgumentError(
                f"OCAB: window_size * overlap_ratio must round down to an even number (the "
                f"enlarged window is centred), got window_size={window_size}, "
                f"overlap_ratio={overlap_ratio}"
            )
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((window_size + self.overlap_win_size - 1) ** 2, num_heads)
        )
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens (``H``, ``W`` multiples of the window) -> the same shape."""
        b, h, w, c = x.shape
        ws, ow = self.window_size, self.overlap_win_size
        y = self.norm1(x)
        weight, bias = self.qkv.weight, self.qkv.bias
        # Queries in window order, keys and values in image order: the joint projection split
        # by rows, so neither half is sliced out of the other's output.
        gather, scatter = window_order(h, w, ws, 0, x.device)
        windows = y.reshape(b, h * w, c).index_select(1, gather).view(-1, ws * ws, c)
        q = F.linear(windows, weight[:c], None if bias is None else bias[:c])
        kv = F.linear(y, weight[c:], None if bias is None else bias[c:])
        # Zero padding then strided views: the official nn.Unfold's windows, with one copy.
        pad = (ow - ws) // 2
        kv = F.pad(kv, (0, 0, pad, pad, pad, pad))
        kv = kv.unfold(1, ow, ws).unfold(2, ow, ws)  # (B, nh, nw, 2C, ow, ow)
        kv = kv.permute(0, 1, 2, 4, 5, 3).reshape(-1, ow * ow, 2 * c)
        (q,) = _heads(q, 1, self.num_heads)
        k, v = _heads(kv, 2, self.num_heads)
        index = overlap_position_index(ws, ow, x.device)
        attn_bias = _bias(self.relative_position_bias_table, index, q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, scale=self.scale)
        out = self.proj(_merge_heads(out)).view(b, h * w, c).index_select(1, scatter)
        x = x + out.view(b, h, w, c)
        return x + self.mlp(self.norm2(x))


class AttenBlocks(nn.Module):
    """The attention part of one RHAG: HABs (every second one shifted) and one OCAB.

    Args:
        dim: Token channels.
        depth: Number of HABs.
        num_heads: Attention heads.
        window_size: Window side.
        compress_ratio: Channel reduction inside the CABs.
        squeeze_factor: Squeeze ratio of the CABs' channel attention.
        conv_scale: Weight of the CAB branches.
        overlap_ratio: Enlargement of the OCAB's key/value windows.
        mlp_ratio: Hidden width of the MLPs relative to ``dim``.
        qkv_bias: Give the query/key/value projections a bias.
        qk_scale: Logit scale (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        compress_ratio: int,
        squeeze_factor: int,
        conv_scale: float,
        overlap_ratio: float,
        mlp_ratio: float,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            HAB(
                dim=dim,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                compress_ratio=compress_ratio,
                squeeze_factor=squeeze_factor,
                conv_scale=conv_scale,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
            )
            for i in range(depth)
        )
        self.overlap_attn = OCAB(
            dim=dim,
            window_size=window_size,
            overlap_ratio=overlap_ratio,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.overlap_attn(x)


class RHAG(nn.Module):
    """Residual hybrid attention group: attention blocks, a 3x3 convolution, a skip.

    Args:
        dim: Token channels.
        resi_connection: ``"1conv"`` (a 3x3 convolution after the blocks) or ``"identity"``.
        **blocks: The arguments of :class:`AttenBlocks`.
    """

    def __init__(self, *, dim: int, resi_connection: str, **blocks: object) -> None:
        super().__init__()
        self.residual_group = AttenBlocks(dim=dim, **blocks)  # type: ignore[arg-type]
        self.conv: nn.Module = conv3x3(dim, dim) if resi_connection == "1conv" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        return to_tokens(self.conv(to_image(self.residual_group(x)))) + x


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class HAT(ReconstructionHead):
    """Hybrid Attention Transformer for image super-resolution.

    Takes RGB in [0, 1]; the DIV2K mean is removed and restored inside, as in the original.
    Any input size: the image is reflect-padded to a multiple of ``window_size`` and the output
    cropped.

    Args:
        scale: Upscaling factor (3 or a power of two; 2, 3 and 4 were released).
        in_chans: Image channels.
        embed_dim: Token channels.
        depths: HABs in each residual group.
        num_heads: Attention heads in each residual group.
        window_size: Attention window side.
        compress_ratio: Channel reduction inside the CABs.
        squeeze_factor: Squeeze ratio of the CABs' channel attention.
        conv_scale: Weight of the CAB branches.
        overlap_ratio: Enlargement of the OCABs' key/value windows.
        mlp_ratio: Hidden width of the MLPs relative to ``embed_dim``.
        qkv_bias: Give the query/key/value projections a bias.
        qk_scale: Logit scale (default ``head_dim ** -0.5``).
        patch_norm: Layer norm after the first convolution.
        img_range: Value range the network works in.
        resi_connection: ``"1conv"`` or ``"identity"`` after each group and the body.
        num_feat: Channels of the upsampler.

    Example:
        >>> net = HAT(scale=4, embed_dim=144, compress_ratio=24, squeeze_factor=24)  # HAT-S
    """

    mean: torch.Tensor

    def __init__(
        self,
        *,
        scale: int = 4,
        in_chans: int = 3,
        embed_dim: int = 180,
        depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
        window_size: int = 16,
        compress_ratio: int = 3,
        squeeze_factor: int = 30,
        conv_scale: float = 0.01,
        overlap_ratio: float = 0.5,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        patch_norm: bool = True,
        img_range: float = 1.0,
        resi_connection: str = "1conv",
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads) or not depths:
            raise ArgumentError(
                f"HAT: depths and num_heads need one entry per group, got {tuple(depths)} and "
                f"{tuple(num_heads)}"
            )
        if any(embed_dim % h for h in num_heads):
            raise ArgumentError(
                f"HAT: embed_dim ({embed_dim}) must be a multiple of every num_heads "
                f"{tuple(num_heads)}"
            )
        if embed_dim // compress_ratio < 1 or embed_dim // squeeze_factor < 1:
            raise ArgumentError(
                f"HAT: embed_dim ({embed_dim}) leaves no channels after compress_ratio "
                f"({compress_ratio}) or squeeze_factor ({squeeze_factor})"
            )
        if window_size < 2:
            raise ArgumentError(f"HAT: window_size must be at least 2, got {window_size}")
        if resi_connection not in ("1conv", "identity"):
            raise ArgumentError(
                f"HAT: resi_connection must be '1conv' or 'identity', got {resi_connection!r}"
            )
        self.scale = scale
        self.in_channels = in_chans
        self.out_channels = in_chans
        # Channel attention in every block averages over the whole image.
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.overlap_win_size = int(window_size * overlap_ratio) + window_size
        self.img_range = img_range
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        self.conv_first = conv3x3(in_chans, embed_dim)
        self.patch_embed = PatchEmbed(dim=embed_dim, norm=patch_norm)
        self.layers = nn.ModuleList(
            RHAG(
                dim=embed_dim,
                resi_connection=resi_connection,
                depth=depth,
                num_heads=heads,
                window_size=window_size,
                compress_ratio=compress_ratio,
                squeeze_factor=squeeze_factor,
                conv_scale=conv_scale,
                overlap_ratio=overlap_ratio,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
            )
            for depth, heads in zip(depths, num_heads, strict=True)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body: nn.Module = (
            conv3x3(embed_dim, embed_dim) if resi_connection == "1conv" else nn.Identity()
        )
        self.build_head(
            "pixelshuffle",
            dim=embed_dim,
            num_feat=num_feat,
            out_chans=in_chans,
            scale=scale,
            name="HAT",
        )
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        # The official initialisation: truncated normal (std 0.02) for linear layers and bias
        # tables, unit layer norms; convolutions keep PyTorch's default.
        for m in self.modules():
            init_transformer_weights(m)
            if isinstance(m, (WindowAttention, OCAB)):
                nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep features of ``(N, embed_dim, H, W)`` shallow ones (``H``, ``W`` multiples
        of the window), before ``conv_after_body``.

        Args:
            x: Output of ``conv_first``.

        Returns:
            ``(N, embed_dim, H, W)``.
        """
        # The trunk works on (N, H, W, C) tokens; the permutes are views.
        t = self.patch_embed(to_tokens(x))
        for layer in self.layers:
            t = layer(t)
        return to_image(self.norm(t))

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        mean = self.mean.to(x.dtype)
        x = pad_to_multiple((x - mean) * self.img_range, self.window_size)
        x = self.conv_first(x)
        x = self.conv_after_body(self.features(x)) + x
        x = self.reconstruct(x)
        x = x / self.img_range + mean
        return x[:, :, : h * self.scale, : w * self.scale].contiguous()


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------

_INDEX_KEYS = ("relative_position_index_SA", "relative_position_index_OCA")


def convert_hat(state: StateDict, module: nn.Module) -> StateDict:
    """Drop the derived tensors of an official (or spandrel) HAT state dict.

    The official files store ``relative_position_index_SA`` / ``relative_position_index_OCA``
    (and some Swin-style files ``attn_mask``): tables that follow from the window size, which
    srzoo computes on the input's device. Stored tables are checked against srzoo's, so a file
    of another window size fails with a clear message rather than a wrong network.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params_ema`` etc.).
        module: The :class:`HAT` they are meant for.

    Returns:
        The state dict without the derived tensors.

    Raises:
        IncompatibleWeightsError: A stored index table differs from the module's.

    Example:
        >>> convert_hat(torch.load("HAT_SRx4.pth")["params_ema"], net)
    """
    out = {k: v for k, v in state.items() if k not in _INDEX_KEYS and not k.endswith("attn_mask")}
    if not isinstance(module, HAT):
        return out
    ws, ow = module.window_size, module.overlap_win_size
    expected = {
        "relative_position_index_SA": relative_position_index(ws, torch.device("cpu")),
        "relative_position_index_OCA": overlap_position_index(ws, ow, torch.device("cpu")),
    }
    # The official OCA table holds the unwrapped (negative) entries.
    size = (ws + ow - 1) ** 2
    bad = []
    for key, table in expected.items():
        stored = state.get(key)
        if stored is None or stored.is_meta:
            continue
        if stored.shape != table.shape or not torch.equal(stored.long().cpu() % size, table % size):
            bad.append((key, tuple(table.shape), tuple(stored.shape)))
    if bad:
        raise IncompatibleWeightsError(type(module).__name__, mismatched=bad)
    return out


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title="Activating More Pixels in Image Super-Resolution Transformer",
    venue="CVPR",
    year=2023,
    arxiv="2205.04437",
)
_TABLE = "Chen et al. 2023 (arXiv:2205.04437), Table 6 (bicubic SR, Y-PSNR)"
_RELEASE = "https://github.com/TensoRaws/ccrestoration/releases/download/model_zoo"
_MODELHUB = "https://github.com/OpenModelDB/model-hub/releases/download/hat"
_MIRROR_NOTE = (
    "the authors publish {file} only in a Google Drive / Baidu folder, which a plain HTTP "
    "client cannot fetch; TensoRaws/ccrestoration re-hosts the same bytes renamed and pins this "
    "sha256 in ccrestoration/config/hat_config.py{size}"
)
_MODELHUB_NOTE = (
    "OpenModelDB/model-hub's re-save of the official weights (a flat torch.save of spandrel's "
    "state dict, index tables included): other bytes than the authors' params_ema file, and no "
    "checksum or size is published. srzoo records the sha256 of the first download and checks "
    "the cached copy against it"
)

# Set5 / Set14 Y-PSNR the authors report, where srzoo could confirm the number: the README's
# x4 table (no ImageNet pre-training) and the paper's Table 6 as quoted with SSIM in the
# authors' issue tracker (HAT x2) and by DRCT's README (HAT-L x4). The other rows of Table 6
# (HAT-S x2/x3, HAT x3, HAT with ImageNet pre-training, HAT-L x2/x3) are left out until read
# from the paper itself.
_README = "XPixelGroup/HAT README, 'Benchmark results on SRx4 without ImageNet pretraining'"
_REPORTED: dict[str, dict[int, tuple[float, float, str]]] = {
    "hat-s": {4: (32.92, 29.15, _README)},
    "hat": {2: (38.63, 34.86, _TABLE), 4: (33.04, 29.23, _README)},
    "hat-l": {4: (33.30, 29.47, _TABLE)},
}


def _metrics(reported: str | None, scale: int) -> tuple[ReportedMetric, ...]:
    facts = _REPORTED.get(reported or "", {}).get(scale)
    if facts is None:
        return ()
    set5, set14, source = facts
    return set5_set14(scale, set5, set14, source=source)


def _official(
    *,
    scale: int,
    file: str,
    official: str,
    sha256: str,
    size: int | None,
    reported: str | None,
    train_data: str,
    tag: str = "default",
) -> WeightSpec:
    return WeightSpec(
        scale=scale,
        source=f"{_RELEASE}/{file}",
        tag=tag,
        sha256=sha256,
        size=size,
        input_range="0-1 (RGB, DIV2K mean shift inside the network)",
        train_data=train_data,
        license="Apache-2.0",
        metrics=_metrics(reported, scale),
        sha256_note=_MIRROR_NOTE.format(
            file=official, size="" if size else " (its size is not recorded there)"
        ),
    )


def _modelhub(scale: int, file: str, reported: str, train_data: str) -> WeightSpec:
    return WeightSpec(
        scale=scale,
        source=f"{_MODELHUB}/{file}",
        tag="modelhub",
        sha256=None,
        input_range="0-1 (RGB, DIV2K mean shift inside the network)",
        train_data=train_data,
        license="Apache-2.0",
        metrics=_metrics(reported, scale),
        sha256_note=_MODELHUB_NOTE,
    )


_DF2K = "DF2K (DIV2K + Flickr2K), bicubic x{}"
_IMAGENET = "ImageNet pre-training, then DF2K (DIV2K + Flickr2K), bicubic x{}"

_HAT_S_WEIGHTS = (
    *(
        _official(
            scale=s,
            file=f"HAT_S_{s}x.pth",
            official=f"HAT-S_SRx{s}.pth",
            sha256=sha,
            size=size,
            reported="hat-s",
            train_data=_DF2K.format(s),
        )
        for s, sha, size in (
            (2, "3e249a901c2aed6b82548875e21847ef6c015a40c814237a7a0abb10c69d5ddf", None),
            (3, "3733345caeb2b6cb0a7514d634b143f318e2441faf32316195a47e4cda67669e", None),
            (4, "a92f81bd2c0c1aaa371a6e4d6cac69e749fde2e36196885ee47a4a3667542c9a", 81_089_561),
        )
    ),
    *(_modelhub(s, f"{s}x-HAT-S_SR.pth", "hat-s", _DF2K.format(s)) for s in (2, 3, 4)),
)

_HAT_WEIGHTS = (
    *(
        _official(
            scale=s,
            file=f"HAT_{s}x.pth",
            official=f"HAT_SRx{s}.pth",
            sha256=sha,
            size=size,
            reported="hat",
            train_data=_DF2K.format(s),
        )
        for s, sha, size in (
            (2, "35e9409849016ab2bfc0c549639ea4f1d4d5b2bdd75f856a925e124dd05670d0", 84_546_053),
            (3, "453c90b94d494d041c8bff2d222987af311f07b4a09b4dafbd9ab6492f15206c", 85_284_613),
            (4, "02dabea478aa5902a7170ad89350124e691bd89c91356f24b3267022622dc030", 85_137_601),
        )
    ),
    *(
        _official(
            scale=s,
            file=f"HAT_ImageNet_pretrain_{s}x.pth",
            official=f"HAT_SRx{s}_ImageNet-pretrain.pth",
            sha256=sha,
            size=size,
            reported="hat-imagenet",
            train_data=_IMAGENET.format(s),
            tag="imagenet",
        )
        for s, sha, size in (
            (2, "82ebd911263bcc886fbef46b30cf97b92a932a27a3cba30163d4577afb09b9d7", None),
            (3, "8469db903d464497f94419587054c9e83dff994edc409d563ab8f5a503767be8", None),
            (4, "4ee053c42461187846dc0e93aa5abd34591c0725a8e044a59000e92ee215e833", 85_137_601),
        )
    ),
    *(_modelhub(s, f"{s}x-HAT_SR.pth", "hat", _DF2K.format(s)) for s in (3, 4)),
)

# HAT-L was released only with ImageNet pre-training (the paper's HAT-L row).
_HAT_L_WEIGHTS = (
    *(
        _official(
            scale=s,
            file=f"HAT_L_ImageNet_pretrain_{s}x.pth",
            official=f"HAT-L_SRx{s}_ImageNet-pretrain.pth",
            sha256=sha,
            size=size,
            reported="hat-l",
            train_data=_IMAGENET.format(s),
            tag="imagenet",
        )
        for s, sha, size in (
            (2, "2818c7ca8d72ec4cc5f31c93203d55252a662dd35cda34ce1a69661f97dcd38f", None),
            (3, "78af181bedf1e805fd7517d3738bc5824f7ebdc477fc9f757b708bcf49ad4e3d", None),
            (4, "5992bd38522f2b8faf11ea4bd8ee08de92465bb66892166576999afc36d60043", 165_774_123),
        )
    ),
    _modelhub(4, "4x-HAT-L_SR_ImageNet-pretrain.pth", "hat-l", _IMAGENET.format(4)),
)

_REAL = "real-world degradations synthesised as in Real-ESRGAN; GAN fine-tuning of an L1 model"
_REAL_WEIGHTS = tuple(
    _official(
        scale=4,
        file=file,
        official=official,
        sha256=sha,
        size=170_277_017,
        reported=None,
        train_data=_REAL,
        tag=tag,
    )
    for tag, file, official, sha in (
        (
            "default",
            "HAT_Real_GAN_4x.pth",
            "Real_HAT_GAN_SRx4.pth",
            "f5b1e3bbbb05147ca2beefcc715279cb647d7976cbda67d62ea7e6e20d5ffcc7",
        ),
        (
            "sharper",
            "HAT_Real_GAN_sharper_4x.pth",
            "Real_HAT_GAN_sharper.pth",
            "5800b67136006eb8cab3b4ed7c8d73b6a195bb18e6cc709b674f9aa069c00271",
        ),
    )
)

_HAT_DEFAULTS = {
    "embed_dim": 180,
    "depths": (6,) * 6,
    "num_heads": (6,) * 6,
    "window_size": 16,
    "compress_ratio": 3,
    "squeeze_factor": 30,
    "conv_scale": 0.01,
    "overlap_ratio": 0.5,
    "mlp_ratio": 2.0,
}

for _name, _description, _defaults, _task, _scales, _weights in (
    (
        "hat-s",
        "HAT-S: 6 groups x 6 hybrid attention blocks, 144 features, window 16",
        {**_HAT_DEFAULTS, "embed_dim": 144, "compress_ratio": 24, "squeeze_factor": 24},
        "psnr",
        (2, 3, 4),
        _HAT_S_WEIGHTS,
    ),
    (
        "hat",
        "HAT: 6 groups x 6 hybrid attention blocks, 180 features, window 16",
        _HAT_DEFAULTS,
        "psnr",
        (2, 3, 4),
        _HAT_WEIGHTS,
    ),
    (
        "hat-l",
        "HAT-L: 12 groups x 6 hybrid attention blocks, 180 features, window 16",
        {**_HAT_DEFAULTS, "depths": (6,) * 12, "num_heads": (6,) * 12},
        "psnr",
        (2, 3, 4),
        _HAT_L_WEIGHTS,
    ),
    (
        "real-hat-gan",
        "Real-HAT-GAN: HAT for real-world x4 upscaling (GAN-trained)",
        _HAT_DEFAULTS,
        "real-world",
        # Released at x4 only; the architecture builds at the others (random weights).
        (2, 3, 4),
        _REAL_WEIGHTS,
    ),
):
    register_model(
        ModelSpec(
            name=_name,
            family="hat",
            builder=HAT,
            scales=_scales,
            paper=_PAPER,
            code_license="Apache-2.0",
            description=_description,
            task=_task,  # type: ignore[arg-type]
            weights=_weights,
            converter=convert_hat,
            defaults=_defaults,
            size_multiple=16,
            default_scale=4,
        )
    )


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "layers.0.residual_group.blocks.0."
_OCAB0 = "layers.0.residual_group.overlap_attn."
# XPixelGroup/HAT's keys (spandrel's, OpenModelDB's re-saves); srzoo's state dicts are these
# without the index tables.
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        _BLOCK0 + "attn.relative_position_bias_table",
        _BLOCK0 + "attn.qkv.weight",
        _BLOCK0 + "conv_block.cab.0.weight",
        _BLOCK0 + "conv_block.cab.3.attention.1.weight",
        _BLOCK0 + "mlp.fc1.weight",
        _OCAB0 + "relative_position_bias_table",
        _OCAB0 + "qkv.weight",
        "norm.weight",
        "conv_before_upsample.0.weight",
        "conv_last.weight",
    ),
}


def _odd_side(rows: int) -> int:
    # The side of a square (2n - 1) x (2n - 1) table of ``rows`` entries, or 0.
    side = math.isqrt(rows)
    return side if side * side == rows and side % 2 else 0


def _divisor(total: int, part: int) -> int:
    # The ratio r with total // r == part (the builders' integer division), or 0.
    if part < 1:
        return 0
    ratio = total // part
    return ratio if ratio >= 1 and total // ratio == part else 0


def detect_hat(shapes: Shapes) -> Detected | None:
    """Recognise a HAT checkpoint (XPixelGroup/HAT keys) from keys and shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the hybrid attention blocks of
    each residual group (``depths``), the heads of each group (the last dimension of its
    window-attention bias table), ``window_size`` (that table has ``(2 * window - 1) ** 2``
    rows), ``overlap_ratio`` (the overlapping cross-attention's table has
    ``(window + overlap_window - 1) ** 2`` rows, ``overlap_window = int(window * ratio) +
    window``), ``compress_ratio`` (``embed_dim`` over the CAB's first convolution) and
    ``squeeze_factor`` (``embed_dim`` over its channel attention's squeeze), ``mlp_ratio``,
    ``qkv_bias``, ``patch_norm``, ``resi_connection`` (a convolution closing each group,
    ``1conv``, or none, ``identity``), ``num_feat`` and the scale from the sub-pixel stages.

    What cannot be read: ``conv_scale`` (the CAB branch's weight, a constant: 0.01, every
    release's), ``qk_scale`` (the default ``head_dim ** -0.5``) and ``img_range`` (1).

    Names: ``hat-l`` for more than six groups, ``hat-s`` for fewer than 180 features, ``hat``
    otherwise. ``real-hat-gan`` has HAT's tensors exactly and is never the answer: load such a
    file as ``hat`` (the same builder and converter). SwinIR's keys are a subset of HAT's; the
    CAB (``conv_block``) and the overlapping attention (``overlap_attn``) are HAT's alone.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a HAT.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    embed_dim, in_chans = shapes.dim("conv_first.weight"), shapes.dim("conv_first.weight", 1)
    n_groups = shapes.count(r"layers\.(\d+)\.residual_group\.overlap_attn\.qkv\.weight")
    depths = tuple(
        shapes.count(rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.norm1\.weight")
        for i in range(n_groups)
    )
    tables = [
        f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"
        for i in range(n_groups)
    ]
    heads = tuple(shapes.dim(t, 1) for t in tables)
    window = (_odd_side(shapes.dim(tables[0])) + 1) // 2 if tables else 0
    oca_side = math.isqrt(shapes.dim(_OCAB0 + "relative_position_bias_table"))
    overlap_window = oca_side - window + 1
    overlap_ratio = (overlap_window - window) / window if window else 0.0
    compress = _divisor(embed_dim, shapes.dim(_BLOCK0 + "conv_block.cab.0.weight"))
    squeeze = _divisor(embed_dim, shapes.dim(_BLOCK0 + "conv_block.cab.3.attention.1.weight"))
    hidden, num_feat = (
        shapes.dim(_BLOCK0 + "mlp.fc1.weight"),
        shapes.dim("conv_before_upsample.0.weight"),
    )
    scale = shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat)
    if (
        min(
            (
                embed_dim,
                in_chans,
                n_groups,
                hidden,
                window,
                compress,
                squeeze,
                scale,
                *depths,
                *heads,
            )
        )
        < 1
        or window < 2
        or any(embed_dim % h for h in heads)
        or oca_side * oca_side != shapes.dim(_OCAB0 + "relative_position_bias_table")
        or overlap_window < window
        or int(window * overlap_ratio) + window != overlap_window
        or shapes.dim("conv_last.weight") != in_chans
    ):
        return None
    has_conv = shapes.has("layers.0.conv.weight")
    if has_conv != shapes.has("conv_after_body.weight"):
        return None
    ratio = hidden / embed_dim
    args: dict[str, object] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads": heads,
        "window_size": window,
        "compress_ratio": compress,
        "squeeze_factor": squeeze,
        "conv_scale": 0.01,
        "overlap_ratio": overlap_ratio,
        # hidden == int(embed_dim * mlp_ratio): one just above the quotient when int() rounded.
        "mlp_ratio": ratio if int(embed_dim * ratio) == hidden else (hidden + 0.5) / embed_dim,
        "qkv_bias": shapes.has(_BLOCK0 + "attn.qkv.bias"),
        "patch_norm": shapes.has("patch_embed.norm.weight"),
        "resi_connection": "1conv" if has_conv else "identity",
        "num_feat": num_feat,
    }
    name = "hat-l" if n_groups > 6 else "hat-s" if embed_dim < 180 else "hat"
    return Detected(name, scale, args, "official")


register_detector("hat", detect_hat, layouts=_LAYOUTS)
