"""DRCT: the dense-residual-connected transformer.

Paper: Hsu, Lee, Chou, "DRCT: Saving Image Super-Resolution Away from Information Bottleneck",
CVPR Workshops (NTIRE) 2024, arXiv:2404.00722.

Parameter names follow ming053l/DRCT ``drct/archs/DRCT_arch.py`` (identical to spandrel's
DRCT), so the authors' ``params_ema`` files load unchanged once srzoo's reader has unwrapped
them. The official files also store each window attention's ``relative_position_index`` and the
shifted layers' ``attn_mask`` (for the 64x64 training patch); srzoo computes both on the input's
device for the actual size instead, and :func:`convert_drct` checks and drops the stored copies.

The network is SwinIR's frame (a 3x3 convolution, residual groups on ``(B, H, W, C)`` tokens, a
layer norm, a 3x3 convolution and BasicSR's pixel-shuffle head) with residual dense groups
(RDG) in the body: five Swin layers, alternately on plain and shifted windows, each fed the
concatenation of the group's input and the ``gc``-channel outputs of the layers before it (a
1x1 ``adjust`` convolution and a LeakyReLU after each); a last 1x1 convolution returns to
``embed_dim`` channels and joins the group's input with weight 0.2, as in RRDB.

The widths grow along a group (``embed_dim + k * gc``), so the layers' heads are upstream's
``num_heads - (width % num_heads)``, the fourth and fifth layers' MLPs are as wide as their
tokens (ratio 1), and every group has five layers whatever ``depths`` says: upstream reads only
its length (the number of groups). The upstream module shrinks its window to the training patch
(``img_size``, 64) when that is smaller; every released configuration has a 16-pixel window, so
srzoo has no ``img_size`` and always uses ``window_size``. Inputs are reflect-padded to a
multiple of the window and the output is cropped, as the authors' test code does.

Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention` with the
relative-position bias (plus the shift mask, -100 between tokens of different regions, as
upstream) as a float ``attn_mask`` and upstream's scale ``head_dim ** -0.5``. Windows are cut
and put back with one cached ``index_select`` each way instead of upstream's roll, partition
and reverse copies.

DRCT declares no receptive-field radius (``receptive_field = None``): its windows are anchored at
the image's corner and shifted cyclically, so a pixel near one border attends to pixels at the
opposite border, as in SwinIR.

Registered models (MIT code):

- ``drct``: 6 groups, 180 features, 6 heads, window 16, ``gc`` 32; x2, x3, x4.
- ``drct-l``: ``drct`` with twelve groups; x2, x3, x4.

Weights are not registered: the authors publish them only in a Google Drive folder
(``DRCT_SRx{2,3,4}.pth``, ``DRCT-L_SRx{2,3,4}_ImageNet-pretrain.pth``, the Real-DRCT-GAN
generators), which a plain HTTP client cannot fetch, and no mirror with a published sha256 is
known to srzoo (DRCT-L x4, ``a99044c0...8d64b``, 485,570,697 bytes, is such a Drive file). Load a
downloaded file with ``srzoo.load("drct-l", scale=4, weights=path)`` or ``srzoo.load_file(path)``.

The authors report (README, x4 without x2 pre-training, Y-PSNR): DRCT 33.11 dB on Set5 and
29.35 dB on Set14; DRCT-L 33.37 dB on Set5 and 29.54 dB on Set14.
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
    Shapes,
    StateDict,
    register_detector,
    register_model,
)
from ._blocks import DIV2K_RGB_MEAN, image_forward
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
from ._window import pad_to_multiple, relative_position_index, shift_mask, window_order

__all__ = [
    "DRCT",
    "RDG",
    "SwinTransformerBlock",
    "WindowAttention",
    "convert_drct",
    "detect_drct",
    "layer_heads",
]

# Layers of one residual dense group (fixed upstream).
LAYERS = 5


def layer_heads(width: int, num_heads: int) -> int:
    """Upstream's heads of a dense layer ``width`` channels wide in a group of ``num_heads``.

    Args:
        width: The layer's token channels (``embed_dim + k * gc``).
        num_heads: The group's heads (those of its first layer).

    Returns:
        ``num_heads - width % num_heads``.

    Example:
        >>> layer_heads(212, 6)
        4
    """
    return num_heads - width % num_heads


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Multi-head self-attention within windows, with a learned relative-position bias.

    Args:
        dim: Token channels.
        window_size: Window side.
        num_heads: Attention heads (they must divide ``dim``).
        qkv_bias: Give the query/key/value projection a bias.
        qk_scale: Logit scale (default ``(dim // num_heads) ** -0.5``).
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
        b, n, c = windows.shape
        qkv = self.qkv(windows).view(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        index = relative_position_index(self.window_size, windows.device)
        # (1, heads, N, N): the fused CPU kernel takes a mask with a batch dimension of one.
        bias = self.relative_position_bias_table.t().index_select(1, index.reshape(-1))
        bias = bias.view(1, self.num_heads, n, n).to(q.dtype)
        out = masked_window_attention(q, k, v, bias, mask, scale=self.scale)
        return self.proj(merge_heads(out))


class SwinTransformerBlock(nn.Module):
    """A Swin layer: (shifted) window attention and an MLP, each with a residual.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side.
        shift_size: Cyclic shift of the windows (0 or ``window_size // 2``).
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
        mlp_ratio: float,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(
            dim=dim,
            window_size=window_size,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
        )
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim=dim, hidden=int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens (``H``, ``W`` multiples of the window) -> the same shape."""
        b, h, w, c = x.shape
        ws, s = self.window_size, self.shift_size
        gather, scatter = window_order(h, w, ws, s, x.device)
        windows = self.norm1(x).reshape(b, h * w, c).index_select(1, gather)
        mask = shift_mask(h, w, ws, s, device=x.device, dtype=x.dtype) if s else None
        attn = self.attn(windows.view(-1, ws * ws, c), mask)
        x = x + attn.view(b, h * w, c).index_select(1, scatter).view(b, h, w, c)
        return x + self.mlp(self.norm2(x))


class RDG(nn.Module):
    """Residual dense group: five dense Swin layers, their 1x1 adjustments, a 0.2 residual.

    Layer ``k`` (0-based) sees ``dim + k * gc`` channels: the group's input and the ``gc``
    channels each earlier layer added. Keys: ``swin1`` .. ``swin5``, ``adjust1`` .. ``adjust5``.

    Args:
        dim: Token channels.
        num_heads: Heads of the first layer (the others follow :func:`layer_heads`).
        window_size: Window side.
        mlp_ratio: Hidden width of the first three layers' MLPs (the last two use 1).
        gc: Growth channels of each dense layer.
        qkv_bias: Give the query/key/value projections a bias.
        qk_scale: Logit scale (default ``head_dim ** -0.5``).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        gc: int,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.gc = gc
        for k in range(LAYERS):
            width = dim + k * gc
            block = SwinTransformerBlock(
                dim=width,
                num_heads=num_heads if k == 0 else layer_heads(width, num_heads),
                window_size=window_size,
                shift_size=window_size // 2 if k % 2 else 0,
                mlp_ratio=mlp_ratio if k < 3 else 1.0,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
            )
            self.add_module(f"swin{k + 1}", block)
            out = dim if k == LAYERS - 1 else gc
            self.add_module(f"adjust{k + 1}", nn.Conv2d(width, out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        features = x
        for k in range(1, LAYERS + 1):
            swin: nn.Module = getattr(self, f"swin{k}")
            adjust: nn.Conv2d = getattr(self, f"adjust{k}")
            # A 1x1 convolution on channels-last tokens is a linear layer over the channels.
            y = F.linear(swin(features), adjust.weight.flatten(1), adjust.bias)
            if k < LAYERS:
                features = torch.cat((features, F.leaky_relu(y, 0.2)), dim=-1)
        return torch.add(x, y, alpha=0.2)


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class DRCT(ReconstructionHead):
    """Dense-residual-connected transformer for image super-resolution.

    Takes RGB in [0, 1]; the DIV2K mean is removed and restored inside, as in the original.
    Any input size: the image is reflect-padded to a multiple of ``window_size`` and the output
    cropped.

    Args:
        scale: Upscaling factor (3 or a power of two; 2, 3 and 4 were released).
        in_chans: Image channels.
        embed_dim: Token channels.
        depths: One entry per residual dense group; only the length counts (every group has
            five Swin layers, as upstream).
        num_heads: Attention heads of each group's first layer.
        window_size: Attention window side.
        mlp_ratio: Hidden width of the first three layers' MLPs relative to their tokens.
        qkv_bias: Give the query/key/value projections a bias.
        qk_scale: Logit scale (default ``head_dim ** -0.5``).
        patch_norm: Layer norm after the first convolution.
        img_range: Value range the network works in.
        resi_connection: ``"1conv"`` or ``"identity"`` after the body.
        gc: Growth channels of the dense layers.
        num_feat: Channels of the upsampler (64 upstream, fixed there).

    Example:
        >>> net = DRCT(scale=4, depths=(6,) * 12, num_heads=(6,) * 12)  # DRCT-L
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
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        patch_norm: bool = True,
        img_range: float = 1.0,
        resi_connection: str = "1conv",
        gc: int = 32,
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        _check_arguments(
            embed_dim=embed_dim,
            depths=depths,
            num_heads=num_heads,
            window_size=window_size,
            gc=gc,
            resi_connection=resi_connection,
        )
        self.in_channels = in_chans
        self.out_channels = in_chans
        # Cyclically shifted windows: a border pixel attends across the image (see the module).
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.img_range = img_range
        mean = DIV2K_RGB_MEAN if in_chans == 3 else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, padding=1)
        self.patch_embed = PatchEmbed(dim=embed_dim, norm=patch_norm)
        self.layers = nn.ModuleList(
            RDG(
                dim=embed_dim,
                num_heads=heads,
                window_size=window_size,
                mlp_ratio=mlp_ratio,
                gc=gc,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
            )
            for heads in num_heads
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body: nn.Module = (
            nn.Conv2d(embed_dim, embed_dim, 3, padding=1)
            if resi_connection == "1conv"
            else nn.Identity()
        )
        self.build_head(
            "pixelshuffle",
            dim=embed_dim,
            num_feat=num_feat,
            out_chans=in_chans,
            scale=scale,
            name="DRCT",
        )
        self.apply(init_transformer_weights)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, WindowAttention):
                    nn.init.trunc_normal_(m.relative_position_bias_table, std=0.02)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The deep features of ``(N, embed_dim, H, W)`` shallow ones (``H``, ``W`` multiples
        of the window), before ``conv_after_body``.

        Args:
            x: Output of ``conv_first``.

        Returns:
            ``(N, embed_dim, H, W)``.
        """
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
        x = self.reconstruct(self.conv_after_body(self.features(x)) + x)
        x = x / self.img_range + mean
        return x[:, :, : h * self.scale, : w * self.scale].contiguous()


def _check_arguments(
    *,
    embed_dim: int,
    depths: Sequence[int],
    num_heads: Sequence[int],
    window_size: int,
    gc: int,
    resi_connection: str,
) -> None:
    if len(depths) != len(num_heads) or not depths:
        raise ArgumentError(
            f"DRCT: depths and num_heads need one entry per group, got {tuple(depths)} and "
            f"{tuple(num_heads)}"
        )
    if window_size < 2:
        raise ArgumentError(f"DRCT: window_size must be at least 2, got {window_size}")
    if embed_dim < 1 or gc < 1:
        raise ArgumentError(f"DRCT: embed_dim and gc must be positive, got {embed_dim}, {gc}")
    if resi_connection not in ("1conv", "identity"):
        raise ArgumentError(
            f"DRCT: resi_connection must be '1conv' or 'identity', got {resi_connection!r}"
        )
    for heads in num_heads:
        for k in range(LAYERS):
            width = embed_dim + k * gc
            n = heads if k == 0 else layer_heads(width, heads)
            if heads < 1 or width % n:
                raise ArgumentError(
                    f"DRCT: dense layer {k + 1} has {width} channels (embed_dim {embed_dim} + "
                    f"{k} x gc {gc}), which its {n} heads (from num_heads={heads}) do not divide; "
                    "choose embed_dim, gc and num_heads that fit"
                )


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------


def convert_drct(state: StateDict, module: nn.Module) -> StateDict:
    """Drop the derived tensors of an official (or spandrel) DRCT state dict.

    The official files store every window attention's ``relative_position_index`` and the
    shifted layers' ``attn_mask`` (for the training patch size): tables that follow from the
    window and the input size, which srzoo computes on the input's device. Stored index tables
    are checked against srzoo's, so a file of another window size fails with a clear message
    rather than a wrong network.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params_ema`` etc.).
        module: The :class:`DRCT` they are meant for.

    Returns:
        The state dict without the derived tensors.

    Raises:
        IncompatibleWeightsError: A stored index table differs from the module's.

    Example:
        >>> convert_drct(torch.load("DRCT_SRx4.pth")["params_ema"], net)
    """
    out = {
        k: v
        for k, v in state.items()
        if not k.endswith(("attn.relative_position_index", ".attn_mask"))
    }
    if not isinstance(module, DRCT):
        return out
    expected = relative_position_index(module.window_size, torch.device("cpu"))
    bad = []
    for key, stored in state.items():
        if not key.endswith("attn.relative_position_index") or stored.is_meta:
            continue
        if stored.shape != expected.shape or not torch.equal(stored.long().cpu(), expected):
            bad.append((key, tuple(expected.shape), tuple(stored.shape)))
    if bad:
        raise IncompatibleWeightsError(type(module).__name__, mismatched=bad)
    return out


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title="DRCT: Saving Image Super-Resolution Away from Information Bottleneck",
    venue="CVPR Workshops",
    year=2024,
    arxiv="2404.00722",
)

_DEFAULTS = {
    "embed_dim": 180,
    "depths": (6,) * 6,
    "num_heads": (6,) * 6,
    "window_size": 16,
    "mlp_ratio": 2.0,
    "gc": 32,
}

for _name, _description, _defaults in (
    (
        "drct",
        "DRCT: 6 residual dense groups x 5 Swin layers, 180 features, window 16",
        _DEFAULTS,
    ),
    (
        "drct-l",
        "DRCT-L: 12 residual dense groups x 5 Swin layers, 180 features, window 16",
        {**_DEFAULTS, "depths": (6,) * 12, "num_heads": (6,) * 12},
    ),
):
    register_model(
        ModelSpec(
            name=_name,
            family="drct",
            builder=DRCT,
            scales=(2, 3, 4),
            paper=_PAPER,
            code_license="MIT",
            description=_description,
            task="psnr",
            converter=convert_drct,
            defaults=_defaults,
            size_multiple=16,
            default_scale=4,
        )
    )


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_LAYER0 = "layers.0.swin1."
# ming053l/DRCT's keys (spandrel's); srzoo's state dicts are these without the index tables
# and masks.
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        _LAYER0 + "norm1.weight",
        _LAYER0 + "attn.relative_position_bias_table",
        _LAYER0 + "attn.qkv.weight",
        _LAYER0 + "mlp.fc1.weight",
        "layers.0.adjust1.weight",
        "layers.0.swin5.norm1.weight",
        "layers.0.adjust5.weight",
        "norm.weight",
        "conv_before_upsample.0.weight",
        "conv_last.weight",
    ),
}


def _odd_side(rows: int) -> int:
    # The side of a square (2n - 1) x (2n - 1) table of ``rows`` entries, or 0.
    side = math.isqrt(rows)
    return side if side * side == rows and side % 2 else 0


def detect_drct(shapes: Shapes) -> Detected | None:
    """Recognise a DRCT checkpoint (ming053l/DRCT keys) from keys and shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the number of residual dense
    groups, each group's heads (the last dimension of its first layer's bias table), the growth
    channels ``gc`` (``adjust1``), ``window_size`` (the bias table has ``(2 * window - 1) ** 2``
    rows), ``mlp_ratio`` (the first layer's MLP), ``qkv_bias``, ``patch_norm``,
    ``resi_connection``, ``num_feat`` and the scale from the sub-pixel stages. Every layer's
    width, heads and MLP are checked against the ones these imply.

    What cannot be read: ``depths`` beyond its length (upstream's groups always hold five
    layers: ``(6,) * groups`` is used, as the releases have), ``qk_scale`` (the default
    ``head_dim ** -0.5``) and ``img_range`` (1). A file with ``absolute_pos_embed`` (``ape``,
    which no release uses) is not matched.

    Names: ``drct-l`` for more than six groups, ``drct`` otherwise.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a DRCT.
    """
    if not shapes.has(*_LAYOUTS["official"]) or shapes.has("absolute_pos_embed"):
        return None
    embed_dim, in_chans = shapes.dim("conv_first.weight"), shapes.dim("conv_first.weight", 1)
    n_groups = shapes.count(r"layers\.(\d+)\.swin1\.norm1\.weight")
    heads = tuple(
        shapes.dim(f"layers.{i}.swin1.attn.relative_position_bias_table", 1)
        for i in range(n_groups)
    )
    window = (_odd_side(shapes.dim(_LAYER0 + "attn.relative_position_bias_table")) + 1) // 2
    gc = shapes.dim("layers.0.adjust1.weight")
    hidden = shapes.dim(_LAYER0 + "mlp.fc1.weight")
    num_feat = shapes.dim("conv_before_upsample.0.weight")
    scale = shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat)
    if (
        min((embed_dim, in_chans, n_groups, gc, hidden, num_feat, scale, *heads)) < 1
        or window < 2
        or shapes.dim("conv_last.weight") != in_chans
    ):
        return None
    ratio = hidden / embed_dim
    mlp_ratio = ratio if int(embed_dim * ratio) == hidden else (hidden + 0.5) / embed_dim
    rows = (2 * window - 1) ** 2
    for i, group_heads in enumerate(heads):
        for k in range(LAYERS):
            width = embed_dim + k * gc
            n = group_heads if k == 0 else layer_heads(width, group_heads)
            prefix = f"layers.{i}.swin{k + 1}."
            expected_hidden = int(width * mlp_ratio) if k < 3 else width
            out = embed_dim if k == LAYERS - 1 else gc
            if (
                width % n
                or shapes.get(prefix + "attn.relative_position_bias_table") != (rows, n)
                or shapes.get(prefix + "norm1.weight") != (width,)
                or shapes.dim(prefix + "mlp.fc1.weight") != expected_hidden
                or shapes.get(f"layers.{i}.adjust{k + 1}.weight") != (out, width, 1, 1)
            ):
                return None
    has_conv = shapes.has("conv_after_body.weight")
    args: dict[str, object] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depths": (6,) * n_groups,
        "num_heads": heads,
        "window_size": window,
        "mlp_ratio": mlp_ratio,
        "qkv_bias": shapes.has(_LAYER0 + "attn.qkv.bias"),
        "patch_norm": shapes.has("patch_embed.norm.weight"),
        "resi_connection": "1conv" if has_conv else "identity",
        "gc": gc,
        "num_feat": num_feat,
    }
    name = "drct-l" if n_groups > 6 else "drct"
    return Detected(name, scale, args, "official")


register_detector("drct", detect_drct, layouts=_LAYOUTS)
