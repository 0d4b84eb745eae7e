"""SPAN: swift parameter-free attention network.

Paper: Wan, Yu, Li, Chen, Zou, Liu, Yin, Zuo, "Swift Parameter-free Attention Network for
Efficient Super-Resolution", CVPR Workshops (NTIRE) 2024, arXiv:2311.12770.

Parameter names follow hongyuanyu/SPAN ``basicsr/archs/span_arch.py`` (identical to spandrel's
SPAN), so the official ``spanx2_ch48.pth`` / ``spanx4_ch48.pth`` files load unchanged.

Each :class:`Conv3XC` trains as three stacked convolutions plus a 1x1 shortcut, which together
are one 3x3 convolution. The original recomputes that kernel at every eval forward and writes it
into ``eval_conv``; srzoo never modifies the module in ``forward``, so the checkpoints'
``eval_conv`` tensors are kept only to load and save the official layout and are never read.

Re-parameterisation follows the RepVGG convention: ``model.eval().fuse()`` folds every
:class:`Conv3XC`'s branches into one 3x3 kernel, stored beside the parameters as non-persistent
buffers (the state dict is unchanged), and returns the model. Any network with a callable
``fuse`` follows this convention, so a loader can apply it without knowing the family. Fusing is
only a speed-up, never needed for correctness:

- An eval-mode module that was never fused computes the kernel from the branches at every
  forward, inside the graph, as the original does.
- The fused kernel is used only in eval mode and only where autograd needs no gradient for the
  branch parameters (under ``torch.no_grad`` / ``torch.inference_mode``, or with frozen
  parameters); otherwise the forward computes the kernel from the branches, so gradients reach
  every parameter.
- ``model.train()`` drops the fused kernels, and ``load_state_dict`` refreshes them from the
  loaded tensors.
- After changing the parameters any other way (an optimizer step or an EMA update while the
  model stays in eval mode, writes through ``param.data``), call ``fuse()`` again.

Receptive field: ``conv_1``, three 3x3 convolutions in each of the six blocks, ``conv_2`` and
the head's 3x3 convolution, all at low resolution: 21 pixels at every scale (the blocks'
attention is a pixel-wise gate).

Example:
    >>> model = srzoo.create("span", 4).eval().fuse()
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ArgumentError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    WeightSpec,
    register_detector,
    register_model,
    shuffle_split,
)
from ._blocks import DIV2K_RGB_MEAN, image_forward, pixel_shuffle_head, receptive_radius

__all__ = ["SPAB", "SPAN", "Conv3XC", "detect_span"]

_ConvT = TypeVar("_ConvT", bound="Conv3XC")
_S = TypeVar("_S", bound="SPAN")


def _check_eval_mode(module: nn.Module) -> None:
    if module.training:
        # In training mode the branches are always used, so a stored kernel would only go stale.
        raise ArgumentError(
            f"{type(module).__name__}.fuse() prepares the module for inference: call .eval() "
            "first (model = model.eval().fuse())"
        )


def _refresh_after_load(module: nn.Module, incompatible_keys: Any) -> None:
    """A load-state-dict post-hook: a fused kernel is recomputed from the loaded branches."""
    del incompatible_keys
    if isinstance(module, Conv3XC) and module.fused_weight is not None:
        module._store_fused_kernel()


class Conv3XC(nn.Module):
    """A re-parameterisable 3x3 convolution: 1x1 -> 3x3 -> 1x1 with a 1x1 shortcut.

    Args:
        c_in: Input channels.
        c_out: Output channels.
        gain: Expansion of the hidden layers.
    """

    fused_weight: torch.Tensor | None
    fused_bias: torch.Tensor | None

    def __init__(self, c_in: int, c_out: int, *, gain: int = 2) -> None:
        super().__init__()
        self.sk = nn.Conv2d(c_in, c_out, 1)
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c_in * gain, 1),
            nn.Conv2d(c_in * gain, c_out * gain, 3),
            nn.Conv2d(c_out * gain, c_out, 1),
        )
        self.eval_conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.eval_conv.requires_grad_(False)
        # Buffers, so that .to(), .half(), deep copies and pickles carry the fused kernel along;
        # non-persistent, so that fusing leaves the state dict as it was.
        self.register_buffer("fused_weight", None, persistent=False)
        self.register_buffer("fused_bias", None, persistent=False)
        self.register_load_state_dict_post_hook(_refresh_after_load)  # type: ignore[no-untyped-call]

    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 convolution equivalent to the three branches plus the shortcut.

        Computed from the current parameters, differentiably; :meth:`fuse` stores it.

        Returns:
            ``(weight, bias)`` of shape ``(c_out, c_in, 3, 3)`` and ``(c_out,)``.

        Example:
            >>> weight, bias = block.fused_kernel()
        """
        first, mid, last = (cast(nn.Conv2d, self.conv[i]) for i in range(3))
        w1, w2, w3 = first.weight[:, :, 0, 0], mid.weight, last.weight[:, :, 0, 0]
        weight = torch.einsum("on,nmhw,mi->oihw", w3, w2, w1)
        weight = weight + F.pad(self.sk.weight, (1, 1, 1, 1))
        # The first bias passes through every tap of the 3x3 kernel, including the zero padding
        # (the training path pads before the first 1x1 convolution).
        b1, b2, b3, b_sk = (cast(torch.Tensor, c.bias) for c in (first, mid, last, self.sk))
        hidden = w2.sum(dim=(2, 3)) @ b1 + b2
        bias = w3 @ hidden + b3 + b_sk
        return weight, bias

    def fuse(self: _ConvT) -> _ConvT:
        """Fold the branches into one stored 3x3 kernel, used by eval-mode forwards.

        Idempotent: fusing again recomputes the kernel from the current parameters, which is
        what to do after changing them in place while the module stays in eval mode.

        Returns:
            The module itself.

        Raises:
            ArgumentError: The module is in training mode.

        Example:
            >>> block = Conv3XC(8, 8).eval().fuse()
        """
        _check_eval_mode(self)
        self._store_fused_kernel()
        return self

    def _store_fused_kernel(self) -> None:
        device = self.sk.weight.device.type
        # Full precision even under autocast, and outside inference mode so that the kernel can
        # later be saved for a backward pass through the input.
        autocast_off = (
            torch.autocast(device, enabled=False)
            if torch.amp.is_autocast_available(device)
            else nullcontext()
        )
        with torch.inference_mode(False), torch.no_grad(), autocast_off:
            weight, bias = self.fused_kernel()
        mid = cast(nn.Conv2d, self.conv[1]).weight
        if mid.is_contiguous(memory_format=torch.channels_last) and not mid.is_contiguous():
            weight = weight.contiguous(memory_format=torch.channels_last)
        self.fused_weight, self.fused_bias = weight, bias

    def train(self: _ConvT, mode: bool = True) -> _ConvT:
        """Set training mode; entering it drops the fused kernel (see :meth:`fuse`).

        Args:
            mode: ``True`` for training, ``False`` for evaluation.

        Returns:
            The module itself.
        """
        if mode:
            self.fused_weight = None
            self.fused_bias = None
        return super().train(mode)

    def _needs_branch_gradients(self) -> bool:
        return torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        weight, bias = self.fused_weight, self.fused_bias
        if weight is None or bias is None or self._needs_branch_gradients():
            weight, bias = self.fused_kernel()
        return F.conv2d(x, weight, bias, padding=1)


class SPAB(nn.Module):
    """Swift parameter-free attention block: three convolutions and a symmetric sigmoid gate.

    Args:
        channels: Feature channels.
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.c1_r = Conv3XC(channels, channels)
        self.c2_r = Conv3XC(channels, channels)
        self.c3_r = Conv3XC(channels, channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the block output and its first activated feature map.

        The original applies SiLU in place, so the first feature map it hands on is the
        activated one.
        """
        out1 = F.silu(self.c1_r(x))
        out3 = self.c3_r(F.silu(self.c2_r(out1)))
        return (out3 + x) * (torch.sigmoid(out3) - 0.5), out1


class SPAN(nn.Module):
    """Swift Parameter-free Attention Network (six SPABs).

    Takes RGB in [0, 1]; as in the original, the input is mean-shifted and scaled to 0..255
    inside, and the network's output is already in [0, 1].

    Args:
        scale: Upscaling factor (any positive integer; x2 and x4 were released).
        num_in_ch: Input channels.
        num_out_ch: Output channels.
        feature_channels: Feature channels.
        img_range: Scale applied to the mean-shifted input.
        rgb_mean: Mean colour subtracted from the input, one value per input channel.
    """

    mean: torch.Tensor

    def __init__(
        self,
        *,
        scale: int = 4,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        feature_channels: int = 48,
        img_range: float = 255.0,
        rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ArgumentError(f"SPAN: scale must be a positive integer, got {scale}")
        if len(rgb_mean) != num_in_ch:
            raise ArgumentError(f"SPAN: rgb_mean needs {num_in_ch} values, got {len(rgb_mean)}")
        self.scale = scale
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
        # conv_1, six blocks of three 3x3 convolutions, conv_2 and the head's 3x3, all at LR.
        self.receptive_field: int | None = receptive_radius(
            [("conv", 1 + 6 * 3 + 1 + 1), ("up", scale)]
        )
        self.img_range = img_range
        # Not part of the official state dict: a constant, rebuilt with the module.
        # On the CPU even when built on the meta device: a non-persistent buffer is in no state
        # dict, so loading weights could never fill it in.
        self.register_buffer(
            "mean", torch.tensor(tuple(rgb_mean), device="cpu").view(1, -1, 1, 1), persistent=False
        )
        nf = feature_channels
        self.conv_1 = Conv3XC(num_in_ch, nf)
        self.block_1 = SPAB(channels=nf)
        self.block_2 = SPAB(channels=nf)
        self.block_3 = SPAB(channels=nf)
        self.block_4 = SPAB(channels=nf)
        self.block_5 = SPAB(channels=nf)
        self.block_6 = SPAB(channels=nf)
        self.conv_cat = nn.Conv2d(4 * nf, nf, 1)
        self.conv_2 = Conv3XC(nf, nf)
        self.upsampler = pixel_shuffle_head(nf, num_out_ch, scale)

    def fuse(self: _S) -> _S:
        """Fold every :class:`Conv3XC` into one 3x3 convolution for inference (RepVGG-style).

        The outputs are those of the unfused network (to float rounding), the state dict is
        unchanged, and fusing twice is the same as fusing once. ``train()`` undoes it; after
        changing parameters in place in eval mode, call it again.

        Returns:
            The model itself, so that ``model = model.eval().fuse()`` chains.

        Raises:
            ArgumentError: The model is in training mode.

        Example:
            >>> model = srzoo.create("span", 4).eval().fuse()
        """
        _check_eval_mode(self)
        for module in self.modules():
            if isinstance(module, Conv3XC):
                module.fuse()
        return self

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_1((x - self.mean.to(x.dtype)) * self.img_range)
        b1, _ = self.block_1(feat)
        b, _ = self.block_2(b1)
        b, _ = self.block_3(b)
        b, _ = self.block_4(b)
        b5, _ = self.block_5(b)
        b6, b6_first = self.block_6(b5)
        out = self.conv_cat(torch.cat([feat, self.conv_2(b6), b1, b6_first], dim=1))
        return self.upsampler(out)


_OMDB = "https://objectstorage.us-phoenix-1.oraclecloud.com/n/ax6ygfvpvzka/b/open-modeldb-files/o"
_NOTE = (
    "sha256 published by OpenModelDB for its copy of the authors' file (the original is inside "
    "span.zip on Google Drive, which a plain HTTP client cannot download)"
)


def _weights(scale: int, sha: str, size: int) -> WeightSpec:
    return WeightSpec(
        scale=scale,
        source=f"{_OMDB}/{scale}x-spanx{scale}-ch48.pth",
        sha256=sha,
        size=size,
        input_range="0-1",
        license="Apache-2.0",
        sha256_note=_NOTE,
    )


register_model(
    ModelSpec(
        name="span",
        family="span",
        builder=SPAN,
        scales=(2, 3, 4),
        paper=Paper(
            title="Swift Parameter-free Attention Network for Efficient Super-Resolution",
            venue="CVPR Workshops",
            year=2024,
            arxiv="2311.12770",
        ),
        code_license="Apache-2.0",
        description="SPAN: 6 parameter-free attention blocks, 48 features",
        defaults={"feature_channels": 48},
        weights=(
            _weights(
                2, "0b20caeea7af5507ec3bdc63ff5a141a28506279d2cfec909c417ecb308d3f93", 8_942_586
            ),
            _weights(
                4, "c79e716b8eb24182c1d7fcc74fa10ae074bdb34fee7c6e67c73053ff5498c667", 9_004_922
            ),
        ),
    )
)


_LAYOUTS = {
    "official": (
        "conv_1.sk.weight",
        "block_1.c1_r.sk.weight",
        "block_6.c3_r.sk.weight",
        "conv_cat.weight",
        "conv_2.sk.weight",
        "upsampler.0.weight",
    ),
}


def detect_span(shapes: Shapes) -> Detected | None:
    """Recognise a SPAN checkpoint (hongyuanyu/SPAN / spandrel keys) from its shapes.

    Reads ``num_in_ch``, ``feature_channels`` and the scale with ``num_out_ch`` from the
    pixel-shuffle head (``num_out_ch`` is taken equal to ``num_in_ch`` where that fits, else 3,
    else 1). Not in the weights, so defaults: ``img_range`` 255 and the DIV2K ``rgb_mean``
    (as spandrel assumes). A file marked ``no_norm`` (a network trained without the mean
    shift) is not one srzoo builds.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not a SPAN.
    """
    if not shapes.has(*_LAYOUTS["official"]) or "no_norm" in shapes:
        return None
    in_ch, feats = shapes.dim("conv_1.sk.weight", 1), shapes.dim("conv_1.sk.weight")
    scale, out_ch = shuffle_split(shapes.dim("upsampler.0.weight"), in_ch)
    if not scale or in_ch not in (1, 3):
        return None
    args: dict[str, object] = {
        "num_in_ch": in_ch,
        "num_out_ch": out_ch,
        "feature_channels": feats,
    }
    if in_ch == 1:
        args["rgb_mean"] = (0.5,)  # one value per channel; a Y network's mean is not stored
    return Detected("span", scale, args, "official")


register_detector("span", detect_span, layouts=_LAYOUTS)
