"""SPAN: swift parameter-free attention network.

Paper: Wan, Yu, Li, Chen, Zou, Liu, Yin, Zuo, "Swift Parameter-free Attention Network for
Efficient Super-Resolution", CVPR Workshops (NTIRE) 2024, arXiv:2311.12770.

Parameter names follow hongyuanyu/SPAN ``basicsr/archs/span_arch.py`` (identical to spandrel's
SPAN), so the official ``spanx2_ch48.pth`` / ``spanx4_ch48.pth`` files load unchanged.

Each :class:`Conv3XC` trains as three stacked convolutions plus a 1x1 shortcut and runs, in eval
mode, as the single 3x3 convolution they are equivalent to. The original recomputes that kernel
at every eval forward and writes it into ``eval_conv``; srzoo computes it the same way but
functionally (the module is never modified in forward), so the checkpoints' ``eval_conv`` tensors
are kept only to load and save the official layout and are never read. On the CPU, eval forwards
that need no gradient through the parameters reuse the fused kernel until a tensor it is computed
from changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import ModelSpec, Paper, WeightSpec, register_model
from ._blocks import DIV2K_RGB_MEAN, pixel_shuffle_head

__all__ = ["SPAB", "SPAN", "Conv3XC"]

# Exact types only: fake, functional and other subclass tensors take the uncached path.
_PLAIN_TENSORS = (torch.Tensor, nn.Parameter)
# Integer types of each floating-point element size, to compare values bit for bit.
_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}

_Layout = tuple[tuple[torch.device, torch.dtype, torch.Size, tuple[int, ...]], ...]
_Key = tuple[_Layout, bool, torch.dtype]


def _key(tensors: Sequence[torch.Tensor]) -> _Key:
    """Everything besides the tensors' values that the fused kernel depends on."""
    layout = tuple((t.device, t.dtype, t.shape, t.stride()) for t in tensors)
    # Autocast runs the kernel's matrix products at lower precision.
    device = tensors[0].device.type
    return layout, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)


def _bits(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tensors' values, flattened and concatenated, as integers with the same bits.

    Comparing bits is exact (-0.0 differs from 0.0, a NaN equals itself) and about twice as
    fast as comparing floats; one flat tensor means one comparison, and on an accelerator one
    wait for its result, per module.
    """
    flat = torch.cat([t.reshape(-1) for t in tensors])
    return flat.view(_BITS[flat.element_size()])


class _FusedKernel(NamedTuple):
    """A fused kernel, what it was computed under, and a copy of its source tensors' bits."""

    key: _Key
    bits: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor


class Conv3XC(nn.Module):
    """A re-parameterisable 3x3 convolution: 1x1 -> 3x3 -> 1x1 with a 1x1 shortcut.

    Args:
        c_in: Input channels.
        c_out: Output channels.
        gain: Expansion of the hidden layers.
    """

    # The eval-mode kernel cache: a plain attribute, so never in the state dict; a class-level
    # default, so instances unpickled without it start empty.
    _fused: _FusedKernel | None = None

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

    def fused_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The single 3x3 convolution equivalent to the three branches plus the shortcut.

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

    def _sources(self) -> tuple[torch.Tensor, ...]:
        convs = (*(cast(nn.Conv2d, self.conv[i]) for i in range(3)), self.sk)
        return tuple(t for c in convs for t in (c.weight, cast(torch.Tensor, c.bias)))

    def _eval_kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        # The cached kernel is reused while the eight source tensors have the bits, devices,
        # dtypes, shapes and strides, and autocast has the state, they had when it was computed:
        # the kernel is a deterministic function of exactly these, so a reused kernel is the one
        # a fresh computation would give. Comparing contents rather than version counters also
        # catches writes through ``param.data`` (EMA updates, older optimisers), which leave
        # ``param._version`` unchanged. Graph capture (torch.compile, export, FX, JIT tracing),
        # dispatch modes (fake tensors, FLOP counters), meta and subclass tensors, and autograd
        # through the parameters always compute the kernel afresh, inside the graph. So do
        # accelerators: there the fused kernel costs little and runs asynchronously, while the
        # comparison would make the host wait for the device once per module.
        sources = self._sources()
        if (
            torch.compiler.is_compiling()
            or torch._C._get_tracing_state() is not None
            or torch._C._len_torch_dispatch_stack() > 0
            or not all(
                type(t) in _PLAIN_TENSORS and t.is_floating_point() and t.device.type == "cpu"
                for t in sources
            )
            or (torch.is_grad_enabled() and any(t.requires_grad for t in sources))
        ):
            return self.fused_kernel()
        cached = self._fused
        key = _key(sources)
        if cached is not None and cached.key == key and torch.equal(_bits(sources), cached.bits):
            return cached.weight, cached.bias
        # Outside inference mode, so that the cache can later be saved for a backward pass
        # through the input.
        with torch.inference_mode(False), torch.no_grad():
            weight, bias = self.fused_kernel()
            bits = _bits(sources)
        self._fused = _FusedKernel(key, bits, weight, bias)
        return weight, bias

    def __getstate__(self) -> dict[str, Any]:
        # Pickles and deep copies leave the cache behind; it is rebuilt from their own tensors.
        state: dict[str, Any] = super().__getstate__()  # type: ignore[no-untyped-call]
        state["_fused"] = None
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.conv(F.pad(x, (1, 1, 1, 1))) + self.sk(x)
        weight, bias = self._eval_kernel()
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
            raise ValueError(f"SPAN: scale must be a positive integer, got {scale}")
        if len(rgb_mean) != num_in_ch:
            raise ValueError(f"SPAN: rgb_mean needs {num_in_ch} values, got {len(rgb_mean)}")
        self.scale = scale
        self.in_channels = num_in_ch
        self.out_channels = num_out_ch
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
        layout="official",
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
