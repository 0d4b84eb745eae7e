"""Image conversion for inference: PIL / numpy / tensor layouts, alpha, gray, 16-bit, YCbCr.

Pillow is optional (``pip install "srzoo[image]"``) and imported only when an image file or a PIL
image is handled. Arrays are HWC (or HW) with values 0..255 (uint8), 0..65535 (uint16) or
[0, 1] (floats); tensors are NCHW (or CHW) floats in [0, 1].

YCbCr is the BT.601 studio-swing transform of MATLAB's ``rgb2ycbcr``, the one the single-channel
papers (SRCNN, FSRCNN, VDSR, ...) use: its Y equals :func:`srzoo.metrics.rgb_to_y`.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

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
    "read_image_tags",
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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Formats whose further images are not frames of the picture: an MPO (a camera's JPEG) carries
# previews, an HDR gain map or a second view after the photo; a PSD's are the layers of the
# composite image Pillow reads first.
_SINGLE_PICTURE_FORMATS = frozenset({"MPO", "PSD"})

_EXIF_ORIENTATION = 0x0112
# The text tags write_image records and read_image_tags reads: name -> EXIF tag number.
_TEXT_TAGS = {"Software": 0x0131, "Description": 0x010E}

# Pillow's decompression-bomb messages read "Image size (N pixels) exceeds limit of M pixels".
_PIXEL_COUNT = re.compile(r"\((\d+) pixels\)")


class _Decoded(NamedTuple):
    """A decoded file: Pillow's image and what Pillow does not keep for srzoo."""

    image: PILImage.Image
    orientation: int
    """EXIF orientation (1 when absent), not yet applied to ``image``."""
    png16: bytes | None
    """The file's bytes when it is a 16-bit colour PNG, which Pillow reads as 8-bit."""
    tiff_bits: int
    """Bits per sample of a colour TIFF deeper than 8 bits, which Pillow reads as 8-bit; else 0."""


def _is_16bit_colour_png(head: bytes) -> bool:
    if len(head) < 26 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return False
    # Colour types 2 (RGB), 4 (gray + alpha) and 6 (RGBA): Pillow reads them as 8-bit.
    return head[24] == 16 and head[25] in (2, 4, 6)


def _deep_colour_tiff_bits(image: PILImage.Image) -> int:
    if image.format != "TIFF" or image.mode not in ("RGB", "RGBA"):
        return 0
    bits = getattr(image, "tag_v2", {}).get(258)  # BitsPerSample
    depths = [b for b in (bits if isinstance(bits, tuple) else (bits,)) if isinstance(b, int)]
    return max(depths) if depths and max(depths) > 8 else 0


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _too_many_pixels(path: Path, error: Exception, limit: int | None) -> ImageReadError:
    found = _PIXEL_COUNT.search(str(error))
    pixels = f"{int(found[1]):,} pixels" if found else "more pixels than allowed"
    bound = f" of {limit:,}" if limit is not None else ""
    return ImageReadError(
        f"{path}: the image has {pixels}, over the limit{bound} that guards against "
        "decompression bombs (PIL.Image.MAX_IMAGE_PIXELS, or srzoo upscale --max-pixels); if "
        "you trust the file, raise that limit"
    )


def _open_checked(path: Path) -> _Decoded:
    """Decode the one picture in ``path``, or raise an :class:`ImageReadError` saying why not."""
    image_mod = pil_image_module()
    if path.is_symlink() and not path.exists():
        raise ImageReadError(
            f"{path}: a broken symbolic link (its target {os.readlink(path)} does not exist)"
        )
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file (a pipe or a device); save it first")
    try:
        file = open(path, "rb")  # noqa: SIM115 - closed by the `with` below, after decoding
    except OSError as error:
        raise ImageReadError(f"{path}: cannot open the file ({error.strerror or error})") from None
    with file:
        head = file.read(26)
        if not head:
            raise ImageReadError(f"{path}: the file is empty")
        file.seek(0)
        try:
            with warnings.catch_warnings():
                # Pillow only warns below twice its pixel limit: srzoo has one limit, an error.
                warnings.simplefilter("error", image_mod.DecompressionBombWarning)
                image: PILImage.Image = image_mod.open(file)
                single = image.format in _SINGLE_PICTURE_FORMATS
                frames = 1 if single else int(getattr(image, "n_frames", 1))
                if frames <= 1:
                    image.load()
        except (image_mod.DecompressionBombError, image_mod.DecompressionBombWarning) as error:
            raise _too_many_pixels(path, error, image_mod.MAX_IMAGE_PIXELS) from None
        except image_mod.UnidentifiedImageError:
            raise ImageReadError(
                f"{path}: not an image file Pillow can read (an unknown format, or a corrupt or "
                "zero-size header)"
            ) from None
        except MemoryError:
            raise ImageReadError(f"{path}: not enough memory to decode the image") from None
        except Exception as error:
            # Pillow reports truncated and corrupt data as OSError, SyntaxError, ValueError,
            # EOFError, struct.error, ... depending on the format.
            raise ImageReadError(f"{path}: cannot decode the image ({_one_line(error)})") from None
        if frames > 1:
            raise ImageReadError(
                f"{path}: the file has {frames} frames (an animated or multi-page "
                f"{image.format} image) and srzoo upscales single images; extract the frames "
                "first (for example with ffmpeg or PIL.ImageSequence) and upscale those"
            )
        try:
            # Read while the file is open: TIFF reads its EXIF block from the file on demand.
            orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
        except Exception:
            orientation = 1  # unreadable metadata does not make the pixels unreadable
        png16 = None
        if _is_16bit_colour_png(head):
            file.seek(0)
            png16 = file.read()
    if image.width == 0 or image.height == 0:
        raise ImageReadError(f"{path}: the image is empty ({image.width}x{image.height})")
    return _Decoded(image, orientation, png16, _deep_colour_tiff_bits(image))


def _warn_deep_tiff(path: Path, decoded: _Decoded) -> None:
    if decoded.tiff_bits:
        warnings.warn(
            f"{path}: a {decoded.tiff_bits}-bit colour TIFF is read as 8 bits (Pillow has no "
            "deeper colour mode); save it as a 16-bit PNG to keep 16 bits",
            stacklevel=3,
        )


def read_image(path: str | os.PathLike[str]) -> PILImage.Image:
    """Open an image file fully (so a truncated file fails here) with EXIF orientation applied.

    Args:
        path: The file: one picture (an animated or multi-page file is refused).

    Returns:
        The decoded PIL image. 16-bit colour PNGs and TIFFs are reduced to 8 bits by Pillow
        (with a warning); :func:`read_image_array` keeps 16-bit PNGs 16-bit.

    Raises:
        ImageReadError: A missing, empty, truncated or non-image file, a broken symbolic link,
            a zero-size image, an animated or multi-page file, or more pixels than
            ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's guard against decompression bombs).
        ImportError: Pillow is not installed.

    Example:
        >>> img = read_image("photo.png")
    """
    pil_image_module()
    # Pillow is optional (the image extra): imported on use
    from PIL import ImageOps

    p = Path(path)
    decoded = _open_checked(p)
    if decoded.png16 is not None:
        warnings.warn(
            f"{p}: a 16-bit colour PNG becomes 8-bit as a PIL image; pass the array from "
            "srzoo.image.read_image_array() to keep 16 bits",
            stacklevel=2,
        )
    _warn_deep_tiff(p, decoded)
    transposed: PILImage.Image = ImageOps.exif_transpose(decoded.image)
    return transposed


def read_image_array(path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    """Read an image file as an HWC/HW array, keeping 16-bit PNGs (colour ones too) 16-bit.

    EXIF orientation is applied, and a transparent colour key becomes an alpha channel.

    Args:
        path: The file: one picture (an animated or multi-page file is refused).

    Returns:
        uint8 or uint16 pixels (HW for gray, HWC otherwise); palette images as RGB(A).
        16-bit colour TIFFs come back 8-bit, with a warning (Pillow reads them so).

    Raises:
        ImageReadError: A missing, empty, truncated or non-image file, a broken symbolic link,
            a zero-size image, an animated or multi-page file, more pixels than
            ``PIL.Image.MAX_IMAGE_PIXELS``, or pixels srzoo cannot hold (floating point,
            integers outside 0..65535).

    Example:
        >>> read_image_array("scan16.png").dtype
        dtype('uint16')
    """
    p = Path(path)
    decoded = _open_checked(p)
    if decoded.png16 is not None:
        return _oriented(_decode_png16(decoded.png16, p), decoded.orientation)
    _warn_deep_tiff(p, decoded)
    try:
        array, mode = pil_to_array(decoded.image)
    except ArgumentError as error:
        raise ImageReadError(f"{p}: {error}") from None
    if mode == "F":
        raise ImageReadError(f"{p}: floating-point image files are not supported")
    key = decoded.image.info.get("transparency")
    if mode == "I;16" and isinstance(key, int):
        # A 16-bit gray PNG's colour key: Pillow has no 16-bit gray + alpha mode to give it.
        array = np.stack([array, np.where(array == key, 0, 65535).astype(np.uint16)], axis=-1)
    return array


def _oriented(array: npt.NDArray[Any], orientation: int) -> npt.NDArray[Any]:
    """``array`` (H, W, C) turned as ``PIL.ImageOps.exif_transpose`` turns an image."""
    turns: dict[int, Any] = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    turn = turns.get(orientation)
    return array if turn is None else np.ascontiguousarray(turn(array))


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(type, start, end)`` of each chunk's body in a PNG file's bytes, up to IEND."""
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        yield kind, pos + 8, min(pos + 8 + length, len(data))
        if kind == b"IEND":
            return
        pos += 12 + length


def _colour_key_alpha(data: bytes, pixels: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``pixels`` of an RGB PNG, with an alpha channel when a tRNS chunk names a colour key."""
    if pixels.shape[2] != 3:
        return pixels
    for kind, start, end in _png_chunks(data):
        if kind == b"tRNS" and end - start == 6:
            key = np.array(struct.unpack(">HHH", data[start:end]), dtype=pixels.dtype)
            opaque = np.iinfo(pixels.dtype).max
            alpha = np.where((pixels == key).all(axis=2), 0, opaque).astype(pixels.dtype)
            return np.concatenate([pixels, alpha[:, :, None]], axis=2)
        if kind == b"IDAT":
            break  # tRNS comes before the pixel data
    return pixels


def _decode_png16(data: bytes, path: Path) -> npt.NDArray[Any]:
    # Pillow has no 16-bit colour mode. torchvision's libpng decoder is fast; without it, a
    # decoder written here (slower on large images) keeps the 16 bits all the same.
    try:
        from torchvision.io import (  # optional: the fast decoder when installed
            ImageReadMode,
            decode_png,
        )
    except ImportError:
        return _colour_key_alpha(data, _decode_png_bytes(data, path))
    buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        with warnings.catch_warnings():
            # torchvision announces that its codecs move to torchcodec; they still work.
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = decode_png(buffer, mode=ImageReadMode.UNCHANGED)
    except RuntimeError as error:
        raise ImageReadError(f"{path}: cannot decode the image ({_one_line(error)})") from None
    pixels: npt.NDArray[np.uint16] = decoded.permute(1, 2, 0).numpy().astype(np.uint16)
    return _colour_key_alpha(data, pixels)


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
    try:
        data = p.read_bytes()
    except OSError as error:
        raise ImageReadError(f"{p}: cannot read the file ({error.strerror or error})") from None
    return _decode_png_bytes(data, p)


def _decode_png_bytes(data: bytes, p: Path) -> npt.NDArray[Any]:
    if data[:8] != _PNG_SIGNATURE:
        raise ImageReadError(f"{p}: not a PNG file")
    header: tuple[int, ...] | None = None
    idat: list[bytes] = []
    for kind, start, end in _png_chunks(data):
        if kind == b"IHDR" and end - start == 13:
            header = struct.unpack(">IIBBBBB", data[start:end])
        elif kind == b"IDAT":
            idat.append(data[start:end])
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


def _png16_bytes(array: npt.NDArray[np.uint16], tags: dict[str, str] | None = None) -> bytes:
    """A PNG file holding a 16-bit (H, W, C) array, C in 1..4, rows unfiltered, and ``tags`` as
    text chunks."""
    height, width, channels = array.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = array.astype(">u2").reshape(height, width * channels).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    # Before IDAT, where a reader finds them without decoding the pixels.
    text = b""
    for key, value in (tags or {}).items():
        try:
            text += chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1"))
        except UnicodeEncodeError:  # tEXt is Latin-1; iTXt holds UTF-8
            text += chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode())
    return (
        _PNG_SIGNATURE
        + chunk(b"IHDR", header)
        + text
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP", "bmp": "BMP"}
_FORMATS.update({"tif": "TIFF", "tiff": "TIFF"})

# The PIL modes each format stores as they are. A PIL image of another mode is written from its
# pixels (as an array), which drops what the format cannot hold with a warning, never silently.
_NATIVE_MODES = {
    "PNG": frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "I;16"}),
    "JPEG": frozenset({"1", "L", "RGB", "CMYK"}),
    "WEBP": frozenset({"L", "RGB", "RGBA"}),
    "BMP": frozenset({"1", "L", "P", "RGB"}),
    "TIFF": frozenset({"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"}),
}

# Pillow writes a 32-bit BMP, but reads it back (as most programs do) without its alpha.
_NO_ALPHA_FORMATS = frozenset({"JPEG", "BMP"})


def write_image(
    path: str | os.PathLike[str],
    image: npt.NDArray[Any] | PILImage.Image,
    *,
    format: str | None = None,
    quality: int = 95,
    software: str | None = None,
    description: str | None = None,
) -> None:
    """Write an image array (or PIL image) to a file.

    16-bit arrays are written as 16-bit PNGs (gray, gray+alpha, RGB, RGBA); formats without 16
    bits or alpha (JPEG, BMP) get 8 bits and lose alpha, with a warning. A PIL image is written
    as it is shown: its EXIF orientation is applied to the pixels, since the file would lose it.

    Args:
        path: Destination; the format follows ``format`` or else the suffix.
        image: HW/HWC uint8, uint16 or float (values in [0, 1]) array, or a PIL image.
        format: ``"png"``, ``"jpg"``, ``"webp"``, ``"bmp"`` or ``"tiff"``.
        quality: JPEG/WebP quality.
        software: The program to record as the file's author: the PNG ``Software`` text, the
            EXIF ``Software`` tag of JPEG, WebP and TIFF (BMP has no place for it).
        description: What the image is, recorded as the PNG ``Description`` text or the EXIF
            ``ImageDescription`` tag. EXIF holds ASCII only: other characters become ``?``,
            with a warning. :func:`read_image_tags` reads both back.

    Raises:
        ValueError: Unknown format, or a PIL image of 32-bit float pixels (mode ``F``) for
            any format but TIFF.
        OSError: The file cannot be written.

    Example:
        >>> write_image("out.png", np.zeros((4, 4, 3), np.uint8))
    """
    pil_image_module()
    # Pillow is optional (the image extra): imported on use
    from PIL import ImageOps

    p = Path(path)
    name = (format or p.suffix.lstrip(".")).lower()
    if name not in _FORMATS:
        raise ArgumentError(f"{p}: unknown image format {name!r}; use one of {sorted(_FORMATS)}")
    pil_format = _FORMATS[name]
    tags = {k: v for k, v in (("Software", software), ("Description", description)) if v}
    options = _save_options(p, pil_format, quality, tags)
    if is_pil_image(image):
        pil: PILImage.Image = ImageOps.exif_transpose(image)  # type: ignore[arg-type]
        if pil.mode in _NATIVE_MODES[pil_format]:
            pil.save(p, format=pil_format, **options)
            return
        if pil.mode == "F":
            raise ArgumentError(
                f"{p}: a PIL image of 32-bit float pixels (mode F) can be written only as TIFF; "
                "or pass an array with values in [0, 1]"
            )
        try:
            image, _ = pil_to_array(pil)
        except ArgumentError as error:
            raise ArgumentError(f"{p}: {error}") from None
    array = check_array(np.asarray(image), str(p))
    if array.dtype.kind == "f":
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    if pil_format in _NO_ALPHA_FORMATS and array.shape[2] in (2, 4):
        warnings.warn(f"{p}: {pil_format} has no alpha channel; alpha dropped", stacklevel=2)
        array = array[:, :, : array.shape[2] - 1]
    if array.dtype == np.uint16:
        if pil_format == "PNG":
            p.write_bytes(_png16_bytes(array, tags))
            return
        if not (pil_format == "TIFF" and array.shape[2] == 1):
            warnings.warn(f"{p}: {pil_format} cannot hold 16 bits; written as 8-bit", stacklevel=2)
            array = np.round(array / 257.0).astype(np.uint8)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[array.shape[2]]
    if array.dtype == np.uint16:
        mode = "I;16"
    pil = array_to_pil(array, mode)
    pil.save(p, format=pil_format, **options)


def _save_options(
    path: Path, pil_format: str, quality: int, tags: dict[str, str]
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if pil_format in ("JPEG", "WEBP"):
        options["quality"] = quality
    if tags and pil_format == "PNG":
        # Pillow is optional (the image extra): imported on use
        from PIL.PngImagePlugin import PngInfo

        text = PngInfo()
        for key, value in tags.items():
            text.add_text(key, value)  # iTXt (UTF-8) when Latin-1 cannot hold the value
        options["pnginfo"] = text
    elif tags and pil_format in ("JPEG", "WEBP", "TIFF"):
        exif = pil_image_module().Exif()
        for key, value in tags.items():
            if not value.isascii():
                warnings.warn(
                    f"{path}: EXIF holds ASCII text only; {key} is written with '?' for the "
                    "other characters",
                    stacklevel=3,
                )
            exif[_TEXT_TAGS[key]] = value
        options["exif"] = exif
    return options


def read_image_tags(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``Software`` and ``Description`` an image file records, read from its header only.

    Args:
        path: Any file.

    Returns:
        The PNG text chunks or EXIF tags (``ImageDescription`` for ``Description``) of those
        names, as :func:`write_image` writes them; an empty dict for a file without them or a
        file Pillow cannot open.

    Example:
        >>> write_image("out.png", np.zeros((4, 4, 3), np.uint8), software="srzoo")
        >>> read_image_tags("out.png")
        {'Software': 'srzoo'}
    """
    image_mod = pil_image_module()
    found: dict[str, str] = {}
    try:
        with warnings.catch_warnings():
            # Only the header is read: a file too large to decode can still say who wrote it.
            warnings.simplefilter("ignore")
            with image_mod.open(path) as image:
                exif = image.getexif()
                for key, number in _TEXT_TAGS.items():
                    value = image.info.get(key, exif.get(number))
                    if isinstance(value, str):
                        found[key] = value.rstrip("\0")
    except Exception:
        return {}
    return found
