"""EDSR and EDSR-baseline.

Paper: Lim, Son, Kim, Nah, Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR Workshops 2017, arXiv:1707.02921.

Parameter names follow sanghyun-son/EDSR-PyTorch ``src/model/edsr.py`` (also used by torchSR), so
the official ``edsr_x4-4f62e9ef.pt`` files load unchanged. BasicSR's EDSR layout
(``conv_first`` / ``body.N.conv1`` / ``conv_after_body`` / ``upsample`` / ``conv_last``) is
converted on load.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..registry import ModelSpec, Paper, StateDict, register_model
from ._blocks import DIV2K_RGB_MEAN, MeanShift, Upsampler, conv3x3, fill_mean_shifts, rename_keys

__all__ = ["EDSR", "ResBlock", "convert_edsr"]


class ResBlock(nn.Module):
    """Conv-ReLU-conv residual block without batch norm, residual scaled by ``res_scale``.

    Args:
        n_feats: Feature channels.
        res_scale: Multiplier of the residual branch (0.1 in the large EDSR).
    """

    def __init__(self, *, n_feats: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats), nn.ReLU(inplace=True), conv3x3(n_feats, n_feats)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self.body(x)
        if self.res_scale != 1.0:
            res = res * self.res_scale
        return res + x


class EDSR(nn.Module):
    """Enhanced Deep Super-Resolution network.

    Takes RGB in [0, 1]; the 0..255 range and DIV2K mean shift the official weights expect are
    applied inside.

    Args:
        scale: Upscaling factor (2, 3 or 4 in the paper; any power of two works).
        n_resblocks: Residual blocks (32 for EDSR, 16 for the baseline).
        n_feats: Feature channels (256 for EDSR, 64 for the baseline).
        res_scale: Residual scaling (0.1 for EDSR, 1 for the baseline).
        rgb_range: Value range the network works in.
        rgb_mean: Mean colour removed before the network and added back after it.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        n_resblocks: int = 32,
        n_feats: int = 256,
        res_scale: float = 0.1,
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=-1)
        self.add_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=1)
        self.head = nn.Sequential(conv3x3(3, n_feats))
        self.body = nn.Sequential(
            *(ResBlock(n_feats=n_feats, res_scale=res_scale) for _ in range(n_resblocks)),
            conv3x3(n_feats, n_feats),
        )
        self.tail = nn.Sequential(Upsampler(scale=scale, n_feats=n_feats), conv3x3(n_feats, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x * self.rgb_range))
        x = self.body(x) + x
        return self.add_mean(self.tail(x)) / self.rgb_range


_BASICSR_RULES = (
    (r"conv_first\.", "head.0."),
    (r"body\.(\d+)\.conv1\.", r"body.\1.body.0."),
    (r"body\.(\d+)\.conv2\.", r"body.\1.body.2."),
    (r"upsample\.", "tail.0."),
    (r"conv_last\.", "tail.1."),
)


def convert_edsr(state: StateDict, module: nn.Module) -> StateDict:
    """Map an EDSR state dict in the official, torchSR or BasicSR layout to :class:`EDSR` keys.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` etc.).
        module: The :class:`EDSR` it is meant for (gives the block count and mean shift).

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_edsr(torch.load("EDSR_Mx4_f64b16_DIV2K_official-0c287733.pth")["params"], net)
    """
    if "conv_first.weight" in state:
        n_blocks = len(module.body) - 1 if isinstance(module, EDSR) else 0
        rules = ((r"conv_after_body\.", f"body.{n_blocks}."), *_BASICSR_RULES)
        state = rename_keys(state, rules)
        # BasicSR keeps the mean as a constant, not a layer: supply the layers it implies.
        fill_mean_shifts(state, module)
        return state
    # The official layout stores its mean shifts; if they are absent the network was trained
    # without them, and loading must fail loudly rather than add a shift it never had.
    return dict(state)


_PAPER = Paper(
    title="Enhanced Deep Residual Networks for Single Image Super-Resolution",
    venue="CVPR Workshops",
    year=2017,
    arxiv="1707.02921",
)

register_model(
    ModelSpec(
        name="edsr",
        family="edsr",
        builder=EDSR,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="EDSR: 32 residual blocks, 256 features, residual scaling 0.1",
        defaults={"n_resblocks": 32, "n_feats": 256, "res_scale": 0.1},
        converter=convert_edsr,
    )
)
register_model(
    ModelSpec(
        name="edsr-baseline",
        family="edsr",
        builder=EDSR,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="EDSR baseline: 16 residual blocks, 64 features",
        defaults={"n_resblocks": 16, "n_feats": 64, "res_scale": 1.0},
        converter=convert_edsr,
    )
)
