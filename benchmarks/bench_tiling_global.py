"""How much tiling changes the output of networks with global operations.

Channel attention (IMDN's CCA, RCAN) and size-dependent pooling (SAFMN) look at the whole image,
so no overlap makes tiles equal to the untiled result; ``srzoo.upscale`` warns once when it tiles
such a network. This script measures the difference on real images with real weights: the
Set14 LR images (made with srzoo's MATLAB-exact imresize), upscaled whole and tiled with the
default overlap, compared in 8-bit grey levels (maximum and mean absolute difference) and as the
PSNR of the tiled output against the untiled one.

Weights that need no network: SAFMN's built-in weights (in the package) and IMDN's official
checkpoints when ``../shared/checkpoints`` is present.

Usage::

    python benchmarks/bench_tiling_global.py [--scale 4] [--tiles 48 64 128]
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path

import numpy as np
import torch

import srzoo
from srzoo.image import read_image_array
from srzoo.metrics import imresize

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def _models(scale: int) -> dict[str, torch.nn.Module]:
    models = {"safmn (built-in weights)": srzoo.load_default(scale)}
    imdn = SHARED / "checkpoints" / f"IMDN_x{scale}.pth"
    if imdn.is_file():
        models["imdn (official weights)"] = srzoo.load("imdn", scale=scale, weights=imdn)
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--tiles", type=int, nargs="+", default=[48, 64, 128])
    args = parser.parse_args()
    torch.set_num_threads(2)
    hr_dir = SHARED / "data" / "benchmark" / "Set14" / "HR"
    if not hr_dir.is_dir():
        raise SystemExit(f"{hr_dir} is missing: this script needs the Set14 images")
    images = []
    for path in sorted(hr_dir.glob("*.png")):
        hr = read_image_array(path)
        if hr.ndim == 2:
            hr = np.repeat(hr[:, :, None], 3, axis=2)
        h, w = hr.shape[0] - hr.shape[0] % args.scale, hr.shape[1] - hr.shape[1] % args.scale
        images.append(imresize(np.ascontiguousarray(hr[:h, :w, :3]), scale=1 / args.scale))
    print(f"Set14, {len(images)} images, x{args.scale}; tiled vs untiled, default overlap")
    print(f"{'model':<26} {'field':>7} {'tile':>5} {'max |diff|':>11} {'mean |diff|':>12} "
          f"{'PSNR (dB)':>10}")  # fmt: skip
    for label, model in _models(args.scale).items():
        field = srzoo.contract.receptive_field(model)
        whole = [srzoo.upscale(model, lr).astype(np.int16) for lr in images]
        for tile in args.tiles:
            worst, total, count, squared = 0, 0.0, 0, 0.0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", srzoo.TilingWarning)
                tiled = [srzoo.upscale(model, lr, tile=tile).astype(np.int16) for lr in images]
            for a, b in zip(whole, tiled, strict=True):
                diff = np.abs(a - b)
                worst = max(worst, int(diff.max()))
                total += float(diff.sum())
                squared += float((diff.astype(np.float64) ** 2).sum())
                count += diff.size
            mse = squared / count
            psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
            print(f"{label:<26} {field!s:>7} {tile:>5} {worst:>11} {total / count:>12.3f} "
                  f"{psnr:>10.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
