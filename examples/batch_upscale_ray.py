"""Upscale a large image collection with Ray Data, on one machine or an existing Ray cluster.

    pip install 'srzoo[ray]'
    python examples/batch_upscale_ray.py photos/ upscaled/ --model realesrgan-x4plus --scale 4
    RAY_ADDRESS=auto python examples/batch_upscale_ray.py /mnt/in /mnt/out --scale 4 --num-gpus 8

Ray Data reads the images (`ray.data.read_images`, decoded as RGB by the workers), streams them
through a pool of model actors (`map_batches` with one actor per GPU, or with --num-gpus 0 one
per CPU, each with one torch thread), and each actor writes its results as PNGs under
OUTPUT_DIR at the input's relative path. Ray schedules, retries and back-pressures the work, so
a collection of millions of images needs no hand-written job queue, and a cluster scales it
out. On a cluster OUTPUT_DIR must be visible to every worker (a shared filesystem).

Each output equals `srzoo.upscale(model, image, tile=--tile)` on the same image: the same
model, the same tiling, the same 8-bit rounding.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import numpy as np


class Upscaler:
    """A Ray actor: loads the model once, then upscales and writes batches of images."""

    def __init__(
        self, model: str, scale: int | None, tile: int | None, input_dir: str, output_dir: str
    ) -> None:
        import torch

        import srzoo

        cuda = torch.cuda.is_available()
        if not cuda:
            torch.set_num_threads(1)  # one actor per CPU: more threads only contend
        scale_arg = None if model.startswith(("local-dir:", "hf-hub:")) else scale
        self.model = srzoo.load(model, scale_arg, device="cuda" if cuda else None)
        self.tile = tile
        self.input_dir = Path(input_dir).resolve()
        self.output_dir = Path(output_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        import srzoo

        written: list[str] = []
        for image, path in zip(batch["image"], batch["path"], strict=True):
            sr = srzoo.upscale(self.model, np.asarray(image, dtype=np.uint8), tile=self.tile)
            rel = Path(str(path)).resolve().relative_to(self.input_dir).with_suffix(".png")
            target = self.output_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            srzoo.image.write_image(target, sr)
            written.append(str(target))
        return {"output": written}


def main(argv: list[str] | None = None) -> int:
    """Upscale every image under INPUT_DIR into OUTPUT_DIR; return the number written."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("input_dir", type=Path)
    ap.add_argument("output_dir", type=Path)
    ap.add_argument("--model", default="realesrgan-x4plus", help="registered name or local-dir:")
    ap.add_argument("--scale", type=int, required=True)
    ap.add_argument("--tile", type=int, help="tile size for large images (default: whole)")
    ap.add_argument("--num-gpus", type=int, default=0, help="GPU actors (0: one actor per CPU)")
    ap.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    ap.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else local)")
    ap.add_argument("--batch", type=int, default=4, help="images per actor call")
    args = ap.parse_args(argv)
    try:
        import ray
    except ImportError:
        raise SystemExit("this example needs Ray Data: pip install 'srzoo[ray]'") from None

    if not args.input_dir.is_dir():
        raise SystemExit(f"{args.input_dir} is not a folder")
    started_here = not ray.is_initialized()
    if started_here:
        address = args.address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    try:
        if args.num_gpus > 0:
            actors, resources = args.num_gpus, {"num_gpus": 1}
        else:
            actors, resources = max(1, int(ray.cluster_resources().get("CPU", 1))), {"num_cpus": 1}
        # Reading asks for no CPU of its own: the actors hold every CPU, and decoding is cheap
        # next to the network (Ray Data's memory back-pressure still bounds the reads).
        images = ray.data.read_images(
            str(args.input_dir), mode="RGB", include_paths=True, num_cpus=0
        )
        results = images.map_batches(
            Upscaler,
            fn_constructor_kwargs={
                "model": args.model,
                "scale": args.scale,
                "tile": args.tile,
                "input_dir": str(args.input_dir),
                "output_dir": str(args.output_dir),
            },
            batch_size=args.batch,
            batch_format="numpy",
            concurrency=actors,
            **resources,
        )
        written = sum(len(batch["output"]) for batch in results.iter_batches(batch_format="numpy"))
    finally:
        if started_here:
            ray.shutdown()
    print(f"wrote {written} images to {args.output_dir}")
    return written


if __name__ == "__main__":
    main()
