"""Layers shared by two or more architecture families."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DIV2K_RGB_MEAN", "MeanShift", "Upsampler", "conv3x3", "fill_mean_shifts", "rename_keys"]

DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)
"""Mean RGB colour of DIV2K, subtracted by EDSR, RCAN and their successors."""


def conv3x3(in_ch: int, out_ch: int, *, bias: bool = True) -> nn.Conv2d:
    """A 3x3 convolution with 'same' padding.

    Args:
        in_ch: Input channels.
        out_ch: Output channels.
        bias: Whether the convolution has a bias.

    Returns:
        The convolution.

    Example:
        >>> conv3x3(64, 64)
    """
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias)


class MeanShift(nn.Module):
    """Add or subtract a per-channel mean, stored as a frozen 1x1 convolution.

    The EDSR-PyTorch checkpoints keep these as ``sub_mean`` / ``add_mean`` convolution weights,
    so the parameters are named ``weight`` and ``bias`` to load those files unchanged.

    Args:
        rgb_range: Value range the network works in (255 for the EDSR family).
        rgb_mean: Mean colour, in [0, 1] units.
        rgb_std: Standard deviation per channel.
        sign: ``-1`` subtracts the mean, ``+1`` adds it back.
    """

    def __init__(
        self,
        *,
        rgb_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
        rgb_std: Sequence[float] = (1.0, 1.0, 1.0),
        sign: int = -1,
    ) -> None:
        super().__init__()
        self.rgb_range = rgb_range
        self.rgb_mean = tuple(rgb_mean)
        self.rgb_std = tuple(rgb_std)
        self.sign = sign
        self.weight = nn.Parameter(torch.empty(3, 3, 1, 1), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(3), requires_grad=False)
        if not self.weight.is_meta:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill ``weight`` and ``bias`` from the configured mean and standard deviation."""
        w, b = self.default_state()
        with torch.no_grad():
            self.weight.copy_(w)
            self.bias.copy_(b)

    def default_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The weight and bias this layer holds when freshly built (on the CPU).

        Returns:
            ``(weight, bias)`` as EDSR-PyTorch computes them.
        """
        std = torch.tensor(self.rgb_std, dtype=torch.float32)
        weight = torch.eye(3).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
        bias = self.sign * self.rgb_range * torch.tensor(self.rgb_mean) / std
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


class Upsampler(nn.Sequential):
    """Sub-pixel upsampler of EDSR-PyTorch: ``log2(scale)`` x (conv, shuffle 2), or one x3 stage.

    Indices match the official checkpoints (``tail.0.0``, ``tail.0.2``, ...).

    Args:
        scale: 2, 3 or a power of two.
        n_feats: Feature channels.
    """

    def __init__(self, *, scale: int, n_feats: int) -> None:
        layers: list[nn.Module] = []
        if scale > 0 and scale & (scale - 1) == 0:
            for _ in range(int(math.log2(scale))):
                layers += [conv3x3(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [conv3x3(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
        else:
            raise ValueError(f"sub-pixel upsampler supports 3 and powers of two, not {scale}")
        super().__init__(*layers)


def fill_mean_shifts(state: dict[str, torch.Tensor], module: nn.Module) -> None:
    """Add the module's default mean-shift tensors to ``state`` where a layout lacks them.

    Layouts such as BasicSR's keep the mean as a constant instead of a layer; the official
    layout stores it, so loading from the former fills in what the latter expects.

    Args:
        state: A state dict in the module's own keys, completed in place.
        module: The module the state dict is meant for.
    """
    for name, child in module.named_children():
        if isinstance(child, MeanShift):
            weight, bias = child.default_state()
            state.setdefault(f"{name}.weight", weight)
            state.setdefault(f"{name}.bias", bias)


def rename_keys(
    state: dict[str, torch.Tensor], rules: Sequence[tuple[str, str]]
) -> dict[str, torch.Tensor]:
    """Rename keys with regular-expression rules, the first matching rule winning.

    Args:
        state: The state dict to rename.
        rules: ``(pattern, replacement)`` pairs for :func:`re.sub`, anchored at the key's start.

    Returns:
        A new dict with renamed keys (keys no rule matches are kept as they are).
    """

    compiled = [(re.compile(p), r) for p, r in rules]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key
        for pattern, repl in compiled:
            if pattern.match(key):
                new = pattern.sub(repl, key, count=1)
                break
        out[new] = value
    return out


def _symmetric_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by ``pad`` with MATLAB's 'symmetric' mirroring."""
    idx = torch.arange(-pad, n + pad, device=device)
    period = torch.remainder(idx, 2 * n)
    return torch.where(period < n, period, 2 * n - 1 - period)


def matlab_bicubic_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Enlarge by an integer factor exactly as MATLAB's ``imresize(x, scale, 'bicubic')``.

    SRCNN and VDSR were trained on inputs enlarged with MATLAB, whose cubic kernel uses
    ``a = -0.5`` (PyTorch's ``bicubic`` uses ``a = -0.75``) and mirrors the border with the edge
    pixel repeated. For an integer factor each output phase has fixed taps on five neighbours,
    so the resize is two separable strided convolutions over a mirrored copy: no resize matrix,
    no host round trip, and nothing that depends on tensor values (compile-clean). When
    enlarging, MATLAB applies no antialiasing, so none is applied here.

    Args:
        x: Float tensor ``(N, C, H, W)``.
        scale: Integer enlargement factor (>= 1).

    Returns:
        Tensor ``(N, C, H * scale, W * scale)`` with ``x``'s dtype and device.

    Raises:
        ValueError: ``scale`` is not a positive integer or ``x`` is not 4-D.

    Example:
        >>> matlab_bicubic_upsample(torch.rand(1, 1, 8, 8), 3).shape
        torch.Size([1, 1, 24, 24])
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    if x.dim() != 4:
        raise ValueError(f"expected a tensor (N, C, H, W), got shape {tuple(x.shape)}")
    if scale == 1:
        return x
    n, c, h, w = x.shape
    # Float64 taps for float64 input; float32 otherwise (the taps are exact to ~1e-7 there).
    tap_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    # Output pixel s*i + j samples input position i + (j + 0.5) / s - 0.5 (MATLAB's mapping);
    # its taps sit at i - 2 .. i + 2 with Keys' cubic (a = -0.5) of the distance.
    phase = (torch.arange(scale, device=x.device, dtype=tap_dtype) + 0.5) / scale - 0.5
    offsets = torch.arange(-2, 3, device=x.device, dtype=tap_dtype)
    d = (phase[:, None] - offsets[None, :]).abs()
    d2 = d * d
    d3 = d2 * d
    taps = torch.where(
        d <= 1,
        1.5 * d3 - 2.5 * d2 + 1.0,
        torch.where(d < 2, -0.5 * d3 + 2.5 * d2 - 4.0 * d + 2.0, torch.zeros_like(d)),
    )
    taps = (taps / taps.sum(dim=1, keepdim=True)).to(x.dtype)  # (scale, 5)

    planes = x.reshape(n * c, 1, h, w)
    # Height: mirror, then one output channel per phase, then interleave the phases.
    planes = planes.index_select(2, _symmetric_index(h, 2, x.device))
    planes = F.conv2d(planes, taps.view(scale, 1, 5, 1))  # (nc, s, h, w)
    planes = planes.permute(0, 2, 1, 3).reshape(n * c, 1, h * scale, w)
    # Width, the same way.
    planes = planes.index_select(3, _symmetric_index(w, 2, x.device))
    planes = F.conv2d(planes, taps.view(scale, 1, 1, 5))  # (nc, s, h*s, w)
    planes = planes.permute(0, 2, 3, 1).reshape(n, c, h * scale, w * scale)
    return planes


def check_luma_input(x: torch.Tensor, channels: int, name: str) -> None:
    """Raise a clear error unless ``x`` is an ``(N, channels, H, W)`` tensor.

    The single-channel classics (SRCNN, FSRCNN, ESPCN, VDSR) take the Y channel; an RGB tensor
    would otherwise fail deep inside a convolution with a message about weight shapes.

    Args:
        x: The input tensor.
        channels: Channels the model expects (1 for the Y-channel models).
        name: Model name for the message.

    Raises:
        ValueError: Wrong rank or channel count.

    Example:
        >>> check_luma_input(torch.rand(1, 1, 8, 8), 1, "SRCNN")
    """
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{name} takes an (N, {channels}, H, W) tensor (the Y channel in [0, 1]), got shape "
            f"{tuple(x.shape)}. Convert RGB to Y first, e.g. with srzoo.metrics.rgb_to_y."
        )
