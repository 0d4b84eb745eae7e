"""Forward time of SRFormer, srzoo against the authors' code on the same weights.

spandrel has no SRFormer, so the baseline is the stand-in of the authors' code in
``tests/archs/reference_srformer.py`` (explicit softmax, a roll and a window partition in every
layer, as upstream computes). For each model (``srformer-light`` and ``srformer`` by default)
at x4 on a 64x64 input: the registered configuration with seeded random weights, saved in the
official layout (``{"params": ...}``); srzoo's module as ``srzoo.load`` returns it from that file
and the stand-in holding the same parameters, timed alternately under ``torch.inference_mode``
(median wall and process CPU time). Prints the ratio srzoo / stand-in and the largest output
difference.

Usage:
    python benchmarks/bench_srformer.py [--size 64] [--repeats 5] [--threads 2]
        [--models srformer-light srformer]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import srzoo  # noqa: E402
import srzoo.archs.srformer  # noqa: E402  (registers the family)
from tests.archs.reference_srformer import SRFormer as Reference  # noqa: E402

NAMES = ("srformer-light", "srformer")


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench(name: str, size: int, repeats: int, folder: Path) -> list[str]:
    """Time one model; return its report lines."""
    spec = srzoo.model_info(name)
    scale = 4
    torch.manual_seed(0)
    reference = Reference(upscale=scale, img_size=64, **spec.defaults).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.normal_(0.0, 0.02)
    path = folder / f"{name}.pth"
    torch.save({"params": reference.state_dict()}, path)
    ours = srzoo.load(name, scale=scale, weights=path)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        diff = (ours(x) - reference(x)).abs().max().item()  # also warms both up
        times: dict[str, list[tuple[float, float]]] = {"srzoo": [], "upstream": []}
        for _ in range(repeats):
            times["srzoo"].append(_time(lambda: ours(x)))
            times["upstream"].append(_time(lambda: reference(x)))
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    return [
        f"{name} x{scale} {size}x{size}: srzoo {wall['srzoo'] * 1e3:.0f} ms "
        f"(cpu {cpu['srzoo'] * 1e3:.0f}), stand-in {wall['upstream'] * 1e3:.0f} ms "
        f"(cpu {cpu['upstream'] * 1e3:.0f}), ratio {wall['srzoo'] / wall['upstream']:.2f}x "
        f"(cpu {cpu['srzoo'] / cpu['upstream']:.2f}x), max diff {diff:.2g}"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(NAMES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, float32, eager")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for line in bench(name, args.size, args.repeats, Path(tmp)):
                print(line, flush=True)


if __name__ == "__main__":
    main()
