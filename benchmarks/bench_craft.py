"""Forward time of CRAFT, srzoo against spandrel on the same weights, in the official layout.

``benchmarks/bench_spandrel.py`` hands spandrel srzoo's own state dict, which lacks the position
tables the official files hold (srzoo computes them), so spandrel's loader refuses it. Here the
weights go the other way: spandrel's CRAFT in the registered configuration gets seeded random
parameters, its state dict (tables included) is saved as the official files are
(``{"params": ...}``), spandrel's loader detects it from that file and ``srzoo.load`` reads the
same file. Both run at x4 on a 64x64 input (attention networks' size in the project's
benchmarks), timed alternately under ``torch.inference_mode``: median wall and process CPU time,
the ratio srzoo / spandrel (below 1.0: srzoo is faster) and the largest output difference.

Usage:
    python benchmarks/bench_craft.py [--size 64] [--scale 4] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

import srzoo
import srzoo.archs.craft


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(size: int, scale: int, repeats: int, folder: Path) -> str:
    """Time the registered configuration once; return the report line."""
    from spandrel import ModelLoader
    from spandrel.architectures.CRAFT import CRAFT as Reference

    torch.manual_seed(0)
    reference = Reference(upscale=scale).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0.0, 0.02)
    path = folder / "craft.pth"
    torch.save({"params": reference.state_dict()}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ModelLoader().load_from_file(path).model.eval()
    ours = srzoo.load("craft", scale=scale, weights=path)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        diff = (ours(x) - theirs(x)).abs().max().item()  # also warms both up
        times: dict[str, list[tuple[float, float]]] = {"srzoo": [], "spandrel": []}
        for _ in range(repeats):
            times["srzoo"].append(_time(lambda: ours(x)))
            times["spandrel"].append(_time(lambda: theirs(x)))
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    return (
        f"craft x{scale} {size}x{size}: srzoo {wall['srzoo'] * 1e3:.0f} ms "
        f"(cpu {cpu['srzoo'] * 1e3:.0f}), spandrel {wall['spandrel'] * 1e3:.0f} ms "
        f"(cpu {cpu['spandrel'] * 1e3:.0f}), ratio {wall['srzoo'] / wall['spandrel']:.2f}x "
        f"(cpu {cpu['srzoo'] / cpu['spandrel']:.2f}x), max diff {diff:.2g}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} runs")
    with tempfile.TemporaryDirectory() as folder:
        print(bench(args.size, args.scale, args.repeats, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
