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
