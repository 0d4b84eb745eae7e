"""GAN discriminators for fine-tuning: SRGAN/ESRGAN's VGG-style one and Real-ESRGAN's U-Net.

They are not upscalers and are not in the model registry. Both follow the parameter names of
their official code, so the published discriminator checkpoints load unchanged:

- :class:`VGGStyleDiscriminator`: the discriminator of SRGAN (Ledig et al., CVPR 2017,
  arXiv:1609.04802) as ESRGAN (Wang et al., ECCV Workshops 2018, arXiv:1809.00219) trains it;
  names from BasicSR ``basicsr/archs/discriminator_arch.py`` (``conv0_0`` ... ``linear2``). It
  scores a whole ``input_size x input_size`` patch (128 or 256): output ``(N, 1)``.
- :class:`UNetDiscriminatorSN`: Real-ESRGAN's U-Net with spectral normalisation (Wang et al.,
  ICCV Workshops 2021, arXiv:2107.10833); names from xinntao/Real-ESRGAN
  ``realesrgan/archs/discriminator_arch.py``, with the ``weight_orig`` / ``weight_u`` /
  ``weight_v`` tensors of ``torch.nn.utils.spectral_norm`` that the published
  ``RealESRGAN_x4plus_netD.pth`` / ``RealESRGAN_x2plus_netD.pth`` hold (under ``params``). It
  scores every pixel: output ``(N, 1, H, W)``, for ``H`` and ``W`` multiples of 8.

:func:`load_discriminator` reads such a file (safely: safetensors, or a pickle with
``weights_only=True``), tells the two apart from their keys, reads the widths from the shapes,
and returns the module in training mode. Checkpoints written with the newer
``torch.nn.utils.parametrizations.spectral_norm`` load too.

Example:
    >>> from srzoo.discriminators import UNetDiscriminatorSN, load_discriminator
    >>> net_d = load_discriminator("RealESRGAN_x4plus_netD.pth")
    >>> net_d(torch.rand(2, 3, 256, 256)).shape
    torch.Size([2, 1, 256, 256])
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ArgumentError, IncompatibleWeightsError, WeightsError
from .weights import read_state_dict, unwrap_state_dict

__all__ = ["UNetDiscriminatorSN", "VGGStyleDiscriminator", "load_discriminator"]

_SLOPE = 0.2  # LeakyReLU slope of both discriminators


def _check_input(x: torch.Tensor, name: str, channels: int) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ArgumentError(
            f"{name} expects a float tensor (N, {channels}, H, W), got shape {tuple(x.shape)}"
        )


class VGGStyleDiscriminator(nn.Module):
    """SRGAN / ESRGAN's discriminator: ten strided VGG-style convolutions, two linear layers.

    Five stages (six for 256 inputs) of a 3x3 convolution and a 4x4 stride-2 convolution, each
    but the first followed by batch normalisation and LeakyReLU(0.2), halve the patch down to
    4x4 at ``num_feat * 8`` channels; ``linear1`` (to 100) and ``linear2`` (to 1) give one logit.

    Args:
        num_in_ch: Input channels.
        num_feat: Channels of the first stage (doubling to ``8 * num_feat``).
        input_size: Side of the square patches it scores: 128 or 256.
    """

    def __init__(self, *, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in (128, 256):
            raise ArgumentError(
                f"VGGStyleDiscriminator: input_size must be 128 or 256, got {input_size}"
            )
        if num_in_ch < 1 or num_feat < 1:
            raise ArgumentError(
                f"VGGStyleDiscriminator: num_in_ch and num_feat must be positive, got "
                f"{num_in_ch} and {num_feat}"
            )
        self.in_channels = num_in_ch
        self.input_size = input_size
        widths = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        if input_size == 256:
            widths.append(num_feat * 8)
        self.num_stages = len(widths)
        previous = num_in_ch
        for i, width in enumerate(widths):
            # Stage 0's first convolution has a bias and no normalisation; every other one feeds
            # a batch norm and has none.
            self.add_module(f"conv{i}_0", nn.Conv2d(previous, width, 3, 1, 1, bias=i == 0))
            if i > 0:
                self.add_module(f"bn{i}_0", nn.BatchNorm2d(width))
            self.add_module(f"conv{i}_1", nn.Conv2d(width, width, 4, 2, 1, bias=False))
            self.add_module(f"bn{i}_1", nn.BatchNorm2d(width))
            previous = width
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score ``(N, C, input_size, input_size)`` patches: logits ``(N, 1)``."""
        _check_input(x, "VGGStyleDiscriminator", self.in_channels)
        if x.shape[2] != self.input_size or x.shape[3] != self.input_size:
            raise ArgumentError(
                f"VGGStyleDiscriminator(input_size={self.input_size}) scores "
                f"{self.input_size}x{self.input_size} patches, got {x.shape[2]}x{x.shape[3]}; "
                "crop the patches to that size or build it with the other input_size"
            )
        feat = x
        for i in range(self.num_stages):
            feat = self.get_submodule(f"conv{i}_0")(feat)
            if i > 0:
                feat = self.get_submodule(f"bn{i}_0")(feat)
            feat = F.leaky_relu(feat, _SLOPE)
            feat = self.get_submodule(f"bn{i}_1")(self.get_submodule(f"conv{i}_1")(feat))
            feat = F.leaky_relu(feat, _SLOPE)
        feat = F.leaky_relu(self.linear1(feat.flatten(1)), _SLOPE)
        out: torch.Tensor = self.linear2(feat)
        return out


def _sn_conv(in_ch: int, out_ch: int, kernel: int, stride: int) -> nn.Conv2d:
    # The original hook-based spectral norm: its tensors are named weight_orig / weight_u /
    # weight_v, as in the published checkpoints.
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride, 1, bias=False)
    return nn.utils.spectral_norm(conv)


class UNetDiscriminatorSN(nn.Module):
    """Real-ESRGAN's per-pixel U-Net discriminator with spectral normalisation.

    Three stride-2 4x4 convolutions down (``conv1``-``conv3``), three bilinear x2 upsamplings
    each followed by a 3x3 convolution (``conv4``-``conv6``) with skip connections from the
    matching scale, two more 3x3 convolutions and a last one to one channel. Every convolution
    but the first and the last is spectrally normalised; LeakyReLU(0.2) after all but the last.

    Args:
        num_in_ch: Input channels.
        num_feat: Channels at full resolution (``2x``, ``4x``, ``8x`` at the lower scales).
        skip_connection: Add the encoder's features at each scale of the decoder.
    """

    def __init__(
        self, *, num_in_ch: int = 3, num_feat: int = 64, skip_connection: bool = True
    ) -> None:
        super().__init__()
        if num_in_ch < 1 or num_feat < 1:
            raise ArgumentError(
                f"UNetDiscriminatorSN: num_in_ch and num_feat must be positive, got "
                f"{num_in_ch} and {num_feat}"
            )
        self.in_channels = num_in_ch
        self.skip_connection = skip_connection
        f = num_feat
        self.conv0 = nn.Conv2d(num_in_ch, f, 3, 1, 1)
        self.conv1 = _sn_conv(f, 2 * f, 4, 2)
        self.conv2 = _sn_conv(2 * f, 4 * f, 4, 2)
        self.conv3 = _sn_conv(4 * f, 8 * f, 4, 2)
        self.conv4 = _sn_conv(8 * f, 4 * f, 3, 1)
        self.conv5 = _sn_conv(4 * f, 2 * f, 3, 1)
        self.conv6 = _sn_conv(2 * f, f, 3, 1)
        self.conv7 = _sn_conv(f, f, 3, 1)
        self.conv8 = _sn_conv(f, f, 3, 1)
        self.conv9 = nn.Conv2d(f, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Score every pixel of ``(N, C, H, W)`` images, sides multiples of 8: ``(N, 1, H, W)``."""
        _check_input(x, "UNetDiscriminatorSN", self.in_channels)
        if x.shape[2] % 8 or x.shape[3] % 8:
            raise ArgumentError(
                f"UNetDiscriminatorSN needs heights and widths that are multiples of 8 (it "
                f"halves them three times), got {x.shape[2]}x{x.shape[3]}; crop or pad the patches"
            )
        x0 = F.leaky_relu(self.conv0(x), _SLOPE)
        x1 = F.leaky_relu(self.conv1(x0), _SLOPE)
        x2 = F.leaky_relu(self.conv2(x1), _SLOPE)
        x3 = F.leaky_relu(self.conv3(x2), _SLOPE)
        up = x3
        for conv, skip in ((self.conv4, x2), (self.conv5, x1), (self.conv6, x0)):
            up = F.interpolate(up, scale_factor=2, mode="bilinear", align_corners=False)
            up = F.leaky_relu(conv(up), _SLOPE)
            if self.skip_connection:
                up = up + skip
        out = F.leaky_relu(self.conv7(up), _SLOPE)
        out = F.leaky_relu(self.conv8(out), _SLOPE)
        result: torch.Tensor = self.conv9(out)
        return result


# torch.nn.utils.parametrizations.spectral_norm's names -> the hook-based ones the module uses.
_PARAMETRIZED = (
    (re.compile(r"^(.*)\.parametrizations\.weight\.original$"), r"\1.weight_orig"),
    (re.compile(r"^(.*)\.parametrizations\.weight\.0\._u$"), r"\1.weight_u"),
    (re.compile(r"^(.*)\.parametrizations\.weight\.0\._v$"), r"\1.weight_v"),
)


def _hook_names(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for pattern, replacement in _PARAMETRIZED:
            key = pattern.sub(replacement, key)
        out[key] = value
    return out


def load_discriminator(
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    skip_connection: bool = True,
    strict: bool = True,
) -> VGGStyleDiscriminator | UNetDiscriminatorSN:
    """Build the discriminator a checkpoint holds and load it.

    The kind comes from the keys (``linear1`` for the VGG style, ``conv9`` for the U-Net), the
    input channels and widths from the shapes, and the VGG input size from the presence of a
    sixth stage. Whether the U-Net adds its skip connections leaves no trace in the weights:
    ``skip_connection`` says it (Real-ESRGAN's published discriminators use them).

    Args:
        weights: A checkpoint file (safetensors, or a PyTorch file read with
            ``weights_only=True``; ``params`` / ``params_ema`` / ``state_dict`` wrappers and
            ``module.`` prefixes are removed) or a state dict.
        skip_connection: For a U-Net: whether it was trained with skip connections.
        strict: Refuse weights that do not cover every tensor exactly; ``False`` loads the
            tensors whose names and shapes fit and leaves the rest as initialised.

    Returns:
        The discriminator in training mode, on the CPU, in float32.

    Raises:
        WeightsError: The file cannot be read, or holds neither discriminator.
        IncompatibleWeightsError: ``strict`` and the weights do not fit the discriminator.

    Example:
        >>> net_d = load_discriminator("RealESRGAN_x4plus_netD.pth")
        >>> type(net_d).__name__
        'UNetDiscriminatorSN'
    """
    if isinstance(weights, Mapping):
        state = unwrap_state_dict(weights, source="the state dict")
        source = None
    else:
        state = read_state_dict(weights)
        source = os.fspath(weights)
    state = _hook_names(state)
    model: VGGStyleDiscriminator | UNetDiscriminatorSN
    if "linear1.weight" in state and "conv0_0.weight" in state:
        first = state["conv0_0.weight"]
        model = VGGStyleDiscriminator(
            num_in_ch=first.shape[1],
            num_feat=first.shape[0],
            input_size=256 if "conv5_0.weight" in state else 128,
        )
        name = "VGGStyleDiscriminator"
    elif "conv9.weight" in state and "conv0.weight" in state:
        first = state["conv0.weight"]
        model = UNetDiscriminatorSN(
            num_in_ch=first.shape[1], num_feat=first.shape[0], skip_connection=skip_connection
        )
        name = "UNetDiscriminatorSN"
    else:
        origin = f" in {source}" if source else ""
        raise WeightsError(
            f"the weights{origin} are not a discriminator srzoo knows: a VGG-style one has "
            "conv0_0.weight and linear1.weight, Real-ESRGAN's U-Net conv0.weight and "
            f"conv9.weight; found {len(state)} tensors such as {', '.join(sorted(state)[:3])}"
        )
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [
        (k, tuple(expected[k].shape), tuple(state[k].shape))
        for k in sorted(set(expected) & set(state))
        if expected[k].shape != state[k].shape
    ]
    if strict and (missing or unexpected or mismatched):
        raise IncompatibleWeightsError(
            name, missing=missing, unexpected=unexpected, mismatched=mismatched, source=source
        )
    wrong = {k for k, _, _ in mismatched}
    model.load_state_dict(
        {k: v for k, v in state.items() if k in expected and k not in wrong}, strict=strict
    )
    return model.train()
