"""``upscale()``: any image in, the same kind of image out.

A path, a PIL image, a numpy array or a tensor is turned into host-memory planes (no copy where
the layout allows), wrapped with whatever the image needs around the network (gray replicated to
RGB, YCbCr for single-channel models, alpha upscaled separately, the x8 self-ensemble), and run
tile by tile (:mod:`srzoo.tiling`); the output is assembled on the host in the input's own dtype.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ._util import parameter_device_dtype, resolve_device, resolve_dtype, unwrap_compiled
from .api import DEFAULT_MODEL, load, load_default
from .contract import model_channels, model_config, model_scale, receptive_field
from .contract import size_multiple as preferred_size_multiple
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    NonFiniteOutputError,
    PrecisionWarning,
    TilingWarning,
)
from .image import (
    array_to_pil,
    check_array,
    gray_from_rgb,
    is_pil_image,
    pil_to_array,
    read_image,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)
from .metrics import imresize
from .registry import ModelSpec, as_scale, get_spec, list_models
from .tiling import TileArg, max_overlap, tiled_forward

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["resolve_model", "upscale"]

AlphaMode = Literal["bicubic", "model"]
ImageT = TypeVar("ImageT", npt.NDArray[Any], torch.Tensor)

# Default tiling overlaps: the receptive-field radius of a local network up to this cap (beyond
# it the far taps weigh too little to matter and tiles would grow costly), this much for a
# network with global operations, and the old default for a module that does not say.
_MAX_DEFAULT_OVERLAP = 64
_GLOBAL_OVERLAP = 32
_UNKNOWN_OVERLAP = 16

FLOAT_TOLERANCE = 0.05
"""How far outside [0, 1] a float image may reach and still be taken (then clamped as usual):
the overshoot of a resampling filter. Beyond it the image is refused: 0..255 or [-1, 1] data
would otherwise come out nearly white or black."""


class _Pipeline(nn.Module):
    """What runs on each tile: the network plus the colour and alpha handling around it.

    Input: (N, C, h, w) float32 in [0, 1], colour planes first (1 gray or 3 RGB, or exactly the
    model's channels when ``direct``), then an optional alpha plane. Output: the same planes at
    ``scale`` times the size, not clamped. Every step is local (the bicubic resize reaches two
    pixels), so tiles with enough overlap reproduce the untiled result.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        colour_planes: int,
        alpha: AlphaMode | None,
        direct: bool,
        self_ensemble: bool,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.model = model
        self.scale = model_scale(model)
        self.model_channels = model_channels(model)
        self.colour_planes = colour_planes
        self.alpha = alpha
        self.direct = direct
        self.self_ensemble = self_ensemble
        self.dtype = dtype

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.model(x.to(self.dtype))
        return y.float()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if not self.self_ensemble:
            return self._net(x)
        # The eight flips and rotations of the square, each undone on the output, then averaged
        # (the "+" results of EDSR and its successors).
        total: torch.Tensor | None = None
        for flip in (False, True):
            xf = x.flip(-1) if flip else x
            for k in range(4):
                y = self._net(torch.rot90(xf, k, (-2, -1)))
                y = torch.rot90(y, -k, (-2, -1))
                y = y.flip(-1) if flip else y
                total = y if total is None else total + y
        assert total is not None
        return total / 8

    def _bicubic(self, x: torch.Tensor) -> torch.Tensor:
        return imresize(x, scale=self.scale)

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        if self.direct or self.colour_planes == self.model_channels == 3:
            return self._run(x)
        rgb = x.expand(-1, 3, -1, -1) if self.colour_planes == 1 else x
        if self.model_channels == 3:
            return gray_from_rgb(self._run(rgb))
        # Single-channel models see Y; chroma is upsampled bicubically, as the papers do.
        ycbcr = rgb_to_ycbcr(rgb)
        y = self._run(ycbcr[:, :1])
        out = ycbcr_to_rgb(torch.cat([y, self._bicubic(ycbcr[:, 1:])], dim=1))
        return gray_from_rgb(out) if self.colour_planes == 1 else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        colour = self._colour(x[:, : self.colour_planes])
        if self.alpha is None:
            return colour
        a = x[:, self.colour_planes :]
        if self.alpha == "bicubic":
            up = self._bicubic(a)
        elif self.model_channels == 1:
            up = self._run(a)
        else:
            up = self._run(a.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
        return torch.cat([colour, up], dim=1)


def _is_model_name(value: object) -> bool:
    """A registered model name that is not also an existing file."""
    return isinstance(value, str) and value in list_models() and not os.path.isfile(value)


def resolve_model(
    model: nn.Module | str | None,
    *,
    scale: int | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> nn.Module:
    """The module that :func:`upscale` runs for its ``model`` argument.

    Args:
        model: A module, a registered name (loaded with its default weights), or ``None`` for
            srzoo's default model.
        scale: Scale to load a named or the default model at; for a module, checked against it.
        device: Where to run; a module elsewhere is copied there, not moved.
        dtype: Compute dtype; a module of another dtype is copied, not converted.

    Returns:
        The module to run, in eval mode for a loaded one (a copy when it had to change).

    Raises:
        ArgumentTypeError: ``model`` is neither a module nor a name, or the default model is
            asked for without a scale.
        ArgumentError: ``scale`` disagrees with the module's.

    Example:
        >>> net = resolve_model("edsr-baseline", scale=2)
    """
    resolve_device(device)
    dtype = resolve_dtype(dtype)
    if model is None:
        if scale is None:
            raise ArgumentTypeError(
                "upscale(image) runs srzoo's default model and needs scale= (2, 3 or 4); "
                "or pass a model: upscale(model, image)"
            )
        return load_default(scale, device=device, dtype=dtype)
    if isinstance(model, str):
        return load(model, scale=scale, device=device, dtype=dtype)
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(
            f"model must be an nn.Module or a registered name, got {type(model)}"
        )
    if scale is not None and as_scale(scale) != model_scale(model):
        raise ArgumentError(f"scale={scale} but the model upscales x{model_scale(model)}")
    have_device, have_dtype = parameter_device_dtype(model)
    if have_device is not None and (
        (device is not None and have_device != torch.device(device))
        or (dtype is not None and have_dtype != dtype)
    ):
        # The caller's module stays as it is: convert a copy (convert the model once yourself
        # when calling upscale() in a loop).
        model = copy.deepcopy(model).to(device=device, dtype=dtype)
    return model


class _Postprocess:
    """Clamp (and quantise) each tile's output, and note whether any value was not finite.

    The note is a flag on the output's device, so checking a tile costs one reduction and no
    wait for the device; :meth:`check` reads it once, after the last tile.
    """

    def __init__(self, max_value: float, integer: bool) -> None:
        self.max_value = max_value
        self.integer = integer
        self.finite: torch.Tensor | None = None

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        finite = torch.isfinite(y).all()
        self.finite = finite if self.finite is None else self.finite & finite
        # In place: y is this tile's own output, and each copy would be as large as it.
        y = y.clamp_(0.0, 1.0)
        if self.integer:
            y = y.mul_(self.max_value).round_()
        return y

    def check(self, net: nn.Module, dtype: torch.dtype) -> None:
        if self.finite is None or bool(self.finite):
            return
        config = model_config(net)
        what = config.describe() if config is not None else type(net).__name__
        hint = (
            f" in {str(dtype).replace('torch.', '')} it may overflow: try float32"
            if dtype in (torch.float16, torch.bfloat16)
            else " check the weights (a damaged or diverged checkpoint)"
        )
        raise NonFiniteOutputError(
            f"the model {what} produced NaN or infinite values, so the picture would be wrong "
            f"(black or white patches) and none is returned;{hint}."
        )


def _tensor_from_array(array: npt.NDArray[Any]) -> torch.Tensor:
    """(1, C, H, W) view of an (H, W, C) array, without copying unless the layout needs it."""
    if not array.dtype.isnative or any(stride < 0 for stride in array.strides):
        # torch cannot view byte-swapped or negatively strided (flipped) memory.
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    with warnings.catch_warnings():
        # A read-only array (np.asarray of a PIL image) is only ever read here.
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(array)
    return rearrange(t, "h w c -> 1 c h w")


def _output_size(height: int, width: int, outscale: float) -> tuple[int, int]:
    return max(1, round(height * outscale)), max(1, round(width * outscale))


def _resize_to_outscale(t: torch.Tensor, size: tuple[int, int], max_value: float) -> torch.Tensor:
    """Resize (N, C, H, W) of any dtype to ``size``, one plane at a time to bound memory."""
    integer = not t.is_floating_point()
    n, c = t.shape[:2]
    out = torch.empty((n, c, *size), dtype=t.dtype, device=t.device)
    for i in range(n):
        for j in range(c):
            plane = t[i : i + 1, j : j + 1].float()
            r = F.interpolate(plane, size=size, mode="bicubic", align_corners=False, antialias=True)
            # Bicubic overshoots at edges: clamp again, so the result stays in range.
            r = r.clamp(0, max_value)
            if integer:
                r = r.round()
            out[i : i + 1, j : j + 1] = r.to(t.dtype)
    return out


def _validate_outscale(outscale: float | None) -> None:
    if outscale is None:
        return
    if isinstance(outscale, bool) or not isinstance(outscale, (int, float)):
        raise ArgumentTypeError(f"outscale must be a number, got {type(outscale).__name__}")
    if not math.isfinite(outscale) or outscale <= 0:
        raise ArgumentError(f"outscale must be a positive finite number, got {outscale}")


def _run_planes(
    net: nn.Module,
    planes: torch.Tensor,
    out: torch.Tensor,
    *,
    colour_planes: int,
    alpha: AlphaMode | None,
    direct: bool,
    max_value: float,
    opts: dict[str, Any],
) -> None:
    have_device, have_dtype = parameter_device_dtype(net)
    device = have_device or torch.device(opts["device"] or "cpu")
    dtype = have_dtype or opts["dtype"] or torch.float32
    pipeline = _Pipeline(
        net,
        colour_planes=colour_planes,
        alpha=alpha,
        direct=direct,
        self_ensemble=opts["self_ensemble"],
        dtype=dtype,
    )
    post = _Postprocess(max_value, not out.is_floating_point())
    multiple = opts["size_multiple"]
    field = receptive_field(net)
    overlap = opts["overlap"]
    if overlap is None:
        overlap = _default_overlap(field, opts["tile"], multiple)

    def pre(t: torch.Tensor) -> torch.Tensor:
        return t.float() if t.is_floating_point() else t.float() / max_value

    tiled_forward(
        pipeline,
        planes,
        scale=pipeline.scale,
        tile=opts["tile"],
        overlap=overlap,
        size_multiple=multiple,
        batch_size=opts["batch_size"],
        device=device,
        dtype=torch.float32,
        preprocess=pre,
        postprocess=post,
        out=out,
        pad_to_tile=unwrap_compiled(net) is not net,
        progress=opts["progress"],
        on_split=(lambda n: _warn_global_tiling(net)) if field == "global" else None,
    )
    post.check(net, dtype)


def _default_overlap(field: int | str | None, tile: TileArg, multiple: int) -> int:
    if isinstance(field, int):
        overlap = min(field, _MAX_DEFAULT_OVERLAP)
    else:
        overlap = _GLOBAL_OVERLAP if field == "global" else _UNKNOWN_OVERLAP
    if isinstance(tile, int) and not isinstance(tile, bool) and tile >= 1:
        # At most a quarter of the tile, so that the kept core is at least half its side: an
        # overlap near tile / 2 would leave cores of a pixel or two and thousands of windows.
        overlap = min(overlap, tile // 4, max_overlap(tile, multiple))
    return overlap


_WARNED: set[str] = set()


def _warn_global_tiling(net: nn.Module) -> None:
    config = model_config(net)
    name = config.architecture if config is not None else type(unwrap_compiled(net)).__name__
    if name in _WARNED:
        return
    _WARNED.add(name)
    warnings.warn(
        f"{name} uses global operations (channel attention or global pooling), so tiled output "
        "differs from the untiled result (the guide lists measured differences); pass "
        "tile=None to run whole images, or a larger tile to reduce the difference.",
        TilingWarning,
        stacklevel=7,
    )


def _check_float_range(values: torch.Tensor, name: str) -> None:
    """Refuse float data clearly outside [0, 1] (see :data:`FLOAT_TOLERANCE`)."""
    lo, hi = (float(v) for v in torch.aminmax(values))
    if lo >= -FLOAT_TOLERANCE and hi <= 1 + FLOAT_TOLERANCE:
        return
    if hi > 2 and lo >= -FLOAT_TOLERANCE:
        advice = (
            f"it looks like 0..{255 if hi <= 255 else 65535} data: divide by "
            f"{255 if hi <= 255 else 65535} (or pass the integer array as it is)"
        )
    elif lo < -FLOAT_TOLERANCE and hi <= 1 + FLOAT_TOLERANCE:
        advice = "it looks like [-1, 1] data: map it with (x + 1) / 2"
    else:
        advice = "scale it into [0, 1] first"
    raise ArgumentError(
        f"{name} holds floats from {lo:g} to {hi:g}, but srzoo takes float images in [0, 1] "
        f"(with {FLOAT_TOLERANCE:g} of slack); {advice}."
    )


def _upscale_array(
    net: nn.Module, array: npt.NDArray[Any], alpha: AlphaMode, opts: dict[str, Any], name: str
) -> npt.NDArray[Any]:
    hwc = check_array(array, name)
    was_2d = array.ndim == 2
    channels = hwc.shape[2]
    colour_planes = 1 if channels in (1, 2) else 3
    has_alpha = channels in (2, 4)
    scale = model_scale(net)
    height, width = hwc.shape[:2]
    integer = hwc.dtype.kind == "u"
    max_value = float(np.iinfo(hwc.dtype).max) if integer else 1.0
    # Floats are computed in float32 whatever their storage dtype, and stored back in it.
    native = hwc.dtype.newbyteorder("=")
    out_array = np.empty((height * scale, width * scale, channels), dtype=native)
    planes = _tensor_from_array(hwc)
    if not integer:
        _check_float_range(planes, name)
    out_t = _tensor_from_array(out_array)
    _run_planes(
        net,
        planes,
        out_t,
        colour_planes=colour_planes,
        alpha=alpha if has_alpha else None,
        direct=False,
        max_value=max_value,
        opts=opts,
    )
    if opts["outscale"] is not None and opts["outscale"] != scale:
        size = _output_size(height, width, opts["outscale"])
        resized = _resize_to_outscale(out_t, size, max_value)
        out_array = rearrange(resized, "1 c h w -> h w c").contiguous().numpy()
    return out_array[:, :, 0] if was_2d else out_array


def _upscale_tensor(
    net: nn.Module, x: torch.Tensor, alpha: AlphaMode, opts: dict[str, Any]
) -> torch.Tensor:
    if x.ndim not in (3, 4):
        raise ArgumentError(
            f"image tensor must be (N, C, H, W) or (C, H, W), got shape {tuple(x.shape)}"
        )
    batched = x if x.ndim == 4 else x.unsqueeze(0)
    n, channels, height, width = batched.shape
    if n == 0 or height == 0 or width == 0:
        raise ArgumentError(f"image tensor is empty: shape {tuple(x.shape)}")
    if not (batched.is_floating_point() or batched.dtype == torch.uint8):
        raise ArgumentTypeError(f"image tensor must be float in [0, 1] or uint8, got {x.dtype}")
    if batched.is_floating_point():
        if not torch.isfinite(batched).all():
            raise ArgumentError("image tensor contains NaN or infinite values")
        _check_float_range(batched, "the image tensor")
    expected = model_channels(net)
    direct = channels == expected
    if not direct and channels not in (1, 3, 4):
        raise ArgumentError(
            f"image tensor has {channels} channels; expected {expected} (the model's), "
            "1 (gray), 3 (RGB) or 4 (RGBA)"
        )
    colour_planes = channels if direct else (3 if channels == 4 else channels)
    has_alpha = not direct and channels == 4
    scale = model_scale(net)
    integer = not batched.is_floating_point()
    max_value = 255.0 if integer else 1.0
    out = torch.empty(
        (n, channels, height * scale, width * scale), dtype=batched.dtype, device=batched.device
    )
    _run_planes(
        net,
        batched,
        out,
        colour_planes=colour_planes,
        alpha=alpha if has_alpha else None,
        direct=direct,
        max_value=max_value,
        opts=opts,
    )
    if opts["outscale"] is not None and opts["outscale"] != scale:
        out = _resize_to_outscale(out, _output_size(height, width, opts["outscale"]), max_value)
    return out if x.ndim == 4 else out[0]


def _upscale_pil(
    net: nn.Module, image: PILImage.Image, alpha: AlphaMode, opts: dict[str, Any], name: str
) -> PILImage.Image:
    array, mode = pil_to_array(image)
    return array_to_pil(_upscale_array(net, array, alpha, opts, name), mode)


@overload
def upscale(
    image: ImageT,
    /,
    *,
    scale: int,
    tile: TileArg = ...,
    overlap: int | None = ...,
    batch_size: int = ...,
    device: str | torch.device | None = ...,
    dtype: torch.dtype | str | None = ...,
    outscale: float | None = ...,
    alpha: AlphaMode = ...,
    self_ensemble: bool = ...,
    size_multiple: int | None = ...,
    progress: bool | None = ...,
) -> ImageT: ...


@overload
def upscale(
    image: str | os.PathLike[str] | PILImage.Image,
    /,
    *,
    scale: int,
    tile: TileArg = ...,
    overlap: int | None = ...,
    batch_size: int = ...,
    device: str | torch.device | None = ...,
    dtype: torch.dtype | str | None = ...,
    outscale: float | None = ...,
    alpha: AlphaMode = ...,
    self_ensemble: bool = ...,
    size_multiple: int | None = ...,
    progress: bool | None = ...,
) -> PILImage.Image: ...


@overload
def upscale(
    model: nn.Module | str,
    image: ImageT,
    *,
    scale: int | None = ...,
    tile: TileArg = ...,
    overlap: int | None = ...,
    batch_size: int = ...,
    device: str | torch.device | None = ...,
    dtype: torch.dtype | str | None = ...,
    outscale: float | None = ...,
    alpha: AlphaMode = ...,
    self_ensemble: bool = ...,
    size_multiple: int | None = ...,
    progress: bool | None = ...,
) -> ImageT: ...


@overload
def upscale(
    model: nn.Module | str,
    image: str | os.PathLike[str] | PILImage.Image,
    *,
    scale: int | None = ...,
    tile: TileArg = ...,
    overlap: int | None = ...,
    batch_size: int = ...,
    device: str | torch.device | None = ...,
    dtype: torch.dtype | str | None = ...,
    outscale: float | None = ...,
    alpha: AlphaMode = ...,
    self_ensemble: bool = ...,
    size_multiple: int | None = ...,
    progress: bool | None = ...,
) -> PILImage.Image: ...


def upscale(
    model: Any = None,
    image: Any = None,
    *,
    scale: int | None = None,
    tile: TileArg = None,
    overlap: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    outscale: float | None = None,
    alpha: AlphaMode = "bicubic",
    self_ensemble: bool = False,
    size_multiple: int | None = None,
    progress: bool | None = None,
) -> Any:
    """Super-resolve an image, returning the same kind of image.

    Accepts a file path (returns a PIL image), a PIL image (PIL), a numpy array (HW or HWC,
    uint8/uint16/float in [0, 1]; returns the same dtype and layout), or a tensor ((N, C, H, W)
    or (C, H, W), float in [0, 1] or uint8; returns the same dtype, layout and device). Gray
    images run through RGB models as three equal channels and come back gray; single-channel
    (Y) models run on BT.601 Y with the chroma upsampled bicubically; alpha is upscaled on its
    own. The result is clamped to the valid range; the input is never modified.

    Called with the image alone (``upscale(image, scale=4)``), it runs srzoo's own default
    model for that scale (:func:`srzoo.load_default`: weights shipped in the package, no
    download).

    Args:
        model: A module following srzoo's contract, or a registered name (then
            ``srzoo.load(model, scale=scale, device=device, dtype=dtype)`` is called).
            Left out (the image as the only positional argument), srzoo's default model.
        image: The image (see above).
        scale: Scale to load a named or the default model at (required for the default);
            for a module, only checked against it.
        tile: Tile side in input pixels (context included); ``None`` runs the whole image at
            once, ``"auto"`` picks the largest tile that fits. Out of memory, the tile is halved
            and the work continues.
        overlap: Context pixels around each tile. Default: the network's receptive-field
            radius (``model.receptive_field``; exact tiles) up to 64, 32 for networks with
            global operations, 16 for modules that do not declare one; in each case at most a
            quarter of ``tile``, so that each tile keeps at least half its side.
        batch_size: Tiles per forward pass.
        device: Device to run on (default: the model's). A module on another device or dtype
            is copied, not changed.
        dtype: Compute dtype, e.g. ``torch.bfloat16`` or ``"bf16"`` (default: the model's).
            A precision the model is measured to break in (its registry entry's
            ``precision``) runs in float32 with a :class:`~srzoo.errors.PrecisionWarning`;
            so does a reduced-precision run whose output holds NaN or infinity.
        outscale: Final scale when it differs from the model's: the model's output is resized
            (bicubic, antialiased) to ``round(size * outscale)``.
        alpha: How alpha is upscaled: ``"bicubic"`` (default) or ``"model"`` (the network, on
            the alpha plane replicated to its input channels).
        self_ensemble: Average the eight flips and rotations (the papers' "+" results; 8x
            slower).
        size_multiple: Input multiple the model prefers (default: the registry's for a named
            model, else the module's ``size_multiple`` attribute, else 1).
        progress: Progress bar over tiles (default: when stderr is a terminal).

    Returns:
        The upscaled image, of the input's kind.

    Raises:
        ImageReadError: A path that is not a readable image.
        ValueError: An empty image, NaN values, a wrong rank or channel count, bad arguments.
        TypeError: An unsupported type or dtype.
        UnknownModelError, UnsupportedScaleError: A bad model name or scale.
        TileOutOfMemoryError: Out of memory even on the smallest tile.

    Example:
        >>> sr = srzoo.upscale("photo.png", scale=4)  # srzoo's own model, offline
        >>> sr = srzoo.upscale(model, "photo.png", tile=512, overlap=32)
        >>> sr = srzoo.upscale("edsr-baseline", np.zeros((32, 32, 3), np.uint8), scale=2)
        >>> sr = srzoo.upscale(model, torch.rand(1, 3, 64, 64), tile="auto", batch_size=4)
    """
    if image is None:
        if model is None or isinstance(model, nn.Module) or _is_model_name(model):
            raise ArgumentTypeError(
                "upscale() needs an image: upscale(model, image), or upscale(image, scale=s) "
                "for srzoo's default model"
            )
        model, image = None, model
    if alpha not in ("bicubic", "model"):
        raise ArgumentError(f"alpha must be 'bicubic' or 'model', got {alpha!r}")
    _validate_outscale(outscale)
    if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, int)):
        raise ArgumentTypeError(f"overlap must be an int, got {type(overlap).__name__}")
    if overlap is not None and overlap < 0:
        raise ArgumentError(f"overlap must be >= 0, got {overlap}")
    kind_ok = isinstance(image, (str, os.PathLike, np.ndarray, torch.Tensor)) or is_pil_image(image)
    if not kind_ok:
        raise ArgumentTypeError(
            "image must be a path, a PIL image, a numpy array or a torch tensor, got "
            f"{type(image).__name__}"
        )
    dtype = resolve_dtype(dtype)
    if dtype in _REDUCED and (spec := _registered(model)):
        where = device
        if where is None and isinstance(model, nn.Module):
            where = parameter_device_dtype(model)[0]
        if _broken(spec, dtype, where):
            dtype = torch.float32  # before loading or converting: weights never pass through it
    net = resolve_model(model, scale=scale, device=device, dtype=dtype)
    net, dtype = _precision_fallback(net, dtype)
    opts: dict[str, Any] = {
        "tile": tile,
        "overlap": overlap,  # None: chosen per model in _run_planes
        "batch_size": batch_size,
        "device": device,
        "dtype": dtype,
        "outscale": outscale,
        "self_ensemble": self_ensemble,
        "size_multiple": size_multiple or preferred_size_multiple(net),
        "progress": progress,
    }
    was_training = net.training
    net.eval()
    try:
        try:
            return _upscale_any(net, image, alpha, opts)
        except NonFiniteOutputError:
            run_dtype = parameter_device_dtype(net)[1]
            if run_dtype not in _REDUCED:
                raise
            # An overflow of the reduced precision: float32 gives the picture the model means.
            _warn_precision(net, f"produced NaN or infinite values in {_dtype_name(run_dtype)}")
            opts["dtype"] = torch.float32
            wide = copy.deepcopy(unwrap_compiled(net)).float().eval()
            return _upscale_any(wide, image, alpha, opts)
    finally:
        net.train(was_training)


def _upscale_any(net: nn.Module, image: Any, alpha: AlphaMode, opts: dict[str, Any]) -> Any:
    if isinstance(image, (str, os.PathLike)):
        return _upscale_pil(net, read_image(image), alpha, opts, str(image))
    if isinstance(image, np.ndarray):
        return _upscale_array(net, image, alpha, opts, "image array")
    if isinstance(image, torch.Tensor):
        return _upscale_tensor(net, image, alpha, opts)
    return _upscale_pil(net, image, alpha, opts, "PIL image")


_REDUCED = (torch.float16, torch.bfloat16)


def _dtype_name(dtype: torch.dtype | None) -> str:
    return str(dtype).removeprefix("torch.")


def _registered(model: nn.Module | str | None) -> ModelSpec | None:
    """The registry entry of a model argument of :func:`upscale`, when it has one."""
    if model is None:
        return get_spec(DEFAULT_MODEL)
    if isinstance(model, str):
        return get_spec(model) if _is_model_name(model) else None
    config = model_config(model) if isinstance(model, nn.Module) else None
    return get_spec(config.architecture) if config is not None else None


def _broken(spec: ModelSpec, dtype: torch.dtype, device: str | torch.device | None) -> bool:
    """Whether ``spec`` is measured broken in ``dtype`` on ``device``'s type; warns if so."""
    verdict = spec.precision_verdict(dtype, device or "cpu")
    if verdict is None or verdict.verdict != "broken":
        return False
    measured = f"{verdict.psnr_db} dB against float32" if verdict.finite else "NaN or infinity"
    warnings.warn(
        f"{spec.name} is measured broken in {verdict.dtype} on {verdict.device} ({measured}); "
        "running it in float32 instead. Run it in float32 (or another measured precision) to "
        "silence this.",
        PrecisionWarning,
        stacklevel=4,
    )
    return True


def _precision_fallback(
    net: nn.Module, dtype: torch.dtype | None
) -> tuple[nn.Module, torch.dtype | None]:
    """A float32 copy of a module held in a precision its registry entry says it breaks in."""
    device, have = parameter_device_dtype(net)
    config = model_config(net)
    if have not in _REDUCED or device is None or config is None:
        return net, dtype
    if not _broken(get_spec(config.architecture), have, device):
        return net, dtype
    return copy.deepcopy(unwrap_compiled(net)).float(), torch.float32


def _warn_precision(net: nn.Module, what: str) -> None:
    config = model_config(net)
    name = config.describe() if config is not None else type(unwrap_compiled(net)).__name__
    warnings.warn(
        f"the model {name} {what}; running it again in float32. Pass a float32 model (or "
        "dtype=torch.float32) to skip the first attempt.",
        PrecisionWarning,
        stacklevel=4,
    )
