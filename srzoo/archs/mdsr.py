"""MDSR: the multi-scale deep super-resolution network.

Paper: Lim, Son, Kim, Nah, Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR Workshops 2017, arXiv:1707.02921.

Parameter names follow sanghyun-son/EDSR-PyTorch ``src/model/mdsr.py``. One MDSR checkpoint
holds a body shared by every scale and, per scale, a pre-processing module of two 5x5 residual
blocks (``pre_process.<i>``) and an upsampler (``upsample.<i>``), ``i`` being the scale's index
in the scales the network was trained with (x2, x3, x4). :class:`MDSR` holds the branch of one
scale under that same index, so its keys are the official keys of that scale, and
:func:`convert_mdsr` drops the other branches' keys: ``srzoo.load("mdsr", scale=s,
weights=path)`` reads one official file at any of its scales.

Weights: none registered. The official files (``mdsr-4a78bedf.pt``, ``mdsr_baseline-a00cab12.pt``
on the EDSR-PyTorch model server) carry an 8-hex-digit prefix in their names, but no full sha256
or byte size of them is published; a downloaded copy loads with ``weights=path``.

Receptive field: the head, the two 5x5 blocks (8 pixels), two 3x3 convolutions per body block
and the body's closing convolution reach ``2 * n_resblocks + 10`` low-resolution pixels; the
upsampler and the last convolution add 2 at every scale (172 for 80 blocks).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import UnsupportedScaleError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    StateDict,
    register_detector,
    register_model,
)
from ._blocks import (
    DIV2K_RGB_MEAN,
    MeanShift,
    Upsampler,
    conv3x3,
    image_forward,
    receptive_radius,
    upsampler_steps,
)

__all__ = ["MDSR", "convert_mdsr", "detect_mdsr"]


class _ResBlock(nn.Module):
    """Conv-ReLU-conv residual block of EDSR-PyTorch (``body.0``, ``body.2``), any odd kernel."""

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


class MDSR(nn.Module):
    """Multi-scale EDSR, holding the shared body and the branch of one scale.

    Takes RGB in [0, 1]; the 0..255 range and DIV2K mean shift the official weights expect are
    applied inside.

    Args:
        scale: Upscaling factor; one of ``branch_scales``.
        n_resblocks: Residual blocks of the shared body (80 for MDSR, 16 for its baseline).
        n_feats: Feature channels (64).
        branch_scales: The scales of the checkpoint's branches, in order: their position is the
            index in the ``pre_process`` and ``upsample`` keys.
        rgb_range: Value range the network works in.
        rgb_mean: Mean colour removed before the network and added back after it.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        n_resblocks: int = 80,
        n_feats: int = 64,
        branch_scales: Sequence[int] = (2, 3, 4),
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        branch_scales = tuple(branch_scales)
        if scale not in branch_scales:
            raise UnsupportedScaleError("MDSR", scale, branch_scales)
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        self.rgb_range = rgb_range
        self.branch = str(branch_scales.index(scale))
        self.sub_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=-1)
        self.add_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=1)
        self.head = nn.Sequential(conv3x3(3, n_feats))
        # A dict keyed by the branch index gives the official keys (pre_process.2.0.body.0...).
        self.pre_process = nn.ModuleDict(
            {self.branch: nn.Sequential(_ResBlock(n_feats, 5), _ResBlock(n_feats, 5))}
        )
        self.body = nn.Sequential(
            *(_ResBlock(n_feats, 3) for _ in range(n_resblocks)), conv3x3(n_feats, n_feats)
        )
        self.upsample = nn.ModuleDict({self.branch: Upsampler(scale=scale, n_feats=n_feats)})
        self.tail = nn.Sequential(conv3x3(n_feats, 3))
        # head, two 5x5 blocks, the body's 3x3 pairs and closing conv at LR; upsampler; tail.
        self.receptive_field: int | None = receptive_radius(
            [("conv", 1 + 8 + 2 * n_resblocks + 1), *upsampler_steps(scale), ("conv", 1)]
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pre_process[self.branch](self.head(self.sub_mean(x * self.rgb_range)))
        h = self.body(h) + h
        return self.add_mean(self.tail(self.upsample[self.branch](h))) / self.rgb_range


_BRANCH_KEY = re.compile(r"(pre_process|upsample)\.(\d+)\.")


def convert_mdsr(state: StateDict, module: nn.Module) -> StateDict:
    """Keep the shared tensors and the branch of ``module``'s scale; drop the other branches.

    Args:
        state: An official MDSR checkpoint's tensors (all branches), or srzoo's own (one).
        module: The :class:`MDSR` of one scale they are meant for.

    Returns:
        The state dict in the module's keys.

    Example:
        >>> sorted({k.split(".")[1] for k in convert_mdsr(official, mdsr_x4) if "upsample" in k})
        ['2']
    """
    branch = getattr(module, "branch", None)
    out: StateDict = {}
    for key, value in state.items():
        match = _BRANCH_KEY.match(key)
        if match is None or branch is None or match.group(2) == branch:
            out[key] = value
    return out


_PAPER = Paper(
    title="Enhanced Deep Residual Networks for Single Image Super-Resolution",
    venue="CVPR Workshops",
    year=2017,
    arxiv="1707.02921",
)

register_model(
    ModelSpec(
        name="mdsr",
        family="mdsr",
        builder=MDSR,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="MDSR: multi-scale EDSR, 80 shared blocks, one branch per scale",
        defaults={"n_resblocks": 80, "n_feats": 64},
        converter=convert_mdsr,
    )
)


_LAYOUTS = {
    "official": (
        "head.0.weight",
        "body.0.body.0.weight",
        "tail.0.weight",
    ),
}
_PAPER_BRANCHES = (2, 3, 4)


def detect_mdsr(shapes: Shapes) -> Detected | None:
    """Recognise an MDSR checkpoint (EDSR-PyTorch keys) from its shapes.

    Reads ``n_resblocks``, ``n_feats`` and each branch's scale (its upsampler's stages). A file
    with several branches serves each of their scales (``Detected.scales``); x4 is the default
    when present, else the largest. A file holding only some branches (as srzoo saves one
    scale) keeps EDSR-PyTorch's branch order (2, 3, 4) for the positions it lacks. Not in the
    weights, so defaults: ``rgb_range`` 255 and the DIV2K ``rgb_mean``.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an MDSR.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    branches = shapes.indices(r"upsample\.(\d+)\.0\.weight")
    n_feats = shapes.dim("head.0.weight")
    n = shapes.count(r"body\.(\d+)\.body\.0\.weight")
    if not branches or not n or not shapes.has(f"body.{n}.weight"):
        return None
    found = {
        b: shapes.stacked_shuffle_scale(f"upsample.{b}.", ".weight", n_feats) for b in branches
    }
    if not all(found.values()) or any(
        not shapes.has(f"pre_process.{b}.0.body.0.weight") for b in found
    ):
        return None
    size = max(len(_PAPER_BRANCHES), branches[-1] + 1)
    order = [
        found.get(i, _PAPER_BRANCHES[i] if i < len(_PAPER_BRANCHES) else 0) for i in range(size)
    ]
    if len(set(order)) != len(order) or 0 in order:
        return None
    served = tuple(sorted(found.values()))
    scale = 4 if 4 in served else served[-1]
    args = {"n_resblocks": n, "n_feats": n_feats, "branch_scales": tuple(order)}
    return Detected("mdsr", scale, args, "official", scales=served if len(served) > 1 else ())


register_detector("mdsr", detect_mdsr, layouts=_LAYOUTS)
