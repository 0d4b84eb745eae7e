"""``compare()``: one labelled side-by-side picture of an input and its upscaled versions."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
from einops import rearrange

from .errors import ArgumentError, ArgumentTypeError
from .image import check_array, is_pil_image, pil_image_module, pil_to_array, read_image

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["compare"]

_LABEL_HEIGHT = 16
_GAP = 4


def _as_rgb_uint8(image: Any, name: str) -> npt.NDArray[np.uint8]:
    if isinstance(image, (str, os.PathLike)):
        array, _ = pil_to_array(read_image(image))
    elif is_pil_image(image):
        array, _ = pil_to_array(image)
    elif isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise ArgumentError(
                    f"{name}: compare() takes one image, got a batch of {t.shape[0]}"
                )
            t = t[0]
        if t.ndim != 3:
            raise ArgumentError(f"{name}: expected (C, H, W) or (1, C, H, W), got {tuple(t.shape)}")
        array = rearrange(t, "c h w -> h w c").numpy()
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise ArgumentTypeError(f"{name}: expected an image, got {type(image).__name__}")
    hwc = check_array(np.asarray(array), name)
    if hwc.dtype == np.uint16:
        hwc = np.round(hwc / 257.0).astype(np.uint8)
    elif hwc.dtype.kind == "f":
        hwc = np.round(np.clip(hwc.astype(np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    if hwc.shape[2] in (2, 4):
        hwc = hwc[:, :, :-1]
    if hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    return np.ascontiguousarray(hwc)


def compare(
    lr: Any,
    outputs: Sequence[Any] | dict[str, Any],
    *,
    crop: tuple[int, int, int, int] | None = None,
    labels: Sequence[str] | None = None,
) -> PILImage.Image:
    """One labelled side-by-side image of an input and its upscaled versions.

    Panels, left to right: the input enlarged with nearest neighbour, bicubic, then each output.
    With ``crop``, a second row shows the same region of every panel, zoomed.

    Args:
        lr: The low-resolution input (path, PIL image, array or tensor).
        outputs: Upscaled images, all the same size (a sequence, or a dict of label -> image).
        crop: ``(left, top, width, height)`` in *input* pixels of a region to zoom into.
        labels: Names of ``outputs`` (default: the dict keys, or "output 1", ...).

    Returns:
        An RGB PIL image.

    Raises:
        ValueError: No outputs, outputs of different sizes or not a multiple of the input, a
            crop outside the input, or a wrong number of labels.

    Example:
        >>> sheet = srzoo.compare(lr, {"EDSR": sr1, "RCAN": sr2}, crop=(40, 30, 24, 24))
        >>> sheet.save("comparison.png")
    """
    image_mod = pil_image_module()
    # Pillow is optional (the image extra): imported on use, so import srzoo never needs it.
    from PIL import ImageDraw

    if isinstance(outputs, dict):
        names = list(outputs) if labels is None else list(labels)
        images = list(outputs.values())
    else:
        images = list(outputs)
        names = [f"output {i + 1}" for i in range(len(images))] if labels is None else list(labels)
    if not images:
        raise ArgumentError("compare() needs at least one output")
    if len(names) != len(images):
        raise ArgumentError(f"compare(): {len(names)} labels for {len(images)} outputs")
    low = _as_rgb_uint8(lr, "lr")
    sr = [_as_rgb_uint8(img, name) for img, name in zip(images, names, strict=True)]
    out_h, out_w = sr[0].shape[:2]
    for img, name in zip(sr, names, strict=True):
        if img.shape[:2] != (out_h, out_w):
            raise ArgumentError(
                f"compare(): {name!r} is {img.shape[1]}x{img.shape[0]}, "
                f"the first output {out_w}x{out_h}"
            )
    low_pil = image_mod.fromarray(low)
    nearest = np.asarray(low_pil.resize((out_w, out_h), image_mod.Resampling.NEAREST))
    bicubic = np.asarray(low_pil.resize((out_w, out_h), image_mod.Resampling.BICUBIC))
    panels = [nearest, bicubic, *sr]
    titles = ["nearest", "bicubic", *names]
    rows = [panels]
    if crop is not None:
        left, top, width, height = crop
        lh, lw = low.shape[:2]
        if (
            width <= 0
            or height <= 0
            or left < 0
            or top < 0
            or left + width > lw
            or top + height > lh
        ):
            raise ArgumentError(f"compare(): crop {crop} is outside the {lw}x{lh} input")
        sy, sx = out_h / lh, out_w / lw
        box = (
            round(left * sx),
            round(top * sy),
            round((left + width) * sx),
            round((top + height) * sy),
        )
        zoom = max(1, min(out_w // (box[2] - box[0]), out_h // (box[3] - box[1])))
        size = ((box[2] - box[0]) * zoom, (box[3] - box[1]) * zoom)
        rows.append(
            [
                np.asarray(
                    image_mod.fromarray(p).crop(box).resize(size, image_mod.Resampling.NEAREST)
                )
                for p in panels
            ]
        )
    cell_w = max(p.shape[1] for row in rows for p in row)
    row_h = [max(p.shape[0] for p in row) for row in rows]
    sheet_w = len(panels) * cell_w + (len(panels) + 1) * _GAP
    sheet_h = sum(h + _LABEL_HEIGHT + _GAP for h in row_h) + _GAP
    sheet = image_mod.new("RGB", (sheet_w, sheet_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = _GAP
    for row, h in zip(rows, row_h, strict=True):
        for i, (panel, title) in enumerate(zip(row, titles, strict=True)):
            x = _GAP + i * (cell_w + _GAP)
            draw.text((x, y), title, fill=(0, 0, 0))
            sheet.paste(image_mod.fromarray(panel), (x, y + _LABEL_HEIGHT))
        y += h + _LABEL_HEIGHT + _GAP
    result: PILImage.Image = sheet
    return result
