"""CARN and CARN-M: cascading residual networks.

Paper: Ahn, Kang, Sohn, "Fast, Accurate, and Lightweight Super-Resolution with Cascading
Residual Network", ECCV 2018, arXiv:1803.08664.

Parameter names follow nmhkahn/CARN-pytorch (``carn/model/carn.py``, ``carn_m.py`` and
``ops.py``; torchSR's ``carn`` / ``carn_m`` use the same keys and forward). The official
checkpoints are multi-scale: one file holds the shared body and three upsamplers
(``upsample.up2`` / ``up3`` / ``up4``), and the original network picks one per call with
``forward(x, scale)``. An srzoo module is built for one scale and holds only that upsampler;
:func:`convert_carn` keeps the matching branch of a multi-scale file (and renames the
``upsample.up`` branch of a single-scale one), so ``srzoo.load("carn-m", scale=s, weights=path)``
works with the official file at every scale.

CARN-M (mobile) differs from CARN in its blocks: one efficient residual unit (grouped 3x3,
grouped 3x3, 1x1) applied three times with shared weights, and grouped upsampling convolutions.

Receptive field: the entry convolution and two 3x3 convolutions per residual unit (nine units)
reach 19 low-resolution pixels; the upsampler and the exit convolution add 2 at every scale
(21 in all).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError, UnsupportedScaleError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    StateDict,
    WeightSpec,
    register_detector,
    register_model,
    set5_set14,
)
from ._blocks import (
    DIV2K_RGB_MEAN,
    MeanShift,
    Upsampler,
    image_forward,
    receptive_radius,
    upsampler_steps,
)

__all__ = [
    "CARN",
    "CARNBlock",
    "CARNUpsampler",
    "EResidualBlock",
    "ResidualBlock",
    "convert_carn",
    "detect_carn",
]


class _Shifter(nn.Module):
    """Holds a :class:`MeanShift` as ``shifter``, the attribute name of the official keys."""

    def __init__(self, *, rgb_mean: Sequence[float], sign: int) -> None:
        super().__init__()
        # CARN works in [0, 1]: the mean is subtracted in those units (rgb_range 1).
        self.shifter = MeanShift(rgb_range=1.0, rgb_mean=rgb_mean, sign=sign)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class _ConvReLU(nn.Module):
    """Convolution then ReLU, kept in ``body`` as the official ``BasicBlock`` does."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class ResidualBlock(nn.Module):
    """CARN's residual unit: conv-ReLU-conv, identity added, then ReLU.

    Args:
        n_feats: Feature channels.
    """

    def __init__(self, *, n_feats: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place on the body's fresh output: saves two feature-map allocations per unit.
        return F.relu(self.body(x).add_(x), inplace=True)


class EResidualBlock(nn.Module):
    """CARN-M's efficient residual unit: grouped 3x3, grouped 3x3, pointwise 1x1, with ReLUs.

    Args:
        n_feats: Feature channels.
        group: Groups of the 3x3 convolutions.
    """

    def __init__(self, *, n_feats: int, group: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feats, n_feats, 3, padding=1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 3, padding=1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(n_feats, n_feats, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place on the body's fresh output: saves two feature-map allocations per unit.
        return F.relu(self.body(x).add_(x), inplace=True)


class _Cascade(nn.Module):
    """The cascading pattern shared by the block level and the network level.

    Unit ``i`` sees the output of the previous 1x1 fusion; its output is concatenated onto
    everything seen so far and fused back to ``n_feats`` by ``c{i}`` (a 1x1 conv with ReLU).
    Subclasses name the units ``b1 .. bN`` and the fusions ``c1 .. cN`` as the official keys do.
    """

    depth: int
    shared_unit: bool

    def _add_fusions(self, n_feats: int) -> None:
        for i in range(1, self.depth + 1):
            self.add_module(f"c{i}", _ConvReLU((i + 1) * n_feats, n_feats, 1))

    def _cascade(self, x: torch.Tensor) -> torch.Tensor:
        concat = out = x
        for i in range(1, self.depth + 1):
            unit = getattr(self, "b1" if self.shared_unit else f"b{i}")
            concat = torch.cat([concat, unit(out)], dim=1)
            out = getattr(self, f"c{i}")(concat)
        return out


class CARNBlock(_Cascade):
    """A cascading block: three residual units with cascading 1x1 fusions.

    Args:
        n_feats: Feature channels.
        mobile: CARN-M's block (one shared efficient residual unit) instead of CARN's
            (three separate residual units).
        group: Groups of the efficient unit's 3x3 convolutions (CARN-M only).
        n_units: Residual units per block (3 in the paper).
    """

    def __init__(
        self, *, n_feats: int, mobile: bool = False, group: int = 1, n_units: int = 3
    ) -> None:
        super().__init__()
        self.depth = n_units
        # CARN-M is recursive: the official block calls its single unit b1 three times.
        self.shared_unit = mobile
        if mobile:
            self.b1: nn.Module = EResidualBlock(n_feats=n_feats, group=group)
        else:
            for i in range(1, n_units + 1):
                self.add_module(f"b{i}", ResidualBlock(n_feats=n_feats))
        self._add_fusions(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._cascade(x)


class CARNUpsampler(nn.Module):
    """Sub-pixel upsampler of CARN: (conv, ReLU, shuffle 2) per factor of two, or one x3 stage.

    Indices match the official checkpoints (``body.0``, ``body.3`` for x4).

    Args:
        n_feats: Feature channels.
        scale: 2, 3, 4 or 8.
        group: Groups of the convolutions (4 in CARN-M).
    """

    def __init__(self, *, n_feats: int, scale: int, group: int = 1) -> None:
        super().__init__()
        if scale not in (2, 3, 4, 8):
            raise UnsupportedScaleError("CARN", scale, (2, 3, 4, 8), what="its upsampler")
        self.body = Upsampler(scale=scale, n_feats=n_feats, groups=group, relu=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CARN(_Cascade):
    """Cascading Residual Network (CARN) and its mobile variant (CARN-M).

    Takes RGB in [0, 1]; the DIV2K mean shift of the official weights is applied inside.

    Args:
        scale: Upscaling factor (2, 3 or 4 for the official multi-scale weights).
        n_feats: Feature channels (64 in the paper).
        mobile: Build CARN-M (efficient, weight-shared residual units) instead of CARN.
        group: Groups of the efficient units' 3x3 convolutions and of the upsampler
            (4 for CARN-M, 1 for CARN).
        n_blocks: Cascading blocks (3 in the paper).
        n_units: Residual units per block (3 in the paper).
        rgb_mean: Mean colour removed before the network and added back after it.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        n_feats: int = 64,
        mobile: bool = False,
        group: int = 1,
        n_blocks: int = 3,
        n_units: int = 3,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        if n_feats % group != 0:
            raise ArgumentError(f"n_feats={n_feats} is not divisible by group={group}")
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        self.depth = n_blocks
        self.shared_unit = False
        self.sub_mean = _Shifter(rgb_mean=rgb_mean, sign=-1)
        self.add_mean = _Shifter(rgb_mean=rgb_mean, sign=1)
        self.entry = nn.Conv2d(3, n_feats, 3, padding=1)
        for i in range(1, n_blocks + 1):
            block = CARNBlock(n_feats=n_feats, mobile=mobile, group=group, n_units=n_units)
            self.add_module(f"b{i}", block)
        self._add_fusions(n_feats)
        self._branch = f"up{scale}"
        self.upsample = nn.ModuleDict(
            {self._branch: CARNUpsampler(n_feats=n_feats, scale=scale, group=group)}
        )
        self.exit = nn.Conv2d(n_feats, 3, 3, padding=1)
        # The entry conv and two 3x3 convs per residual unit (CARN-M's efficient unit too; the
        # fusions are 1x1) at LR, the upsampler, the exit conv at HR.
        self.receptive_field: int | None = receptive_radius(
            [("conv", 1 + 2 * n_units * n_blocks), *upsampler_steps(scale), ("conv", 1)]
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.entry(self.sub_mean(x))
        x = self._cascade(x)
        x = self.upsample[self._branch](x)
        return self.add_mean(self.exit(x))


_BRANCH = re.compile(r"upsample\.up(\d*)\.")


def convert_carn(state: StateDict, module: nn.Module) -> StateDict:
    """Keep the upsampler of ``module``'s scale from a CARN / CARN-M state dict.

    A multi-scale checkpoint (the official ``carn.pth`` / ``carn_m.pth``, torchSR's ``carn.pt``)
    holds ``upsample.up2`` / ``up3`` / ``up4``: the other scales' branches are dropped. A
    single-scale one (trained upstream with ``--scale s``) holds ``upsample.up``: it is renamed
    to the module's branch. Everything else is already in srzoo's keys.

    Args:
        state: The checkpoint's tensors (already unwrapped).
        module: The :class:`CARN` the tensors are meant for (gives the scale).

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_carn(torch.load("carn_m.pth"), srzoo.create("carn-m", 3))
    """
    scale = int(getattr(module, "scale", 0))
    out: StateDict = {}
    for key, value in state.items():
        match = _BRANCH.match(key)
        if match is None:
            out[key] = value
        elif match.group(1) == "":
            out[f"upsample.up{scale}.{key[match.end() :]}"] = value
        elif int(match.group(1)) == scale:
            out[key] = value
    return out


_PAPER = Paper(
    title="Fast, Accurate, and Lightweight Super-Resolution with Cascading Residual Network",
    venue="ECCV",
    year=2018,
    arxiv="1803.08664",
)
_PAPER_TABLE = "paper (arXiv:1803.08664v5), benchmark comparison table"
_REPO = "https://github.com/nmhkahn/CARN-pytorch/raw/master/checkpoint"


# (Set5, Set14) Y-PSNR the authors report per scale.
_CARN_PSNR = {2: (37.76, 33.52), 3: (34.29, 30.29), 4: (32.13, 28.60)}
_CARN_M_PSNR = {2: (37.53, 33.26), 3: (33.99, 30.08), 4: (31.92, 28.42)}

register_model(
    ModelSpec(
        name="carn",
        family="carn",
        builder=CARN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="CARN: 3 cascading blocks x 3 residual units, 64 features, multi-scale",
        defaults={"n_feats": 64, "mobile": False, "group": 1},
        converter=convert_carn,
        weights=tuple(
            WeightSpec(
                scale=s,
                source=f"{_REPO}/carn.pth",
                sha256=None,
                size=None,
                input_range="0-1",
                train_data="DIV2K",
                license="MIT",
                metrics=set5_set14(s, *_CARN_PSNR[s], source=_PAPER_TABLE),
                sha256_note=(
                    "no sha256 is published and the file (over 4 MiB) was not available to hash; "
                    "git blob 2b9fb1eb75a2fdd47c1a4cc75bc505a8fa4fb504 at nmhkahn/CARN-pytorch "
                    "commit 40d3514 identifies it. One multi-scale file serves x2, x3 and x4."
                ),
            )
            for s in (2, 3, 4)
        ),
    )
)
register_model(
    ModelSpec(
        name="carn-m",
        family="carn",
        builder=CARN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="CARN-M: recursive efficient residual units, group-4 convolutions, multi-scale",
        defaults={"n_feats": 64, "mobile": True, "group": 4},
        converter=convert_carn,
        weights=tuple(
            WeightSpec(
                scale=s,
                source=f"{_REPO}/carn_m.pth",
                sha256="d48a759a84509351facb6b7c6d5bd6edec98b98519b8c464ee4ab44d2ba964ff",
                size=1670695,
                input_range="0-1",
                train_data="DIV2K",
                license="MIT",
                metrics=set5_set14(s, *_CARN_M_PSNR[s], source=_PAPER_TABLE),
                sha256_note=(
                    "computed from the git blob checkpoint/carn_m.pth at nmhkahn/CARN-pytorch "
                    "commit 40d3514; one multi-scale file serves x2, x3 and x4"
                ),
            )
            for s in (2, 3, 4)
        ),
    )
)


_LAYOUTS = {
    "official": (
        "entry.weight",
        "b1.c1.body.0.weight",
        "c1.body.0.weight",
        "exit.weight",
    ),
}


def detect_carn(shapes: Shapes) -> Detected | None:
    """Recognise a CARN or CARN-M checkpoint (nmhkahn/CARN-pytorch / torchSR keys).

    Reads ``n_feats``, ``mobile`` (one shared efficient unit per block), ``group`` (from the
    grouped convolutions' input width), ``n_blocks``, ``n_units`` and the upsamplers. A
    multi-scale file (``upsample.up2`` / ``up3`` / ``up4``) serves each of those scales
    (``Detected.scales``; x4 is the default when present, else the largest); a single-scale one
    (``upsample.up``) has its scale read from its stages. Not in the weights, so the default:
    the DIV2K ``rgb_mean`` (the mean-shift tensors are loaded as stored).

    CARN-M networks are named ``carn-m``, the others ``carn``.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a CARN.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    n_feats = shapes.dim("entry.weight")
    blocks = shapes.indices(r"b(\d+)\.c1\.body\.0\.weight")
    units = shapes.indices(r"b1\.c(\d+)\.body\.0\.weight")
    if blocks != list(range(1, len(blocks) + 1)) or units != list(range(1, len(units) + 1)):
        return None
    mobile = shapes.has("b1.b1.body.4.weight") and not shapes.has("b1.b2.body.0.weight")
    per_group = shapes.dim("b1.b1.body.0.weight", 1)
    if not n_feats or not per_group or n_feats % per_group:
        return None
    group = n_feats // per_group if mobile else 1
    branches = {}
    for suffix in dict.fromkeys(k.split(".")[1] for k in shapes if k.startswith("upsample.")):
        scale = shapes.stacked_shuffle_scale(f"upsample.{suffix}.body.", ".weight", n_feats)
        if not scale or (suffix != "up" and suffix != f"up{scale}"):
            return None
        branches[suffix] = scale
    if not branches or ("up" in branches and len(branches) > 1):
        return None
    served = tuple(sorted(branches.values()))
    args = {
        "n_feats": n_feats,
        "mobile": mobile,
        "group": group,
        "n_blocks": len(blocks),
        "n_units": len(units),
    }
    return Detected(
        "carn-m" if mobile else "carn",
        4 if 4 in served else served[-1],
        args,
        "official" if "up" not in branches else "official-single-scale",
        scales=served if len(served) > 1 else (),
    )


register_detector(
    "carn",
    detect_carn,
    layouts={**_LAYOUTS, "official-single-scale": _LAYOUTS["official"]},
)
