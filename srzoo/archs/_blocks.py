"""Layers shared by two or more architecture families."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, Protocol, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .._util import matlab_cubic
from ..errors import ArgumentError, ArgumentTypeError

__all__ = [
    "DIV2K_RGB_MEAN",
    "ESA",
    "RRDB",
    "SAFM",
    "DistillationNet",
    "DySample",
    "EDSRFrame",
    "FieldStep",
    "LayerNorm2d",
    "MeanShift",
    "ResidualDenseBlock",
    "Upsampler",
    "check_image_input",
    "conv3x3",
    "convert_basicsr_frame",
    "fill_mean_shifts",
    "image_forward",
    "matlab_bicubic_upsample",
    "pixel_shuffle_head",
    "receptive_radius",
    "rename_keys",
    "shuffle_factors",
    "upsampler_steps",
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


class _ImageModule(Protocol):
    """What :func:`image_forward` needs of a module: the channels its input must have."""

    in_channels: int


_M = TypeVar("_M", bound=_ImageModule)


def check_image_input(x: object, channels: int, name: str) -> bool:
    """Raise a clear error unless ``x`` is an image tensor a network with ``channels`` takes.

    Accepted: a floating-point ``(N, channels, H, W)`` tensor, or an unbatched
    ``(channels, H, W)`` one (torch's convention for convolution layers), with ``H, W >= 1``.
    Everything here reads only the tensor's type, rank, shape and dtype, which
    ``torch.compile`` treats as static: checking costs no graph break.

    Args:
        x: What the network was called with.
        channels: Channels the network expects (1 for the Y-channel classics, else 3 as a rule).
        name: The network's name, for the message.

    Returns:
        ``True`` for an unbatched ``(C, H, W)`` tensor, ``False`` for a batch.

    Raises:
        ArgumentTypeError: ``x`` is not a floating-point tensor.
        ArgumentError: Any other rank, the wrong channel count, or an empty side.

    Example:
        >>> check_image_input(torch.rand(3, 8, 8), 3, "EDSR")
        True
    """
    if channels == 1:
        what = "the Y channel in [0, 1]; convert RGB to Y first, e.g. with srzoo.metrics.rgb_to_y"
    else:
        what = "RGB in [0, 1]" if channels == 3 else "values in [0, 1]"
    expected = f"an (N, {channels}, H, W) or ({channels}, H, W) float tensor ({what})"
    if not isinstance(x, torch.Tensor):
        raise ArgumentTypeError(f"{name} takes {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ArgumentTypeError(f"{name} takes {expected}, got a {x.dtype} tensor")
    rank = x.dim()
    if rank not in (3, 4) or x.shape[-3] != channels:
        raise ArgumentError(f"{name} takes {expected}, got shape {tuple(x.shape)}")
    if x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ArgumentError(
            f"{name} takes {expected} with H, W >= 1, got an empty image of shape {tuple(x.shape)}"
        )
    return rank == 3


def image_forward(
    forward: Callable[[_M, torch.Tensor], torch.Tensor],
) -> Callable[[_M, torch.Tensor], torch.Tensor]:
    """Decorate a network's ``forward`` so that every family treats its input alike.

    The decorated ``forward`` checks its input with :func:`check_image_input` (named after the
    module's class) and sees only ``(N, C, H, W)`` batches: an unbatched ``(C, H, W)`` tensor is
    run as a batch of one and returned as ``(out_channels, H * scale, W * scale)``.

    Args:
        forward: The family's ``forward(self, x)`` for ``(N, C, H, W)`` input.

    Returns:
        The wrapped ``forward``.

    Example:
        >>> class Net(nn.Module):
        ...     @image_forward
        ...     def forward(self, x: torch.Tensor) -> torch.Tensor: ...
    """

    @functools.wraps(forward)
    def checked(self: _M, x: torch.Tensor) -> torch.Tensor:
        if check_image_input(x, self.in_channels, type(self).__name__):
            return forward(self, x.unsqueeze(0)).squeeze(0)
        return forward(self, x)

    return checked


FieldStep = Literal["conv", "up", "zeros", "bicubic", "fold"]
"""One step of a network's path for :func:`receptive_radius`:

- ``"conv"``: a stride-1, size-keeping layer reaching ``n`` pixels on each side at the current
  resolution (a ``k x k`` convolution reaches ``k // 2``);
- ``"up"``: enlargement by ``n`` in which output pixel ``p`` copies input pixel ``p // n``
  (pixel shuffle, nearest-neighbour interpolation);
- ``"zeros"``: enlargement by ``n`` that puts input pixel ``i`` at ``n * i`` and zeros between
  (the input side of a transposed convolution of stride ``n``, whose kernel follows as a
  ``"conv"``);
- ``"bicubic"``: MATLAB's bicubic enlargement by ``n`` (:func:`matlab_bicubic_upsample`);
- ``"fold"``: ``pixel_unshuffle`` by ``n``: output pixel ``q`` holds input pixels
  ``n * q .. n * q + n - 1``.
"""


def receptive_radius(steps: Sequence[tuple[FieldStep, int]]) -> int:
    """The receptive-field radius, in input pixels, of a chain of layers.

    Follows the pixels that one output pixel depends on back through ``steps`` (listed from
    input to output), for every sub-pixel position of an output pixel within its input pixel,
    and returns the largest Chebyshev distance from that input pixel. After an enlargement a
    layer's reach in input pixels depends on the position (a 3x3 convolution after a x4 pixel
    shuffle reaches one input pixel to the left from the first of the four positions, one to the
    right from the last, none from the two between), so the exact radius is not the sum of
    rounded-up reaches. Skip connections and parallel branches are a maximum over paths: pass
    the longest path.

    Args:
        steps: ``(kind, n)`` pairs, see :data:`FieldStep`.

    Returns:
        The radius (0 for a network of 1x1 layers).

    Example:
        >>> receptive_radius([("conv", 1), ("up", 4), ("conv", 1)])
        2
    """
    period = math.prod(n for kind, n in steps if kind == "fold")
    factor, rest = divmod(math.prod(n for kind, n in steps if kind not in ("conv", "fold")), period)
    if rest:
        raise ArgumentError(f"the steps {steps} do not enlarge by a whole factor")
    radius = 0
    # Input pixel c owns output pixels c * factor .. c * factor + factor - 1; with folds, the
    # pixels of one period (one cell of the fold) are placed differently within it.
    for c in range(period):
        for phase in range(c * factor, (c + 1) * factor):
            lo = hi = phase
            for kind, n in reversed(steps):
                if kind == "conv":
                    lo, hi = lo - n, hi + n
                elif kind == "up":
                    lo, hi = lo // n, hi // n
                elif kind == "zeros":
                    lo, hi = -(-lo // n), hi // n
                elif kind == "fold":
                    lo, hi = n * lo, n * hi + n - 1
                elif n > 1:  # bicubic: output pixel n*i + j samples i + (j + 0.5) / n - 0.5
                    # Taps at i - 2 .. i + 2 weigh zero at distance 2 and beyond, so a sample
                    # left of pixel i reaches i - 2 .. i + 1, right of it i - 1 .. i + 2.
                    lo = lo // n - (2 if 2 * (lo % n) + 1 < n else 1)
                    hi = hi // n + (2 if 2 * (hi % n) + 1 > n else 1)
            radius = max(radius, c - lo, hi - c)
    return radius


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
        ArgumentError: ``scale`` is neither 3 nor a power of two.

    Example:
        >>> shuffle_factors(8)
        [2, 2, 2]
    """
    if scale == 3:
        return [3]
    if scale > 0 and scale & (scale - 1) == 0:
        return [2] * int(math.log2(scale))
    raise ArgumentError(f"{name} supports scale 3 and powers of two, not {scale}")


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


def upsampler_steps(scale: int) -> list[tuple[FieldStep, int]]:
    """The :func:`receptive_radius` steps of an :class:`Upsampler` (a 3x3 conv per stage).

    Args:
        scale: 3 or a power of two.

    Returns:
        ``[("conv", 1), ("up", factor)]`` for each pixel-shuffle stage.

    Example:
        >>> upsampler_steps(4)
        [('conv', 1), ('up', 2), ('conv', 1), ('up', 2)]
    """
    steps: list[tuple[FieldStep, int]] = []
    for factor in shuffle_factors(scale):
        steps += [("conv", 1), ("up", factor)]
    return steps


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
        blocks_reach: How far the blocks reach together, in pixels (two per conv-ReLU-conv
            block), or ``None`` when they use global operations (channel attention).
    """

    def __init__(
        self,
        *,
        scale: int,
        n_feats: int,
        rgb_range: float,
        rgb_mean: Sequence[float],
        make_blocks: Callable[[], Iterable[nn.Module]],
        blocks_reach: int | None,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = 3
        self.out_channels = 3
        # head, blocks and the body's closing conv at LR; the upsampler; the last conv at HR.
        self.receptive_field: int | None = (
            None
            if blocks_reach is None
            else receptive_radius(
                [("conv", 1 + blocks_reach + 1), *upsampler_steps(scale), ("conv", 1)]
            )
        )
        self.rgb_range = rgb_range
        self.sub_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=-1)
        self.add_mean = MeanShift(rgb_range=rgb_range, rgb_mean=rgb_mean, sign=1)
        self.head = nn.Sequential(conv3x3(3, n_feats))
        self.body = nn.Sequential(*make_blocks(), conv3x3(n_feats, n_feats))
        self.tail = nn.Sequential(Upsampler(scale=scale, n_feats=n_feats), conv3x3(n_feats, 3))

    @image_forward
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
        block_reach: How far one block reaches, in pixels, or ``None`` when the blocks use
            global or size-dependent operations.
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
        block_reach: int | None,
    ) -> None:
        super().__init__()
        if scale < 1:
            raise ArgumentError(
                f"{type(self).__name__}: scale must be a positive integer, got {scale}"
            )
        self.scale = scale
        self.in_channels = in_nc
        self.out_channels = out_nc
        self.num_modules = num_modules
        # fea_conv, the blocks and LR_conv (c is 1x1), then the head's 3x3 conv, all at LR.
        self.receptive_field: int | None = (
            None if block_reach is None else 1 + num_modules * block_reach + 1 + 1
        )
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
        # ``c`` fuses the concatenated block outputs with a 1x1 convolution, which is the sum of
        # 1x1 convolutions over each block's slice of channels. Summing as the blocks run keeps
        # one block output alive instead of all of them and their concatenation: on a 256x256
        # tile of IMDN that is 100 MB less at the peak and no 100 MB copy, for the same result to
        # float rounding (about 1e-7 relative).
        fuse, act = self.c[0], self.c[1]
        assert isinstance(fuse, nn.Conv2d)
        slices = fuse.weight.chunk(len(self.block_names), dim=1)
        blocks = [getattr(self, name) for name in self.block_names]
        h = blocks[0](fea)
        fused = F.conv2d(h, slices[0], fuse.bias)
        for block, weight in zip(blocks[1:], slices[1:], strict=True):
            h = block(h)
            fused = fused.add_(F.conv2d(h, weight))
        return self.LR_conv(act(fused)) + fea

    @image_forward
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
    """Indices of a length-``n`` axis padded by ``pad`` with MATLAB's 'symmetric' mirroring.

    One reflection each side (the edge repeated), which is all of it for ``pad <= n``; a
    one-pixel axis repeats its pixel. Written with comparisons rather than a remainder so that
    ONNX export keeps ``n`` symbolic (the bicubic kernel pads by 2).
    """
    idx = torch.arange(-pad, n + pad, device=device)
    mirrored = torch.where(idx < 0, -1 - idx, torch.where(idx < n, idx, 2 * n - 1 - idx))
    return mirrored.clamp(0, n - 1)


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
        ArgumentError: ``scale`` is not a positive integer or ``x`` is not 4-D.

    Example:
        >>> matlab_bicubic_upsample(torch.rand(1, 1, 8, 8), 3).shape
        torch.Size([1, 1, 24, 24])
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ArgumentError(f"scale must be a positive integer, got {scale!r}")
    if x.dim() != 4:
        raise ArgumentError(f"expected a tensor (N, C, H, W), got shape {tuple(x.shape)}")
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


class DySample(nn.Module):
    """DySample (Liu et al., ICCV 2023, arXiv:2308.15085): upsampling by learned sampling.

    For each of the ``scale * scale`` sub-pixels of an input pixel, learned offsets around its
    regular position (scaled by a learned sigmoid "scope") say where to sample the input
    bilinearly, with border padding; each of ``groups`` groups of channels gets its own offsets.
    An ``end_kernel x end_kernel`` convolution (``end_conv``) then maps the sampled channels to
    ``out_ch``. Keys: ``offset``, ``scope``, ``init_pos`` (a buffer) and ``end_conv``, as in the
    upstream RealPLKSR, MoSR, MoESR and FDAT checkpoints.

    The sampling coordinates are computed in float32 at least and rounded to the input's dtype
    once, for ``grid_sample``; in float32 and float64 they are the upstream computation,
    operation for operation.

    Args:
        in_ch: Input channels.
        out_ch: Output channels of ``end_conv``.
        scale: Upscaling factor.
        groups: Channel groups with their own offsets; must divide ``in_ch``.
        end_kernel: Kernel size of ``end_conv`` ('same' padding), or ``None`` for no end
            convolution (``end_conv`` is then an identity and the output keeps ``in_ch``).
        name: The network's name, for error messages.

    Raises:
        ArgumentError: ``groups`` does not divide ``in_ch``.

    Example:
        >>> DySample(64, 3, 2, groups=4)(torch.rand(1, 64, 8, 8)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        scale: int,
        *,
        groups: int = 4,
        end_kernel: int | None = 1,
        name: str = "DySample",
    ) -> None:
        super().__init__()
        if groups < 1 or in_ch % groups:
            raise ArgumentError(
                f"{name}: DySample splits its {in_ch} input channels into {groups} groups; "
                f"they must be a multiple of {groups}"
            )
        self.scale = scale
        self.groups = groups
        self.end_conv: nn.Module = (
            nn.Identity()
            if end_kernel is None
            else nn.Conv2d(in_ch, out_ch, end_kernel, padding=end_kernel // 2)
        )
        self.offset = nn.Conv2d(in_ch, 2 * groups * scale * scale, 1)
        self.scope = nn.Conv2d(in_ch, 2 * groups * scale * scale, 1, bias=False)
        self.register_buffer("init_pos", self._initial_positions())

    def _initial_positions(self) -> torch.Tensor:
        """The regular sub-pixel offsets, (x, y) per group and sub-pixel, in input pixels."""
        s, g = self.scale, self.groups
        steps = (torch.arange(s, dtype=torch.float32) - (s - 1) / 2) / s
        grid = torch.stack(torch.meshgrid(steps, steps, indexing="ij")).transpose(1, 2)
        return grid.repeat(1, g, 1).reshape(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Sample ``x`` (N, in_ch, H, W) at the learned positions; (N, out_ch, sH, sW)."""
        b, c, h, w = x.shape
        s, g = self.scale, self.groups
        offset = self.offset(x) * self.scope(x).sigmoid() * 0.5 + self.init_pos
        wide = torch.promote_types(x.dtype, torch.float32)
        # Pixel centres, (x, y) first as grid_sample wants, then normalised to [-1, 1].
        xs = torch.arange(w, device=x.device, dtype=wide) + 0.5
        ys = torch.arange(h, device=x.device, dtype=wide) + 0.5
        base = torch.stack((xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)))
        size = torch.stack((xs.new_full((), w), xs.new_full((), h))).view(1, 2, 1, 1, 1)
        coords = 2 * (base.view(1, 2, 1, h, w) + offset.to(wide).view(b, 2, -1, h, w)) / size - 1
        coords = F.pixel_shuffle(coords.reshape(b, -1, h, w), s)
        coords = coords.view(b, 2, g, s * h, s * w).permute(0, 2, 3, 4, 1).flatten(0, 1)
        sampled = F.grid_sample(
            x.reshape(b * g, c // g, h, w),
            coords.to(x.dtype).contiguous(),
            mode="bilinear",
            padding_mode="border",
            align_corners=False,
        ).view(b, c, s * h, s * w)
        out: torch.Tensor = self.end_conv(sampled)
        return out


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel of an ``(N, C, H, W)`` tensor.

    ConvNeXt's channels-first layer norm, with a learned per-channel ``weight`` and ``bias``
    (the keys of the SAFMN, MoSR, MoESR, RealPLKSR, SeemoRe and Omni-SR checkpoints).

    By default the output is channels-last in memory: ``F.layer_norm`` over the last dimension
    of a channels-last view is the original mean / variance over dim 1, and several times
    faster on CPU; the convolutions that follow accept that memory as is, so a network that
    returns the trunk's output directly should call ``.contiguous()`` on it. With
    ``channels_last=False`` the mean and variance are taken over dim 1 of the ``(N, C, H, W)``
    tensor itself, as upstream RealPLKSR does, operation for operation (results differ from the
    default in the last bits only) and the output keeps the input's layout.

    Args:
        channels: Number of channels.
        eps: Added to the variance.
        channels_last: Compute with ``F.layer_norm`` on a channels-last view (the default), or
            over dim 1 directly.

    Example:
        >>> LayerNorm2d(16)(torch.rand(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, channels: int, *, eps: float = 1e-6, channels_last: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise each pixel's channels of ``x`` (N, C, H, W)."""
        if not self.channels_last:
            centred = x - x.mean(1, keepdim=True)
            var = centred.square().mean(1, keepdim=True)
            y = centred * torch.rsqrt(var + self.eps)
            return y * self.weight[:, None, None] + self.bias[:, None, None]
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _adaptive_max_pool_by_gather(
    x: torch.Tensor, size: tuple[int, int], reach: int
) -> torch.Tensor:
    """``F.adaptive_max_pool2d(x, size)`` as gathers and maxima, for exported graphs.

    Output cell ``i`` of an axis of length ``n`` pooled to ``m`` covers inputs
    ``floor(i * n / m)`` to ``ceil((i + 1) * n / m) - 1``; each cell gathers ``reach`` indices
    from its start, clamped to its last input (repeats do not change a maximum). The exporter
    turns the adaptive pooling into fixed windows of the traced size; this form keeps the
    height and width free, with the same values. ``reach`` bounds the longest cell:
    ``2**(k + 1) + 1`` for ``m = max(n >> k, 1)``.
    """
    for axis, cells in ((2, size[0]), (3, size[1])):
        length = x.shape[axis]
        i = torch.arange(cells, device=x.device)
        start = i * length // cells
        stop = ((i + 1) * length + cells - 1) // cells
        offsets = torch.arange(reach, device=x.device)
        index = torch.minimum(start[:, None] + offsets, stop[:, None] - 1).flatten()
        gathered = x.index_select(axis, index)
        shape = list(x.shape)
        shape[axis : axis + 1] = [cells, reach]
        x = gathered.reshape(shape).amax(dim=axis + 1)
    return x


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation: multi-scale depth-wise features gate the input.

    The channels are split into ``n_levels`` groups; group ``i >= 1`` is max-pooled to
    ``1 / 2**(i + pool_shift)`` of the input size, filtered, and upsampled back.

    Args:
        dim: Feature channels (a multiple of ``n_levels``).
        n_levels: Number of scales.
        bias: Whether the convolutions have biases (not in the NTIRE 2023 variant).
        pool_shift: Octaves added to every pooled level (0 in the paper's model and in
            SAFMN-BCIE, 1 in SAFMN's NTIRE 2023 variant).

    Raises:
        ArgumentError: ``dim`` is not a multiple of ``n_levels``.

    Example:
        >>> SAFM(dim=16)(torch.rand(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(
        self, *, dim: int, n_levels: int = 4, bias: bool = True, pool_shift: int = 0
    ) -> None:
        super().__init__()
        if dim % n_levels:
            raise ArgumentError(f"SAFM: dim ({dim}) must be a multiple of n_levels ({n_levels})")
        self.n_levels = n_levels
        self.pool_shift = pool_shift
        chunk = dim // n_levels
        self.mfr = nn.ModuleList(
            nn.Conv2d(chunk, chunk, 3, padding=1, groups=chunk, bias=bias) for _ in range(n_levels)
        )
        self.aggr = nn.Conv2d(dim, dim, 1, bias=bias)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Modulate ``x`` (N, dim, H, W) by its multi-scale features."""
        h, w = x.shape[-2:]
        chunks = x.chunk(self.n_levels, dim=1)
        out = [self.mfr[0](chunks[0])]
        for i in range(1, self.n_levels):
            # The original pools to (h // 2**k, w // 2**k), which is empty for inputs smaller
            # than 2**k; one pixel (a global max) is the natural limit there.
            k = i + self.pool_shift
            size = (max(h // 2**k, 1), max(w // 2**k, 1))  # not >>: exporters lack it for sizes
            if torch.compiler.is_exporting():
                pooled = _adaptive_max_pool_by_gather(chunks[i], size, 2 ** (k + 1) + 1)
            else:
                pooled = F.adaptive_max_pool2d(chunks[i], size)
            out.append(F.interpolate(self.mfr[i](pooled), size=(h, w), mode="nearest"))
        return self.act(self.aggr(torch.cat(out, dim=1))) * x


_RRDB_SLOPE = 0.2  # LeakyReLU slope inside ESRGAN's dense blocks
_RRDB_RES_SCALE = 0.2  # residual scaling of ESRGAN's dense blocks and of each RRDB


def _rrdb_lrelu(x: torch.Tensor) -> torch.Tensor:
    # In place: x is always a convolution's fresh output that nothing else holds, so this saves
    # one activation-sized copy and keeps autograd exact (LeakyReLU's gradient reads its own
    # output).
    return F.leaky_relu(x, _RRDB_SLOPE, inplace=True)


class ResidualDenseBlock(nn.Module):
    """ESRGAN's residual dense block: five densely connected 3x3 convolutions, the last one's
    output scaled by 0.2 and added to the input.

    Convolution ``k`` (keys ``conv1`` .. ``conv5``) sees the input and the outputs of all
    convolutions before it; the first four add ``num_grow_ch`` channels each, after a
    LeakyReLU of slope 0.2.

    Args:
        num_feat: Channels in and out.
        num_grow_ch: Channels each of the first four convolutions adds.

    Example:
        >>> ResidualDenseBlock(num_feat=16, num_grow_ch=8)(torch.rand(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = conv3x3(num_feat, num_grow_ch)
        self.conv2 = conv3x3(num_feat + num_grow_ch, num_grow_ch)
        self.conv3 = conv3x3(num_feat + 2 * num_grow_ch, num_grow_ch)
        self.conv4 = conv3x3(num_feat + 3 * num_grow_ch, num_grow_ch)
        self.conv5 = conv3x3(num_feat + 4 * num_grow_ch, num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` (N, num_feat, H, W)."""
        x1 = _rrdb_lrelu(self.conv1(x))
        x2 = _rrdb_lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = _rrdb_lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = _rrdb_lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * _RRDB_RES_SCALE + x


class RRDB(nn.Module):
    """ESRGAN's residual in residual dense block: three :class:`ResidualDenseBlock` in a row
    (keys ``rdb1`` .. ``rdb3``), scaled by 0.2 and added to the input.

    Args:
        num_feat: Channels in and out.
        num_grow_ch: Growth channels of each dense block.

    Example:
        >>> RRDB(num_feat=16, num_grow_ch=8)(torch.rand(1, 16, 8, 8)).shape
        torch.Size([1, 16, 8, 8])
    """

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the three dense blocks to ``x`` (N, num_feat, H, W) as one residual."""
        out: torch.Tensor = self.rdb3(self.rdb2(self.rdb1(x))) * _RRDB_RES_SCALE + x
        return out


class ESA(nn.Module):
    """Enhanced spatial attention (RFDN, RLFN, Omni-SR): a mask computed at a fraction of the
    resolution (a stride-2 3x3 convolution, then a 7x7 max pool of stride 3), upsampled
    bilinearly, gating the features.

    Args:
        esa_channels: Channels of the mask branch.
        n_feats: Channels of the features it gates.
        refine: RFDN's form: a 3x3 convolution and ReLU after the pool (``conv_max``) and a
            second 3x3 convolution (``conv3_``) after ``conv3``, with ReLUs between.

    Example:
        >>> ESA(esa_channels=4, n_feats=16)(torch.rand(1, 16, 20, 20)).shape
        torch.Size([1, 16, 20, 20])
    """

    def __init__(self, *, esa_channels: int, n_feats: int, refine: bool = False) -> None:
        super().__init__()
        f = esa_channels
        self.refine = refine
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        if refine:
            self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        if refine:
            self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c3 = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        if self.refine:
            c3 = self.conv3_(F.relu(self.conv3(F.relu(self.conv_max(c3)))))
        else:
            c3 = self.conv3(c3)
        c3 = F.interpolate(c3, size=x.shape[-2:], mode="bilinear", align_corners=False)
        gated: torch.Tensor = x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))
        return gated
