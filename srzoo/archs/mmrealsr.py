"""MM-RealSR: an RRDB network modulated by estimated (or chosen) degradation degrees.

Paper: Chong Mou, Yanze Wu, Xintao Wang, Chao Dong, Jian Zhang, Ying Shan, "Metric Learning
based Interactive Modulation for Real-World Super-Resolution", ECCV 2022, arXiv:2205.05065.
Code and weights: TencentARC/MM-RealSR (BSD-3-Clause), ``mmrealsr/archs/mmrealsr_arch.py``.

Parameter names follow the authors' ``MMRRDBNet`` (the keys of their release files, identical to
spandrel's MMRealSR): the ESRGAN trunk (``conv_first``, ``body.N.rdbK.convJ``, ``conv_body``,
``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``), one affine modulation per RRDB
(``am_list.N.fc``), the degradation estimator (``de_net.conv_first.D``, ``de_net.body.D.I``,
``de_net.fc_degree.D``: one residual network per degradation) and the embedding of the degrees
(``dd_embed.0``). Official files load unchanged (after the usual ``params`` unwrap).

The network, as the authors' inference (``MMRRDBNet_test``) and spandrel compute it:

- the estimator reads one degree per degradation (blur, then noise, in the released models)
  from the input: a 3x3 convolution, residual blocks in stages (a 3x3 convolution of stride 2
  between stages that downscale), a global average and a two-layer head with a sigmoid;
- the degrees are embedded to 512 values; after every RRDB a small MLP of the embedding gives a
  per-channel scale and shift, ``(1 + gamma) * feat + beta``;
- the trunk and its x4 tail (two nearest-neighbour x2 steps) are ESRGAN's. At x2 and x1 the
  input is folded by ``pixel_unshuffle`` (by 2 and 4) first, as in Real-ESRGAN. Upstream then
  feeds the estimator the unfolded image, which its first convolution (built for the folded
  channels) cannot take, so upstream fails there; this module gives the estimator the folded
  input it was built for. The fold pads the input to a multiple of 2 or 4 by reflection and the
  output is cropped, so any size works. No x2 or x1 weights were released.

Interactive modulation (the paper's point): ``degrees`` replaces any estimated degree by a
chosen one (``None`` keeps the estimate), e.g. ``degrees=(None, 0.0)`` keeps the estimated
blur and asks for no denoising. The released models were trained with degrees in [0, 1]
(0: the clean anchor, 1: the strongest training degradation).
:meth:`MMRealSR.estimate_degrees` returns what the estimator reads from an image.

The global average of the estimator makes the network global: tiles of one image are
modulated by their own degrees, so tiling changes the result.

Weights (not registered): the GitHub release ``v1.0.0`` of TencentARC/MM-RealSR holds
``MMRealSRNet.pth`` (the network before GAN training), ``MMRealSRGAN.pth`` and
``MMRealSRGAN_ModulationBest.pth``, also on Google Drive
(``10EyZR0SBEXkZIag9rcSgYBupBGllcwdA``). All three are this configuration (the authors' inference
builds one network for every file); no digest is published, so none is registered. Any of them
loads with ``srzoo.load("mmrealsr", scale=4, weights=path)`` or ``srzoo.load_file(path)`` (the
authors' inference reads the ``params`` entry; srzoo's unwrap takes ``params_ema`` first where a
file holds both). The paper reports perceptual and no-reference metrics (LPIPS, DISTS, NIQE)
on real-world data, no Set5 / Set14 PSNR.

Example:
    >>> model = srzoo.load("mmrealsr", scale=4, weights="MMRealSRGAN.pth", degrees=(None, 0.2))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError, ArgumentTypeError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    register_detector,
    register_model,
)
from ._blocks import RRDB, conv3x3, image_forward
from ._window import pad_to_multiple

__all__ = ["AffineModulate", "DegradationEstimator", "MMRealSR", "detect_mmrealsr"]

Activation = Literal["sigmoid", "tanh"]

_SLOPE = 0.2  # LeakyReLU slope of the trunk
_EMBED = 512  # width of the degree embedding (fixed upstream, whatever the configuration)
_HEAD = 512  # hidden width of the estimator's degree heads (fixed upstream)
_FOLDS = {4: 1, 2: 2, 1: 4}  # scale -> pixel_unshuffle factor of the input


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    # In place: x is always a convolution's fresh output that nothing else holds (LeakyReLU's
    # gradient reads its own output, so autograd stays exact).
    return F.leaky_relu(x, _SLOPE, inplace=True)


class AffineModulate(nn.Module):
    """A per-channel scale and shift of the features, computed from the degree embedding.

    Args:
        num_feat: Feature channels modulated.

    Example:
        >>> am = AffineModulate(num_feat=8)
        >>> am(torch.rand(2, 8, 5, 5), torch.rand(2, 512)).shape
        torch.Size([2, 8, 5, 5])
    """

    def __init__(self, *, num_feat: int = 64) -> None:
        super().__init__()
        hidden = (_EMBED + 2 * num_feat) // 2
        self.fc = nn.Sequential(
            nn.Linear(_EMBED, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 2 * num_feat),
        )

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.fc(embedding)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + gamma) + beta


class _ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a ReLU between, added to the input (no normalisation)."""

    def __init__(self, num_feat: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(num_feat, num_feat)
        self.conv2 = conv3x3(num_feat, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def _estimator_body(
    num_feats: Sequence[int], num_blocks: Sequence[int], downscales: Sequence[int]
) -> nn.Sequential:
    """One estimator branch after its first convolution, in upstream's ``body`` order.

    Each stage is its residual blocks; a stage that downscales ends with a stride-2 convolution
    to the next stage's width (its own for the last stage); one that keeps the size but changes
    the width ends with a stride-1 convolution.
    """
    layers: list[nn.Module] = []
    nexts = [*num_feats[1:], num_feats[-1]]  # the last stage keeps its width
    for feats, blocks, down, after in zip(num_feats, num_blocks, downscales, nexts, strict=True):
        layers += [_ResidualBlock(feats) for _ in range(blocks)]
        if down == 2:
            layers.append(nn.Conv2d(feats, after, 3, stride=2, padding=1))
        elif feats != after:
            layers.append(conv3x3(feats, after))
    return nn.Sequential(*layers)


class DegradationEstimator(nn.Module):
    """Upstream's ``DEResNet``: one residual network per degradation, each reading one degree.

    Args:
        in_channels: Channels of the (folded) input.
        num_degradation: Degrees estimated (2 in the released models: blur, noise).
        degradation_degree_actv: The heads' last activation, ``"sigmoid"`` or ``"tanh"``.
        num_feats: Width of each stage.
        num_blocks: Residual blocks of each stage.
        downscales: 1 or 2 per stage.

    Example:
        >>> net = DegradationEstimator(num_feats=(8, 16), num_blocks=(1, 1), downscales=(2, 1))
        >>> net(torch.rand(2, 3, 9, 9)).shape
        torch.Size([2, 2])
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        num_degradation: int = 2,
        degradation_degree_actv: Activation = "sigmoid",
        num_feats: Sequence[int] = (64, 64, 64, 128),
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        downscales: Sequence[int] = (1, 1, 2, 1),
    ) -> None:
        super().__init__()
        actv: type[nn.Module] = nn.Sigmoid if degradation_degree_actv == "sigmoid" else nn.Tanh
        self.conv_first = nn.ModuleList(
            conv3x3(in_channels, num_feats[0]) for _ in range(num_degradation)
        )
        self.body = nn.ModuleList(
            _estimator_body(num_feats, num_blocks, downscales) for _ in range(num_degradation)
        )
        self.fc_degree = nn.ModuleList(
            nn.Sequential(
                nn.Linear(num_feats[-1], _HEAD), nn.ReLU(inplace=True), nn.Linear(_HEAD, 1), actv()
            )
            for _ in range(num_degradation)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        degrees = [
            head(body(first(x)).mean(dim=(2, 3)))
            for first, body, head in zip(self.conv_first, self.body, self.fc_degree, strict=True)
        ]
        return torch.cat(degrees, dim=1)


def _check_config(
    scale: int,
    num_degradation: int,
    degradation_degree_actv: str,
    stages: tuple[Sequence[int], Sequence[int], Sequence[int]],
) -> None:
    if scale not in _FOLDS:
        raise ArgumentError(f"MMRealSR supports scales 1, 2 and 4, not {scale}")
    if num_degradation < 1:
        raise ArgumentError(f"MMRealSR needs num_degradation >= 1, got {num_degradation}")
    if degradation_degree_actv not in ("sigmoid", "tanh"):
        raise ArgumentError(
            "MMRealSR's degradation_degree_actv is 'sigmoid' or 'tanh', "
            f"not {degradation_degree_actv!r}"
        )
    num_feats, num_blocks, downscales = stages
    if not len(num_feats) == len(num_blocks) == len(downscales) >= 1:
        raise ArgumentError(
            "MMRealSR's num_feats, num_blocks and downscales need one entry per stage each, got "
            f"{len(num_feats)}, {len(num_blocks)} and {len(downscales)}"
        )
    if any(d not in (1, 2) for d in downscales) or min(num_feats) < 1 or min(num_blocks) < 0:
        raise ArgumentError(
            "MMRealSR's estimator stages need widths >= 1, block counts >= 0 and downscales of "
            f"1 or 2, got {tuple(num_feats)}, {tuple(num_blocks)}, {tuple(downscales)}"
        )


def _checked_degrees(
    degrees: Sequence[float | None] | None, count: int
) -> tuple[float | None, ...]:
    if degrees is None:
        return (None,) * count
    if isinstance(degrees, str | bytes) or not isinstance(degrees, Sequence):
        raise ArgumentTypeError(
            f"MMRealSR's degrees is a sequence of {count} numbers or None, got "
            f"{type(degrees).__name__}"
        )
    if len(degrees) != count:
        raise ArgumentError(
            f"MMRealSR estimates {count} degrees; give {count} values (None keeps an "
            f"estimate), got {len(degrees)}"
        )
    values: list[float | None] = []
    for d in degrees:
        if d is not None and (isinstance(d, bool) or not isinstance(d, int | float)):
            raise ArgumentTypeError(
                f"MMRealSR's degrees are numbers (or None to keep the estimate), got {d!r}"
            )
        values.append(None if d is None else float(d))
    return tuple(values)


class MMRealSR(nn.Module):
    """MM-RealSR: an ESRGAN trunk whose features are modulated by degradation degrees.

    Takes RGB in [0, 1], as the released checkpoints do.

    Args:
        scale: Upscaling factor: 4 (the released models), or 2 and 1 (input folded first).
        in_channels: Image channels in.
        out_channels: Image channels out.
        num_feat: Trunk feature channels.
        num_block: RRDB blocks (each followed by its modulation).
        num_grow_ch: Growth channels of the dense blocks.
        num_degradation: Degrees the estimator reads (2: blur and noise).
        degradation_degree_actv: Last activation of the estimator's heads.
        num_feats: Estimator width per stage.
        num_blocks: Estimator residual blocks per stage.
        downscales: Estimator downscaling per stage (1 or 2).
        degrees: A chosen degree per degradation, ``None`` to keep the estimate (all estimated
            by default); also settable later as ``model.degrees``.

    Raises:
        ArgumentError: A scale or configuration the network cannot build, or ``degrees`` of
            the wrong length.
        ArgumentTypeError: ``degrees`` holds something other than numbers and ``None``.

    Example:
        >>> net = MMRealSR(num_feat=8, num_block=1, num_grow_ch=4, degrees=(None, 0.0))
        >>> net(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        out_channels: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        num_degradation: int = 2,
        degradation_degree_actv: Activation = "sigmoid",
        num_feats: Sequence[int] = (64, 64, 64, 128),
        num_blocks: Sequence[int] = (2, 2, 2, 2),
        downscales: Sequence[int] = (1, 1, 2, 1),
        degrees: Sequence[float | None] | None = None,
    ) -> None:
        super().__init__()
        stages = (tuple(num_feats), tuple(num_blocks), tuple(downscales))
        _check_config(scale, num_degradation, degradation_degree_actv, stages)
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_degradation = num_degradation
        self.fold = _FOLDS[scale]
        # The estimator averages over the whole image: no finite receptive field.
        self.receptive_field: int | None = None
        folded = in_channels * self.fold * self.fold

        self.conv_first = conv3x3(folded, num_feat)
        self.body = nn.ModuleList(
            RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch) for _ in range(num_block)
        )
        self.am_list = nn.ModuleList(AffineModulate(num_feat=num_feat) for _ in range(num_block))
        self.conv_body = conv3x3(num_feat, num_feat)
        self.conv_up1 = conv3x3(num_feat, num_feat)
        self.conv_up2 = conv3x3(num_feat, num_feat)
        self.conv_hr = conv3x3(num_feat, num_feat)
        self.conv_last = conv3x3(num_feat, out_channels)
        self.de_net = DegradationEstimator(
            in_channels=folded,
            num_degradation=num_degradation,
            degradation_degree_actv=degradation_degree_actv,
            num_feats=stages[0],
            num_blocks=stages[1],
            downscales=stages[2],
        )
        self.dd_embed = nn.Sequential(nn.Linear(num_degradation, _EMBED), nn.ReLU(inplace=True))
        self.degrees = degrees  # the setter checks and normalises it

    @property
    def degrees(self) -> tuple[float | None, ...]:
        """The chosen degree per degradation; ``None`` entries are estimated from the input."""
        return self._degrees

    @degrees.setter
    def degrees(self, value: Sequence[float | None] | None) -> None:
        self._degrees = _checked_degrees(value, self.num_degradation)

    def _fold(self, x: torch.Tensor) -> torch.Tensor:
        if self.fold == 1:
            return x
        return F.pixel_unshuffle(pad_to_multiple(x, self.fold), self.fold)

    def estimate_degrees(self, x: torch.Tensor) -> torch.Tensor:
        """The degradation degrees the estimator reads from an image (before any override).

        Args:
            x: ``(N, C, H, W)`` RGB in [0, 1].

        Returns:
            ``(N, num_degradation)`` degrees (blur, noise for the released models).

        Example:
            >>> net = MMRealSR(num_feat=8, num_block=1, num_grow_ch=4)
            >>> net.estimate_degrees(torch.rand(2, 3, 8, 8)).shape
            torch.Size([2, 2])
        """
        estimated: torch.Tensor = self.de_net(self._fold(x))
        return estimated

    def _modulation(self, estimated: torch.Tensor) -> torch.Tensor:
        # Chosen degrees replace the estimate column by column (Python constants: no tensor
        # built on the host, and torch.compile specialises on them).
        columns = [
            estimated[:, i : i + 1] if d is None else torch.full_like(estimated[:, i : i + 1], d)
            for i, d in enumerate(self._degrees)
        ]
        chosen = columns[0] if len(columns) == 1 else torch.cat(columns, dim=1)
        embedding: torch.Tensor = self.dd_embed(chosen)
        return embedding

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        folded = self._fold(x)
        embedding = self._modulation(self.de_net(folded))
        feat = self.conv_first(folded)
        trunk = feat
        for block, modulate in zip(self.body, self.am_list, strict=True):
            trunk = modulate(block(trunk), embedding)
        feat = feat + self.conv_body(trunk)
        feat = _lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = _lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out: torch.Tensor = self.conv_last(_lrelu(self.conv_hr(feat)))
        if self.fold > 1:
            out = out[..., : height * self.scale, : width * self.scale]
        return out


_PAPER = Paper(
    title="Metric Learning based Interactive Modulation for Real-World Super-Resolution",
    venue="ECCV",
    year=2022,
    arxiv="2205.05065",
)

register_model(
    ModelSpec(
        name="mmrealsr",
        family="mmrealsr",
        builder=MMRealSR,
        scales=(1, 2, 4),
        default_scale=4,
        paper=_PAPER,
        code_license="BSD-3-Clause",
        description="MM-RealSR: RRDBNet modulated by estimated or chosen blur and noise degrees",
        task="real-world",
        colour="rgb",
        defaults={},
        # x1 folds the input by 4 and x2 by 2 (each pads inside); x4 takes any size: 4 serves all.
        size_multiple=4,
    )
)


_LAYOUTS = {
    "official": (
        "conv_first.weight",
        "body.0.rdb1.conv1.weight",
        "am_list.0.fc.0.weight",
        "conv_body.weight",
        "conv_up1.weight",
        "conv_up2.weight",
        "conv_hr.weight",
        "conv_last.weight",
        "de_net.conv_first.0.weight",
        "de_net.body.0.0.conv1.weight",
        "de_net.fc_degree.0.0.weight",
        "dd_embed.0.weight",
    )
}


def _estimator_stages(shapes: Shapes) -> tuple[list[int], list[int], list[int]] | None:
    """Read the estimator's stages from its first branch: runs of residual blocks of one width,
    each closed by a convolution (read as stride 2) or by a change of width."""
    stages: list[tuple[int, int, int]] = []  # (width, blocks, downscale)
    width, count = 0, 0
    for i in range(len(shapes)):
        block = f"de_net.body.0.{i}.conv1.weight"
        if shapes.has(block):
            if count and shapes.dim(block) != width:
                stages.append((width, count, 1))
                count = 0
            width, count = shapes.dim(block), count + 1
        elif shapes.has(f"de_net.body.0.{i}.weight"):
            if not count:
                return None  # a convolution without blocks before it: not a layout srzoo builds
            stages.append((width, count, 2))
            count = 0
        else:
            break
    if count:
        stages.append((width, count, 1))
    if not stages:
        return None
    return [s[0] for s in stages], [s[1] for s in stages], [s[2] for s in stages]


def detect_mmrealsr(shapes: Shapes) -> Detected | None:
    """Recognise an MM-RealSR checkpoint from keys and shapes.

    Reads ``num_feat``, ``num_block``, ``num_grow_ch``, ``num_degradation`` and the estimator's
    stages. The image channels are taken equal to the output channels, so the first
    convolution's input (the channels times the fold squared) gives the scale: 4 (no fold),
    2 or 1.

    Left to defaults (the weights cannot tell): ``degradation_degree_actv`` (``"sigmoid"``, as
    released); a convolution between estimator stages is read as a stride-2 downscaling (the
    released layout; a stride-1 width change has the same shapes). Stages are read as maximal
    runs of blocks of one width, which builds the same network as the authors' lists (the
    released ``(64, 64, 64, 128)`` / ``(2, 2, 2, 2)`` / ``(1, 1, 2, 1)`` reads as ``(64, 128)`` /
    ``(6, 2)`` / ``(2, 1)``).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an MM-RealSR network.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    num_block = shapes.count(r"body\.(\d+)\.rdb1\.conv1\.weight")
    num_degradation = shapes.dim("dd_embed.0.weight", 1)
    if shapes.count(r"am_list\.(\d+)\.fc\.0\.weight") != num_block or num_degradation < 1:
        return None
    if shapes.count(r"de_net\.conv_first\.(\d+)\.weight") != num_degradation:
        return None
    out_ch, folded = shapes.dim("conv_last.weight"), shapes.dim("conv_first.weight", 1)
    scale = next((s for s, f in _FOLDS.items() if out_ch * f * f == folded), 0)
    stages = _estimator_stages(shapes)
    if not scale or stages is None or min(num_block, out_ch) < 1:
        return None
    args: dict[str, object] = {
        "in_channels": out_ch,
        "out_channels": out_ch,
        "num_feat": shapes.dim("conv_first.weight"),
        "num_block": num_block,
        "num_grow_ch": shapes.dim("body.0.rdb1.conv1.weight"),
        "num_degradation": num_degradation,
        "degradation_degree_actv": "sigmoid",
        "num_feats": tuple(stages[0]),
        "num_blocks": tuple(stages[1]),
        "downscales": tuple(stages[2]),
    }
    return Detected("mmrealsr", scale, args, "official")


register_detector("mmrealsr", detect_mmrealsr, layouts=_LAYOUTS)
