"""AuraSR: fal's GigaGAN-style x4 GAN upsampler for real-world and generated images.

Reference: fal.ai, "AuraSR: GAN-based Super-Resolution for real-world", 2024, released as code
(https://github.com/fal-ai/aura-sr, ``aura_sr.py``, CC BY-SA 4.0) and weights on the Hugging Face
Hub (``fal/AuraSR``, ``fal/AuraSR-v2``); no paper of its own. The authors' README describes it as
"a variation of the GigaGAN paper for image-conditioned upscaling", built on lucidrains'
unofficial ``gigagan-pytorch``: Kang, Zhu, Zhang, Park, Shechtman, Paris, Park, "Scaling up GANs
for Text-to-Image Synthesis", CVPR 2023, arXiv:2303.05511.

Parameter names follow fal-ai/aura-sr's ``UnetUpsampler`` (the keys of its ``model.safetensors``
and spandrel's ``AuraSR``), so the released files load unchanged:

- ``style_network.net.<2i>`` -- a StyleGAN mapping network (``depth`` equalised linear layers
  with a learning-rate multiplier of 0.1, leaky ReLU) from a ``style_dim_in`` latent to a
  ``style_dim`` style; ``style_to_conv_modulations`` projects the style to every modulated
  convolution's per-input-channel modulation and its kernel-selection logits;
- ``init_conv`` (7x7) to ``dim * up_dim_mults[-len(down_dim_mults) - 1]`` channels, then
  ``downs.<i>``: ``resnet_blocks`` residual blocks (``.0.<j>``: two modulated 3x3 convolutions
  ``block1.proj.weights`` / ``block2.proj.weights``, each a softmax mixture of
  ``num_conv_kernels`` kernels, StyleGAN2 modulation and demodulation, SiLU), optional full
  self-attention (``.1.0``) and a stride-2 convolution (``.1.1``);
- ``mid_block1``, ``mid_attn`` (``mid_attn_depth`` transformer layers), ``mid_block2``;
- ``ups.<i>``: nearest x2 enlargement and a 3x3 convolution (``.1.0.conv``), ``resnet_blocks``
  residual blocks, each concatenating one skip of the matching encoder level scaled by
  ``skip_connect_scale`` while there are skips, optional attention (``.1.1``); the last two
  levels run above the input resolution, so the network enlarges by ``2 ** 2``;
- ``final_res_block`` and ``final_to_rgb`` (1x1).

Attention layers are a pre-RMS-norm multi-head attention over all positions of the level
(``to_qkv`` / ``to_out`` 1x1 convolutions, ``F.scaled_dot_product_attention``) followed by an
RMS-normed 1x1-convolution feed-forward network, both residual. Upstream's attention modules
hold an unused learnable scalar (``attend.scale``); srzoo keeps it as a buffer so that the files
load and round-trip unchanged, which makes srzoo's parameter count the upstream count minus one
per attention layer (10 for the released configuration).

Styles: upstream draws a new latent per image on every call (``torch.randn``) and adds Gaussian
noise of standard deviation 0.001 to the input, so the same image upscales differently each
time, and each 64x64 tile of its tiled ``upscale_4x`` gets its own style. srzoo's module is
deterministic by default: it feeds the mapping network a fixed latent, the all-ones direction
(the mapping network normalises its input to the unit sphere, on which a Gaussian latent is
uniform, so any fixed direction is as typical as a drawn one), and adds no noise; batches,
tiles and repeated calls then agree. ``stochastic=True`` restores upstream's sampling, drawing
from torch's global generator in upstream's order (input noise, then one latent per image).

Any input size: the three stride-2 levels need sides that are multiples of 8; ``forward``
reflect-pads to that (as upstream's ``upscale_4x`` pads to its 64-pixel tiles) and crops the
output. The network was trained on 64x64 input tiles (``input_image_size`` 64, output 256) and
its attention spans the whole level, so its cost grows with the square of the image area:
upscale large images in tiles (``srzoo.upscale(model, image, tile=64)``; srzoo warns that
tiling a global network is not exact). The output is not clamped (upstream clamps its tiles to
[0, 1]).

Weights (x4, RGB in [0, 1], both from the Hub's LFS objects; the two files hold the same
network, as their identical ``config.json`` say: ``dim`` 64, style 128 -> 512 with depth 4,
``skip_connect_scale`` 0.4, the ``UnetUpsampler`` defaults otherwise):

- ``aurasr``: ``fal/AuraSR`` ``model.safetensors`` (revision ``87da2f5``), sha256
  ``ff203dd1...a7de``, 2,470,247,916 bytes (the size from an LFS pointer of the same object,
  ``benjamin-paine/taproot-common``); licence: "cc" on its model card, which defers to the
  repository's ``LICENSE.md``; recorded as CC BY-SA 4.0, the licence fal-ai/aura-sr's
  ``LICENSE.md`` states.
- ``aurasr-v2``: ``fal/AuraSR-v2`` ``model.safetensors`` (revision ``ff45218``), sha256
  ``8a80b454...4dde``, Apache-2.0 (its model card); its byte size is published only rounded
  (2.47 GB), so none is recorded.

The ``model.ckpt`` pickles beside them are not registered (srzoo prefers safetensors). fal
reports no PSNR or other benchmark numbers for either release.

Example:
    >>> model = srzoo.load("aurasr-v2")  # 2.5 GB download
    >>> sr = srzoo.upscale(model, "photo.png", tile=64)
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
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
)
from ._blocks import image_forward
from ._window import pad_to_multiple

__all__ = [
    "Attention",
    "AuraSR",
    "ModulatedConv2d",
    "ResnetBlock",
    "StyleNetwork",
    "Transformer",
    "detect_aurasr",
]

# Upstream's demodulation floor and input dithering.
_DEMOD_EPS = 1e-8
_INPUT_NOISE = 0.001


class EqualLinear(nn.Module):
    """A linear layer whose weight and bias are scaled by a learning-rate multiplier (StyleGAN).

    Args:
        in_features: Input features.
        out_features: Output features.
        lr_mul: Multiplier applied to the weight and the bias at every call.

    Example:
        >>> EqualLinear(128, 512, lr_mul=0.1)(torch.randn(1, 128)).shape
        torch.Size([1, 512])
    """

    def __init__(self, in_features: int, out_features: int, *, lr_mul: float = 0.1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.lr_mul, self.bias * self.lr_mul)


class StyleNetwork(nn.Module):
    """The StyleGAN mapping network: a unit-normalised latent to a style vector.

    Args:
        dim_in: Latent size.
        dim_out: Style size.
        depth: Linear layers (each followed by a leaky ReLU of slope 0.2).
        lr_mul: Learning-rate multiplier of every layer.

    Example:
        >>> StyleNetwork(dim_in=128, dim_out=512, depth=4)(torch.ones(1, 128)).shape
        torch.Size([1, 512])
    """

    def __init__(self, *, dim_in: int, dim_out: int, depth: int, lr_mul: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [EqualLinear(dim_in if i == 0 else dim_out, dim_out, lr_mul=lr_mul)]
            layers += [nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)
        self.dim_in = dim_in

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(F.normalize(z, dim=1))
        return out


class ModulatedConv2d(nn.Module):
    """A 3x3 convolution whose kernel is a style-selected mixture, modulated and demodulated.

    The kernel is the softmax mixture (over ``num_kernels`` kernels, weights from the style) of
    the stored kernels, scaled per input channel by ``1 + modulation`` and normalised per output
    channel (StyleGAN2). One style for the whole batch runs as one plain convolution; one style
    per image as a grouped convolution.

    Args:
        dim: Input channels.
        dim_out: Output channels.
        num_kernels: Kernels mixed by the style (at least 2, as upstream's adaptive mode).

    Example:
        >>> conv = ModulatedConv2d(8, 16, num_kernels=4)
        >>> conv(torch.rand(1, 8, 5, 5), torch.zeros(1, 8), torch.zeros(1, 4)).shape
        torch.Size([1, 16, 5, 5])
    """

    def __init__(self, dim: int, dim_out: int, *, num_kernels: int) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.empty(num_kernels, dim_out, dim, 3, 3))
        nn.init.kaiming_normal_(self.weights, a=0, mode="fan_in", nonlinearity="leaky_relu")

    def forward(self, x: torch.Tensor, mod: torch.Tensor, kernel_mod: torch.Tensor) -> torch.Tensor:
        scale = mod + 1
        # (S, n) mixture weights times (n, o, i, 3, 3) kernels -> (S, o, i, 3, 3).
        attn = kernel_mod.softmax(dim=-1)
        if mod.shape[0] == 1:
            # One style for the batch: modulate the input channels instead of the kernel and
            # demodulate the output channels, the same sums with two fewer passes over the
            # (large) kernel.
            weight = torch.einsum("n,noikl->oikl", attn[0], self.weights)
            energy = weight.square().sum(dim=(2, 3)) @ scale[0].square()
            norm = energy.clamp(min=_DEMOD_EPS).rsqrt()
            out: torch.Tensor = F.conv2d(x * scale[0, :, None, None], weight, padding=1)
            return out * norm[:, None, None]
        weights = torch.einsum("sn,noikl->soikl", attn, self.weights)
        weights = weights * scale[:, None, :, None, None]
        demod = weights.square().sum(dim=(2, 3, 4), keepdim=True).clamp(min=_DEMOD_EPS).rsqrt()
        weights = weights * demod
        b, _, h, w = x.shape
        out = F.conv2d(x.reshape(1, -1, h, w), weights.flatten(0, 1), padding=1, groups=b)
        return out.view(b, -1, h, w)


class _Block(nn.Module):
    """A modulated convolution and SiLU (upstream's ``Block``)."""

    def __init__(self, dim: int, dim_out: int, *, num_kernels: int) -> None:
        super().__init__()
        self.proj = ModulatedConv2d(dim, dim_out, num_kernels=num_kernels)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, mod: torch.Tensor, kernel_mod: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.act(self.proj(x, mod, kernel_mod))
        return out


class ResnetBlock(nn.Module):
    """Two modulated convolutions and a residual (a 1x1 convolution where the width changes).

    Reads its four modulation vectors from one slice of the projected style: ``dim`` and
    ``num_kernels`` values for the first convolution, ``dim_out`` and ``num_kernels`` for the
    second, in that order (upstream's order of ``style_embed_split_dims``).

    Args:
        dim: Input channels.
        dim_out: Output channels.
        num_kernels: Kernels mixed by each modulated convolution.
        offset: Where this block's slice starts in the projected style.

    Example:
        >>> block = ResnetBlock(8, 16, num_kernels=2, offset=0)
        >>> block(torch.rand(1, 8, 5, 5), torch.zeros(1, block.style_size)).shape
        torch.Size([1, 16, 5, 5])
    """

    def __init__(self, dim: int, dim_out: int, *, num_kernels: int, offset: int) -> None:
        super().__init__()
        self.block1 = _Block(dim, dim_out, num_kernels=num_kernels)
        self.block2 = _Block(dim_out, dim_out, num_kernels=num_kernels)
        self.res_conv: nn.Module = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()
        bounds = [dim, num_kernels, dim_out, num_kernels]
        starts = [offset + sum(bounds[:i]) for i in range(5)]
        self._slices = [(starts[i], starts[i + 1]) for i in range(4)]
        self.style_size = sum(bounds)

    def forward(self, x: torch.Tensor, mods: torch.Tensor) -> torch.Tensor:
        (a, b), (c, d), (e, f), (g, h) = self._slices
        y = self.block1(x, mods[:, a:b], mods[:, c:d])
        y = self.block2(y, mods[:, e:f], mods[:, g:h])
        out: torch.Tensor = y + self.res_conv(x)
        return out


class RMSNorm(nn.Module):
    """Channel RMS norm of ``(N, C, H, W)`` maps: unit L2 norm over C, times ``sqrt(C) * g``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.root = math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) * (self.g * self.root)


class _UnusedScale(nn.Module):
    """Holds upstream's ``attend.scale``: a learnable scalar its attention never reads.

    A buffer rather than a parameter: it loads from and saves to the released files, and
    receives no gradient a training loop would expect to be non-zero.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(1))


class Attention(nn.Module):
    """Pre-RMS-norm multi-head self-attention over all positions of a feature map.

    Args:
        dim: Channels.
        heads: Attention heads.
        dim_head: Channels per head.

    Example:
        >>> Attention(16, heads=2, dim_head=8)(torch.rand(1, 16, 4, 4)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, dim: int, *, heads: int, dim_head: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = RMSNorm(dim)
        self.attend = _UnusedScale()
        self.to_qkv = nn.Conv2d(dim, heads * dim_head * 3, 1, bias=False)
        self.to_out = nn.Conv2d(heads * dim_head, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        # Channels are (q|k|v, head, dim_head), as upstream's chunk and rearrange split them.
        # Copied so that each head's channels are contiguous: with a strided last dimension,
        # CUDA's SDPA falls back to the math kernel, which holds the whole (h*w)^2 score matrix
        # (128 GiB for a 512x512 input) where the memory-efficient kernels hold none of it.
        qkv = self.to_qkv(self.norm(x)).view(b, 3, self.heads, -1, h * w)
        qkv = qkv.transpose(-1, -2).contiguous()
        out = F.scaled_dot_product_attention(qkv[:, 0], qkv[:, 1], qkv[:, 2])
        out = out.transpose(-1, -2).reshape(b, -1, h, w)
        result: torch.Tensor = self.to_out(out)
        return result


class Transformer(nn.Module):
    """``depth`` residual pairs of :class:`Attention` and an RMS-normed 1x1 feed-forward (x4).

    Args:
        dim: Channels.
        heads: Attention heads.
        dim_head: Channels per head.
        depth: Layers.

    Example:
        >>> Transformer(16, heads=2, dim_head=8, depth=1)(torch.rand(1, 16, 4, 4)).shape
        torch.Size([1, 16, 4, 4])
    """

    def __init__(self, dim: int, *, heads: int, dim_head: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    Attention(dim, heads=heads, dim_head=dim_head),
                    nn.Sequential(
                        RMSNorm(dim),
                        nn.Conv2d(dim, dim * 4, 1),
                        nn.GELU(),
                        nn.Conv2d(dim * 4, dim, 1),
                    ),
                ]
            )
            for _ in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            attn, ff = cast(nn.ModuleList, layer)
            x = attn(x) + x
            x = ff(x) + x
        return x


class _Upsample(nn.Module):
    """Nearest-neighbour x2 enlargement and a 3x3 convolution."""

    def __init__(self, dim: int, dim_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, dim_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return out


class _Level(nn.ModuleList):
    """One U-Net level in upstream's nesting: ``[[blocks...], [first, second]]``.

    Encoder levels hold (attention, downsampling), decoder levels (upsampling, attention); an
    absent attention is an ``nn.Identity`` (no parameters, so the keys are upstream's).
    """

    def __init__(self, blocks: list[ResnetBlock], first: nn.Module, second: nn.Module) -> None:
        super().__init__([nn.ModuleList(blocks), nn.ModuleList([first, second])])

    def parts(self) -> tuple[list[ResnetBlock], nn.Module, nn.Module]:
        """The level's residual blocks and its two other layers, in upstream's order."""
        blocks, tail = (cast(nn.ModuleList, m) for m in self)
        return [cast(ResnetBlock, b) for b in blocks], tail[0], tail[1]


def _check_config(
    *,
    scale: int,
    up_dim_mults: Sequence[int],
    down_dim_mults: Sequence[int],
    full_attn: Sequence[bool],
    attn_depths: Sequence[int],
    positives: dict[str, int],
) -> None:
    for name, value in positives.items():
        if value < 1:
            raise ArgumentError(f"AuraSR: {name} must be at least 1, got {value}")
    if positives["num_conv_kernels"] < 2:
        raise ArgumentError(
            "AuraSR: num_conv_kernels must be at least 2 (upstream's adaptive kernels), "
            f"got {positives['num_conv_kernels']}"
        )
    levels, downs = len(up_dim_mults), len(down_dim_mults)
    if min(up_dim_mults, default=0) < 1 or min(down_dim_mults, default=1) < 1:
        raise ArgumentError(
            f"AuraSR: channel multipliers must be positive, got {tuple(up_dim_mults)} and "
            f"{tuple(down_dim_mults)}"
        )
    if levels - downs < 0 or 2 ** (levels - downs) != scale:
        raise ArgumentError(
            f"AuraSR: {levels} decoder levels over {downs} encoder levels enlarge by "
            f"2 ** {levels - downs}, not x{scale}; use scale=4 with the released levels"
        )
    if tuple(down_dim_mults) != tuple(up_dim_mults[levels - downs :]):
        raise ArgumentError(
            f"AuraSR: down_dim_mults {tuple(down_dim_mults)} must equal the last {downs} "
            f"up_dim_mults {tuple(up_dim_mults[levels - downs :])} (the skips join there)"
        )
    if len(full_attn) != levels or len(attn_depths) != levels:
        raise ArgumentError(
            f"AuraSR: full_attn and attn_depths need one entry per decoder level ({levels}), "
            f"got {len(full_attn)} and {len(attn_depths)}"
        )
    if min(attn_depths) < 1:
        raise ArgumentError(f"AuraSR: attn_depths must be at least 1, got {tuple(attn_depths)}")


def _block_plan(
    dim: int, up_dim_mults: Sequence[int], down_dim_mults: Sequence[int], resnet_blocks: int
) -> list[tuple[str, int, int]]:
    """Every residual block as ``(key prefix, in channels, out channels)``, in the order the
    blocks read the projected style (upstream's construction order)."""
    levels, downs = len(up_dim_mults), len(down_dim_mults)
    up_dims = [dim, *(dim * m for m in up_dim_mults)]
    down_dims = up_dims[levels - downs :]
    plan = [
        (f"downs.{i}.0.{j}.", down_dims[i], down_dims[i])
        for i in range(downs)
        for j in range(resnet_blocks)
    ]
    plan += [("mid_block1.", up_dims[-1], up_dims[-1]), ("mid_block2.", up_dims[-1], up_dims[-1])]
    for ind in range(levels):
        c_in = up_dims[levels - 1 - ind]
        # The first len(down_dim_mults) decoder levels concatenate a skip before every block.
        width = 2 * c_in if ind < downs else c_in
        plan += [(f"ups.{ind}.0.{j}.", width, c_in) for j in range(resnet_blocks)]
    return [*plan, ("final_res_block.", dim, dim)]


class AuraSR(nn.Module):
    """fal's AuraSR: a style-modulated U-Net upsampler with attention (GigaGAN's upsampler).

    Args:
        scale: Upscaling factor: ``2 ** (len(up_dim_mults) - len(down_dim_mults))``, 4.
        in_channels: Image channels (in and out).
        dim: Base channels (the output level's width).
        up_dim_mults: Channel multipliers of the decoder levels, finest first.
        down_dim_mults: Channel multipliers of the encoder levels (the last ones of
            ``up_dim_mults``, where the skips join).
        full_attn: Per level, finest first, whether it has self-attention (encoder level ``i``
            and decoder level ``len - 1 - i`` share entry ``i``, as upstream).
        attn_depths: Transformer layers per level, same order.
        mid_attn_depth: Transformer layers at the bottleneck.
        self_attn_heads: Attention heads.
        self_attn_dim_head: Channels per head.
        num_conv_kernels: Kernels each modulated convolution mixes.
        resnet_blocks: Residual blocks per level (upstream fixes 6).
        style_dim_in: Latent size of the mapping network.
        style_dim: Style size.
        style_depth: Layers of the mapping network.
        style_lr_mul: Learning-rate multiplier of the mapping network.
        skip_connect_scale: Factor on every skip connection (the released config's 0.4).
        stochastic: Draw a latent per image and dither the input on every call, as upstream;
            ``False`` uses one fixed latent and no noise (deterministic).

    Example:
        >>> net = AuraSR(dim=4, resnet_blocks=1, self_attn_dim_head=4, style_dim=16)
        >>> net(torch.rand(1, 3, 9, 7)).shape
        torch.Size([1, 3, 36, 28])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        dim: int = 64,
        up_dim_mults: Sequence[int] = (1, 2, 4, 8, 16),
        down_dim_mults: Sequence[int] = (4, 8, 16),
        full_attn: Sequence[bool] = (False, False, False, True, True),
        attn_depths: Sequence[int] = (2, 2, 2, 2, 4),
        mid_attn_depth: int = 4,
        self_attn_heads: int = 8,
        self_attn_dim_head: int = 64,
        num_conv_kernels: int = 4,
        resnet_blocks: int = 6,
        style_dim_in: int = 128,
        style_dim: int = 512,
        style_depth: int = 4,
        style_lr_mul: float = 0.1,
        skip_connect_scale: float = 0.4,
        stochastic: bool = False,
    ) -> None:
        super().__init__()
        _check_config(
            scale=scale,
            up_dim_mults=up_dim_mults,
            down_dim_mults=down_dim_mults,
            full_attn=full_attn,
            attn_depths=attn_depths,
            positives={
                "in_channels": in_channels,
                "dim": dim,
                "mid_attn_depth": mid_attn_depth,
                "self_attn_heads": self_attn_heads,
                "self_attn_dim_head": self_attn_dim_head,
                "num_conv_kernels": num_conv_kernels,
                "resnet_blocks": resnet_blocks,
                "style_dim_in": style_dim_in,
                "style_dim": style_dim,
                "style_depth": style_depth,
            },
        )
        self.scale = scale
        self.in_channels = self.out_channels = in_channels
        self.receptive_field: int | None = None  # self-attention over whole levels
        self.skip_connect_scale = skip_connect_scale
        self.stochastic = stochastic
        self.size_multiple = 2 ** len(down_dim_mults)

        levels, downs = len(up_dim_mults), len(down_dim_mults)
        up_dims = [dim, *(dim * m for m in up_dim_mults)]
        down_dims = up_dims[levels - downs :]
        self.style_network = StyleNetwork(
            dim_in=style_dim_in, dim_out=style_dim, depth=style_depth, lr_mul=style_lr_mul
        )
        self.init_conv = nn.Conv2d(in_channels, down_dims[0], 7, padding=3)
        plan = iter(_block_plan(dim, up_dim_mults, down_dim_mults, resnet_blocks))
        offset = 0

        def blocks(count: int) -> list[ResnetBlock]:
            nonlocal offset
            made = []
            for _ in range(count):
                _, c_in, c_out = next(plan)
                made.append(ResnetBlock(c_in, c_out, num_kernels=num_conv_kernels, offset=offset))
                offset += made[-1].style_size
            return made

        def attention(c: int, enabled: bool, depth: int) -> nn.Module:
            if not enabled:
                return nn.Identity()
            return Transformer(c, heads=self_attn_heads, dim_head=self_attn_dim_head, depth=depth)

        self.downs = nn.ModuleList()
        for i in range(downs):
            c_in, c_out = down_dims[i], down_dims[i + 1]
            tail = [
                attention(c_in, full_attn[i], attn_depths[i]),
                nn.Conv2d(c_in, c_out, 3, stride=2, padding=1),
            ]
            self.downs.append(_Level(blocks(resnet_blocks), *tail))
        mid = up_dims[-1]
        (self.mid_block1,) = blocks(1)
        self.mid_attn = Transformer(
            mid, heads=self_attn_heads, dim_head=self_attn_dim_head, depth=mid_attn_depth
        )
        (self.mid_block2,) = blocks(1)
        self.ups = nn.ModuleList()
        for ind in range(levels):
            level = levels - 1 - ind
            c_in, c_out = up_dims[level], up_dims[level + 1]
            tail = [_Upsample(c_out, c_in), attention(c_in, full_attn[level], attn_depths[level])]
            self.ups.append(_Level(blocks(resnet_blocks), *tail))
        (self.final_res_block,) = blocks(1)
        self.final_to_rgb = nn.Conv2d(dim, in_channels, 1)
        self.style_to_conv_modulations = nn.Linear(style_dim, offset)

    def styles(self, x: torch.Tensor) -> torch.Tensor:
        """The style vectors for a batch: one shared fixed style, or one drawn per image.

        Args:
            x: The (padded) input batch; only its size, device and dtype are read.

        Returns:
            ``(1, style_dim)`` (deterministic) or ``(N, style_dim)`` (``stochastic``).
        """
        n = x.shape[0] if self.stochastic else 1
        dim_in = self.style_network.dim_in
        if self.stochastic:
            z = torch.randn(n, dim_in, device=x.device, dtype=x.dtype)
        else:
            z = x.new_ones(1, dim_in)
        out: torch.Tensor = self.style_network(z)
        return out

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.size_multiple)
        if self.stochastic:
            x = x + torch.randn_like(x) * _INPUT_NOISE
        x = x.clamp(0, 1)
        mods = self.style_to_conv_modulations(self.styles(x))

        x = self.init_conv(x)
        skips: list[torch.Tensor] = []
        for level in self.downs:
            blocks, attn, downsample = cast(_Level, level).parts()
            for block in blocks:
                x = block(x, mods)
                skips.append(x)
            x = downsample(attn(x))

        x = self.mid_block2(self.mid_attn(self.mid_block1(x, mods)), mods)

        for level in self.ups:
            blocks, upsample, attn = cast(_Level, level).parts()
            x = upsample(x)
            for block in blocks:
                if skips:
                    x = torch.cat((x, skips.pop() * self.skip_connect_scale), dim=1)
                x = block(x, mods)
            x = attn(x)

        out: torch.Tensor = self.final_to_rgb(self.final_res_block(x, mods))
        return out[..., : h * self.scale, : w * self.scale]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

# AuraSR has no paper: its README names GigaGAN's upsampler as the method it varies, whose
# paper is the reference here (the release itself is fal-ai/aura-sr, 2024).
_PAPER = Paper(
    title="Scaling up GANs for Text-to-Image Synthesis (GigaGAN); AuraSR is fal's variation",
    venue="CVPR",
    year=2023,
    arxiv="2303.05511",
)
_TRAIN = "not published by fal (its config: 64x64 input tiles, 256x256 output)"
_V1_NOTE = (
    "sha256 of the Hub's LFS object (fal/AuraSR, model.safetensors); the byte size from an LFS "
    "pointer of the same object (benjamin-paine/taproot-common)"
)
_V2_NOTE = (
    "sha256 of the Hub's LFS object (fal/AuraSR-v2, model.safetensors). Its byte size is not "
    "recorded: the Hub gives it only rounded (2.47 GB)."
)

_VARIANTS = (
    (
        "aurasr",
        "AuraSR (fal): GigaGAN-style x4 GAN upsampler, style-modulated U-Net with attention",
        WeightSpec(
            scale=4,
            source="hf://fal/AuraSR/model.safetensors@87da2f52b29b6351391f71c74de581c393fc19f5",
            sha256="ff203dd1037ca14697a55f7c47129e2b11e7ef6315c2a4113d8e382a0d3fa7de",
            size=2_470_247_916,
            input_range="0-1 (RGB)",
            train_data=_TRAIN,
            license="CC-BY-SA-4.0",
            sha256_note=_V1_NOTE,
        ),
    ),
    (
        "aurasr-v2",
        "AuraSR v2 (fal): the AuraSR network retrained, Apache-2.0 weights",
        WeightSpec(
            scale=4,
            source="hf://fal/AuraSR-v2/model.safetensors@ff452185a7c8b51206dd62c21c292e7baad5c3a3",
            sha256="8a80b4546f3f49b9095733cb9699030409339e2f4eb0ae9c1ada14c7d21d4dde",
            size=None,
            input_range="0-1 (RGB)",
            train_data=_TRAIN,
            license="Apache-2.0",
            sha256_note=_V2_NOTE,
        ),
    ),
)

for _name, _description, _weights in _VARIANTS:
    register_model(
        ModelSpec(
            name=_name,
            family="aurasr",
            builder=AuraSR,
            scales=(4,),
            paper=_PAPER,
            code_license="CC-BY-SA-4.0",
            description=_description,
            task="real-world",
            weights=(_weights,),
            size_multiple=8,
        )
    )


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_LAYOUTS = {
    "official": (
        "style_network.net.0.weight",
        "style_to_conv_modulations.weight",
        "init_conv.weight",
        "mid_block1.block1.proj.weights",
        "mid_attn.layers.0.0.to_out.weight",
        "mid_block2.block1.proj.weights",
        "final_res_block.block1.proj.weights",
        "final_to_rgb.weight",
    ),
}
# Not readable from the tensors: the split of the attention width into heads (upstream's 8
# heads are assumed), and the two scalars of the released config.
_DEFAULT_HEADS = 8


def _style_depth(shapes: Shapes) -> int:
    found = shapes.indices(r"style_network\.net\.(\d+)\.weight")
    return len(found) if found == list(range(0, 2 * len(found), 2)) else 0


def _attn_depth(shapes: Shapes, prefix: str) -> int:
    return shapes.count(re.escape(prefix) + r"layers\.(\d+)\.0\.to_qkv\.weight")


def detect_aurasr(shapes: Shapes) -> Detected | None:
    """Recognise an AuraSR checkpoint (fal-ai/aura-sr's ``UnetUpsampler`` keys).

    Reads the image channels and ``dim`` (``final_to_rgb``), the decoder's channel multipliers
    (each level's enlargement convolution), the encoder's (its stride-2 convolutions), which
    levels have attention and how deep (the decoder's transformers), the bottleneck's depth,
    ``num_conv_kernels``, the residual blocks per level and the mapping network's sizes and
    depth. The scale is ``2 ** (decoder levels - encoder levels)``; only x4 is registered.
    Every residual block's width and the projected style's width are checked against these.

    What cannot be read: the split of the attention width into heads (8 heads, upstream's
    default, when the width divides by 8; else one head), the mapping network's learning-rate
    multiplier (0.1) and ``skip_connect_scale`` (0.4, the released config), and the depth of a
    level without attention (2, upstream's default; unused). Both released files hold the same
    shapes; ``aurasr`` is returned, and the registry names the file by its sha256.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an AuraSR.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    channels, dim = shapes.dim("final_to_rgb.weight"), shapes.dim("final_to_rgb.weight", 1)
    levels = shapes.count(r"ups\.(\d+)\.1\.0\.conv\.weight")
    downs = shapes.count(r"downs\.(\d+)\.1\.1\.weight")
    kernels = shapes.dim("mid_block1.block1.proj.weights")
    style_in = shapes.dim("style_network.net.0.weight", 1)
    style_dim = shapes.dim("style_network.net.0.weight")
    style_depth = _style_depth(shapes)
    blocks = shapes.count(r"ups\.0\.0\.(\d+)\.block1\.proj\.weights")
    hidden = shapes.dim("mid_attn.layers.0.0.to_out.weight", 1)
    if min(channels, dim, levels, kernels, style_in, style_dim, style_depth, blocks, hidden) < 1:
        return None
    if levels - downs != 2:
        return None
    up_widths = [shapes.dim(f"ups.{levels - k}.1.0.conv.weight", 1) for k in range(1, levels + 1)]
    down_widths = [shapes.dim(f"downs.{i}.1.1.weight") for i in range(downs)]
    if any(c < 1 or c % dim for c in up_widths + down_widths):
        return None
    full = tuple(
        shapes.has(f"ups.{levels - 1 - i}.1.1.layers.0.0.to_qkv.weight") for i in range(levels)
    )
    depths = tuple(
        _attn_depth(shapes, f"ups.{levels - 1 - i}.1.1.") if full[i] else 2 for i in range(levels)
    )
    heads = _DEFAULT_HEADS if hidden % _DEFAULT_HEADS == 0 else 1
    args: dict[str, Any] = {
        "in_channels": channels,
        "dim": dim,
        "up_dim_mults": tuple(c // dim for c in up_widths),
        "down_dim_mults": tuple(c // dim for c in down_widths),
        "full_attn": full,
        "attn_depths": depths,
        "mid_attn_depth": _attn_depth(shapes, "mid_attn."),
        "self_attn_heads": heads,
        "self_attn_dim_head": hidden // heads,
        "num_conv_kernels": kernels,
        "resnet_blocks": blocks,
        "style_dim_in": style_in,
        "style_dim": style_dim,
        "style_depth": style_depth,
    }
    if min(depths) < 1 or not _consistent(shapes, args):
        return None
    return Detected("aurasr", 4, args, "official")


def _consistent(shapes: Shapes, args: dict[str, Any]) -> bool:
    """Whether every residual block and the style projection have the widths ``args`` imply."""
    kernels, total = args["num_conv_kernels"], 0
    plan = _block_plan(
        args["dim"], args["up_dim_mults"], args["down_dim_mults"], args["resnet_blocks"]
    )
    for prefix, c_in, c_out in plan:
        if (
            shapes.get(prefix + "block1.proj.weights") != (kernels, c_out, c_in, 3, 3)
            or shapes.get(prefix + "block2.proj.weights") != (kernels, c_out, c_out, 3, 3)
            or shapes.has(prefix + "res_conv.weight") != (c_in != c_out)
        ):
            return False
        total += c_in + c_out + 2 * kernels
    return shapes.get("style_to_conv_modulations.weight") == (total, args["style_dim"])


register_detector("aurasr", detect_aurasr, layouts=_LAYOUTS)
