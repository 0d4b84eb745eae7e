"""GRL: global, regional and local attention for image restoration (the super-resolution models).

Paper: Li, Fan, Xiang, Demandolx, Ranjan, Timofte, Van Gool, "Efficient and Explicit Modelling
of Image Hierarchies for Image Restoration", CVPR 2023, arXiv:2303.00748.

Parameter names follow ofsoundof/GRL-Image-Restoration ``models/networks/grl.py`` (and
``models/common/mixed_attn_block_efficient.py``), so the released ``.ckpt`` files load once
:func:`convert_grl` has removed their ``model.`` prefix and their stored tables.

The frame is SwinIR's (a 3x3 convolution, a layer norm, stages of transformer blocks each closed
by a convolution and a skip, a layer norm, a convolution and a skip over the body, SwinIR's
reconstruction heads; the sub-pixel convolutions sit under ``upsample.up``). Each block splits
one linear ``qkv`` projection into two halves of the heads:

- window attention: ``window x window`` windows, shifted cyclically by half a window in every
  second block (Swin's mask, -100 between regions);
- anchored stripe attention: stripes of ``stripe_size`` (rows x columns; transposed in every
  second block), shifted by half a stripe in blocks ``4k + 2`` and ``4k + 3``. An anchor map
  (the tokens average-pooled by ``anchor_window_down_factor``, projected to half the features)
  is cut into the matching smaller stripes; the anchors first attend to the stripe's keys and
  values, then the stripe's queries attend to the anchors, whose values are that first result.

Every attention is cosine attention with a learned per-head temperature (clamped at 100) and a
continuous position bias: a two-layer MLP of 512 hidden units maps log-spaced relative
coordinates to ``16 * sigmoid(bias)``, one table per attention. The outputs of both halves are
concatenated and projected; the block adds the layer-normed result (post-norm), plus, in
GRL-B, a convolutional channel-attention branch (``local_connection``), then a post-normed MLP.

Inputs are RGB in [0, 1]; the DIV2K mean is removed inside. Any size works: the image is
reflect-padded at the bottom and right to a multiple of ``max(window_size, *stripe_size)`` (the
registry's ``size_multiple``) and the output cropped, as the original's ``check_image_size``
does (where that falls back to zero padding, for inputs smaller than the pad, srzoo keeps
reflecting periodically).

What srzoo keeps out of the state dict: the official files store the position tables, indices
and shift masks for the training patch size (``table_w``, ``index_sh_a2w``, ``mask_sv_w2a``,
... 13 tensors); srzoo computes them for the input at hand, cached per shape, device and dtype,
and :func:`convert_grl` drops them. Attention runs through
:func:`torch.nn.functional.scaled_dot_product_attention` (the bias plus the mask as a float
``attn_mask``, the temperature folded into the normalised queries, ``scale=1``); tokens move
between the image and the (shifted) windows and stripes by one gather each way with cached
indices, where upstream rolls, partitions, reverses and rolls back.

Supported: the configurations the authors trained (linear ``qkv``, average- or max-pooled
anchors in one stage, ``"1conv"`` / ``"3conv"`` stage convolutions, stripes of fixed size).
Not supported: the ablation options (separable-convolution projections, convolution or
patch-merging anchors, stripe groups that scale with the image, Euclidean distance) and the
scale-1 restoration files (denoising, deblurring, JPEG, demosaicking), which need a head without
upsampling.

GRL declares no receptive-field radius (``receptive_field = None``): its windows and stripes are
shifted cyclically, and GRL-B's channel attention pools the whole image.

Registered models (no weights registered), all with window 32 and 64 x 64 stripes, the SR
configuration of the authors' ``config/experiment/sr/grl/grl_p256.yaml``:

- ``grl`` (GRL-B): 180 features, stages of (4, 4, 8, 8, 8, 4, 4) blocks, 3 + 3 heads, MLP ratio
  2, anchors pooled by 2 (``scripts/grl/grl_test.md``), local channel-attention branch,
  pixel-shuffle head; x2, x3, x4.
- ``grl-small`` (GRL-S): 128 features, (4, 4, 4, 4) blocks, 2 + 2 heads, anchors pooled by 4,
  pixel-shuffle head; x2, x3, x4.
- ``grl-tiny`` (GRL-T): 64 features, as GRL-S, one-step pixel-shuffle head; x2, x3, x4.

The authors publish the checkpoints as assets of the GitHub release ``v1.0.0`` of
ofsoundof/GRL-Image-Restoration (``sr_grl_{base,small,tiny}_c3x{2,3,4}.ckpt``, with the
denoising, deblurring, JPEG, demosaicking and real-world files beside them), without a
published sha256; srzoo registers no file it cannot check by hash. They load with
``srzoo.load_file``: the detector reads the window, the stripe and the anchor pooling from the
tables stored in them.

The code is licensed MIT (the repository's ``LICENSE``).

Example:
    >>> model = srzoo.load_file("sr_grl_small_c3x4.ckpt")
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

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
    Mlp,
    ReconstructionHead,
    ResiConnection,
    image_mean,
    init_transformer_weights,
    merge_heads,
    residual_conv,
    to_image,
    to_tokens,
)
from ._window import MASK_VALUE, pad_to_multiple, shape_cached, shift_mask, window_partition

__all__ = [
    "GRL",
    "AffineTransform",
    "AnchorStripeAttention",
    "GRLBlock",
    "GRLStage",
    "MixedAttention",
    "WindowAttention",
    "convert_grl",
    "detect_grl",
]

AnchorPool = Literal["avgpool", "maxpool"]
Pair = tuple[int, int]

# The temperature of the cosine attention is clamped at 1 / 0.01, as upstream does.
_MAX_LOGIT_SCALE = math.log(100.0)
# Width of the position-bias MLP (fixed upstream).
_CPB_HIDDEN = 512


# --------------------------------------------------------------------------------------------
# Cached tables (pure functions of shapes, devices and dtypes)
# --------------------------------------------------------------------------------------------


@shape_cached(maxsize=32)
def _coords_table(
    window: Pair, down: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The ``((wh + ah - 1) * (ww + aw - 1), 2)`` log-spaced relative coordinates, row-major.

    A window of ``window`` attends to its anchor window of ``window // down`` (``down`` 1: to
    itself). Offsets run from ``-(a - 1) - (w - a) // 2`` to ``w - 1 - (w - a) // 2`` along each
    axis, are divided by the positive end, scaled to +-8 and compressed by
    ``sign(t) * log2(|t| + 1) / 3``: upstream's ``get_relative_coords_table_all``.
    """
    axes = []
    for w in window:
        a = w // down
        hi, lo = w - 1 - (w - a) // 2, -(a - 1) - (w - a) // 2
        axes.append(torch.arange(lo, hi + 1, device=device, dtype=torch.float32) / hi * 8)
    grid = torch.stack(torch.meshgrid(axes[0], axes[1], indexing="ij"), dim=-1).reshape(-1, 2)
    return (torch.sign(grid) * torch.log2(grid.abs() + 1.0) / 3.0).to(dtype)


def _grid(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Row and column of each token of an h x w window, row-major.
    return (
        torch.arange(h, device=device).repeat_interleave(w),
        torch.arange(w, device=device).repeat(h),
    )


@shape_cached()
def _position_index(
    window: Pair, down: int, window_to_anchor: bool, device: torch.device
) -> torch.Tensor:
    """Index into :func:`_coords_table` of each (query, key) pair of a window and its anchors.

    Window tokens and anchor tokens both count from ``(0, 0)`` of their own grids (upstream's
    ``get_relative_position_index_simple``). ``window_to_anchor``: rows are the window's tokens,
    columns the anchors'; else the reverse. With ``down`` 1 this is Swin's index.
    """
    (wh, ww), (ah, aw) = window, (window[0] // down, window[1] // down)
    wy, wx = _grid(wh, ww, device)
    ay, ax = _grid(ah, aw, device)
    if window_to_anchor:
        dy, dx = wy[:, None] - ay[None, :] + ah - 1, wx[:, None] - ax[None, :] + aw - 1
    else:
        dy, dx = ay[:, None] - wy[None, :] + wh - 1, ax[:, None] - wx[None, :] + ww - 1
    return dy * (aw + ww - 1) + dx


@shape_cached()
def _order(
    h: int, w: int, window: Pair, shift: Pair, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(to_windows, to_image)`` gather indices over the ``h * w`` tokens of an image.

    ``to_windows`` lists, window after window (row-major inside), the image index of each token
    of the image rolled by ``-shift``: upstream's ``torch.roll`` then window partition.
    ``to_image`` is its inverse: window reverse then the roll back.
    """
    pos = torch.arange(h * w, device=device).view(1, h, w, 1)
    if shift != (0, 0):
        pos = torch.roll(pos, shifts=(-shift[0], -shift[1]), dims=(1, 2))
    to_windows = window_partition(pos, window).flatten()
    # The inverse permutation by a scatter (exporters to ONNX have no sort).
    back = torch.empty_like(to_windows).scatter_(0, to_windows, torch.arange(h * w, device=device))
    return to_windows, back


def _regions(n: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    # Upstream fills the slices [0, -window), [-window, -shift), [-shift, None) with 0, 1, 2 in
    # that order; with shift 0 the last slice is the whole axis.
    i = torch.arange(n, device=device)
    ids = (i >= n - window).long()
    return torch.where(i >= (n - shift if shift > 0 else 0), torch.full_like(ids, 2), ids)


def _region_windows(
    h: int, w: int, window: Pair, shift: Pair, device: torch.device
) -> torch.Tensor:
    ids = _regions(h, window[0], shift[0], device)[:, None] * 3 + _regions(
        w, window[1], shift[1], device
    )
    return window_partition(ids[None, :, :, None], window).squeeze(-1)  # (nW, wh * ww)


@shape_cached()
def _stripe_mask(
    h: int,
    w: int,
    stripe: Pair,
    down: int,
    window_to_anchor: bool,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The additive mask of shifted stripes and their anchors over an ``h x w`` image.

    ``(nW, N, N / down**2)`` for ``window_to_anchor``, else ``(nW, N / down**2, N)``: -100
    where the stripe token and the anchor token came from different regions before the shift
    (upstream's ``calculate_mask_all``, shift half a stripe, anchors' shift that over ``down``).
    """
    shift = (stripe[0] // 2, stripe[1] // 2)
    tokens = _region_windows(h, w, stripe, shift, device)
    anchors = _region_windows(
        h // down,
        w // down,
        (stripe[0] // down, stripe[1] // down),
        (shift[0] // down, shift[1] // down),
        device,
    )
    if window_to_anchor:
        differ = tokens[:, :, None] != anchors[:, None, :]
    else:
        differ = anchors[:, :, None] != tokens[:, None, :]
    zero = torch.zeros((), device=device, dtype=dtype)
    return torch.where(differ, torch.full_like(zero, MASK_VALUE), zero)


# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------


class AffineTransform(nn.Module):
    """The temperature and continuous position bias of one cosine attention.

    Args:
        num_heads: Attention heads.
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.cpb_mlp = nn.Sequential(
            nn.Linear(2, _CPB_HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(_CPB_HIDDEN, num_heads, bias=False),
        )

    def temperature(self) -> torch.Tensor:
        """The ``(heads, 1, 1)`` factor of the cosine similarities."""
        return torch.clamp(self.logit_scale, max=_MAX_LOGIT_SCALE).exp()

    def bias(self, coords: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The ``(heads, N1, N2)`` bias: ``16 * sigmoid(mlp(coords))`` gathered by ``index``."""
        table = self.cpb_mlp(coords)  # (rows, heads)
        n1, n2 = index.shape
        return 16 * torch.sigmoid(table[index.reshape(-1)].view(n1, n2, -1).permute(2, 0, 1))


def _cosine_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    transform: AffineTransform,
    coords: torch.Tensor,
    index: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """``softmax(cos(q, k) * temperature + bias + mask) @ v`` for ``(B', heads, N, d)`` inputs.

    The temperature multiplies the normalised queries, so SDPA (``scale=1``) computes upstream's
    explicit product, softmax and weighted sum.
    """
    windows, heads, n1, _ = q.shape
    n2 = k.shape[2]
    bias = transform.bias(coords, index).to(q.dtype)
    if mask is None:
        attn_mask = bias.unsqueeze(0).expand(windows, heads, n1, n2)
    else:
        n_win = mask.shape[0]
        combined = mask.unsqueeze(1) + bias.unsqueeze(0)  # (nW, heads, N1, N2)
        attn_mask = combined.unsqueeze(0).expand(windows // n_win, -1, -1, -1, -1)
        attn_mask = attn_mask.reshape(windows, heads, n1, n2)
    qn = F.normalize(q, dim=-1) * transform.temperature().to(q.dtype)
    kn = F.normalize(k, dim=-1)
    return F.scaled_dot_product_attention(qn, kn, v, attn_mask=attn_mask, scale=1.0)


class WindowAttention(nn.Module):
    """Cosine attention in (shifted) square windows over one half of the ``qkv`` channels.

    Args:
        num_heads: Attention heads.
        window_size: Side of the window.
        shift: Shift the windows by half a window.
    """

    def __init__(self, *, num_heads: int, window_size: int, shift: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.shift_size = window_size // 2 if shift else 0
        self.attn_transform = AffineTransform(num_heads)

    def forward(self, qkv: torch.Tensor, size: Pair) -> torch.Tensor:
        """``(B, H * W, 3 * C')`` query, key and value features -> ``(B, H * W, C')``."""
        b, n, c3 = qkv.shape
        h, w = size
        win, s = self.window_size, self.shift_size
        heads, dim = self.num_heads, c3 // 3
        to_windows, to_image_order = _order(h, w, (win, win), (s, s), qkv.device)
        t = qkv.index_select(1, to_windows).view(-1, win * win, 3, heads, dim // heads)
        q, k, v = t.permute(2, 0, 3, 1, 4).unbind(0)
        mask = shift_mask(h, w, win, s, device=qkv.device, dtype=qkv.dtype) if s else None
        coords = _coords_table((win, win), 1, qkv.device, qkv.dtype)
        index = _position_index((win, win), 1, True, qkv.device)
        out = _cosine_attention(q, k, v, self.attn_transform, coords, index, mask)
        return merge_heads(out).view(b, n, dim).index_select(1, to_image_order)

    def extra_repr(self) -> str:
        return f"window_size={self.window_size}, shift_size={self.shift_size}"


class AnchorStripeAttention(nn.Module):
    """Anchored stripe attention over the other half of the ``qkv`` channels.

    Args:
        num_heads: Attention heads.
        stripe_size: Rows and columns of a stripe (multiples of ``down``).
        shift: Shift the stripes by half a stripe (and the anchors by that over ``down``).
        down: Factor the anchors are pooled by.
    """

    def __init__(self, *, num_heads: int, stripe_size: Pair, shift: bool, down: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.stripe_size = stripe_size
        self.shift = shift
        self.down = down
        self.attn_transform1 = AffineTransform(num_heads)
        self.attn_transform2 = AffineTransform(num_heads)

    def forward(self, qkv: torch.Tensor, anchor: torch.Tensor, size: Pair) -> torch.Tensor:
        """``(B, H * W, 3 * C')`` features, ``(B, H/d * W/d, C')`` anchors -> ``(B, H * W, C')``."""
        b, n, c3 = qkv.shape
        h, w = size
        heads, dim, down, stripe = self.num_heads, c3 // 3, self.down, self.stripe_size
        shift = (stripe[0] // 2, stripe[1] // 2) if self.shift else (0, 0)
        a_stripe = (stripe[0] // down, stripe[1] // down)
        a_shift = (shift[0] // down, shift[1] // down)
        dev, dtype = qkv.device, qkv.dtype
        to_windows, to_image_order = _order(h, w, stripe, shift, dev)
        a_windows, _ = _order(h // down, w // down, a_stripe, a_shift, dev)
        t = qkv.index_select(1, to_windows).view(-1, stripe[0] * stripe[1], 3, heads, dim // heads)
        q, k, v = t.permute(2, 0, 3, 1, 4).unbind(0)
        a = anchor.index_select(1, a_windows).view(q.shape[0], -1, heads, dim // heads)
        a = a.transpose(1, 2)
        coords = _coords_table(stripe, down, dev, dtype)
        mask_a2w = mask_w2a = None
        if self.shift:
            mask_a2w = _stripe_mask(h, w, stripe, down, False, dev, dtype)
            mask_w2a = _stripe_mask(h, w, stripe, down, True, dev, dtype)
        # The anchors gather the stripe, then the stripe reads the anchors.
        index = _position_index(stripe, down, False, dev)
        summary = _cosine_attention(a, k, v, self.attn_transform1, coords, index, mask_a2w)
        index = _position_index(stripe, down, True, dev)
        out = _cosine_attention(q, a, summary, self.attn_transform2, coords, index, mask_w2a)
        return merge_heads(out).view(b, n, dim).index_select(1, to_image_order)

    def extra_repr(self) -> str:
        return f"stripe_size={self.stripe_size}, shift={self.shift}, down={self.down}"


class _QKV(nn.Module):
    """The shared query/key/value projection (key ``qkv.body``)."""

    def __init__(self, dim: int, bias: bool) -> None:
        super().__init__()
        self.body = nn.Linear(dim, dim * 3, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _PooledAnchor(nn.Module):
    """Pool the image by ``down``, project to half the features (key ``anchor.body.0``)."""

    def __init__(self, dim: int, down: int, pool: AnchorPool) -> None:
        super().__init__()
        self.down = down
        self.pool = pool
        self.reduction = nn.Linear(dim, dim // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> ``(B, H/d, W/d, C/2)`` anchors."""
        image = to_image(x)
        d = self.down
        pooled = F.avg_pool2d(image, d, d) if self.pool == "avgpool" else F.max_pool2d(image, d, d)
        return self.reduction(to_tokens(pooled))


class _Anchor(nn.Module):
    """The anchor projection (keys ``anchor.body.0.reduction``)."""

    def __init__(self, dim: int, down: int, pool: AnchorPool) -> None:
        super().__init__()
        self.body = nn.ModuleList([_PooledAnchor(dim, down, pool)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body[0](x)
        return out


class MixedAttention(nn.Module):
    """One projection, window attention on half of it, anchored stripe attention on the other.

    Args:
        dim: Token features (a multiple of twice each head count).
        num_heads_window: Heads of the window attention.
        num_heads_stripe: Heads of the stripe attention.
        window_size: Side of the attention window.
        window_shift: Shift the windows by half a window.
        stripe_size: Rows and columns of a stripe.
        stripe_shift: Shift the stripes by half a stripe.
        qkv_bias: Learn a bias for the ``qkv`` projection.
        anchor_proj_type: ``"avgpool"`` or ``"maxpool"``.
        anchor_window_down_factor: Factor the anchors are pooled by.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads_window: int,
        num_heads_stripe: int,
        window_size: int,
        window_shift: bool,
        stripe_size: Pair,
        stripe_shift: bool,
        qkv_bias: bool,
        anchor_proj_type: AnchorPool,
        anchor_window_down_factor: int,
    ) -> None:
        super().__init__()
        self.qkv = _QKV(dim, qkv_bias)
        self.anchor = _Anchor(dim, anchor_window_down_factor, anchor_proj_type)
        self.window_attn = WindowAttention(
            num_heads=num_heads_window, window_size=window_size, shift=window_shift
        )
        self.stripe_attn = AnchorStripeAttention(
            num_heads=num_heads_stripe,
            stripe_size=stripe_size,
            shift=stripe_shift,
            down=anchor_window_down_factor,
        )
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        b, h, w, c = x.shape
        qkv = self.qkv(x).view(b, h * w, 3 * c)
        anchor = self.anchor(x).reshape(b, -1, c // 2)
        half = 3 * c // 2
        x_window = self.window_attn(qkv[..., :half], (h, w))
        x_stripe = self.stripe_attn(qkv[..., half:], anchor, (h, w))
        return self.proj(torch.cat([x_window, x_stripe], dim=-1)).view(b, h, w, c)


class _ChannelAttention(nn.Module):
    """RCAN's channel attention (key ``attention``)."""

    def __init__(self, dim: int, reduction: int) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // reduction, dim, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class _LocalBranch(nn.Module):
    """GRL-B's local branch: 3x3 conv to a quarter, GELU, 3x3 conv back, channel attention."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.cab = nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(dim // 4, dim, 3, padding=1),
            _ChannelAttention(dim, 18),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        return to_tokens(self.cab(to_image(x)))


class GRLBlock(nn.Module):
    """One GRL block: mixed attention and an MLP, each post-normed and added to the input.

    Args:
        dim: Token features.
        num_heads_window: Heads of the window attention.
        num_heads_stripe: Heads of the stripe attention.
        window_size: Side of the attention window.
        window_shift: Shift the windows by half a window.
        stripe_size: Rows and columns of a stripe (already transposed for column stripes).
        stripe_shift: Shift the stripes by half a stripe.
        mlp_ratio: Hidden features of the MLP per token feature.
        qkv_bias: Learn a bias for the ``qkv`` projection.
        anchor_proj_type: ``"avgpool"`` or ``"maxpool"``.
        anchor_window_down_factor: Factor the anchors are pooled by.
        local_connection: Add the convolutional channel-attention branch (GRL-B).
        drop_path: Stochastic-depth rate of both branches (training only).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads_window: int,
        num_heads_stripe: int,
        window_size: int,
        window_shift: bool,
        stripe_size: Pair,
        stripe_shift: bool,
        mlp_ratio: float,
        qkv_bias: bool,
        anchor_proj_type: AnchorPool,
        anchor_window_down_factor: int,
        local_connection: bool,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.attn = MixedAttention(
            dim=dim,
            num_heads_window=num_heads_window,
            num_heads_stripe=num_heads_stripe,
            window_size=window_size,
            window_shift=window_shift,
            stripe_size=stripe_size,
            stripe_shift=stripe_shift,
            qkv_bias=qkv_bias,
            anchor_proj_type=anchor_proj_type,
            anchor_window_down_factor=anchor_window_down_factor,
        )
        self.norm1 = nn.LayerNorm(dim)
        self.conv: nn.Module | None = _LocalBranch(dim) if local_connection else None
        self.drop_path = DropPath(drop_path)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens, sides multiples of the window and stripes -> the same shape."""
        out = x + self.drop_path(self.norm1(self.attn(x)))
        if self.conv is not None:
            out = out + self.conv(x)
        return out + self.drop_path(self.norm2(self.mlp(out)))


class GRLStage(nn.Module):
    """A stage: ``depth`` blocks, a convolution, a skip over both.

    Block ``i`` shifts its windows when ``i`` is even, uses column stripes (``stripe_size``
    transposed) when ``i`` is odd and, with ``stripe_shift``, shifts its stripes when
    ``i % 4`` is 2 or 3: upstream's schedule.

    Args:
        dim: Token features.
        depth: Blocks in the stage.
        num_heads_window: Heads of the window attention.
        num_heads_stripe: Heads of the stripe attention.
        window_size: Side of the attention window.
        stripe_size: Rows and columns of the row stripes.
        stripe_shift: Shift the stripes of blocks ``4k + 2`` and ``4k + 3``.
        mlp_ratio: Hidden features of the MLPs per token feature.
        qkv_bias: Learn a bias for the ``qkv`` projections.
        anchor_proj_type: ``"avgpool"`` or ``"maxpool"``.
        anchor_window_down_factor: Factor the anchors are pooled by.
        local_connection: Add the convolutional channel-attention branches (GRL-B).
        drop_path: Stochastic-depth rate of each block.
        conv_type: ``"1conv"`` or ``"3conv"`` closing convolution.
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        num_heads_window: int,
        num_heads_stripe: int,
        window_size: int,
        stripe_size: Pair,
        stripe_shift: bool,
        mlp_ratio: float,
        qkv_bias: bool,
        anchor_proj_type: AnchorPool,
        anchor_window_down_factor: int,
        local_connection: bool,
        drop_path: Sequence[float] = (),
        conv_type: ResiConnection = "1conv",
    ) -> None:
        super().__init__()
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.ModuleList(
            GRLBlock(
                dim=dim,
                num_heads_window=num_heads_window,
                num_heads_stripe=num_heads_stripe,
                window_size=window_size,
                window_shift=i % 2 == 0,
                stripe_size=stripe_size if i % 2 == 0 else (stripe_size[1], stripe_size[0]),
                stripe_shift=stripe_shift and i % 4 in (2, 3),
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                anchor_proj_type=anchor_proj_type,
                anchor_window_down_factor=anchor_window_down_factor,
                local_connection=local_connection,
                drop_path=rates[i],
            )
            for i in range(depth)
        )
        self.conv = residual_conv(dim, conv_type, name="GRL")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        res = x
        for block in self.blocks:
            res = block(res)
        return to_tokens(self.conv(to_image(res))) + x


class _Upsample(nn.Module):
    """Upstream's wrapper of the sub-pixel stages (keys ``upsample.up.<i>``)."""

    def __init__(self, up: nn.Module) -> None:
        super().__init__()
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.up(x)
        return out


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ArgumentError(f"GRL: {message}")


class GRL(ReconstructionHead):
    """GRL for super-resolution.

    Takes RGB in [0, 1] at any size (padded inside to a multiple of
    ``max(window_size, *stripe_size)``).

    Args:
        scale: Upscaling factor: 3 or a power of two for ``"pixelshuffle"``, any positive
            integer for ``"pixelshuffledirect"``, 2 or 4 for ``"nearest+conv"``.
        in_channels: Image channels (in and out).
        embed_dim: Token features (a multiple of twice every head count).
        depths: Blocks in each stage.
        num_heads_window: Window-attention heads in each stage.
        num_heads_stripe: Stripe-attention heads in each stage.
        window_size: Side of the attention window (at least 2).
        stripe_size: Rows and columns of the row stripes (multiples of
            ``anchor_window_down_factor``); column stripes are the transpose.
        stripe_shift: Shift the stripes of every third and fourth block by half a stripe.
        mlp_ratio: Hidden features of the MLPs per token feature.
        qkv_bias: Learn a bias for the ``qkv`` projections.
        anchor_proj_type: How the anchors are pooled: ``"avgpool"`` or ``"maxpool"``.
        anchor_window_down_factor: Factor the anchors are pooled by.
        local_connection: Add the convolutional channel-attention branch to every block (GRL-B;
            needs ``embed_dim >= 18``).
        conv_type: Convolution closing each stage and the body: ``"1conv"`` or ``"3conv"``.
        upsampler: Reconstruction head: ``"pixelshuffle"`` (classical), ``"pixelshuffledirect"``
            (lightweight) or ``"nearest+conv"`` (real-world).
        img_range: Value range the network works in (1 for every released file).
        drop_path_rate: Stochastic depth, rising linearly from 0 to this over the blocks
            (training only; upstream's default).
        num_feat: Features of the ``"pixelshuffle"`` and ``"nearest+conv"`` heads (64 upstream).

    Raises:
        ArgumentError: An inconsistent configuration.

    Example:
        >>> model = GRL(scale=4, embed_dim=64, depths=(4,) * 4, num_heads_window=(2,) * 4,
        ...             num_heads_stripe=(2,) * 4, anchor_window_down_factor=4,
        ...             local_connection=False, upsampler="pixelshuffledirect")
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        embed_dim: int = 180,
        depths: Sequence[int] = (4, 4, 8, 8, 8, 4, 4),
        num_heads_window: Sequence[int] = (3,) * 7,
        num_heads_stripe: Sequence[int] = (3,) * 7,
        window_size: int = 32,
        stripe_size: Sequence[int] = (64, 64),
        stripe_shift: bool = True,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        anchor_proj_type: AnchorPool = "avgpool",
        anchor_window_down_factor: int = 2,
        local_connection: bool = True,
        conv_type: ResiConnection = "1conv",
        upsampler: HeadKind = "pixelshuffle",
        img_range: float = 1.0,
        drop_path_rate: float = 0.1,
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        stripe = tuple(stripe_size)
        down = anchor_window_down_factor
        _check(scale >= 1, f"scale must be a positive integer, got {scale}")
        _check(in_channels >= 1, f"in_channels must be at least 1, got {in_channels}")
        _check(
            len(depths) == len(num_heads_window) == len(num_heads_stripe) > 0 and min(depths) >= 1,
            "depths, num_heads_window and num_heads_stripe need one positive entry per stage, "
            f"got {tuple(depths)}, {tuple(num_heads_window)} and {tuple(num_heads_stripe)}",
        )
        heads = (*num_heads_window, *num_heads_stripe)
        _check(
            min(heads) >= 1 and all(embed_dim % (2 * n) == 0 for n in heads),
            f"embed_dim ({embed_dim}) must be a multiple of twice every head count {heads}",
        )
        _check(window_size >= 2, f"window_size must be at least 2, got {window_size}")
        _check(
            len(stripe) == 2 and down >= 1 and all(s >= 2 and s % down == 0 for s in stripe),
            f"stripe_size must be two sides of at least 2, multiples of "
            f"anchor_window_down_factor ({down}), got {stripe}",
        )
        self.pad_size = max(window_size, *stripe)
        _check(
            all(self.pad_size % s == 0 for s in (window_size, *stripe)),
            f"window_size {window_size} and stripe_size {stripe} must all divide the largest",
        )
        _check(
            anchor_proj_type in ("avgpool", "maxpool"),
            f"anchor_proj_type must be 'avgpool' or 'maxpool', got {anchor_proj_type!r}",
        )
        _check(
            not local_connection or embed_dim >= 18,
            f"local_connection needs embed_dim >= 18 (its channel attention divides by 18), "
            f"got {embed_dim}",
        )
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = in_channels
        # Cyclic shifts and GRL-B's channel attention: every pixel sees the whole image.
        self.receptive_field: int | None = None
        self.img_range = img_range
        self.window_size = window_size
        self.stripe_size: Pair = (stripe[0], stripe[1])
        self._mean = DIV2K_RGB_MEAN if in_channels == 3 else (0.0,)

        self.conv_first = nn.Conv2d(in_channels, embed_dim, 3, padding=1)
        self.norm_start = nn.LayerNorm(embed_dim)
        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
        self.layers = nn.ModuleList()
        start = 0
        for depth, hw, hs in zip(depths, num_heads_window, num_heads_stripe, strict=True):
            self.layers.append(
                GRLStage(
                    dim=embed_dim,
                    depth=depth,
                    num_heads_window=hw,
                    num_heads_stripe=hs,
                    window_size=window_size,
                    stripe_size=self.stripe_size,
                    stripe_shift=stripe_shift,
                    mlp_ratio=mlp_ratio,
                    qkv_bias=qkv_bias,
                    anchor_proj_type=anchor_proj_type,
                    anchor_window_down_factor=down,
                    local_connection=local_connection,
                    drop_path=rates[start : start + depth],
                    conv_type=conv_type,
                )
            )
            start += depth
        self.norm_end = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, conv_type, name="GRL")
        self.build_head(
            upsampler,
            dim=embed_dim,
            num_feat=num_feat,
            out_chans=in_channels,
            scale=scale,
            name="GRL",
        )
        if self.upsampler != "nearest+conv":
            self.upsample = _Upsample(self.upsample)
        self.apply(init_transformer_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The body: ``(B, C, H, W)`` shallow features -> deep features of the same shape."""
        t = self.norm_start(to_tokens(x))
        for layer in self.layers:
            t = layer(t)
        return to_image(self.norm_end(t))

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.pad_size)
        mean = image_mean(self._mean, x.device, x.dtype)
        x = self.conv_first((x - mean) * self.img_range)
        x = self.conv_after_body(self.forward_features(x)) + x
        x = self.reconstruct(x) / self.img_range + mean
        return x[:, :, : h * self.scale, : w * self.scale]


# Upstream buffers that srzoo computes instead (tables, indices and masks of the training size).
_COMPUTED = frozenset(
    [
        "table_w",
        "table_sh",
        "table_sv",
        "index_w",
        "index_sh_a2w",
        "index_sh_w2a",
        "index_sv_a2w",
        "index_sv_w2a",
        "mask_w",
        "mask_sh_a2w",
        "mask_sh_w2a",
        "mask_sv_a2w",
        "mask_sv_w2a",
    ]
)
# The released files prefix every key with "model." (the LightningModule's attribute); the
# blind-SR file with "model_g." beside its discriminator and optimiser state.
_PREFIXES = ("model.", "model_g.")


def _prefix(keys: Sequence[str] | Shapes | StateDict) -> str:
    for prefix in _PREFIXES:
        if prefix + "conv_first.weight" in keys:
            return prefix
    return ""


def convert_grl(state: StateDict, module: nn.Module) -> StateDict:
    """Map an official GRL checkpoint to srzoo's keys.

    Keeps the keys under the network's prefix (``model.`` in the released SR files, which the
    LightningModule wrote; ``model_g.`` in the blind-SR one) without it, and drops the 13 stored
    tables, indices and masks, which srzoo computes for the input at hand. A state dict in
    srzoo's own keys passes unchanged.

    Args:
        state: The checkpoint's tensors (already unwrapped).
        module: The :class:`GRL` they are meant for (unused: the layout is the same).

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_grl(torch.load("sr_grl_small_c3x4.ckpt", weights_only=True), net)
    """
    del module
    prefix = _prefix(list(state))
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    return {k: v for k, v in state.items() if k not in _COMPUTED}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title="Efficient and Explicit Modelling of Image Hierarchies for Image Restoration",
    venue="CVPR",
    year=2023,
    arxiv="2303.00748",
)
_LICENSE = "MIT"
# The SR configuration of config/experiment/sr/grl/grl_p256.yaml.
_SR = {"window_size": 32, "stripe_size": (64, 64), "stripe_shift": True, "mlp_ratio": 2.0}
_VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "grl": (
        "GRL-B for classical SR: 180 features, 40 blocks of window and anchored stripe "
        "attention with a local channel-attention branch (release files unhashed: not registered)",
        {
            "embed_dim": 180,
            "depths": (4, 4, 8, 8, 8, 4, 4),
            "num_heads_window": (3,) * 7,
            "num_heads_stripe": (3,) * 7,
            "anchor_window_down_factor": 2,
            "local_connection": True,
            "upsampler": "pixelshuffle",
        },
    ),
    "grl-small": (
        "GRL-S for classical SR: 128 features, 16 blocks of window and anchored stripe "
        "attention (release files unhashed: not registered)",
        {
            "embed_dim": 128,
            "depths": (4, 4, 4, 4),
            "num_heads_window": (2,) * 4,
            "num_heads_stripe": (2,) * 4,
            "anchor_window_down_factor": 4,
            "local_connection": False,
            "upsampler": "pixelshuffle",
        },
    ),
    "grl-tiny": (
        "GRL-T for lightweight SR: 64 features, 16 blocks of window and anchored stripe "
        "attention, one-step pixel-shuffle head (release files unhashed: not registered)",
        {
            "embed_dim": 64,
            "depths": (4, 4, 4, 4),
            "num_heads_window": (2,) * 4,
            "num_heads_stripe": (2,) * 4,
            "anchor_window_down_factor": 4,
            "local_connection": False,
            "upsampler": "pixelshuffledirect",
        },
    ),
}

for _name, (_description, _config) in _VARIANTS.items():
    register_model(
        ModelSpec(
            name=_name,
            family="grl",
            builder=GRL,
            scales=(2, 3, 4),
            paper=_PAPER,
            code_license=_LICENSE,
            description=_description,
            defaults={**_SR, **_config},
            converter=convert_grl,
            size_multiple=64,
        )
    )


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK0 = "layers.0.blocks.0."
_KEYS = (
    "conv_first.weight",
    "norm_start.weight",
    _BLOCK0 + "attn.qkv.body.weight",
    _BLOCK0 + "attn.anchor.body.0.reduction.weight",
    _BLOCK0 + "attn.window_attn.attn_transform.logit_scale",
    _BLOCK0 + "attn.stripe_attn.attn_transform1.logit_scale",
    _BLOCK0 + "attn.stripe_attn.attn_transform2.cpb_mlp.2.weight",
    "norm_end.weight",
)
_LAYOUTS = {
    "official": tuple("model." + k for k in _KEYS),
    "blind-sr": tuple("model_g." + k for k in _KEYS),
    "state-dict": _KEYS,
}


def _ratio(hidden: int, dim: int) -> float:
    # hidden == int(dim * ratio): the plain quotient, or one just above it when int() rounded.
    ratio = hidden / dim
    return ratio if int(dim * ratio) == hidden else (hidden + 0.5) / dim


def _stored_geometry(shapes: Shapes, p: str) -> tuple[int, Pair, int] | None:
    """``(window, stripe, down)`` read from the stored tables of an official file, if any."""
    table_w, table_sh = shapes.get(p + "table_w"), shapes.get(p + "table_sh")
    a2w = shapes.get(p + "index_sh_a2w")
    if table_w is None or table_sh is None or a2w is None:
        return None
    if len(table_w) != 4 or len(table_sh) != 4 or len(a2w) != 2 or min(a2w) < 1:
        return None
    window = (table_w[1] + 1) // 2
    down = math.isqrt(a2w[1] // a2w[0])
    if down < 1 or a2w[0] * down * down != a2w[1]:
        return None
    # Each side of table_sh is s + s / down - 1.
    stripe = ((table_sh[1] + 1) * down // (down + 1), (table_sh[2] + 1) * down // (down + 1))
    if any(s + s // down - 1 != t for s, t in zip(stripe, table_sh[1:3], strict=True)):
        return None
    return window, stripe, down


def detect_grl(shapes: Shapes) -> Detected | None:
    """Recognise a GRL super-resolution checkpoint from keys and shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the blocks of each stage
    (``depths``), the window and stripe heads of each stage (their ``logit_scale``),
    ``mlp_ratio``, ``qkv_bias``, ``local_connection`` (the ``conv.cab`` branch), ``conv_type``,
    the upsampler and the scale (``conv_up1``: ``nearest+conv``, x4 with ``conv_up2``;
    ``conv_before_upsample``: ``pixelshuffle``, scale from its sub-pixel stages, ``num_feat``
    from its width; else ``pixelshuffledirect``). The official files also store their position
    tables, from which ``window_size``, ``stripe_size`` and ``anchor_window_down_factor`` are
    read. A state dict without them cannot tell these: the SR release's values are used
    (window 32, stripes 64 x 64, anchors pooled by 2 with the local branch, GRL-B, else by 4).
    ``stripe_shift`` (on), ``anchor_proj_type`` (``"avgpool"``; max pooling holds the same
    weights) and ``img_range`` (1) cannot be read either.

    The name: ``grl`` with the local branch, ``grl-tiny`` for ``pixelshuffledirect``,
    ``grl-small`` otherwise (the same builder and converter). Scale-1 restoration files are
    not GRL super-resolution networks: no match.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a GRL SR network.
    """
    p = _prefix(shapes)
    if not shapes.has(*(p + k for k in _KEYS)):
        return None
    embed_dim, in_ch = shapes.dim(p + "conv_first.weight"), shapes.dim(p + "conv_first.weight", 1)
    n_stages = shapes.count(re.escape(p) + r"layers\.(\d+)\.blocks\.0\.norm1\.weight")
    depths = tuple(
        shapes.count(re.escape(p) + rf"layers\.{i}\.blocks\.(\d+)\.norm1\.weight")
        for i in range(n_stages)
    )
    attn = [p + f"layers.{i}.blocks.0.attn." for i in range(n_stages)]
    heads_w = tuple(shapes.dim(a + "window_attn.attn_transform.logit_scale") for a in attn)
    heads_s = tuple(shapes.dim(a + "stripe_attn.attn_transform1.logit_scale") for a in attn)
    hidden = shapes.dim(p + _BLOCK0 + "mlp.fc1.weight")
    if (
        min((embed_dim, in_ch, n_stages, hidden, *depths, *heads_w, *heads_s), default=0) < 1
        or any(embed_dim % (2 * h) for h in (*heads_w, *heads_s))
        or shapes.dim(p + _BLOCK0 + "attn.qkv.body.weight") != 3 * embed_dim
        or shapes.dim(p + _BLOCK0 + "attn.window_attn.attn_transform.cpb_mlp.0.weight")
        != _CPB_HIDDEN
    ):
        return None
    if shapes.has(p + "layers.0.conv.weight") and shapes.dim(p + "layers.0.conv.weight", 2) == 3:
        conv_type = "1conv"
    elif shapes.has(p + "layers.0.conv.0.weight", p + "layers.0.conv.4.weight"):
        conv_type = "3conv"
    else:
        return None
    local = shapes.has(p + _BLOCK0 + "conv.cab.0.weight")
    num_feat = shapes.dim(p + "conv_before_upsample.0.weight")
    if shapes.has(p + "conv_up1.weight"):
        scale = 4 if shapes.has(p + "conv_up2.weight") else 2
        upsampler = "nearest+conv"
    elif num_feat:
        scale = shapes.stacked_shuffle_scale(p + "upsample.up.", ".weight", num_feat)
        upsampler = "pixelshuffle"
    elif shapes.dim(p + "upsample.up.0.weight", 1) == embed_dim:
        scale = shuffle_factor(shapes.dim(p + "upsample.up.0.weight"), in_ch)
        upsampler = "pixelshuffledirect"
    else:
        return None  # a scale-1 restoration network
    if not scale or (num_feat and shapes.dim(p + "conv_last.weight") != in_ch):
        return None
    geometry = _stored_geometry(shapes, p) or (32, (64, 64), 2 if local else 4)
    window, stripe, down = geometry
    args: dict[str, object] = {
        "in_channels": in_ch,
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads_window": heads_w,
        "num_heads_stripe": heads_s,
        "window_size": window,
        "stripe_size": stripe,
        "stripe_shift": True,
        "mlp_ratio": _ratio(hidden, embed_dim),
        "qkv_bias": shapes.has(p + _BLOCK0 + "attn.qkv.body.bias"),
        "anchor_proj_type": "avgpool",
        "anchor_window_down_factor": down,
        "local_connection": local,
        "conv_type": conv_type,
        "upsampler": upsampler,
    }
    if num_feat:
        args["num_feat"] = num_feat
    name = "grl" if local else "grl-tiny" if upsampler == "pixelshuffledirect" else "grl-small"
    layout = {"model.": "official", "model_g.": "blind-sr"}.get(p, "state-dict")
    return Detected(name, scale, args, layout)


register_detector("grl", detect_grl, layouts=_LAYOUTS)
