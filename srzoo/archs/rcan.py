"""RCAN: residual channel attention networks.

Paper: Zhang, Li, Li, Wang, Zhong, Fu, "Image Super-Resolution Using Very Deep Residual Channel
Attention Networks", ECCV 2018, arXiv:1807.02758.

Parameter names follow yulunzhang/RCAN (identical to EDSR-PyTorch ``src/model/rcan.py``, torchSR
and spandrel), so the official ``RCAN_BIX4.pt`` files load unchanged. BasicSR's RCAN layout
(``conv_first`` / ``body.G.residual_group.B.rcab`` / ``conv_after_body`` / ``upsample`` /
``conv_last``) is converted on load.

The registered weights are torchSR's conversions of the authors' ``RCAN_BIX{2,3,4,8}.pt``: flat
state dicts in the official keys.

RCAN declares no receptive-field radius (``receptive_field = None``): every block's channel
attention averages its features over the whole image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

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
from ._blocks import DIV2K_RGB_MEAN, EDSRFrame, conv3x3, convert_basicsr_frame

__all__ = ["RCAB", "RCAN", "CALayer", "ResidualGroup", "convert_rcan", "detect_rcan"]


class CALayer(nn.Module):
    """Channel attention: global average pool, squeeze, excite, rescale.

    Args:
        channels: Feature channels.
        reduction: Squeeze ratio of the bottleneck.
    """

    def __init__(self, *, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class RCAB(nn.Module):
    """Residual channel attention block: conv-ReLU-conv-attention plus identity.

    Args:
        n_feats: Feature channels.
        reduction: Channel-attention squeeze ratio.
    """

    def __init__(self, *, n_feats: int, reduction: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(n_feats, n_feats),
            nn.ReLU(inplace=True),
            conv3x3(n_feats, n_feats),
            CALayer(channels=n_feats, reduction=reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    """``n_resblocks`` RCABs and a convolution, with a skip over the group.

    Args:
        n_feats: Feature channels.
        n_resblocks: RCABs in the group.
        reduction: Channel-attention squeeze ratio.
    """

    def __init__(self, *, n_feats: int, n_resblocks: int, reduction: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *(RCAB(n_feats=n_feats, reduction=reduction) for _ in range(n_resblocks)),
            conv3x3(n_feats, n_feats),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class RCAN(EDSRFrame):
    """Residual Channel Attention Network.

    Takes RGB in [0, 1]; the 0..255 range and DIV2K mean shift of the official weights are
    applied inside.

    Args:
        scale: Upscaling factor (2, 3, 4 or 8).
        n_resgroups: Residual groups.
        n_resblocks: RCABs per group.
        n_feats: Feature channels.
        reduction: Channel-attention squeeze ratio.
        rgb_range: Value range the network works in.
        rgb_mean: Mean colour removed before the network and added back after it.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        n_resgroups: int = 10,
        n_resblocks: int = 20,
        n_feats: int = 64,
        reduction: int = 16,
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__(
            scale=scale,
            n_feats=n_feats,
            rgb_range=rgb_range,
            rgb_mean=rgb_mean,
            make_blocks=lambda: (
                ResidualGroup(n_feats=n_feats, n_resblocks=n_resblocks, reduction=reduction)
                for _ in range(n_resgroups)
            ),
            # Channel attention averages over the whole image (CALayer).
            blocks_reach=None,
        )


def convert_rcan(state: StateDict, module: nn.Module) -> StateDict:
    """Map an RCAN state dict in the official, torchSR, spandrel or BasicSR layout to srzoo keys.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` etc.).
        module: The :class:`RCAN` it is meant for.

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_rcan(torch.load("RCAN_BIX4.pt"), net)
    """
    first = module.body[0] if isinstance(module, RCAN) else None
    n_blocks = len(first.body) - 1 if isinstance(first, ResidualGroup) else 0
    body_rules = (
        (
            r"body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.1\.",
            r"body.\1.body.\2.body.3.conv_du.0.",
        ),
        (
            r"body\.(\d+)\.residual_group\.(\d+)\.rcab\.3\.attention\.3\.",
            r"body.\1.body.\2.body.3.conv_du.2.",
        ),
        (r"body\.(\d+)\.residual_group\.(\d+)\.rcab\.", r"body.\1.body.\2.body."),
        (r"body\.(\d+)\.conv\.", rf"body.\1.body.{n_blocks}."),
    )
    return convert_basicsr_frame(state, module, body_rules)


_RCAN_TABLE = "Zhang et al. 2018 (arXiv:1807.02758), Table 3 (BI degradation): RCAN"
# Paper numbers at x8 are left out: they could not be checked against a second copy of the table.
_RCAN_REPORTED = {2: (38.27, 34.12), 3: (34.74, 30.65), 4: (32.63, 28.87)}


def _rcan_weights(scale: int) -> WeightSpec:
    reported = _RCAN_REPORTED.get(scale)
    metrics = set5_set14(scale, *reported, source=_RCAN_TABLE) if reported else ()
    return WeightSpec(
        scale=scale,
        source=f"https://github.com/Coloquinte/torchSR/releases/download/v1.0.3/rcan_x{scale}.pt",
        sha256=None,
        input_range="0-255 (RGB, DIV2K mean shift inside the network)",
        train_data=f"DIV2K, bicubic x{scale}",
        license="unspecified (yulunzhang/RCAN publishes no licence; torchSR's code is MIT)",
        metrics=metrics,
        sha256_note=(
            "the authors publish RCAN_BIX*.pt only inside a Google Drive / Dropbox zip, which a "
            "plain HTTP client cannot fetch, and no byte-identical mirror with a published hash "
            f"is known; this is torchSR's conversion of RCAN_BIX{scale}.pt (GitHub release "
            "v1.0.3; a flat state dict in the official keys), for which no checksum or size is "
            "published. srzoo records the sha256 of the first download and checks the cached "
            "copy against it"
        ),
    )


register_model(
    ModelSpec(
        name="rcan",
        family="rcan",
        builder=RCAN,
        scales=(2, 3, 4, 8),
        paper=Paper(
            title="Image Super-Resolution Using Very Deep Residual Channel Attention Networks",
            venue="ECCV",
            year=2018,
            arxiv="1807.02758",
        ),
        code_license="MIT",
        description="RCAN: 10 residual groups x 20 channel-attention blocks, 64 features",
        defaults={"n_resgroups": 10, "n_resblocks": 20, "n_feats": 64, "reduction": 16},
        converter=convert_rcan,
        weights=tuple(_rcan_weights(s) for s in (2, 3, 4, 8)),
    )
)


_LAYOUTS = {
    "official": (
        "head.0.weight",
        "body.0.body.0.body.0.weight",
        "body.0.body.0.body.3.conv_du.0.weight",
        "tail.0.0.weight",
        "tail.1.weight",
    ),
    "basicsr": (
        "conv_first.weight",
        "body.0.residual_group.0.rcab.0.weight",
        "body.0.residual_group.0.rcab.3.attention.1.weight",
        "body.0.conv.weight",
        "conv_after_body.weight",
        "upsample.0.weight",
        "conv_last.weight",
    ),
}


def detect_rcan(shapes: Shapes) -> Detected | None:
    """Recognise an RCAN checkpoint (yulunzhang/RCAN, torchSR, spandrel or BasicSR keys).

    Reads ``n_resgroups``, ``n_resblocks``, ``n_feats``, ``reduction`` (the channel
    attention's squeeze) and the scale (the upsampler's stages). Not in the weights, so
    defaults: ``rgb_range`` 255 and the DIV2K ``rgb_mean`` (the official mean-shift tensors are
    loaded as stored).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an RCAN.
    """
    if shapes.has(*_LAYOUTS["official"]):
        layout, first = "official", "head.0.weight"
        groups = shapes.count(r"body\.(\d+)\.body\.0\.body\.0\.weight")
        blocks = shapes.count(r"body\.0\.body\.(\d+)\.body\.0\.weight")
        squeeze = "body.0.body.0.body.3.conv_du.0.weight"
        closing = (f"body.{groups}.weight", f"body.0.body.{blocks}.weight")
        up = ("tail.0.", ".weight")
    elif shapes.has(*_LAYOUTS["basicsr"]):
        layout, first = "basicsr", "conv_first.weight"
        groups = shapes.count(r"body\.(\d+)\.residual_group\.0\.rcab\.0\.weight")
        blocks = shapes.count(r"body\.0\.residual_group\.(\d+)\.rcab\.0\.weight")
        squeeze = "body.0.residual_group.0.rcab.3.attention.1.weight"
        closing = ("conv_after_body.weight", "body.0.conv.weight")
        up = ("upsample.", ".weight")
    else:
        return None
    n_feats, hidden = shapes.dim(first), shapes.dim(squeeze)
    scale = shapes.stacked_shuffle_scale(*up, n_feats)
    if not (groups and blocks and scale and hidden) or not shapes.has(*closing):
        return None
    if n_feats % hidden:
        return None
    args = {
        "n_resgroups": groups,
        "n_resblocks": blocks,
        "n_feats": n_feats,
        "reduction": n_feats // hidden,
    }
    return Detected("rcan", scale, args, layout)


register_detector("rcan", detect_rcan, layouts=_LAYOUTS)
