"""EDSR and EDSR-baseline.

Paper: Lim, Son, Kim, Nah, Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR Workshops 2017, arXiv:1707.02921.

Parameter names follow sanghyun-son/EDSR-PyTorch ``src/model/edsr.py`` (also used by torchSR), so
the official ``edsr_x4-4f62e9ef.pt`` files load unchanged. BasicSR's EDSR layout
(``conv_first`` / ``body.N.conv1`` / ``conv_after_body`` / ``upsample`` / ``conv_last``) is
converted on load.

Registered weights: the official files of the EDSR-PyTorch model server (flat state dicts in the
official keys) and, tagged ``basicsr`` for ``edsr-baseline``, BasicSR's conversions of them
(``{'params': ...}`` dicts in BasicSR's keys, which :func:`convert_edsr` maps).

Receptive field: the head, two 3x3 convolutions per block and the body's closing convolution
reach ``2 * n_resblocks + 2`` low-resolution pixels; the upsampler and the last convolution add 2
at every scale (68 for EDSR, 36 for the baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    ReportedMetric,
    Shapes,
    StateDict,
    WeightSpec,
    register_detector,
    register_model,
    set5_set14,
)
from ._blocks import DIV2K_RGB_MEAN, EDSRFrame, conv3x3, convert_basicsr_frame

__all__ = ["EDSR", "ResBlock", "convert_edsr", "detect_edsr"]


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


class EDSR(EDSRFrame):
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
        super().__init__(
            scale=scale,
            n_feats=n_feats,
            rgb_range=rgb_range,
            rgb_mean=rgb_mean,
            make_blocks=lambda: (
                ResBlock(n_feats=n_feats, res_scale=res_scale) for _ in range(n_resblocks)
            ),
            blocks_reach=2 * n_resblocks,
        )


# BasicSR's residual blocks name their two convolutions; the frame is mapped by the shared rules.
_BASICSR_BODY_RULES = (
    (r"body\.(\d+)\.conv1\.", r"body.\1.body.0."),
    (r"body\.(\d+)\.conv2\.", r"body.\1.body.2."),
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
    return convert_basicsr_frame(state, module, _BASICSR_BODY_RULES)


_PAPER = Paper(
    title="Enhanced Deep Residual Networks for Single Image Super-Resolution",
    venue="CVPR Workshops",
    year=2017,
    arxiv="1707.02921",
)

_SNU = "https://cv.snu.ac.kr/research/EDSR/models/"
_SNU_NOTE = (
    "full sha256 from third-party hash pins of the official file (its first 8 hex digits equal "
    "the torch.hub-style suffix of the file name); byte size not published"
)
_EDSR_TABLE = "Lim et al. 2017 (arXiv:1707.02921), Table 3: EDSR"
_DIV2K_RANGE = "0-255 (RGB, DIV2K mean shift inside the network)"
_CCRESTORATION = "https://github.com/TensoRaws/ccrestoration/releases/download/model_zoo/"


def _official(
    scale: int,
    file: str,
    sha256: str | None,
    *,
    metrics: tuple[ReportedMetric, ...] = (),
    sha256_note: str = _SNU_NOTE,
) -> WeightSpec:
    """A file on the EDSR-PyTorch model server, in the official layout."""
    return WeightSpec(
        scale=scale,
        source=f"{_SNU}{file}",
        sha256=sha256,
        input_range=_DIV2K_RANGE,
        train_data=f"DIV2K, bicubic x{scale}",
        license="MIT",
        metrics=metrics,
        sha256_note=sha256_note,
    )


_EDSR_WEIGHTS = tuple(
    _official(
        scale,
        f"edsr_x{scale}-{sha[:8]}.pt",
        sha,
        metrics=set5_set14(scale, set5, set14, source=_EDSR_TABLE),
    )
    for scale, sha, set5, set14 in (
        (2, "0edfb8a3772c94485c939f81a8aeefe02cccdfbf45243c6d22b39c29eb7d46de", 38.11, 33.92),
        (3, "ea3ef2c6449845ac3bda7290480af76a53e5006beff60bf89c84ca62f986eeca", 34.65, 30.52),
        (4, "4f62e9ef1a4ec6a7d3da4ed837116cec641e4e1566f98187151d813e83a0c1c8", 32.46, 28.80),
    )
)

# The paper's benchmark table reports the large EDSR only, so the baseline carries no metrics.
_BASELINE_WEIGHTS = (
    _official(
        2,
        "edsr_baseline_x2-1bc95232.pt",
        "1bc9523228fdc3b0a5ddb0d7062001e22b31bbb398ae09cfdefb97e8ee06e171",
    ),
    _official(
        3,
        "edsr_baseline_x3-abf2a44e.pt",
        None,
        sha256_note=(
            "no full sha256 is published; the download is checked against the torch.hub-style "
            "prefix abf2a44e in its file name; byte size not published"
        ),
    ),
    _official(
        4,
        "edsr_baseline_x4-6b446fab.pt",
        "6b446fab734f4de74448d2fd1f3f990f5bae726e49dc7eff2ae9cefe444a1723",
    ),
    *(
        WeightSpec(
            scale=scale,
            tag="basicsr",
            source=f"{_CCRESTORATION}EDSR_Mx{scale}_f64b16_DIV2K_official_{scale}x.pth",
            sha256=sha,
            input_range="0-1 (RGB; BasicSR scales by 255 and removes the DIV2K mean inside)",
            train_data=f"DIV2K, bicubic x{scale}",
            license="Apache-2.0 (BasicSR conversion) of MIT weights (EDSR-PyTorch)",
            sha256_note=(
                "byte-identical mirror (GitHub release of TensoRaws/ccrestoration) of BasicSR's "
                f"EDSR_Mx{scale}_f64b16_DIV2K_official-{sha[:8]}.pth, whose name carries the "
                "same sha256 prefix: BasicSR's conversion of the official weights, a "
                "{'params': ...} dict in BasicSR's keys; byte size not published"
            ),
        )
        for scale, sha in (
            (2, "3ba7b0861913de93740110738fb621410651897e391e8057b7b6104c4f999254"),
            (3, "6908f88a1be95e7112f480b7b1d9608ad83b4ffa0c227416a6376f6b036a77f3"),
            (4, "0c287733e70d1b8b8fc5885613ecbe451e5f3010bcae0307612ef5e4aa08dd5f"),
        )
    ),
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
        weights=_EDSR_WEIGHTS,
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
        weights=_BASELINE_WEIGHTS,
    )
)


_LAYOUTS = {
    "official": (
        "head.0.weight",
        "body.0.body.0.weight",
        "body.0.body.2.weight",
        "tail.0.0.weight",
        "tail.1.weight",
    ),
    "basicsr": (
        "conv_first.weight",
        "body.0.conv1.weight",
        "body.0.conv2.weight",
        "conv_after_body.weight",
        "upsample.0.weight",
        "conv_last.weight",
    ),
}


def detect_edsr(shapes: Shapes) -> Detected | None:
    """Recognise an EDSR checkpoint (EDSR-PyTorch / torchSR keys, or BasicSR's) from its shapes.

    Reads ``n_resblocks``, ``n_feats`` and the scale (the upsampler's stages). Not in the
    weights, so defaults: ``res_scale`` is 0.1 for 256 features (the paper's EDSR) and 1 for
    any other width (the baseline); ``rgb_range`` 255 and the DIV2K ``rgb_mean`` (the official
    mean-shift tensors are loaded as stored, whatever the mean).

    Networks with ``n_feats=256`` are named ``edsr``, the others ``edsr-baseline``.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an EDSR.
    """
    if shapes.has(*_LAYOUTS["official"]):
        layout, first = "official", "head.0.weight"
        n = shapes.count(r"body\.(\d+)\.body\.0\.weight")
        closing = f"body.{n}.weight"
        up = ("tail.0.", ".weight")
    elif shapes.has(*_LAYOUTS["basicsr"]):
        layout, first = "basicsr", "conv_first.weight"
        n = shapes.count(r"body\.(\d+)\.conv1\.weight")
        closing = "conv_after_body.weight"
        up = ("upsample.", ".weight")
    else:
        return None
    n_feats = shapes.dim(first)
    scale = shapes.stacked_shuffle_scale(*up, n_feats)
    if not n or not scale or not shapes.has(closing) or shapes.dim(first, 1) != 3:
        return None
    args = {
        "n_resblocks": n,
        "n_feats": n_feats,
        "res_scale": 0.1 if n_feats == 256 else 1.0,
    }
    return Detected("edsr" if n_feats == 256 else "edsr-baseline", scale, args, layout)


register_detector("edsr", detect_edsr, layouts=_LAYOUTS)
