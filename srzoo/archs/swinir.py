"""SwinIR: image restoration with residual Swin Transformer blocks.

Paper: Liang, Cao, Sun, Zhang, Van Gool, Timofte, "SwinIR: Image Restoration Using Swin
Transformer", ICCV Workshops 2021, arXiv:2108.10257.

Parameter names follow JingyunLiang/SwinIR ``models/network_swinir.py`` (identical to spandrel's
SwinIR and KAIR's), so the release files load once srzoo's reader has taken the tensors out of
``params`` (classical and lightweight SR) or ``params_ema`` (real-world SR).

The network: a 3x3 convolution; residual Swin Transformer blocks (RSTB), each a group of Swin
layers (window self-attention with a learned relative-position bias, every second layer on
windows shifted by half a window, then an MLP) closed by a convolution and a skip; a layer norm,
a convolution and a skip over the whole body; and one of three reconstruction heads:

- ``"pixelshuffle"`` (classical SR): a 3x3 convolution to ``num_feat`` and LeakyReLU, then one
  sub-pixel stage per factor of two (or one x3 stage) and a 3x3 convolution to RGB;
- ``"pixelshuffledirect"`` (lightweight SR): one 3x3 convolution to ``3 * scale**2`` channels and
  a pixel shuffle;
- ``"nearest+conv"`` (real-world SR): nearest-neighbour x2 enlargements, each followed by a 3x3
  convolution and LeakyReLU (one at x2, two at x4), then two 3x3 convolutions.

Inputs are RGB in [0, 1]; the DIV2K mean is removed inside. Any size works: the image is
reflect-padded at the bottom and right to a multiple of the window (8) and the output cropped,
as the original's ``check_image_size`` does. ``size_multiple`` in the registry is the window, so
tiles start on the window grid.

What srzoo keeps out of the state dict, and why the official files still load strictly:

- ``relative_position_index`` (a buffer in every attention layer upstream) depends only on the
  window size; srzoo computes it per device (``_window.relative_position_index``, cached).
- ``attn_mask`` (a buffer in every shifted layer upstream) is the shifted-window mask for the
  *training* patch size (``img_size``: 48 for the DIV2K classical files, 64 for the others);
  upstream recomputes it for any other input size. srzoo builds the mask for the actual padded
  input size (``_window.shift_mask``, cached per shape, device and dtype), so ``img_size`` is not
  a constructor argument: it changes no weight, and the absolute position embedding it sizes
  (``ape``) is unused by every released file.

:func:`convert_swinir` drops both kinds of key; it is the registry's converter.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` with the
relative-position bias (plus the shift mask, -100 between tokens of different regions, as
upstream) as a float ``attn_mask`` and upstream's scale ``head_dim ** -0.5``: the same
computation as the original's explicit softmax, without materialising the attention map.

SwinIR declares no receptive-field radius (``receptive_field = None``): its windows are anchored
at the image's corner and shifted cyclically (``torch.roll``), so a pixel near one border attends
to pixels at the opposite border, and no tile overlap reproduces the whole image's output.
``srzoo.upscale`` warns when it tiles SwinIR.

Registered models:

- ``swinir``: classical SR, SwinIR-M (180 features, 6 RSTB x 6 layers, 6 heads, window 8), x2, x3,
  x4, x8. Two sets of weights per scale: ``"default"`` is the DF2K (DIV2K + Flickr2K) training
  with 64x64 patches, the paper's stronger setting (Table 2: +0.07 to +0.32 dB on Set5 / Set14
  over DIV2K alone) and the one later work compares against; ``"div2k"`` is the DIV2K-only
  training with 48x48 patches, the setting that is comparable with RCAN and its successors.
- ``swinir-light``: lightweight SR, SwinIR-S (60 features, 4 RSTB x 6 layers, 6 heads), x2, x3, x4.
- ``swinir-real``: real-world SR, SwinIR-M with the nearest+conv head, x4 and x2, trained with
  BSRGAN's degradations; ``"default"`` is the GAN-trained generator, ``"psnr"`` the PSNR-oriented
  one.
- ``swinir-real-large``: real-world SR, SwinIR-L (240 features, 9 RSTB x 6 layers, 8 heads, the
  three-convolution RSTB closing), x4; GAN (``"default"``) and PSNR (``"psnr"``) weights.

Example:
    >>> model = srzoo.load("swinir-light", scale=4)
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
    WeightSpec,
    register_detector,
    register_model,
    set5_set14,
    shuffle_factor,
)
from ._blocks import DIV2K_RGB_MEAN, image_forward
from ._transformer import (
    DropPath,
    HeadKind,
    Mlp,
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
    pad_to_multiple,
    relative_position_index,
    shape_cached,
    shift_mask,
    window_partition,
    window_reverse,
)

__all__ = [
    "RSTB",
    "BasicLayer",
    "DropPath",
    "Mlp",
    "PatchEmbed",
    "SwinIR",
    "SwinTransformerBlock",
    "WindowAttention",
    "convert_swinir",
    "detect_swinir",
]

UpsamplerKind = HeadKind


@shape_cached()
def _orders(
    h: int, w: int, window: int, shift: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    pos = torch.arange(h * w, device=device).view(1, h, w, 1)
    # The image index of each token, in plain-window and in shifted-window order.
    plain = window_partition(pos, window).flatten()
    rolled = torch.roll(pos, shifts=(-shift, -shift), dims=(1, 2))
    shifted = window_partition(rolled, window).flatten()
    # argsort inverts a permutation: the position of each image token in either order.
    plain_inv, shifted_inv = torch.argsort(plain), torch.argsort(shifted)
    return plain_inv[shifted], shifted_inv[plain], shifted_inv


def _window_orders(
    h: int, w: int, window: int, shift: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gather indices between the token orders of plain and shifted windows of an h x w image.

    Returns ``(to_shifted, to_plain, shifted_to_image)``: ``t.index_select(1, to_shifted)``
    turns ``(B, L, C)`` tokens grouped by plain windows (``window_partition`` of the image) into
    tokens grouped by the windows of the image rolled by ``-shift`` (upstream's ``torch.roll``
    then ``window_partition``); ``to_plain`` goes back; ``shifted_to_image`` takes shifted-window
    tokens to row-major image order, undoing the roll. Cached per shape and device in eager
    mode, computed in the graph under ``torch.compile`` (as ``_window``'s tables are).
    """
    return _orders(h, w, window, shift, device)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside square windows, with a relative-position bias.

    Args:
        dim: Token features (a multiple of ``num_heads``).
        window_size: Side of the window.
        num_heads: Attention heads.
        qkv_bias: Learn a bias for the query, key and value projections.
    """

    def __init__(
        self, *, dim: int, window_size: int, num_heads: int, qkv_bias: bool = True
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ArgumentError(
                f"WindowAttention: dim ({dim}) must be a multiple of num_heads ({num_heads})"
            )
        self.dim = dim
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        # One learned bias per head for every offset between two tokens of a window.
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """The ``(heads, N, N)`` bias added to the logits of one window (``N = window**2``)."""
        table = self.relative_position_bias_table
        index = relative_position_index(self.window_size, table.device)
        # Indexing the transposed table gives the bias contiguous, heads first.
        return table.t()[:, index]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend within each window.

        Args:
            x: Windows ``(B * nW, N, C)``, in the row-major window order of
                :func:`~srzoo.archs._window.window_partition`.
            mask: Additive mask ``(nW, N, N)`` of the shifted windows, or ``None``.

        Returns:
            ``(B * nW, N, C)``.
        """
        windows, n, c = x.shape
        heads = self.num_heads
        q, k, v = (
            self.qkv(x).view(windows, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        )
        bias = self.position_bias().to(x.dtype)
        if mask is None:
            # A stride-0 expansion: SDPA's fused CPU kernel takes it without a copy, while a
            # 3-D mask would send it to the slower composite path.
            attn_mask = bias.unsqueeze(0).expand(windows, heads, n, n)
        else:
            n_win = mask.shape[0]
            combined = mask.unsqueeze(1) + bias.unsqueeze(0)  # (nW, heads, N, N)
            # Free for a batch of one; a copy per image beyond it.
            attn_mask = combined.unsqueeze(0).expand(windows // n_win, -1, -1, -1, -1)
            attn_mask = attn_mask.reshape(windows, heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=self.scale)
        return self.proj(merge_heads(out))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}"


class SwinTransformerBlock(nn.Module):
    """One Swin layer: pre-norm (shifted-)window attention and pre-norm MLP, each with a skip.

    Args:
        dim: Token features.
        num_heads: Attention heads.
        window_size: Side of the attention window.
        shift_size: Cyclic shift of the windows (0, or half a window in every second layer).
        mlp_ratio: Hidden features of the MLP per token feature.
        qkv_bias: Learn a bias for the query, key and value projections.
        drop_path: Stochastic-depth rate of both branches (training only).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: int = 8,
        shift_size: int = 0,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        if not 0 <= shift_size < window_size:
            raise ArgumentError(
                f"SwinTransformerBlock: shift_size must be in [0, window_size), got {shift_size} "
                f"with window_size {window_size}"
            )
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim=dim, window_size=window_size, num_heads=num_heads, qkv_bias=qkv_bias
        )
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Run the layer on tokens already grouped by window.

        Args:
            x: ``(B, nW * N, C)`` tokens, window after window (``N = window**2``), in the
                order of this layer's windows: the plain grid, or for a shifted layer the grid
                of the image rolled by ``-shift_size`` (see :class:`BasicLayer`).
            mask: The shifted windows' ``(nW, N, N)`` additive mask, or ``None``.

        Returns:
            The tokens in the same order.
        """
        b, length, c = x.shape
        n = self.window_size * self.window_size
        y = self.attn(self.norm1(x).view(b * (length // n), n, c), mask).view(b, length, c)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, shift_size={self.shift_size}"


class BasicLayer(nn.Module):
    """``depth`` Swin layers, the odd ones on shifted windows.

    Args:
        dim: Token features.
        depth: Number of layers.
        num_heads: Attention heads.
        window_size: Side of the attention window.
        mlp_ratio: Hidden features of the MLP per token feature.
        qkv_bias: Learn a bias for the query, key and value projections.
        drop_path: Stochastic-depth rate of each layer.
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
    ) -> None:
        super().__init__()
        rates = list(drop_path) or [0.0] * depth
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim=dim,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                drop_path=rates[i],
            )
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens, ``H`` and ``W`` multiples of the window -> the same shape."""
        b, h, w, c = x.shape
        win, shift = self.window_size, self.window_size // 2
        # Everything but the attention works token by token, so the tokens can stay grouped
        # by window between layers: one gather moves them from the plain windows to the
        # shifted ones (upstream's roll and window partition) and one moves them back, where
        # upstream partitions, reverses and rolls in every layer.
        t = window_partition(x, win).view(b, h * w, c)
        to_shifted, to_plain, shifted_to_image = _window_orders(h, w, win, shift, x.device)
        mask = shift_mask(h, w, win, shift, device=x.device, dtype=x.dtype) if shift else None
        shifted = False
        for block in self.blocks:
            if bool(block.shift_size) != shifted:
                t = t.index_select(1, to_plain if shifted else to_shifted)
                shifted = not shifted
            t = block(t, mask if shifted else None)
        if shifted:
            return t.index_select(1, shifted_to_image).view(b, h, w, c)
        return window_reverse(t.view(-1, win * win, c), win, h, w)


class RSTB(nn.Module):
    """Residual Swin Transformer block: a group of Swin layers, a convolution, and a skip.

    Args:
        dim: Token features.
        depth: Swin layers in the group.
        num_heads: Attention heads.
        window_size: Side of the attention window.
        mlp_ratio: Hidden features of the MLP per token feature.
        qkv_bias: Learn a bias for the query, key and value projections.
        drop_path: Stochastic-depth rate of each layer.
        resi_connection: ``"1conv"`` (one 3x3) or ``"3conv"`` (3x3-1x1-3x3 bottleneck).
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
        self.residual_group = BasicLayer(
            dim=dim,
            depth=depth,
            num_heads=num_heads,
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            drop_path=drop_path,
        )
        self.conv = residual_conv(dim, resi_connection, name="SwinIR")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        # The tokens are a channels-last image: the convolution reads and writes them in place
        # of upstream's flatten / transpose round trip.
        return to_tokens(self.conv(to_image(self.residual_group(x)))) + x


class SwinIR(ReconstructionHead):
    """SwinIR for super-resolution.

    Takes RGB in [0, 1] at any size (padded inside to a multiple of ``window_size``).

    Args:
        scale: Upscaling factor: 3 or a power of two for ``"pixelshuffle"``, any positive
            integer for ``"pixelshuffledirect"``, 2 or 4 for ``"nearest+conv"``.
        in_chans: Image channels (in and out).
        embed_dim: Token features.
        depths: Swin layers in each RSTB.
        num_heads: Attention heads in each RSTB.
        window_size: Side of the attention window.
        mlp_ratio: Hidden features of the MLPs per token feature.
        qkv_bias: Learn a bias for the query, key and value projections.
        drop_path_rate: Stochastic depth, rising linearly from 0 to this over the layers
            (training only; upstream's default).
        patch_norm: Normalise the tokens entering the body.
        img_range: Value range the network works in (1 for every released SR file).
        upsampler: Reconstruction head: ``"pixelshuffle"`` (classical), ``"pixelshuffledirect"``
            (lightweight) or ``"nearest+conv"`` (real-world).
        resi_connection: Convolution closing each RSTB and the body: ``"1conv"`` or ``"3conv"``.
        num_feat: Features of the ``"pixelshuffle"`` and ``"nearest+conv"`` heads.
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
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.1,
        patch_norm: bool = True,
        img_range: float = 1.0,
        upsampler: UpsamplerKind = "pixelshuffle",
        resi_connection: ResiConnection = "1conv",
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ArgumentError(f"SwinIR: scale must be a positive integer, got {scale}")
        if len(depths) != len(num_heads) or not depths or min(depths) < 1:
            raise ArgumentError(
                f"SwinIR: depths and num_heads need one positive entry per RSTB, got "
                f"{tuple(depths)} and {tuple(num_heads)}"
            )
        if window_size < 1 or embed_dim < 1:
            raise ArgumentError(
                f"SwinIR: needs window_size >= 1 and embed_dim >= 1, got {window_size} and "
                f"{embed_dim}"
            )
        self.scale = scale
        self.in_channels = in_chans
        self.out_channels = in_chans
        # Cyclically shifted windows anchored at the image's corner: every pixel can see the
        # opposite border, so no finite radius describes the network.
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.img_range = img_range
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        # Not part of the official state dict: a constant, rebuilt with the module. On the CPU
        # even when built on the meta device, as no weight file could ever fill it in.
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
                RSTB(
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
        self.conv_after_body = residual_conv(embed_dim, resi_connection, name="SwinIR")

        self.build_head(
            upsampler,
            dim=embed_dim,
            num_feat=num_feat,
            out_chans=in_chans,
            scale=scale,
            name="SwinIR",
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
    if isinstance(module, WindowAttention):
        nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)


# Upstream buffers that srzoo computes instead: they hold no learned value.
_COMPUTED_SUFFIXES = (".attn.relative_position_index", ".attn_mask")


def convert_swinir(state: StateDict, module: nn.Module) -> StateDict:
    """Drop the computed buffers of an official SwinIR state dict.

    Upstream stores each attention layer's ``relative_position_index`` and each shifted layer's
    ``attn_mask`` (for the training patch size); srzoo computes both for the input at hand. A
    state dict in srzoo's own keys passes unchanged.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` / ``params_ema``).
        module: The :class:`SwinIR` they are meant for (unused: the layout is the same).

    Returns:
        The state dict without the computed buffers.

    Example:
        >>> convert_swinir(torch.load("001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth")["params"], net)
    """
    del module
    return {k: v for k, v in state.items() if not k.endswith(_COMPUTED_SUFFIXES)}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title="SwinIR: Image Restoration Using Swin Transformer",
    venue="ICCV Workshops",
    year=2021,
    arxiv="2108.10257",
)
_RELEASE = "https://github.com/JingyunLiang/SwinIR/releases/download/v0.0"
_INPUT = "0-1 (RGB, DIV2K mean shift inside the network)"
_LICENSE = "Apache-2.0"
_CLASSICAL_TABLE = (
    "Liang et al. 2021 (arXiv:2108.10257), Table 2 (classical image SR, bicubic): SwinIR"
)
_LIGHT_TABLE = (
    "Liang et al. 2021 (arXiv:2108.10257), Table 3 (lightweight image SR, bicubic): SwinIR"
)
# (Set5, Set14) Y-PSNR. The paper reports no x8 results, so the x8 files carry no metrics.
_CLASSICAL_DF2K = {2: (38.42, 34.46), 3: (34.97, 30.93), 4: (32.92, 29.09)}
_CLASSICAL_DIV2K = {2: (38.35, 34.14), 3: (34.89, 30.77), 4: (32.72, 28.94)}
_LIGHT = {2: (38.14, 33.86), 3: (34.62, 30.54), 4: (32.44, 28.77)}

# scale -> (sha256, size) of the release files.
_CLASSICAL_DF2K_FILES = {
    2: ("2032ebf8f401dd3ce2fae5f3852117cb72101ec6ed8358faa64c2a3fa09ed4ac", 67_277_475),
    3: ("6eca3aee41f53322cd2f5a13650e212b80be8f3c0439d6fe19aef13ab1f509c7", 68_016_035),
    4: ("4e78e33f22c1aa8a773db0cf4a7381bae97c2362c717f155439ebc690cbd9215", 67_869_037),
    8: ("6b522c1ea5c21006ce3398797eb20b131ca0024cc6e7b8f3d5d29fad1310a49c", 68_460_535),
}
_CLASSICAL_DIV2K_FILES = {
    2: ("ac6d4895f73aa1b3d563937e29dcedcfdff4d401280e248f23db3c6f68e8343b", 59_019_939),
    3: ("d835497f2332aae839ae19a033290ced8686fa2a795f76fc5153ec2c83003f75", 59_758_497),
    4: ("129dc773ba2d4c07f3eb0bb116fbe692011b7cc072d9ca12797cd3748198610a", 59_611_499),
    8: ("3c3ae9238a7125e52aab457df052aa8981adb2fb8e42b6d4112a96b3c19432d7", 60_202_999),
}
_LIGHT_FILES = {
    2: ("193b229909ca89cd8b55de9c9e7fce146ae759d59dfcd78d8feb9dd1d6fa0fd7", 17_147_989),
    3: ("53af0cf0b15876752c1c2646a71444f739523b3d562e126d200521a817ab5d2c", 17_180_437),
    4: ("09fad24e32ae62722e1a055efde9921328f4137981bab0a42a4a3a806306c58e", 17_225_941),
}
_REAL_M_GAN_FILES = {
    2: ("f397408977a3e07eb06afb7238d453a12ef35ebab7328a54241f307860dbe342", 66_974_517),
    4: ("b9afb61e65e04eb7f8aba5095d070bbe9af28df76acd0c9405aeb33b814bcfc6", 67_129_861),
}
_REAL_L_GAN = ("99adfa91350a84c99e946c1eb3d8fce34bc28f57d807b09dc8fe40a316328c0a", 142_473_939)

_REAL_M_DATA = "DIV2K + Flickr2K + OST, degraded with BSRGAN's practical degradation model"
_REAL_L_DATA = (
    "DIV2K + Flickr2K + OST + WED + FFHQ (first 2000) + Manga109 + SCUT-CTW1500 (first 100), "
    "degraded with BSRGAN's practical degradation model"
)
_PSNR_NOTE = (
    "no sha256 or size is published for the PSNR-oriented real-world files: the authors' "
    "README and test script name only the GAN files, and this file name comes from KAIR's "
    "download list (cszn/KAIR main_download_pretrained_models.py) and spandrel's tests. srzoo "
    "records the sha256 of the first download and checks the cached copy against it"
)


def _classical_weights(scale: int) -> tuple[WeightSpec, ...]:
    df2k_sha, df2k_size = _CLASSICAL_DF2K_FILES[scale]
    div2k_sha, div2k_size = _CLASSICAL_DIV2K_FILES[scale]
    df2k = _CLASSICAL_DF2K.get(scale)
    div2k = _CLASSICAL_DIV2K.get(scale)
    return (
        WeightSpec(
            scale=scale,
            source=f"{_RELEASE}/001_classicalSR_DF2K_s64w8_SwinIR-M_x{scale}.pth",
            sha256=df2k_sha,
            size=df2k_size,
            input_range=_INPUT,
            train_data=f"DF2K (DIV2K + Flickr2K), bicubic x{scale}, 64x64 LR patches",
            license=_LICENSE,
            metrics=set5_set14(scale, *df2k, source=_CLASSICAL_TABLE) if df2k else (),
        ),
        WeightSpec(
            scale=scale,
            source=f"{_RELEASE}/001_classicalSR_DIV2K_s48w8_SwinIR-M_x{scale}.pth",
            tag="div2k",
            sha256=div2k_sha,
            size=div2k_size,
            input_range=_INPUT,
            train_data=f"DIV2K, bicubic x{scale}, 48x48 LR patches",
            license=_LICENSE,
            metrics=set5_set14(scale, *div2k, source=_CLASSICAL_TABLE) if div2k else (),
        ),
    )


def _light_weights(scale: int) -> WeightSpec:
    sha, size = _LIGHT_FILES[scale]
    return WeightSpec(
        scale=scale,
        source=f"{_RELEASE}/002_lightweightSR_DIV2K_s64w8_SwinIR-S_x{scale}.pth",
        sha256=sha,
        size=size,
        input_range=_INPUT,
        train_data=f"DIV2K, bicubic x{scale}, 64x64 LR patches",
        license=_LICENSE,
        metrics=set5_set14(scale, *_LIGHT[scale], source=_LIGHT_TABLE),
    )


def _real_weights(
    scale: int, stem: str, data: str, gan: tuple[str, int]
) -> tuple[WeightSpec, WeightSpec]:
    # The authors publish visual comparisons for real-world SR, not benchmark PSNR.
    sha, size = gan
    return (
        WeightSpec(
            scale=scale,
            source=f"{_RELEASE}/{stem}_x{scale}_GAN.pth",
            sha256=sha,
            size=size,
            input_range=_INPUT,
            train_data=f"{data}; GAN training",
            license=_LICENSE,
        ),
        WeightSpec(
            scale=scale,
            source=f"{_RELEASE}/{stem}_x{scale}_PSNR.pth",
            tag="psnr",
            sha256=None,
            input_range=_INPUT,
            train_data=f"{data}; PSNR-oriented (L1) training",
            license=_LICENSE,
            sha256_note=_PSNR_NOTE,
        ),
    )


_M = {"embed_dim": 180, "depths": (6,) * 6, "num_heads": (6,) * 6, "window_size": 8}

register_model(
    ModelSpec(
        name="swinir",
        family="swinir",
        builder=SwinIR,
        scales=(2, 3, 4, 8),
        paper=_PAPER,
        code_license=_LICENSE,
        description=(
            "SwinIR-M for classical SR: 6 residual Swin blocks x 6 layers, 180 features, "
            "window 8; DF2K weights by default, DIV2K ones as tag 'div2k'"
        ),
        defaults={**_M, "mlp_ratio": 2.0, "upsampler": "pixelshuffle", "resi_connection": "1conv"},
        converter=convert_swinir,
        size_multiple=8,
        weights=tuple(w for s in (2, 3, 4, 8) for w in _classical_weights(s)),
    )
)
register_model(
    ModelSpec(
        name="swinir-light",
        family="swinir",
        builder=SwinIR,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license=_LICENSE,
        description=(
            "SwinIR-S for lightweight SR: 4 residual Swin blocks x 6 layers, 60 features, "
            "window 8, one-step pixel-shuffle head"
        ),
        defaults={
            "embed_dim": 60,
            "depths": (6,) * 4,
            "num_heads": (6,) * 4,
            "window_size": 8,
            "mlp_ratio": 2.0,
            "upsampler": "pixelshuffledirect",
            "resi_connection": "1conv",
        },
        converter=convert_swinir,
        size_multiple=8,
        weights=tuple(_light_weights(s) for s in (2, 3, 4)),
    )
)
register_model(
    ModelSpec(
        name="swinir-real",
        family="swinir",
        builder=SwinIR,
        scales=(2, 4),
        paper=_PAPER,
        code_license=_LICENSE,
        description=(
            "SwinIR-M for real-world SR (BSRGAN degradations): nearest+conv head; GAN weights "
            "by default, PSNR-oriented ones as tag 'psnr'"
        ),
        task="real-world",
        defaults={**_M, "mlp_ratio": 2.0, "upsampler": "nearest+conv", "resi_connection": "1conv"},
        converter=convert_swinir,
        size_multiple=8,
        weights=tuple(
            w
            for s in (4, 2)
            for w in _real_weights(
                s, "003_realSR_BSRGAN_DFO_s64w8_SwinIR-M", _REAL_M_DATA, _REAL_M_GAN_FILES[s]
            )
        ),
    )
)
register_model(
    ModelSpec(
        name="swinir-real-large",
        family="swinir",
        builder=SwinIR,
        # The architecture enlarges x2 or x4 (for training); the weights are x4.
        scales=(2, 4),
        default_scale=4,
        paper=_PAPER,
        code_license=_LICENSE,
        description=(
            "SwinIR-L for real-world SR (BSRGAN degradations): 9 residual Swin blocks x 6 layers, "
            "240 features, 8 heads, 3-conv closings; GAN weights by default, PSNR as tag 'psnr'"
        ),
        task="real-world",
        defaults={
            "embed_dim": 240,
            "depths": (6,) * 9,
            "num_heads": (8,) * 9,
            "window_size": 8,
            "mlp_ratio": 2.0,
            "upsampler": "nearest+conv",
            "resi_connection": "3conv",
        },
        converter=convert_swinir,
        size_multiple=8,
        weights=_real_weights(
            4, "003_realSR_BSRGAN_DFOWMFC_s64w8_SwinIR-L", _REAL_L_DATA, _REAL_L_GAN
        ),
    )
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "layers.0.residual_group.blocks.0."
# JingyunLiang/SwinIR's keys (KAIR's and spandrel's are the same); srzoo's own state dicts are
# these without the computed buffers.
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        _BLOCK0 + "norm1.weight",
        _BLOCK0 + "attn.relative_position_bias_table",
        _BLOCK0 + "attn.qkv.weight",
        _BLOCK0 + "attn.proj.weight",
        _BLOCK0 + "mlp.fc1.weight",
        "norm.weight",
    ),
}


def _ratio(hidden: int, dim: int) -> float:
    # hidden == int(dim * ratio): the plain quotient, or one just above it when int() rounded.
    ratio = hidden / dim
    return ratio if int(dim * ratio) == hidden else (hidden + 0.5) / dim


def detect_swinir(shapes: Shapes) -> Detected | None:
    """Recognise a SwinIR checkpoint (JingyunLiang/SwinIR keys) from keys and shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the Swin layers of each RSTB
    (``depths``), the heads of each RSTB (the last dimension of its relative-position bias
    table), ``window_size`` (the table has ``(2 * window - 1) ** 2`` rows), ``mlp_ratio`` (the
    MLP's hidden width over ``embed_dim``), ``qkv_bias``, ``patch_norm``, ``resi_connection``
    (one closing convolution, ``1conv``, or a ``Sequential`` of three, ``3conv``), the
    upsampler and the scale: ``conv_up1`` is the real-world ``nearest+conv`` head (x4 with a
    ``conv_up2``, else x2), ``conv_before_upsample`` without it the classical ``pixelshuffle``
    head (the scale from its sub-pixel stages, ``num_feat`` from its width), and a lone
    ``upsample.0`` the lightweight ``pixelshuffledirect`` head (``in_chans * scale**2``
    outputs). Only ``img_range`` (1) cannot be read: it multiplies no weight.

    Files with HAT's ``conv_block`` / ``overlap_attn`` or Swin2SR's ``logit_scale`` are not
    SwinIR's. The name: ``swinir-light`` for ``pixelshuffledirect``, ``swinir-real-large`` for
    ``nearest+conv`` with ``3conv`` closings, ``swinir-real`` for other ``nearest+conv`` files,
    ``swinir`` for ``pixelshuffle``; every variant has the same builder and converter.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a SwinIR.
    """
    if not shapes.has(*_LAYOUTS["official"]) or any(
        shapes.has_prefix(_BLOCK0 + k) for k in ("conv_block.", "attn.logit_scale")
    ):
        return None
    if shapes.has_prefix("layers.0.residual_group.overlap_attn."):
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
        or any(embed_dim % h for h in heads)
        or any(shapes.dim(t) != rows for t in tables)
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
        "window_size": (side + 1) // 2,
        "mlp_ratio": _ratio(hidden, embed_dim),
        "qkv_bias": shapes.has(_BLOCK0 + "attn.qkv.bias"),
        "patch_norm": shapes.has("patch_embed.norm.weight"),
        "resi_connection": resi,
    }
    num_feat = shapes.dim("conv_before_upsample.0.weight")
    if shapes.has("conv_up1.weight"):
        scale = 4 if shapes.has("conv_up2.weight") else 2
        upsampler, name = "nearest+conv", "swinir-real-large" if resi == "3conv" else "swinir-real"
    elif num_feat:
        scale = shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat)
        upsampler, name = "pixelshuffle", "swinir"
    else:
        scale = shuffle_factor(shapes.dim("upsample.0.weight"), in_chans)
        upsampler, name = "pixelshuffledirect", "swinir-light"
        if shapes.dim("upsample.0.weight", 1) != embed_dim:
            return None
    if not scale or (num_feat and shapes.dim("conv_last.weight") != in_chans):
        return None
    args["upsampler"] = upsampler
    if num_feat:
        args["num_feat"] = num_feat
    return Detected(name, scale, args, "official")


register_detector("swinir", detect_swinir, layouts=_LAYOUTS)
