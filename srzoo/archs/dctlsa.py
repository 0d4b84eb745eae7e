"""DCTLSA: a densely connected transformer with linear self-attention.

Paper: Zeng, Lin, Yan, Fang, "Densely Connected Transformer With Linear Self-Attention for
Lightweight Image Super-Resolution", IEEE Transactions on Instrumentation and Measurement 72,
2023, doi:10.1109/TIM.2023.3304672 (no arXiv version).

Parameter names follow zengkun301/DCTLSA ``src/model/dctlsa.py`` (spandrel's ``DCTLSA`` has the
same keys), so the authors' ``pretrained/X2.pt``, ``X3.pt`` and ``X4.pt`` (bare state dicts)
load unchanged.

The network: a 3x3 convolution; six linear self-attention blocks (LSAB) ``B1`` ... ``B6``, densely
connected (the input of each is a 1x1 convolution and LeakyReLU, ``c1`` ... ``c5``, of the
features and every earlier block's output); a 1x1 fusion ``c`` of the six outputs; a 3x3
convolution ``LR_conv`` with a skip; a one-step pixel-shuffle head. Each LSAB is two Swin-style
layers, each a layer norm then two blocks (the second on windows shifted by half a window) of
a local branch (batch norm, 1x1, depthwise 3x3, batch norm, 1x1, plus a skip), linear
attention in 16x16 windows (the keys are softmax-normalised over the window's tokens, and
``q (k^T v)`` replaces ``softmax(q k^T) v``) and an MLP.

Inputs are RGB in [0, 1] (the authors test with ``--rgb_range 1``). Any size works: each
Swin-style layer reflect-pads its features at the bottom and right to a multiple of the window
(16) and crops after, as the original does (so ``size_multiple`` in the registry is 16: tiles
on that grid are not padded); srzoo's padding also serves sides shorter than the pad, where the
original fails.

DCTLSA declares no receptive-field radius (``receptive_field = None``): its windows are
anchored at the image's corner and shifted cyclically, so a pixel near one border attends to
pixels at the opposite one.

Not in the weights: the number of heads (5 in every release) splits the linear attention
(each head has its own ``d x d`` summary ``k^T v``) but owns no parameter, so files are
detected with 5 heads.

Registered model:

- ``dctlsa``: 55 features, 5 heads, x2 / x3 / x4, the authors' DIV2K-trained weights from their
  repository (files committed at ``0756bc8``; the sha256 and size are those of the committed
  blobs). The paper's benchmark numbers are not restated here.

Example:
    >>> model = srzoo.load("dctlsa", scale=4)
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    WeightSpec,
    register_detector,
    register_model,
    shuffle_split,
)
from ._blocks import image_forward
from ._window import reflect_pad

__all__ = [
    "DCTLSA",
    "LSAB",
    "BasicLayer",
    "LocalModule",
    "SwinTransformerBlock",
    "WindowAttention",
    "detect_dctlsa",
]

_WINDOW = 16  # fixed in the authors' SwinT


class LocalModule(nn.Sequential):
    """The attention's local branch: BN, 1x1, depthwise 3x3, BN, 1x1 (no activation).

    Args:
        channels: Feature channels.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pointwise_prenorm_0 = nn.BatchNorm2d(channels)
        self.pointwise_conv_0 = nn.Conv2d(channels, channels, 1, bias=False)
        self.depthwise_conv = nn.Conv2d(
            channels, channels, 3, padding=1, groups=channels, bias=False
        )
        self.pointwise_prenorm_1 = nn.BatchNorm2d(channels)
        self.pointwise_conv_1 = nn.Conv2d(channels, channels, 1, bias=False)


class WindowAttention(nn.Module):
    """Local branch, then linear self-attention in non-overlapping windows, plus the branch.

    Args:
        dim: Token features (a multiple of ``num_heads``).
        num_heads: Heads; each keeps its own ``d x d`` summary of keys and values.
        window_size: Side of the windows.
    """

    def __init__(self, *, dim: int, num_heads: int, window_size: int = _WINDOW) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.local = LocalModule(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend in windows of ``(B, H, W, C)`` tokens (``H``, ``W`` multiples of the window)."""
        _, h, w, _ = x.shape
        ws, heads = self.window_size, self.num_heads
        # The channel-last map seen as NCHW is already in channels-last memory: the
        # convolutions take it without a copy and their output permutes back for free.
        temp = x.permute(0, 3, 1, 2)
        local = (self.local(temp) + temp).permute(0, 2, 3, 1)
        b, c = x.shape[0], x.shape[3]
        nh, nw, d = h // ws, w // ws, c // heads
        # (b, nh, wh, nw, ww, 3, heads, d) -> (3, b * nh * nw, heads, wh * ww, d)
        qkv = self.qkv(local).view(b, nh, ws, nw, ws, 3, heads, d)
        qkv = qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(3, b * nh * nw, heads, ws * ws, d)
        q, k, v = qkv.unbind(0)
        summary = k.softmax(dim=-2).transpose(-2, -1) @ v  # (windows, heads, d, d)
        out = (q * self.scale) @ summary
        out = out.view(b, nh, nw, heads, ws, ws, d).permute(0, 1, 4, 2, 5, 3, 6)
        return self.proj(out.reshape(b, h, w, c)) + local


class _Mlp(nn.Module):
    """Linear, GELU, linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinTransformerBlock(nn.Module):
    """Cyclic shift, windowed linear attention (its own skip is the local branch), shift back,
    then ``x + mlp(x)``.

    Args:
        dim: Token features.
        num_heads: Attention heads.
        window_size: Side of the windows.
        shift_size: Cyclic shift (0, or half a window in every second block).
        mlp_ratio: Hidden features of the MLP per token feature.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        window_size: int = _WINDOW,
        shift_size: int = 0,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.shift_size = shift_size
        self.attn = WindowAttention(dim=dim, num_heads=num_heads, window_size=window_size)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.shift_size
        if s:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
        x = self.attn(x)
        if s:
            x = torch.roll(x, shifts=(s, s), dims=(1, 2))
        return x + self.mlp(x)


class _PatchEmbed(nn.Module):
    """Holds the layer norm of the tokens (upstream's ``PatchEmbed``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)


class BasicLayer(nn.Module):
    """Pad to the window, layer-norm the tokens, two blocks (plain, shifted), crop.

    Args:
        dim: Feature channels.
        num_heads: Attention heads.
        depth: Blocks (every second one shifted).
        window_size: Side of the windows.
        mlp_ratio: Hidden features of the MLPs per feature.
    """

    def __init__(
        self,
        *,
        dim: int,
        num_heads: int,
        depth: int = 2,
        window_size: int = _WINDOW,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.blocks = nn.ModuleList(
            SwinTransformerBlock(
                dim=dim,
                num_heads=num_heads,
                window_size=window_size,
                shift_size=0 if i % 2 == 0 else window_size // 2,
                mlp_ratio=mlp_ratio,
            )
            for i in range(depth)
        )
        self.patch_embed = _PatchEmbed(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ws = self.window_size
        tokens = reflect_pad(x, -h % ws, -w % ws).permute(0, 2, 3, 1)
        tokens = self.patch_embed.norm(tokens)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens.permute(0, 3, 1, 2)[..., :h, :w]


class _SwinT(nn.Module):
    """One Swin-style layer (upstream's ``SwinT``, a ``transformer_body`` of one BasicLayer)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.transformer_body = nn.Sequential(BasicLayer(dim=dim, num_heads=num_heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.transformer_body(x)


class LSAB(nn.Module):
    """Linear self-attention block: two Swin-style layers.

    Args:
        in_channels: Feature channels.
        num_head: Attention heads.
    """

    def __init__(self, *, in_channels: int = 55, num_head: int = 5) -> None:
        super().__init__()
        self.body = nn.Sequential(*(_SwinT(in_channels, num_head) for _ in range(2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _fuse(in_ch: int, out_ch: int) -> nn.Sequential:
    """1x1 convolution and LeakyReLU(0.05), upstream's ``conv_block(..., act_type="lrelu")``."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1), nn.LeakyReLU(0.05))


class DCTLSA(nn.Module):
    """Densely Connected Transformer with Linear Self-Attention.

    Args:
        scale: Upscaling factor (any integer >= 1; the authors release x2, x3, x4).
        in_nc: Input channels.
        out_nc: Output channels.
        nf: Feature channels (a multiple of ``num_head``).
        num_head: Attention heads of the linear attention.

    Raises:
        ArgumentError: A non-positive size or scale, or ``nf`` not a multiple of ``num_head``.

    Example:
        >>> DCTLSA(scale=4)(torch.rand(1, 3, 20, 20)).shape
        torch.Size([1, 3, 80, 80])
    """

    blocks = ("B1", "B2", "B3", "B4", "B5", "B6")

    def __init__(
        self,
        *,
        scale: int = 4,
        in_nc: int = 3,
        out_nc: int = 3,
        nf: int = 55,
        num_head: int = 5,
    ) -> None:
        super().__init__()
        sizes = {"scale": scale, "in_nc": in_nc, "out_nc": out_nc, "nf": nf, "num_head": num_head}
        for name, value in sizes.items():
            if value < 1:
                raise ArgumentError(f"DCTLSA: {name} must be a positive integer, got {value}")
        if nf % num_head:
            raise ArgumentError(f"DCTLSA: nf ({nf}) must be a multiple of num_head ({num_head})")
        self.scale = scale
        self.in_channels = in_nc
        self.out_channels = out_nc
        self.receptive_field: int | None = None
        self.fea_conv = nn.Conv2d(in_nc, nf, 3, padding=1)
        for name in self.blocks:
            self.add_module(name, LSAB(in_channels=nf, num_head=num_head))
        self.c = _fuse(6 * nf, nf)
        # c1 ... c5 fuse the features and the outputs of the first 1 ... 5 blocks.
        self.c1 = _fuse(2 * nf, nf)
        self.c2 = _fuse(3 * nf, nf)
        self.c3 = _fuse(4 * nf, nf)
        self.c4 = _fuse(5 * nf, nf)
        self.c5 = _fuse(6 * nf, nf)
        self.LR_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(nf, out_nc * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        fuses = (self.c1, self.c2, self.c3, self.c4, self.c5)
        dense = [fea]
        outs: list[torch.Tensor] = []
        h = fea
        for i, name in enumerate(self.blocks):
            out = getattr(self, name)(h)
            outs.append(out)
            if i < len(fuses):
                dense.append(out)
                h = fuses[i](torch.cat(dense, dim=1))
        body = self.c(torch.cat(outs, dim=1))
        return self.upsampler(self.LR_conv(body) + fea)


_COMMIT = "0756bc8554e86c62f1ae4355eed0f05a8feaa2bf"
# scale -> (sha256, size) of the files committed to the authors' repository.
_FILES = {
    2: ("df08c0b6dc0a034c63b6d425586ac3c13ed227db75bb0282b012b4220e943eb9", 3_707_901),
    3: ("4af9979200d385177ea5284215f144a85cebf5037014af164b1efe5a5beea86d", 3_737_661),
    4: ("58d822beb3a1bf1d3e5dc91371a5686debda6bdbf246a4484805bda37cb18c06", 3_779_389),
}


def _weights(scale: int) -> WeightSpec:
    sha, size = _FILES[scale]
    return WeightSpec(
        scale=scale,
        source=f"https://github.com/zengkun301/DCTLSA/raw/{_COMMIT}/pretrained/X{scale}.pt",
        sha256=sha,
        size=size,
        input_range="0-1",
        train_data=f"DIV2K, bicubic x{scale} (the EDSR-PyTorch options the code ships)",
        license="Apache-2.0",
        sha256_note="sha256 of the file committed to zengkun301/DCTLSA (pretrained/)",
    )


register_model(
    ModelSpec(
        name="dctlsa",
        family="dctlsa",
        builder=DCTLSA,
        scales=(2, 3, 4),
        paper=Paper(
            title=(
                "Densely Connected Transformer With Linear Self-Attention for Lightweight "
                "Image Super-Resolution"
            ),
            venue="IEEE Transactions on Instrumentation and Measurement",
            year=2023,
        ),
        code_license="Apache-2.0",
        description=(
            "DCTLSA: six densely connected linear self-attention blocks, 55 features, "
            "5 heads, window 16"
        ),
        defaults={"nf": 55, "num_head": 5},
        size_multiple=_WINDOW,
        weights=tuple(_weights(s) for s in (2, 3, 4)),
    )
)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_BLOCK = "B1.body.0.transformer_body.0.blocks.0.attn."
_LAYOUTS = {
    "official": (
        "fea_conv.weight",
        _BLOCK + "qkv.weight",
        _BLOCK + "local.pointwise_prenorm_1.weight",
        "B6.body.1.transformer_body.0.blocks.0.attn.qkv.weight",
        "c.0.weight",
        "c5.0.weight",
        "LR_conv.weight",
        "upsampler.0.weight",
    ),
}


def detect_dctlsa(shapes: Shapes) -> Detected | None:
    """Recognise a DCTLSA checkpoint (zengkun301/DCTLSA keys) from keys and shapes.

    Reads ``nf`` and the input channels (``fea_conv``) and the scale and output channels
    (``upsampler.0``), as spandrel does, and checks that the fusion ``c`` takes the six
    blocks' outputs. Not in the weights: ``num_head`` (heads own no parameter): 5, every
    release's, or where 5 does not divide ``nf`` the largest count below it that does.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a DCTLSA.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    nf, in_nc = shapes.dim("fea_conv.weight"), shapes.dim("fea_conv.weight", 1)
    if min(nf, in_nc) < 1 or shapes.dim("c.0.weight", 1) != 6 * nf:
        return None
    scale, out_nc = shuffle_split(shapes.dim("upsampler.0.weight"), in_nc)
    if not scale:
        return None
    heads = next(n for n in (5, 4, 3, 2, 1) if nf % n == 0)
    args: dict[str, object] = {"in_nc": in_nc, "out_nc": out_nc, "nf": nf, "num_head": heads}
    return Detected("dctlsa", scale, args, "official")


register_detector("dctlsa", detect_dctlsa, layouts=_LAYOUTS)
