"""SRFormer: a SwinIR-style network with permuted self-attention.

Paper: Zhou, Li, Guo, Bai, Cheng, Hou, "SRFormer: Permuted Self-Attention for Single Image
Super-Resolution", ICCV 2023, arXiv:2303.09735.

Parameter names follow HVision-NKU/SRFormer ``basicsr/archs/srformer_arch.py``, so the release
files load once srzoo's reader has taken the tensors out of ``params``.

The frame is SwinIR's (a 3x3 convolution, residual groups of transformer layers each closed by
a convolution and a skip, a layer norm, a convolution and a skip over the body, SwinIR's
reconstruction heads). Each layer differs from a Swin layer in two ways:

- Permuted self-attention (PSA): inside a ``window x window`` window, every pixel is a query
  (``q``: C -> C), but keys and values come from ``kv`` (C -> C / 2) and each 2x2 pixel group of
  the window is folded into one key/value token of C channels: the four pixels' C / 4 key
  channels (then value channels) side by side, pixel by pixel in row-major order. A window of
  ``n`` pixels thus attends to ``n / 4`` tokens. The learned relative-position bias has
  ``(2 * window / 2 - 1) ** 2`` rows: query pixel ``(r, c)`` takes the offset of
  ``(r // 2, c // 2)`` from the key token on the half-resolution grid. Every second layer
  shifts the windows cyclically by ``window // 2``; its mask compares the region of the query
  pixel (full resolution, window ``window``, shift ``window // 2``) with the region of the key
  token (half resolution, window ``window / 2``, shift ``ceil(window // 2 / 2)``: upstream
  writes ``-shift // 2``, which Python reads as ``(-shift) // 2``), -100 where they differ.
- The feed-forward part (ConvFFN): ``fc1``, GELU, then ``x + GELU(dwconv(x))`` with a 5x5
  depthwise convolution on the image layout, then ``fc2``.

Inputs are RGB in [0, 1]; the DIV2K mean is removed inside. Any size works: the image is
reflect-padded at the bottom and right to a multiple of the window and the output cropped, as
the original's ``check_image_size`` does. ``size_multiple`` in the registry is the window.

What srzoo keeps out of the state dict: each layer's ``aligned_relative_position_index`` (it
depends only on the window) and each shifted layer's ``attn_mask`` (for the training patch
size); srzoo computes both for the input at hand, cached per shape, device and dtype.
:func:`convert_srformer` drops them; it is the registry's converter.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` with the
position bias (plus the shift mask) as a float ``attn_mask`` and upstream's scale
``head_dim ** -0.5``: the same computation as the original's explicit softmax. The tokens move
between the image and the (shifted) windows by one gather each way with cached indices, where
upstream rolls, partitions, reverses and rolls back.

SRFormer declares no receptive-field radius (``receptive_field = None``): its windows are
shifted cyclically, so a pixel near one border attends to pixels at the opposite border.

Registered models (no weights registered):

- ``srformer``: classical SR, 180 features, 6 groups x 6 layers, 6 heads, window 22, MLP ratio
  2, pixel-shuffle head; x2, x3, x4.
- ``srformer-light``: lightweight SR, 60 features, 4 groups x 6 layers, 6 heads, window 16,
  one-step pixel-shuffle head; x2, x3, x4.

The authors publish their weights only on Google Drive (``SRFormer_SRx{2,3,4}_DF2K.pth``,
``SRFormerLight_SRx{2,3,4}_DIV2K.pth``, ``SRFormer_S_RealSR.pth``); srzoo registers no file it
cannot download by URL and check by sha256. Two of them are known by hash (they load with
``srzoo.load_file``):

- ``srformer_df2k_x4`` (SRFormer, x4, DF2K): sha256
  ``aa7883cbbd4493530eeb0e101c9be00d5d8112b392fec1eed61b60176737be6a``, 97,200,893 bytes;
- ``srformer_light_div2k_x2`` (SRFormer-light, x2, DIV2K): sha256
  ``5b851903c54c0813cbb8af06ea0259b847e21aeffd0c2adeed8c533d74f4d7f0``, 19,343,157 bytes.

The paper's Y-PSNR on Set5 / Set14 (Table 4, classical; Table 5, lightweight; the authors'
README shows both tables):

- SRFormer, DF2K: x2 38.51 / 34.44, x3 35.02 / 30.94, x4 32.93 / 29.08;
- SRFormer, DIV2K: x2 38.45 / 34.21, x3 34.94 / 30.81, x4 32.81 / 29.01;
- SRFormer-light, DIV2K: x2 38.23 / 33.94, x3 34.67 / 30.57, x4 32.51 / 28.82.

The code is licensed CC BY-NC 4.0 (the repository's ``LICENSE.txt``).

Example:
    >>> model = srzoo.load_file("SRFormer_SRx4_DF2K.pth")
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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
    shuffle_factor,
)
from ._blocks import DIV2K_RGB_MEAN, image_forward
from ._transformer import (
    DropPath,
    HeadKind,
    PatchEmbed,
    ReconstructionHead,
    ResiConnection,
    init_transformer_weights,
    merge_heads,
    residual_conv,
    to_image,
    to_tokens,
)
from ._window import (
    MASK_VALUE,
    pad_to_multiple,
    relative_position_index,
    shape_cached,
    window_partition,
)

__all__ = [
    "PSA",
    "ConvFFN",
    "PSABlock",
    "PSAGroup",
    "SRFormer",
    "convert_srformer",
    "detect_srformer",
]


# --------------------------------------------------------------------------------------------
# Cached tables (pure functions of shapes, devices and dtypes)
# --------------------------------------------------------------------------------------------


@shape_cached()
def _orders(
    h: int, w: int, window: int, shift: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(to_windows, to_image)`` gather indices over the ``h * w`` tokens of an image.

    ``to_windows`` lists, window after window (row-major inside), the image index of each token
    of the image rolled by ``-shift``: upstream's ``torch.roll`` then window partition.
    ``to_image`` is its inverse: window reverse then the roll back.
    """
    pos = torch.arange(h * w, device=device).view(1, h, w, 1)
    if shift:
        pos = torch.roll(pos, shifts=(-shift, -shift), dims=(1, 2))
    to_windows = window_partition(pos, window).flatten()
    return to_windows, torch.argsort(to_windows)


@shape_cached()
def _aligned_index(window: int, device: torch.device) -> torch.Tensor:
    """``(window**2, (window/2)**2)`` index into the bias table: pixel ``(r, c)`` of a window
    takes the offset of ``(r // 2, c // 2)`` from each key token of the half-size grid."""
    half = window // 2
    rows = torch.arange(window, device=device) // 2
    cell = (rows[:, None] * half + rows[None, :]).flatten()
    return relative_position_index(half, device)[cell]


def _regions(n: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    # The Swin code's three slices along one axis: [0, n - window), [n - window, n - shift),
    # [n - shift, n).
    i = torch.arange(n, device=device)
    return (i >= n - window).long() + (i >= n - shift).long()


def _region_windows(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    ids = _regions(h, window, shift, device)[:, None] * 3 + _regions(w, window, shift, device)
    return window_partition(ids[None, :, :, None], window).squeeze(-1)  # (nW, window**2)


@shape_cached()
def _psa_mask(
    h: int, w: int, window: int, shift: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The ``(nW, n, n / 4)`` additive mask of a shifted PSA layer over an ``h x w`` image."""
    half = window // 2
    # Upstream's key slices use -shift // 2, i.e. (-shift) // 2: ceil(shift / 2) from the end.
    key_shift = -(-shift // 2)
    queries = _region_windows(h, w, window, shift, device)
    keys = _region_windows(h // 2, w // 2, half, key_shift, device)
    differ = queries[:, :, None] != keys[:, None, :]
    zero = torch.zeros((), device=device, dtype=dtype)
    return torch.where(differ, torch.full_like(zero, MASK_VALUE), zero)


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class PSA(nn.Module):
    """Permuted self-attention inside square windows, with an aligned relative-position bias.

    Args:
        dim: Token features (a multiple of ``num_heads`` and of 4).
        window_size: Side of the window (even).
        num_heads: Attention heads.
        qkv_bias: Learn a bias for the query and key/value projections.
    """

    def __init__(
        self, *, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads or dim % 4:
            raise ArgumentError(
                f"SRFormer: the features ({dim}) must be a multiple of 4 and of num_heads "
                f"({num_heads}); choose another embed_dim"
            )
        if window_size < 2 or window_size % 2:
            raise ArgumentError(
                f"SRFormer: window_size must be even and at least 2, got {window_size}"
            )
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        half = window_size // 2
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * half - 1) ** 2, num_heads)
        )
        self.kv = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """The ``(heads, n, n / 4)`` bias added to the logits of one window."""
        table = self.relative_position_bias_table
        return table.t()[:, _aligned_index(self.window_size, table.device)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend within each window.

        Args:
            x: Windows ``(B * nW, n, C)``, ``n = window**2``, row-major inside.
            mask: The shifted layer's ``(nW, n, n / 4)`` additive mask, or ``None``.

        Returns:
            ``(B * nW, n, C)``.
        """
        windows, n, c = x.shape
        heads, half = self.num_heads, self.window_size // 2
        q = self.q(x).view(windows, n, heads, c // heads).transpose(1, 2)
        # Fold each 2x2 pixel group into one token: (window, row pair, col pair, kv, C/4) ->
        # (kv, window, token, C) with the four pixels' channels side by side.
        kv = self.kv(x).view(windows, half, 2, half, 2, 2, c // 4)
        kv = kv.permute(5, 0, 1, 3, 2, 4, 6).reshape(2, windows, n // 4, heads, c // heads)
        k, v = kv.transpose(2, 3).unbind(0)
        bias = self.position_bias().to(x.dtype)
        if mask is None:
            # A stride-0 expansion: SDPA's fused CPU kernel takes it without a copy.
            attn_mask = bias.unsqueeze(0).expand(windows, heads, n, n // 4)
        else:
            n_win = mask.shape[0]
            combined = mask.unsqueeze(1) + bias.unsqueeze(0)  # (nW, heads, n, n/4)
            attn_mask = combined.unsqueeze(0).expand(windows // n_win, -1, -1, -1, -1)
            attn_mask = attn_mask.reshape(windows, heads, n, n // 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=self.scale)
        return self.proj(merge_heads(out))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class _DWConv(nn.Module):
    """The 5x5 depthwise convolution and GELU of :class:`ConvFFN` (key ``depthwise_conv.0``)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.depthwise_conv = nn.Sequential(
            nn.Conv2d(hidden, hidden, 5, padding=2, groups=hidden), nn.GELU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, hidden)`` tokens -> the same shape."""
        return to_tokens(self.depthwise_conv(to_image(x)))


class ConvFFN(nn.Module):
    """SRFormer's feed-forward part: ``fc1``, GELU, a depthwise-convolution skip, ``fc2``.

    Args:
        dim: Token features.
        hidden: Hidden features.
    """

    def __init__(self, *, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.dwconv = _DWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        x = self.act(self.fc1(x))
        return self.fc2(x + self.dwconv(x))


class PSABlock(nn.Module):
    """One SRFormer layer: pre-norm (shifted-)window PSA and pre-norm ConvFFN, each with a skip.

    Args:
        dim: Token features.
        num_heads: Attention heads.
        window_size: Side of the attention window.
        shift_size: Cyclic shift of the windows (0, or half a window in every second layer).
        mlp_ratio: Hidden features of the ConvFFN per token feature.
        qkv_bias: Learn a bias for the query and key/value projections.
        drop_path: Stochastic-depth rate of both branches (training only).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int = 0,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = PSA(dim=dim, window_size=window_size, num_heads=num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvFFN(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens, ``H`` and ``W`` multiples of the window -> the same shape."""
        b, h, w, c = x.shape
        win, shift = self.window_size, self.shift_size
        to_windows, to_image_order = _orders(h, w, win, shift, x.device)
        mask = _psa_mask(h, w, win, shift, x.device, x.dtype) if shift else None
        t = self.norm1(x).reshape(b, h * w, c).index_select(1, to_windows)
        y = self.attn(t.view(-1, win * win, c), mask).view(b, h * w, c)
        x = x + self.drop_path(y.index_select(1, to_image_order).view(b, h, w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, shift_size={self.shift_size}"


class _Blocks(nn.Module):
    """The layers of one group (upstream's ``residual_group``, key ``blocks``)."""

    def __init__(self, blocks: Sequence[PSABlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class PSAGroup(nn.Module):
    """A residual group: ``depth`` PSA layers (the odd ones shifted), a convolution, a skip.

    Args:
        dim: Token features.
        depth: Layers in the group.
        num_heads: Attention heads.
        window_size: Side of the attention window.
        mlp_ratio: Hidden features of the ConvFFN per token feature.
        qkv_bias: Learn a bias for the query and key/value projections.
        drop_path: Stochastic-depth rate of each layer.
        resi_connection: ``"1conv"`` or ``"3conv"`` closing convolution.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path: Sequence[float] = (),
        resi_connection: ResiConnection = "1conv",
    ) -> None:
        super().__init__()
        rates = list(drop_path) or [0.0] * depth
        self.residual_group = _Blocks(
            [
                PSABlock(
                    dim=dim,
                    num_heads=num_heads,
                    window_size=window_size,
                    shift_size=0 if i % 2 == 0 else window_size // 2,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_path=rates[i],
                )
                for i in range(depth)
            ]
        )
        self.conv = residual_conv(dim, resi_connection, name="SRFormer")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        return to_tokens(self.conv(to_image(self.residual_group(x)))) + x


class SRFormer(ReconstructionHead):
    """SRFormer for super-resolution.

    Takes RGB in [0, 1] at any size (padded inside to a multiple of ``window_size``).

    Args:
        scale: Upscaling factor: 3 or a power of two for ``"pixelshuffle"``, any positive
            integer for ``"pixelshuffledirect"``, 2 or 4 for ``"nearest+conv"``.
        in_chans: Image channels (in and out).
        embed_dim: Token features (a multiple of 4 and of every ``num_heads``).
        depths: Layers in each residual group.
        num_heads: Attention heads in each residual group.
        window_size: Side of the attention window (even).
        mlp_ratio: Hidden features of the ConvFFNs per token feature.
        qkv_bias: Learn a bias for the query and key/value projections.
        drop_path_rate: Stochastic depth, rising linearly from 0 to this over the layers
            (training only; upstream's default).
        patch_norm: Normalise the tokens entering the body.
        img_range: Value range the network works in (1 for every released file).
        upsampler: Reconstruction head: ``"pixelshuffle"`` (classical), ``"pixelshuffledirect"``
            (lightweight) or ``"nearest+conv"`` (real-world).
        resi_connection: Convolution closing each group and the body: ``"1conv"`` or ``"3conv"``.
        num_feat: Features of the ``"pixelshuffle"`` and ``"nearest+conv"`` heads (64 upstream).

    Example:
        >>> model = SRFormer(scale=4, embed_dim=60, depths=(6,) * 4, num_heads=(6,) * 4,
        ...                  window_size=16, upsampler="pixelshuffledirect")
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
        window_size: int = 22,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        img_range: float = 1.0,
        upsampler: HeadKind = "pixelshuffle",
        resi_connection: ResiConnection = "1conv",
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ArgumentError(f"SRFormer: scale must be a positive integer, got {scale}")
        if len(depths) != len(num_heads) or not depths or min(depths) < 1:
            raise ArgumentError(
                f"SRFormer: depths and num_heads need one positive entry per group, got "
                f"{tuple(depths)} and {tuple(num_heads)}"
            )
        if embed_dim < 1 or in_chans < 1:
            raise ArgumentError(
                f"SRFormer: needs embed_dim >= 1 and in_chans >= 1, got {embed_dim} and {in_chans}"
            )
        self.scale = scale
        self.in_channels = in_chans
        self.out_channels = in_chans
        # Cyclically shifted windows: every pixel can see the opposite border.
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.img_range = img_range
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer(
            "mean", torch.tensor(mean, device="cpu").view(1, -1, 1, 1), persistent=False
        )

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, padding=1)
        self.patch_embed = PatchEmbed(dim=embed_dim, norm=patch_norm)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        start = 0
        for depth, heads in zip(depths, num_heads, strict=True):
            self.layers.append(
                PSAGroup(
                    dim=embed_dim,
                    depth=depth,
                    num_heads=heads,
                    window_size=window_size,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    drop_path=rates[start : start + depth],
                    resi_connection=resi_connection,
                )
            )
            start += depth
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection, name="SRFormer")
        self.build_head(
            upsampler,
            dim=embed_dim,
            num_feat=num_feat,
            out_chans=in_chans,
            scale=scale,
            name="SRFormer",
        )
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The body: ``(B, C, H, W)`` shallow features -> deep features of the same shape."""
        t = self.patch_embed(to_tokens(x))
        for layer in self.layers:
            t = layer(t)
        return to_image(self.norm(t))

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.window_size)
        mean = self.mean.to(x.dtype)
        x = self.conv_first((x - mean) * self.img_range)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.reconstruct(x)
        x = x / self.img_range + mean
        return x[:, :, : h * self.scale, : w * self.scale]


@torch.no_grad()
def _init_weights(module: nn.Module) -> None:
    # Upstream's initialisation, plus truncated-normal position-bias tables.
    init_transformer_weights(module)
    if isinstance(module, PSA):
        nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)


# Upstream buffers that srzoo computes instead: they hold no learned value.
_COMPUTED_SUFFIXES = (".attn.aligned_relative_position_index", ".attn_mask")


def convert_srformer(state: StateDict, module: nn.Module) -> StateDict:
    """Drop the computed buffers of an official SRFormer state dict.

    Upstream stores each layer's ``aligned_relative_position_index`` and each shifted layer's
    ``attn_mask`` (for the training patch size); srzoo computes both for the input at hand. A
    state dict in srzoo's own keys passes unchanged.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params``).
        module: The :class:`SRFormer` they are meant for (unused: the layout is the same).

    Returns:
        The state dict without the computed buffers.

    Example:
        >>> convert_srformer(torch.load("SRFormer_SRx4_DF2K.pth")["params"], net)
    """
    del module
    return {k: v for k, v in state.items() if not k.endswith(_COMPUTED_SUFFIXES)}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title="SRFormer: Permuted Self-Attention for Single Image Super-Resolution",
    venue="ICCV",
    year=2023,
    arxiv="2303.09735",
)
_LICENSE = "CC-BY-NC-4.0"

register_model(
    ModelSpec(
        name="srformer",
        family="srformer",
        builder=SRFormer,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license=_LICENSE,
        description=(
            "SRFormer for classical SR: 6 groups x 6 permuted-self-attention layers, 180 "
            "features, window 22 (weights on Google Drive only: not registered)"
        ),
        defaults={
            "embed_dim": 180,
            "depths": (6,) * 6,
            "num_heads": (6,) * 6,
            "window_size": 22,
            "mlp_ratio": 2.0,
            "upsampler": "pixelshuffle",
            "resi_connection": "1conv",
            "num_feat": 64,
        },
        converter=convert_srformer,
        size_multiple=22,
    )
)
register_model(
    ModelSpec(
        name="srformer-light",
        family="srformer",
        builder=SRFormer,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license=_LICENSE,
        description=(
            "SRFormer-light for lightweight SR: 4 groups x 6 permuted-self-attention layers, 60 "
            "features, window 16, one-step pixel-shuffle head (weights on Google Drive only)"
        ),
        defaults={
            "embed_dim": 60,
            "depths": (6,) * 4,
            "num_heads": (6,) * 4,
            "window_size": 16,
            "mlp_ratio": 2.0,
            "upsampler": "pixelshuffledirect",
            "resi_connection": "1conv",
        },
        converter=convert_srformer,
        size_multiple=16,
    )
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "layers.0.residual_group.blocks.0."
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        _BLOCK0 + "norm1.weight",
        _BLOCK0 + "attn.relative_position_bias_table",
        _BLOCK0 + "attn.q.weight",
        _BLOCK0 + "attn.kv.weight",
        _BLOCK0 + "attn.proj.weight",
        _BLOCK0 + "mlp.fc1.weight",
        _BLOCK0 + "mlp.dwconv.depthwise_conv.0.weight",
        "norm.weight",
    ),
}


def _ratio(hidden: int, dim: int) -> float:
    # hidden == int(dim * ratio): the plain quotient, or one just above it when int() rounded.
    ratio = hidden / dim
    return ratio if int(dim * ratio) == hidden else (hidden + 0.5) / dim


def detect_srformer(shapes: Shapes) -> Detected | None:
    """Recognise an SRFormer checkpoint (HVision-NKU/SRFormer keys) from keys and shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the layers of each group
    (``depths``), the heads of each group (the last dimension of its bias table),
    ``window_size`` (the table has ``(window - 1) ** 2`` rows), ``mlp_ratio`` (``fc1``'s width
    over ``embed_dim``), ``qkv_bias``, ``patch_norm``, ``resi_connection``, the upsampler and
    the scale: ``conv_up1`` is the ``nearest+conv`` head (x4 with ``conv_up2``, else x2),
    ``conv_before_upsample`` the ``pixelshuffle`` head (scale from its sub-pixel stages,
    ``num_feat`` from its width), a lone ``upsample.0`` the ``pixelshuffledirect`` head. Only
    ``img_range`` (1) cannot be read: it multiplies no weight.

    The name: ``srformer-light`` for ``pixelshuffledirect``, ``srformer`` otherwise (the same
    builder and converter).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an SRFormer.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    embed_dim, in_chans = shapes.dim("conv_first.weight"), shapes.dim("conv_first.weight", 1)
    n_layers = shapes.count(r"layers\.(\d+)\.residual_group\.blocks\.0\.norm1\.weight")
    depths = tuple(
        shapes.count(rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.norm1\.weight")
        for i in range(n_layers)
    )
    tables = [
        f"layers.{i}.residual_group.blocks.0.attn.relative_position_bias_table"
        for i in range(n_layers)
    ]
    heads = tuple(shapes.dim(t, 1) for t in tables)
    rows = shapes.dim(tables[0]) if tables else 0
    side = math.isqrt(rows)
    hidden = shapes.dim(_BLOCK0 + "mlp.fc1.weight")
    if (
        min((embed_dim, in_chans, n_layers, hidden, *depths, *heads)) < 1
        or side * side != rows
        or side % 2 == 0
        or embed_dim % 4
        or any(embed_dim % h for h in heads)
        or any(shapes.dim(t) != rows for t in tables)
        or shapes.dim(_BLOCK0 + "attn.kv.weight") * 2 != embed_dim
    ):
        return None
    if shapes.has("layers.0.conv.weight"):
        resi = "1conv"
    elif shapes.has("layers.0.conv.0.weight", "layers.0.conv.4.weight"):
        resi = "3conv"
    else:
        return None
    args: dict[str, object] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads": heads,
        "window_size": side + 1,
        "mlp_ratio": _ratio(hidden, embed_dim),
        "qkv_bias": shapes.has(_BLOCK0 + "attn.q.bias"),
        "patch_norm": shapes.has("patch_embed.norm.weight"),
        "resi_connection": resi,
    }
    num_feat = shapes.dim("conv_before_upsample.0.weight")
    name = "srformer"
    if shapes.has("conv_up1.weight"):
        scale = 4 if shapes.has("conv_up2.weight") else 2
        upsampler = "nearest+conv"
    elif num_feat:
        scale = shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat)
        upsampler = "pixelshuffle"
    else:
        scale = shuffle_factor(shapes.dim("upsample.0.weight"), in_chans)
        upsampler, name = "pixelshuffledirect", "srformer-light"
        if shapes.dim("upsample.0.weight", 1) != embed_dim:
            return None
    if not scale or (num_feat and shapes.dim("conv_last.weight") != in_chans):
        return None
    args["upsampler"] = upsampler
    if num_feat:
        args["num_feat"] = num_feat
    return Detected(name, scale, args, "official")


register_detector("srformer", detect_srformer, layouts=_LAYOUTS)
