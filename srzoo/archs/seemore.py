"""SeemoRe: a mixture of low-rank experts and striped convolutions for efficient super-resolution.

Paper: Zamfir, Wu, Mehta, Zhang, Timofte, "See More Details: Efficient Image Super-Resolution by
Experts Mining", ICML 2024, arXiv:2402.03412.

Parameter names follow eduardzamfir/seemoredetails (``basicsr/archs/seemore_arch.py``, BasicSR
``params`` files; spandrel's ``SeemoRe`` has the same keys), so the authors' files load unchanged
once srzoo's reader has unwrapped them.

The network: a 3x3 convolution; ``num_layers`` residual groups, each a rank-modulating expert
(RME) then a spatial-modulating expert (SME), both pre-norm residuals with a gated feed-forward;
a channel layer norm, a 3x3 convolution and a skip over the body; a one-step pixel-shuffle head.
The mean colour of DIV2K is subtracted before and added after, as upstream does. In an RME the
normalised features are split in two (after a channel shuffle when ``use_shuffle``): one half goes
through a striped (1xk then kx1) depthwise convolution, the other is calibrated by a
``recursive``-fold strided 4x4 depthwise aggregation that is enlarged back bilinearly; then a
mixture of ``num_experts`` low-rank experts (expert ``i`` of rank 2, 4, 8, ... for
``lr_space="exp"``) combines the two, routed per image by a linear gate over the globally pooled
features, of which the ``topk`` best experts are used, weighted by their softmax probabilities.
The SME is a gated ``global_kernel_size`` striped depthwise convolution.

Routing: upstream evaluates only the chosen experts, and does so correctly only for a batch of
one (with several images, every image gets the first image's expert); srzoo computes the experts
of all images in one pass, the unchosen ones weighted by zero, which is the upstream training
path and, per image, upstream's inference path; all experts' low-rank projections run as one
convolution, so the routing costs no host round trip and compiles into one graph.

Any size works: the calibration's strided aggregation needs at least ``4 ** recursive`` pixels a
side (upstream fails below it); a smaller input is reflect-padded at the bottom and right to that
size and the output cropped. Larger inputs run as upstream runs them (the authors' test protocol
pads nothing), so ``size_multiple`` is 1. SeemoRe declares no receptive-field radius
(``receptive_field = None``): the gate pools the whole image and the calibration's aggregation
depends on the image's size.

Registered models (the authors' three configurations, ``options/super_resolution/test``):

- ``seemore``: SeemoRe-T, the paper's main model (its Table 1, the configuration the authors give
  training options for): 36 features, 6 groups, 3 experts, x2 / x3 / x4.
- ``seemore-b``: SeemoRe-B, 48 features, 8 groups.
- ``seemore-l``: SeemoRe-L, 48 features, 16 groups, no channel shuffle, one aggregation step.

Weights: none registered. The authors publish their x2 / x3 / x4 checkpoints of the three models
only in a Google Drive folder (``15jtvcS4jL_6QqEwaRodEN8FBrqVPrO2u``, linked from their README)
with no digest, so none can be registered; any of them loads with
``srzoo.load("seemore", scale=s, weights=path)`` (``seemore-b`` / ``seemore-l`` for the others) or
``srzoo.load_file(path)``. SeemoRe-T's Set5 / Set14 PSNR (Y channel, DIV2K training; Table 1 of
the paper, ``figures/main_table.png`` in the authors' repository): x2 38.06 / 33.65, x3 34.46 /
30.44, x4 32.31 / 28.72 dB.

Example:
    >>> model = srzoo.load("seemore", scale=4, weights="SeemoRe_T_X4/net_g_latest.pth")
"""

from __future__ import annotations

from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import LayerNorm2d, image_forward
from ._transformer import image_mean
from ._window import pad_to_min_size

__all__ = [
    "LRSpace",
    "MoEBlock",
    "SeemoRe",
    "detect_seemore",
    "expert_ranks",
]

LRSpace = Literal["linear", "exp", "double"]
"""How the experts' ranks grow: ``i + 2``, ``2 ** (i + 1)`` or ``2 * i + 2`` for expert ``i``."""

# DIV2K's mean colour, which upstream subtracts from the input and adds to the output.
_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def expert_ranks(num_experts: int, lr_space: LRSpace) -> list[int]:
    """The rank of each low-rank expert of a mixture.

    Args:
        num_experts: Experts in the mixture.
        lr_space: How the ranks grow (see :data:`LRSpace`).

    Returns:
        The ranks, in expert order.

    Raises:
        ArgumentError: ``lr_space`` is not one of ``"linear"``, ``"exp"``, ``"double"``.

    Example:
        >>> expert_ranks(3, "exp")
        [2, 4, 8]
    """
    if lr_space == "linear":
        return [i + 2 for i in range(num_experts)]
    if lr_space == "exp":
        return [2 ** (i + 1) for i in range(num_experts)]
    if lr_space == "double":
        return [2 * i + 2 for i in range(num_experts)]
    raise ArgumentError(f"SeemoRe: lr_space must be 'linear', 'exp' or 'double', got {lr_space!r}")


class _StripedConv2d(nn.Module):
    """A ``1 x k`` then a ``k x 1`` depthwise convolution (``conv.0``, ``conv.1``)."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, (1, kernel_size), padding=(0, pad), groups=channels),
            nn.Conv2d(channels, channels, (kernel_size, 1), padding=(pad, 0), groups=channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv(x)
        return out


class _GatedFFN(nn.Module):
    """1x1 to twice the width and GELU; one half gated by a 3x3 depthwise convolution of the
    other; 1x1 back and GELU (upstream's ``GatedFFN`` with ``mlp_ratio=2``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fn_1 = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.GELU())
        self.fn_2 = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.GELU())
        self.gate = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.fn_1(x).chunk(2, dim=1)
        out: torch.Tensor = self.fn_2(x * self.gate(gate))
        return out


class _PreNorm(nn.Module):
    """``x + block(norm_1(x))``, then ``x + ffn(norm_2(x))``: the frame of the RME and the SME."""

    def __init__(self, channels: int, block: nn.Module) -> None:
        super().__init__()
        self.norm_1 = LayerNorm2d(channels, channels_last=False)
        self.block = block
        self.norm_2 = LayerNorm2d(channels, channels_last=False)
        self.ffn = _GatedFFN(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block(self.norm_1(x)) + x
        out: torch.Tensor = self.ffn(self.norm_2(x)) + x
        return out


class _StripedConvFormer(nn.Module):
    """The SME's mixer: GELU(1x1) to a query and a value, the query through a large striped
    depthwise convolution, their product through a 1x1 projection."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.to_qv = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.GELU())
        self.attn = _StripedConv2d(channels, kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, v = self.to_qv(x).chunk(2, dim=1)
        out: torch.Tensor = self.proj(self.attn(q) * v)
        return out


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    # Every convolution of SeemoRe has a bias; this narrows the type.
    assert conv.bias is not None
    return conv.bias


class _Expert(nn.Module):
    """A low-rank expert: ``conv_3(conv_1(x) * conv_2(k))`` through ``rank`` channels."""

    def __init__(self, channels: int, rank: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, rank, 1)
        self.conv_2 = nn.Conv2d(channels, rank, 1)
        self.conv_3 = nn.Conv2d(rank, channels, 1)


class _Router(nn.Module):
    """Expert logits from the globally pooled features (``body.2``: a linear map, no bias)."""

    def __init__(self, channels: int, num_experts: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_experts, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x)
        return out


class _MoELayer(nn.Module):
    """``x + sum_i w_i * expert_i(x, k)`` with the top-``topk`` softmax weights of the router.

    Every expert runs on every image (weight zero where not chosen), all of them as one
    convolution per projection: the ranks are small, and one batched pass has no per-image
    branching, so it is exact for any batch and compiles.
    """

    def __init__(self, channels: int, ranks: list[int], topk: int) -> None:
        super().__init__()
        self.experts = nn.ModuleList(_Expert(channels, r) for r in ranks)
        self.gate = _Router(channels, len(ranks))
        self.topk = topk
        self.ranks = ranks

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        # Softmax in float32 as upstream, then back to the features' dtype.
        probs = F.softmax(self.gate(x), dim=1, dtype=torch.float32).to(x.dtype)
        top_w, top_i = probs.topk(self.topk, dim=1)
        weights = torch.zeros_like(probs).scatter(1, top_i, top_w)  # (N, experts)
        experts = cast(list[_Expert], list(self.experts))
        w1 = torch.cat([e.conv_1.weight for e in experts])
        b1 = torch.cat([_bias(e.conv_1) for e in experts])
        w2 = torch.cat([e.conv_2.weight for e in experts])
        b2 = torch.cat([_bias(e.conv_2) for e in experts])
        w3 = torch.cat([e.conv_3.weight for e in experts], dim=1)
        b3 = torch.stack([_bias(e.conv_3) for e in experts])  # (experts, C)
        low = F.conv2d(x, w1, b1) * F.conv2d(k, w2, b2)  # (N, sum of ranks, H, W)
        # Each expert's weight on its own rank channels, so one 1x1 convolution sums them all.
        per_channel = torch.cat(
            [weights[:, i : i + 1].expand(-1, r) for i, r in enumerate(self.ranks)], dim=1
        )
        mixed = F.conv2d(low * per_channel[:, :, None, None], w3)
        return x + mixed + (weights @ b3)[:, :, None, None]


class MoEBlock(nn.Module):
    """The RME's mixer: a split into features and keys, calibration, the mixture of experts.

    Args:
        channels: Feature channels.
        num_experts: Low-rank experts in the mixture.
        topk: Experts used per image.
        use_shuffle: Interleave the two halves of the split (a channel shuffle of 2 groups).
        lr_space: How the experts' ranks grow.
        recursive: Strided 4x4 aggregation steps of the calibration.
    """

    def __init__(
        self,
        *,
        channels: int,
        num_experts: int,
        topk: int,
        use_shuffle: bool,
        lr_space: LRSpace,
        recursive: int,
    ) -> None:
        super().__init__()
        self.use_shuffle = use_shuffle
        self.recursive = recursive
        c = channels
        self.conv_1 = nn.Sequential(
            nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, 2 * c, 1)
        )
        self.agg_conv = nn.Sequential(nn.Conv2d(c, c, 4, stride=4, groups=c), nn.GELU())
        self.conv = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c), nn.Conv2d(c, c, 1))
        self.conv_2 = nn.Sequential(_StripedConv2d(c, 3), nn.GELU())
        self.moe_layer = _MoELayer(c, expert_ranks(num_experts, lr_space), topk)
        self.proj = nn.Conv2d(c, c, 1)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.conv_1[1](self.conv_1[0](x))
        last = self.conv_1[2]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        weight, bias = last.weight, last.bias
        if self.use_shuffle:
            # A channel shuffle of the output is the same convolution with its output channels
            # interleaved: permuting the small weight spares a copy of the feature map.
            half = weight.shape[0] // 2
            weight = weight.reshape(2, half, -1).transpose(0, 1).reshape(weight.shape)
            bias = bias.reshape(2, half).t().reshape(-1)
        x, k = F.conv2d(hidden, weight, bias).chunk(2, dim=1)
        return x, k

    def _calibrate(self, k: torch.Tensor) -> torch.Tensor:
        h, w = k.shape[-2:]
        coarse = k
        for _ in range(self.recursive):
            coarse = self.agg_conv(coarse)
        coarse = F.interpolate(self.conv(coarse), size=(h, w), mode="bilinear", align_corners=False)
        return k + coarse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, k = self._split(x)
        out: torch.Tensor = self.proj(self.moe_layer(self.conv_2(x), self._calibrate(k)))
        return out


class _ResGroup(nn.Module):
    """A rank-modulating expert (``local_block``) then a spatial one (``global_block``)."""

    def __init__(
        self,
        channels: int,
        *,
        num_experts: int,
        topk: int,
        use_shuffle: bool,
        lr_space: LRSpace,
        recursive: int,
        global_kernel_size: int,
    ) -> None:
        super().__init__()
        moe = MoEBlock(
            channels=channels,
            num_experts=num_experts,
            topk=topk,
            use_shuffle=use_shuffle,
            lr_space=lr_space,
            recursive=recursive,
        )
        self.local_block = _PreNorm(channels, moe)
        self.global_block = _PreNorm(channels, _StripedConvFormer(channels, global_kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.global_block(self.local_block(x))
        return out


class SeemoRe(nn.Module):
    """SeemoRe: residual groups of rank- and spatial-modulating experts, a pixel-shuffle head.

    The defaults are SeemoRe-T, the paper's main configuration (``options/super_resolution`` of
    the authors' repository).

    Args:
        scale: Upscaling factor (any integer >= 1; the authors train x2, x3, x4).
        in_chans: Image channels (3: the network subtracts an RGB mean colour).
        num_experts: Low-rank experts per mixture.
        num_layers: Residual groups.
        embedding_dim: Feature channels.
        img_range: Factor applied to the mean-shifted input (and undone on the output).
        use_shuffle: Channel-shuffle the RME's split.
        global_kernel_size: Length of the SME's striped convolutions (odd).
        recursive: Strided 4x4 aggregation steps of the calibration (the input is padded to at
            least ``4 ** recursive`` pixels a side).
        lr_space: How the experts' ranks grow (``"exp"``: 2, 4, 8, ...).
        topk: Experts used per image.

    Raises:
        ArgumentError: A non-positive size or count, ``in_chans`` other than 3, ``topk`` above
            ``num_experts``, an even ``global_kernel_size`` or an unknown ``lr_space``.

    Example:
        >>> SeemoRe(scale=4)(torch.rand(1, 3, 20, 20)).shape
        torch.Size([1, 3, 80, 80])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_chans: int = 3,
        num_experts: int = 3,
        num_layers: int = 6,
        embedding_dim: int = 36,
        img_range: float = 1.0,
        use_shuffle: bool = True,
        global_kernel_size: int = 11,
        recursive: int = 2,
        lr_space: LRSpace = "exp",
        topk: int = 1,
    ) -> None:
        super().__init__()
        sizes = {
            "scale": scale,
            "num_experts": num_experts,
            "num_layers": num_layers,
            "embedding_dim": embedding_dim,
            "global_kernel_size": global_kernel_size,
            "recursive": recursive,
            "topk": topk,
        }
        for name, value in sizes.items():
            if value < 1:
                raise ArgumentError(f"SeemoRe: {name} must be a positive integer, got {value}")
        if in_chans != 3:
            raise ArgumentError(
                f"SeemoRe: in_chans must be 3 (the network shifts by an RGB mean), got {in_chans}"
            )
        if topk > num_experts:
            raise ArgumentError(
                f"SeemoRe: topk ({topk}) cannot exceed num_experts ({num_experts}); lower topk"
            )
        if global_kernel_size % 2 == 0:
            raise ArgumentError(
                f"SeemoRe: global_kernel_size must be odd, got {global_kernel_size}"
            )
        if not img_range > 0:
            raise ArgumentError(f"SeemoRe: img_range must be positive, got {img_range}")
        expert_ranks(num_experts, lr_space)  # refuses an unknown lr_space before building
        self.scale = scale
        self.in_channels = in_chans
        self.out_channels = in_chans
        self.receptive_field: int | None = None
        self.img_range = img_range
        self.min_size = 4**recursive
        dim = embedding_dim
        self.conv_1 = nn.Conv2d(in_chans, dim, 3, padding=1)
        self.body = nn.ModuleList(
            _ResGroup(
                dim,
                num_experts=num_experts,
                topk=topk,
                use_shuffle=use_shuffle,
                lr_space=lr_space,
                recursive=recursive,
                global_kernel_size=global_kernel_size,
            )
            for _ in range(num_layers)
        )
        self.norm = LayerNorm2d(dim, channels_last=False)
        self.conv_2 = nn.Conv2d(dim, dim, 3, padding=1)
        self.upsampler = nn.Sequential(
            nn.Conv2d(dim, in_chans * scale * scale, 3, padding=1), nn.PixelShuffle(scale)
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_min_size(x, self.min_size, mode="reflect")
        mean = image_mean(_RGB_MEAN, x.device, x.dtype)
        feat = self.conv_1((x - mean) * self.img_range)
        body = feat
        for group in self.body:
            body = group(body)
        out = self.upsampler(self.conv_2(self.norm(body)) + feat)
        out = out[..., : h * self.scale, : w * self.scale]
        result: torch.Tensor = out / self.img_range + mean
        return result


_PAPER = Paper(
    title="See More Details: Efficient Image Super-Resolution by Experts Mining",
    venue="ICML",
    year=2024,
    arxiv="2402.03412",
)

# The authors' test options (options/super_resolution/test/test_SeemoRe_{T,B,L}_X*.yml).
_SHARED: dict[str, object] = {
    "in_chans": 3,
    "num_experts": 3,
    "img_range": 1.0,
    "global_kernel_size": 11,
    "lr_space": "exp",
    "topk": 1,
}
_VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "seemore": (
        "SeemoRe-T: 6 groups of rank and spatial experts, 36 features, 3 low-rank experts",
        {"num_layers": 6, "embedding_dim": 36, "use_shuffle": True, "recursive": 2},
    ),
    "seemore-b": (
        "SeemoRe-B: 8 groups of rank and spatial experts, 48 features, 3 low-rank experts",
        {"num_layers": 8, "embedding_dim": 48, "use_shuffle": True, "recursive": 2},
    ),
    "seemore-l": (
        "SeemoRe-L: 16 groups, 48 features, 3 low-rank experts, no shuffle, one aggregation",
        {"num_layers": 16, "embedding_dim": 48, "use_shuffle": False, "recursive": 1},
    ),
}

for _name, (_description, _config) in _VARIANTS.items():
    register_model(
        ModelSpec(
            name=_name,
            family="seemore",
            builder=SeemoRe,
            scales=(2, 3, 4),
            paper=_PAPER,
            code_license="Apache-2.0",
            description=(
                f"{_description}; the authors' weights are on Google Drive only "
                "(load them with srzoo.load_file)"
            ),
            defaults={**_SHARED, **_config},
        )
    )


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

_GROUP0 = "body.0."
_MOE0 = _GROUP0 + "local_block.block."
_LAYOUTS = {
    "official": (
        "conv_1.weight",
        "norm.weight",
        "conv_2.weight",
        "upsampler.0.weight",
        _GROUP0 + "local_block.norm_1.weight",
        _MOE0 + "conv_1.0.weight",
        _MOE0 + "agg_conv.0.weight",
        _MOE0 + "conv_2.0.conv.0.weight",
        _MOE0 + "moe_layer.experts.0.conv_1.weight",
        _MOE0 + "moe_layer.gate.body.2.weight",
        _GROUP0 + "global_block.block.attn.conv.0.weight",
        _GROUP0 + "global_block.ffn.gate.weight",
    ),
}


def detect_seemore(shapes: Shapes) -> Detected | None:
    """Recognise a SeemoRe checkpoint (eduardzamfir/seemoredetails keys) from keys and shapes.

    Reads ``embedding_dim`` and the input channels (``conv_1``), ``num_layers`` (the groups),
    ``num_experts`` (the experts of the first mixture), ``lr_space`` (their ranks: the first
    growth rule that gives them, in the order ``"exp"``, ``"linear"``, ``"double"``, since with one
    or two experts several rules build the same network), ``global_kernel_size`` (the SME's
    striped convolution) and the scale (the pixel-shuffle head). Not in the weights, so taken from
    the authors' configuration the file's shape matches: ``use_shuffle`` and ``recursive``
    (``False`` and 1 for 16 groups of 48 features, SeemoRe-L; ``True`` and 2 otherwise, as
    SeemoRe-T and -B), ``topk`` (1) and ``img_range`` (1.0), as spandrel assumes too.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a SeemoRe.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    dim, in_ch = shapes.dim("conv_1.weight"), shapes.dim("conv_1.weight", 1)
    num_layers = shapes.count(r"body\.(\d+)\.local_block\.norm_1\.weight")
    num_experts = shapes.count(
        r"body\.0\.local_block\.block\.moe_layer\.experts\.(\d+)\.conv_1\.weight"
    )
    if in_ch != 3 or min(dim, num_layers, num_experts) < 1:
        return None
    if shapes.dim(_MOE0 + "moe_layer.gate.body.2.weight") != num_experts:
        return None
    ranks = [shapes.dim(f"{_MOE0}moe_layer.experts.{i}.conv_1.weight") for i in range(num_experts)]
    spaces: tuple[LRSpace, ...] = ("exp", "linear", "double")
    lr_space = next((s for s in spaces if expert_ranks(num_experts, s) == ranks), None)
    scale = shuffle_factor(shapes.dim("upsampler.0.weight"), in_ch)
    kernel = shapes.dim(_GROUP0 + "global_block.block.attn.conv.0.weight", 3)
    if lr_space is None or not scale or kernel % 2 == 0:
        return None
    large = num_layers == 16 and dim == 48
    args: dict[str, object] = {
        "in_chans": in_ch,
        "num_experts": num_experts,
        "num_layers": num_layers,
        "embedding_dim": dim,
        "img_range": 1.0,
        "use_shuffle": not large,
        "global_kernel_size": kernel,
        "recursive": 1 if large else 2,
        "lr_space": lr_space,
        "topk": 1,
    }
    name = {(6, 36): "seemore", (8, 48): "seemore-b", (16, 48): "seemore-l"}
    return Detected(name.get((num_layers, dim), "seemore"), scale, args, "official")


register_detector("seemore", detect_seemore, layouts=_LAYOUTS)
