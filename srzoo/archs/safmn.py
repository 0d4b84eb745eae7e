"""SAFMN: spatially-adaptive feature modulation network.

Paper: Sun, Dong, Tang, Pan, "Spatially-Adaptive Feature Modulation for Efficient Image
Super-Resolution", ICCV 2023, arXiv:2302.13800.

Parameter names follow sunny2109/SAFMN ``basicsr/archs/safmn_arch.py`` (identical to spandrel's
SAFMN), so the official ``SAFMN_DF2K_x{2,3,4}.pth`` files load once the BasicSR ``params`` wrapper
is removed (which srzoo's reader does).

Only the efficient-SR model (``safmn``) is registered. The large classic-SR files
(``SAFMN_L_DF2K_x*.pth``) are twice the size of one copy of their parameters, so they probably
hold ``params_ema`` beside ``params``; srzoo's reader prefers ``params_ema`` while the authors
evaluate ``params``, so they are left out until their contents are checked.

Besides the authors' weights, ``safmn`` carries srzoo's own weights (tag ``"srzoo"``), which ship
inside the package and are its offline default model (see ``srzoo.DEFAULT_MODEL``).

SAFMN declares no receptive-field radius (``receptive_field = None``): each SAFM max-pools its
features to ``(h // 2**i, w // 2**i)`` of the image's size, so the pooling windows follow the
size of the image and a grid anchored at its corner, and no tile overlap reproduces the whole
image's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import ModelSpec, Paper, ReportedMetric, WeightSpec, register_model, set5_set14
from ._blocks import image_forward, pixel_shuffle_head

__all__ = ["CCM", "SAFM", "SAFMN", "AttBlock", "LayerNorm2d"]


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of an ``(N, C, H, W)`` tensor (ConvNeXt's channels-first form).

    Args:
        channels: Number of channels.
        eps: Added to the variance.
    """

    def __init__(self, channels: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # layer_norm over the last dimension of a channels-last view is the same computation
        # as the original's mean / variance over dim 1, and several times faster on CPU. The
        # result is channels-last in memory; the convolutions that follow accept that as is.
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation: multi-scale depth-wise features gate the input.

    The channels are split into ``n_levels`` groups; group ``i`` is max-pooled to
    ``1 / 2**i`` of the input size, filtered, and upsampled back.

    Args:
        dim: Feature channels (a multiple of ``n_levels``).
        n_levels: Number of scales.
    """

    def __init__(self, *, dim: int, n_levels: int = 4) -> None:
        super().__init__()
        if dim % n_levels:
            raise ArgumentError(f"SAFM: dim ({dim}) must be a multiple of n_levels ({n_levels})")
        self.n_levels = n_levels
        chunk = dim // n_levels
        self.mfr = nn.ModuleList(
            nn.Conv2d(chunk, chunk, 3, padding=1, groups=chunk) for _ in range(n_levels)
        )
        self.aggr = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        chunks = x.chunk(self.n_levels, dim=1)
        out = [self.mfr[0](chunks[0])]
        for i in range(1, self.n_levels):
            # The original pools to (h // 2**i, w // 2**i), which is empty for inputs smaller
            # than 2**i; one pixel (a global max) is the natural limit there.
            size = (max(h >> i, 1), max(w >> i, 1))
            s = self.mfr[i](F.adaptive_max_pool2d(chunks[i], size))
            out.append(F.interpolate(s, size=(h, w), mode="nearest"))
        return self.act(self.aggr(torch.cat(out, dim=1))) * x


class CCM(nn.Module):
    """Convolutional channel mixer: 3x3 expansion, GELU, 1x1 projection.

    Args:
        dim: Feature channels.
        growth_rate: Expansion of the hidden layer.
    """

    def __init__(self, *, dim: int, growth_rate: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self.ccm = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, dim, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class AttBlock(nn.Module):
    """Feature mixing module: pre-norm SAFM and pre-norm CCM, each with a skip connection.

    Args:
        dim: Feature channels.
        ffn_scale: Expansion of the channel mixer.
    """

    def __init__(self, *, dim: int, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.norm2 = LayerNorm2d(dim)
        self.safm = SAFM(dim=dim)
        self.ccm = CCM(dim=dim, growth_rate=ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.safm(self.norm1(x)) + x
        return self.ccm(self.norm2(x)) + x


class SAFMN(nn.Module):
    """Spatially-Adaptive Feature Modulation Network.

    Takes RGB in [0, 1] like the original. Works at any input size; below 8 pixels on a side
    the coarsest pooling levels are clamped to one pixel (the original fails there).

    Args:
        scale: Upscaling factor (any positive integer; 2, 3 and 4 were released).
        dim: Feature channels (a multiple of 4).
        n_blocks: Number of feature mixing modules.
        ffn_scale: Expansion of each channel mixer.
    """

    def __init__(
        self, *, scale: int = 4, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ArgumentError(f"SAFMN: scale must be a positive integer, got {scale}")
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        # Size-dependent pooling in every block (see the module docstring): no local radius.
        self.receptive_field: int | None = None
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1)
        self.feats = nn.Sequential(
            *(AttBlock(dim=dim, ffn_scale=ffn_scale) for _ in range(n_blocks))
        )
        self.to_img = pixel_shuffle_head(dim, 3, scale)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_feat(x)
        # The trunk runs channels-last (see LayerNorm2d); hand back an ordinary NCHW tensor.
        return self.to_img(self.feats(x) + x).contiguous()


_PAPER = Paper(
    title="Spatially-Adaptive Feature Modulation for Efficient Image Super-Resolution",
    venue="ICCV",
    year=2023,
    arxiv="2302.13800",
)
_HF = "https://huggingface.co/Meloo/SAFMN/resolve/main"
_NOTE = "sha256 of the Hugging Face LFS object in Meloo/SAFMN (the authors' model repository)"

# (sha256, size) of the authors' files, and Y-PSNR on Set5 / Set14 from the paper's efficient-SR
# table (reproduced in the repository's figs/efficient_sr.png).
_SAFMN: dict[int, tuple[str, int | None, float, float]] = {
    2: ("baee9b5d24fd718065ca9bbcc88bb32a8e302c9ef00bae7afac48466a4d6dfa7", 958_105, 38.00, 33.54),
    3: ("0d0c8961fbee1af6f55214d78d9363d0e52fbc9499645df701c068a56783e936", 977_561, 34.34, 30.33),
    4: (
        "fe4f38fd6c1e3692bfbc6ab94f44adb815bfb54984b8886547657727af67f49d",
        1_004_953,
        32.18,
        28.60,
    ),
}


def _weights(
    file: str, table: str, facts: dict[int, tuple[str, int | None, float, float]]
) -> tuple[WeightSpec, ...]:
    specs = []
    for scale, (sha, size, set5, set14) in facts.items():
        source = f"SAFMN paper (arXiv:2302.13800), {table} table"
        specs.append(
            WeightSpec(
                scale=scale,
                source=f"{_HF}/{file}_x{scale}.pth",
                sha256=sha,
                size=size,
                input_range="0-1",
                train_data="DF2K (DIV2K + Flickr2K)",
                license="Apache-2.0",
                metrics=set5_set14(scale, set5, set14, source=source),
                sha256_note=_NOTE,
            )
        )
    return tuple(specs)


# srzoo's own weights, shipped in the package: (file, sha256, size, Set14 Y-PSNR, Set14 Y-SSIM).
# Trained by examples/train_default.py (logs in examples/logs/); the numbers are
# `srzoo eval safmn --hr Set14/HR --scale S --weights srzoo` with LR made by srzoo's imresize.
_SRZOO: dict[int, tuple[str, str, int, float, float]] = {
    2: (
        "safmn_srzoo_x2.safetensors",
        "76dac34843ebafe384c5961490f5f97dd689bf39fb778b4fcabd4c195cb453da",
        468_584,
        32.9233,
        0.9117,
    ),
    3: (
        "safmn_srzoo_x3.safetensors",
        "defb6297aeb29a3b961279e405252ab174c365f720c7a8c4210f484eefb97948",
        478_334,
        29.6753,
        0.8302,
    ),
    4: (
        "safmn_srzoo_x4.safetensors",
        "e471a127212dc8040173be559d274d904bf15770cf052f8cdffa936889ab349c",
        491_984,
        27.9398,
        0.7670,
    ),
}
_SRZOO_DATA = (
    "BSD100 + Sun-Hays80 (165 training images; LR by srzoo.metrics.imresize), see "
    "examples/logs/safmn_srzoo_x{2,3,4}*.json"
)


def _srzoo_weights() -> tuple[WeightSpec, ...]:
    source = "srzoo eval on Set14 (LR made by srzoo.metrics.imresize)"
    return tuple(
        WeightSpec(
            scale=scale,
            source=f"package://{file}",
            tag="srzoo",
            sha256=sha,
            size=size,
            train_data=_SRZOO_DATA,
            license="MIT (srzoo's own weights)",
            metrics=(
                ReportedMetric(psnr, "Set14", scale, "psnr_y", source=source),
                ReportedMetric(ssim, "Set14", scale, "ssim_y", source=source),
            ),
            sha256_note="sha256 of the file shipped inside the package (float16 tensors)",
        )
        for scale, (file, sha, size, psnr, ssim) in _SRZOO.items()
    )


register_model(
    ModelSpec(
        name="safmn",
        family="safmn",
        builder=SAFMN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="Apache-2.0",
        description="SAFMN (efficient SR): 8 feature mixing modules, 36 features",
        defaults={"dim": 36, "n_blocks": 8, "ffn_scale": 2.0},
        weights=_weights("SAFMN_DF2K", "efficient SR", _SAFMN) + _srzoo_weights(),
    )
)
