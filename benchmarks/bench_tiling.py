"""Cost of tiling: time against an untiled pass, and host memory for a large image.

1. ``edsr-baseline`` x4 (random initialisation) on a 512x512 input: one untiled forward pass
   against :func:`srzoo.tiling.tiled_forward` with tile 128 and overlap 16 (goal: at most 1.15x).
2. Peak resident memory of a fresh process that upscales a 2048x2048 uint8 image x4 with tile 256
   through :func:`srzoo.upscale` (goal: at most 2 GB). It runs in a subprocess so that the peak
   is its own, not this script's.
3. Where the memory of one tiled call goes: ``imdn`` x4 (random initialisation) upscales a
   1024x1024 uint8 image with tile 256 in a fresh process, after a warm-up call; the growth of
   the resident high-water mark during the call (reset before it through
   ``/proc/self/clear_refs``; goal: at most 300 MB) is split into the output array, the staged
   window (uint8 and float32), the window's float output, the model's activations on one window
   (every tensor its forward allocates, tracked by :func:`srzoo.tiling.measure_peak_memory`), and
   the rest (the allocator's free lists and fragmentation). No float copy of the whole input or
   output and no blending weights exist: window cores are cropped and written once.

Run from the repository root::

    python benchmarks/bench_tiling.py            # all parts
    python benchmarks/bench_tiling.py --part time
    python benchmarks/bench_tiling.py --part memory
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable

import torch

import srzoo
from srzoo.tiling import plan_windows, tiled_forward


def _best_of(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def bench_time(size: int, tile: int, overlap: int, repeats: int, batch_sizes: list[int]) -> None:
    torch.manual_seed(0)
    net = srzoo.load("edsr-baseline", 4, weights=None)  # eval mode, channels-last, as users get it
    x = torch.rand(1, 3, size, size)
    windows = plan_windows(1, size, size, tile, overlap)
    computed = len(windows) * min(tile, size) ** 2
    with torch.inference_mode():
        net(x[..., :64, :64])  # warm-up: first-call allocations and kernel selection
        untiled, reference = _best_of(lambda: net(x), repeats)
    print(f"edsr-baseline x4, {size}x{size} input, {torch.get_num_threads()} threads")
    print(f"  untiled:                       {untiled:7.2f} s")
    for bs in batch_sizes:

        def run(bs: int = bs) -> torch.Tensor:
            return tiled_forward(
                net, x, scale=4, tile=tile, overlap=overlap, batch_size=bs, progress=False
            )

        tiled, result = _best_of(run, repeats)
        err = (result - reference).abs().max().item()
        print(
            f"  tiled {tile}/{overlap}, batch {bs}:       {tiled:7.2f} s  "
            f"= {tiled / untiled:.2f}x untiled (max |diff| {err:.1e})"
        )
    print(
        f"  {len(windows)} tiles compute {computed / size**2:.2f}x the image's pixels "
        "(the context around each tile)"
    )


_CHILD = """
import json, resource, sys, time
import numpy as np, torch
import srzoo
size, tile, overlap, blocks = (int(v) for v in sys.argv[1:5])
torch.manual_seed(0)
net = srzoo.load("edsr-baseline", 4, weights=None, n_resblocks=blocks)
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
out = srzoo.upscale(net, image, tile=tile, overlap=overlap, progress=False)
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"shape": list(out.shape), "dtype": str(out.dtype), "seconds": seconds,
                  "rss_before_kib": before, "peak_rss_kib": peak}))
"""


def bench_rss(size: int, tile: int, overlap: int, blocks: int) -> None:
    cmd = [sys.executable, "-c", _CHILD, str(size), str(tile), str(overlap), str(blocks)]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    gib = 1024**2
    print(f"upscale() of a {size}x{size} uint8 image, x4, tile {tile}, overlap {overlap}")
    print(f"  model: edsr-baseline x4 with {blocks} residual blocks (random initialisation)")
    print(f"  output {info['shape']} {info['dtype']} in {info['seconds']:.1f} s")
    print(f"  RSS after imports, model and input: {info['rss_before_kib'] / gib:.2f} GiB")
    print(f"  peak RSS of the process:            {info['peak_rss_kib'] / gib:.2f} GiB")


_MEMORY_CHILD = """
import json, sys
from pathlib import Path
import numpy as np, torch
import srzoo
from srzoo.tiling import measure_peak_memory
name, scale, size, tile = sys.argv[1], *(int(v) for v in sys.argv[2:5])

def status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])

torch.manual_seed(0)
net = srzoo.load(name, scale, weights=None)
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
srzoo.upscale(net, image[:64, :64], tile=tile, progress=False)  # first-call allocations
Path("/proc/self/clear_refs").write_text("5")  # the high-water mark restarts from here
before = status_kib("VmRSS")
out = srzoo.upscale(net, image, tile=tile, progress=False)
growth = (status_kib("VmHWM") - before) * 1024
window = torch.rand(1, 3, tile, tile)
print(json.dumps({"growth": growth, "output": out.nbytes,
                  "activations": measure_peak_memory(net, window)}))
"""


def bench_memory(name: str, scale: int, size: int, tile: int) -> None:
    cmd = [sys.executable, "-W", "ignore", "-c", _MEMORY_CHILD, name, str(scale), str(size)]
    result = subprocess.run([*cmd, str(tile)], capture_output=True, text=True, check=True)
    info = json.loads(result.stdout.strip().splitlines()[-1])
    mb = 1e6
    window = min(tile, size)
    parts = {
        "output array (the result, uint8)": info["output"],
        "float copy of the whole input or output": 0,
        "blending accumulators and weight maps": 0,
        "staged window (uint8 slice + float32)": window**2 * 3 * (1 + 4),
        "window output, float32 (clamped in place)": (window * scale) ** 2 * 3 * 4,
        "model activations on one window": info["activations"],
    }
    rest = info["growth"] - sum(parts.values())
    print(f"upscale() of a {size}x{size} uint8 image, {name} x{scale}, tile {tile}")
    print(f"  growth of the peak RSS during the call: {info['growth'] / mb:7.0f} MB (goal 300)")
    for what, nbytes in parts.items():
        print(f"    {what:44s} {nbytes / mb:7.1f} MB")
    print(f"    {'allocator free lists, fragmentation, other':44s} {rest / mb:7.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("time", "rss", "memory", "all"), default="all")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--tile", type=int, default=128, help="window side, context included")
    parser.add_argument("--rss-size", type=int, default=2048)
    parser.add_argument(
        "--rss-blocks",
        type=int,
        default=16,
        help="residual blocks of the model in the RSS part (16 = edsr-baseline; fewer is faster "
        "and changes only the per-tile activations, not the image buffers)",
    )
    args = parser.parse_args()
    if args.part in ("time", "all"):
        bench_time(args.size, args.tile, 16, args.repeats, args.batch_sizes)
    if args.part in ("rss", "all"):
        bench_rss(args.rss_size, 256, 16, args.rss_blocks)
    if args.part in ("memory", "all"):
        bench_memory("imdn", 4, 1024, 256)


if __name__ == "__main__":
    main()
