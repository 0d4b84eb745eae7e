"""``torch.compile`` (inductor, srzoo's settings) against srzoo's eager module, per family, on CPU.

For each model (random weights at its default scale, as ``srzoo.load`` returns it: channels-last,
fused, eval mode): the compile time (first compiled call minus a steady compiled call), then
eager and compiled calls alternated under ``torch.inference_mode``, and the ratio of their
medians. Outputs are compared as well. Timing on a shared machine is noisy; the ratio of
interleaved medians is what to quote.

Usage:
    python benchmarks/bench_compile.py [--size 128] [--repeats 5] [NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import srzoo
from srzoo.api import compile_model

DEFAULT = ("edsr-baseline", "span", "rlfn", "realesr-animevideov3", "swinir-light", "safmn")


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench(name: str, size: int, repeats: int) -> str:
    """Compile time, eager and compiled medians, and their ratio, as one line."""
    torch.compiler.reset()
    torch.manual_seed(0)
    eager = srzoo.load(name, weights=None)
    compiled = compile_model(eager, True)
    channels = 1 if srzoo.model_info(name).colour == "y" else 3
    x = torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(1))
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        first = _time(lambda: compiled(x))
        ref = eager(x)  # also the eager warm-up
        diff = (compiled(x) - ref).abs().max().item()
        t_eager: list[float] = []
        t_compiled: list[float] = []
        for _ in range(repeats):
            t_eager.append(_time(lambda: eager(x)))
            t_compiled.append(_time(lambda: compiled(x)))
    e, c = statistics.median(t_eager), statistics.median(t_compiled)
    return (
        f"{name} x{srzoo.model_info(name).scale} {size}x{size}: compile {first - c:.1f} s, "
        f"eager {e * 1000:.0f} ms, inductor {c * 1000:.0f} ms, speed-up {e / c:.2f}x, "
        f"max |diff| {diff:.1e}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    for name in args.names:
        print(bench(name, args.size, args.repeats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
