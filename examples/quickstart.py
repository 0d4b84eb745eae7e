"""Upscale an image x4 with srzoo's built-in model, offline.

With no argument, makes a test picture on the spot (sharp-edged shapes over a gradient), shrinks
it four times with srzoo's MATLAB-exact bicubic, and upscales it back two ways: with srzoo's
default model (weights shipped inside the package: no download) and with plain bicubic. It writes
``quickstart_input.png``, ``quickstart_x4.png`` and ``quickstart_bicubic_x4.png`` in the current
folder and prints how close each comes to the original picture.

With an image path, upscales that image x4 and writes ``<name>_x4.png`` in the current folder.

Usage:
    python examples/quickstart.py [photo.png]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import srzoo
from srzoo.metrics import imresize, psnr


def test_picture(size: int = 192, seed: int = 0) -> np.ndarray:
    """Flat-coloured disks and rectangles over a gradient: edges that bicubic blurs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    ramp = (0.6 + 0.4 * xx / size)[..., None]
    img = np.zeros((size, size, 3)) + rng.uniform(0.2, 0.8, 3) * ramp
    for _ in range(25):
        colour = rng.uniform(0, 1, 3)
        if rng.random() < 0.5:
            cx, cy = rng.uniform(0, size, 2)
            mask = np.hypot(xx - cx, yy - cy) < rng.uniform(6, size / 5)
        else:
            x0, y0 = rng.uniform(0, size, 2)
            w, h = rng.uniform(4, size / 3, 2)
            mask = (xx > x0) & (xx < x0 + w) & (yy > y0) & (yy < y0 + h)
        img[mask] = colour
    return np.asarray((img * 255).round(), dtype=np.uint8)


def demo() -> None:
    original = test_picture()
    small = imresize(original, scale=1 / 4)
    Image.fromarray(small).save("quickstart_input.png")
    start = time.perf_counter()
    sr = srzoo.upscale(small, scale=4)  # srzoo's default model for x4, from inside the package
    seconds = time.perf_counter() - start
    bicubic = imresize(small, scale=4)
    Image.fromarray(sr).save("quickstart_x4.png")
    Image.fromarray(bicubic).save("quickstart_bicubic_x4.png")
    h, w = small.shape[:2]
    print(f"upscaled {w}x{h} -> {sr.shape[1]}x{sr.shape[0]} in {seconds:.2f} s: quickstart_x4.png")
    print(
        f"PSNR against the original: srzoo {psnr(sr, original, crop_border=4):.2f} dB, "
        f"bicubic {psnr(bicubic, original, crop_border=4):.2f} dB (quickstart_bicubic_x4.png)"
    )


def upscale_file(path: Path) -> None:
    start = time.perf_counter()
    result = srzoo.upscale(path, scale=4, tile=512)
    seconds = time.perf_counter() - start
    target = Path(path.stem + "_x4.png")
    result.save(target)
    print(f"{path} -> {target} ({result.size[0]}x{result.size[1]}) in {seconds:.2f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        upscale_file(Path(sys.argv[1]))
    else:
        demo()
