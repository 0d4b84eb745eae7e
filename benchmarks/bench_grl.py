"""Forward time of the GRL models against spandrel's copy of the authors' code, same weights.

``bench_spandrel.py`` hands srzoo's state dict to spandrel's loader, which cannot read GRL's
window, stripes and anchor pooling from weights alone and assumes pooling by 4: GRL-B's is 2.
Here spandrel's network is built with the registered configuration itself, filled with srzoo's
weights, checked to give the same output, and both are timed in this process, alternating runs
so that background load affects both alike (x4, a 64 x 64 input: one padded tile of 64).

Usage: python benchmarks/bench_grl.py [NAME ...] [--threads 2] [--repeats 5] [--size 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import srzoo
import srzoo.archs.grl  # registers the GRL models


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _spandrel(name: str, scale: int) -> nn.Module:
    from spandrel.architectures.GRL import GRL as Reference

    c = srzoo.model_info(name).defaults
    return Reference(
        img_size=64,
        upscale=scale,
        embed_dim=c["embed_dim"],
        depths=list(c["depths"]),
        num_heads_window=list(c["num_heads_window"]),
        num_heads_stripe=list(c["num_heads_stripe"]),
        window_size=c["window_size"],
        stripe_size=list(c["stripe_size"]),
        stripe_groups=[None, None],
        stripe_shift=c["stripe_shift"],
        mlp_ratio=c["mlp_ratio"],
        anchor_window_down_factor=c["anchor_window_down_factor"],
        local_connection=c["local_connection"],
        upsampler=c["upsampler"],
    ).eval()


def bench(name: str, repeats: int, size: int) -> str:
    torch.manual_seed(0)
    ours = srzoo.load(name, scale=4, weights=None)
    ref = _spandrel(name, 4)
    ref.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        a, b = ours(x), ref(x)
        diff = ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()
        ta: list[float] = []
        tb: list[float] = []
        for _ in range(repeats):
            ta.append(_time(lambda: ours(x)))
            tb.append(_time(lambda: ref(x)))
    ma, mb = statistics.median(ta) * 1e3, statistics.median(tb) * 1e3
    return f"{name:<12} {size:>4} {ma:>10.1f} {mb:>10.1f} {ma / mb:>7.3f} {diff:>10.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="registered GRL names (default: all three)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.names or ["grl", "grl-small", "grl-tiny"]
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats} runs")
    print(
        f"{'model':<12} {'size':>4} {'srzoo ms':>10} {'spandrel':>10} {'ratio':>7} {'rel diff':>10}"
    )
    for name in names:
        print(bench(name, args.repeats, args.size), flush=True)


if __name__ == "__main__":
    main()
