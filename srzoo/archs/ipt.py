"""IPT: the pre-trained image processing transformer.

Paper: Chen, Wang, Guo, Xu, Deng, Liu, Ma, Xu, Xu, Gao, "Pre-Trained Image Processing
Transformer", CVPR 2021, arXiv:2012.00364.

Parameter names follow huawei-noah/Pretrained-IPT ``model/ipt.py`` (identical to spandrel's
IPT), so the authors' files load unchanged once srzoo's reader has unwrapped them.

The network: per task a head (a 3x3 convolution and two 5x5 residual blocks, EDSR-style) and a
tail (EDSR's sub-pixel upsampler and a 3x3 convolution) around one shared body, a DETR-style
transformer (``num_layers`` encoder and decoder layers with layer norms before attention and
MLP, a learned position embedding per token and a learned task embedding added to the decoder's
queries). The body cuts a ``patch_size`` x ``patch_size`` feature map (48 in the authors'
options) into ``patch_dim`` x ``patch_dim`` tokens of ``n_feats * patch_dim ** 2`` channels
(576, in 12 heads): it only runs on patches of exactly that size.

**Any input size.** ``forward`` runs the authors' test procedure (``Model.forward_chop`` of
``model/__init__.py``): patches of ``patch_size`` at a stride of a quarter patch, plus a last row
and column of patches flush with the bottom and right edges; each output pixel is the mean of the
central halves of the patches covering it, the borders come from the outermost patch, and the
bottom-right band from the edge-flush patches. srzoo runs every distinct patch once (the authors
run the top and left strips twice) in batches of ``crop_batch_size``, on the input's device, and
blends them with per-shape cached weights, so the output equals upstream's to float rounding and
batches of several images work (upstream's chop mixes the images of a batch). A side shorter
than ``patch_size`` (which upstream refuses) is reflect-padded to it and the output cropped.
``patch_size`` must be a multiple of 4 (upstream's stride arithmetic assumes it).

**Scales and tasks.** Upstream's ``--scale`` lists the network's tasks in order (``2+3+4`` for
three SR heads; 1 for denoising and deraining): head, tail and decoder query ``i`` serve task
``i``. :class:`IPT` holds the head, tail and query of one task under index 0, the network the
README's test command builds for a released per-task file (``main.py --pretrain FILE --scale
s``: one head and tail, one query, the file loaded with ``strict=False``). A file with several
tasks is
read with ``task_scales`` (its ``--scale`` list): the task is the first one whose scale is
``scale``, and :func:`convert_ipt` keeps its head, tail and query row and drops the others.
Detection reads ``task_scales`` from the tails and serves each SR scale (the first by default).

Every attention is :func:`torch.nn.functional.scaled_dot_product_attention` with upstream's
scale, on the weights of upstream's ``nn.MultiheadAttention`` (no biases).

IPT declares no receptive-field radius (``receptive_field = None``): attention spans the whole
patch, and the blend weights depend on where a pixel lies in the image, so tiles are not exact.

Registered model (Apache-2.0 code): ``ipt``, x2, x3, x4; 64 features, 12 encoder and 12
decoder layers, 12 heads, patch 48 of 3x3 tokens (115.6M parameters at x4).

Weights are not registered: the README links the PyTorch checkpoints (SR x2, x3, x4,
denoising, deraining) only as a Google Drive folder, which a plain HTTP client cannot fetch,
with no sha256 or size published (the MindSpore hub's x4 file is in MindSpore's format). Load a
downloaded file with ``srzoo.load("ipt", scale=4, weights=path)`` or ``srzoo.load_file(path)``.

The authors report (README, RGB input, PSNR on Y): x2 38.37 dB on Set5, 34.43 dB on Set14;
x3 34.81 / 30.85 dB; x4 32.64 / 29.01 dB.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError, IncompatibleWeightsError, UnsupportedScaleError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    StateDict,
    register_detector,
    register_model,
)
from ._blocks import DIV2K_RGB_MEAN, MeanShift, Upsampler, conv3x3, image_forward
from ._window import reflect_pad, shape_cached

__all__ = [
    "IPT",
    "DecoderLayer",
    "EncoderLayer",
    "VisionTransformer",
    "chop_weights",
    "convert_ipt",
    "detect_ipt",
]


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class _ResBlock(nn.Module):
    """EDSR's conv-ReLU-conv residual block (``body.0``, ``body.2``), 5x5 in IPT's heads."""

    def __init__(self, n_feats: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, kernel_size, padding=pad),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, kernel_size, padding=pad),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class _Attention(nn.Module):
    """``nn.MultiheadAttention(dim, heads, bias=False)``'s weights, run through SDPA.

    Args:
        dim: Token channels.
        num_heads: Attention heads (they must divide ``dim``).
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.out_proj = nn.Linear(dim, dim, bias=False)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(
        self, qk: torch.Tensor, v: torch.Tensor, k: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend from ``qk`` (queries; keys too unless ``k`` is given) to values ``v``.

        Args:
            qk: ``(B, N, C)`` query input, also the key input when ``k`` is ``None``.
            v: ``(B, N, C)`` value input.
            k: ``(B, N, C)`` key input, when it differs from the query input.

        Returns:
            ``(B, N, C)``.
        """
        dim = v.shape[-1]
        w = self.in_proj_weight
        if k is None:
            # One product for the shared query/key input.
            q, key = F.linear(qk, w[: 2 * dim]).chunk(2, dim=-1)
        else:
            q, key = F.linear(qk, w[:dim]), F.linear(k, w[dim : 2 * dim])
        value = F.linear(v, w[2 * dim :])
        out = F.scaled_dot_product_attention(self._heads(q), self._heads(key), self._heads(value))
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, dim))


def _norm(dim: int, no_norm: bool) -> nn.Module:
    return nn.Identity() if no_norm else nn.LayerNorm(dim)


class EncoderLayer(nn.Module):
    """A pre-norm transformer encoder layer (DETR's, as IPT uses it): attention, then ReLU MLP.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        hidden: MLP hidden channels.
        no_norm: Leave out the layer norms.
    """

    def __init__(self, *, dim: int, num_heads: int, hidden: int, no_norm: bool = False) -> None:
        super().__init__()
        self.self_attn = _Attention(dim, num_heads)
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = _norm(dim, no_norm)
        self.norm2 = _norm(dim, no_norm)

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.self_attn(y if pos is None else y + pos, y)
        return x + self.linear2(F.relu(self.linear1(self.norm2(x))))


class DecoderLayer(nn.Module):
    """A pre-norm transformer decoder layer: self-attention, attention to the encoder's output
    (``memory``), ReLU MLP; the task embedding is added to the queries (and self-attention keys).

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        hidden: MLP hidden channels.
        no_norm: Leave out the layer norms.
    """

    def __init__(self, *, dim: int, num_heads: int, hidden: int, no_norm: bool = False) -> None:
        super().__init__()
        self.self_attn = _Attention(dim, num_heads)
        self.multihead_attn = _Attention(dim, num_heads)
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm1 = _norm(dim, no_norm)
        self.norm2 = _norm(dim, no_norm)
        self.norm3 = _norm(dim, no_norm)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        pos: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.self_attn(y if query_pos is None else y + query_pos, y)
        y = self.norm2(x)
        x = x + self.multihead_attn(
            y if query_pos is None else y + query_pos,
            memory,
            k=memory if pos is None else memory + pos,
        )
        return x + self.linear2(F.relu(self.linear1(self.norm3(x))))


class _PositionEncoding(nn.Module):
    """Upstream's ``LearnedPositionalEncoding``: one learned vector per token (``pe.weight``).

    ``position_ids`` (always ``0..tokens-1``) is unused here but kept in the state dict: the
    official files hold it, and spandrel's loader reads its absence as "no position embedding".
    """

    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.pe = nn.Embedding(tokens, dim)
        self.register_buffer("position_ids", torch.arange(tokens).unsqueeze(0))


class _Layers(nn.Module):
    """A stack held as ``layers`` (upstream's ``encoder.layers.<i>`` / ``decoder.layers.<i>``)."""

    def __init__(self, layers: Iterable[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class VisionTransformer(nn.Module):
    """IPT's body: a ``patch_size`` feature map as tokens through an encoder-decoder transformer.

    Args:
        img_dim: Side of the feature map (the patch size).
        patch_dim: Side of one token's pixel block.
        num_channels: Feature channels.
        num_heads: Attention heads.
        num_layers: Encoder layers, and as many decoder layers.
        num_queries: Rows of the task embedding (one per task of the network).
        mlp: The linear token encoding, the MLP head and the task embedding (upstream's
            default; ``--no_mlp`` leaves them out).
        pos_every: Add the position embedding in every layer instead of once before the encoder.
        no_pos: Leave out the position embedding.
        no_norm: Leave out the layer norms.
    """

    def __init__(
        self,
        *,
        img_dim: int,
        patch_dim: int,
        num_channels: int,
        num_heads: int,
        num_layers: int,
        num_queries: int = 1,
        mlp: bool = True,
        pos_every: bool = False,
        no_pos: bool = False,
        no_norm: bool = False,
    ) -> None:
        super().__init__()
        dim = num_channels * patch_dim * patch_dim
        hidden = 4 * dim
        self.img_dim = img_dim
        self.patch_dim = patch_dim
        self.tokens = (img_dim // patch_dim) ** 2
        self.mlp = mlp
        self.pos_every = pos_every
        self.no_pos = no_pos
        if mlp:
            self.linear_encoding = nn.Linear(dim, dim)
            # Indices 1 and 4 held upstream's dropouts (rate 0): kept for the official keys.
            self.mlp_head = nn.Sequential(
                nn.Linear(dim, hidden), nn.Identity(), nn.ReLU(), nn.Linear(hidden, dim)
            )
            self.query_embed = nn.Embedding(num_queries, dim * self.tokens)
        self.encoder = _Layers(
            EncoderLayer(dim=dim, num_heads=num_heads, hidden=hidden, no_norm=no_norm)
            for _ in range(num_layers)
        )
        self.decoder = _Layers(
            DecoderLayer(dim=dim, num_heads=num_heads, hidden=hidden, no_norm=no_norm)
            for _ in range(num_layers)
        )
        if not no_pos:
            self.position_encoding = _PositionEncoding(self.tokens, dim)
        if no_norm:
            # Upstream's initialisation when there are no layer norms to keep activations bounded.
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=1 / m.weight.size(1))

    def forward(self, x: torch.Tensor, query: int = 0) -> torch.Tensor:
        """Run ``(B, C, img_dim, img_dim)`` features with the task embedding row ``query``."""
        b, c, side, _ = x.shape
        pd, n = self.patch_dim, side // self.patch_dim
        # Tokens in F.unfold's order: row-major blocks, each flattened channel-first.
        t = x.reshape(b, c, n, pd, n, pd).permute(0, 2, 4, 1, 3, 5).reshape(b, n * n, c * pd * pd)
        dim = t.shape[-1]
        query_pos = None
        if self.mlp:
            t = self.linear_encoding(t) + t
            query_pos = self.query_embed.weight[query].view(1, n * n, dim)
        pos = None if self.no_pos else self.position_encoding.pe.weight.unsqueeze(0)
        if pos is not None and not self.pos_every:
            t, pos = t + pos, None
        for layer in self.encoder.layers:
            t = layer(t, pos)
        memory = t
        for layer in self.decoder.layers:
            t = layer(t, memory, pos, query_pos)
        if self.mlp:
            t = self.mlp_head(t) + t
        t = t.view(b, n, n, c, pd, pd).permute(0, 3, 1, 4, 2, 5)
        return t.reshape(b, c, side, side)


# --------------------------------------------------------------------------------------------
# The authors' overlapping chop
# --------------------------------------------------------------------------------------------


def _axis_plan(n: int, patch: int) -> tuple[int, int, int]:
    # (stride, patches on the stride grid, whether an edge-flush patch follows) of one side.
    stride = patch // 4
    return stride, (n - patch) // stride + 1, int((n - patch) % stride > 0)


def _axis_weights(
    n: int, patch: int, scale: int, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """Blend weights along one side: ``(patches, patch * scale)``, in each patch's coordinates.

    Upstream's rule, in output pixels (``T`` = stride * scale): before ``T`` the first patch
    alone; from ``boundary`` on (where upstream joins its edge strip) the edge-flush patch alone
    (the last grid patch when the grid ends flush); between, the mean of the patches whose
    central half ``[T, patch * scale - T)`` covers the pixel.
    """
    stride, grid, extra = _axis_plan(n, patch)
    cut = (n - patch) % stride
    size, step = patch * scale, stride * scale
    boundary = (n - cut) * scale - (patch - cut) * scale // 2
    k = torch.arange(grid, device=device).unsqueeze(1)
    z = torch.arange(size, device=device).unsqueeze(0)
    at = k * step + z  # output position of each patch pixel
    centre = (z >= step) & (z < size - step)
    # Grid patches j whose central half covers position `at`.
    lo = torch.div(at - (size - step), step, rounding_mode="floor") + 1
    hi = torch.div(at, step, rounding_mode="floor") - 1
    count = (hi.clamp(max=grid - 1) - lo.clamp(min=0) + 1).clamp(min=1)
    mean = centre.to(dtype) / count.to(dtype)
    first = (k == 0).to(dtype)
    edge = ((k == grid - 1) & (extra == 0)).to(dtype)
    w = torch.where(at < step, first, torch.where(at >= boundary, edge, mean))
    if extra:
        flush = ((n - patch) * scale + z >= boundary).to(dtype)
        w = torch.cat([w, flush], dim=0)
    return w


@shape_cached()
def chop_weights(
    h: int, w: int, patch: int, scale: int, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Blend weights of the authors' chop for an ``h`` x ``w`` input (both at least ``patch``).

    The weight of patch ``(r, c)`` at its pixel ``(y, x)`` is ``rows[r, y] * cols[c, x]``,
    except in the first ``stride * scale`` output rows, where it is ``top[c, x]``: upstream
    writes its left strip over its top strip there, so the first patch alone fills the top rows
    up to ``patch * scale`` (or the right edge strip) rather than a mean.

    Args:
        h: Input height.
        w: Input width.
        patch: Patch side (a multiple of 4).
        scale: Upscaling factor.
        device: Device of the weights.
        dtype: Their dtype.

    Returns:
        ``(rows, cols, top)``: ``(row patches, patch * scale)``, ``(column patches,
        patch * scale)`` twice.

    Example:
        >>> rows, cols, top = chop_weights(64, 64, 48, 4, torch.device("cpu"), torch.float32)
        >>> rows.shape, bool((rows.sum(0) > 0).all())
        (torch.Size([3, 192]), True)
    """
    rows = _axis_weights(h, patch, scale, device, dtype)
    cols = _axis_weights(w, patch, scale, device, dtype)
    stride, grid, extra = _axis_plan(w, patch)
    cut = (w - patch) % stride
    boundary = (w - cut) * scale - (patch - cut) * scale // 2
    size, step = patch * scale, stride * scale
    c = torch.arange(grid + extra, device=device).unsqueeze(1)
    # Output position of each pixel of each column of patches (the last may be edge-flush).
    start = torch.where(c < grid, c * step, torch.full_like(c, (w - patch) * scale))
    at = start + torch.arange(size, device=device).unsqueeze(0)
    alone = at < min(size, boundary)
    top = torch.where(alone, (c == 0).to(dtype), cols)
    return rows, cols, top


def _cut(x: torch.Tensor, dim: int, patch: int) -> torch.Tensor:
    # Windows of `patch` along `dim` (appended as the last dimension) at the chop's positions.
    stride, _, extra = _axis_plan(x.shape[dim], patch)
    grid = x.unfold(dim, patch, stride)
    if not extra:
        return grid
    flush = x.narrow(dim, x.shape[dim] - patch, patch).unfold(dim, patch, patch)
    return torch.cat([grid, flush], dim=dim)


def _overlap_add(tiles: torch.Tensor, n: int, patch: int, scale: int) -> torch.Tensor:
    """Sum ``(B, K, C, a, patch * scale)`` tiles into ``(B, C, a, n * scale)`` at their places."""
    b, _, c, a, size = tiles.shape
    stride, grid, extra = _axis_plan(n, patch)
    span = (n - (n - patch) % stride) * scale
    main = tiles[:, :grid].permute(0, 2, 3, 4, 1).reshape(b, c * a * size, grid)
    out = F.fold(main, (a, span), (a, size), stride=(1, stride * scale))
    out = F.pad(out, (0, n * scale - span))
    if extra:
        out = out + F.pad(tiles[:, grid], ((n - patch) * scale, 0))
    return out


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class IPT(nn.Module):
    """Image Processing Transformer, with the head and tail of one task.

    Takes RGB in [0, 1]; the 0..255 range and DIV2K mean shift of the official weights are
    applied inside. Any input size: the body runs on ``patch_size`` patches chopped and blended
    as in the authors' test code (see the module documentation).

    Args:
        scale: Upscaling factor of the task (2, 3 or 4 for super-resolution; 1 for the
            denoising and deraining heads).
        task_scales: The scales of the tasks of the checkpoint to load, in upstream's
            ``--scale`` order; ``None`` for a one-task network (the released files).
        patch_size: Side of the patches the body runs on (a multiple of 4 and of
            ``patch_dim``).
        patch_dim: Side of one token's pixel block.
        n_feats: Feature channels.
        rgb_range: Value range the network works in.
        num_heads: Attention heads (they must divide ``n_feats * patch_dim ** 2``).
        num_layers: Encoder layers, and as many decoder layers.
        mlp: The linear token encoding, MLP head and task embedding (upstream's default).
        pos_every: Add the position embedding in every attention instead of once.
        no_pos: Leave out the position embedding.
        no_norm: Leave out the layer norms.
        crop_batch_size: Patches run at once (upstream's option of that name).
        rgb_mean: Mean colour removed before the network and added back after it.

    Raises:
        ArgumentError: A size or count that the network cannot be built with.
        UnsupportedScaleError: ``scale`` is not among ``task_scales``.

    Example:
        >>> net = IPT(scale=2, n_feats=4, num_layers=1, num_heads=2, patch_size=12)
        >>> net(torch.rand(1, 3, 5, 7)).shape
        torch.Size([1, 3, 10, 14])
    """

    #: Why ``srzoo.export_onnx`` needs ``dynamic=False`` for this network.
    onnx_fixed_size_reason: ClassVar[str] = (
        "how many patches it chops the image into, and its overlapping-patch fold, follow the "
        "input size"
    )

    def __init__(
        self,
        *,
        scale: int = 4,
        task_scales: Sequence[int] | None = None,
        patch_size: int = 48,
        patch_dim: int = 3,
        n_feats: int = 64,
        rgb_range: float = 255.0,
        num_heads: int = 12,
        num_layers: int = 12,
        mlp: bool = True,
        pos_every: bool = False,
        no_pos: bool = False,
        no_norm: bool = False,
        crop_batch_size: int = 64,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        tasks = (scale,) if task_scales is None else tuple(task_scales)
        if scale not in tasks:
            raise UnsupportedScaleError("IPT", scale, tasks)
        if patch_size < 4 or patch_size % 4 or patch_dim < 1 or patch_size % patch_dim:
            raise ArgumentError(
                f"IPT's patch_size must be a multiple of 4 and of patch_dim, got patch_size "
                f"{patch_size} and patch_dim {patch_dim}"
            )
        dim = n_feats * patch_dim * patch_dim
        if min(n_feats, num_heads, num_layers, crop_batch_size) < 1 or dim % num_heads:
            raise ArgumentError(
                f"IPT needs n_feats, num_heads, num_layers and crop_batch_size >= 1 and heads "
                f"that divide n_feats * patch_dim ** 2 = {dim}, got {num_heads} heads"
            )
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        self.receptive_field: int | None = None
        self.task_scales = tasks
        self.task = tasks.index(scale)
        self.patch_size = patch_size
        self.rgb_range = rgb_range
        self.crop_batch_size = crop_batch_size
        self.sub_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=-1)
        self.add_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=1)
        self.head = nn.ModuleList(
            [nn.Sequential(conv3x3(3, n_feats), _ResBlock(n_feats, 5), _ResBlock(n_feats, 5))]
        )
        self.body = VisionTransformer(
            img_dim=patch_size,
            patch_dim=patch_dim,
            num_channels=n_feats,
            num_heads=num_heads,
            num_layers=num_layers,
            mlp=mlp,
            pos_every=pos_every,
            no_pos=no_pos,
            no_norm=no_norm,
        )
        self.tail = nn.ModuleList(
            [nn.Sequential(Upsampler(scale=scale, n_feats=n_feats), conv3x3(n_feats, 3))]
        )

    def run_patches(self, x: torch.Tensor) -> torch.Tensor:
        """The network on ``(B, 3, patch_size, patch_size)`` patches in [0, 1], without chop."""
        f = self.head[0](self.sub_mean(x * self.rgb_range))
        f = self.body(f) + f
        return self.add_mean(self.tail[0](f)) / self.rgb_range

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p, s = self.patch_size, self.scale
        x = reflect_pad(x, max(p - h, 0), max(p - w, 0))
        y = self._chop(x)
        return y[..., : h * s, : w * s]

    def _chop(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p, s = self.patch_size, self.scale
        # (N, C, rows, cols, p, p): the grid patches plus the edge-flush row and column.
        patches = _cut(_cut(x, 2, p), 3, p)
        rows, cols = patches.shape[2], patches.shape[3]
        flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, p, p)
        outs = [
            self.run_patches(flat[i : i + self.crop_batch_size])
            for i in range(0, flat.shape[0], self.crop_batch_size)
        ]
        size = p * s
        tiles = torch.cat(outs).view(n, rows, cols, c, size, size)
        wr, wc, top = chop_weights(h, w, p, s, x.device, x.dtype)
        weighted = tiles * wr.view(1, rows, 1, 1, size, 1) * wc.view(1, 1, cols, 1, 1, size)
        band = (p // 4) * s
        first = tiles[:, 0, :, :, :band] * top.view(1, cols, 1, 1, size)
        weighted = torch.cat(
            [torch.cat([first, weighted[:, 0, :, :, band:]], dim=-2).unsqueeze(1), weighted[:, 1:]],
            dim=1,
        )
        # Columns first: each row of patches becomes a strip as wide as the output ...
        strips = _overlap_add(weighted.reshape(n * rows, cols, c, size, size), w, p, s)
        strips = strips.view(n, rows, c, size, w * s).transpose(-1, -2)
        # ... then the strips, transposed, are placed along the height the same way.
        out = _overlap_add(strips, h, p, s)
        return out.transpose(-1, -2)


# --------------------------------------------------------------------------------------------
# Converter
# --------------------------------------------------------------------------------------------


def convert_ipt(state: StateDict, module: nn.Module) -> StateDict:
    """Keep one task of an official IPT state dict: its head, tail and task-embedding row.

    A file with several tasks (``head.<i>``, ``tail.<i>``, ``body.query_embed.weight`` with a row
    per task) is reduced to the task :class:`IPT` was built for (index ``module.task`` in
    ``task_scales``), renamed to index 0. The stored ``position_ids`` must be ``0..tokens-1``
    (added when a file lacks them). srzoo's own layout passes unchanged.

    Args:
        state: The checkpoint's tensors (already unwrapped).
        module: The :class:`IPT` they are meant for.

    Returns:
        The state dict in the module's keys.

    Raises:
        IncompatibleWeightsError: The file has the task's head but no task-embedding row for it,
            or stored position ids of another patch size.

    Example:
        >>> convert_ipt(torch.load("IPT_sr4.pt", weights_only=True), IPT(scale=4)).keys()
    """
    task = getattr(module, "task", 0)
    name = type(module).__name__
    pos_key = "body.position_encoding.position_ids"
    out: StateDict = {}
    # Several heads (an official multi-task file) rather than srzoo's one head at index 0.
    multi = "head.1.0.weight" in state and f"head.{task}.0.weight" in state
    for key, value in state.items():
        if key == pos_key:
            tokens = module.state_dict().get("body.position_encoding.pe.weight")
            expected = value.shape[-1] if tokens is None else tokens.shape[0]
            if value.shape[-1] != expected or not torch.equal(
                value.reshape(-1).cpu(), torch.arange(expected, dtype=value.dtype)
            ):
                raise IncompatibleWeightsError(
                    name, mismatched=[(key, (1, expected), tuple(value.shape))]
                )
        parts = key.split(".", 2)
        if multi and parts[0] in ("head", "tail") and parts[1].isdigit():
            if int(parts[1]) == task:
                out[f"{parts[0]}.0.{parts[2]}"] = value
            continue
        if key == "body.query_embed.weight" and (multi or value.shape[0] > 1):
            if value.shape[0] <= task:
                raise IncompatibleWeightsError(
                    name, mismatched=[(key, (task + 1, value.shape[1]), tuple(value.shape))]
                )
            value = value[task : task + 1]
        out[key] = value
    own = module.state_dict()
    if pos_key in own and pos_key not in out:
        out[pos_key] = torch.arange(own[pos_key].shape[-1]).unsqueeze(0)
    return out


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

register_model(
    ModelSpec(
        name="ipt",
        family="ipt",
        builder=IPT,
        scales=(2, 3, 4),
        paper=Paper(
            title="Pre-Trained Image Processing Transformer",
            venue="CVPR",
            year=2021,
            arxiv="2012.00364",
        ),
        code_license="Apache-2.0",
        description="IPT: 12+12-layer transformer on 48x48 patches, 64 features, per-task heads",
        task="psnr",
        converter=convert_ipt,
        defaults={
            "patch_size": 48,
            "patch_dim": 3,
            "n_feats": 64,
            "num_heads": 12,
            "num_layers": 12,
        },
    )
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_LAYOUTS = {
    "official": (
        "sub_mean.weight",
        "add_mean.weight",
        "head.0.0.weight",
        "head.0.1.body.0.weight",
        "head.0.2.body.2.weight",
        "body.encoder.layers.0.self_attn.in_proj_weight",
        "body.encoder.layers.0.self_attn.out_proj.weight",
        "body.encoder.layers.0.linear1.weight",
        "body.decoder.layers.0.multihead_attn.in_proj_weight",
        "body.decoder.layers.0.linear2.weight",
        "tail.0.1.weight",
    ),
}


def _task_scale(shapes: Shapes, i: int, n_feats: int) -> int:
    # A tail without upsampler convolutions is a x1 task (denoising, deraining).
    if not shapes.has_prefix(f"tail.{i}.0."):
        return 1
    return shapes.stacked_shuffle_scale(f"tail.{i}.0.", ".weight", n_feats)


def detect_ipt(shapes: Shapes) -> Detected | None:
    """Recognise an IPT checkpoint (huawei-noah/Pretrained-IPT keys) from keys and shapes.

    Reads ``n_feats`` (the heads), ``patch_dim`` (tokens of ``n_feats * patch_dim ** 2``
    channels), ``num_layers``, ``mlp``, ``no_pos``, ``no_norm``, the patch size (from the
    position embedding's rows, else the task embedding's width) and each task's scale (its
    tail): ``task_scales``. A file with several super-resolution tasks serves each of their
    scales (``Detected.scales``), the first by default; a file with only x1 tasks (denoising,
    deraining) is detected at x1.

    What cannot be read: ``num_heads`` (12, upstream's default), ``pos_every`` (off),
    ``rgb_range`` (255; the stored mean-shift tensors are loaded as they are) and, in a file
    with neither position nor task embedding, the patch size (48).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an IPT.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    n_tasks = shapes.count(r"head\.(\d+)\.0\.weight")
    n_feats = shapes.dim("head.0.0.weight")
    dim = shapes.dim("body.encoder.layers.0.self_attn.in_proj_weight", 1)
    patch_dim = math.isqrt(dim // n_feats) if n_feats else 0
    layers = shapes.count(r"body\.encoder\.layers\.(\d+)\.linear1\.weight")
    if (
        not n_tasks
        or shapes.dim("head.0.0.weight", 1) != 3
        or not patch_dim
        or n_feats * patch_dim * patch_dim != dim
        or shapes.count(r"body\.decoder\.layers\.(\d+)\.linear1\.weight") != layers
        or shapes.count(r"tail\.(\d+)\.1\.weight") != n_tasks
    ):
        return None
    tasks = tuple(_task_scale(shapes, i, n_feats) for i in range(n_tasks))
    if 0 in tasks:
        return None
    mlp = shapes.has("body.linear_encoding.weight")
    no_pos = not shapes.has("body.position_encoding.pe.weight")
    if not no_pos:
        tokens = shapes.dim("body.position_encoding.pe.weight")
    elif mlp:
        tokens = shapes.dim("body.query_embed.weight", 1) // dim
    else:
        tokens = (48 // patch_dim) ** 2
    side = math.isqrt(tokens)
    patch_size = side * patch_dim
    if side * side != tokens or patch_size % 4 or dim % 12:
        return None
    served = tuple(dict.fromkeys(s for s in tasks if s > 1)) or (1,)
    args = {
        "task_scales": tasks if len(tasks) > 1 else None,
        "patch_size": patch_size,
        "patch_dim": patch_dim,
        "n_feats": n_feats,
        "rgb_range": 255.0,
        "num_heads": 12,
        "num_layers": layers,
        "mlp": mlp,
        "pos_every": False,
        "no_pos": no_pos,
        "no_norm": not shapes.has("body.encoder.layers.0.norm1.weight"),
    }
    return Detected("ipt", served[0], args, "official", scales=served if len(served) > 1 else ())


register_detector("ipt", detect_ipt, layouts=_LAYOUTS)
