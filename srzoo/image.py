"""Image conversion for inference: PIL / numpy / tensor layouts, alpha, gray, 16-bit, YCbCr.

Pillow is optional (``pip install "srzoo[image]"``) and imported only when an image file or a PIL
image is handled. Arrays are HWC (or HW) with values 0..255 (uint8), 0..65535 (uint16) or
[0, 1] (floats); tensors are NCHW (or CHW) floats in [0, 1].

YCbCr is the BT.601 studio-swing transform of MATLAB's ``rgb2ycbcr``, the one the single-channel
papers (SRCNN, FSRCNN, VDSR, ...) use: its Y equals :func:`srzoo.metrics.rgb_to_y`.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from .errors import ArgumentError, ArgumentTypeError, ImageReadError, MissingDependencyError
from .metrics import Y_COEFFS, Y_OFFSET

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "array_to_pil",
    "check_array",
    "decode_png_file",
    "gray_from_rgb",
    "is_pil_image",
    "pil_image_module",
    "pil_to_array",
    "read_image",
    "read_image_array",
    "rgb_to_ycbcr",
    "write_image",
    "ycbcr_to_rgb",
]

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm", ".tga"}
)
"""File suffixes the command treats as images when it walks a folder."""

_INSTALL_HINT = 'reading and writing images needs Pillow: pip install "srzoo[image]"'

# MATLAB rgb2ycbcr for values in [0, 1]: rows give Y, Cb, Cr in [0, 1] units (x/255 of 0..255).
# The Y row and offset are the metrics' own, so the Y seen by a model equals the Y it is scored on.
_YCBCR_MATRIX = (
    np.array(
        [
            Y_COEFFS,
            [-37.797, -74.203, 112.0],
            [112.0, -93.786, -18.214],
        ]
    )
    / 255.0
)
_YCBCR_OFFSET = np.array([Y_OFFSET, 128.0, 128.0]) / 255.0
_RGB_MATRIX = np.linalg.inv(_YCBCR_MATRIX).astype(np.float64)

# ITU-R 601-2 luma, the weights of PIL's convert("L"): how a colour result becomes gray again.
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)

_SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)


def pil_image_module() -> Any:
    """``PIL.Image``, imported on first use so that ``import srzoo`` does not need Pillow.

    Returns:
        The ``PIL.Image`` module.

    Raises:
        MissingDependencyError: Pillow is not installed; the message names the extra.

    Example:
        >>> pil_image_module().new("RGB", (4, 4)).size
        (4, 4)
    """
    try:
        # Pillow is optional (the image extra): imported on use
        from PIL import Image
    except ImportError as error:  # pragma: no cover - Pillow is installed in the test env
        raise MissingDependencyError(_INSTALL_HINT) from error
    return Image


def is_pil_image(obj: object) -> bool:
    """Whether ``obj`` is a PIL image, without importing Pillow when it is not loaded.

    Args:
        obj: Anything.

    Returns:
        True for instances of ``PIL.Image.Image``.

    Example:
        >>> is_pil_image(np.zeros((2, 2)))
        False
    """
    if not type(obj).__module__.startswith("PIL"):
        return False
    # Pillow is optional (the image extra): imported on use
    from PIL import Image

    return isinstance(obj, Image.Image)


# --------------------------------------------------------------------------- #
# Colour
# --------------------------------------------------------------------------- #


def _apply_matrix(x: torch.Tensor, matrix: npt.NDArray[np.float64]) -> torch.Tensor:
    m = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
    return torch.einsum("oc,nchw->nohw", m, x)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """RGB to BT.601 YCbCr as MATLAB's ``rgb2ycbcr`` computes it, in [0, 1] units.

    Args:
        rgb: Float tensor (N, 3, H, W) in [0, 1].

    Returns:
        (N, 3, H, W): Y in [16/255, 235/255], Cb and Cr in [16/255, 240/255]; Y equals
        :func:`srzoo.metrics.rgb_to_y`.

    Example:
        >>> rgb_to_ycbcr(torch.ones(1, 3, 1, 1)).flatten() * 255
        tensor([235.0000, 128.0000, 128.0000])
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ArgumentError(f"rgb_to_ycbcr expects (N, 3, H, W), got {tuple(rgb.shape)}")
    offset = torch.as_tensor(_YCBCR_OFFSET, dtype=rgb.dtype, device=rgb.device)
    return _apply_matrix(rgb, _YCBCR_MATRIX) + offset.view(1, 3, 1, 1)


def ycbcr_to_rgb(ycbcr: torch.Tensor) -> torch.Tensor:
    """The exact inverse of :func:`rgb_to_ycbcr` (not clamped).

    Args:
        ycbcr: Float tensor (N, 3, H, W) in [0, 1] units.

    Returns:
        RGB (N, 3, H, W), nominally in [0, 1].

    Example:
        >>> x = torch.rand(1, 3, 4, 4)
        >>> torch.allclose(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-6)
        True
    """
    if ycbcr.ndim != 4 or ycbcr.shape[1] != 3:
        raise ArgumentError(f"ycbcr_to_rgb expects (N, 3, H, W), got {tuple(ycbcr.shape)}")
    offset = torch.as_tensor(_YCBCR_OFFSET, dtype=ycbcr.dtype, device=ycbcr.device)
    return _apply_matrix(ycbcr - offset.view(1, 3, 1, 1), _RGB_MATRIX)


def gray_from_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """Gray (N, 1, H, W) from RGB (N, 3, H, W) with ITU-R 601-2 luma, as PIL's ``convert("L")``.

    Args:
        rgb: Float tensor (N, 3, H, W).

    Returns:
        ``0.299 R + 0.587 G + 0.114 B``, shape (N, 1, H, W).

    Example:
        >>> gray_from_rgb(torch.full((1, 3, 2, 2), 0.5)).flatten()
        tensor([0.5000, 0.5000, 0.5000, 0.5000])
    """
    r, g, b = _GRAY_WEIGHTS
    return r * rgb[:, 0:1] + g * rgb[:, 1:2] + b * rgb[:, 2:3]


# --------------------------------------------------------------------------- #
# Arrays and PIL images
# --------------------------------------------------------------------------- #


def check_array(array: npt.NDArray[Any], name: str = "image") -> npt.NDArray[Any]:
    """Validate an HWC/HW image array and return it as (H, W, C) (a view, never a copy of data).

    Args:
        array: (H, W) or (H, W, C) with C in 1 (gray), 2 (gray+alpha), 3 (RGB), 4 (RGBA), of
            dtype uint8, uint16 or float (values in [0, 1]).
        name: How to call the input in error messages.

    Returns:
        An (H, W, C) view of ``array``.

    Raises:
        TypeError: Unsupported dtype.
        ValueError: Wrong rank, channel count, an empty image, or NaN/infinite values.

    Example:
        >>> check_array(np.zeros((4, 5), np.uint8)).shape
        (4, 5, 1)
    """
    if array.dtype.type not in _SUPPORTED_DTYPES:
        raise ArgumentTypeError(
            f"{name}: unsupported dtype {array.dtype}; use uint8, uint16 or float in [0, 1]"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ArgumentError(
            f"{name}: expected an (H, W) or (H, W, C) array with C in 1..4, got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ArgumentError(f"{name}: the image is empty (shape {array.shape})")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ArgumentError(f"{name}: the image contains NaN or infinite values")
    return array


def pil_to_array(image: PILImage.Image) -> tuple[npt.NDArray[Any], str]:
    """Pixels of a PIL image as an HWC/HW array, and the mode to rebuild the result in.

    EXIF orientation is applied (on a copy). Palette images become RGB or RGBA, bilevel images
    gray; 16-bit gray (``I;16``) stays uint16. A transparent colour key (a PNG ``tRNS`` chunk of
    a gray or RGB image) becomes an alpha channel.

    Args:
        image: Any PIL image.

    Returns:
        ``(array, mode)``: uint8, uint16, int32 (mode ``I``) or float32 (mode ``F``) pixels, and
        the PIL mode :func:`array_to_pil` should produce.

    Raises:
        ValueError: An empty image.

    Example:
        >>> arr, mode = pil_to_array(PIL.Image.new("P", (4, 3)))
        >>> arr.shape, mode
        ((3, 4, 3), 'RGB')
    """
    pil_image_module()
    # Pillow is optional (the image extra): imported on use
    from PIL import ImageOps

    if image.width == 0 or image.height == 0:
        raise ArgumentError(f"the image is empty ({image.width}x{image.height})")
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "1":
        image, mode = image.convert("L"), "L"
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        mode = "RGBA" if has_alpha else "RGB"
        image = image.convert(mode)
    elif mode in ("L", "RGB") and image.info.get("transparency") is not None:
        # A colour key marks the transparent pixels; dropping it would show them opaque.
        mode += "A"
        image = image.convert(mode)
    elif mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16), "I;16"
    elif mode == "I":
        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ArgumentError("32-bit integer images are supported only with values in 0..65535")
        return values.astype(np.uint16), "I"
    elif mode == "F":
        return np.asarray(image, dtype=np.float32), "F"
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        image, mode = image.convert("RGB"), "RGB"
    return np.asarray(image), mode


def array_to_pil(array: npt.NDArray[Any], mode: str) -> PILImage.Image:
    """Build a PIL image of ``mode`` (as returned by :func:`pil_to_array`) from an array.

    Args:
        array: (H, W) or (H, W, C) pixels.
        mode: ``"L"``, ``"LA"``, ``"RGB"``, ``"RGBA"``, ``"I;16"``, ``"I"`` or ``"F"``.

    Returns:
        The image.

    Example:
        >>> array_to_pil(np.zeros((3, 4, 3), np.uint8), "RGB").size
        (4, 3)
    """
    image_mod = pil_image_module()
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    array = np.ascontiguousarray(array)
    dtypes = {"I;16": np.uint16, "I": np.int32, "F": np.float32}
    result: PILImage.Image = image_mod.fromarray(array.astype(dtypes.get(mode, np.uint8)))
    return result


# --------------------------------------------------------------------------- #
# Files
# --------------------------------------------------------------------------- #


def _png_header(path: Path) -> tuple[int, int] | None:
    """``(bit depth, colour type)`` of a PNG file, or ``None`` for other files."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _is_16bit_colour_png(path: Path) -> bool:
    header = _png_header(path)
    # Colour types 2 (RGB), 4 (gray + alpha) and 6 (RGBA): Pillow reads them as 8-bit.
    return header is not None and header[0] == 16 and header[1] in (2, 4, 6)


def _open_checked(path: Path) -> PILImage.Image:
    image_mod = pil_image_module()
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: the file is empty")
    try:
        image: PILImage.Image = image_mod.open(path)
        image.load()
    except image_mod.UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as error:
        # Pillow reports truncated and corrupt data as OSError (or SyntaxError for some formats).
        raise ImageReadError(f"{path}: cannot decode the image ({error})") from None
    if image.width == 0 or image.height == 0:
        raise ImageReadError(f"{path}: the image is empty ({image.width}x{image.height})")
    return image


def read_image(path: str | os.PathLike[str]) -> PILImage.Image:
    """Open an image file fully (so a truncated file fails here) with EXIF orientation applied.

    Args:
        path: The file.

    Returns:
        The decoded PIL image. 16-bit colour PNGs are reduced to 8 bits by Pillow (with a
        warning); :func:`read_image_array` keeps them 16-bit.

    Raises:
        ImageReadError: A missing, empty, truncated or non-image file, or a zero-size image.
        ImportError: Pillow is not installed.

    Example:
        >>> img = read_image("photo.png")
    """
    pil_image_module()
    # Pillow is optional (the image extra): imported on use
    from PIL import ImageOps

    p = Path(path)
    image = _open_checked(p)
    if _is_16bit_colour_png(p):
        warnings.warn(
            f"{p}: a 16-bit colour PNG becomes 8-bit as a PIL image; pass the array from "
            "srzoo.image.read_image_array() to keep 16 bits",
            stacklevel=2,
        )
    transposed: PILImage.Image = ImageOps.exif_transpose(image)
    return transposed


def read_image_array(path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    """Read an image file as an HWC/HW array, keeping 16-bit PNGs (colour ones too) 16-bit.

    Args:
        path: The file.

    Returns:
        uint8 or uint16 pixels (HW for gray, HWC otherwise); palette images as RGB(A).

    Raises:
        ImageReadError: A missing, empty, truncated or non-image file, or a zero-size image.

    Example:
        >>> read_image_array("scan16.png").dtype
        dtype('uint16')
    """
    p = Path(path)
    image = _open_checked(p)
    if _is_16bit_colour_png(p):
        return _decode_png16(p)
    array, mode = pil_to_array(image)
    if mode == "F":
        raise ImageReadError(f"{p}: floating-point image files are not supported")
    return array


def _decode_png16(path: Path) -> npt.NDArray[Any]:
    # Pillow has no 16-bit colour mode. torchvision's libpng decoder is fast; without it, a
    # decoder written here (slower on large images) keeps the 16 bits all the same.
    try:
        from torchvision.io import (  # type: ignore[import-untyped]
            ImageReadMode,
            decode_png,
        )
    except ImportError:
        return decode_png_file(path)
    data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():
            # torchvision announces that its codecs move to torchcodec; they still work.
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = decode_png(data, mode=ImageReadMode.UNCHANGED)
    except RuntimeError as error:
        raise ImageReadError(f"{path}: cannot decode the image ({error})") from None
    pixels: npt.NDArray[np.uint16] = decoded.permute(1, 2, 0).numpy().astype(np.uint16)
    return pixels


_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def decode_png_file(path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    """Decode a non-interlaced 8- or 16-bit gray, gray+alpha, RGB or RGBA PNG with numpy only.

    Used for 16-bit colour PNGs when torchvision's decoder is not available (Pillow has no
    16-bit colour mode).

    Args:
        path: The PNG file.

    Returns:
        (H, W, C) uint8 or uint16 pixels.

    Raises:
        ImageReadError: Not such a PNG, interlaced, or corrupt.

    Example:
        >>> decode_png_file("scan16.png").dtype
        dtype('uint16')
    """
    p = Path(path)
    data = p.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ImageReadError(f"{p}: not a PNG file")
    header: tuple[int, ...] | None = None
    idat: list[bytes] = []
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ImageReadError(f"{p}: PNG without a header")
    width, height, depth, colour, _, _, interlace = header
    if depth not in (8, 16) or colour not in _PNG_CHANNELS or interlace:
        raise ImageReadError(
            f"{p}: only non-interlaced 8/16-bit gray or colour PNGs can be decoded without "
            "torchvision"
        )
    channels = _PNG_CHANNELS[colour]
    bpp = channels * depth // 8
    stride = width * bpp
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8)
    except zlib.error as error:
        raise ImageReadError(f"{p}: cannot decode the image ({error})") from None
    if raw.size < height * (stride + 1):
        raise ImageReadError(f"{p}: cannot decode the image (pixel data is truncated)")
    rows = raw[: height * (stride + 1)].reshape(height, stride + 1)
    out = np.empty((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for r in range(height):
        filt, line = int(rows[r, 0]), rows[r, 1:]
        if filt == 0:
            cur = line
        elif filt == 1:
            # Each byte adds the byte one pixel to its left: a running sum, modulo 256.
            cur = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif filt == 2:
            cur = line + prev
        elif filt in (3, 4):
            cur = _unfilter_sequential(filt, line, prev, bpp)
        else:
            raise ImageReadError(f"{p}: cannot decode the image (bad filter type {filt})")
        out[r] = cur
        prev = out[r]
    if depth == 8:
        return out.reshape(height, width, channels)
    return out.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _unfilter_sequential(
    kind: int, line: npt.NDArray[np.uint8], prev: npt.NDArray[np.uint8], bpp: int
) -> npt.NDArray[np.uint8]:
    """Undo the Average (3) or Paeth (4) filter of one row: each byte depends on the byte
    just reconstructed to its left, so this runs byte by byte."""
    cur = bytearray(line.tobytes())
    up = prev.tobytes()
    for i in range(len(cur)):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            pred = (a + b) >> 1
        else:
            c = up[i - bpp] if i >= bpp else 0
            estimate = a + b - c
            pa, pb, pc = abs(estimate - a), abs(estimate - b), abs(estimate - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        cur[i] = (cur[i] + pred) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


def _png16_bytes(array: npt.NDArray[np.uint16]) -> bytes:
    """A PNG file holding a 16-bit (H, W, C) array, C in 1..4, rows unfiltered."""
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = array.astype(">u2").reshape(height, width * channels).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "bmp": "BMP"}
_FORMATS.update({"tif": "TIFF", "tiff": "TIFF"})


def write_image(
    path: str | os.PathLike[str],
    image: npt.NDArray[Any] | PILImage.Image,
    *,
    format: str | None = None,
    quality: int = 95,
) -> None:
    """Write an image array (or PIL image) to a file.

    16-bit arrays are written as 16-bit PNGs (gray, gray+alpha, RGB, RGBA); formats without 16
    bits or alpha (JPEG) get 8 bits and lose alpha, with a warning.

    Args:
        path: Destination; the format follows ``format`` or else the suffix.
        image: HW/HWC uint8, uint16 or float (values in [0, 1]) array, or a PIL image.
        format: ``"png"``, ``"jpg"``, ``"webp"``, ``"bmp"`` or ``"tiff"``.
        quality: JPEG/WebP quality.

    Raises:
        ValueError: Unknown format.

    Example:
        >>> write_image("out.png", np.zeros((4, 4, 3), np.uint8))
    """
    pil_image_module()
    p = Path(path)
    name = (format or p.suffix.lstrip(".")).lower()
    if name not in _FORMATS:
        raise ArgumentError(f"{p}: unknown image format {name!r}; use one of {sorted(_FORMATS)}")
    pil_format = _FORMATS[name]
    if is_pil_image(image):
        pil: PILImage.Image = image  # type: ignore[assignment]
        pil.save(p, format=pil_format, **_save_options(pil_format, quality))
        return
    array = check_array(np.asarray(image), str(p))
    if array.dtype.kind == "f":
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    if pil_format == "JPEG" and array.shape[2] in (2, 4):
        warnings.warn(f"{p}: JPEG has no alpha channel; alpha dropped", stacklevel=2)
        array = array[:, :, : array.shape[2] - 1]
    if array.dtype == np.uint16:
        if pil_format == "PNG":
            p.write_bytes(_png16_bytes(array))
            return
        if not (pil_format == "TIFF" and array.shape[2] == 1):
            warnings.warn(f"{p}: {pil_format} cannot hold 16 bits; written as 8-bit", stacklevel=2)
            array = np.round(array / 257.0).astype(np.uint8)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[array.shape[2]]
    if array.dtype == np.uint16:
        mode = "I;16"
    pil = array_to_pil(array, mode)
    pil.save(p, format=pil_format, **_save_options(pil_format, quality))


def _save_options(pil_format: str, quality: int) -> dict[str, Any]:
    if pil_format in ("JPEG", "WEBP"):
        return {"quality": quality}
    return {}
