"""Real-CUGAN: bilibili's cascaded U-Nets for anime super-resolution (waifu2x's CUNet, retrained).

Code and weights: bilibili/ailab ``Real-CUGAN/upcunet_v3.py`` (MIT), 2022; there is no paper.
The architecture is waifu2x's CUNet (nagadomi/nunif ``nunif/models/waifu2x/cunet.py``), trained by
bilibili on a million-scale anime dataset.

Parameter names follow ``upcunet_v3.py`` (the keys of the released ``.pth`` files, identical to
spandrel's RealCUGAN): ``unet1`` (``conv1``, ``conv1_down``, ``conv2`` with ``seblock``,
``conv2_up``, ``conv3``, ``conv_bottom``) and ``unet2`` (``conv1`` .. ``conv5``, two downsamplings,
squeeze-excitation blocks, ``conv_bottom``), plus ``conv_final`` at x4 and in the fast model.

The networks, as spandrel's inference path computes them (the upstream ``forward`` with
``tile_mode=0`` and no clamping or 8-bit rounding):

- x2 (``UpCunet2x``): reflect-pad by 18 (and to an even size), U-Net 1 enlarges x2 with a
  transposed convolution, U-Net 2 refines and its output is added to U-Net 1's centre crop.
- x3 (``UpCunet3x``): the same with a x3 transposed convolution, padding 14 and a multiple of 4.
- x4 (``UpCunet4x``): padding 19; both U-Nets keep 64 features, ``conv_final`` and a x2 pixel
  shuffle make the picture, the nearest-neighbour x4 enlargement of the input is added.
- fast x2 (``UpCunet2x_fast``, bilibili's VapourSynth script): padding 38, a x2 pixel unshuffle
  first, then as x4. Upstream pads to an even size, which fails when the side is 2 modulo 4; this
  module pads to a multiple of 4 (identical where upstream works).
- ``pro``: the "pro" weights expect ``0.7 * x + 0.15`` and give ``(y - 0.15) / 0.7``. Their files
  carry a ``pro`` entry, which marks them (detection) and which the converter drops.

Every padding is a reflection; where the image is smaller than the padding the reflection repeats
(upstream and spandrel refuse such images), so any size >= 1 works. The squeeze-excitation blocks
average over the whole (padded) image: the network is global (tiling changes the result).
``alpha`` scales the deepest features of U-Net 2 (upstream's enhancement strength, 1 by default).

Weights (not registered): the released checkpoints (``up2x-latest-{no-denoise,conservative,
denoise1x,denoise2x,denoise3x}.pth``, ``up3x-`` / ``up4x-latest-{no-denoise,conservative,
denoise3x}.pth``, ``pro-{no-denoise,conservative,denoise3x}-up{2,3}x.pth``) are distributed on
Google Drive (folder ``1UFgpV14uEAcgYvVw0fJuajzy1k7JIz6H``), Baidu netdisk and inside the Windows
packages of the GitHub release ``Real-CUGAN``; no digest is published, so none is registered. Any
of them loads with ``srzoo.load_file(path)`` (or ``srzoo.load("realcugan", scale=s, weights=path)``;
the denoise level is a property of the file, not of the network). No benchmark numbers are
published.

Example:
    >>> model = srzoo.load_file("up2x-latest-denoise3x.pth")
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
    Shapes,
    StateDict,
    register_detector,
    register_model,
)
from ._blocks import image_forward
from ._window import reflect_pad

__all__ = ["UpCunet", "convert_realcugan", "detect_realcugan"]


def _crop(x: torch.Tensor, n: int) -> torch.Tensor:
    return x[:, :, n:-n, n:-n]


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1, inplace=True)


class _SEBlock(nn.Module):
    """Squeeze-excitation: the image-wide mean of each channel gates that channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels // 8, 1)
        self.conv2 = nn.Conv2d(channels // 8, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = x.mean(dim=(2, 3), keepdim=True, dtype=torch.float32).to(x.dtype)
        gate = torch.sigmoid(self.conv2(F.relu(self.conv1(gate))))
        return x * gate


class _UNetConv(nn.Module):
    """Two unpadded 3x3 convolutions with LeakyReLU, and squeeze-excitation where ``se``."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, *, se: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, mid_ch, 3),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(mid_ch, out_ch, 3),
            nn.LeakyReLU(0.1, inplace=True),
        )
        self.seblock: nn.Module = _SEBlock(out_ch) if se else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.seblock(self.conv(x))
        return out


class _UNet1(nn.Module):
    """The first U-Net: one downsampling; its transposed output convolution enlarges x2 or x3."""

    def __init__(self, in_ch: int, out_ch: int, *, factor: int) -> None:
        super().__init__()
        self.conv1 = _UNetConv(in_ch, 32, 64, se=False)
        self.conv1_down = nn.Conv2d(64, 64, 2, stride=2)
        self.conv2 = _UNetConv(64, 128, 64, se=True)
        self.conv2_up = nn.ConvTranspose2d(64, 64, 2, stride=2)
        self.conv3 = nn.Conv2d(64, 64, 3)
        # x2: kernel 4, stride 2, padding 3; x3: kernel 5, stride 3, padding 2 (upstream's).
        kernel, padding = (4, 3) if factor == 2 else (5, 2)
        self.conv_bottom = nn.ConvTranspose2d(64, out_ch, kernel, stride=factor, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.conv2(_lrelu(self.conv1_down(x1)))
        x2 = _lrelu(self.conv2_up(x2))
        x3 = _lrelu(self.conv3(_crop(x1, 4) + x2))
        out: torch.Tensor = self.conv_bottom(x3)
        return out


class _UNet2(nn.Module):
    """The second U-Net: two downsamplings, squeeze-excitation at every depth, size-reducing."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = _UNetConv(in_ch, 32, 64, se=False)
        self.conv1_down = nn.Conv2d(64, 64, 2, stride=2)
        self.conv2 = _UNetConv(64, 64, 128, se=True)
        self.conv2_down = nn.Conv2d(128, 128, 2, stride=2)
        self.conv3 = _UNetConv(128, 256, 128, se=True)
        self.conv3_up = nn.ConvTranspose2d(128, 128, 2, stride=2)
        self.conv4 = _UNetConv(128, 64, 64, se=True)
        self.conv4_up = nn.ConvTranspose2d(64, 64, 2, stride=2)
        self.conv5 = nn.Conv2d(64, 64, 3)
        self.conv_bottom = nn.Conv2d(64, out_ch, 3)

    def forward(self, x: torch.Tensor, alpha: float) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.conv2(_lrelu(self.conv1_down(x1)))
        x3 = self.conv3(_lrelu(self.conv2_down(x2)))
        x3 = _lrelu(self.conv3_up(x3))
        x4 = self.conv4(_crop(x2, 4) + x3)
        if alpha != 1.0:
            x4 = x4 * alpha
        x4 = _lrelu(self.conv4_up(x4))
        x5 = _lrelu(self.conv5(_crop(x1, 16) + x4))
        out: torch.Tensor = self.conv_bottom(x5)
        return out


class UpCunet(nn.Module):
    """Real-CUGAN at x2, x3 or x4 (``UpCunet2x`` / ``3x`` / ``4x``) or the fast x2 model.

    Args:
        scale: 2, 3 or 4.
        in_channels: Image channels taken.
        out_channels: Image channels returned.
        pro: The "pro" weights' input and output mapping (``0.7 * x + 0.15``).
        fast: The fast x2 model (``UpCunet2x_fast``: pixel-unshuffled input, x4's tail).
        alpha: Scale of U-Net 2's deepest features (upstream's enhancement strength).

    Example:
        >>> UpCunet(scale=2)(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 3,
        out_channels: int = 3,
        pro: bool = False,
        fast: bool = False,
        alpha: float = 1.0,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4) or isinstance(scale, bool):
            raise ArgumentError(f"Real-CUGAN: scale must be 2, 3 or 4, got {scale!r}")
        if fast and (scale != 2 or pro):
            raise ArgumentError("Real-CUGAN: the fast model is x2 only and has no pro weights")
        if in_channels < 1 or out_channels < 1:
            raise ArgumentError(
                f"Real-CUGAN: needs in_channels, out_channels >= 1, got {in_channels} and "
                f"{out_channels}"
            )
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.pro = pro
        self.fast = fast
        self.alpha = float(alpha)
        # Squeeze-excitation averages over the whole padded image.
        self.receptive_field: int | None = None
        # Reflection padding and the multiple the padded size must have.
        self.padding, self.multiple = {2: (18, 2), 3: (14, 4), 4: (19, 2)}[scale]
        if fast:
            self.padding, self.multiple = 38, 4
        tail = scale == 4 or fast
        unet_in = 4 * in_channels if fast else in_channels
        self.unet1 = _UNet1(unet_in, 64 if tail else out_channels, factor=3 if scale == 3 else 2)
        self.unet2 = _UNet2(64 if tail else in_channels, 64 if tail else out_channels)
        if tail:
            self.conv_final = nn.Conv2d(64, 4 * out_channels, 3)

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if self.pro:
            x = x * 0.7 + 0.15
        p, m = self.padding, self.multiple
        y = reflect_pad(x, p + (-h % m), p + (-w % m), top=p, left=p)
        if self.fast:
            y = F.pixel_unshuffle(y, 2)
        y = self.unet1(y)
        y = self.unet2(y, self.alpha) + _crop(y, 20)
        if self.scale == 4 or self.fast:
            y = F.pixel_shuffle(_crop(self.conv_final(y), 1), 2)
        s = self.scale
        y = y[:, :, : h * s, : w * s]
        if self.scale == 4 or self.fast:
            y = y + F.interpolate(x, scale_factor=s, mode="nearest")
        if self.pro:
            y = (y - 0.15) / 0.7
        return y


def convert_realcugan(state: StateDict, module: nn.Module) -> StateDict:
    """Drop the ``pro`` marker of the "pro" files: the module takes ``pro=True`` instead.

    Args:
        state: The checkpoint's tensors.
        module: The :class:`UpCunet` they are meant for.

    Returns:
        The tensors without ``pro``.

    Example:
        >>> "pro" in convert_realcugan({"pro": torch.zeros(1), **weights}, model)
        False
    """
    return {k: v for k, v in state.items() if k != "pro"}


_CODE = "MIT"
_PAPER = Paper(
    title="Real Cascade U-Nets for Anime Image Super Resolution (Real-CUGAN, no paper)",
    venue="bilibili/ailab on GitHub",
    year=2022,
)


def _register(name: str, scales: tuple[int, ...], description: str, **defaults: bool) -> None:
    register_model(
        ModelSpec(
            name=name,
            family="realcugan",
            builder=UpCunet,
            scales=scales,
            default_scale=2,
            paper=_PAPER,
            code_license=_CODE,
            description=description,
            task="real-world",
            colour="rgb",
            defaults={"in_channels": 3, "out_channels": 3, **defaults},
            converter=convert_realcugan,
            # x3 and the fast model pad to a multiple of 4, x2 and x4 to 2: 4 serves all.
            size_multiple=4,
        )
    )


_register(
    "realcugan",
    (2, 3, 4),
    "Real-CUGAN: two cascaded U-Nets for anime (x2/x3/x4; denoise level from the weights)",
    pro=False,
    fast=False,
)
_register(
    "realcugan-pro",
    (2, 3),
    "Real-CUGAN pro: the x2/x3 networks with the pro weights' 0.7x + 0.15 input mapping",
    pro=True,
    fast=False,
)
_register(
    "realcugan-fast",
    (2,),
    "Real-CUGAN fast x2: pixel-unshuffled input through the x4 network's U-Nets",
    pro=False,
    fast=True,
)


_LAYOUTS = {
    "official": (
        "unet1.conv1.conv.0.weight",
        "unet1.conv1_down.weight",
        "unet1.conv_bottom.weight",
        "unet2.conv3.seblock.conv1.weight",
        "unet2.conv_bottom.weight",
    )
}


def detect_realcugan(shapes: Shapes) -> Detected | None:
    """Recognise a Real-CUGAN checkpoint (bilibili/ailab's keys) from its keys and shapes.

    The scale comes from U-Net 1's transposed output convolution (kernel 5: x3) and from
    ``conv_final`` (x4, or the fast x2 model when U-Net 1 takes four times the output channels,
    as spandrel decides too: the two are otherwise alike); the channels from the first and last
    convolutions; ``pro`` from the file's ``pro`` entry. ``alpha`` is an inference setting:
    1 is used.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not Real-CUGAN.

    Example:
        >>> detect_realcugan(Shapes(UpCunet(scale=3).state_dict())).scale
        3
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    unet_in = shapes.dim("unet1.conv1.conv.0.weight", 1)
    bottom = shapes["unet1.conv_bottom.weight"]
    pro = shapes.has("pro")
    fast = False
    if shapes.has("conv_final.weight"):
        out_ch = shapes.dim("conv_final.weight") // 4
        if out_ch * 4 == unet_in:
            scale, fast, in_ch = 2, True, unet_in // 4
        else:
            scale, in_ch = 4, unet_in
        if bottom[2:] != (4, 4) or shapes.dim("unet2.conv_bottom.weight") != 64:
            return None
    else:
        scale = 3 if bottom[2:] == (5, 5) else 2
        in_ch, out_ch = unet_in, shapes.dim("unet2.conv_bottom.weight")
        if bottom[1] != out_ch:
            return None
    if fast and pro:
        return None
    args = {"in_channels": in_ch, "out_channels": out_ch, "pro": pro, "fast": fast}
    name = "realcugan-fast" if fast else "realcugan-pro" if pro else "realcugan"
    if pro and scale == 4:
        name = "realcugan"  # no pro x4 weights were released; the network takes pro=True
    return Detected(name, scale, args, "official")


register_detector("realcugan", detect_realcugan, layouts=_LAYOUTS)
