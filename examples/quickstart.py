"""Upscale an image x4 with srzoo, offline.

Makes a small test picture on the spot, runs it through an EDSR-baseline x4 network and writes
``quickstart_input.png`` and ``quickstart_x4.png`` in the current folder.

No weights ship inside the package yet and this example must run without a network, so the
network is randomly initialised: the output shows the pipeline (image in, image out at four
times the size), not super-resolution quality. With a network connection,
``srzoo.load("edsr-baseline", scale=4)`` fetches the authors' weights instead.

Usage: python examples/quickstart.py
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

import srzoo


def test_picture(size: int = 96) -> Image.Image:
    """Rings and stripes: fine detail where upscalers differ."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    r = np.hypot(xx - size / 2, yy - size / 2)
    rings = 0.5 + 0.5 * np.cos(r**2 / 40.0)
    stripes = 0.5 + 0.5 * np.sin(xx / 3.0)
    rgb = np.stack([rings, stripes, 0.5 * (rings + stripes)], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


def main() -> None:
    image = test_picture()
    image.save("quickstart_input.png")
    model = srzoo.load("edsr-baseline", scale=4, weights=None)
    start = time.perf_counter()
    result = srzoo.upscale(model, image, tile=64, progress=False)
    seconds = time.perf_counter() - start
    result.save("quickstart_x4.png")
    print(
        f"upscaled {image.size[0]}x{image.size[1]} -> {result.size[0]}x{result.size[1]} "
        f"with edsr-baseline x4 in {seconds:.2f} s: quickstart_x4.png"
    )


if __name__ == "__main__":
    main()
