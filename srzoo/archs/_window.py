"""Window attention pieces shared by the Swin-style families (SwinIR, Swin2SR, HAT, DAT, ...).

Everything here is a tensor operation on the input's device and dtype, with shapes computed from
Python integers, so ``torch.compile(fullgraph=True)`` captures it. The masks and index tables
that depend only on a shape are cached per (shape, device, dtype) in eager mode; under
``torch.compile`` they are computed in the graph instead, where the compiler folds them.

Layouts follow the Swin Transformer code the families descend from: tokens as ``(B, H, W, C)``,
windows as ``(B * num_windows, window * window, C)`` in row-major window order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, ParamSpec, TypeVar, cast

import torch
import torch.nn.functional as F
from einops import rearrange

__all__ = [
    "MASK_VALUE",
    "floor_mod",
    "pad_to_min_size",
    "pad_to_multiple",
    "padded_window_order",
    "reflect_pad",
    "relative_coords",
    "relative_position_index",
    "shape_cached",
    "shift_mask",
    "window_order",
    "window_partition",
    "window_reverse",
]

# The value the Swin code adds to the logits of token pairs from different regions of a shifted
# window. Kept (rather than -inf) so that the softmax is the reference's to the last bit.
MASK_VALUE = -100.0

_P = ParamSpec("_P")
_T = TypeVar("_T")


def shape_cached(maxsize: int = 64) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
    """Cache a table that depends only on shapes, devices and dtypes; compute it in the graph
    under ``torch.compile``.

    Masks, position indices and gather orders are pure functions of Python integers, a device
    and a dtype. In eager mode the decorated function remembers its last ``maxsize`` results
    (built outside inference mode, so a table first made under ``torch.inference_mode`` also
    serves training); under ``torch.compile`` (or export) it runs in the graph, where the
    compiler folds it into constants and no cache lookup breaks the capture.

    Args:
        maxsize: Results kept (distinct image sizes, devices and dtypes in use at once).

    Example:
        >>> @shape_cached()
        ... def ramp(n: int, device: torch.device) -> torch.Tensor:
        ...     return torch.arange(n, device=device)
    """

    def decorate(build: Callable[_P, _T]) -> Callable[_P, _T]:
        def outside_inference(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            with torch.inference_mode(False):
                return build(*args, **kwargs)

        # The arguments are ints, tuples, devices and dtypes: all hashable.
        cached = cast(Callable[_P, _T], functools.lru_cache(maxsize=maxsize)(outside_inference))

        @functools.wraps(build)
        def table(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            if torch.compiler.is_compiling():
                return build(*args, **kwargs)
            return cached(*args, **kwargs)

        return table

    return decorate


def floor_mod(t: torch.Tensor, m: int) -> torch.Tensor:
    """``t % m`` (floor semantics) for a divisor that may be a symbolic size.

    ONNX export translates floor division by a free size but not the remainder by one, so index
    arithmetic on sizes that vary with the input goes through this; constant divisors keep ``%``.
    """
    return t - (t // m) * m


def _reflect_indices(n: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Indices of ``n`` positions with ``before`` and ``after`` reflected ones (edge not repeated).

    The reflection continues periodically (period ``2n - 2``) where a pad reaches ``n``, so any
    size pads; where ``F.pad(mode="reflect")`` accepts the size, the result is the same.
    """
    i = torch.arange(-before, n + after, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * n - 2
    i = floor_mod(i, period)
    return torch.where(i < n, i, period - i)


def reflect_pad(
    x: torch.Tensor, pad_h: int, pad_w: int, *, top: int = 0, left: int = 0
) -> torch.Tensor:
    """Reflect-pad ``x`` (``(..., H, W)``) by ``pad_h`` rows at the bottom, ``pad_w`` at the right
    (and ``top`` / ``left`` rows and columns before the image).

    Equal to ``F.pad(x, (left, pad_w, top, pad_h), mode="reflect")`` wherever that is defined
    (pads smaller than the side); beyond it the reflection repeats, so a 1x1 image pads too.
    """
    h, w = x.shape[-2], x.shape[-1]
    # While exporting (torch.export, ONNX) the sizes are free: those branches would fix the
    # traced size's case (no pad, or a pad the side allows), so the export takes the gather,
    # right for every size.
    if not torch.compiler.is_exporting() and max(top, pad_h) < h and max(left, pad_w) < w:
        if top or pad_h or left or pad_w:
            return F.pad(x, (left, pad_w, top, pad_h), mode="reflect")
        return x
    rows = _reflect_indices(h, top, pad_h, x.device)
    cols = _reflect_indices(w, left, pad_w, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad an ``(N, C, H, W)`` tensor at the bottom and right to multiples of ``multiple``.

    The Swin-style restorers pad this way before their windows and crop the output after.
    """
    h, w = x.shape[-2], x.shape[-1]
    return reflect_pad(x, -h % multiple, -w % multiple)


def pad_to_min_size(
    x: torch.Tensor, min_size: int, *, mode: Literal["reflect", "replicate"]
) -> torch.Tensor:
    """Pad ``x`` (``(..., H, W)``) at the bottom and right so that both sides are at least
    ``min_size``; larger inputs pass unchanged.

    While exporting (torch.export, ONNX) the pads are computed in the graph from the free size
    (a gather), so the file is right for inputs above and below ``min_size`` alike.
    """
    h, w = x.shape[-2], x.shape[-1]
    if torch.compiler.is_exporting():
        # SymInts while exporting; typed as the sizes they stand for.
        pad_h = cast(int, torch.sym_max(min_size - h, 0))
        pad_w = cast(int, torch.sym_max(min_size - w, 0))
        if mode == "reflect":
            return reflect_pad(x, pad_h, pad_w)
        rows = torch.arange(h + pad_h, device=x.device).clamp(max=h - 1)
        cols = torch.arange(w + pad_w, device=x.device).clamp(max=w - 1)
        return x.index_select(-2, rows).index_select(-1, cols)
    pad_h, pad_w = max(min_size - h, 0), max(min_size - w, 0)
    if not (pad_h or pad_w):
        return x
    if mode == "reflect":
        return reflect_pad(x, pad_h, pad_w)
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")


def window_partition(x: torch.Tensor, window: int | tuple[int, int]) -> torch.Tensor:
    """``(B, H, W, C)`` tokens -> ``(B * num_windows, wh * ww, C)`` windows, row-major."""
    wh, ww = (window, window) if isinstance(window, int) else window
    return rearrange(x, "b (nh wh) (nw ww) c -> (b nh nw) (wh ww) c", wh=wh, ww=ww)


def window_reverse(
    windows: torch.Tensor, window: int | tuple[int, int], h: int, w: int
) -> torch.Tensor:
    """The inverse of :func:`window_partition`: windows -> ``(B, H, W, C)``."""
    wh, ww = (window, window) if isinstance(window, int) else window
    return rearrange(
        windows, "(b nh nw) (wh ww) c -> b (nh wh) (nw ww) c", nh=h // wh, nw=w // ww, wh=wh
    )


@shape_cached()
def _relative_position_index(wh: int, ww: int, device: torch.device) -> torch.Tensor:
    ys = torch.arange(wh, device=device).repeat_interleave(ww)
    xs = torch.arange(ww, device=device).repeat(wh)
    dy = ys[:, None] - ys[None, :] + wh - 1
    dx = xs[:, None] - xs[None, :] + ww - 1
    return dy * (2 * ww - 1) + dx


def relative_position_index(window: int | tuple[int, int], device: torch.device) -> torch.Tensor:
    """Swin's ``(wh*ww, wh*ww)`` index into a ``((2wh-1)(2ww-1), heads)`` bias table.

    Entry ``[i, j]`` names the offset of token ``j`` from token ``i`` of one window, as the
    Swin code's ``relative_position_index`` buffer does.
    """
    wh, ww = (window, window) if isinstance(window, int) else window
    return _relative_position_index(wh, ww, device)


def _region_ids(n: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    # The Swin code's three slices along one axis: [0, n - window), [n - window, n - shift),
    # [n - shift, n).
    i = torch.arange(n, device=device)
    return (i >= n - window).long() + (i >= n - shift).long()


@shape_cached()
def _shift_mask(
    h: int,
    w: int,
    window: tuple[int, int],
    shift: tuple[int, int],
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    wh, ww = window
    regions = _region_ids(h, wh, shift[0], device)[:, None] * 3 + _region_ids(
        w, ww, shift[1], device
    )
    ids = window_partition(regions[None, :, :, None], window).squeeze(-1)
    differ = ids[:, None, :] != ids[:, :, None]
    zero = torch.zeros((), device=device, dtype=dtype)
    return torch.where(differ, torch.full_like(zero, MASK_VALUE), zero)


def shift_mask(
    h: int,
    w: int,
    window: int | tuple[int, int],
    shift: int | tuple[int, int],
    *,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The additive attention mask of shifted windows over an ``h x w`` (padded) image.

    Shape ``(num_windows, wh*ww, wh*ww)``: 0 where two tokens of a window came from the same
    region before the cyclic shift, :data:`MASK_VALUE` where they did not, exactly as the Swin
    code's ``calculate_mask``. Cached per shape, device and dtype (the last 64 used).
    """
    win = (window, window) if isinstance(window, int) else window
    sh = (shift, shift) if isinstance(shift, int) else shift
    return _shift_mask(h, w, win, sh, device, dtype)


@shape_cached()
def _window_order(
    h: int, w: int, window: int, shift: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # Token t of the window-ordered sequence (window by window, row-major inside each) of the
    # image rolled by -shift, and its inverse.
    t = torch.arange(h * w, device=device)
    area, nw = window * window, w // window
    rows = (t // (area * nw)) * window + (t // window) % window
    cols = floor_mod(t // area, nw) * window + t % window
    gather = floor_mod(rows + shift, h) * w + floor_mod(cols + shift, w)
    r, c = floor_mod(t // w - shift, h), floor_mod(floor_mod(t, w) - shift, w)
    scatter = ((r // window) * nw + c // window) * area + (r % window) * window + c % window
    return gather, scatter


def window_order(
    h: int, w: int, window: int, shift: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token indices that cut an ``h x w`` image into (cyclically shifted) windows and back.

    ``tokens.index_select(1, gather)`` turns ``(B, h * w, C)`` tokens in image order into the
    windows of the image rolled by ``-shift`` (Swin's ``torch.roll`` then
    ``window_partition``), and ``windows.index_select(1, scatter)`` undoes both, one copy each
    way instead of the rolls' and the partition's.

    Args:
        h: Image height, a multiple of ``window``.
        w: Image width, a multiple of ``window``.
        window: Window side.
        shift: Cyclic shift (0 for plain windows).
        device: Where to build the indices.

    Returns:
        ``(gather, scatter)``, ``long`` tensors of ``h * w`` entries, cached per arguments
        outside ``torch.compile``.

    Example:
        >>> gather, scatter = window_order(32, 32, 16, 8, torch.device("cpu"))
    """
    return _window_order(h, w, window, shift, device)


@shape_cached(maxsize=32)
def _relative_coords(wh: int, ww: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    # Every (dy, dx) offset between two tokens of a wh x ww window, dy-major: the upstream
    # ``rpe_biases`` buffer, which the position-bias MLP takes as input.
    dy = torch.arange(1 - wh, wh, device=device)
    dx = torch.arange(1 - ww, ww, device=device)
    grid = torch.stack(torch.meshgrid(dy, dx, indexing="ij"), dim=-1)
    return grid.reshape(-1, 2).to(dtype)


def relative_coords(
    window: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """The ``((2wh-1)(2ww-1), 2)`` relative ``(dy, dx)`` offsets of a window, as floats.

    Args:
        window: Window height and width.
        device: Device of the table.
        dtype: Floating-point type of the table (the activations').

    Returns:
        The offsets, ``dy`` from ``1 - wh`` to ``wh - 1`` in the outer order.
    """
    return _relative_coords(*window, device, dtype)


@shape_cached()
def _padded_window_order(
    h: int,
    w: int,
    multiple: int,
    window: tuple[int, int],
    shift: tuple[int, int],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    hp, wp = h + -h % multiple, w + -w % multiple
    # Token (r, c) of the shifted, padded image is token (r + sh, c + sw) (cyclically) of the
    # padded one, which is the image's own where inside it and the zero token (index h*w) else.
    rows = floor_mod(torch.arange(hp, device=device) + shift[0], hp)
    cols = floor_mod(torch.arange(wp, device=device) + shift[1], wp)
    inside = (rows < h)[:, None] & (cols < w)[None, :]
    source = torch.where(inside, rows[:, None] * w + cols[None, :], h * w)
    padded = rows[:, None] * wp + cols[None, :]
    wh, ww = window
    gather = rearrange(source, "(nh wh) (nw ww) -> (nh nw wh ww)", wh=wh, ww=ww)
    # Where each token of the padded image went (the inverse permutation, by a scatter: ONNX has
    # no sort); kept for the image's own tokens.
    order = rearrange(padded, "(nh wh) (nw ww) -> (nh nw wh ww)", wh=wh, ww=ww)
    where = torch.zeros_like(order).scatter(0, order, torch.arange(hp * wp, device=device))
    scatter = where.view(hp, wp)[:h, :w].reshape(-1)
    return gather, scatter


def padded_window_order(
    size: tuple[int, int],
    multiple: int,
    window: tuple[int, int],
    shift: tuple[int, int],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tables that pad, shift and partition an image's tokens into windows, and back.

    Upstream zero-pads the image's tokens at the bottom and right to ``multiple``, rolls them
    by ``-shift`` and cuts ``window``-sized windows; undoing it rolls back and crops. Here each
    direction is one ``index_select``: ``gather`` picks, for every token of every window, its
    token in ``image tokens + [zero token]``; ``scatter`` picks, for every token of the image,
    its place in the windows.

    Args:
        size: Image height and width.
        multiple: Padded sides are multiples of this (a multiple of both window sides).
        window: Window height and width.
        shift: Rows and columns the windows are shifted by.
        device: Device of the tables.

    Returns:
        ``(gather, scatter)``: ``(Hp * Wp,)`` and ``(H * W,)`` int64 indices.
    """
    return _padded_window_order(*size, multiple, window, shift, device)
