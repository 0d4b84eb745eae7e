"""Image conversion and files: YCbCr, PIL modes, EXIF, 16-bit PNGs, clear errors."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srzoo.errors import SrzooError
from srzoo.image import (
    ImageReadError,
    array_to_pil,
    check_array,
    gray_from_rgb,
    pil_to_array,
    read_image,
    read_image_array,
    rgb_to_ycbcr,
    write_image,
    ycbcr_to_rgb,
)
from srzoo.metrics import rgb_to_y

RNG = np.random.default_rng(0)


def _rgb(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- #
# YCbCr
# --------------------------------------------------------------------------- #


def test_y_matches_metrics_rgb_to_y() -> None:
    rgb = _rgb(9, 7)
    t = torch.from_numpy(rgb).permute(2, 0, 1)[None].double() / 255
    y = rgb_to_ycbcr(t)[0, 0].numpy() * 255
    np.testing.assert_allclose(y, rgb_to_y(rgb), atol=1e-9)


@pytest.mark.parametrize(
    ("rgb", "ycbcr"),
    [
        ((255, 255, 255), (235.0, 128.0, 128.0)),
        ((0, 0, 0), (16.0, 128.0, 128.0)),
        # BT.601 primaries as MATLAB's rgb2ycbcr gives them.
        ((255, 0, 0), (81.481, 90.203, 240.0)),
        ((0, 0, 255), (40.966, 240.0, 109.786)),
    ],
)
def test_ycbcr_known_values(rgb: tuple[int, ...], ycbcr: tuple[float, ...]) -> None:
    t = torch.tensor(rgb, dtype=torch.float64).view(1, 3, 1, 1) / 255
    np.testing.assert_allclose(rgb_to_ycbcr(t).flatten().numpy() * 255, ycbcr, atol=1e-9)
    back = ycbcr_to_rgb(rgb_to_ycbcr(t))
    torch.testing.assert_close(back, t, atol=1e-12, rtol=0)


def test_ycbcr_round_trip_and_shapes() -> None:
    x = torch.rand(2, 3, 5, 4)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        rgb_to_ycbcr(torch.rand(1, 1, 4, 4))
    gray = gray_from_rgb(torch.full((1, 3, 2, 2), 0.25))
    assert gray.shape == (1, 1, 2, 2) and torch.allclose(gray, torch.full_like(gray, 0.25))


# --------------------------------------------------------------------------- #
# PIL modes
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("mode", "out_mode", "shape", "dtype"),
    [
        ("1", "L", (3, 4), np.uint8),
        ("L", "L", (3, 4), np.uint8),
        ("LA", "LA", (3, 4, 2), np.uint8),
        ("RGB", "RGB", (3, 4, 3), np.uint8),
        ("RGBA", "RGBA", (3, 4, 4), np.uint8),
        ("P", "RGB", (3, 4, 3), np.uint8),
        ("CMYK", "RGB", (3, 4, 3), np.uint8),
        ("I;16", "I;16", (3, 4), np.uint16),
        ("I", "I", (3, 4), np.uint16),
        ("F", "F", (3, 4), np.float32),
    ],
)
def test_pil_modes(mode: str, out_mode: str, shape: tuple[int, ...], dtype: type) -> None:
    image = Image.new(mode, (4, 3))
    array, got_mode = pil_to_array(image)
    assert got_mode == out_mode and array.shape == shape and array.dtype == dtype
    back = array_to_pil(array, got_mode)
    assert back.size == (4, 3)
    if out_mode in ("L", "LA", "RGB", "RGBA", "I;16"):
        assert back.mode == out_mode


def test_palette_with_transparency_becomes_rgba() -> None:
    image = Image.new("P", (4, 3))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    array, mode = pil_to_array(image)
    assert mode == "RGBA"
    assert tuple(array[1, 1]) == (255, 0, 0, 255)
    assert array[0, 0, 3] == 0


def test_sixteen_bit_gray_values_survive() -> None:
    values = RNG.integers(0, 65536, (5, 6), dtype=np.uint16)
    array, mode = pil_to_array(Image.fromarray(values))
    assert mode == "I;16"
    np.testing.assert_array_equal(array, values)
    np.testing.assert_array_equal(np.asarray(array_to_pil(array, mode)), values)


def _with_orientation(image: Image.Image, orientation: int) -> Image.Image:
    exif = Image.Exif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    image.getexif()[0x0112] = orientation
    return image


def test_exif_orientation_is_applied_without_touching_the_input() -> None:
    pixels = _rgb(2, 4)
    image = _with_orientation(Image.fromarray(pixels), 6)  # rotate 90 degrees clockwise
    before = image.tobytes()
    array, _ = pil_to_array(image)
    assert array.shape == (4, 2, 3)
    np.testing.assert_array_equal(array, np.rot90(pixels, -1))
    assert image.tobytes() == before and image.size == (4, 2)


def test_exif_orientation_from_a_file(tmp_path: Path) -> None:
    pixels = _rgb(2, 4)
    path = tmp_path / "rotated.png"
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 90 degrees counter-clockwise
    Image.fromarray(pixels).save(path, exif=exif)
    assert read_image(path).size == (2, 4)
    np.testing.assert_array_equal(read_image_array(path), np.rot90(pixels, 1))


# --------------------------------------------------------------------------- #
# Arrays
# --------------------------------------------------------------------------- #


def test_check_array_accepts_the_supported_layouts() -> None:
    assert check_array(np.zeros((3, 4), np.uint8)).shape == (3, 4, 1)
    for c in (1, 2, 3, 4):
        assert check_array(np.zeros((3, 4, c), np.float32)).shape == (3, 4, c)


@pytest.mark.parametrize(
    ("array", "error", "match"),
    [
        (np.zeros((3, 4), np.int64), TypeError, "unsupported dtype int64"),
        (np.zeros((2, 3, 4, 3), np.uint8), ValueError, "shape"),
        (np.zeros((3, 4, 5), np.uint8), ValueError, "C in 1..4"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, "empty"),
        (np.array([[0.5, np.nan]], np.float32), ValueError, "NaN"),
        (np.array([[0.5, np.inf]], np.float64), ValueError, "NaN or infinite"),
    ],
)
def test_check_array_rejects_bad_arrays(array: np.ndarray, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        check_array(array, "my image")


# --------------------------------------------------------------------------- #
# Files
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "array",
    [
        _rgb(),
        RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8),
        RNG.integers(0, 256, (6, 5), dtype=np.uint8),
        RNG.integers(0, 256, (6, 5, 2), dtype=np.uint8),
        RNG.integers(0, 65536, (6, 5), dtype=np.uint16),
        RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16),
        RNG.integers(0, 65536, (6, 5, 4), dtype=np.uint16),
        RNG.integers(0, 65536, (6, 5, 2), dtype=np.uint16),
    ],
    ids=["rgb8", "rgba8", "gray8", "la8", "gray16", "rgb16", "rgba16", "la16"],
)
def test_png_round_trip_keeps_every_bit(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "x.png"
    write_image(path, array)
    back = read_image_array(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_sixteen_bit_colour_png_is_readable_by_pillow_too(tmp_path: Path) -> None:
    # The writer's files are standard PNGs: Pillow reads them (as 8-bit, with a warning).
    array = RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16)
    path = tmp_path / "x.png"
    write_image(path, array)
    with pytest.warns(UserWarning, match="16-bit colour PNG becomes 8-bit"):
        image = read_image(path)
    assert image.mode == "RGB"
    assert np.abs(np.asarray(image).astype(int) - (array >> 8)).max() <= 1


def test_lossy_formats_and_float_arrays(tmp_path: Path) -> None:
    flat = np.full((16, 16, 3), 120, np.uint8)
    write_image(tmp_path / "x.jpg", flat)
    assert np.abs(read_image_array(tmp_path / "x.jpg").astype(int) - 120).max() <= 2
    write_image(tmp_path / "x.webp", np.full((16, 16, 3), 0.5, np.float32), format="webp")
    assert np.abs(read_image_array(tmp_path / "x.webp").astype(int) - 128).max() <= 2
    with pytest.warns(UserWarning, match="alpha dropped"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 4), np.uint8))
    assert read_image_array(tmp_path / "a.jpg").shape == (4, 4, 3)
    with pytest.raises(ValueError, match="unknown image format 'xyz'"):
        write_image(tmp_path / "x.xyz", flat)


def test_unreadable_files_give_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(_rgb(32, 32)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-200])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    cases = {
        truncated: "cannot decode",
        empty: "empty",
        text: "not an image",
        tmp_path / "missing.png": "no such file",
        tmp_path: "folder",
    }
    for path, match in cases.items():
        for reader in (read_image, read_image_array):
            with pytest.raises(ImageReadError, match=match) as info:
                reader(path)
            message = str(info.value)
            assert str(path) in message and "\n" not in message
            assert isinstance(info.value, SrzooError)


def test_missing_pillow_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(ImportError, match=r'pip install "srzoo\[image\]"'):
        read_image(tmp_path / "x.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Arrays and tensors need no Pillow at all.
        assert check_array(np.zeros((2, 2), np.uint8)).shape == (2, 2, 1)


def _png_with_every_filter(array: np.ndarray) -> bytes:
    """A PNG of an (H, W, C) uint8/uint16 array whose row r uses filter r % 5 (encoded here
    from the PNG specification, independently of the decoder under test)."""
    import struct
    import zlib

    height, width, channels = array.shape
    depth = array.dtype.itemsize * 8
    data = array.astype(">u2").view(np.uint8) if depth == 16 else array
    rows = data.reshape(height, -1).astype(np.int64)
    bpp = channels * depth // 8
    out = []
    for r in range(height):
        x = rows[r]
        b = rows[r - 1] if r else np.zeros_like(x)
        a = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int64), b[:-bpp]])
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = [np.zeros_like(x), a, b, (a + b) // 2, paeth][r % 5]
        out.append(np.concatenate([[r % 5], (x - pred) % 256]).astype(np.uint8))
    colour = {1: 0, 2: 4, 3: 2, 4: 6}[channels]

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(np.concatenate(out).tobytes())
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_numpy_png_decoder_undoes_every_filter(tmp_path: Path, channels: int, dtype: type) -> None:
    from srzoo.image import decode_png_file

    high = 256 if dtype == np.uint8 else 65536
    array = RNG.integers(0, high, (11, 6, channels)).astype(dtype)
    path = tmp_path / "x.png"
    path.write_bytes(_png_with_every_filter(array))
    if dtype == np.uint8 and channels in (1, 3):
        # The hand-made file is a valid PNG: Pillow agrees on every pixel.
        np.testing.assert_array_equal(np.asarray(Image.open(path)).reshape(array.shape), array)
    decoded = decode_png_file(path)
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, array)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ImageReadError, match=r"x\.png"):
        decode_png_file(path)


def test_sixteen_bit_colour_without_torchvision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torchvision.io", None)
    array = RNG.integers(0, 65536, (7, 5, 3), dtype=np.uint16)
    path = tmp_path / "x.png"
    path.write_bytes(_png_with_every_filter(array))
    np.testing.assert_array_equal(read_image_array(path), array)


# --------------------------------------------------------------------------- #
# Files that are not one plain picture
# --------------------------------------------------------------------------- #


def _frames(n: int = 3) -> list[Image.Image]:
    return [Image.new("RGB", (8, 6), (40 * i, 0, 0)) for i in range(n)]


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp", ".tif"])
def test_multi_frame_files_are_refused(tmp_path: Path, suffix: str) -> None:
    """An animated GIF / APNG / WebP or a multi-page TIFF is not silently cut to its first frame."""
    first, *rest = _frames(3)
    path = tmp_path / f"anim{suffix}"
    first.save(path, save_all=True, append_images=rest)
    for reader in (read_image, read_image_array):
        with pytest.raises(ImageReadError, match=r"has 3 frames.*single images") as info:
            reader(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message and "extract" in message
    single = tmp_path / f"still{suffix}"
    first.save(single)
    assert read_image_array(single).shape == (6, 8, 3)


def test_a_jpeg_with_secondary_images_is_its_primary_image(tmp_path: Path) -> None:
    # Cameras store previews, gain maps or a second view after the photo (MPO): not frames.
    path = tmp_path / "camera.jpg"
    Image.new("RGB", (8, 6), (200, 0, 0)).save(
        path, format="MPO", save_all=True, append_images=[Image.new("RGB", (4, 3))]
    )
    array = read_image_array(path)
    assert array.shape == (6, 8, 3) and abs(int(array[0, 0, 0]) - 200) <= 2


def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bombs_are_read_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(50_000, 50_000))  # 2.5 gigapixels in 70 bytes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for reader in (read_image, read_image_array):
            with pytest.raises(ImageReadError, match=r"2,500,000,000 pixels") as info:
                reader(bomb)
            message = str(info.value)
            assert str(bomb) in message and "\n" not in message
            assert "MAX_IMAGE_PIXELS" in message and "trust" in message
    # Between Pillow's limit and twice the limit Pillow only warns: srzoo refuses all the same.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    big = tmp_path / "big.png"
    Image.fromarray(_rgb(12, 12)).save(big)  # 144 pixels: over 100, under 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageReadError, match=r"144 pixels.*limit of 100"):
            read_image_array(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert read_image_array(big).shape == (12, 12, 3)


def test_no_pillow_exception_or_warning_escapes(tmp_path: Path) -> None:
    import gc

    good = tmp_path / "good.png"
    Image.fromarray(_rgb(32, 32)).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-200])
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(50_000, 50_000))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    broken_link = tmp_path / "link.png"
    broken_link.symlink_to(tmp_path / "gone.png")
    zero = tmp_path / "zero.png"
    zero.write_bytes(_png_header_only(0, 5))
    cases = {
        truncated: "cannot decode",
        bomb: "pixels",
        empty: "empty",
        text: "not an image",
        zero: "not an image",
        broken_link: "broken symbolic link",
        tmp_path / "missing.png": "no such file",
        tmp_path: "folder",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ResourceWarning (an unclosed file) included
        for path, match in cases.items():
            for reader in (read_image, read_image_array):
                with pytest.raises(ImageReadError, match=match) as info:
                    reader(path)
                assert type(info.value) is ImageReadError
                assert info.value.__suppress_context__ or info.value.__context__ is None
                assert str(path) in str(info.value) and "\n" not in str(info.value)
            gc.collect()


def test_colour_key_transparency_becomes_alpha(tmp_path: Path) -> None:
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "rgb.png", transparency=(0, 0, 0))
    array = read_image_array(tmp_path / "rgb.png")
    assert array.shape == (3, 4, 4)
    assert array[0, 0, 3] == 255 and (array[1:, :, 3] == 0).all()
    gray = np.full((3, 4), 7, np.uint8)
    gray[1, 1] = 9
    Image.fromarray(gray).save(tmp_path / "gray.png", transparency=7)
    array = read_image_array(tmp_path / "gray.png")
    assert array.shape == (3, 4, 2) and array[1, 1, 1] == 255 and array[0, 0, 1] == 0


def _with_exif_chunk(png: bytes, exif: bytes) -> bytes:
    """``png`` with an eXIf chunk holding ``exif`` (TIFF header onwards) before its IDAT."""
    import struct
    import zlib

    at = png.index(b"IDAT") - 4
    crc = zlib.crc32(b"eXIf" + exif) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif + struct.pack(">I", crc)
    return png[:at] + chunk + png[at:]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_sixteen_bit_colour_png_follows_exif_orientation(tmp_path: Path, orientation: int) -> None:
    deep = RNG.integers(0, 65536, (3, 5, 3), dtype=np.uint16)
    exif = Image.Exif()
    exif[0x0112] = orientation
    shallow = tmp_path / "shallow.png"
    Image.fromarray((deep >> 8).astype(np.uint8)).save(shallow, exif=exif)
    expected = read_image_array(shallow)  # Pillow's own orientation handling
    plain = tmp_path / "plain.png"
    write_image(plain, deep)
    path = tmp_path / "deep.png"
    path.write_bytes(_with_exif_chunk(plain.read_bytes(), exif.tobytes()[6:]))
    got = read_image_array(path)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got >> 8, expected)


def test_sixteen_bit_colour_tiff_says_it_loses_bits(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    deep = RNG.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, deep)
    with pytest.warns(UserWarning, match=r"deep\.tif: a 16-bit colour TIFF is read as 8 bits"):
        array = read_image_array(path)
    np.testing.assert_array_equal(array, deep >> 8)


def test_integer_image_out_of_range_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "signed.tif"
    Image.fromarray(np.array([[-5, 7]], np.int32)).save(path)
    with pytest.raises(ImageReadError, match=r"signed\.tif: .*0\.\.65535"):
        read_image_array(path)


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("LA", "jpg"),
        ("RGBA", "jpg"),
        ("P", "jpg"),
        ("PA", "png"),
        ("CMYK", "png"),
        ("I", "png"),
        ("I;16", "jpg"),
        ("RGBX", "png"),
        ("HSV", "tiff"),
        ("LAB", "png"),
        ("I;16", "webp"),
        ("LA", "bmp"),
    ],
)
def test_any_pil_image_is_written_or_refused_clearly(tmp_path: Path, mode: str, fmt: str) -> None:
    image = Image.new(mode, (5, 3))
    path = tmp_path / f"x.{fmt}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # alpha or bits dropped: said, not raised
        write_image(path, image)
    assert read_image(path).size == (5, 3)


def test_what_a_format_cannot_hold_is_said(tmp_path: Path) -> None:
    with pytest.raises(SrzooError, match=r"mode F\b.*only as TIFF"):
        write_image(tmp_path / "x.png", Image.new("F", (4, 4)))
    write_image(tmp_path / "x.tiff", Image.new("F", (4, 4)))
    with pytest.warns(UserWarning, match="BMP has no alpha channel"):
        write_image(tmp_path / "a.bmp", np.zeros((4, 4, 4), np.uint8))
    assert read_image_array(tmp_path / "a.bmp").shape == (4, 4, 3)
    with pytest.warns(UserWarning, match="WEBP cannot hold 16 bits"):
        write_image(tmp_path / "g.webp", Image.fromarray(np.full((4, 4), 40000, np.uint16)))
    assert abs(int(read_image_array(tmp_path / "g.webp")[0, 0, 0]) - 40000 // 257) <= 2


def test_a_pil_image_is_written_the_way_it_is_shown(tmp_path: Path) -> None:
    # Pillow drops the EXIF orientation when saving, so the pixels must be turned first.
    pixels = _rgb(2, 4)
    source = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(source, exif=exif, quality=100)
    opened = Image.open(source)
    write_image(tmp_path / "out.png", opened)
    assert read_image(tmp_path / "out.png").size == (2, 4)


@pytest.mark.parametrize(
    ("name", "array"),
    [
        ("x.png", _rgb()),
        ("x16.png", RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16)),
        ("x.jpg", _rgb()),
        ("x.webp", _rgb()),
        ("x.tiff", _rgb()),
    ],
)
def test_text_tags_round_trip(tmp_path: Path, name: str, array: np.ndarray) -> None:
    from srzoo.image import read_image_tags

    path = tmp_path / name
    write_image(path, array, software="srzoo 9.9", description="upscaled from a%20b.png")
    tags = {"Software": "srzoo 9.9", "Description": "upscaled from a%20b.png"}
    assert read_image_tags(path) == tags
    np.testing.assert_array_equal(read_image_array(path).shape, array.shape)
    write_image(path, array)
    assert read_image_tags(path) == {}
    (tmp_path / "text.png").write_text("not an image")
    assert read_image_tags(tmp_path / "text.png") == {}
    assert read_image_tags(tmp_path / "missing.png") == {}


@pytest.mark.parametrize("name", ["x.png", "x16.png", "x.jpg"])
def test_text_tags_beyond_ascii(tmp_path: Path, name: str) -> None:
    from srzoo.image import read_image_tags

    array = _rgb().astype(np.uint16) * 257 if name == "x16.png" else _rgb()
    path = tmp_path / name
    if name.endswith(".png"):
        write_image(path, array, description="写真 café")
        assert read_image_tags(path) == {"Description": "写真 café"}
    else:
        with pytest.warns(UserWarning, match="EXIF holds ASCII text only; Description"):
            write_image(path, array, description="写真 café")
        assert read_image_tags(path) == {"Description": "?? caf?"}


@pytest.mark.parametrize("torchvision", [True, False])
def test_sixteen_bit_colour_key_becomes_alpha(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, torchvision: bool
) -> None:
    import struct
    import zlib

    if not torchvision:
        monkeypatch.setitem(sys.modules, "torchvision.io", None)
    deep = RNG.integers(1, 65536, (3, 4, 3), dtype=np.uint16)
    deep[2, 1] = (0, 1000, 65535)
    plain = tmp_path / "plain.png"
    write_image(plain, deep)
    data = plain.read_bytes()
    at = data.index(b"IDAT") - 4
    key = struct.pack(">HHH", 0, 1000, 65535)
    trns = struct.pack(">I", 6) + b"tRNS" + key + struct.pack(">I", zlib.crc32(b"tRNS" + key))
    path = tmp_path / "keyed.png"
    path.write_bytes(data[:at] + trns + data[at:])
    array = read_image_array(path)
    assert array.shape == (3, 4, 4) and array.dtype == np.uint16
    np.testing.assert_array_equal(array[:, :, :3], deep)
    assert array[2, 1, 3] == 0 and (np.delete(array[:, :, 3].ravel(), 9) == 65535).all()


def test_sixteen_bit_gray_colour_key_becomes_alpha(tmp_path: Path) -> None:
    gray = RNG.integers(1, 65536, (3, 4), dtype=np.uint16)
    gray[0, 2] = 0
    path = tmp_path / "keyed.png"
    Image.fromarray(gray).save(path, transparency=0)
    array = read_image_array(path)
    assert array.shape == (3, 4, 2) and array.dtype == np.uint16
    np.testing.assert_array_equal(array[:, :, 0], gray)
    assert array[0, 2, 1] == 0 and array[1, 1, 1] == 65535


def test_png_decoder_errors_name_the_file(tmp_path: Path) -> None:
    from srzoo.image import decode_png_file

    with pytest.raises(ImageReadError, match=r"missing\.png: cannot read the file"):
        decode_png_file(tmp_path / "missing.png")
    header_only = tmp_path / "short.png"
    header_only.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x02IHDR\x00\x01" + b"\0" * 4)
    with pytest.raises(ImageReadError, match=r"short\.png"):
        decode_png_file(header_only)
