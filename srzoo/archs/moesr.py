"""MoESR (MoESR2): Mamba out Excitation Super-Resolution, a community network.

There is no paper. MoESR was published by umzi (GitHub ``umzi2``) in the repository
https://github.com/umzi2/MoESR (MIT licence, first commit 2024-12-04; the network of this module
is the class ``MoESR2`` of its ``MoESR.py``, from the rework of 2024-12-13, which the community
and OpenModelDB call MoESR2; the first version, with an ESA attention block in place of the
multi-scale gate and ``n_blocks=6, n_block=6`` defaults, has other keys and is not supported).
Its README: the architecture "is based on the GatedCNNBlock introduced in the MambaOut
repository" (Yu and Wang, "MambaOut: Do We Really Need Mamba for Vision?", arXiv:2405.07992),
"technically, MoESR is an extended version" of the author's MoSR, built "to compete with
ESRGAN". spandrel ships the same code as ``spandrel/architectures/MoESR`` (resselt's detection).

The network: a 3x3 convolution to ``dim`` features; ``n_blocks`` groups of ``n_block`` gated
CNN blocks (MambaOut's, with an Inception depth-wise mixer: 3x3, 1x11 and 11x1 depth-wise
kernels on three eighths of the channels, and a learned per-channel ``gamma`` on the residual)
followed by a multi-scale gate (``MSG``: a 3x3 convolution to ``dim / 4`` channels,
pixel-unshuffle by 2, three gated blocks at half resolution, a 3x3 convolution and pixel
shuffle back, added to its input); a long skip; and one of five upsamplers (``conv`` at scale
1, ``pixelshuffledirect``, ``pixelshuffle`` with ``upsample_dim`` features, ``nearest+conv``,
``dysample``). The input is reflect-padded to even sides (the pixel-unshuffle) and the output
cropped.

Parameter names follow ``MoESR.py`` (``in_to_dim``, ``blocks.<i>.blocks.<j>.{norm, fc1,
conv.dwconv_hw, conv.dwconv_w, conv.dwconv_h, fc2, gamma}``, ``blocks.<i>.msg.{down.0,
gated.<k>, up.0}``, ``upscale.<k>``), and the upsampler keeps upstream's ``upscale.MetaUpsample``
buffer (a uint8 record: version, upsampler index, scale, widths, DySample groups), which other
tools read to detect the upsampler; so files load unchanged. srzoo's detection reads shapes
only, where they tell the same.

Weights: the README links (since 2024-12-15, after the rework, so for this network) one
pretrained network, ``4x_DF2K_MoESR_500k.safetensors`` (trained by the-database with
traiNNer-redux on DF2K, 500k iterations; Urban100 x4 27.05 dB PSNR / 0.8176 SSIM against
ESRGAN's 26.98 / 0.8151 in the README's table), on traiNNer-redux's GitHub release
``pretrained-models``, and a converted ``.pth`` on Google Drive. No digest of either is
published, so neither is registered; both load with ``srzoo.load_file(path)``.

Receptive field: local with the sub-pixel and nearest upsamplers (every layer is a convolution,
a fold or an enlargement); at the default depth it spans several hundred pixels. DySample
samples where learned, unbounded offsets point, so a ``dysample`` network declares none.

Example:
    >>> model = srzoo.load_file("4x_DF2K_MoESR_500k.safetensors")
"""

from __future__ import annotations

import math
from typing import Literal

import torch
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
    shuffle_split,
)
from ._blocks import DySample, FieldStep, LayerNorm2d, image_forward, receptive_radius
from ._window import pad_to_multiple

__all__ = ["MSG", "MoESR", "MoESRBlocks", "UniUpsample", "detect_moesr"]

SampleMods = Literal["conv", "pixelshuffledirect", "pixelshuffle", "nearest+conv", "dysample"]
# Upstream's order: the upsampler's index in the MetaUpsample record.
_SAMPLE_MODS: tuple[str, ...] = (
    "conv",
    "pixelshuffledirect",
    "pixelshuffle",
    "nearest+conv",
    "dysample",
)
_BAND = 11  # the Inception mixer's band kernels (1 x 11 and 11 x 1)


class _InceptionDWConv2d(nn.Module):
    """InceptionNeXt's mixer: one eighth of the channels each through a 3x3, a 1x11 and an
    11x1 depth-wise kernel, the rest unchanged (keys ``dwconv_hw``, ``dwconv_w``, ``dwconv_h``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        gc = int(channels * 0.125)
        self.split = [channels - 3 * gc, gc, gc, gc]
        self.dwconv_hw = nn.Conv2d(gc, gc, 3, padding=1, groups=gc)
        self.dwconv_w = nn.Conv2d(gc, gc, (1, _BAND), padding=(0, _BAND // 2), groups=gc)
        self.dwconv_h = nn.Conv2d(gc, gc, (_BAND, 1), padding=(_BAND // 2, 0), groups=gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ident, hw, w, h = torch.split(x, self.split, dim=1)
        return torch.cat((ident, self.dwconv_hw(hw), self.dwconv_w(w), self.dwconv_h(h)), dim=1)


class _GatedCNNBlock(nn.Module):
    """MambaOut's gated CNN block as MoESR2 uses it: 3x3 projections, Mish, the Inception mixer
    on all ``dim`` channels of the split, and ``gamma`` scaling the residual."""

    def __init__(self, dim: int, expansion_ratio: float) -> None:
        super().__init__()
        hidden = int(expansion_ratio * dim)
        if hidden < dim:
            raise ArgumentError(
                f"MoESR: the gated blocks' hidden width int(ratio * dim) = {hidden} is below "
                f"dim ({dim}); use an expansion ratio of at least 1"
            )
        self.split = [hidden, hidden - dim, dim]
        self.norm = LayerNorm2d(dim)
        self.fc1 = nn.Conv2d(dim, 2 * hidden, 3, padding=1)
        self.act = nn.Mish()
        self.conv = _InceptionDWConv2d(dim)
        self.fc2 = nn.Conv2d(hidden, dim, 3, padding=1)
        self.gamma = nn.Parameter(torch.ones(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, ident, part = torch.split(self.fc1(self.norm(x)), self.split, dim=1)
        y = self.act(self.fc2(self.act(gate) * torch.cat((ident, self.conv(part)), dim=1)))
        return y * self.gamma + x


class MSG(nn.Module):
    """Multi-scale gate: three gated blocks at half resolution, added back to the input.

    Args:
        dim: Feature channels (a multiple of 4: ``dim / 4`` channels are folded 2x2).
        expansion_msg: Hidden width of its gated blocks over ``dim``.
    """

    def __init__(self, *, dim: int, expansion_msg: float = 1.5) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, padding=1), nn.PixelUnshuffle(2), nn.LeakyReLU(0.1)
        )
        self.gated = nn.Sequential(*(_GatedCNNBlock(dim, expansion_msg) for _ in range(3)))
        self.up = nn.Sequential(
            nn.Conv2d(dim, 4 * dim, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.up(self.gated(self.down(x))) + x
        return out


class MoESRBlocks(nn.Module):
    """``n_block`` gated CNN blocks, then an :class:`MSG` (upstream ``Blocks``).

    Args:
        dim: Feature channels.
        n_block: Number of gated blocks.
        expansion_factor: Their hidden width over ``dim``.
        expansion_msg: The MSG's blocks' hidden width over ``dim``.
    """

    def __init__(
        self, *, dim: int, n_block: int, expansion_factor: float, expansion_msg: float
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(_GatedCNNBlock(dim, expansion_factor) for _ in range(n_block))
        )
        self.msg = MSG(dim=dim, expansion_msg=expansion_msg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.msg(self.blocks(x))
        return out


def _stages(scale: int) -> list[int]:
    """The x2 stages of a power-of-two scale, or one x3 stage; refuses any other scale."""
    if scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    if scale == 3:
        return [3]
    raise ArgumentError(
        f"MoESR: the pixelshuffle and nearest+conv upsamplers take x3 or a power of two, got "
        f"x{scale}; use pixelshuffledirect or dysample"
    )


class UniUpsample(nn.Sequential):
    """MoESR's upsampler (upstream ``UniUpsample``), with its ``MetaUpsample`` record.

    Args:
        upsample: Which upsampler (at scale 1 always a 3x3 convolution, as upstream).
        scale: Upscaling factor.
        in_dim: Feature channels.
        out_dim: Image channels.
        mid_dim: Features of the ``pixelshuffle`` upsampler.
        group: DySample's channel groups.
    """

    def __init__(
        self,
        *,
        upsample: SampleMods,
        scale: int,
        in_dim: int,
        out_dim: int,
        mid_dim: int = 64,
        group: int = 4,
    ) -> None:
        layers: list[nn.Module] = []
        if scale == 1 or upsample == "conv":
            layers.append(nn.Conv2d(in_dim, out_dim, 3, padding=1))
        elif upsample == "pixelshuffledirect":
            layers += [nn.Conv2d(in_dim, out_dim * scale * scale, 3, padding=1)]
            layers += [nn.PixelShuffle(scale)]
        elif upsample == "pixelshuffle":
            layers += [nn.Conv2d(in_dim, mid_dim, 3, padding=1), nn.LeakyReLU()]
            for f in _stages(scale):
                layers += [nn.Conv2d(mid_dim, f * f * mid_dim, 3, padding=1), nn.PixelShuffle(f)]
            layers.append(nn.Conv2d(mid_dim, out_dim, 3, padding=1))
        elif upsample == "nearest+conv":
            for f in _stages(scale):
                layers += [nn.Conv2d(in_dim, in_dim, 3, padding=1), nn.Upsample(scale_factor=f)]
                layers += [nn.LeakyReLU(0.2)]
            layers += [nn.Conv2d(in_dim, in_dim, 3, padding=1), nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_dim, out_dim, 3, padding=1))
        else:
            layers.append(DySample(in_dim, out_dim, scale, groups=group, name="MoESR"))
        super().__init__(*layers)
        self.record = (1, _SAMPLE_MODS.index(upsample), scale, in_dim, out_dim, mid_dim, group)
        self.register_buffer("MetaUpsample", self.record_tensor())

    def record_tensor(self) -> torch.Tensor:
        """Upstream's ``MetaUpsample`` record: version 1, the upsampler's index in
        ``SampleMods``, scale, ``in_dim``, ``out_dim``, ``mid_dim`` and ``group``, as uint8."""
        return torch.tensor(self.record, dtype=torch.uint8)


def _check(*, scale: int, dim: int, n_blocks: int, n_block: int, upsampler: str) -> None:
    if scale < 1:
        raise ArgumentError(f"MoESR: scale must be a positive integer, got {scale}")
    if upsampler not in _SAMPLE_MODS:
        raise ArgumentError(f"MoESR: upsampler must be one of {_SAMPLE_MODS}, got {upsampler!r}")
    if dim < 8 or dim % 4:
        raise ArgumentError(
            f"MoESR: dim must be a multiple of 4 and at least 8 (the Inception mixer takes an "
            f"eighth of the channels, the gate folds a quarter), got {dim}"
        )
    if n_blocks < 1 or n_block < 0:
        raise ArgumentError(
            f"MoESR: n_blocks must be positive and n_block not negative, got {n_blocks}, {n_block}"
        )


def _head_steps(upsampler: str, scale: int) -> list[tuple[FieldStep, int]]:
    """The upsampler's layers for :func:`receptive_radius` (not for DySample)."""
    if scale == 1 or upsampler == "conv":
        return [("conv", 1)]
    if upsampler == "pixelshuffledirect":
        return [("conv", 1), ("up", scale)]
    steps: list[tuple[FieldStep, int]] = []
    if upsampler == "pixelshuffle":
        steps.append(("conv", 1))
    for f in _stages(scale):
        steps += [("conv", 1), ("up", f)]
    steps.append(("conv", 1))
    return steps + ([("conv", 1)] if upsampler == "nearest+conv" else [])


class MoESR(nn.Module):
    """MoESR2 (umzi2/MoESR ``MoESR2``): gated CNN blocks with multi-scale gates.

    Takes values in [0, 1] like the original, at any size (odd sides are reflect-padded by one
    pixel for the 2x2 fold, as upstream, which needs two pixels a side; here one pixel is
    enough).

    Args:
        scale: Upscaling factor (``upsampler="conv"`` makes it 1, as upstream).
        in_ch: Image channels.
        out_ch: Output channels.
        dim: Feature channels (a multiple of 4, at least 8, at most 255).
        n_blocks: Number of groups (each ``n_block`` gated blocks and an MSG).
        n_block: Gated blocks per group.
        expansion_factor: Hidden width of those blocks over ``dim``.
        expansion_msg: Hidden width of the MSG's blocks over ``dim``.
        upsampler: ``"conv"``, ``"pixelshuffledirect"``, ``"pixelshuffle"``, ``"nearest+conv"``
            or ``"dysample"``.
        upsample_dim: Features of the ``pixelshuffle`` upsampler (recorded for the others).

    Example:
        >>> net = MoESR(scale=2, dim=16, n_blocks=1, n_block=1)
        >>> net(torch.rand(1, 3, 7, 8)).shape
        torch.Size([1, 3, 14, 16])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_ch: int = 3,
        out_ch: int = 3,
        dim: int = 64,
        n_blocks: int = 9,
        n_block: int = 4,
        expansion_factor: float = 8 / 3,
        expansion_msg: float = 1.5,
        upsampler: SampleMods = "pixelshuffledirect",
        upsample_dim: int = 64,
    ) -> None:
        super().__init__()
        if upsampler == "conv":
            scale = 1
        _check(scale=scale, dim=dim, n_blocks=n_blocks, n_block=n_block, upsampler=upsampler)
        if max(dim, upsample_dim, in_ch, out_ch, scale) > 255:
            raise ArgumentError(
                "MoESR: the upsampler records scale, dim, upsample_dim and the channels in a "
                "uint8 buffer (MetaUpsample), so none may exceed 255"
            )
        self.scale = scale
        self.in_channels = in_ch
        self.out_channels = out_ch
        self.in_to_dim = nn.Conv2d(in_ch, dim, 3, padding=1)
        self.blocks = nn.Sequential(
            *(
                MoESRBlocks(
                    dim=dim,
                    n_block=n_block,
                    expansion_factor=expansion_factor,
                    expansion_msg=expansion_msg,
                )
                for _ in range(n_blocks)
            )
        )
        self.upscale = UniUpsample(
            upsample=upsampler, scale=scale, in_dim=dim, out_dim=out_ch, mid_dim=upsample_dim
        )
        self.receptive_field: int | None = None
        if upsampler != "dysample" or scale == 1:
            gated: list[tuple[FieldStep, int]] = [("conv", 1 + _BAND // 2 + 1)]
            group = gated * n_block + [("conv", 1), ("fold", 2)]
            group += gated * 3 + [("conv", 1), ("up", 2)]
            steps = [("conv", 1), *(group * n_blocks), *_head_steps(upsampler, scale)]
            self.receptive_field = receptive_radius(steps)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        features = self.in_to_dim(pad_to_multiple(x, 2))
        out: torch.Tensor = self.upscale(self.blocks(features) + features)
        # The trunk runs channels-last (see LayerNorm2d); hand back an ordinary tensor.
        return out[:, :, : h * self.scale, : w * self.scale].contiguous()


_PAPER = Paper(
    title="MoESR2: Mamba out Excitation Super-Resolution (no paper; after MambaOut, "
    "arXiv:2405.07992)",
    venue="umzi2/MoESR on GitHub",
    year=2024,
)


def convert_moesr(state: StateDict, module: nn.Module) -> StateDict:
    """Add the ``upscale.MetaUpsample`` record to a file saved without it (the module's own).

    Args:
        state: The checkpoint's tensors.
        module: The network they are loaded into.

    Returns:
        ``state``, with the record where it lacked one.

    Example:
        >>> convert_moesr({k: v for k, v in state.items() if "Meta" not in k}, model)
    """
    key = "upscale.MetaUpsample"
    upscale = getattr(module, "upscale", None)
    if key in state or not isinstance(upscale, UniUpsample):
        return state
    # From the configuration, not the module's buffer: srzoo.load builds on the meta device.
    return {**state, key: upscale.record_tensor()}


register_model(
    ModelSpec(
        name="moesr",
        family="moesr",
        builder=MoESR,
        scales=(1, 2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="MoESR2: 9 groups of 4 MambaOut gated blocks and a multi-scale gate, "
        "64 features (community real-world weights)",
        task="real-world",
        colour="rgb",
        defaults={
            "dim": 64,
            "n_blocks": 9,
            "n_block": 4,
            "expansion_factor": 8 / 3,
            "expansion_msg": 1.5,
            "upsampler": "pixelshuffledirect",
            "upsample_dim": 64,
        },
        converter=convert_moesr,
        size_multiple=2,
    )
)


_LAYOUTS = {
    "official": (
        "in_to_dim.weight",
        "blocks.0.msg.down.0.weight",
        "blocks.0.msg.gated.0.fc1.weight",
        "blocks.0.msg.gated.0.conv.dwconv_w.weight",
        "blocks.0.msg.up.0.weight",
    ),
}


def _ratio(part: int, dim: int) -> float:
    """A ratio whose ``int(dim * ratio)`` is ``part``: the quotient, unless it rounds down."""
    ratio = part / dim
    return ratio if int(dim * ratio) == part else (part + 0.5) / dim


def _upsampler(shapes: Shapes, dim: int, in_ch: int) -> tuple[str, int, int, int, tuple[int, ...]]:
    """``(upsampler, scale, out_ch, upsample_dim, other scales)``, or a scale of 0."""
    none = ("", 0, 0, 0, ())
    if shapes.has("upscale.0.offset.weight", "upscale.0.end_conv.weight"):
        groups = 4  # upstream's: its tensors do not record it
        s = math.isqrt(shapes.dim("upscale.0.offset.weight") // (2 * groups))
        if s < 2 or 2 * groups * s * s != shapes.dim("upscale.0.offset.weight"):
            return none
        return "dysample", s, shapes.dim("upscale.0.end_conv.weight"), 64, ()
    found = shapes.indices(r"upscale\.(\d+)\.weight")
    if any(shapes.dim(f"upscale.{i}.weight", 2) != 3 for i in found):
        return none
    last = found[-1] if found else 0
    out_ch = shapes.dim(f"upscale.{last}.weight")
    if found == [0]:
        s, out_ch = shuffle_split(out_ch, in_ch)
        return ("conv" if s == 1 else "pixelshuffledirect"), s, out_ch, 64, ()
    if len(found) >= 3 and found[1] == 2:  # conv, LeakyReLU, (conv, shuffle) per stage, conv
        mid = shapes.dim("upscale.0.weight")
        factors = [shuffle_factor(shapes.dim(f"upscale.{i}.weight"), mid) for i in found[1:-1]]
        if found != list(range(0, 2 * len(found), 2)) or not (
            factors == [3] or (factors and all(f == 2 for f in factors))
        ):
            return none
        return "pixelshuffle", math.prod(factors), out_ch, mid, ()
    stages = len(found) - 2  # (conv, upsample, LeakyReLU) per stage, conv, LeakyReLU, conv
    if stages >= 1 and found == [*range(0, 3 * stages + 1, 3), 3 * stages + 2]:
        # One stage is x2 or x3 alike: the same tensors serve both.
        return "nearest+conv", 2**stages, out_ch, 64, ((2, 3) if stages == 1 else ())
    return none


def detect_moesr(shapes: Shapes) -> Detected | None:
    """Recognise a MoESR2 checkpoint (umzi2/MoESR ``MoESR2`` keys, spandrel's MoESR).

    Reads ``dim``, the image channels, ``n_blocks``, ``n_block``, ``expansion_factor`` and
    ``expansion_msg`` (from the ``fc1`` widths, as ratios the builder truncates back to them),
    the upsampler from the layers under ``upscale`` (a lone 3x3 convolution: ``conv`` at x1 or
    ``pixelshuffledirect``; a convolution at index 2: ``pixelshuffle``; at index 3:
    ``nearest+conv``; ``offset`` / ``scope``: ``dysample``), the scale and the output channels.
    Shapes cannot tell: ``upsample_dim`` of the upsamplers other than ``pixelshuffle`` (64, the
    default; it only fills the record), ``expansion_factor`` where ``n_block`` is 0 (8/3, the
    default; no block uses it) and the scale of a one-stage ``nearest+conv`` upsampler,
    whose tensors serve x2 and x3 alike (x2 is assumed and both are listed in ``scales``).
    Upstream's ``MetaUpsample`` record holds them, and loading keeps the file's record.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a MoESR2.

    Example:
        >>> state = MoESR(scale=2, dim=16, n_blocks=1, n_block=1).state_dict()
        >>> detect_moesr(Shapes({k: v.shape for k, v in state.items()})).scale
        2
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    dim, in_ch = shapes.dim("in_to_dim.weight"), shapes.dim("in_to_dim.weight", 1)
    n_blocks = shapes.count(r"blocks\.(\d+)\.msg\.down\.0\.weight")
    n_block = shapes.count(r"blocks\.0\.blocks\.(\d+)\.fc1\.weight")
    msg_fc1 = shapes.dim("blocks.0.msg.gated.0.fc1.weight")
    block_fc1 = shapes.dim("blocks.0.blocks.0.fc1.weight")
    if not n_blocks or dim < 8 or dim % 4 or msg_fc1 % 2 or block_fc1 % 2:
        return None
    upsampler, scale, out_ch, upsample_dim, scales = _upsampler(shapes, dim, in_ch)
    if not scale:
        return None
    args: dict[str, object] = {
        "in_ch": in_ch,
        "out_ch": out_ch,
        "dim": dim,
        "n_blocks": n_blocks,
        "n_block": n_block,
        # Without gated blocks outside the gates nothing records it: the default then.
        "expansion_factor": _ratio(block_fc1 // 2, dim) if n_block else 8 / 3,
        "expansion_msg": _ratio(msg_fc1 // 2, dim),
        "upsampler": upsampler,
        "upsample_dim": upsample_dim,
    }
    return Detected("moesr", scale, args, "official", scales=scales)


register_detector("moesr", detect_moesr, layouts=_LAYOUTS)
