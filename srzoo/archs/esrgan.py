"""RRDBNet: the generator of ESRGAN, Real-ESRGAN, BSRGAN and RealSR.

Papers:

- ESRGAN: Wang, Yu, Wu, Gu, Liu, Dong, Qiao, Loy, "ESRGAN: Enhanced Super-Resolution Generative
  Adversarial Networks", ECCV Workshops 2018, arXiv:1809.00219 (the network, and its
  PSNR-oriented twin RRDB_PSNR).
- Real-ESRGAN: Wang, Xie, Dong, Shan, "Real-ESRGAN: Training Real-World Blind Super-Resolution
  with Pure Synthetic Data", ICCV Workshops 2021, arXiv:2107.10833.
- BSRGAN: Zhang, Liang, Van Gool, Timofte, "Designing a Practical Degradation Model for Deep
  Blind Image Super-Resolution", ICCV 2021, arXiv:2103.14006.
- RealSR: Ji, Cao, Tai, Wang, Li, Huang, "Real-World Super-Resolution via Kernel Estimation and
  Noise Injection", CVPR Workshops (NTIRE) 2020 (no arXiv version).

Parameter names follow XPixelGroup/BasicSR ``basicsr/archs/rrdbnet_arch.py`` (the layout of
xinntao/Real-ESRGAN's ``params_ema`` files): ``conv_first``, ``body.N.rdbK.convJ``,
``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``. :func:`convert_rrdbnet`
maps the other layouts these weights were published in:

- the original xinntao/ESRGAN layout (``model.0``, ``model.1.sub.N.RDBK.convJ.0``,
  ``model.1.sub.<num_block>``, ``model.3``, ``model.6``, ``model.8``, ``model.10``);
- the 2019 xinntao/ESRGAN layout, also used by cszn/KAIR, cszn/BSRGAN and jixiaozhong/RealSR
  (``conv_first``, ``RRDB_trunk.N.RDBK.convJ``, ``trunk_conv``, ``upconv1``, ``upconv2``,
  ``HRconv``, ``conv_last``; BSRGAN x2 has no ``upconv2``).

Scales: ``log2(scale)`` nearest-neighbour x2 enlargements, each followed by a 3x3 convolution
and LeakyReLU (one for BSRGAN x2, two for x4). Real-ESRGAN x2plus (``pixel_unshuffle=True``)
instead folds the input with ``pixel_unshuffle(x, 4 // scale)`` (12 input channels at x2, 48 at
x1) and keeps the x4 tail; the module pads the input to a multiple of the fold by reflection
(replication for a side shorter than the padding) and crops the output, so any size works.

Registered weights: the authors' GitHub release files whose sha256 is known. Not registered:

- RRDB_PSNR_x4 (``esrgan-psnr``) and the RealSR DPED / DF2K / DF2K-JPEG files are published on
  Google Drive only; BasicSR's ``ESRGAN_PSNR_SRx4_DF2K_official`` has only an 8-digit sha256
  prefix, and KAIR's ``RRDB.pth`` / ``RealSR_*.pth`` release copies no published sha256 at all.
  These models are registered without weights; any of those files loads with
  ``srzoo.load(name, weights=path)``.

The authors publish perceptual results (PI, NIQE, user studies) for these weights, not
benchmark PSNR of the released files, so no metrics are recorded.

Receptive field: ``conv_first``, five 3x3 convolutions per dense block, three dense blocks per
RRDB and ``conv_body`` reach ``15 * num_block + 2`` low-resolution pixels (347 for the 23-block
networks); the upsampling convolutions, ``conv_hr`` and ``conv_last`` add 2 (349 at x4). With
the pixel-unshuffle fold of ``f`` the radius in input pixels is about ``f`` times that of the
folded network (699 for Real-ESRGAN x2plus). Dense blocks are local: tiles overlapping by the
radius reproduce the untiled output (for the folded networks, tiles must start at multiples of
the fold, which ``size_multiple`` records).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    StateDict,
    Task,
    WeightSpec,
    register_detector,
    register_model,
)
from ._blocks import (
    RRDB,
    FieldStep,
    ResidualDenseBlock,
    conv3x3,
    image_forward,
    receptive_radius,
    rename_keys,
)

__all__ = ["RRDB", "RRDBNet", "ResidualDenseBlock", "convert_rrdbnet", "detect_rrdbnet"]

_SLOPE = 0.2  # LeakyReLU slope of every activation


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    # In place: x is always a convolution's fresh output that nothing else holds, so this saves
    # one activation-sized copy (a quarter of a GiB at 1024x1024x64 in the x4 tail) and keeps
    # autograd exact (LeakyReLU's gradient reads its own output).
    return F.leaky_relu(x, _SLOPE, inplace=True)


class RRDBNet(nn.Module):
    """The ESRGAN generator: RRDB blocks at low resolution, nearest-neighbour upsampling.

    Takes RGB in [0, 1], as every published RRDBNet checkpoint does.

    Args:
        scale: Upscaling factor: a power of two (1 gives no enlargement); with
            ``pixel_unshuffle``, 1 or 2.
        in_channels: Image channels in.
        out_channels: Image channels out.
        num_feat: Feature channels (64 in every published network).
        num_block: RRDB blocks (23; 6 in Real-ESRGAN's anime model).
        num_grow_ch: Growth channels of the dense blocks (32).
        pixel_unshuffle: Fold the input with ``pixel_unshuffle(x, 4 // scale)`` and upsample by
            4, as Real-ESRGAN does at x2 and x1, instead of ``log2(scale)`` upsampling steps.

    Raises:
        ArgumentError: A scale the configuration cannot build.

    Example:
        >>> net = RRDBNet(scale=4, num_block=6)
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
        pixel_unshuffle: bool = False,
    ) -> None:
        super().__init__()
        if pixel_unshuffle:
            if scale not in (1, 2):
                raise ArgumentError(
                    f"RRDBNet with pixel_unshuffle supports scale 1 or 2, not {scale}; use "
                    "pixel_unshuffle=False for other scales"
                )
            fold, n_up = 4 // scale, 2
        else:
            if scale < 1 or scale & (scale - 1):
                raise ArgumentError(f"RRDBNet supports powers of two as scale, not {scale}")
            fold, n_up = 1, int(math.log2(scale))
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.fold = fold

        self.conv_first = conv3x3(in_channels * fold * fold, num_feat)
        self.body = nn.Sequential(
            *(RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch) for _ in range(num_block))
        )
        self.conv_body = conv3x3(num_feat, num_feat)
        self._up_names = tuple(f"conv_up{i + 1}" for i in range(n_up))
        for name in self._up_names:
            self.add_module(name, conv3x3(num_feat, num_feat))
        self.conv_hr = conv3x3(num_feat, num_feat)
        self.conv_last = conv3x3(num_feat, out_channels)

        steps: list[tuple[FieldStep, int]] = [("fold", fold), ("conv", 1 + 15 * num_block + 1)]
        for _ in range(n_up):
            steps += [("up", 2), ("conv", 1)]
        steps += [("conv", 1), ("conv", 1)]
        self.receptive_field: int = receptive_radius(steps)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.fold > 1:
            x = F.pixel_unshuffle(_pad_to_multiple(x, self.fold), self.fold)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for name in self._up_names:
            up = F.interpolate(feat, scale_factor=2, mode="nearest")
            feat = _lrelu(getattr(self, name)(up))
        out: torch.Tensor = self.conv_last(_lrelu(self.conv_hr(feat)))
        if self.fold > 1:
            out = out[..., : height * self.scale, : width * self.scale]
        return out


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the bottom and right of ``x`` to a multiple of ``multiple``, as Real-ESRGAN does.

    Reflection, or replication on both axes when a side is not longer than its padding (where
    reflection is undefined). The padding is a gather with computed indices and the mode a
    tensor condition, not a Python branch on the size, so that an exported graph (ONNX) keeps
    the height and width free; for sizes that need no padding the gather is an exact copy.
    """
    height, width = x.shape[-2:]
    # Rounded up with positive operands only: exported graphs divide integers by truncation.
    rows = torch.arange((height + multiple - 1) // multiple * multiple, device=x.device)
    cols = torch.arange((width + multiple - 1) // multiple * multiple, device=x.device)
    # Reflection about the last row / column (the edge itself is not repeated).
    reflect_rows = torch.where(rows < height, rows, 2 * (height - 1) - rows)
    reflect_cols = torch.where(cols < width, cols, 2 * (width - 1) - cols)
    reflects = (reflect_rows.min() >= 0) & (reflect_cols.min() >= 0)
    rows = torch.where(reflects, reflect_rows, rows.clamp(max=height - 1))
    cols = torch.where(reflects, reflect_cols, cols.clamp(max=width - 1))
    return x.index_select(-2, rows).index_select(-1, cols)


# The 2019 xinntao/ESRGAN layout, shared by KAIR, BSRGAN and RealSR.
_KAIR_RULES = (
    (r"RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."),
    (r"trunk_conv\.", "conv_body."),
    (r"upconv(\d+)\.", r"conv_up\1."),
    (r"HRconv\.", "conv_hr."),
)


def _convert_sequential(state: StateDict) -> StateDict:
    """Map the original xinntao/ESRGAN ``model.N`` layout to BasicSR's keys.

    ``model.0`` is ``conv_first``; ``model.1.sub`` holds the blocks and, last, ``conv_body``;
    then one (upsample, conv, LeakyReLU) triple per x2 step (convs at ``model.3``, ``model.6``,
    ...), ``conv_hr`` and ``conv_last`` two indices apart.
    """
    block = re.compile(r"model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")
    sub = re.compile(r"model\.1\.sub\.(\d+)\.(weight|bias)$")
    top = re.compile(r"model\.(\d+)\.(weight|bias)$")
    n_block = max((int(m.group(1)) for k in state if (m := sub.match(k))), default=-1)
    tail = sorted({int(m.group(1)) for k in state if (m := top.match(k))} - {0})
    # The last two indices are conv_hr and conv_last; the ones before are the upsampling convs.
    names = {i: f"conv_up{n + 1}" for n, i in enumerate(tail[:-2])}
    if len(tail) >= 2:
        names[tail[-2]] = "conv_hr"
        names[tail[-1]] = "conv_last"
    names[0] = "conv_first"
    out: StateDict = {}
    for key, value in state.items():
        if m := block.match(key):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = value
        elif (m := sub.match(key)) and int(m.group(1)) == n_block:
            out[f"conv_body.{m.group(2)}"] = value
        elif (m := top.match(key)) and int(m.group(1)) in names:
            out[f"{names[int(m.group(1))]}.{m.group(2)}"] = value
        else:
            out[key] = value  # left for load_state_dict to report
    return out


def convert_rrdbnet(state: StateDict, module: nn.Module) -> StateDict:
    """Map an RRDBNet state dict in any published layout to :class:`RRDBNet`'s keys.

    Handles the original xinntao/ESRGAN ``model.N`` layout, the 2019 xinntao/ESRGAN / KAIR /
    BSRGAN / RealSR layout (``RRDB_trunk``, ``trunk_conv``, ``upconvN``, ``HRconv``) and
    BasicSR's layout, which is srzoo's own and passes through unchanged.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params_ema`` etc.).
        module: The :class:`RRDBNet` they are meant for.

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_rrdbnet(torch.load("BSRGAN.pth", weights_only=True), net)["conv_hr.weight"]
    """
    if "model.0.weight" in state:
        return _convert_sequential(state)
    if any(k.startswith(("RRDB_trunk.", "trunk_conv.", "HRconv.")) for k in state):
        return rename_keys(state, _KAIR_RULES)
    return dict(state)


_ESRGAN = Paper(
    title="ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks",
    venue="ECCV Workshops",
    year=2018,
    arxiv="1809.00219",
)
_REAL_ESRGAN = Paper(
    title="Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure Synthetic Data",
    venue="ICCV Workshops",
    year=2021,
    arxiv="2107.10833",
)
_BSRGAN = Paper(
    title="Designing a Practical Degradation Model for Deep Blind Image Super-Resolution",
    venue="ICCV",
    year=2021,
    arxiv="2103.14006",
)
_REALSR = Paper(
    title="Real-World Super-Resolution via Kernel Estimation and Noise Injection",
    venue="CVPR Workshops",
    year=2020,
)

_RGB = "0-1 (RGB)"
_KAIR = "https://github.com/cszn/KAIR/releases/download/v1.0/"
_REAL_ESRGAN_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download/"
_REAL_ESRGAN_DATA = "DF2K and OutdoorSceneTraining, second-order synthetic degradations"
_BSRGAN_DATA = "DIV2K, Flickr2K, WED and FFHQ faces, BSRGAN's random shuffled degradations"


def _real_esrgan(scale: int, path: str, sha256: str, size: int, data: str) -> WeightSpec:
    return WeightSpec(
        scale=scale,
        source=f"{_REAL_ESRGAN_RELEASES}{path}",
        sha256=sha256,
        size=size,
        input_range=_RGB,
        train_data=data,
        license="BSD-3-Clause",
    )


def _register(
    name: str,
    *,
    paper: Paper,
    code_license: str,
    description: str,
    task: Task,
    scales: tuple[int, ...] = (2, 4),
    weights: tuple[WeightSpec, ...] = (),
    defaults: dict[str, object] | None = None,
    size_multiple: int = 1,
) -> None:
    register_model(
        ModelSpec(
            name=name,
            family="esrgan",
            builder=RRDBNet,
            scales=scales,
            paper=paper,
            code_license=code_license,
            description=description,
            task=task,
            weights=weights,
            converter=convert_rrdbnet,
            defaults=defaults or {},
            size_multiple=size_multiple,
        )
    )


_register(
    "esrgan",
    paper=_ESRGAN,
    code_license="Apache-2.0",
    description="ESRGAN: RRDBNet, 23 RRDB blocks, GAN-trained",
    task="gan",
    weights=(
        WeightSpec(
            scale=4,
            source=f"{_KAIR}ESRGAN.pth",
            sha256="65fece06e1ccb48853242aa972bdf00ad07a7dd8938d2dcbdf4221b59f6372ce",
            size=66929193,
            input_range=_RGB,
            train_data="DIV2K, Flickr2K and OutdoorSceneTraining, bicubic x4",
            license="Apache-2.0",
            sha256_note=(
                "KAIR's release copy, byte-identical to the authors' RRDB_ESRGAN_x4.pth "
                "(published on Google Drive only); 2019 xinntao/ESRGAN layout"
            ),
        ),
        WeightSpec(
            scale=4,
            tag="basicsr",
            source=f"{_REAL_ESRGAN_RELEASES}v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            sha256="ff704c30ff560305e48ed1f4db895e525ab6bc81a46fafe80c0094a271c806d9",
            size=66922040,
            input_range=_RGB,
            train_data="DIV2K, Flickr2K and OutdoorSceneTraining, bicubic x4",
            license="Apache-2.0",
            sha256_note="BasicSR's conversion of the official weights ({'params': ...})",
        ),
    ),
)
_register(
    "esrgan-psnr",
    paper=_ESRGAN,
    code_license="Apache-2.0",
    description="RRDB_PSNR: ESRGAN's RRDBNet trained for PSNR (L1 loss)",
    task="psnr",
)
_register(
    "realesrgan-x4plus",
    paper=_REAL_ESRGAN,
    code_license="BSD-3-Clause",
    description="Real-ESRGAN x4plus: RRDBNet for real-world photos, GAN-trained",
    task="real-world",
    weights=(
        _real_esrgan(
            4,
            "v0.1.0/RealESRGAN_x4plus.pth",
            "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
            67040989,
            _REAL_ESRGAN_DATA,
        ),
    ),
)
_register(
    "realesrnet-x4plus",
    paper=_REAL_ESRGAN,
    code_license="BSD-3-Clause",
    description="Real-ESRNet x4plus: Real-ESRGAN's generator before GAN training (L1 loss)",
    task="real-world",
    weights=(
        _real_esrgan(
            4,
            "v0.1.1/RealESRNet_x4plus.pth",
            "a820b9bde89a874d7599d545567308ce6c128fc8754a53208eda016d40aa81df",
            67040989,
            _REAL_ESRGAN_DATA,
        ),
    ),
)
_register(
    "realesrgan-x2plus",
    paper=_REAL_ESRGAN,
    code_license="BSD-3-Clause",
    description="Real-ESRGAN x2plus: pixel-unshuffled input, x4 RRDBNet tail",
    task="real-world",
    scales=(2,),
    defaults={"pixel_unshuffle": True},
    size_multiple=2,
    weights=(
        _real_esrgan(
            2,
            "v0.2.1/RealESRGAN_x2plus.pth",
            "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
            67061725,
            _REAL_ESRGAN_DATA,
        ),
    ),
)
_register(
    "realesrgan-x4plus-anime-6b",
    paper=_REAL_ESRGAN,
    code_license="BSD-3-Clause",
    description="Real-ESRGAN x4plus anime: 6 RRDB blocks, for illustrations",
    task="real-world",
    defaults={"num_block": 6},
    weights=(
        _real_esrgan(
            4,
            "v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
            "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
            17938799,
            "anime images, Real-ESRGAN's synthetic degradations",
        ),
    ),
)


def _kair(scale: int, file: str, sha256: str, size: int | None, note: str = "") -> WeightSpec:
    return WeightSpec(
        scale=scale,
        source=f"{_KAIR}{file}",
        sha256=sha256,
        size=size,
        input_range=_RGB,
        train_data=_BSRGAN_DATA,
        license="Apache-2.0",
        sha256_note=note,
    )


_register(
    "bsrgan",
    paper=_BSRGAN,
    code_license="Apache-2.0",
    description="BSRGAN: RRDBNet for blind real-world SR, GAN-trained",
    task="real-world",
    weights=(
        _kair(
            2,
            "BSRGANx2.pth",
            "614f68bcafcf123a1ea51cc75ae5741640a8b1d49dd75757ad3ad531f772c736",
            66894171,
        ),
        _kair(
            4,
            "BSRGAN.pth",
            "5d505a0766160921e0388d76e1ddf08cb114303990f9080432bf2b1c988b1c54",
            67046751,
        ),
    ),
)
_register(
    "bsrnet",
    paper=_BSRGAN,
    code_license="Apache-2.0",
    description="BSRNet: BSRGAN's generator trained for PSNR",
    task="real-world",
    weights=(
        _kair(
            4,
            "BSRNet.pth",
            "fa633d80ff4db5a546740ae8e3baebe925fc84d3c03e3e9002493acc5e88c3ec",
            None,
            note="sha256 from third-party download tables; byte size not published",
        ),
    ),
)
for _name, _what in (
    ("realsr-dped", "DPED phone photos"),
    ("realsr-df2k", "DF2K with estimated kernels and noise"),
    ("realsr-df2k-jpeg", "DF2K with estimated kernels and JPEG noise"),
):
    _register(
        _name,
        paper=_REALSR,
        code_license="Apache-2.0",
        description=f"RealSR: ESRGAN's RRDBNet trained on {_what}",
        task="real-world",
    )


_LAYOUTS = {
    "basicsr": (
        "conv_first.weight",
        "body.0.rdb1.conv1.weight",
        "conv_body.weight",
        "conv_hr.weight",
        "conv_last.weight",
    ),
    "esrgan-2019": (
        "conv_first.weight",
        "RRDB_trunk.0.RDB1.conv1.weight",
        "trunk_conv.weight",
        "HRconv.weight",
        "conv_last.weight",
    ),
    "old-esrgan": ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight"),
}


def detect_rrdbnet(shapes: Shapes) -> Detected | None:
    """Recognise an RRDBNet checkpoint in any of its layouts, from keys and shapes.

    Reads the layout (``basicsr``: BasicSR / Real-ESRGAN; ``esrgan-2019``: xinntao/ESRGAN 2019,
    KAIR, BSRGAN, RealSR; ``old-esrgan``: the original ``model.N`` keys), ``num_feat``,
    ``num_block``, ``num_grow_ch``, the image channels, and the scale from the number of
    upsampling convolutions. A first convolution taking 4 or 16 times the output channels with
    two upsampling steps is Real-ESRGAN's pixel-unshuffle variant (x2 or x1).

    Nothing is left to a default. Pixel-unshuffled networks are named ``realesrgan-x2plus``
    (whatever their scale), all others ``esrgan``: the builder and converter are the same.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an RRDBNet.
    """
    if shapes.has(*_LAYOUTS["old-esrgan"]):
        layout, first = "old-esrgan", "model.0.weight"
        num_block = shapes.count(r"model\.1\.sub\.(\d+)\.RDB1\.conv1\.0\.weight")
        tail = [i for i in shapes.indices(r"model\.(\d+)\.weight") if i >= 2]
        if len(tail) < 2 or not shapes.has(f"model.1.sub.{num_block}.weight"):
            return None
        n_up, last = len(tail) - 2, f"model.{tail[-1]}.weight"
        grow = shapes.dim("model.1.sub.0.RDB1.conv1.0.weight")
    else:
        layout = next((n for n in ("basicsr", "esrgan-2019") if shapes.has(*_LAYOUTS[n])), "")
        if not layout:
            return None
        basicsr = layout == "basicsr"
        block = (
            r"body\.(\d+)\.rdb1\.conv1\.weight"
            if basicsr
            else r"RRDB_trunk\.(\d+)\.RDB1\.conv1\.weight"
        )
        num_block = shapes.count(block)
        ups = shapes.indices(r"conv_up(\d+)\.weight" if basicsr else r"upconv(\d+)\.weight")
        if ups != list(range(1, len(ups) + 1)):
            return None
        first, last, n_up = "conv_first.weight", "conv_last.weight", len(ups)
        grow = shapes.dim(_LAYOUTS[layout][1])
    num_feat, in_total, out_ch = shapes.dim(first), shapes.dim(first, 1), shapes.dim(last)
    if min(num_block, num_feat, in_total, out_ch, grow) < 1:
        return None
    # Real-ESRGAN's x2 / x1: the input folded by pixel_unshuffle(2 or 4), then the x4 tail.
    fold = {4 * out_ch: 2, 16 * out_ch: 4}.get(in_total, 1) if n_up == 2 else 1
    args: dict[str, object] = {
        "in_channels": in_total // (fold * fold),
        "out_channels": out_ch,
        "num_feat": num_feat,
        "num_block": num_block,
        "num_grow_ch": grow,
        "pixel_unshuffle": fold > 1,
    }
    if fold > 1:
        return Detected("realesrgan-x2plus", 4 // fold, args, layout)
    return Detected("esrgan", 2**n_up, args, layout)


register_detector("esrgan", detect_rrdbnet, layouts=_LAYOUTS)
