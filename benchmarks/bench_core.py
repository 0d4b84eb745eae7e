"""Forward time of srzoo's core families against torchSR on the same weights.

For EDSR-baseline, EDSR and RCAN at x4, builds torchSR's module, copies its (random) weights into
srzoo through a checkpoint file, checks that the outputs agree, and times both in this process,
alternating runs so that background load affects both alike. Prints the median times and the
ratio srzoo / torchSR (below 1.0: srzoo is faster).

Usage: python benchmarks/bench_core.py [size] [runs]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

import srzoo


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 128
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    from torchsr.models import edsr, edsr_baseline, rcan

    cases: list[tuple[str, Callable[[int], nn.Module]]] = [
        ("edsr-baseline", edsr_baseline),
        ("edsr", edsr),
        ("rcan", rcan),
    ]
    print(f"x4 forward on 1x3x{size}x{size}, {torch.get_num_threads()} threads, median of {runs}")
    print(f"{'model':<15}{'srzoo (s)':>12}{'torchSR (s)':>14}{'ratio':>8}{'max |diff|':>12}")
    x = torch.rand(1, 3, size, size)
    with tempfile.TemporaryDirectory() as tmp:
        for name, make_ref in cases:
            ref = make_ref(4).eval()
            path = Path(tmp) / f"{name}.pt"
            torch.save(ref.state_dict(), path)
            ours = srzoo.load(name, 4, weights=path)
            with torch.inference_mode():
                diff = (ours(x) - ref(x.clone())).abs().max().item()
                ours_t, ref_t = [], []
                for _ in range(runs):
                    ours_t.append(_time(partial(ours, x)))
                    ref_t.append(_time(partial(ref, x.clone())))
            a, b = statistics.median(ours_t), statistics.median(ref_t)
            print(f"{name:<15}{a:>12.3f}{b:>14.3f}{a / b:>8.3f}{diff:>12.2e}")


if __name__ == "__main__":
    main()
