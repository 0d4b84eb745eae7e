"""Layers shared by two or more architecture families."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._util import matlab_cubic

__all__ = [
    "DIV2K_RGB_MEAN",
    "DistillationNet",
    "EDSRFrame",
    "MeanShift",
    "Upsampler",
    "conv3x3",
    "convert_basicsr_frame",
    "fill_mean_shifts",
    "pixel_shuffle_head",
    "rename_keys",
    "shuffle_factors",
]

DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)
"""Mean RGB colour of DIV2K, subtracted by EDSR, RCAN and their successors."""


def conv3x3(in_ch: int, out_ch: int, *, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """A 3x3 convolution with 'same' padding.

    Args:
        in_ch: Input channels.
        out_ch: Output channels.
        bias: Whether the convolution has a bias.
        groups: Convolution groups.

    Returns:
        The convolution.

    Example:
        >>> conv3x3(64, 64)
    """
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias, groups=groups)


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


def shuffle_factors(scale: int, *, name: str = "the sub-pixel upsampler") -> list[int]:
    """The pixel-shuffle stages of a multi-stage upsampler: one x3 stage, or x2 per factor of two.

    This is the convention of EDSR-PyTorch, SRGAN and CARN: x4 is two x2 stages, x8 three.

    Args:
        scale: 3 or a power of two (1 gives no stage).
        name: What is being built, for the error message.

    Returns:
        The shuffle factor of each stage, in order.

    Raises:
        ValueError: ``scale`` is neither 3 nor a power of two.

    Example:
        >>> shuffle_factors(8)
        [2, 2, 2]
    """
    if scale == 3:
        return [3]
    if scale > 0 and scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    raise ValueError(f"{name} supports 3 and powers of two, not {scale}")


class Upsampler(nn.Sequential):
    """Sub-pixel upsampler of EDSR-PyTorch: ``log2(scale)`` x (conv, shuffle 2), or one x3 stage.

    Indices match the official checkpoints (``tail.0.0``, ``tail.0.2``, ...). With ``relu`` each
    convolution is followed by a ReLU, as in CARN (``body.0``, ``body.3``, ...).

    Args:
        scale: 3 or a power of two.
        n_feats: Feature channels.
        groups: Groups of the convolutions (4 in CARN-M).
        relu: Put a ReLU between each convolution and its shuffle.
    """

    def __init__(self, *, scale: int, n_feats: int, groups: int = 1, relu: bool = False) -> None:
        layers: list[nn.Module] = []
        for factor in shuffle_factors(scale):
            layers.append(conv3x3(n_feats, factor * factor * n_feats, groups=groups))
            if relu:
                layers.append(nn.ReLU(inplace=True))
            layers.append(nn.PixelShuffle(factor))
        super().__init__(*layers)


def pixel_shuffle_head(in_ch: int, out_ch: int, scale: int) -> nn.Sequential:
    """A one-stage sub-pixel output head: a 3x3 conv to ``out_ch * scale**2``, then a shuffle.

    The layout of ESPCN's ``last_part``, SAFMN's ``to_img`` and the ``upsampler`` of IMDN, RFDN and
    SPAN (BasicSR's ``pixelshuffle_block``): parameters ``0.weight`` and ``0.bias``.

    Args:
        in_ch: Feature channels.
        out_ch: Image channels.
        scale: Upscaling factor (any positive integer).

    Returns:
        ``nn.Sequential(conv, nn.PixelShuffle(scale))``.

    Example:
        >>> pixel_shuffle_head(64, 3, 4)(torch.rand(1, 64, 8, 8)).shape
        torch.Size([1, 3, 32, 32])
    """
    return nn.Sequential(conv3x3(in_ch, out_ch * scale**2), nn.PixelShuffle(scale))


class EDSRFrame(nn.Module):
    """The frame EDSR-PyTorch's networks (EDSR, RCAN) share around their residual body.

    The input is scaled to ``rgb_range`` and the mean removed (``sub_mean``); ``head`` is one 3x3
    convolution; ``body`` is the family's blocks closed by a 3x3 convolution, with a skip over it;
    ``tail`` is an :class:`Upsampler` and a 3x3 convolution to RGB; ``add_mean`` restores the
    mean. The names are the official checkpoints' keys.

    Args:
        scale: Upscaling factor (3 or a power of two).
        n_feats: Feature channels.
        rgb_range: Value range the network works in.
        rgb_mean: Mean colour removed before the network and added back after it.
        make_blocks: Builds the body's blocks; called after ``head`` so that parameters are
            created (and randomly initialised) in the official order.
    """

    def __init__(
        self,
        *,
        scale: int,
        n_feats: int,
        rgb_range: float,
        rgb_mean: Sequence[float],
        make_blocks: Callable[[], Iterable[nn.Module]],
    ) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=-1)
        self.add_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=1)
        self.head = nn.Sequential(conv3x3(3, n_feats))
        self.body = nn.Sequential(*make_blocks(), conv3x3(n_feats, n_feats))
        self.tail = nn.Sequential(Upsampler(scale=scale, n_feats=n_feats), conv3x3(n_feats, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x * self.rgb_range))
        x = self.body(x) + x
        return self.add_mean(self.tail(x)) / self.rgb_range


class DistillationNet(nn.Module):
    """The trunk IMDN and RFDN share around their distillation blocks.

    ``fea_conv`` lifts the input to ``nf`` features; blocks ``<prefix>1`` ... ``<prefix>N`` run in
    sequence; all their outputs are concatenated and fused by ``c`` (1x1 conv, LeakyReLU 0.05),
    refined by ``LR_conv`` with a skip from ``fea_conv``, and upsampled by a
    :func:`pixel_shuffle_head` named ``upsampler``. The names are Zheng222/IMDN's, which
    njulj/RFDN kept. ``forward`` takes and returns the network's own range.

    Args:
        scale: Upscaling factor (any positive integer).
        in_nc: Input channels.
        out_nc: Output channels.
        nf: Feature channels.
        num_modules: Number of blocks.
        prefix: Name of the blocks before their 1-based index (``"IMDB"``, ``"B"``).
        make_block: Builds one block, called as ``make_block(channels=nf)``.
    """

    def __init__(
        self,
        *,
        scale: int,
        in_nc: int,
        out_nc: int,
        nf: int,
        num_modules: int,
        prefix: str,
        make_block: Callable[..., nn.Module],
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ValueError(
                f"{type(self).__name__}: scale must be a positive integer, got {scale}"
            )
        self.scale = scale
        self.in_channels = in_nc
        self.out_channels = out_nc
        self.num_modules = num_modules
        self.block_names = tuple(f"{prefix}{i}" for i in range(1, num_modules + 1))
        self.fea_conv = conv3x3(in_nc, nf)
        for name in self.block_names:
            self.add_module(name, make_block(channels=nf))
        self.c = nn.Sequential(nn.Conv2d(nf * num_modules, nf, 1), nn.LeakyReLU(0.05, inplace=True))
        self.LR_conv = conv3x3(nf, nf)
        self.upsampler = pixel_shuffle_head(nf, out_nc, scale)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The low-resolution features the upsampler takes.

        Args:
            x: Input ``(N, in_nc, H, W)`` in the network's range.

        Returns:
            Features ``(N, nf, H, W)``.
        """
        fea = self.fea_conv(x)
        outs: list[torch.Tensor] = []
        h = fea
        for name in self.block_names:
            h = getattr(self, name)(h)
            outs.append(h)
        return self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsampler(self.features(x))


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


def convert_basicsr_frame(
    state: dict[str, torch.Tensor], module: nn.Module, body_rules: Sequence[tuple[str, str]]
) -> dict[str, torch.Tensor]:
    """Map BasicSR's layout of an :class:`EDSRFrame` network to the official keys.

    BasicSR's EDSR and RCAN rename the frame (``conv_first`` is ``head.0``, ``conv_after_body``
    the body's closing convolution, ``upsample`` ``tail.0``, ``conv_last`` ``tail.1``) and keep
    the mean as a constant instead of a layer. A state dict without ``conv_first`` is taken to
    be in the official layout and returned as it is: the official layout stores its mean shifts,
    so if they are absent the network was trained without them, and loading must fail loudly
    rather than add a shift it never had.

    Args:
        state: The checkpoint's tensors (already unwrapped from ``params`` etc.).
        module: The :class:`EDSRFrame` network they are meant for.
        body_rules: The family's rules for the blocks inside ``body`` (``(pattern,
            replacement)`` pairs, see :func:`rename_keys`).

    Returns:
        A new state dict in the official keys, mean shifts included.

    Example:
        >>> official = convert_basicsr_frame({"conv_first.weight": w, ...}, edsr, body_rules)
        >>> "head.0.weight" in official and "sub_mean.weight" in official
        True
    """
    if "conv_first.weight" not in state:
        return dict(state)
    n_blocks = len(module.body) - 1 if isinstance(module, EDSRFrame) else 0
    rules = (
        (r"conv_first\.", "head.0."),
        (r"conv_after_body\.", f"body.{n_blocks}."),
        *body_rules,
        (r"upsample\.", "tail.0."),
        (r"conv_last\.", "tail.1."),
    )
    converted = rename_keys(state, rules)
    # BasicSR keeps the mean as a constant, not a layer: supply the layers it implies.
    fill_mean_shifts(converted, module)
    return converted


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
    taps = matlab_cubic(phase[:, None] - offsets[None, :])
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
