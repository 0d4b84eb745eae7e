"""Real-ESRGAN Compact: the small VGG-style network ``SRVGGNetCompact``.

Paper: Wang, Xie, Dong, Shan, "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
Synthetic Data", ICCV Workshops 2021, arXiv:2107.10833. The compact network itself was released
later with the code.

Parameter names follow xinntao/Real-ESRGAN ``realesrgan/archs/srvgg_arch.py`` (identical to
spandrel's Compact): one ``body`` list of alternating 3x3 convolutions and activations, so the
official ``realesr-*.pth`` files (tensors under ``params``) load unchanged.

The network works entirely at low resolution: a 3x3 convolution and an activation, ``num_conv``
more of them, a last 3x3 convolution to ``out_channels * scale**2`` channels and a pixel
shuffle; the nearest-neighbour enlargement of the input is added, so the network learns the
residual. Receptive field: ``num_conv + 2`` pixels at every scale.

``realesr-general-x4v3`` can be blended with its companion ``wdn`` ("without denoising")
weights, as the authors' inference script does:
``srzoo.load("realesr-general-x4v3", denoise_strength=0.5)``.

Example:
    >>> model = srzoo.load("realesr-animevideov3")
"""

from __future__ import annotations

import re
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
    WeightBlend,
    WeightSpec,
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import image_forward, receptive_radius

__all__ = ["SRVGGNetCompact", "detect_compact"]

Activation = Literal["prelu", "relu", "leakyrelu"]


def _activation(kind: Activation, channels: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=channels)
    if kind == "relu":
        return nn.ReLU()
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1)
    raise ArgumentError(
        f"SRVGGNetCompact: act_type must be 'prelu', 'relu' or 'leakyrelu', got {kind!r}"
    )


class SRVGGNetCompact(nn.Module):
    """A compact VGG-style network: every layer at low resolution, a pixel shuffle at the end.

    Args:
        scale: Upscaling factor (any positive integer).
        num_in_ch: Input channels.
        num_out_ch: Output channels (equal to ``num_in_ch``: the enlarged input is added).
        num_feat: Feature channels.
        num_conv: 3x3 convolutions between the first and the last one.
        act_type: Activation after every convolution but the last: ``"prelu"`` (one slope per
            channel), ``"relu"`` or ``"leakyrelu"`` (slope 0.1).
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        act_type: Activation = "prelu",
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ArgumentError(f"SRVGGNetCompact: scale must be a positive integer, got {scale}")
        if num_conv < 0 or num_feat < 1:
            raise ArgumentError(
                f"SRVGGNetCompact: needs num_feat >= 1 and num_conv >= 0, got {num_feat} and "
                f"{num_conv}"
            )
        if num_in_ch != num_out_ch:
            raise ArgumentError(
                f"SRVGGNetCompact adds the enlarged input to its output, so num_in_ch and "
                f"num_out_ch must be equal (got {num_in_ch} and {num_out_ch})"
            )
        self.scale = scale
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        # The first conv, num_conv convs and the last conv, all 3x3 at low resolution; the
        # nearest-neighbour shortcut reads only the pixel itself.
        self.receptive_field: int | None = receptive_radius([("conv", num_conv + 2), ("up", scale)])
        layers: list[nn.Module] = [
            nn.Conv2d(num_in_ch, num_feat, 3, padding=1),
            _activation(act_type, num_feat),
        ]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, padding=1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * scale * scale, 3, padding=1))
        # A ModuleList, not a Sequential: the official keys are body.<index>.
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        base = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return self.upsampler(out) + base


_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_PAPER = Paper(
    title="Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
    venue="ICCV Workshops",
    year=2021,
    arxiv="2107.10833",
)
# The training sets of these releases are not published beyond the kind of content.
_GENERAL_FILE = "v0.2.5.0/realesr-general-x4v3.pth"
_WDN_FILE = "v0.2.5.0/realesr-general-wdn-x4v3.pth"
_ANIME = "anime (not published in detail), with Real-ESRGAN's synthetic degradations"
_GENERAL = "general scenes (not published in detail), with Real-ESRGAN's synthetic degradations"
_WDN = f"{_GENERAL}; trained without the denoising of the default weights"
_GENERAL_SHA = "8dc7edb9ac80ccdc30c3a5dca6616509367f05fbc184ad95b731f05bece96292"
_WDN_SHA = "1641f8c4464b9f097c9fdda5589273713f67cf59f3d909e0bd688f0cee269dca"
_DENOISE = WeightBlend(
    option="denoise_strength",
    other="wdn",
    description=(
        "deep network interpolation with the 'wdn' (without denoising) weights, as in the "
        "authors' inference script: 1 is the default weights alone (full denoising), 0 the "
        "'wdn' weights (keeps the noise)"
    ),
)


def _weights(
    scale: int,
    path: str,
    sha: str,
    size: int,
    train_data: str,
    *,
    tag: str = "default",
    blend: WeightBlend | None = None,
) -> WeightSpec:
    return WeightSpec(
        scale=scale,
        source=f"{_RELEASES}/{path}",
        tag=tag,
        sha256=sha,
        size=size,
        input_range="0-1",
        train_data=train_data,
        license="BSD-3-Clause",
        blend=blend,
    )


def _register(
    name: str,
    scale: int,
    num_conv: int,
    description: str,
    weights: tuple[WeightSpec, ...],
) -> None:
    register_model(
        ModelSpec(
            name=name,
            family="compact",
            builder=SRVGGNetCompact,
            # The architecture takes any scale (for training); the weights are at ``scale``.
            scales=(2, 3, 4),
            default_scale=scale,
            paper=_PAPER,
            code_license="BSD-3-Clause",
            description=description,
            task="real-world",
            colour="rgb",
            defaults={"num_feat": 64, "num_conv": num_conv, "act_type": "prelu"},
            weights=weights,
        )
    )


_register(
    "realesr-animevideov3",
    4,
    16,
    "Real-ESRGAN Compact for anime video (XS): 16 convolutions, 64 features, PReLU",
    (
        _weights(
            4,
            "v0.2.5.0/realesr-animevideov3.pth",
            "b8a8376811077954d82ca3fcf476f1ac3da3e8a68a4f4d71363008000a18b75d",
            2_504_012,
            _ANIME,
        ),
    ),
)
_register(
    "realesr-general-x4v3",
    4,
    32,
    "Real-ESRGAN Compact for general scenes (S): 32 convolutions, 64 features, PReLU; "
    "denoise_strength blends in the 'wdn' weights",
    (
        _weights(4, _GENERAL_FILE, _GENERAL_SHA, 4_885_111, _GENERAL, blend=_DENOISE),
        _weights(4, _WDN_FILE, _WDN_SHA, 4_885_111, _WDN, tag="wdn"),
    ),
)
_register(
    "realesr-general-wdn-x4v3",
    4,
    32,
    "Real-ESRGAN Compact for general scenes (S), the weights without denoising",
    (_weights(4, _WDN_FILE, _WDN_SHA, 4_885_111, _WDN),),
)
_register(
    "realesrganv2-animevideo-xsx2",
    2,
    16,
    "Real-ESRGAN v2 Compact for anime video (XS) x2: 16 convolutions, 64 features, PReLU",
    (
        _weights(
            2,
            "v0.2.3.0/RealESRGANv2-animevideo-xsx2.pth",
            "27985aa2198711ecd72f9bb274ec7b164e018fc9ce2933daaa7c7ab36a2bd3fe",
            2_419_014,
            _ANIME,
        ),
    ),
)
_register(
    "realesrganv2-animevideo-xsx4",
    4,
    16,
    "Real-ESRGAN v2 Compact for anime video (XS) x4: 16 convolutions, 64 features, PReLU",
    (
        _weights(
            4,
            "v0.2.3.0/RealESRGANv2-animevideo-xsx4.pth",
            "5e04b111c16d5b40deb8f8062d09fdff72fa80281fb9607be23b62650c08daff",
            2_502_086,
            _ANIME,
        ),
    ),
)


_LAYOUTS = {"official": ("body.0.weight", "body.0.bias")}
_BODY_KEY = re.compile(r"body\.(\d+)\.(weight|bias)")


def detect_compact(shapes: Shapes) -> Detected | None:
    """Recognise an SRVGGNetCompact checkpoint (xinntao/Real-ESRGAN's keys) from its shapes.

    Reads ``num_in_ch`` / ``num_out_ch``, ``num_feat``, ``num_conv`` (from the index of the last
    convolution) and the scale (the last convolution's ``out_channels * scale**2``). PReLU slopes
    are tensors, so ``act_type="prelu"`` is read from them; ReLU and LeakyReLU hold none and
    cannot be told apart: ``"leakyrelu"`` is assumed for a file without slopes.

    Networks with 32 convolutions are named ``realesr-general-x4v3``, the others
    ``realesr-animevideov3`` (the arguments are complete, so the name only chooses the entry).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an SRVGGNetCompact.
    """
    if not shapes.has(*_LAYOUTS["official"]) or not all(_BODY_KEY.fullmatch(k) for k in shapes):
        return None
    convs = shapes.indices(r"body\.(\d+)\.weight")
    convs = [i for i in convs if len(shapes[f"body.{i}.weight"]) == 4]
    last = convs[-1]
    if convs != list(range(0, last + 1, 2)) or last < 2:
        return None
    num_feat, in_ch = shapes.dim("body.0.weight"), shapes.dim("body.0.weight", 1)
    scale = shuffle_factor(shapes.dim(f"body.{last}.weight"), in_ch)
    if not scale:
        return None
    num_conv = last // 2 - 1
    act = "prelu" if shapes.has("body.1.weight") else "leakyrelu"
    args = {
        "num_in_ch": in_ch,
        "num_out_ch": in_ch,
        "num_feat": num_feat,
        "num_conv": num_conv,
        "act_type": act,
    }
    name = "realesr-general-x4v3" if num_conv == 32 else "realesr-animevideov3"
    return Detected(name, scale, args, "official")


register_detector("compact", detect_compact, layouts=_LAYOUTS)
