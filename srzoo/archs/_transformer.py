"""Pieces the image transformers share: token layout, MLP, stochastic depth, residual convs, heads.

SwinIR, HAT, DAT and the transformers that followed them (DRCT, ATD, RGT, SRFormer...) all keep
the same outer frame: a 3x3 convolution to features, a body of residual groups working on
``(B, H, W, C)`` tokens, each group closed by a convolution (``"1conv"`` or the ``"3conv"``
bottleneck), a layer norm, and one of SwinIR's reconstruction heads. The parameter names here are
the ones their official checkpoints use (``fc1`` / ``fc2``, ``patch_embed.norm``,
``conv_before_upsample.0``, ``upsample.0``, ``conv_last``, ``conv_up1``...), so a family that
builds its frame from these pieces loads its official files unchanged.

Tokens stay ``(B, H, W, C)``: a channels-last image is the same memory, so going between tokens
and images is a free ``permute`` instead of upstream's flatten / transpose copies.
"""

from __future__ import annotations

from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ._blocks import Upsampler, pixel_shuffle_head, shuffle_factors
from ._window import shape_cached

__all__ = [
    "HEADS",
    "DropPath",
    "DynamicPosBias",
    "HeadKind",
    "Mlp",
    "PatchEmbed",
    "ReconstructionHead",
    "ResiConnection",
    "ToTokens",
    "drop_path",
    "image_mean",
    "init_transformer_weights",
    "masked_window_attention",
    "merge_heads",
    "residual_conv",
    "to_image",
    "to_tokens",
]

ResiConnection = Literal["1conv", "3conv"]
HeadKind = Literal["pixelshuffle", "pixelshuffledirect", "nearest+conv"]
HEADS: tuple[HeadKind, ...] = ("pixelshuffle", "pixelshuffledirect", "nearest+conv")


def to_image(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` tokens as a ``(B, C, H, W)`` image (a view, channels-last in memory)."""
    return x.permute(0, 3, 1, 2)


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` image as ``(B, H, W, C)`` tokens (a view; free for channels-last)."""
    return x.permute(0, 2, 3, 1)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """Attention output ``(B, heads, N, d)`` as tokens ``(B, N, heads * d)``, contiguous.

    An explicit copy, where ``transpose(...).reshape(...)`` would copy anyway on the CPU (the
    attention kernels return ``(B, heads, N, d)`` in memory): a reshape traced while the kernel's
    output happened to be laid out as ``(B, N, heads, d)`` becomes a view, which ONNX export's
    decomposition into plain matrix products cannot take under a free input size.
    """
    b, heads, n, d = x.shape
    return x.transpose(1, 2).clone(memory_format=torch.contiguous_format).view(b, n, heads * d)


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: in training, zero a residual branch for a random subset of the batch.

    The surviving branches are scaled by ``1 / (1 - rate)`` so the expectation is unchanged; in
    eval mode (or at rate 0) this is the identity.
    """
    if rate <= 0.0 or not training:
        return x
    keep = 1.0 - rate
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    return x * x.new_empty(shape).bernoulli_(keep).div_(keep)


class DropPath(nn.Module):
    """:func:`drop_path` as a module (upstream's ``drop_path`` attribute, which holds no weights).

    Args:
        p: Probability of dropping the branch of one sample, in [0, 1).
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ArgumentError(f"DropPath: p must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """The transformer's feed-forward part: linear, GELU, linear (keys ``fc1`` / ``fc2``).

    Args:
        dim: Token features.
        hidden: Hidden features.
    """

    def __init__(self, *, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PatchEmbed(nn.Module):
    """The layer norm on the tokens entering the body (upstream's patch embedding, patch size 1).

    Args:
        dim: Token features.
        norm: Normalise the tokens (upstream's ``patch_norm``).
    """

    def __init__(self, *, dim: int, norm: bool = True) -> None:
        super().__init__()
        self.norm: nn.Module = nn.LayerNorm(dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def residual_conv(dim: int, kind: str, *, name: str) -> nn.Module:
    """The convolution closing a residual group or the body.

    Args:
        dim: Channels in and out.
        kind: ``"1conv"`` (one 3x3) or ``"3conv"`` (3x3 to a quarter of the channels, 1x1, 3x3
            back: SwinIR-L's cheaper bottleneck).
        name: The network, for the error message.

    Raises:
        ArgumentError: ``kind`` is neither.
    """
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, padding=1)
    if kind == "3conv":
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, padding=1),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, padding=1),
        )
    raise ArgumentError(f"{name}: resi_connection must be '1conv' or '3conv', got {kind!r}")


@torch.no_grad()
def init_transformer_weights(module: nn.Module) -> None:
    """Upstream's initialisation (from the Swin Transformer), for ``model.apply``.

    Truncated-normal linear weights (std 0.02), zero biases, unit layer norms; convolutions keep
    torch's default. Position-bias tables are the family's own business.
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ReconstructionHead(nn.Module):
    """Base class giving a network SwinIR's three reconstruction heads, under SwinIR's names.

    A subclass calls :meth:`build_head` in its constructor and :meth:`reconstruct` on the deep
    features (plus the shallow skip) at the end of ``forward``:

    - ``"pixelshuffle"`` (classical): ``conv_before_upsample`` (3x3 + LeakyReLU),
      ``upsample`` (sub-pixel steps of ``num_feat``), ``conv_last``;
    - ``"pixelshuffledirect"`` (lightweight): ``upsample``, one 3x3 conv and one shuffle;
    - ``"nearest+conv"`` (real-world, x2 or x4): ``conv_before_upsample``, ``conv_up1``
      (``conv_up2`` at x4) after nearest-neighbour doublings, ``conv_hr``, ``conv_last``.
    """

    upsampler: HeadKind
    scale: int

    def build_head(
        self,
        upsampler: str,
        *,
        dim: int,
        num_feat: int,
        out_chans: int,
        scale: int,
        name: str,
    ) -> None:
        """Create the head's layers on ``self``.

        Args:
            upsampler: One of :data:`HEADS`.
            dim: Channels of the deep features.
            num_feat: Channels inside the ``"pixelshuffle"`` and ``"nearest+conv"`` heads.
            out_chans: Image channels out.
            scale: Upscaling factor: 3 or a power of two for ``"pixelshuffle"``, any positive
                integer for ``"pixelshuffledirect"``, 2 or 4 for ``"nearest+conv"``.
            name: The network, for error messages.

        Raises:
            ArgumentError: An unknown head, or a scale the head cannot make.
        """
        if upsampler == "pixelshuffle":
            shuffle_factors(scale, name=f"{name}'s 'pixelshuffle' upsampler")
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(dim, num_feat, 3, padding=1), nn.LeakyReLU(inplace=True)
            )
            self.upsample: nn.Module = Upsampler(scale=scale, n_feats=num_feat)
            self.conv_last = nn.Conv2d(num_feat, out_chans, 3, padding=1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = pixel_shuffle_head(dim, out_chans, scale)
        elif upsampler == "nearest+conv":
            if scale not in (2, 4):
                raise ArgumentError(
                    f"{name}: the 'nearest+conv' upsampler enlarges x2 or x4, not x{scale}"
                )
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(dim, num_feat, 3, padding=1), nn.LeakyReLU(inplace=True)
            )
            self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
            if scale == 4:
                self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, padding=1)
            self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, padding=1)
            self.conv_last = nn.Conv2d(num_feat, out_chans, 3, padding=1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        else:
            raise ArgumentError(
                f"{name}: upsampler must be one of {', '.join(map(repr, HEADS))}, got {upsampler!r}"
            )
        self.upsampler = cast(HeadKind, upsampler)  # checked above
        self.scale = scale

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features ``(B, dim, H, W)`` -> the image ``(B, out_chans, H*s, W*s)``."""
        if self.upsampler == "pixelshuffle":
            return self.conv_last(self.upsample(self.conv_before_upsample(x)))
        if self.upsampler == "pixelshuffledirect":
            return self.upsample(x)
        x = self.conv_before_upsample(x)
        x = self.lrelu(self.conv_up1(F.interpolate(x, scale_factor=2, mode="nearest")))
        if self.scale == 4:
            x = self.lrelu(self.conv_up2(F.interpolate(x, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(x)))


@shape_cached(maxsize=16)
def _mean_tensor(mean: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.tensor(mean, device=device, dtype=dtype).view(1, -1, 1, 1)


def image_mean(mean: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The ``(1, C, 1, 1)`` mean colour a network subtracts, on ``device`` in ``dtype``.

    A cached constant rather than a buffer: the official files do not hold the mean, and a module
    built on the meta device is filled from the file alone.
    """
    return _mean_tensor(mean, device, dtype)


class ToTokens(nn.Module):
    """``(B, C, H, W)`` -> ``(B, H, W, C)``: the layout the transformer body works in.

    Upstream flattens to ``(B, H*W, C)`` here; keeping the two spatial axes is the same memory
    and saves reshapes in every block.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1).contiguous()


class DynamicPosBias(nn.Module):
    """The dynamic relative position bias: an MLP from a ``(dy, dx)`` offset to one bias per head.

    Args:
        dim: Width the MLP is derived from (a quarter of it is the hidden width).
        num_heads: Attention heads (outputs).
    """

    def __init__(self, *, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.pos_dim = dim // 4
        self.pos_proj = nn.Linear(2, self.pos_dim)
        self.pos1 = self._stage()
        self.pos2 = self._stage()
        # The last bias adds one value to every logit of a head, which the softmax ignores: its
        # gradient is zero by construction. Frozen, so that optimisers and gradient checks skip
        # it (the value is kept, and stays in the state dict).
        head = nn.Linear(self.pos_dim, num_heads)
        head.bias.requires_grad_(False)
        self.pos3 = nn.Sequential(nn.LayerNorm(self.pos_dim), nn.ReLU(inplace=True), head)

    def _stage(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LayerNorm(self.pos_dim), nn.ReLU(inplace=True), nn.Linear(self.pos_dim, self.pos_dim)
        )

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.pos3(self.pos2(self.pos1(self.pos_proj(coords))))


def masked_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    scale: float,
) -> torch.Tensor:
    """Scaled dot-product attention within windows, with a relative-position bias and the
    shifted windows' mask.

    Args:
        q: ``(batch * num_windows, heads, N, head_dim)`` queries, images one after another.
        k: Keys, shaped as ``q``.
        v: Values, shaped as ``q``.
        bias: ``(1, heads, N, N)`` additive bias, the same for every window.
        mask: ``(num_windows, N, N)`` additive mask of one image's windows, or ``None``.
        scale: Logit scale.

    Returns:
        ``(batch * num_windows, heads, N, head_dim)``.
    """
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)
    full = bias + mask.unsqueeze(1)  # (num_windows, heads, N, N)
    windows, nw = q.shape[0], mask.shape[0]
    if torch.compiler.is_exporting():
        # Free sizes: slicing the batch image by image would fix the traced window count, so
        # the mask is repeated for every image instead (a copy beyond a batch of one).
        attn_mask = full.unsqueeze(0).expand(windows // nw, -1, -1, -1, -1)
        attn_mask = attn_mask.reshape(windows, *full.shape[1:])
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
    # Image by image, so that the mask is not repeated for every image of the batch.
    parts = [
        F.scaled_dot_product_attention(
            q[i * nw : (i + 1) * nw],
            k[i * nw : (i + 1) * nw],
            v[i * nw : (i + 1) * nw],
            attn_mask=full,
            scale=scale,
        )
        for i in range(windows // nw)
    ]
    return parts[0] if len(parts) == 1 else torch.cat(parts)
