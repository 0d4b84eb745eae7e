"""RLFN: residual local feature network.

Paper: Kong, Li, Wu, Ye, Zheng, Zhou, Li, "Residual Local Feature Network for Efficient
Super-Resolution", CVPR Workshops (NTIRE) 2022, arXiv:2205.07514. The winner of the runtime
track of the NTIRE 2022 efficient super-resolution challenge, and the baseline of the NTIRE 2024
one.

Parameter names follow bytedance/RLFN ``model/{rlfn,rlfn_s,rlfn_ntire,block}.py``
(``conv_1``, ``block_1`` ..., ``conv_2``, ``upsampler.0``), so the files in its ``model_zoo``
load unchanged. The challenge file that the organisers committed to ofsoundof/NTIRE2022_ESR
(``model_zoo/team04_rlfn.pth``, built by ``models/team04_rlfn.py``) holds the same tensors as
``rlfn_ntire_x4.pth`` under IMDN's names (``fea_conv``, ``B1`` ..., ``LR_conv``):
:func:`convert_rlfn` renames them. ``NTIRE2024_ESR/model_zoo/team00_rlfn.pth`` in
sunny2109/SAFMN is byte for byte ``rlfn_ntire_x4.pth``.

Every released checkpoint works on pixel values in 0..255 (the authors' ``test_demo.py``
multiplies the [0, 1] image by 255 before the network and divides after; the x2 and x4 paper
models reproduce the paper's Set14 numbers only so). The module scales by ``rgb_range`` inside,
so it takes and returns [0, 1] like every srzoo model.

RLFN declares no receptive-field radius (``receptive_field = None``) although each pixel sees a
bounded neighbourhood: every block's ESA max-pools a stride-2 map with 7x7 windows of stride 3 on
a grid anchored at the image's corner and resizes the pooled map back by the ratio of the two
sizes, so a tile computes a different function of the same pixels than the whole image does,
whatever the overlap (as for RFDN, whose ESA this one trims).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import ArgumentError
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
    shuffle_split,
)
from ._blocks import ESA, conv3x3, image_forward, pixel_shuffle_head, rename_keys
from ._window import pad_to_min_size

__all__ = ["RLFB", "RLFN", "convert_rlfn", "detect_rlfn"]

# ESA reduces its input with a stride-2 3x3 convolution and a 7x7 max pool of stride 3:
# anything smaller than this on either side leaves nothing to pool.
_MIN_SIZE = 15


class RLFB(nn.Module):
    """Residual local feature block: three 3x3 convolutions with a skip, a 1x1, then ESA.

    Args:
        in_channels: Feature channels in (and out of the residual path).
        mid_channels: Channels between the three 3x3 convolutions (default: ``in_channels``;
            the challenge model prunes them to 48 around 46 features).
        out_channels: Channels out of the block (default: ``in_channels``).
        esa_channels: Channels of the attention's mask branch.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        mid_channels: int | None = None,
        out_channels: int | None = None,
        esa_channels: int = 16,
    ) -> None:
        super().__init__()
        mid = in_channels if mid_channels is None else mid_channels
        out = in_channels if out_channels is None else out_channels
        self.c1_r = conv3x3(in_channels, mid)
        self.c2_r = conv3x3(mid, mid)
        self.c3_r = conv3x3(mid, in_channels)
        self.c5 = nn.Conv2d(in_channels, out, 1)
        self.esa = ESA(esa_channels=esa_channels, n_feats=out)
        # In place is safe: each activation overwrites a convolution's fresh output.
        self.act = nn.LeakyReLU(0.05, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.c1_r(x))
        out = self.act(self.c2_r(out))
        out = self.act(self.c3_r(out))
        return self.esa(self.c5(out + x))


class RLFN(nn.Module):
    """Residual Local Feature Network.

    Takes RGB in [0, 1]. Inputs smaller than 15 pixels on a side (too small for the attention
    branch's pooling, where the original fails) are padded by edge replication and the output
    cropped back.

    Args:
        scale: Upscaling factor (any positive integer; 2 and 4 were released).
        in_channels: Input channels.
        out_channels: Output channels.
        feature_channels: Feature channels (52 in RLFN, 48 in RLFN-S, 46 in the challenge model).
        mid_channels: Channels inside each block's convolutions (default: ``feature_channels``;
            48 in the challenge model).
        num_blocks: Number of RLFBs (named ``block_1`` ... as in the official checkpoints).
        esa_channels: Channels of each attention's mask branch.
        rgb_range: Pixel range the network works in (255 for the official weights).

    Example:
        >>> net = RLFN(scale=4)
        >>> net(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 3, 128, 128])
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        in_channels: int = 3,
        out_channels: int = 3,
        feature_channels: int = 52,
        mid_channels: int | None = None,
        num_blocks: int = 6,
        esa_channels: int = 16,
        rgb_range: float = 255.0,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ArgumentError(f"RLFN: scale must be a positive integer, got {scale}")
        for what, value in (
            ("feature_channels", feature_channels),
            ("num_blocks", num_blocks),
            ("esa_channels", esa_channels),
            ("mid_channels", 1 if mid_channels is None else mid_channels),
        ):
            if value < 1:
                raise ArgumentError(f"RLFN: {what} must be at least 1, got {value}")
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.rgb_range = rgb_range
        # ESA pools on a grid anchored at the image's corner and resizes the pooled mask by the
        # ratio of the pooled size to the image size: no overlap makes tiles reproduce the whole.
        self.receptive_field: int | None = None
        self.conv_1 = conv3x3(in_channels, feature_channels)
        self.block_names = tuple(f"block_{i}" for i in range(1, num_blocks + 1))
        for name in self.block_names:
            self.add_module(
                name,
                RLFB(
                    in_channels=feature_channels,
                    mid_channels=mid_channels,
                    esa_channels=esa_channels,
                ),
            )
        self.conv_2 = conv3x3(feature_channels, feature_channels)
        self.upsampler = pixel_shuffle_head(feature_channels, out_channels, scale)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_min_size(x, _MIN_SIZE, mode="replicate")
        feat = self.conv_1(x * self.rgb_range)
        out = feat
        for name in self.block_names:
            out = getattr(self, name)(out)
        y = self.upsampler(self.conv_2(out) + feat) / self.rgb_range
        return y[..., : h * self.scale, : w * self.scale]


# ofsoundof/NTIRE2022_ESR models/team04_rlfn.py names the same layers after IMDN's.
_NTIRE2022_LAYOUT = (
    (r"^fea_conv\.", "conv_1."),
    (r"^B(\d+)\.", r"block_\1."),
    (r"^LR_conv\.", "conv_2."),
)


def convert_rlfn(state: StateDict, module: nn.Module) -> StateDict:
    """Map the NTIRE 2022 challenge repository's RLFN keys to bytedance/RLFN's.

    ``team04_rlfn.pth`` names the first convolution ``fea_conv``, the blocks ``B1`` ... and the
    last low-resolution convolution ``LR_conv``; bytedance/RLFN (and srzoo) call them
    ``conv_1``, ``block_1`` ... and ``conv_2``. Everything else already matches, and a state
    dict in bytedance/RLFN's layout passes through unchanged.

    Args:
        state: The checkpoint's tensors (already unwrapped).
        module: The :class:`RLFN` the tensors are meant for (unused: the names say it all).

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_rlfn(torch.load("team04_rlfn.pth"), srzoo.create("rlfn-ntire", 4))
    """
    del module
    return rename_keys(state, _NTIRE2022_LAYOUT)


_PAPER = Paper(
    title="Residual Local Feature Network for Efficient Super-Resolution",
    venue="CVPR Workshops",
    year=2022,
    arxiv="2205.07514",
)
# bytedance/RLFN at the commit that added the paper models (rlfn_ntire_x4.pth is unchanged since
# the first upload).
_BYTEDANCE = (
    "https://raw.githubusercontent.com/bytedance/RLFN/"
    "bccfde91bf8b2de80789ec033a029e6f2a932330/model_zoo"
)
_NTIRE2022 = (
    "https://raw.githubusercontent.com/ofsoundof/NTIRE2022_ESR/"
    "e95ba4a4916bb13d6348f7ee172827e2452e8a31/model_zoo"
)
_GIT_NOTE = "sha256 and size of the file committed to {repo} (model_zoo/{file})"
_TRAIN = "DIV2K + Flickr2K (DF2K), per the paper"


# (sha256, size) of bytedance/RLFN's model_zoo files for the paper's models.
_RLFN: dict[int, tuple[str, int]] = {
    2: ("eafe5d5feeb122022453595c06d79160facdc157ae88deb02a44c50f5eba2d41", 2_145_309),
    4: ("8c7edb57dfc89048bafba29d591d4c27d4099964b4a9e22df23d6dc257a637c0", 2_212_893),
}
_RLFN_S: dict[int, tuple[str, int]] = {
    2: ("f5175f499f869c1b884c2552a1bcd6abd07ab352e3d8c8c9abe31b1deb60fe45", 1_855_005),
    4: ("f769c5a88433786b2db0c2b24da6ca6c92a24c62344b9354a390f8a74388e89d", 1_919_005),
}
# Y-PSNR on Set5 / Set14 from the paper's comparison with the state of the art (x2 and x4 only).
_RLFN_PSNR: dict[int, tuple[float, float]] = {2: (38.07, 33.72), 4: (32.24, 28.62)}


def _paper_weights(stem: str, facts: dict[int, tuple[str, int]]) -> tuple[WeightSpec, ...]:
    source = "RLFN paper (arXiv:2205.07514), comparison with the state of the art"
    specs = []
    for scale, (sha, size) in facts.items():
        metrics: tuple[ReportedMetric, ...] = ()
        if stem == "rlfn":
            metrics = set5_set14(scale, *_RLFN_PSNR[scale], source=source)
        specs.append(
            WeightSpec(
                scale=scale,
                source=f"{_BYTEDANCE}/{stem}_x{scale}.pth",
                sha256=sha,
                size=size,
                input_range="0-255",
                train_data=_TRAIN,
                license="Apache-2.0",
                metrics=metrics,
                sha256_note=_GIT_NOTE.format(repo="bytedance/RLFN", file=f"{stem}_x{scale}.pth"),
            )
        )
    return tuple(specs)


register_model(
    ModelSpec(
        name="rlfn",
        family="rlfn",
        builder=RLFN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="Apache-2.0",
        description="RLFN: 6 residual local feature blocks, 52 features",
        defaults={"feature_channels": 52, "num_blocks": 6, "rgb_range": 255.0},
        converter=convert_rlfn,
        weights=_paper_weights("rlfn", _RLFN),
    )
)

register_model(
    ModelSpec(
        name="rlfn-s",
        family="rlfn",
        builder=RLFN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="Apache-2.0",
        description="RLFN-S: 6 residual local feature blocks, 48 features",
        defaults={"feature_channels": 48, "num_blocks": 6, "rgb_range": 255.0},
        converter=convert_rlfn,
        weights=_paper_weights("rlfn_s", _RLFN_S),
    )
)

# RGB PSNR on DIV2K validation (801-900) and test (901-1000) images at x4 from the NTIRE 2022
# efficient-SR report's results table (team ByteESR), reproduced in ofsoundof/NTIRE2022_ESR
# figs/results.png.
_NTIRE_SOURCE = "NTIRE 2022 efficient SR challenge report (arXiv:2205.05675), results table"
_NTIRE_METRICS = (
    ReportedMetric(29.00, "DIV2K-val", 4, "psnr_rgb", source=_NTIRE_SOURCE),
    ReportedMetric(28.72, "DIV2K-test", 4, "psnr_rgb", source=_NTIRE_SOURCE),
)
_NTIRE_TRAIN = "DIV2K + Flickr2K (DF2K), NTIRE 2022 efficient SR challenge"

register_model(
    ModelSpec(
        name="rlfn-ntire",
        family="rlfn",
        builder=RLFN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="Apache-2.0",
        description="RLFN (NTIRE 2022 challenge): 4 pruned blocks, 46 features, 48 inside",
        defaults={
            "feature_channels": 46,
            "mid_channels": 48,
            "num_blocks": 4,
            "rgb_range": 255.0,
        },
        converter=convert_rlfn,
        weights=(
            WeightSpec(
                scale=4,
                source=f"{_BYTEDANCE}/rlfn_ntire_x4.pth",
                sha256="3c9be7b9d7a4bece9b68c83a56a1ffb38010f76413d5f215be6b4be842e18fb2",
                size=1_294_011,
                input_range="0-255",
                train_data=_NTIRE_TRAIN,
                license="Apache-2.0",
                metrics=_NTIRE_METRICS,
                sha256_note=(
                    _GIT_NOTE.format(repo="bytedance/RLFN", file="rlfn_ntire_x4.pth")
                    + "; the same bytes as sunny2109/SAFMN NTIRE2024_ESR/model_zoo/team00_rlfn.pth"
                ),
            ),
            # The challenge organisers' copy: the same tensors under other names, other bytes.
            WeightSpec(
                scale=4,
                source=f"{_NTIRE2022}/team04_rlfn.pth",
                tag="ntire2022",
                sha256="ca81b7757708ce749ac3766589690db6c2729961d026c0137e7659924ec36622",
                size=1_292_283,
                input_range="0-255",
                train_data=_NTIRE_TRAIN,
                license="Apache-2.0",
                metrics=_NTIRE_METRICS,
                sha256_note=_GIT_NOTE.format(
                    repo="ofsoundof/NTIRE2022_ESR", file="team04_rlfn.pth"
                ),
            ),
        ),
    )
)


# bytedance/RLFN's keys, and the NTIRE 2022 repository's (IMDN's names for the same tensors).
# RFDN's files share the latter's frame (fea_conv, B1.c1_r, B1.c5, B1.esa.conv1, LR_conv,
# upsampler) but hold distillation convolutions (c1_d ...) and ESA's conv_max / conv3_, which no
# RLFN has: the detector refuses such files, and RFDN's (which needs B1.c1_d and the fusion
# ``c.0``) refuses RLFN's, so the two never compete.
_LAYOUTS = {
    "official": (
        "conv_1.weight",
        "block_1.c1_r.weight",
        "block_1.c5.weight",
        "block_1.esa.conv1.weight",
        "conv_2.weight",
        "upsampler.0.weight",
    ),
    "ntire2022": (
        "fea_conv.weight",
        "B1.c1_r.weight",
        "B1.c5.weight",
        "B1.esa.conv1.weight",
        "LR_conv.weight",
        "upsampler.0.weight",
    ),
}
# name -> (first convolution, block prefix, last low-resolution convolution) of each layout.
_NAMES = {"official": ("conv_1", "block_", "conv_2"), "ntire2022": ("fea_conv", "B", "LR_conv")}
# Parts of RFDN's blocks (and of RFDN's ESA) that RLFN's have not.
_NOT_RLFN = ("c1_d.weight", "c4.weight", "esa.conv_max.weight", "esa.conv3_.weight")


def detect_rlfn(shapes: Shapes) -> Detected | None:
    """Recognise an RLFN checkpoint (bytedance/RLFN or NTIRE 2022 repository keys) from shapes.

    Reads the layout (``official``: bytedance/RLFN's ``conv_1`` / ``block_1`` ... / ``conv_2``;
    ``ntire2022``: ofsoundof/NTIRE2022_ESR's ``fea_conv`` / ``B1`` ... / ``LR_conv``, which
    :func:`convert_rlfn` renames), ``in_channels``, ``feature_channels``, ``mid_channels`` (the
    blocks' inner width; ``None`` when it equals ``feature_channels``), ``num_blocks``,
    ``esa_channels`` and the scale with ``out_channels`` from the pixel-shuffle head
    (``out_channels`` is taken equal to ``in_channels`` where that fits, else 3, else 1). Not in
    the weights, so the default: ``rgb_range`` 255 (every released file's range).

    Networks with a pruned inner width, and every file in the NTIRE 2022 layout (the challenge
    model's), are named ``rlfn-ntire``; others with 48 features ``rlfn-s``, the rest ``rlfn``
    (the arguments are complete, so the name only chooses the entry).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an RLFN (an RFDN file included).
    """
    layout = next((n for n, keys in _LAYOUTS.items() if shapes.has(*keys)), "")
    if not layout:
        return None
    first, block, last = _NAMES[layout]
    blocks = shapes.indices(re.escape(block) + r"(\d+)\.c1_r\.weight")
    if blocks != list(range(1, len(blocks) + 1)) or any(
        f"{block}{i}.{part}" in shapes for i in blocks for part in _NOT_RLFN
    ):
        return None
    in_ch, feats = shapes.dim(f"{first}.weight", 1), shapes.dim(f"{first}.weight")
    mid = shapes.dim(f"{block}1.c1_r.weight")
    esa = shapes.dim(f"{block}1.esa.conv1.weight")
    scale, out_ch = shuffle_split(shapes.dim("upsampler.0.weight"), in_ch)
    if not scale or min(in_ch, feats, mid, esa) < 1 or shapes.dim(f"{last}.weight") != feats:
        return None
    args: dict[str, object] = {
        "in_channels": in_ch,
        "out_channels": out_ch,
        "feature_channels": feats,
        "mid_channels": None if mid == feats else mid,
        "num_blocks": len(blocks),
        "esa_channels": esa,
        "rgb_range": 255.0,
    }
    if layout == "ntire2022" or mid != feats:
        name = "rlfn-ntire"
    else:
        name = "rlfn-s" if feats == 48 else "rlfn"
    return Detected(name, scale, args, layout)


register_detector("rlfn", detect_rlfn, layouts=_LAYOUTS)
