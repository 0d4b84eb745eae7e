"""SAFMN: spatially-adaptive feature modulation network.

Paper: Sun, Dong, Tang, Pan, "Spatially-Adaptive Feature Modulation for Efficient Image
Super-Resolution", ICCV 2023, arXiv:2302.13800.

Parameter names follow sunny2109/SAFMN ``basicsr/archs/safmn_arch.py`` (identical to spandrel's
SAFMN), so the official ``SAFMN_DF2K_x{2,3,4}.pth`` files load once the BasicSR ``params`` wrapper
is removed (which srzoo's reader does).

The efficient-SR model (``safmn``) is registered, and beside it the variant its authors entered
in the NTIRE 2023 efficient super-resolution challenge (``safmn-ntire2023``, :class:`SAFMNNTIRE`,
with the keys of ``NTIRE2023_ESR/models/team15_SAFMN.py``, the same code as
``basicsr/archs/safmn_ntire_arch.py``): one GRN (global response normalisation) after the first
convolution instead of two LayerNorms in every block, bias-free SAFM and channel-mixer
convolutions, pooling levels one octave coarser, no long skip over the blocks, and a bilinear
enlargement of the input added to the output.

The large classic-SR files (``SAFMN_L_DF2K_x*.pth``) are twice the size of one copy of their
parameters, so they probably hold ``params_ema`` beside ``params``; srzoo's reader prefers
``params_ema`` while the authors evaluate ``params``, so they are left out until their contents
are checked.

Besides the authors' weights, ``safmn`` carries srzoo's own weights (tag ``"srzoo"``), which ship
inside the package and are its offline default model (see ``srzoo.DEFAULT_MODEL``).

SAFMN declares no receptive-field radius (``receptive_field = None``): each SAFM max-pools its
features to ``(h // 2**i, w // 2**i)`` of the image's size, so the pooling windows follow the
size of the image and a grid anchored at its corner, and no tile overlap reproduces the whole
image's output. The NTIRE 2023 variant's GRN is global besides: it divides by norms taken over
the whole image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    ReportedMetric,
    Shapes,
    WeightSpec,
    register_detector,
    register_model,
    set5_set14,
    shuffle_factor,
)
from ._blocks import SAFM, LayerNorm2d, image_forward, pixel_shuffle_head

__all__ = [
    "CCM",
    "GRN",
    "SAFM",
    "SAFMN",
    "SAFMNNTIRE",
    "AttBlock",
    "LayerNorm2d",
    "detect_safmn",
]


class CCM(nn.Module):
    """Convolutional channel mixer: 3x3 expansion, GELU, 1x1 projection.

    Args:
        dim: Feature channels.
        growth_rate: Expansion of the hidden layer.
        bias: Whether the convolutions have biases (not in the NTIRE 2023 variant).
    """

    def __init__(self, *, dim: int, growth_rate: float = 2.0, bias: bool = True) -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self.ccm = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, padding=1, bias=bias),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class AttBlock(nn.Module):
    """Feature mixing module: pre-norm SAFM and pre-norm CCM, each with a skip connection.

    Args:
        dim: Feature channels.
        ffn_scale: Expansion of the channel mixer.
        ntire2023: The NTIRE 2023 variant's block: no norms (they hold no tensors then), no
            biases in SAFM and CCM, and SAFM's pooling one octave coarser.
    """

    def __init__(self, *, dim: int, ffn_scale: float = 2.0, ntire2023: bool = False) -> None:
        super().__init__()
        self.norm1: nn.Module = nn.Identity() if ntire2023 else LayerNorm2d(dim)
        self.norm2: nn.Module = nn.Identity() if ntire2023 else LayerNorm2d(dim)
        self.safm = SAFM(dim=dim, bias=not ntire2023, pool_shift=int(ntire2023))
        self.ccm = CCM(dim=dim, growth_rate=ffn_scale, bias=not ntire2023)

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


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt V2) over an ``(N, C, H, W)`` tensor.

    Each channel's L2 norm over the whole image, divided by the mean of those norms over the
    channels, scales the features: ``gamma * (x * n) + beta + x``. A global operation: every
    output pixel depends on every input pixel.

    Args:
        dim: Number of channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Sum of squares over a whole image overflows float16; the (N, C, 1, 1) ratio is cheap
        # in float32 (or wider) and the same computation for float32 input.
        wide = torch.promote_types(x.dtype, torch.float32)
        gx = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True, dtype=wide)
        nx = (gx / (gx.mean(dim=1, keepdim=True) + 1e-6)).to(x.dtype)
        return self.gamma * (x * nx) + self.beta + x


class SAFMNNTIRE(nn.Module):
    """SAFMN as entered in the NTIRE 2023 efficient super-resolution challenge.

    ``to_feat`` -> :class:`GRN` (``norm``) -> ``n_blocks`` bias-free, norm-free feature mixing
    modules -> ``to_img`` (a sub-pixel head), plus the input enlarged bilinearly. Takes RGB in
    [0, 1] like the original. Works at any input size; below 16 pixels on a side the coarsest
    pooling levels are clamped to one pixel (the original fails there).

    Args:
        scale: Upscaling factor (any positive integer; x4 was released).
        dim: Feature channels (a multiple of 4).
        n_blocks: Number of feature mixing modules.
        ffn_scale: Expansion of each channel mixer.

    Example:
        >>> net = SAFMNNTIRE(scale=4)
        >>> net(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 3, 128, 128])
    """

    def __init__(
        self, *, scale: int = 4, dim: int = 36, n_blocks: int = 8, ffn_scale: float = 2.0
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ArgumentError(f"SAFMNNTIRE: scale must be a positive integer, got {scale}")
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        # GRN normalises by norms over the whole image, and the pooling follows its size.
        self.receptive_field: int | None = None
        self.norm = GRN(dim)
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1)
        self.feats = nn.Sequential(
            *(AttBlock(dim=dim, ffn_scale=ffn_scale, ntire2023=True) for _ in range(n_blocks))
        )
        self.to_img = pixel_shuffle_head(dim, 3, scale)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # size= maps coordinates with in/out = 1/scale, exactly as the original's scale_factor.
        base = F.interpolate(
            x, size=(h * self.scale, w * self.scale), mode="bilinear", align_corners=False
        )
        return self.to_img(self.feats(self.norm(self.to_feat(x)))) + base


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


register_model(
    ModelSpec(
        name="safmn-ntire2023",
        family="safmn",
        builder=SAFMNNTIRE,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="Apache-2.0",
        description="SAFMN (NTIRE 2023 challenge): GRN, bias-free mixers, 8 blocks, 36 features",
        defaults={"dim": 36, "n_blocks": 8, "ffn_scale": 2.0},
        weights=(
            WeightSpec(
                scale=4,
                source=f"{_HF}/SAFMN_NTIRE_ESR_x4.pth",
                sha256="93fe3d7175ef1446cfcb3a884ddf8bbb4391f31190e9d1bf6c6c1cb768f8b565",
                size=971_051,
                input_range="0-1",
                train_data="DIV2K + Flickr2K (DF2K), NTIRE 2023 efficient SR challenge",
                license="Apache-2.0",
                sha256_note=(
                    f"{_NOTE}; the same bytes as the challenge file committed to sunny2109/SAFMN "
                    "(NTIRE2023_ESR/model_zoo/team15_SAFMN.pth)"
                ),
            ),
        ),
    )
)


# sunny2109/SAFMN's keys (basicsr/archs/safmn_arch.py, spandrel's), and those of the NTIRE 2023
# variant (NTIRE2023_ESR/models/team15_SAFMN.py): GRN's ``norm.gamma`` / ``norm.beta`` in place of
# the blocks' LayerNorms, which tells the two apart.
_LAYOUTS = {
    "official": (
        "to_feat.weight",
        "feats.0.norm1.weight",
        "feats.0.norm2.weight",
        "feats.0.safm.mfr.0.weight",
        "feats.0.safm.aggr.weight",
        "feats.0.ccm.ccm.0.weight",
        "feats.0.ccm.ccm.2.weight",
        "to_img.0.weight",
    ),
    "ntire2023": (
        "norm.gamma",
        "norm.beta",
        "to_feat.weight",
        "feats.0.safm.mfr.0.weight",
        "feats.0.safm.aggr.weight",
        "feats.0.ccm.ccm.0.weight",
        "feats.0.ccm.ccm.2.weight",
        "to_img.0.weight",
    ),
}
_LEVELS = 4  # SAFM's pooling levels: fixed in both variants


def detect_safmn(shapes: Shapes) -> Detected | None:
    """Recognise a SAFMN checkpoint (sunny2109/SAFMN keys), or its NTIRE 2023 variant's.

    Reads the variant (GRN's ``norm.gamma`` / ``norm.beta`` and bias-free blocks: the NTIRE
    2023 model, layout ``ntire2023``; LayerNorms in every block: the paper's, layout
    ``official``), ``dim``, ``n_blocks``, ``ffn_scale`` (the channel mixer's hidden width over
    ``dim``, which the builder truncates back to that width) and the scale from the
    pixel-shuffle head. Nothing is left to a default: the image channels (3) and the four
    pooling levels are fixed by the architecture, and a file with others is not one srzoo builds.

    NTIRE 2023 networks are named ``safmn-ntire2023``, the others ``safmn``.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a SAFMN.
    """
    layout = next((n for n, keys in _LAYOUTS.items() if shapes.has(*keys)), "")
    if not layout:
        return None
    ntire = layout == "ntire2023"
    n_blocks = shapes.count(r"feats\.(\d+)\.safm\.aggr\.weight")
    dim, hidden = shapes.dim("to_feat.weight"), shapes.dim("feats.0.ccm.ccm.0.weight")
    scale = shuffle_factor(shapes.dim("to_img.0.weight"), 3)
    if (
        not n_blocks
        or not scale
        or shapes.dim("to_feat.weight", 1) != 3
        or shapes.dim("to_img.0.weight", 1) != dim
        or shapes.count(r"feats\.0\.safm\.mfr\.(\d+)\.weight") != _LEVELS
        or dim % _LEVELS
        or hidden < 1
    ):
        return None
    # The variants must not be mixed: GRN, LayerNorms and biases exactly where the layout has them.
    if (
        ntire != shapes.has("norm.gamma")
        or ntire == shapes.has("feats.0.norm1.weight")
        or ntire == shapes.has("feats.0.safm.aggr.bias")
    ):
        return None
    if ntire and shapes.dim("norm.gamma", 1) != dim:
        return None
    ffn_scale = hidden / dim
    if int(dim * ffn_scale) != hidden:  # a quotient rounded below: int() would lose one
        ffn_scale = (hidden + 0.5) / dim
    args = {"dim": dim, "n_blocks": n_blocks, "ffn_scale": ffn_scale}
    return Detected("safmn-ntire2023" if ntire else "safmn", scale, args, layout)


register_detector("safmn", detect_safmn, layouts=_LAYOUTS)
