"""Swin2SR: SwinV2 transformer blocks for classical, lightweight, real-world and compressed SR.

Paper: Conde, Choi, Burchi, Timofte, "Swin2SR: SwinV2 Transformer for Compressed Image
Super-Resolution and Restoration", ECCV Workshops 2022, arXiv:2209.11345.

Parameter names follow mv-lab/swin2sr ``models/network_swin2sr.py`` (identical to spandrel's
Swin2SR), so the authors' ``Swin2SR_*.pth`` files load unchanged. Those files also hold tables
that follow from the configuration alone (``attn.relative_position_index``,
``attn.relative_coords_table`` and the shifted blocks' ``attn_mask`` for the training patch
size); srzoo computes them on the input's device and dtype, cached per shape, and
:func:`convert_swin2sr` drops them on load. The Hugging Face ``transformers`` layout
(``Swin2SRForImageSuperResolution``, the ``caidas/swin2SR-*`` repositories: ``swin2sr.*`` keys,
separate query / key / value projections, ``upsample.*`` heads) is converted as well.

The differences from SwinIR are SwinV2's: scaled cosine attention with a learnable per-head
temperature (``logit_scale``), a continuous position bias produced by a small MLP (``cpb_mlp``)
from log-spaced relative coordinates, and post-normalisation (the layer norms follow the
attention and the MLP inside their residual branches).

Four upsamplers are registered, as the authors released them: ``"pixelshuffle"`` (classical SR),
``"pixelshuffledirect"`` (lightweight), ``"nearest+conv"`` (real-world) and
``"pixelshuffle_aux"`` (compressed input). The last one also predicts a low-resolution auxiliary
image, used by a training loss; the module returns only the super-resolved image. Its bicubic
skip enlarges the padded input to the padded output size and is cropped with the rest, which is
what the authors' test script computes (it pads the image to the window multiple itself before
calling the network); the network's own padding path in the upstream code instead squeezes the
padded input into the unpadded output size, misaligning that skip by the padding.

Swin2SR declares no receptive-field radius (``receptive_field = None``): shifted windows chain
attention across the whole image, and the windows depend on the image size through the padding.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    ReportedMetric,
    Shapes,
    StateDict,
    Task,
    WeightSpec,
    register_detector,
    register_model,
    set5_set14,
    shuffle_factor,
)
from ._blocks import DIV2K_RGB_MEAN, Upsampler, image_forward, pixel_shuffle_head, shuffle_factors
from ._transformer import Mlp, merge_heads, residual_conv, to_image, to_tokens
from ._window import (
    pad_to_multiple,
    relative_position_index,
    shape_cached,
    shift_mask,
    window_partition,
)

__all__ = [
    "RSTB",
    "UPSAMPLERS",
    "BasicLayer",
    "Mlp",
    "PatchEmbed",
    "Swin2SR",
    "SwinV2Block",
    "WindowAttentionV2",
    "convert_swin2sr",
    "detect_swin2sr",
]

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "pixelshuffle_aux")
"""The reconstruction heads of the released Swin2SR models."""

# SwinV2 clamps the attention temperature at 1 / 0.01 before exponentiating.
_LOGIT_SCALE_MAX = math.log(1.0 / 0.01)


@shape_cached()
def _coords_table(wh: int, ww: int, device: torch.device) -> torch.Tensor:
    """SwinV2's log-spaced relative coordinates, ``((2wh-1) * (2ww-1), 2)`` in float32.

    Offsets are normalised to [-8, 8] by the window size, then mapped through
    ``sign(x) * log2(|x| + 1) / log2(8)``, in the order and precision of the original.
    """
    dy = torch.arange(-(wh - 1), wh, dtype=torch.float32, device=device)
    dx = torch.arange(-(ww - 1), ww, dtype=torch.float32, device=device)
    # A one-pixel window has only the zero offset; the original would divide it by zero.
    if wh > 1:
        dy = dy / (wh - 1)
    if ww > 1:
        dx = dx / (ww - 1)
    table = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1) * 8
    table = torch.sign(table) * torch.log2(table.abs() + 1.0) / 3.0
    return table.reshape(-1, 2)


@shape_cached(maxsize=16)
def _mean(channels: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # The original removes DIV2K's mean colour from RGB input and nothing from other inputs.
    values = DIV2K_RGB_MEAN if channels == 3 else (0.0,) * channels
    return torch.tensor(values, device=device, dtype=dtype).view(1, channels, 1, 1)


def _image_mean(channels: int, like: torch.Tensor) -> torch.Tensor:
    """The mean colour as a ``(1, C, 1, 1)`` tensor on ``like``'s device and dtype (cached)."""
    return _mean(channels, like.device, like.dtype)


class _Plan(NamedTuple):
    """Where the tokens of an ``h x w`` (padded) image go in windowed order, for one forward.

    Inside a residual group the tokens stay in the order of the unshifted windows (image
    order only for its convolution), so an unshifted block attends without moving them and a
    shifted block moves them once each way: one gather replaces a cyclic shift (two copies)
    and a window partition (a third).
    """

    to_windows: torch.Tensor  # image order -> unshifted window order
    to_image: torch.Tensor  # its inverse
    to_shifted: torch.Tensor | None  # unshifted window order -> shifted window order
    from_shifted: torch.Tensor | None  # its inverse
    mask: torch.Tensor | None  # (nW, N, N) shift mask of the shifted windows


def _window_order(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """Image positions of the tokens in (cyclically shifted) window order, as Swin's
    ``window_partition(torch.roll(x, (-shift, -shift), (1, 2)), window)`` would list them."""
    pos = torch.arange(h * w, device=device).view(1, h, w, 1)
    if shift:
        pos = torch.roll(pos, shifts=(-shift, -shift), dims=(1, 2))
    return window_partition(pos, window).reshape(-1)


@shape_cached()
def _orders(
    h: int, w: int, window: int, shift: int, device: torch.device
) -> tuple[torch.Tensor, ...]:
    plain = _window_order(h, w, window, 0, device)
    to_image = torch.argsort(plain)
    if not shift:
        return plain, to_image
    shifted = to_image[_window_order(h, w, window, shift, device)]
    return plain, to_image, shifted, torch.argsort(shifted)


def _plan(h: int, w: int, window: int, like: torch.Tensor) -> _Plan:
    """The :class:`_Plan` of an ``h x w`` image, on ``like``'s device (masks in its dtype)."""
    shift = window // 2
    orders = _orders(h, w, window, shift, like.device)
    if not shift:
        return _Plan(orders[0], orders[1], None, None, None)
    mask = shift_mask(h, w, window, shift, device=like.device, dtype=like.dtype)
    return _Plan(orders[0], orders[1], orders[2], orders[3], mask)


class WindowAttentionV2(nn.Module):
    """SwinV2 window attention: scaled cosine similarity plus a continuous position bias.

    The logits of one head are ``cos(q_i, k_j) * exp(min(logit_scale, log 100)) +
    16 * sigmoid(cpb_mlp(coords(i - j)))``; the key has no bias (the query and value do, as
    ``q_bias`` / ``v_bias``). Computed with ``F.scaled_dot_product_attention``: the temperature
    is folded into the normalised queries, the bias and the shift mask form its ``attn_mask``.

    Args:
        dim: Token channels (a multiple of ``num_heads``).
        num_heads: Attention heads.
        window_size: Side of the square window.
        qkv_bias: Learn biases for the query and the value.
    """

    def __init__(
        self, *, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True
    ) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = window_size
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, 512), nn.ReLU(inplace=True), nn.Linear(512, num_heads, bias=False)
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias: nn.Parameter | None
        self.v_bias: nn.Parameter | None
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def position_bias(self, dtype: torch.dtype) -> torch.Tensor:
        """The ``(heads, N, N)`` position bias of one window (``N = window_size**2``).

        Args:
            dtype: Dtype of the result (the activations').

        Returns:
            ``16 * sigmoid`` of the MLP's output, gathered by relative position.
        """
        ws = self.window_size
        device = self.logit_scale.device
        table = _coords_table(ws, ws, device)
        # The sigmoid commutes with the gather: apply it to the (2w-1)^2 table entries rather
        # than to the w^4 gathered ones. (The table follows the parameters' dtype.)
        per_offset = 16 * torch.sigmoid(self.cpb_mlp(table.to(self.logit_scale.dtype)))
        index = relative_position_index(ws, device)
        return per_offset.to(dtype)[index].permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attend within each window.

        Args:
            x: ``(B * nW, N, C)`` tokens, the windows of one image consecutive.
            mask: ``(nW or 1, heads, N, N)`` additive logits (position bias and shift mask).

        Returns:
            ``(B * nW, N, C)``.
        """
        bn, n, c = x.shape
        heads = self.num_heads
        bias = None
        if self.q_bias is not None and self.v_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).view(bn, n, 3, heads, c // heads)
        qk = qkv[:, :, :2]
        # F.normalize for q and k at once, with the temperature folded into the queries'
        # reciprocal norms: one pass over the activations instead of four.
        temperature = torch.clamp(self.logit_scale, max=_LOGIT_SCALE_MAX).exp().view(heads, 1)
        factors = torch.stack((temperature, torch.ones_like(temperature)))  # (2, heads, 1)
        norms = torch.linalg.vector_norm(qk, dim=-1, keepdim=True).clamp_min(1e-12)
        qk = qk * (factors / norms)
        # (bn, heads, n, d) views; SDPA then writes its output in (bn, n, heads, d) order.
        q, k, v = qk[:, :, 0], qk[:, :, 1], qkv[:, :, 2]
        # Every image has the same windows: repeat their masks over the batch. (A fifth,
        # broadcasting batch axis would avoid the copy, but sends SDPA to its slow generic
        # path on the CPU.)
        nw = mask.shape[0]
        if 1 < nw < bn:
            mask = mask.expand(bn // nw, -1, -1, -1, -1).reshape(bn, *mask.shape[1:])
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            scale=1.0,
        )
        return self.proj(merge_heads(out))


class SwinV2Block(nn.Module):
    """A SwinV2 transformer block, post-normalised.

    ``x + norm1(attention(x))``, then ``x + norm2(mlp(x))``; odd blocks shift their windows by
    half a window.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Side of the square window.
        shift_size: Cyclic shift of the windows (0 for none).
        mlp_ratio: Hidden width of the MLP relative to ``dim``.
        qkv_bias: Learn biases for the query and the value.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        mlp_ratio: float,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttentionV2(
            dim=dim, num_heads=num_heads, window_size=window_size, qkv_bias=qkv_bias
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        """Run the block.

        Args:
            x: ``(B, L, C)`` tokens in the order of the unshifted windows (see ``_Plan``).
            plan: The window plan of the (padded) image.

        Returns:
            ``(B, L, C)``, in the same order.
        """
        b, length, c = x.shape
        n = self.window_size**2
        mask = self.attn.position_bias(x.dtype).unsqueeze(0)
        if self.shift_size and plan.to_shifted is not None and plan.from_shifted is not None:
            assert plan.mask is not None
            windows = x.index_select(1, plan.to_shifted)
            mask = mask + plan.mask.unsqueeze(1)
            # The layer norm acts on each token alone, so it runs before tokens move back.
            y = self.norm1(self.attn(windows.view(-1, n, c), mask))
            y = y.view(b, length, c).index_select(1, plan.from_shifted)
        else:
            y = self.norm1(self.attn(x.view(-1, n, c), mask)).view(b, length, c)
        x = x + y
        return x + self.norm2(self.mlp(x))


class BasicLayer(nn.Module):
    """``depth`` SwinV2 blocks, alternately unshifted and shifted.

    Args:
        dim: Token channels.
        depth: Number of blocks.
        num_heads: Attention heads.
        window_size: Side of the square window.
        mlp_ratio: Hidden width of the MLPs relative to ``dim``.
        qkv_bias: Learn biases for the queries and values.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinV2Block(
                dim=dim,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
            )
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        """``(B, H, W, C)`` tokens in image order -> the same after the blocks."""
        b, h, w, c = x.shape
        tokens = x.reshape(b, h * w, c).index_select(1, plan.to_windows)
        for block in self.blocks:
            tokens = block(tokens, plan)
        return tokens.index_select(1, plan.to_image).view(b, h, w, c)


class PatchEmbed(nn.Module):
    """A 1x1 convolution from feature maps to tokens, optionally layer-normalised.

    Swin2SR's patch embedding has a projection (SwinIR's has none); its patches are single
    pixels, so the projection is a 1x1 convolution.

    Args:
        dim: Channels.
        norm: Follow the projection with a layer norm.
    """

    def __init__(self, *, dim: int, norm: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, 1)
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, H, W, C)`` tokens."""
        tokens = to_tokens(self.proj(x))
        return self.norm(tokens) if self.norm is not None else tokens


class RSTB(nn.Module):
    """Residual Swin Transformer block: SwinV2 blocks, a convolution, a 1x1 projection, a skip.

    Args:
        dim: Channels.
        depth: SwinV2 blocks.
        num_heads: Attention heads.
        window_size: Side of the square window.
        mlp_ratio: Hidden width of the MLPs relative to ``dim``.
        qkv_bias: Learn biases for the queries and values.
        resi_connection: ``"1conv"`` or ``"3conv"``.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        qkv_bias: bool = True,
        resi_connection: str = "1conv",
    ) -> None:
        super().__init__()
        self.residual_group = BasicLayer(
            dim=dim,
            depth=depth,
            num_heads=num_heads,
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
        )
        self.conv = residual_conv(dim, resi_connection, name="Swin2SR")
        self.patch_embed = PatchEmbed(dim=dim, norm=False)

    def forward(self, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        """``(B, H, W, C)`` tokens in image order -> the same, through the group and its skip."""
        return self.patch_embed(self.conv(to_image(self.residual_group(x, plan)))) + x


class Swin2SR(nn.Module):
    """Swin2SR: residual groups of SwinV2 blocks between a convolutional head and an upsampler.

    Takes images in [0, 1]; DIV2K's mean colour is removed inside (for RGB) and the input is
    reflect-padded to a multiple of the window, the output cropped back. Parameter names are
    the official checkpoints'.

    Args:
        scale: Upscaling factor (``"pixelshuffle"`` and ``"pixelshuffle_aux"``: 3 or a power
            of two; ``"nearest+conv"``: 2 or 4; ``"pixelshuffledirect"``: any).
        in_channels: Image channels (output has as many).
        embed_dim: Token channels.
        depths: SwinV2 blocks in each residual group.
        num_heads: Attention heads in each residual group.
        window_size: Side of the square attention window.
        mlp_ratio: Hidden width of the MLPs relative to ``embed_dim``.
        qkv_bias: Learn biases for the queries and values.
        patch_norm: Layer-normalise the tokens after the first embedding.
        img_range: Value range the network works in (1 for the released SR models).
        upsampler: One of :data:`UPSAMPLERS`.
        resi_connection: ``"1conv"`` or ``"3conv"`` at the end of each residual group.
        num_feat: Channels of the reconstruction head (64 in every released model).
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        embed_dim: int = 180,
        depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        patch_norm: bool = True,
        img_range: float = 1.0,
        upsampler: str = "pixelshuffle",
        resi_connection: str = "1conv",
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        depths, num_heads = tuple(depths), tuple(num_heads)
        _check_arguments(
            scale=scale,
            embed_dim=embed_dim,
            depths=depths,
            num_heads=num_heads,
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            upsampler=upsampler,
            resi_connection=resi_connection,
            num_feat=num_feat,
            in_channels=in_channels,
        )
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = in_channels
        # Shifted windows carry attention across the whole (padded) image.
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.img_range = img_range
        self.upsampler = upsampler

        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.patch_embed = PatchEmbed(dim=embed_dim, norm=patch_norm)
        self.layers = nn.ModuleList(
            RSTB(
                dim=embed_dim,
                depth=depth,
                num_heads=heads,
                window_size=window_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                resi_connection=resi_connection,
            )
            for depth, heads in zip(depths, num_heads, strict=True)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection, name="Swin2SR")

        out = in_channels
        if upsampler == "pixelshuffledirect":
            self.upsample: nn.Module = pixel_shuffle_head(embed_dim, out, scale)
            return
        if upsampler == "pixelshuffle_aux":
            self.conv_bicubic = nn.Conv2d(in_channels, num_feat, 3, padding=1)
        self.conv_before_upsample = nn.Sequential(
            nn.Conv2d(embed_dim, num_feat, 3, padding=1), nn.LeakyReLU(inplace=True)
        )
        if upsampler == "pixelshuffle_aux":
            self.conv_aux = nn.Conv2d(num_feat, out, 3, padding=1)
            self.conv_after_aux = nn.Sequential(
                nn.Conv2d(out, num_feat, 3, padding=1), nn.LeakyReLU(inplace=True)
            )
        if upsampler in ("pixelshuffle", "pixelshuffle_aux"):
            self.upsample = Upsampler(scale=scale, n_feats=num_feat)
        else:  # nearest+conv: one nearest x2 and a convolution per factor of two
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
            if scale == 4:
                self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        self.conv_last = nn.Conv2d(num_feat, out, 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The residual groups on ``(B, embed_dim, H, W)`` features (``H, W`` window multiples).

        Args:
            x: Output of ``conv_first``.

        Returns:
            ``(B, embed_dim, H, W)``, before ``conv_after_body``.
        """
        h, w = x.shape[-2:]
        plan = _plan(h, w, self.window_size, x)  # shared by every block of this size
        tokens = self.patch_embed(x)
        for layer in self.layers:
            tokens = layer(tokens, plan)
        return to_image(self.norm(tokens))

    def _reconstruct(self, x: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
        """The upsampler: padded, normalised input and deep features -> enlarged image."""
        if self.upsampler == "pixelshuffledirect":
            out: torch.Tensor = self.upsample(body)
            return out
        feat = self.conv_before_upsample(body)
        if self.upsampler == "pixelshuffle":
            return self.conv_last(self.upsample(feat))
        if self.upsampler == "pixelshuffle_aux":
            h, w = x.shape[-2:]
            size = (h * self.scale, w * self.scale)
            bicubic = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
            aux = self.conv_aux(feat)  # the low-resolution image of the auxiliary loss
            up = self.upsample(self.conv_after_aux(aux))
            return self.conv_last(up + self.conv_bicubic(bicubic))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        if self.scale == 4:
            feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        mean = _image_mean(self.in_channels, x)
        x = (pad_to_multiple(x, self.window_size) - mean) * self.img_range
        feat = self.conv_first(x)
        body = self.conv_after_body(self.forward_features(feat)) + feat
        out = self._reconstruct(x, body) / self.img_range + mean
        return out[:, :, : h * self.scale, : w * self.scale]


def _check_arguments(
    *,
    scale: int,
    embed_dim: int,
    depths: tuple[int, ...],
    num_heads: tuple[int, ...],
    window_size: int,
    mlp_ratio: float,
    upsampler: str,
    resi_connection: str,
    num_feat: int,
    in_channels: int,
) -> None:
    where = "Swin2SR"
    if upsampler not in UPSAMPLERS:
        raise ArgumentError(f"{where}: upsampler must be one of {UPSAMPLERS}, got {upsampler!r}")
    if resi_connection not in ("1conv", "3conv"):
        raise ArgumentError(
            f"{where}: resi_connection must be '1conv' or '3conv', got {resi_connection!r}"
        )
    if not depths or len(depths) != len(num_heads):
        raise ArgumentError(
            f"{where}: depths {depths} and num_heads {num_heads} must be non-empty and of the "
            "same length (one entry per residual group)"
        )
    if any(d < 1 for d in depths) or any(n < 1 for n in num_heads):
        raise ArgumentError(
            f"{where}: depths and num_heads must be positive, got {depths}, {num_heads}"
        )
    bad = [n for n in num_heads if embed_dim % n]
    if embed_dim < 1 or bad:
        raise ArgumentError(
            f"{where}: embed_dim ({embed_dim}) must be a positive multiple of every num_heads "
            f"entry, not of {bad}"
        )
    if resi_connection == "3conv" and embed_dim < 4:
        raise ArgumentError(f"{where}: '3conv' needs embed_dim >= 4, got {embed_dim}")
    if window_size < 1 or mlp_ratio <= 0 or num_feat < 1 or in_channels < 1:
        raise ArgumentError(
            f"{where}: window_size, mlp_ratio, num_feat and in_channels must be positive, got "
            f"{window_size}, {mlp_ratio}, {num_feat}, {in_channels}"
        )
    if int(embed_dim * mlp_ratio) < 1:
        raise ArgumentError(f"{where}: embed_dim * mlp_ratio must be at least 1")
    if scale < 1:
        raise ArgumentError(f"{where}: scale must be a positive integer, got {scale}")
    if upsampler in ("pixelshuffle", "pixelshuffle_aux"):
        shuffle_factors(scale, name=f"{where}'s {upsampler!r} upsampler")
    elif upsampler == "nearest+conv" and scale not in (2, 4):
        raise ArgumentError(
            f"{where}: the 'nearest+conv' upsampler supports x2 and x4, not x{scale}"
        )


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------

# Tables the official files store although they follow from the configuration.
_DERIVED = (".relative_position_index", ".relative_coords_table", ".attn_mask")

_HF_BLOCK = r"swin2sr\.encoder\.stages\.(\d+)\.layers\.(\d+)\."
_BLOCK = r"layers.\1.residual_group.blocks.\2."
_HF_RULES: tuple[tuple[str, str | Callable[[re.Match[str]], str]], ...] = (
    (r"swin2sr\.first_convolution\.", "conv_first."),
    (r"swin2sr\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"swin2sr\.embeddings\.patch_embeddings\.layernorm\.", "patch_embed.norm."),
    (_HF_BLOCK + r"attention\.self\.continuous_position_bias_mlp\.", _BLOCK + "attn.cpb_mlp."),
    (_HF_BLOCK + r"attention\.self\.logit_scale$", _BLOCK + "attn.logit_scale"),
    (_HF_BLOCK + r"attention\.self\.query\.bias$", _BLOCK + "attn.q_bias"),
    (_HF_BLOCK + r"attention\.self\.value\.bias$", _BLOCK + "attn.v_bias"),
    (_HF_BLOCK + r"attention\.output\.dense\.", _BLOCK + "attn.proj."),
    (_HF_BLOCK + r"layernorm_before\.", _BLOCK + "norm1."),
    (_HF_BLOCK + r"layernorm_after\.", _BLOCK + "norm2."),
    (_HF_BLOCK + r"intermediate\.dense\.", _BLOCK + "mlp.fc1."),
    (_HF_BLOCK + r"output\.dense\.", _BLOCK + "mlp.fc2."),
    (r"swin2sr\.encoder\.stages\.(\d+)\.conv\.", r"layers.\1.conv."),
    (r"swin2sr\.encoder\.stages\.(\d+)\.patch_embed\.projection\.", r"layers.\1.patch_embed.proj."),
    (r"swin2sr\.layernorm\.", "norm."),
    (r"swin2sr\.conv_after_body\.", "conv_after_body."),
    (r"upsample\.conv_before_upsample\.", "conv_before_upsample.0."),
    # Pixel-shuffle stages: convolution_i is the official Sequential's entry 2 * i.
    (r"upsample\.upsample\.convolution_(\d+)\.", lambda m: f"upsample.{2 * int(m[1])}."),
    (r"upsample\.upsample\.convolution\.", "upsample.0."),  # the single x3 stage
    (r"upsample\.conv_after_aux\.", "conv_after_aux."),
    (r"upsample\.(conv_bicubic|conv_aux|conv_up1|conv_up2|conv_hr)\.", r"\1."),
    (r"upsample\.final_convolution\.", "conv_last."),
    (r"upsample\.conv\.", "upsample.0."),  # the lightweight model's one-step upsampler
)
_HF_COMPILED = [(re.compile(p), r) for p, r in _HF_RULES]
_HF_QKV = re.compile(_HF_BLOCK + r"attention\.self\.(query|key|value)\.weight$")


def _from_transformers(state: StateDict) -> StateDict:
    out: StateDict = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.endswith(_DERIVED):
            continue
        m = _HF_QKV.match(key)
        if m is not None:
            qkv.setdefault(f"layers.{m[1]}.residual_group.blocks.{m[2]}.attn.qkv.weight", {})[
                m[3]
            ] = value
            continue
        new = key
        for pattern, repl in _HF_COMPILED:
            if pattern.match(key):
                new = pattern.sub(repl, key, count=1)
                break
        out[new] = value
    for key, parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            # Leave the parts under their own names: the load then reports what is missing.
            out.update({f"{key}.{name}": t for name, t in parts.items()})
            continue
        out[key] = torch.cat((parts["query"], parts["key"], parts["value"]), dim=0)
    return out


def convert_swin2sr(state: StateDict, module: nn.Module) -> StateDict:
    """Map a Swin2SR state dict in the official or ``transformers`` layout to srzoo's keys.

    The official layout is srzoo's, less the tables it stores that follow from the
    configuration (relative position indices, log-spaced coordinates, shift masks), which are
    dropped. The ``transformers`` layout (``Swin2SRForImageSuperResolution``) is renamed, and its
    separate query, key and value projections are stacked into ``qkv``.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` etc.).
        module: The :class:`Swin2SR` they are meant for.

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_swin2sr(read_state_dict("Swin2SR_ClassicalSR_X4_64.pth"), net)
    """
    del module  # the keys alone tell the layouts apart
    if any(k.startswith("swin2sr.") for k in state):
        return _from_transformers(state)
    return {k: v for k, v in state.items() if not k.endswith(_DERIVED)}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title="Swin2SR: SwinV2 Transformer for Compressed Image Super-Resolution and Restoration",
    venue="ECCV Workshops",
    year=2022,
    arxiv="2209.11345",
)
_RELEASE = "https://github.com/mv-lab/swin2sr/releases/download/v0.0.1/"
_HUB = "hf://caidas/"
_RGB = "0-1 (RGB)"
_DF2K = "DIV2K + Flickr2K (3,450 images), MATLAB bicubic x{scale}"
_MIRROR_NOTE = (
    "sha256 of the same file on a Hugging Face mirror (uwg/upscaler, an LFS object); the "
    "GitHub release publishes no checksum. {size}"
)
_NO_SIZE = "Its byte size is not recorded: the mirror gives it only rounded."
_HUB_NOTE = (
    "sha256 of the transformers conversion of the authors' file, from the Hub's LFS object "
    "(caidas, the authors' lab); the repository revision is not pinned"
)
_HUB_NO_HASH = (
    "no digest recorded for the transformers conversion of the authors' file (caidas, the "
    "authors' lab); the Hub's own etag is checked on download and srzoo records the sha256 of "
    "the first download"
)


def _table3(scale: int, set5: float, set14: float) -> tuple[ReportedMetric, ...]:
    return set5_set14(
        scale, set5, set14, source="Conde et al. 2022 (arXiv:2209.11345), Table 3: Swin2SR"
    )


_LIGHT_METRICS = set5_set14(
    2, 38.17, 33.95, source="Conde et al. 2022 (arXiv:2209.11345), Table 4: Swin2SR-s"
)
_COMPRESSED_METRICS = (
    ReportedMetric(
        23.4033,
        "AIM 2022 compressed-SR test set (DIV2K, JPEG q=10 then x4)",
        4,
        "psnr",
        source=(
            "Conde et al. 2022 (arXiv:2209.11345), Table 5: Swin2SR-CI, PSNR as the AIM 2022 "
            "challenge scores it"
        ),
    ),
)


def _pair(
    *,
    scale: int,
    official: str,
    sha256: str | None,
    size: int | None,
    hub_repo: str,
    hub_sha256: str | None,
    train_data: str,
    metrics: tuple[ReportedMetric, ...],
    official_note: str,
) -> tuple[WeightSpec, WeightSpec]:
    """The authors' release (default) and its transformers copy on the Hub (tag ``"hf"``)."""
    common = {"input_range": _RGB, "train_data": train_data, "license": "Apache-2.0"}
    return (
        WeightSpec(
            scale=scale,
            source=_RELEASE + official,
            sha256=sha256,
            size=size,
            metrics=metrics,
            sha256_note=official_note,
            **common,  # type: ignore[arg-type]
        ),
        WeightSpec(
            scale=scale,
            source=f"{_HUB}{hub_repo}/pytorch_model.bin",
            tag="hf",
            sha256=hub_sha256,
            metrics=metrics,
            sha256_note=_HUB_NOTE if hub_sha256 else _HUB_NO_HASH,
            **common,  # type: ignore[arg-type]
        ),
    )


def _register(
    name: str,
    *,
    description: str,
    task: Task,
    scales: tuple[int, ...],
    defaults: dict[str, object],
    weights: tuple[WeightSpec, ...],
    default_scale: int | None = None,
) -> None:
    register_model(
        ModelSpec(
            name=name,
            family="swin2sr",
            builder=Swin2SR,
            scales=scales,
            paper=_PAPER,
            code_license="Apache-2.0",
            description=description,
            task=task,
            default_scale=default_scale,
            weights=weights,
            converter=convert_swin2sr,
            defaults=defaults,
            size_multiple=8,  # the window every registered configuration pads to
        )
    )


_CLASSICAL = {
    "embed_dim": 180,
    "depths": (6, 6, 6, 6, 6, 6),
    "num_heads": (6, 6, 6, 6, 6, 6),
    "window_size": 8,
    "mlp_ratio": 2.0,
    "resi_connection": "1conv",
}

_register(
    "swin2sr",
    description="Swin2SR classical SR: 6 groups x 6 SwinV2 blocks, 180 channels, pixel shuffle",
    task="psnr",
    scales=(2, 3, 4),
    defaults={**_CLASSICAL, "upsampler": "pixelshuffle"},
    weights=(
        *_pair(
            scale=2,
            official="Swin2SR_ClassicalSR_X2_64.pth",
            sha256="04834dbf863f00168ece32f9fc34ad1e3ad48ff1bf8098812573ed5810b59fa0",
            size=68764341,
            hub_repo="swin2SR-classical-sr-x2-64",
            hub_sha256="adf54cd2539bec31262ce6d6f97fea5079fcb8388bc7eaff0082c0dc0c87259c",
            train_data=_DF2K.format(scale=2),
            metrics=_table3(2, 38.43, 34.48),
            official_note=_MIRROR_NOTE.format(size=""),
        ),
        *_pair(
            scale=4,
            official="Swin2SR_ClassicalSR_X4_64.pth",
            sha256="9fef30c758897992581f6b3ae7802bea246bc56d88dd36403d377d8dcf47a173",
            size=None,
            hub_repo="swin2SR-classical-sr-x4-64",
            hub_sha256=None,
            train_data=_DF2K.format(scale=4) + ", fine-tuned from x2",
            metrics=_table3(4, 32.92, 29.06),
            official_note=_MIRROR_NOTE.format(size=_NO_SIZE),
        ),
    ),
)
_register(
    "swin2sr-light",
    description="Swin2SR-s lightweight SR: 4 groups x 6 SwinV2 blocks, 60 channels, one shuffle",
    task="psnr",
    scales=(2, 3, 4),
    default_scale=2,
    defaults={
        **_CLASSICAL,
        "embed_dim": 60,
        "depths": (6, 6, 6, 6),
        "num_heads": (6, 6, 6, 6),
        "upsampler": "pixelshuffledirect",
    },
    weights=_pair(
        scale=2,
        official="Swin2SR_Lightweight_X2_64.pth",
        sha256=None,
        size=None,
        hub_repo="swin2SR-lightweight-x2-64",
        hub_sha256="9784753b51c4b93b87d53088b862c1961b04eaa69460463bed170d5c444b3d0b",
        train_data=_DF2K.format(scale=2),
        metrics=_LIGHT_METRICS,
        official_note=(
            "the GitHub release publishes no checksum and no copy with a known digest was "
            "found; srzoo records the sha256 of the first download and checks the cached copy "
            "against it"
        ),
    ),
)
_register(
    "swin2sr-real",
    description="Swin2SR real-world SR (BSRGAN degradations, PSNR-trained): nearest+conv head",
    task="real-world",
    scales=(2, 4),
    defaults={**_CLASSICAL, "upsampler": "nearest+conv"},
    weights=_pair(
        scale=4,
        official="Swin2SR_RealworldSR_X4_64_BSRGAN_PSNR.pth",
        sha256="2b7afb6ba8c076f7a4987001c142b7bc5f23bf229125775eee599faf5bf7c40e",
        size=None,
        hub_repo="swin2SR-realworld-sr-x4-64-bsrgan-psnr",
        hub_sha256=None,
        train_data="BSRGAN's synthetic degradations, pixel loss (SwinIR's real-world setup)",
        metrics=(),
        official_note=_MIRROR_NOTE.format(size=_NO_SIZE),
    ),
)
_register(
    "swin2sr-compressed",
    description="Swin2SR for JPEG-compressed input (AIM 2022): pixel shuffle + bicubic skip",
    task="psnr",
    scales=(2, 3, 4),
    defaults={**_CLASSICAL, "upsampler": "pixelshuffle_aux"},
    weights=_pair(
        scale=4,
        official="Swin2SR_CompressedSR_X4_48.pth",
        sha256="ed3f5dac3c1b9d07c9803f586cde6cdd75c96d975b6e50625afb623f22cf2a79",
        size=None,
        hub_repo="swin2SR-compressed-sr-x4-48",
        hub_sha256=None,
        train_data="DIV2K + Flickr2K, bicubic x4 then JPEG (quality 10 at test)",
        metrics=_COMPRESSED_METRICS,
        official_note=_MIRROR_NOTE.format(size=_NO_SIZE),
    ),
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "layers.0.residual_group.blocks.0."
_HF_BLOCK0 = "swin2sr.encoder.stages.0.layers.0."
# mv-lab/swin2sr's keys (spandrel's), and Swin2SRForImageSuperResolution's (transformers).
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        _BLOCK0 + "norm1.weight",
        _BLOCK0 + "attn.logit_scale",
        _BLOCK0 + "attn.cpb_mlp.0.weight",
        _BLOCK0 + "attn.qkv.weight",
        _BLOCK0 + "mlp.fc1.weight",
        "norm.weight",
    ),
    "transformers": (
        "swin2sr.first_convolution.weight",
        _HF_BLOCK0 + "layernorm_before.weight",
        _HF_BLOCK0 + "attention.self.logit_scale",
        _HF_BLOCK0 + "attention.self.continuous_position_bias_mlp.0.weight",
        _HF_BLOCK0 + "attention.self.query.weight",
        _HF_BLOCK0 + "intermediate.dense.weight",
        "swin2sr.layernorm.weight",
    ),
}
_NAMES = {
    "pixelshuffle": "swin2sr",
    "pixelshuffledirect": "swin2sr-light",
    "nearest+conv": "swin2sr-real",
    "pixelshuffle_aux": "swin2sr-compressed",
}
_CPB_HIDDEN = 512  # the continuous position bias MLP's width: fixed by the architecture
_DEFAULT_WINDOW = 8  # every released model's; the only window a file without tables can tell


def _official_shapes(shapes: Shapes) -> Shapes:
    # The transformers keys renamed as _from_transformers renames the tensors; the query, key
    # and value projections become one qkv of three times the rows.
    out: dict[str, tuple[int, ...]] = {}
    for key, shape in shapes.items():
        m = _HF_QKV.match(key)
        if m is not None:
            qkv = f"layers.{m[1]}.residual_group.blocks.{m[2]}.attn.qkv.weight"
            rows = out.get(qkv, (0, *shape[1:]))[0]
            out[qkv] = (rows + shape[0], *shape[1:])
            continue
        new = key
        for pattern, repl in _HF_COMPILED:
            if pattern.match(key):
                new = pattern.sub(repl, key, count=1)
                break
        out[new] = shape
    return Shapes(out)


def _window(shapes: Shapes) -> int:
    # relative_position_index is (window**2, window**2); relative_coords_table is
    # (1, 2 * window - 1, 2 * window - 1, 2). Without either, the released models' 8.
    index = shapes.dim(_BLOCK0 + "attn.relative_position_index")
    if index:
        side = math.isqrt(index)
        return side if side * side == index else 0
    coords = shapes.dim(_BLOCK0 + "attn.relative_coords_table", 1)
    if coords:
        return (coords + 1) // 2 if coords % 2 else 0
    return _DEFAULT_WINDOW


def detect_swin2sr(shapes: Shapes) -> Detected | None:
    """Recognise a Swin2SR checkpoint, official (mv-lab/swin2sr) or ``transformers`` keys.

    Reads the layout (``swin2sr.*`` keys: ``transformers``, renamed to the official keys
    first, its query / key / value rows summed into ``qkv``), ``embed_dim`` and the image
    channels (``conv_first``), the SwinV2 blocks of each residual group (``depths``), the
    heads of each group (``logit_scale`` is ``(heads, 1, 1)``), ``mlp_ratio`` (the MLP's hidden
    width over ``embed_dim``), ``qkv_bias`` (``q_bias``), ``patch_norm``, ``resi_connection``
    (``1conv`` or ``3conv``), the upsampler and the scale: ``conv_aux`` is the compressed-input
    ``pixelshuffle_aux`` head, ``conv_up1`` the real-world ``nearest+conv`` head (x4 with a
    ``conv_up2``, else x2), ``conv_before_upsample`` otherwise the classical ``pixelshuffle``
    head (the scale from its sub-pixel stages, ``num_feat`` from its width), and a lone
    ``upsample.0`` the lightweight ``pixelshuffledirect`` head.

    The window size is read from the tables the official files store
    (``attn.relative_position_index``, ``(window**2, window**2)``, or
    ``attn.relative_coords_table``); the position-bias MLP's weights do not depend on it, so a
    file without them (``transformers`` keeps them out of its state dicts, as srzoo does) gets
    the released models' window, 8. ``img_range`` (1) cannot be read either.

    The name follows the upsampler: ``swin2sr`` (``pixelshuffle``), ``swin2sr-light``
    (``pixelshuffledirect``), ``swin2sr-real`` (``nearest+conv``), ``swin2sr-compressed``
    (``pixelshuffle_aux``). SwinIR and HAT files have no ``logit_scale`` / ``cpb_mlp``.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a Swin2SR.
    """
    if shapes.has(*_LAYOUTS["transformers"]):
        layout, shapes = "transformers", _official_shapes(shapes)
    elif shapes.has(*_LAYOUTS["official"]):
        layout = "official"
    else:
        return None
    if shapes.has(_BLOCK0 + "attn.relative_position_bias_table"):
        return None
    embed_dim, in_chans = shapes.dim("conv_first.weight"), shapes.dim("conv_first.weight", 1)
    n_layers = shapes.count(r"layers\.(\d+)\.residual_group\.blocks\.0\.attn\.logit_scale")
    depths = tuple(
        shapes.count(rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.attn\.logit_scale")
        for i in range(n_layers)
    )
    heads = tuple(
        shapes.dim(f"layers.{i}.residual_group.blocks.0.attn.logit_scale") for i in range(n_layers)
    )
    hidden, window = shapes.dim(_BLOCK0 + "mlp.fc1.weight"), _window(shapes)
    if (
        min((embed_dim, in_chans, n_layers, hidden, window, *depths, *heads)) < 1
        or any(embed_dim % h for h in heads)
        or shapes.dim(_BLOCK0 + "attn.cpb_mlp.0.weight") != _CPB_HIDDEN
        or shapes.dim(_BLOCK0 + "attn.qkv.weight") != 3 * embed_dim
    ):
        return None
    if shapes.has("layers.0.conv.weight"):
        resi = "1conv"
    elif shapes.has("layers.0.conv.0.weight", "layers.0.conv.4.weight"):
        resi = "3conv"
    else:
        return None
    num_feat = shapes.dim("conv_before_upsample.0.weight")
    if shapes.has("conv_aux.weight", "conv_bicubic.weight"):
        upsampler = "pixelshuffle_aux"
        scale = shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat)
    elif shapes.has("conv_up1.weight"):
        upsampler, scale = "nearest+conv", 4 if shapes.has("conv_up2.weight") else 2
    elif num_feat:
        upsampler = "pixelshuffle"
        scale = shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat)
    else:
        upsampler = "pixelshuffledirect"
        scale = shuffle_factor(shapes.dim("upsample.0.weight"), in_chans)
        if shapes.dim("upsample.0.weight", 1) != embed_dim:
            return None
    if not scale or (num_feat and shapes.dim("conv_last.weight") != in_chans):
        return None
    ratio = hidden / embed_dim
    args: dict[str, object] = {
        "in_channels": in_chans,
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads": heads,
        "window_size": window,
        # hidden == int(embed_dim * mlp_ratio): one just above the quotient when int() rounded.
        "mlp_ratio": ratio if int(embed_dim * ratio) == hidden else (hidden + 0.5) / embed_dim,
        "qkv_bias": shapes.has(_BLOCK0 + "attn.q_bias"),
        "patch_norm": shapes.has("patch_embed.norm.weight"),
        "resi_connection": resi,
        "upsampler": upsampler,
    }
    if num_feat:
        args["num_feat"] = num_feat
    return Detected(_NAMES[upsampler], scale, args, layout)


register_detector("swin2sr", detect_swin2sr, layouts=_LAYOUTS)
