"""Tiled forward passes: run a super-resolution network over an image of any size.

The input stays in host memory; square windows of it are staged to the model's device one batch
at a time, and each window's output is written into an output tensor that also lives on the host,
in the output's own dtype. Peak device memory is therefore set by the tile size, not the image.

Seams: each window carries ``overlap`` pixels of context on every side that is inside the image,
and only the window's *core* (the window minus that context) is kept. For a convolutional network
whose receptive field fits in the overlap, every kept output pixel saw exactly the input it would
have seen in one untiled pass, so the tiled result equals the untiled one (to float rounding).
Cropping rather than blending also means each output pixel is written once, so the output can be
assembled directly in uint8 or uint16 without a float accumulation buffer the size of the output.

Windows are all the same size: the last window of a row or column is shifted inwards to end at the
image border instead of being cut short. Batches and compiled models therefore see one shape only.

This module knows nothing of files, images or the registry: it maps a tensor to a tensor.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from ._util import parameter_device_dtype, progress_bar, unwrap_compiled
from .errors import ArgumentError, ArgumentTypeError, TileOutOfMemoryError

__all__ = [
    "TileOutOfMemoryError",
    "Window",
    "auto_tile_size",
    "available_memory",
    "is_out_of_memory",
    "max_overlap",
    "measure_peak_memory",
    "plan_axis",
    "plan_windows",
    "tiled_forward",
]

TileArg = int | str | None
TensorFn = Callable[[torch.Tensor], torch.Tensor]

# Sides of the two square probes that measure a model's memory per pixel (rounded to the
# multiple; the second is twice the first).
_PROBE_SIZE = 64
# Memory per pixel that grows by more than this between the probes is read as growing with the
# pixel count (attention over the whole input), and extrapolated as such.
_SUPERLINEAR = 1.25
# Fraction of the free memory that tile="auto" plans to use: the allocator fragments, and on the
# CPU other processes need memory too.
_CUDA_BUDGET = 0.8
_CPU_BUDGET = 0.5


# torch.OutOfMemoryError is new in torch 2.5; torch.cuda's alias is older.
_OOM_TYPES: tuple[type[BaseException], ...] = tuple(
    t
    for t in (
        getattr(torch, "OutOfMemoryError", None),
        getattr(torch.cuda, "OutOfMemoryError", None),
    )
    if isinstance(t, type)
)

# Unsigned types beyond uint8 that torch supports only partly on accelerators.
_BAREBONES_DTYPES = (torch.uint16, torch.uint32, torch.uint64)


@dataclass(frozen=True)
class Window:
    """One tile: where it reads the input, and which part of its output is kept.

    Args:
        index: Image index in the batch.
        top: First input row of the window.
        left: First input column of the window.
        height: Window height (input pixels).
        width: Window width (input pixels).
        core: ``(top, bottom, left, right)`` of the kept region, in input pixels, absolute.
    """

    index: int
    top: int
    left: int
    height: int
    width: int
    core: tuple[int, int, int, int]


def plan_axis(
    length: int, tile: int, overlap: int, multiple: int = 1
) -> list[tuple[int, int, int]]:
    """Split one axis into windows of ``tile`` pixels whose cores partition the axis.

    Args:
        length: Size of the axis.
        tile: Window size; at least ``2 * overlap + 1`` unless it covers the whole axis.
        overlap: Context each window keeps beyond its core, on sides inside the axis.
        multiple: Windows start on multiples of this, so that a network that folds blocks of
            pixels together (pixel-unshuffle) sees each tile on the same grid as the image
            (all windows do when ``length`` is a multiple too).

    Returns:
        ``(window_start, core_start, core_stop)`` per window; every window is
        ``min(tile, length)`` long and lies inside ``[0, length)``.

    Raises:
        ValueError: The tile is too small for the overlap.

    Example:
        >>> plan_axis(10, 6, 1)
        [(0, 0, 5), (4, 5, 10)]
    """
    if length <= tile:
        return [(0, 0, length)]
    step = tile - 2 * overlap
    if step < 1:
        raise ArgumentError(
            f"tile {tile} is too small for overlap {overlap}: it must exceed 2*overlap"
        )
    spans: list[tuple[int, int, int]] = []
    core_start = 0
    while core_start < length:
        # The first core has no context on its left, so it may extend to tile - overlap.
        core_stop = min(length, core_start + (tile - overlap if core_start == 0 else step))
        if length - core_stop <= overlap:
            # The rest fits in this window's right context: no window needed for a sliver.
            core_stop = length
        window_start = min(max(core_start - overlap, 0), length - tile)
        aligned = window_start - window_start % multiple
        if aligned + tile >= min(core_stop, length) and aligned + tile - overlap > core_start:
            # On the image's grid; only a last window that must end at a length which is not a
            # multiple itself stays where it is (the network pads such an image anyway).
            window_start = aligned
        if window_start + tile < min(core_stop + overlap, length):
            core_stop = window_start + tile - overlap
        spans.append((window_start, core_start, core_stop))
        core_start = core_stop
    return spans


def plan_windows(
    batch: int, height: int, width: int, tile: int | None, overlap: int, multiple: int = 1
) -> list[Window]:
    """All windows of a batch of images, image by image, row by row.

    Args:
        batch: Number of images.
        height: Image height.
        width: Image width.
        tile: Window side, or ``None`` for one window per image.
        overlap: Context kept around each core.
        multiple: Windows start on multiples of this (see :func:`plan_axis`).

    Returns:
        The windows; their cores partition every image.

    Example:
        >>> len(plan_windows(2, 100, 100, 64, 8))
        8
    """
    side = max(height, width) if tile is None else tile
    rows = plan_axis(height, side, overlap, multiple)
    cols = plan_axis(width, side, overlap, multiple)
    return [
        Window(n, wy, wx, min(side, height), min(side, width), (cy0, cy1, cx0, cx1))
        for n in range(batch)
        for wy, cy0, cy1 in rows
        for wx, cx0, cx1 in cols
    ]


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means a device (or the host) ran out of memory.

    Args:
        error: The exception raised by a forward pass.

    Returns:
        True for ``torch.OutOfMemoryError``, ``MemoryError`` and runtime errors whose message
        says "out of memory" (older torch versions and some backends raise those).

    Example:
        >>> is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
        True
    """
    if isinstance(error, (*_OOM_TYPES, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def available_memory(device: torch.device) -> int:
    """Bytes a forward pass on ``device`` can still allocate.

    Args:
        device: A CUDA device (free memory plus what torch's cache holds unused) or the CPU
            (``MemAvailable`` of /proc/meminfo, or psutil where importable).

    Returns:
        The byte count; 0 when it cannot be determined.

    Example:
        >>> available_memory(torch.device("cpu")) > 0
        True
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


class _LiveTensorBytes(TorchDispatchMode):  # type: ignore[no-untyped-call]
    """Tracks the bytes of tensor storage allocated by the ops it sees, and their peak."""

    def __init__(self, external: Sequence[torch.Tensor]) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.live = 0
        self.peak = 0
        self._external = {t.untyped_storage().data_ptr() for t in external}
        self._refs: dict[int, int] = {}
        self._sizes: dict[int, int] = {}

    def _release(self, ptr: int) -> None:
        self._refs[ptr] -= 1
        if self._refs[ptr] == 0:
            del self._refs[ptr]
            self.live -= self._sizes.pop(ptr)

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in pytree.tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr, size = storage.data_ptr(), storage.nbytes()
            if ptr == 0 or size == 0 or ptr in self._external:
                continue
            if ptr not in self._refs:
                self._refs[ptr] = 0
                self._sizes[ptr] = size
                self.live += size
                self.peak = max(self.peak, self.live)
            self._refs[ptr] += 1
            weakref.finalize(t, self._release, ptr)
        return out


def measure_peak_memory(model: TensorFn, x: torch.Tensor) -> int:
    """Peak bytes of memory that one forward pass of ``model`` on ``x`` allocates.

    On CUDA this is torch's own peak counter; elsewhere every tensor an op allocates is tracked
    until it is freed (a dispatch mode), so temporaries inside ``forward`` count too.

    Args:
        model: The network (or any tensor function).
        x: A representative input, on the model's device.

    Returns:
        Peak bytes allocated beyond what was allocated before the call.

    Example:
        >>> measure_peak_memory(nn.Conv2d(3, 8, 3), torch.rand(1, 3, 64, 64)) > 0
        True
    """
    with torch.inference_mode():
        if x.device.type == "cuda":
            torch.cuda.synchronize(x.device)
            torch.cuda.reset_peak_memory_stats(x.device)
            base = torch.cuda.memory_allocated(x.device)
            model(x)
            torch.cuda.synchronize(x.device)
            return int(torch.cuda.max_memory_allocated(x.device) - base)
        external: list[torch.Tensor] = [x]
        if isinstance(model, nn.Module):
            external += [*model.parameters(), *model.buffers()]
        tracker = _LiveTensorBytes(external)
        with tracker:
            model(x)
        return tracker.peak


def _round_down(value: int, multiple: int) -> int:
    return (value // multiple) * multiple


def _min_tile(overlap: int, multiple: int) -> int:
    # The smallest multiple of `multiple` that leaves a core of at least one pixel.
    return multiple * (2 * overlap // multiple + 1)


def max_overlap(tile: int, size_multiple: int = 1) -> int:
    """The largest overlap that a ``tile`` (as :func:`tiled_forward` rounds it) can carry.

    Args:
        tile: Tile side in input pixels.
        size_multiple: The multiple tiles are rounded down to.

    Returns:
        The largest ``overlap`` for which the tile still leaves a core of at least one pixel.

    Example:
        >>> max_overlap(48)
        23
    """
    side = max(_round_down(tile, size_multiple), size_multiple)
    overlap = max(0, (side - 1) // 2)
    while overlap > 0 and _min_tile(overlap, size_multiple) > side:
        overlap -= 1
    return overlap


def auto_tile_size(
    model: TensorFn,
    *,
    channels: int,
    overlap: int = 16,
    size_multiple: int = 1,
    batch_size: int = 1,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    budget: int | None = None,
) -> int:
    """The largest tile whose forward pass fits in the memory free on ``device``.

    Two probes, of half and full :data:`_PROBE_SIZE` pixels a side, are run and their peak memory
    measured (see :func:`measure_peak_memory`). Where the memory per pixel is about constant, as
    for convolutional and windowed-attention networks, it is the larger probe's, which errs on
    the safe side (the probe's fixed costs are counted per pixel). Where it grows between the
    probes, as for attention over the whole input without a fused kernel, memory is fitted as
    ``a * pixels + b * pixels**2`` through both probes and the tile solved from that.

    Args:
        model: The network, on ``device``.
        channels: Input channels.
        overlap: Context per side; the tile is at least ``2 * overlap + 1``.
        size_multiple: The tile is a multiple of this.
        batch_size: Tiles per forward pass.
        device: Where the model runs.
        dtype: Input dtype.
        budget: Bytes the pass may use (default: a fraction of :func:`available_memory`).

    Returns:
        The tile side in input pixels.

    Example:
        >>> side = auto_tile_size(srzoo.create("edsr-baseline", 4).eval(), channels=3)
    """
    device = torch.device(device)
    sides = [max(size_multiple, math.ceil(_PROBE_SIZE / 2 / size_multiple) * size_multiple)]
    sides.append(max(2 * sides[0], math.ceil(_PROBE_SIZE / size_multiple) * size_multiple))
    per_pixel = []
    for side in sides:
        probe = torch.rand(1, channels, side, side, device=device, dtype=dtype)
        per_pixel.append(max(measure_peak_memory(model, probe), 1) / side**2)
    if budget is None:
        fraction = _CUDA_BUDGET if device.type == "cuda" else _CPU_BUDGET
        budget = int(available_memory(device) * fraction)
    pixels = _pixels_within(
        max(budget, 0) / max(batch_size, 1),
        (sides[0] ** 2, per_pixel[0]),
        (sides[1] ** 2, per_pixel[1]),
    )
    # Beyond a few thousand pixels a bigger tile gains nothing measurable.
    side = min(int(math.sqrt(pixels)), 4096)
    return max(_round_down(side, size_multiple), _min_tile(overlap, size_multiple))


def _pixels_within(budget: float, small: tuple[int, float], large: tuple[int, float]) -> float:
    """The pixel count whose memory fits ``budget``, from two probes' (pixels, bytes per pixel)."""
    (p1, m1), (p2, m2) = small, large
    if m2 <= _SUPERLINEAR * m1:
        return budget / m2
    # bytes = a * p + b * p**2, i.e. bytes per pixel = a + b * p, through both probes.
    b = (m2 - m1) / (p2 - p1)
    a = max(m1 - b * p1, 0.0)
    return (-a + math.sqrt(a * a + 4 * b * budget)) / (2 * b)


def _default_preprocess(dtype: torch.dtype) -> TensorFn:
    def pre(t: torch.Tensor) -> torch.Tensor:
        if not t.is_floating_point():
            raise ArgumentTypeError(
                f"tiled_forward got a {t.dtype} input: pass a float tensor, or a preprocess "
                "function that converts it to the model's range"
            )
        return t.to(dtype)

    return pre


def _batches(windows: Sequence[Window], size: int) -> Iterator[list[Window]]:
    for i in range(0, len(windows), size):
        yield list(windows[i : i + size])


def tiled_forward(
    model: TensorFn,
    x: torch.Tensor,
    *,
    scale: int,
    tile: TileArg = None,
    overlap: int = 16,
    size_multiple: int = 1,
    batch_size: int = 1,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    preprocess: TensorFn | None = None,
    postprocess: TensorFn | None = None,
    out: torch.Tensor | None = None,
    pad_to_tile: bool | None = None,
    progress: bool | None = None,
    desc: str = "tiles",
    on_split: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Apply ``model`` to ``x`` window by window, assembling the output on ``x``'s device.

    Args:
        model: A network with the srzoo contract: (N, C, h, w) -> (N, C', h*scale, w*scale).
        x: Input (N, C, H, W), usually in host memory, in any dtype ``preprocess`` accepts.
        scale: The model's upscaling factor.
        tile: Window side in input pixels, context included (rounded down to a multiple of
            ``size_multiple``, or up to one multiple when smaller); ``None`` for the whole image
            at once; ``"auto"`` for the largest that fits in free memory
            (:func:`auto_tile_size`).
        overlap: Context pixels around each window's kept core; at least the network's
            receptive-field radius for seamless output.
        size_multiple: Window sides are multiples of this (the model's preferred input multiple).
        batch_size: Windows per forward pass.
        device: Where the model runs (default: where its parameters are).
        dtype: Compute dtype (default: the parameters' dtype).
        preprocess: Maps a staged window (on ``device``) to the model's input; default: cast to
            ``dtype`` (float inputs only).
        postprocess: Maps the model's output (on ``device``) to what is stored, e.g. a clamp and
            a conversion to uint8; it is then cast to ``out``'s dtype.
        out: Where to write the result, (N, C', H*scale, W*scale) on any device; allocated on
            ``x``'s device when ``None`` (with the dtype ``postprocess`` returns).
        pad_to_tile: Pad windows smaller than the tile (images smaller than it) and short
            batches to the full shape, so that a compiled model sees one shape only. Padding
            changes pixels near the bottom and right borders of such small images. Default:
            only for models compiled with ``torch.compile``.
        progress: Show a progress bar over tiles (default: when stderr is a terminal).
        desc: Label of the progress bar.
        on_split: Called with the number of windows when an image is split into more than
            one (for networks whose output tiling changes; see :class:`TilingWarning`).

    Returns:
        The assembled output (``out`` when given).

    Raises:
        TileOutOfMemoryError: Out of memory even at the smallest tile the overlap allows.
        ValueError: Bad shapes or tile arguments.

    Example:
        >>> net = srzoo.create("edsr-baseline", 2).eval()
        >>> y = tiled_forward(net, torch.rand(1, 3, 300, 200), scale=2, tile=128, overlap=16)
        >>> y.shape
        torch.Size([1, 3, 600, 400])
    """
    if x.ndim != 4:
        raise ArgumentError(
            f"tiled_forward expects an (N, C, H, W) tensor, got shape {tuple(x.shape)}"
        )
    n, channels, height, width = x.shape
    if n == 0 or height == 0 or width == 0:
        raise ArgumentError(f"tiled_forward got an empty tensor of shape {tuple(x.shape)}")
    if overlap < 0:
        raise ArgumentError(f"overlap must be >= 0, got {overlap}")
    if size_multiple < 1:
        raise ArgumentError(f"size_multiple must be >= 1, got {size_multiple}")
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be >= 1, got {batch_size}")
    model_device, model_dtype = (
        parameter_device_dtype(model) if isinstance(model, nn.Module) else (None, None)
    )
    run_device = torch.device(device) if device is not None else (model_device or x.device)
    run_dtype = dtype or model_dtype or torch.float32
    pre = preprocess or _default_preprocess(run_dtype)
    if pad_to_tile is None:
        pad_to_tile = isinstance(model, nn.Module) and unwrap_compiled(model) is not model
    floor = _min_tile(overlap, size_multiple)

    side: int | None
    if tile is None:
        side = None
    elif tile == "auto":
        side = auto_tile_size(
            model,
            channels=channels,
            overlap=overlap,
            size_multiple=size_multiple,
            batch_size=batch_size,
            device=run_device,
            dtype=run_dtype,
        )
    elif isinstance(tile, int) and not isinstance(tile, bool):
        if tile < 1:
            raise ArgumentError(f"tile must be a positive number of pixels, 'auto' or None: {tile}")
        # Round down to the multiple, but never to zero: a tile just below one multiple
        # becomes that multiple.
        side = max(_round_down(tile, size_multiple), size_multiple)
        if side < floor and side < max(height, width):
            raise ArgumentError(
                f"tile={tile} is too small: with overlap={overlap} and a size multiple of "
                f"{size_multiple}, tiles must be at least {floor} pixels"
            )
        side = max(side, floor)
    else:
        raise ArgumentError(f"tile must be a positive int, 'auto' or None, got {tile!r}")
    if side is not None and side >= max(height, width) and not pad_to_tile:
        side = None

    # Cores already written, kept as a mask of the input's size only once a retry with smaller
    # tiles needs it (an out-of-memory error): until then no window is written twice.
    finished: list[Window] = []
    done: torch.Tensor | None = None
    bar = progress_bar(progress, total=0, desc=desc, unit="tile")
    try:
        while True:
            windows = plan_windows(n, height, width, side, overlap, size_multiple)
            if on_split is not None and len(windows) > n:
                on_split(len(windows) // n)
            bar.reset(len(windows))
            try:
                for batch in _batches(windows, batch_size):
                    todo = [w for w in batch if done is None or not _core_done(done, w)]
                    if todo:
                        out = _run_batch(
                            model, x, todo, scale, side, pad_to_tile, batch_size,
                            run_device, pre, postprocess, out,
                        )  # fmt: skip
                        finished += todo
                    bar.update(len(batch))
                break
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                done = _mark_done(done, finished, (n, height, width))
                finished = []
                current = max(height, width) if side is None else side
                smaller = _round_down(current // 2, size_multiple)
                if batch_size > 1:
                    batch_size //= 2
                elif smaller < floor:
                    raise TileOutOfMemoryError(
                        f"out of memory on {run_device} even with {current}x{current} tiles "
                        f"(overlap {overlap}); use a smaller overlap, a lower-precision dtype, "
                        "or another device"
                    ) from error
                else:
                    side = smaller
            # Outside the except block: the exception's frames, which hold the failed batch's
            # tensors, are gone, so the cache can really be released.
            if run_device.type == "cuda":
                torch.cuda.empty_cache()
    finally:
        bar.close()
    assert out is not None
    return out


def _mark_done(
    done: torch.Tensor | None, windows: Sequence[Window], shape: tuple[int, int, int]
) -> torch.Tensor:
    if done is None:
        done = torch.zeros(shape, dtype=torch.bool)
    for w in windows:
        cy0, cy1, cx0, cx1 = w.core
        done[w.index, cy0:cy1, cx0:cx1] = True
    return done


def _core_done(done: torch.Tensor, w: Window) -> bool:
    cy0, cy1, cx0, cx1 = w.core
    return bool(done[w.index, cy0:cy1, cx0:cx1].all())


def _run_batch(
    model: TensorFn,
    x: torch.Tensor,
    windows: list[Window],
    scale: int,
    side: int | None,
    pad_to_tile: bool,
    batch_size: int,
    device: torch.device,
    pre: TensorFn,
    post: TensorFn | None,
    out: torch.Tensor | None,
) -> torch.Tensor:
    h, w = windows[0].height, windows[0].width
    staged = torch.stack(
        [x[win.index, :, win.top : win.top + h, win.left : win.left + w] for win in windows]
    )
    if staged.dtype in _BAREBONES_DTYPES and device != staged.device:
        # uint16/32/64 have only basic kernels off the CPU: widen them on the host.
        staged = staged.to(torch.int64 if staged.dtype != torch.uint16 else torch.int32)
    staged = pre(staged.to(device, non_blocking=True))
    if pad_to_tile and side is not None:
        pad_h, pad_w = max(side - h, 0), max(side - w, 0)
        if pad_h or pad_w:
            staged = F.pad(staged, (0, pad_w, 0, pad_h), mode="replicate")
        if len(windows) < batch_size:
            filler = staged[-1:].expand(batch_size - len(windows), -1, -1, -1)
            staged = torch.cat([staged, filler])
    with torch.inference_mode():
        y = model(staged)
        if y.ndim != 4 or y.shape[-2:] != (staged.shape[-2] * scale, staged.shape[-1] * scale):
            raise ArgumentError(
                f"the model turned a {tuple(staged.shape)} input into {tuple(y.shape)}, "
                f"not x{scale} (check the scale)"
            )
        y = y[: len(windows)]
        if post is not None:
            y = post(y)
    if out is None:
        n, _, height, width = x.shape
        out = torch.empty(
            (n, y.shape[1], height * scale, width * scale), dtype=y.dtype, device=x.device
        )
    for i, win in enumerate(windows):
        cy0, cy1, cx0, cx1 = win.core
        src = y[
            i,
            :,
            (cy0 - win.top) * scale : (cy1 - win.top) * scale,
            (cx0 - win.left) * scale : (cx1 - win.left) * scale,
        ]
        if out.dtype in _BAREBONES_DTYPES:
            src = src.to(out.device)
        # copy_ converts while it copies: no temporary of the core in the output's dtype.
        out[win.index, :, cy0 * scale : cy1 * scale, cx0 * scale : cx1 * scale].copy_(src)
    return out
