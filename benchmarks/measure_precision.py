"""Measure every registered model in reduced precision against float32 and record the verdicts.

For each model (or those named), the registered configuration at its default scale is loaded
with its pretrained weights where the cache or ``../shared/checkpoints`` holds them (nothing is
downloaded), else with seeded random weights, and run in float32 and in each reduced dtype on
crops of the Set14 low-resolution images (``../shared/data/benchmark/Set14/LR_bicubic``).
:func:`srzoo.bench.precision_check` gives the PSNR against float32, whether any NaN or infinity
appeared, and the verdict; the results are merged into ``srzoo/_data/precision.json`` (entries of
other models, dtypes and devices are kept), which the registry reads at registration. Rerun it
after adding a family.

Usage:
    python benchmarks/measure_precision.py [--device cpu] [--dtypes bfloat16] [--crop 32]
        [--images 1] [--shared ../shared] [NAME ...]
    python benchmarks/measure_precision.py --device cuda --dtypes float16 bfloat16

The docs' table (docs/performance.md) is generated from the file at build time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import srzoo
from srzoo.bench import device_name, precision_check
from srzoo.errors import WeightsError
from srzoo.registry import PRECISION_FILE, PrecisionVerdict
from srzoo.weights import file_sha256

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IMAGES = ("baboon", "comic", "lenna", "zebra")


def _shared_checkpoint(name: str, scale: int, shared: Path) -> Path | None:
    """A registered checkpoint of ``name`` at ``scale`` in ``<shared>/checkpoints``, if any."""
    folder = shared / "checkpoints"
    if not folder.is_dir():
        return None
    for path in sorted(folder.iterdir()):
        for spec, ws in srzoo.registry.find_weights(file_sha256(path)):
            if spec.name == name and ws.scale == scale:
                return path
    return None


def load_for_measure(name: str, device: str, shared: Path = SHARED) -> tuple[nn.Module, str]:
    """The registered configuration with the best weights at hand, and which weights they are."""
    spec = srzoo.model_info(name)
    scale = spec.scale
    os.environ["SRZOO_OFFLINE"] = "1"  # the cache or nothing: a measurement never downloads
    if spec.weights_for(scale) is not None:
        try:
            return srzoo.load(name, scale, device=device), f"pretrained x{scale}"
        except WeightsError:
            pass
        path = _shared_checkpoint(name, scale, shared)
        if path is not None:
            return srzoo.load(name, scale, weights=path, device=device), f"pretrained x{scale}"
    torch.manual_seed(0)
    return srzoo.load(name, scale, weights=None, device=device), f"seeded random x{scale}"


def images(
    scale: int, channels: int, crop: int, count: int, shared: Path = SHARED
) -> list[torch.Tensor]:
    """Centre crops of Set14's low-resolution images at ``scale`` (x4 where it is absent)."""
    base = shared / "data" / "benchmark" / "Set14" / "LR_bicubic"
    folder = base / f"X{scale}" if (base / f"X{scale}").is_dir() else base / "X4"
    out = []
    for stem in IMAGES[:count]:
        path = next(folder.glob(f"{stem}*.png"))
        array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
        h, w = array.shape[:2]
        top, left = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
        t = torch.from_numpy(array[top : top + crop, left : left + crop].copy())
        t = t.permute(2, 0, 1).unsqueeze(0)
        if channels == 1:  # BT.601 luma, as the single-channel papers feed their networks
            t = (16 + 65.481 * t[:, :1] + 128.553 * t[:, 1:2] + 24.966 * t[:, 2:]) / 255
        out.append(t)
    return out


def measure(
    name: str,
    *,
    device: str,
    dtypes: list[str],
    crop: int,
    count: int,
    shared: Path = SHARED,
) -> list[PrecisionVerdict]:
    """The verdicts of one model for each dtype."""
    model, weights = load_for_measure(name, device, shared)
    spec = srzoo.model_info(name)
    channels = 1 if spec.colour == "y" else 3
    batch = images(spec.scale, channels, crop, count, shared)
    note = f"{weights} weights; {len(batch)} Set14 crops of {crop}x{crop}"
    measured_on = f"{device_name(device)}, torch {torch.__version__}"
    return [
        precision_check(model, batch, dtype=d, measured_on=measured_on, note=note) for d in dtypes
    ]


def merge(path: Path, results: dict[str, list[PrecisionVerdict]]) -> None:
    """Write ``results`` into the data file, replacing only the same model, dtype and device."""
    data = json.loads(path.read_text()) if path.is_file() else {"models": {}}
    models: dict[str, list[dict[str, object]]] = data["models"]
    for name, verdicts in results.items():
        fresh = {(v.dtype, v.device) for v in verdicts}
        kept = [e for e in models.get(name, []) if (e["dtype"], e["device"]) not in fresh]
        models[name] = sorted(
            kept + [v.__dict__.copy() for v in verdicts],
            key=lambda e: (str(e["device"]), str(e["dtype"])),
        )
    data = {
        "about": (
            "Written by benchmarks/measure_precision.py: PSNR of each model's reduced-precision "
            "output against float32; broken below 30 dB or with NaN/Inf, degraded below 40 dB."
        ),
        "models": dict(sorted(models.items())),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a process that registers models while this runs reads the old file or the new one.
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="models to measure (default: all registered)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtypes", nargs="+", default=["bfloat16"])
    parser.add_argument("--crop", type=int, default=32, help="side of the input crops")
    parser.add_argument("--images", type=int, default=1, help="how many Set14 images")
    parser.add_argument("--out", type=Path, default=PRECISION_FILE)
    parser.add_argument(
        "--shared", type=Path, default=SHARED, help="folder holding data/ and checkpoints/"
    )
    args = parser.parse_args(argv)
    # Smallest first, so that an interrupted run has measured as many models as it could.
    names = sorted(
        args.names or srzoo.list_models(), key=lambda n: srzoo.model_info(n).num_params()
    )
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        try:
            verdicts = measure(
                name,
                device=args.device,
                dtypes=args.dtypes,
                crop=args.crop,
                count=args.images,
                shared=args.shared,
            )
        except Exception as error:  # one model failing must not lose the others' results
            print(f"{name}: FAILED: {error}", file=sys.stderr, flush=True)
            continue
        merge(args.out, {name: verdicts})  # after each model, so an interrupted run keeps them
        shown = ", ".join(f"{v.dtype} {v.psnr_db} dB {v.verdict}" for v in verdicts)
        print(f"{name}: {shown} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"{len(names)} models in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
