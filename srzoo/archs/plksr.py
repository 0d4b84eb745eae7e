"""PLKSR and RealPLKSR: partial large kernel convolutions for efficient super-resolution.

Paper: Lee, Yun, Ro, "Partial Large Kernel CNNs for Efficient Super-Resolution", arXiv preprint
2024, arXiv:2404.11848.

``PLKSR`` follows the parameter names of dslisleedh/PLKSR ``plksr/archs/plksr_arch.py`` (BasicSR
``params`` files): ``feats.0`` (3x3 conv), ``feats.1 .. feats.<n_blocks>`` (blocks with
``channe_mixer`` -- the upstream spelling --, ``lk.conv``, ``attn.f.0`` and ``refine``) and
``feats.<n_blocks + 1>`` (3x3 conv to ``3 * scale**2`` channels, pixel-shuffled). The input,
repeated ``scale**2`` times along the channels (a nearest-neighbour enlargement after the shuffle),
is added to the last convolution. Each block mixes channels with a convolutional channel mixer
(``"CCM"``: 3x3 then 1x1, ``"ICCM"``: 1x1 then 3x3, ``"DCCM"``: two 3x3; GELU between), runs a
``kernel_size`` convolution over the first ``int(dim * split_ratio)`` channels only, and modulates
by element-wise attention (a 3x3 conv and a sigmoid) before a 1x1 refinement and the skip.

``RealPLKSR`` is the real-world variant the authors describe in their repository's issue #4 and
that neosr (``neosr/archs/realplksr_arch.py``) and spandrel ship: Mish in a DCCM mixer
(``channel_mixer``), a group norm after the refinement (or a channel layer norm before the mixer,
``layer_norm=True``), a ``Dropout2d`` before the last convolution (``feats.<n_blocks + 1>`` has no
parameters, so that convolution is ``feats.<n_blocks + 2>``), and optionally spandrel's
``DySample`` upsampler (``dysample=True``, keys ``to_img.offset`` / ``to_img.scope`` /
``to_img.init_pos`` / ``to_img.end_conv``). Its group norm pools over the whole image, and
DySample samples where learned offsets point, so RealPLKSR is a global network unless it uses the
layer norm and the pixel shuffle.

The authors' ablation layers (``SparsePLK`` and ``RectSparsePLK`` large kernels) have no released
weights and are not supported; a file with them is not detected.

Receptive field (PLKSR): one pixel for ``feats.0``, per block the mixer (1 pixel for CCM/ICCM, 2
for DCCM) plus ``kernel_size // 2`` plus 1 for the attention, one for the last convolution; the
paper's network reaches 310 low-resolution pixels, PLKSR-tiny (no attention) 98.

Weights: the official PLKSR files (x2/x3/x4 on DIV2K, PLKSR-tiny on DIV2K and DF2K) are
published on Google Drive only (folder ``1lIkZ00y9cRQpLU9qmCIB2XtS-2ZoqKq8``), with no digest,
so none is registered; any of them loads with ``srzoo.load("plksr", scale=s, weights=path)`` or
``srzoo.load_file(path)``. RealPLKSR weights are community-trained (no official release). The
paper reports (Y-PSNR, DIV2K training, Table 2 of arXiv:2404.11848 and the authors' README
figures): PLKSR x2 38.25 / 34.03, x3 34.70 / 30.60, x4 32.54 / 28.84 dB on Set5 / Set14;
PLKSR-tiny x2 38.11 / 33.73, x3 34.50 / 30.45, x4 32.18 / 28.67 dB (DF2K: x4 32.33 / 28.76).

Example:
    >>> model = srzoo.load("plksr", scale=4, weights="PLKSR_X4_DIV2K.pth")
"""

from __future__ import annotations

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
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import DySample, LayerNorm2d, image_forward

__all__ = ["PLKSR", "RealPLKSR", "detect_plksr"]

MixerType = Literal["CCM", "ICCM", "DCCM"]

# Kernel sizes (first, second) of each channel mixer, and how far it reaches.
_MIXERS: dict[str, tuple[int, int]] = {"CCM": (3, 1), "ICCM": (1, 3), "DCCM": (3, 3)}


def _mixer(kind: str, dim: int, act: nn.Module) -> nn.Sequential:
    k1, k2 = _MIXERS[kind]
    return nn.Sequential(
        nn.Conv2d(dim, dim * 2, k1, padding=k1 // 2),
        act,
        nn.Conv2d(dim * 2, dim, k2, padding=k2 // 2),
    )


def _mixer_reach(kind: str) -> int:
    if kind not in _MIXERS:
        raise ArgumentError(f"PLKSR: ccm_type must be 'CCM', 'ICCM' or 'DCCM', got {kind!r}")
    return sum(k // 2 for k in _MIXERS[kind])


class _PartialConv(nn.Module):
    """A large-kernel convolution over the first ``channels`` channels; the rest pass through."""

    def __init__(self, channels: int, kernel_size: int, *, with_idt: bool = False) -> None:
        super().__init__()
        self.channels = channels
        self.with_idt = with_idt
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = x[:, : self.channels]
        out = self.conv(head)
        if self.with_idt:
            out = out + head
        if self.training or torch.is_grad_enabled():
            return torch.cat([out, x[:, self.channels :]], dim=1)
        # Inference: write into the block's own intermediate tensor (never the network's
        # input), which saves the copy of the untouched channels that a concatenation makes.
        x[:, : self.channels] = out
        return x


class _ElementAttention(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.f(x)


def _partial_channels(dim: int, split_ratio: float, name: str) -> int:
    pdim = int(dim * split_ratio)
    if dim < 1 or not 1 <= pdim <= dim:
        raise ArgumentError(
            f"{name}: int(dim * split_ratio) must be between 1 and dim, got dim={dim} and "
            f"split_ratio={split_ratio}"
        )
    return pdim


def _check_scale(scale: int, name: str) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ArgumentError(f"{name}: scale must be a positive integer, got {scale!r}")


def _check_kernel(kernel_size: int, name: str) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ArgumentError(f"{name}: kernel_size must be odd and positive, got {kernel_size}")


class _PLKBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        *,
        ccm_type: str,
        kernel_size: int,
        pdim: int,
        use_ea: bool,
        with_idt: bool,
    ) -> None:
        super().__init__()
        self.channe_mixer = _mixer(ccm_type, dim, nn.GELU())
        self.lk = _PartialConv(pdim, kernel_size, with_idt=with_idt)
        self.attn: nn.Module = _ElementAttention(dim) if use_ea else nn.Identity()
        self.refine = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine(self.attn(self.lk(self.channe_mixer(x)))) + x


def _enlarged_input(x: torch.Tensor, scale: int) -> torch.Tensor:
    # Upstream adds x.repeat_interleave(scale**2, dim=1) before the pixel shuffle; after the
    # shuffle that is each input pixel copied to its scale x scale block.
    return x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="nearest")


class PLKSR(nn.Module):
    """PLKSR: a stack of partial-large-kernel blocks and a pixel-shuffle head.

    Args:
        scale: Upscaling factor (any positive integer).
        dim: Feature channels.
        n_blocks: Blocks.
        kernel_size: Size of the large kernel (odd).
        split_ratio: Share of the channels the large kernel convolves.
        ccm_type: Channel mixer: ``"CCM"``, ``"ICCM"`` or ``"DCCM"`` (the paper's).
        use_ea: Element-wise attention in every block (off in PLKSR-tiny).
        with_idt: Add the identity to the large-kernel convolution (an ablation of the
            authors' code; files do not say whether it was used).

    Example:
        >>> PLKSR(scale=2, n_blocks=2)(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        dim: int = 64,
        n_blocks: int = 28,
        kernel_size: int = 17,
        split_ratio: float = 0.25,
        ccm_type: MixerType = "DCCM",
        use_ea: bool = True,
        with_idt: bool = False,
    ) -> None:
        super().__init__()
        _check_scale(scale, "PLKSR")
        _check_kernel(kernel_size, "PLKSR")
        pdim = _partial_channels(dim, split_ratio, "PLKSR")
        if n_blocks < 0:
            raise ArgumentError(f"PLKSR: n_blocks must be >= 0, got {n_blocks}")
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        block = _mixer_reach(ccm_type) + kernel_size // 2 + int(use_ea) if n_blocks else 0
        # Every layer works at low resolution; the pixel shuffle copies, it does not reach.
        self.receptive_field: int | None = 1 + n_blocks * block + 1
        blocks = [
            _PLKBlock(
                dim,
                ccm_type=ccm_type,
                kernel_size=kernel_size,
                pdim=pdim,
                use_ea=use_ea,
                with_idt=with_idt,
            )
            for _ in range(n_blocks)
        ]
        self.feats = nn.Sequential(
            nn.Conv2d(3, dim, 3, padding=1),
            *blocks,
            nn.Conv2d(dim, 3 * scale * scale, 3, padding=1),
        )
        self.to_img = nn.PixelShuffle(scale)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_img(self.feats(x)) + _enlarged_input(x, self.scale)


class _RealPLKBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        *,
        kernel_size: int,
        pdim: int,
        use_ea: bool,
        norm_groups: int,
        layer_norm: bool,
    ) -> None:
        super().__init__()
        self.layer_norm: nn.Module = (
            LayerNorm2d(dim, channels_last=False) if layer_norm else nn.Identity()
        )
        self.channel_mixer = _mixer("DCCM", dim, nn.Mish())
        self.lk = _PartialConv(pdim, kernel_size)
        self.attn: nn.Module = _ElementAttention(dim) if use_ea else nn.Identity()
        self.refine = nn.Conv2d(dim, dim, 1)
        self.norm: nn.Module = nn.Identity() if layer_norm else nn.GroupNorm(norm_groups, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lk(self.channel_mixer(self.layer_norm(x)))
        return self.norm(self.refine(self.attn(y))) + x


class RealPLKSR(nn.Module):
    """RealPLKSR: PLKSR for real-world degradations (group norm, Mish, optional DySample).

    Args:
        scale: Upscaling factor (any positive integer).
        dim: Feature channels.
        n_blocks: Blocks.
        kernel_size: Size of the large kernel (odd).
        split_ratio: Share of the channels the large kernel convolves.
        use_ea: Element-wise attention in every block.
        norm_groups: Groups of the group norm after each block (files do not say; 4 upstream).
        dropout: Probability of ``Dropout2d`` before the last convolution, in training only.
        dysample: Upsample with DySample instead of a pixel shuffle.
        layer_norm: A channel layer norm before each block's mixer instead of the group norm
            after it.

    Example:
        >>> RealPLKSR(scale=2, n_blocks=2)(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        dim: int = 64,
        n_blocks: int = 28,
        kernel_size: int = 17,
        split_ratio: float = 0.25,
        use_ea: bool = True,
        norm_groups: int = 4,
        dropout: float = 0.0,
        dysample: bool = False,
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        _check_scale(scale, "RealPLKSR")
        _check_kernel(kernel_size, "RealPLKSR")
        pdim = _partial_channels(dim, split_ratio, "RealPLKSR")
        if n_blocks < 0:
            raise ArgumentError(f"RealPLKSR: n_blocks must be >= 0, got {n_blocks}")
        if not layer_norm and (norm_groups < 1 or dim % norm_groups):
            raise ArgumentError(
                f"RealPLKSR: dim ({dim}) must be a multiple of norm_groups ({norm_groups})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ArgumentError(f"RealPLKSR: dropout must be in [0, 1), got {dropout}")
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        block = 2 + kernel_size // 2 + int(use_ea) if n_blocks else 0
        local = (layer_norm or n_blocks == 0) and not dysample
        # The group norm's statistics and DySample's learned sampling positions span the image.
        self.receptive_field: int | None = 1 + n_blocks * block + 1 if local else None
        blocks = [
            _RealPLKBlock(
                dim,
                kernel_size=kernel_size,
                pdim=pdim,
                use_ea=use_ea,
                norm_groups=norm_groups,
                layer_norm=layer_norm,
            )
            for _ in range(n_blocks)
        ]
        self.feats = nn.Sequential(
            nn.Conv2d(3, dim, 3, padding=1),
            *blocks,
            nn.Dropout2d(dropout),
            nn.Conv2d(dim, 3 * scale * scale, 3, padding=1),
        )
        self.dysample = dysample
        self.to_img: nn.Module = (
            DySample(
                3 * scale * scale,
                3,
                scale,
                groups=3 if scale % 2 else 4,
                # At scale 1 upstream samples the image channels directly.
                end_kernel=1 if scale != 1 else None,
                name="RealPLKSR",
            )
            if dysample
            else nn.PixelShuffle(scale)
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dysample:
            skip = x.repeat_interleave(self.scale * self.scale, dim=1)
            out: torch.Tensor = self.to_img(self.feats(x) + skip)
            return out
        return self.to_img(self.feats(x)) + _enlarged_input(x, self.scale)


_PAPER = Paper(
    title="Partial Large Kernel CNNs for Efficient Super-Resolution",
    venue="arXiv preprint",
    year=2024,
    arxiv="2404.11848",
)


register_model(
    ModelSpec(
        name="plksr",
        family="plksr",
        builder=PLKSR,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="PLKSR: 28 partial-large-kernel blocks (17x17 on a quarter of 64 channels), "
        "DCCM mixers, element-wise attention",
        task="psnr",
        colour="rgb",
        defaults={
            "dim": 64,
            "n_blocks": 28,
            "kernel_size": 17,
            "split_ratio": 0.25,
            "ccm_type": "DCCM",
            "use_ea": True,
        },
    )
)
register_model(
    ModelSpec(
        name="plksr-tiny",
        family="plksr",
        builder=PLKSR,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="PLKSR-tiny: 12 blocks, 13x13 partial kernels, DCCM mixers, no attention",
        task="psnr",
        colour="rgb",
        defaults={
            "dim": 64,
            "n_blocks": 12,
            "kernel_size": 13,
            "split_ratio": 0.25,
            "ccm_type": "DCCM",
            "use_ea": False,
        },
    )
)
register_model(
    ModelSpec(
        name="realplksr",
        family="plksr",
        builder=RealPLKSR,
        scales=(1, 2, 3, 4),
        paper=_PAPER,
        # The authors' MIT code as adapted for real-world training (neosr) and spandrel (MIT).
        code_license="MIT",
        description="RealPLKSR: PLKSR with Mish, group norm and dropout for real-world "
        "degradations (community-trained weights)",
        task="real-world",
        colour="rgb",
        defaults={
            "dim": 64,
            "n_blocks": 28,
            "kernel_size": 17,
            "split_ratio": 0.25,
            "use_ea": True,
            "norm_groups": 4,
            "dysample": False,
            "layer_norm": False,
        },
    )
)


_LAYOUTS = {
    "official": ("feats.0.weight", "feats.1.channe_mixer.0.weight", "feats.1.lk.conv.weight"),
    "realplksr": ("feats.0.weight", "feats.1.channel_mixer.0.weight", "feats.1.lk.conv.weight"),
}


def _split_ratio(pdim: int, dim: int) -> float:
    """A ratio whose ``int(dim * ratio)`` is ``pdim``: the quotient, unless it rounds down."""
    ratio = pdim / dim
    return ratio if int(dim * ratio) == pdim else (pdim + 0.5) / dim


def detect_plksr(shapes: Shapes) -> Detected | None:
    """Recognise a PLKSR or RealPLKSR checkpoint from its keys and shapes.

    PLKSR (dslisleedh/PLKSR's ``channe_mixer`` keys): reads ``dim``, ``n_blocks``, the scale (the
    last convolution's ``3 * scale**2`` channels), ``kernel_size``, ``split_ratio`` (from the
    large kernel's channels), ``ccm_type`` (from the mixer's kernel sizes) and ``use_ea``.
    ``with_idt`` holds no tensor: ``False`` is assumed. Files with 12 blocks, 13x13 kernels and
    no attention are named ``plksr-tiny``.

    RealPLKSR (``channel_mixer`` keys): the same, plus ``layer_norm`` and ``dysample`` from their
    tensors. ``norm_groups`` holds no tensor of its own: 4 is assumed (the only value used
    upstream); ``dropout`` plays no part in inference.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is neither network.

    Example:
        >>> detect_plksr(Shapes(PLKSR(scale=2, n_blocks=2).state_dict())).name
        'plksr'
    """
    real = shapes.has(*_LAYOUTS["realplksr"])
    if not real and not shapes.has(*_LAYOUTS["official"]):
        return None
    dim = shapes.dim("feats.0.weight")
    found = shapes.indices(r"feats\.(\d+)\.refine\.weight")
    if found != list(range(1, len(found) + 1)):
        return None
    n_blocks = len(found)
    last = f"feats.{n_blocks + (2 if real else 1)}.weight"
    scale = shuffle_factor(shapes.dim(last), 3)
    lk = shapes["feats.1.lk.conv.weight"]
    if (
        not scale
        or shapes["feats.0.weight"] != (dim, 3, 3, 3)
        or shapes.dim(last, 1) != dim
        or len(lk) != 4
        or lk[2] != lk[3]
    ):
        return None
    kernel_size, pdim = lk[2], lk[0]
    mixer = "channel_mixer" if real else "channe_mixer"
    k1, k2 = shapes.dim(f"feats.1.{mixer}.0.weight", 2), shapes.dim(f"feats.1.{mixer}.2.weight", 2)
    args: dict[str, object] = {
        "dim": dim,
        "n_blocks": n_blocks,
        "kernel_size": kernel_size,
        "split_ratio": _split_ratio(pdim, dim),
        "use_ea": shapes.has("feats.1.attn.f.0.weight"),
    }
    if real:
        if (k1, k2) != (3, 3):
            return None
        layer_norm = shapes.has("feats.1.layer_norm.weight")
        dysample = shapes.has("to_img.offset.weight")
        if dysample and shapes.dim("to_img.offset.weight", 1) != 3 * scale * scale:
            return None
        args.update(norm_groups=4, dysample=dysample, layer_norm=layer_norm)
        return Detected("realplksr", scale, args, "realplksr")
    ccm = {v: k for k, v in _MIXERS.items()}.get((k1, k2))
    if ccm is None:
        return None
    args.update(ccm_type=ccm, with_idt=False)
    tiny = n_blocks == 12 and kernel_size == 13 and not args["use_ea"]
    return Detected("plksr-tiny" if tiny else "plksr", scale, args, "official")


register_detector("plksr", detect_plksr, layouts=_LAYOUTS)
