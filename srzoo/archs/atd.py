"""ATD: the super-resolution transformer with an adaptive token dictionary.

Paper: Zhang, Li, Zhou, Zhao, Gu, "Transcending the Limit of Local Window: Advanced
Super-Resolution Transformer with Adaptive Token Dictionary", CVPR 2024, arXiv:2401.08209.

Parameter names follow LabShuHangGU/Adaptive-Token-Dictionary ``basicsr/archs/atd_arch.py``
(identical to spandrel's ATD), so the authors' ``params_ema`` files load unchanged once srzoo's
reader has unwrapped them. The official files also store ``relative_position_index_SA``, which
follows from the window size; srzoo computes it on the input's device, and :func:`convert_atd`
checks and drops the stored copy. spandrel's re-saves of third-party files without the mean
shift hold a ``no_norm`` marker, which srzoo reads as ``norm=False``.

The network is SwinIR's frame (a 3x3 convolution, residual groups on tokens, a layer norm, a
convolution, one of SwinIR's heads) with ATD layers in the groups. Each group owns a learned
token dictionary ``td`` (``num_tokens`` tokens); each layer projects its normalised tokens once
(``wqkv``) and sums three attentions over them:

- window self-attention (``attn_win``), on plain and (every second layer) shifted windows;
- token-dictionary cross-attention (``attn_atd``): cosine similarity of reduced queries and
  keys of the dictionary, scaled per dictionary token, softmax over the dictionary;
- adaptive category-based self-attention (``attn_aca``): every token takes the category of its
  most similar dictionary token; the tokens are sorted by category and cut into groups of
  ``category_size``, within which they attend to each other (the last group filled up with the
  last tokens in reverse order, as upstream).

A convolutional feed-forward network (linear, GELU, a depthwise ``convffn_kernel_size`` conv
added back, linear) follows, and every layer but the last of a group refines the group's
dictionary from the image tokens it is most similar to.

Inputs are padded to a multiple of the window by mirroring with the edge repeated (upstream's
``flip`` concatenation), continued periodically so that any size pads, and the output is
cropped. Attention runs through :func:`torch.nn.functional.scaled_dot_product_attention`
(window bias plus shift mask, upstream's scales); windows are cut and put back with one cached
``index_select`` each way; the category sort is a ``torch.sort`` on the device with a
``gather`` / ``scatter`` of the tokens, all inside the graph that ``torch.compile`` captures.

ATD declares no receptive-field radius (``receptive_field = None``): the dictionary attention
and its refinement mix every token of the image.

Registered models (Apache-2.0 code):

- ``atd``: 6 groups x 6 layers, 210 features, 6 heads, window 16, category size 256, 128
  dictionary tokens, reduced dimension 20, FFN kernel 5, MLP ratio 2, pixel-shuffle head;
  x2, x3, x4.
- ``atd-light``: 4 groups x 6 layers, 48 features, 4 heads, window 16, category size 128, 64
  dictionary tokens, reduced dimension 8, FFN kernel 7, MLP ratio 1, one-step pixel-shuffle
  head (``pixelshuffledirect``); x2, x3, x4.

Weights are not registered: the authors publish them only in a Google Drive folder
(``001_ATD_SRx2_finetune.pth`` ... ``103_ATD_light_SRx4_finetune.pth``), which a plain HTTP
client cannot fetch, and no mirror with a published sha256 is known to srzoo (ATD x4,
``092bf6aa...8b833``, 163,803,535 bytes, is such a Drive file). Load a downloaded file with
``srzoo.load("atd", scale=4, weights=path)`` or ``srzoo.load_file(path)``. The releases were
trained on DF2K (ATD) and DIV2K (ATD-light), bicubic, as the authors' README says. The paper's
Set5 / Set14 numbers are not quoted here: srzoo has not read them from the paper itself, and the
authors' README shows them only as images.
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
    shuffle_split,
)
from ._blocks import DIV2K_RGB_MEAN, image_forward
from ._transformer import (
    PatchEmbed,
    ReconstructionHead,
    init_transformer_weights,
    masked_window_attention,
    merge_heads,
    residual_conv,
    to_image,
    to_tokens,
)
from ._window import relative_position_index, shift_mask, window_order

__all__ = [
    "AC_MSA",
    "ATD",
    "ATDB",
    "ATD_CA",
    "ATDTransformerLayer",
    "BasicBlock",
    "ConvFFN",
    "WindowAttention",
    "convert_atd",
    "detect_atd",
    "symmetric_pad",
]


# --------------------------------------------------------------------------------------------
# Padding and window order
# --------------------------------------------------------------------------------------------


def _symmetric_indices(n: int, pad: int, device: torch.device) -> torch.Tensor:
    # 0..n-1, then n-1, n-2, ... 0, 0, 1, ... (period 2n): the mirror with the edge repeated.
    i = torch.arange(n + pad, device=device) % (2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def symmetric_pad(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``(N, C, H, W)`` at the bottom and right to multiples of ``multiple``, mirroring.

    The mirror repeats the edge (row ``H`` copies row ``H - 1``), as upstream's
    ``torch.cat([x, torch.flip(x, [2])], 2)`` does; where the pad exceeds the side, the mirror
    continues periodically, so any size pads (upstream's fails there).

    Args:
        x: The image.
        multiple: The multiple.

    Returns:
        The padded image (``x`` itself when nothing is missing).

    Example:
        >>> symmetric_pad(torch.rand(1, 3, 13, 11), 16).shape
        torch.Size([1, 3, 16, 16])
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h:
        x = x.index_select(-2, _symmetric_indices(h, pad_h, x.device))
    if pad_w:
        x = x.index_select(-1, _symmetric_indices(w, pad_w, x.device))
    return x


# --------------------------------------------------------------------------------------------
# Attentions
# --------------------------------------------------------------------------------------------


class WindowAttention(nn.Module):
    """Window self-attention on projected ``qkv`` windows, with a relative-position bias.

    Args:
        dim: Token channels.
        window_size: Window side.
        num_heads: Attention heads.
    """

    def __init__(self, *, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        self.proj = nn.Linear(dim, dim)

    def forward(self, qkv: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Attend within each window.

        Args:
            qkv: ``(batch * num_windows, window**2, 3 * dim)`` projected windows.
            mask: The shifted windows' ``(num_windows, N, N)`` additive mask, or ``None``.

        Returns:
            ``(batch * num_windows, window**2, dim)``.
        """
        b, n, c3 = qkv.shape
        c = c3 // 3
        q, k, v = qkv.view(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        index = relative_position_index(self.window_size, qkv.device)
        # (1, heads, N, N): the fused CPU kernel takes a mask with a batch dimension of one.
        bias = self.relative_position_bias_table.t().index_select(1, index.reshape(-1))
        bias = bias.view(1, self.num_heads, n, n).to(q.dtype)
        out = masked_window_attention(q, k, v, bias, mask, scale=self.scale)
        return self.proj(merge_heads(out))


class ATD_CA(nn.Module):
    """Token-dictionary cross-attention: image tokens query the group's dictionary.

    Args:
        dim: Token channels.
        num_tokens: Dictionary tokens.
        reducted_dim: Channels of the (cosine) queries and keys.
        qkv_bias: Give the projections a bias.
    """

    def __init__(self, *, dim: int, num_tokens: int, reducted_dim: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.wq = nn.Linear(dim, reducted_dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, reducted_dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.scale = nn.Parameter(torch.full((num_tokens,), 0.5))

    def forward(self, x: torch.Tensor, td: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N, C)`` tokens and a ``(B, M, C)`` dictionary -> the attended tokens and the
        ``(B, N, M)`` attention map (each token's similarity to each dictionary token)."""
        q = F.normalize(self.wq(x), dim=-1)
        k = F.normalize(self.wk(td), dim=-1)
        # Per-token temperature 1 + s * log(M), s in [0, 1].
        temperature = 1 + self.scale.clamp(0, 1) * math.log(self.num_tokens)
        sim = torch.softmax((q @ k.transpose(-2, -1)) * temperature, dim=-1)
        return sim @ self.wv(td), sim


class AC_MSA(nn.Module):
    """Adaptive category-based multi-head self-attention.

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        category_size: Tokens in each attention group.
        qkv_bias: Give the output projection a bias (upstream ties it to ``qkv_bias``).
    """

    def __init__(self, *, dim: int, num_heads: int, category_size: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.category_size = category_size
        self.proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.logit_scale = nn.Parameter(torch.full((1, 1), math.log(10.0)))

    def forward(self, qkv: torch.Tensor, sim: torch.Tensor) -> torch.Tensor:
        """``(B, N, 3C)`` projected tokens, their ``(B, N, M)`` dictionary similarity ->
        ``(B, N, C)``."""
        b, n, c3 = qkv.shape
        c, heads = c3 // 3, self.num_heads
        gs = min(n, self.category_size)
        ng = -(-n // gs)
        pad = ng * gs - n
        # Sort the tokens by category (their most similar dictionary token), as upstream does.
        order = torch.sort(sim.argmax(dim=-1), dim=-1, stable=False).indices
        shuffled = qkv.gather(1, order.unsqueeze(-1).expand(b, n, c3))
        if pad:
            shuffled = torch.cat((shuffled, shuffled[:, n - pad :].flip(1)), dim=1)
        q, k, v = shuffled.view(b * ng, gs, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        # Plain dot products scaled by a learned temperature (at most 100).
        scale = self.logit_scale.clamp(max=math.log(100.0)).exp()
        out = F.scaled_dot_product_attention(q * scale.to(q.dtype), k, v, scale=1.0)
        out = merge_heads(out).view(b, ng * gs, c)[:, :n]
        unsorted = torch.empty_like(out).scatter(1, order.unsqueeze(-1).expand(b, n, c), out)
        return self.proj(unsorted)


class ConvFFN(nn.Module):
    """Linear, GELU, a depthwise convolution (plus GELU) added back, linear.

    Args:
        dim: Token channels.
        hidden: Hidden channels.
        kernel_size: Side of the depthwise convolution.
    """

    def __init__(self, *, dim: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.dwconv = _DWConv(hidden, kernel_size)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        x = self.act(self.fc1(x))
        return self.fc2(x + self.dwconv(x))


class _DWConv(nn.Module):
    # Upstream's ``dwconv`` wrapper (key ``depthwise_conv.0``), on channels-last tokens.
    def __init__(self, hidden: int, kernel_size: int) -> None:
        super().__init__()
        self.depthwise_conv = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size, padding=(kernel_size - 1) // 2, groups=hidden),
            nn.GELU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_tokens(self.depthwise_conv(to_image(x)))


# --------------------------------------------------------------------------------------------
# Layers and groups
# --------------------------------------------------------------------------------------------


class ATDTransformerLayer(nn.Module):
    """One ATD layer: window, dictionary and category attentions, a ConvFFN, the dictionary's
    refinement (all but the last layer of a group).

    Args:
        dim: Token channels.
        num_heads: Attention heads.
        window_size: Window side.
        shift_size: Cyclic shift of the windows (0 or ``window_size // 2``).
        category_size: Tokens in each category attention group.
        num_tokens: Dictionary tokens.
        reducted_dim: Channels of the dictionary attention's queries and keys.
        convffn_kernel_size: Side of the ConvFFN's depthwise convolution.
        mlp_ratio: Hidden width of the ConvFFN relative to ``dim``.
        qkv_bias: Give the projections a bias.
        is_last: The last layer of its group (no dictionary refinement).
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: int,
        shift_size: int,
        category_size: int,
        num_tokens: int,
        reducted_dim: int,
        convffn_kernel_size: int,
        mlp_ratio: float,
        qkv_bias: bool,
        is_last: bool,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.is_last = is_last
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        if not is_last:
            self.norm3 = nn.InstanceNorm1d(num_tokens, affine=True)
            self.sigma = nn.Parameter(torch.zeros(num_tokens, 1))
        self.wqkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_win = WindowAttention(dim=dim, window_size=window_size, num_heads=num_heads)
        self.attn_atd = ATD_CA(
            dim=dim, num_tokens=num_tokens, reducted_dim=reducted_dim, qkv_bias=qkv_bias
        )
        self.attn_aca = AC_MSA(
            dim=dim, num_heads=num_heads, category_size=category_size, qkv_bias=qkv_bias
        )
        self.convffn = ConvFFN(
            dim=dim, hidden=int(dim * mlp_ratio), kernel_size=convffn_kernel_size
        )

    def forward(self, x: torch.Tensor, td: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, H, W, C)`` tokens (``H``, ``W`` multiples of the window) and the ``(B, M, C)``
        dictionary -> both updated."""
        b, h, w, c = x.shape
        ws, s = self.window_size, self.shift_size
        flat = self.norm1(x).reshape(b, h * w, c)
        qkv = self.wqkv(flat)
        x_atd, sim = self.attn_atd(flat, td)
        x_aca = self.attn_aca(qkv, sim)
        gather, scatter = window_order(h, w, ws, s, x.device)
        windows = qkv.index_select(1, gather).view(-1, ws * ws, 3 * c)
        mask = shift_mask(h, w, ws, s, device=x.device, dtype=x.dtype) if s else None
        x_win = self.attn_win(windows, mask).view(b, h * w, c).index_select(1, scatter)
        x = x + (x_win + x_atd + x_aca).view(b, h, w, c)
        x = x + self.convffn(self.norm2(x))
        if not self.is_last:
            # Refine the dictionary from the image tokens each entry is most similar to.
            weights = torch.softmax(self.norm3(sim.transpose(-1, -2)), dim=-1)
            keep = torch.sigmoid(self.sigma)
            td = keep * td + (1 - keep) * (weights @ x.reshape(b, h * w, c))
        return x, td


class BasicBlock(nn.Module):
    """The ATD layers of one group (every second one on shifted windows) and its dictionary.

    Args:
        dim: Token channels.
        depth: Number of layers.
        num_tokens: Dictionary tokens.
        **layer: The other arguments of :class:`ATDTransformerLayer`.
    """

    def __init__(self, *, dim: int, depth: int, num_tokens: int, **layer: object) -> None:
        super().__init__()
        window = int(layer["window_size"])  # type: ignore[call-overload]
        self.layers = nn.ModuleList(
            ATDTransformerLayer(
                dim=dim,
                num_tokens=num_tokens,
                shift_size=window // 2 if i % 2 else 0,
                is_last=i == depth - 1,
                **layer,  # type: ignore[arg-type]
            )
            for i in range(depth)
        )
        self.td = nn.Parameter(torch.randn(num_tokens, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        td = self.td.expand(x.shape[0], -1, -1)
        for layer in self.layers:
            x, td = layer(x, td)
        return x


class ATDB(nn.Module):
    """Adaptive token dictionary block: a :class:`BasicBlock`, a convolution, a skip.

    Args:
        dim: Token channels.
        resi_connection: ``"1conv"`` or ``"3conv"``.
        **block: The arguments of :class:`BasicBlock`.
    """

    def __init__(self, *, dim: int, resi_connection: str, **block: object) -> None:
        super().__init__()
        self.residual_group = BasicBlock(dim=dim, **block)  # type: ignore[arg-type]
        self.conv = residual_conv(dim, resi_connection, name="ATD")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` tokens -> the same shape."""
        return to_tokens(self.conv(to_image(self.residual_group(x)))) + x


# --------------------------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------------------------


class ATD(ReconstructionHead):
    """Adaptive Token Dictionary transformer for image super-resolution.

    Takes RGB in [0, 1]; the DIV2K mean is removed and restored inside (unless ``norm`` is
    off), as in the original. Any input size: the image is mirror-padded to a multiple of
    ``window_size`` and the output cropped.

    Args:
        scale: Upscaling factor.
        in_chans: Image channels.
        embed_dim: Token channels.
        depths: ATD layers in each group.
        num_heads: Attention heads in each group.
        window_size: Attention window side.
        category_size: Tokens in each category attention group.
        num_tokens: Tokens in each group's dictionary.
        reducted_dim: Channels of the dictionary attention's queries and keys.
        convffn_kernel_size: Side of the ConvFFNs' depthwise convolutions.
        mlp_ratio: Hidden width of the ConvFFNs relative to ``embed_dim``.
        qkv_bias: Give the projections a bias.
        patch_norm: Layer norm after the first convolution.
        img_range: Value range the network works in.
        upsampler: ``"pixelshuffle"``, ``"pixelshuffledirect"`` or ``"nearest+conv"``.
        resi_connection: ``"1conv"`` or ``"3conv"`` after each group and the body.
        norm: Remove and restore the DIV2K mean (files without it hold a ``no_norm`` marker).
        num_feat: Channels of the ``"pixelshuffle"`` and ``"nearest+conv"`` heads (64 upstream,
            fixed there).

    Example:
        >>> net = ATD(scale=4)  # the classical ATD
    """

    mean: torch.Tensor

    def __init__(
        self,
        *,
        scale: int = 4,
        in_chans: int = 3,
        embed_dim: int = 210,
        depths: Sequence[int] = (6, 6, 6, 6, 6, 6),
        num_heads: Sequence[int] = (6, 6, 6, 6, 6, 6),
        window_size: int = 16,
        category_size: int = 256,
        num_tokens: int = 128,
        reducted_dim: int = 20,
        convffn_kernel_size: int = 5,
        mlp_ratio: float = 2.0,
        qkv_bias: bool = True,
        patch_norm: bool = True,
        img_range: float = 1.0,
        upsampler: str = "pixelshuffle",
        resi_connection: str = "1conv",
        norm: bool = True,
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads) or not depths or min(depths) < 1:
            raise ArgumentError(
                f"ATD: depths and num_heads need one positive entry per group, got "
                f"{tuple(depths)} and {tuple(num_heads)}"
            )
        if any(h < 1 or embed_dim % h for h in num_heads):
            raise ArgumentError(
                f"ATD: embed_dim ({embed_dim}) must be a multiple of every num_heads "
                f"{tuple(num_heads)}"
            )
        if window_size < 2 or category_size < 1 or num_tokens < 1 or reducted_dim < 1:
            raise ArgumentError(
                f"ATD: window_size must be at least 2 and category_size, num_tokens and "
                f"reducted_dim positive, got {window_size}, {category_size}, {num_tokens}, "
                f"{reducted_dim}"
            )
        if convffn_kernel_size < 1 or convffn_kernel_size % 2 == 0:
            raise ArgumentError(f"ATD: convffn_kernel_size must be odd, got {convffn_kernel_size}")
        self.in_channels = in_chans
        self.out_channels = in_chans
        # The dictionary attention mixes every token of the image (see the module).
        self.receptive_field: int | None = None
        self.window_size = window_size
        self.img_range = img_range
        self.norm_input = norm
        mean = DIV2K_RGB_MEAN if in_chans == 3 and norm else (0.0,) * in_chans
        self.register_buffer("mean", torch.tensor(mean).view(1, in_chans, 1, 1), persistent=False)
        if not norm:
            # The marker spandrel's files carry; kept so that srzoo's own files say it too.
            self.register_buffer("no_norm", torch.zeros(1))

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, padding=1)
        self.patch_embed = PatchEmbed(dim=embed_dim, norm=patch_norm)
        self.layers = nn.ModuleList(
            ATDB(
                dim=embed_dim,
                resi_connection=resi_connection,
                depth=depth,
                num_tokens=num_tokens,
                num_heads=heads,
                window_size=window_size,
                category_size=category_size,
                reducted_dim=reducted_dim,
                convffn_kernel_size=convffn_kernel_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
            )
            for depth, heads in zip(depths, num_heads, strict=True)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection, name="ATD")
        self.build_head(
            upsampler,
            dim=embed_dim,
            num_feat=num_feat,
            out_chans=in_chans,
            scale=scale,
            name="ATD",
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
        x = symmetric_pad((x - mean) * self.img_range, self.window_size)
        x = self.conv_first(x)
        x = self.reconstruct(self.conv_after_body(self.features(x)) + x)
        x = x / self.img_range + mean
        return x[:, :, : h * self.scale, : w * self.scale].contiguous()


# --------------------------------------------------------------------------------------------
# Checkpoint layouts
# --------------------------------------------------------------------------------------------

_INDEX_KEY = "relative_position_index_SA"


def convert_atd(state: StateDict, module: nn.Module) -> StateDict:
    """Drop the derived index table of an official (or spandrel) ATD state dict.

    The official files store ``relative_position_index_SA``, which follows from the window
    size and which srzoo computes on the input's device. A stored table is checked against
    srzoo's, so a file of another window size fails with a clear message rather than a wrong
    network.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params_ema`` etc.).
        module: The :class:`ATD` they are meant for.

    Returns:
        The state dict without the index table.

    Raises:
        IncompatibleWeightsError: The stored index table differs from the module's.

    Example:
        >>> convert_atd(torch.load("003_ATD_SRx4_finetune.pth")["params_ema"], net)
    """
    out = {k: v for k, v in state.items() if k != _INDEX_KEY}
    stored = state.get(_INDEX_KEY)
    if not isinstance(module, ATD) or stored is None or stored.is_meta:
        return out
    expected = relative_position_index(module.window_size, torch.device("cpu"))
    if stored.shape != expected.shape or not torch.equal(stored.long().cpu(), expected):
        raise IncompatibleWeightsError(
            type(module).__name__,
            mismatched=[(_INDEX_KEY, tuple(expected.shape), tuple(stored.shape))],
        )
    return out


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_PAPER = Paper(
    title=(
        "Transcending the Limit of Local Window: Advanced Super-Resolution Transformer with "
        "Adaptive Token Dictionary"
    ),
    venue="CVPR",
    year=2024,
    arxiv="2401.08209",
)

_ATD_DEFAULTS = {
    "embed_dim": 210,
    "depths": (6,) * 6,
    "num_heads": (6,) * 6,
    "window_size": 16,
    "category_size": 256,
    "num_tokens": 128,
    "reducted_dim": 20,
    "convffn_kernel_size": 5,
    "mlp_ratio": 2.0,
    "upsampler": "pixelshuffle",
}
_LIGHT_DEFAULTS = {
    "embed_dim": 48,
    "depths": (6,) * 4,
    "num_heads": (4,) * 4,
    "window_size": 16,
    "category_size": 128,
    "num_tokens": 64,
    "reducted_dim": 8,
    "convffn_kernel_size": 7,
    "mlp_ratio": 1.0,
    "upsampler": "pixelshuffledirect",
}

for _name, _description, _defaults in (
    ("atd", "ATD: 6 groups x 6 layers, 210 features, window 16, 128 tokens", _ATD_DEFAULTS),
    (
        "atd-light",
        "ATD-light: 4 groups x 6 layers, 48 features, window 16, 64 tokens",
        _LIGHT_DEFAULTS,
    ),
):
    register_model(
        ModelSpec(
            name=_name,
            family="atd",
            builder=ATD,
            scales=(2, 3, 4),
            paper=_PAPER,
            code_license="Apache-2.0",
            description=_description,
            task="psnr",
            converter=convert_atd,
            defaults=_defaults,
            size_multiple=16,
            default_scale=4,
        )
    )


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_LAYER0 = "layers.0.residual_group.layers.0."
# LabShuHangGU/Adaptive-Token-Dictionary's keys (spandrel's); srzoo's state dicts are these
# without the index table.
_LAYOUTS = {
    "official": (
        "conv_first.weight",
        "layers.0.residual_group.td",
        _LAYER0 + "norm1.weight",
        _LAYER0 + "wqkv.weight",
        _LAYER0 + "attn_win.relative_position_bias_table",
        _LAYER0 + "attn_atd.scale",
        _LAYER0 + "attn_atd.wq.weight",
        _LAYER0 + "attn_aca.logit_scale",
        _LAYER0 + "convffn.fc1.weight",
        _LAYER0 + "convffn.dwconv.depthwise_conv.0.weight",
        "norm.weight",
    ),
}


def _head(shapes: Shapes, in_chans: int) -> tuple[str, int, int]:
    """``(upsampler, scale, num_feat)`` from the head's tensors, or ``("", 0, 0)``."""
    num_feat = shapes.dim("conv_before_upsample.0.weight")
    if shapes.has("conv_up1.weight"):
        return "nearest+conv", 4 if shapes.has("conv_up2.weight") else 2, num_feat
    if num_feat:
        return (
            "pixelshuffle",
            shapes.stacked_shuffle_scale("upsample.", ".weight", num_feat),
            num_feat,
        )
    scale, out = shuffle_split(shapes.dim("upsample.0.weight"), in_chans)
    if out != in_chans or shapes.has("conv_last.weight"):
        return "", 0, 0
    return "pixelshuffledirect", scale, 64


def detect_atd(shapes: Shapes) -> Detected | None:
    """Recognise an ATD checkpoint (LabShuHangGU/Adaptive-Token-Dictionary keys) from shapes.

    Reads ``embed_dim`` and the image channels (``conv_first``), the layers of each group
    (``depths``), the heads of each group (its first layer's bias table), ``window_size`` (the
    table has ``(2 * window - 1) ** 2`` rows), ``num_tokens`` (the dictionary), ``reducted_dim``
    (``wq``), ``convffn_kernel_size``, ``mlp_ratio``, ``qkv_bias``, ``patch_norm``,
    ``resi_connection`` (``layers.0.conv`` one convolution or three), ``norm`` (``no_norm``
    absent), the head (``upsampler``, ``num_feat``) and the scale.

    What cannot be read: ``category_size`` (the attention groups hold no weights): 128 for a
    ``pixelshuffledirect`` head (ATD-light's), 256 otherwise (ATD's), the releases' values;
    ``img_range`` (1).

    Names: ``atd-light`` for the ``pixelshuffledirect`` head, ``atd`` otherwise.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an ATD.
    """
    if not shapes.has(*_LAYOUTS["official"]) or shapes.has("absolute_pos_embed"):
        return None
    embed_dim, in_chans = shapes.dim("conv_first.weight"), shapes.dim("conv_first.weight", 1)
    n_groups = shapes.count(r"layers\.(\d+)\.residual_group\.td")
    depths = tuple(
        shapes.count(rf"layers\.{i}\.residual_group\.layers\.(\d+)\.norm1\.weight")
        for i in range(n_groups)
    )
    heads = tuple(
        shapes.dim(f"layers.{i}.residual_group.layers.0.attn_win.relative_position_bias_table", 1)
        for i in range(n_groups)
    )
    rows = shapes.dim(_LAYER0 + "attn_win.relative_position_bias_table")
    side = math.isqrt(rows)
    # A (2 * window - 1) ** 2 table.
    window = (side + 1) // 2 if side % 2 and side * side == rows else 0
    num_tokens = shapes.dim("layers.0.residual_group.td")
    reducted = shapes.dim(_LAYER0 + "attn_atd.wq.weight")
    kernel = shapes.dim(_LAYER0 + "convffn.dwconv.depthwise_conv.0.weight", 2)
    hidden = shapes.dim(_LAYER0 + "convffn.fc1.weight")
    upsampler, scale, num_feat = _head(shapes, in_chans)
    if (
        min((embed_dim, in_chans, n_groups, num_tokens, reducted, kernel, hidden, scale)) < 1
        or min(depths + heads) < 1
        or window < 2
        or any(embed_dim % h for h in heads)
    ):
        return None
    if shapes.has("layers.0.conv.weight"):
        resi = "1conv"
    elif shapes.has("layers.0.conv.0.weight", "layers.0.conv.4.weight"):
        resi = "3conv"
    else:
        return None
    ratio = hidden / embed_dim
    light = upsampler == "pixelshuffledirect"
    args: dict[str, object] = {
        "in_chans": in_chans,
        "embed_dim": embed_dim,
        "depths": depths,
        "num_heads": heads,
        "window_size": window,
        "category_size": 128 if light else 256,
        "num_tokens": num_tokens,
        "reducted_dim": reducted,
        "convffn_kernel_size": kernel,
        # hidden == int(embed_dim * mlp_ratio): one just above the quotient when int() rounded.
        "mlp_ratio": ratio if int(embed_dim * ratio) == hidden else (hidden + 0.5) / embed_dim,
        "qkv_bias": shapes.has(_LAYER0 + "wqkv.bias"),
        "patch_norm": shapes.has("patch_embed.norm.weight"),
        "upsampler": upsampler,
        "resi_connection": resi,
        "norm": not shapes.has("no_norm"),
        "num_feat": num_feat,
    }
    return Detected("atd-light" if light else "atd", scale, args, "official")


register_detector("atd", detect_atd, layouts=_LAYOUTS)
