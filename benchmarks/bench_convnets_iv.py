"""Forward time of Swift-SRGAN, PLKSR / RealPLKSR and Real-CUGAN, srzoo against spandrel.

For each model at its registered configuration (x4, or x2 for the x2-only Real-CUGAN fast model)
on a 256x256 input: spandrel's network with seeded random weights, and srzoo's module given the
same state dict; timed alternately under ``torch.inference_mode`` (median of ``--repeats`` runs
each, after one warm-up), float32 on ``--threads`` threads. Prints the ratio srzoo / spandrel and
the largest output difference relative to the output's peak.

Usage:
    python benchmarks/bench_convnets_iv.py [--size 256] [--repeats 5] [--threads 2]
        [--models swiftsrgan plksr plksr-tiny realplksr realcugan realcugan-fast]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import srzoo
import srzoo.archs.plksr
import srzoo.archs.realcugan
import srzoo.archs.swiftsrgan  # each family registers its models on import

NAMES = ("swiftsrgan", "plksr", "plksr-tiny", "realplksr", "realcugan", "realcugan-fast")


def _seeded(model: nn.Module, seed: int = 0) -> nn.Module:
    """Small random weights in every floating tensor (activations stay of order one)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() >= 2:
                t.copy_(torch.randn(t.shape, generator=g) * 0.5 / t[0].numel() ** 0.5)
            elif not name.endswith("init_pos"):
                t.copy_(
                    (torch.rand(t.shape, generator=g) - 0.5) * 0.2 + 1.0 * name.endswith("weight")
                )
    return model.eval()


def _spandrel(name: str, scale: int) -> nn.Module:
    """spandrel's network in the registered configuration of ``name``."""
    from spandrel.architectures.PLKSR import PLKSR, RealPLKSR
    from spandrel.architectures.RealCUGAN import UpCunet2x_fast, UpCunet4x
    from spandrel.architectures.SwiftSRGAN import SwiftSRGAN

    defaults = dict(srzoo.model_info(name).defaults)
    if name == "swiftsrgan":
        return SwiftSRGAN(upscale_factor=scale)
    if name in ("plksr", "plksr-tiny"):
        return PLKSR(upscaling_factor=scale, **defaults)
    if name == "realplksr":
        return RealPLKSR(upscaling_factor=scale, **defaults)
    if name == "realcugan":
        return UpCunet4x()
    return UpCunet2x_fast()


def _timed(fn: Callable[[torch.Tensor], object], x: torch.Tensor, times: list[float]) -> None:
    start = time.perf_counter()
    fn(x)
    times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(NAMES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.size}x{args.size}, float32, {args.threads} threads, median of {args.repeats}")
    for name in args.models:
        scale = 2 if name == "realcugan-fast" else 4
        ref = _seeded(_spandrel(name, scale))
        ours = srzoo.create(name, scale).eval()
        ours.load_state_dict({k: v for k, v in ref.state_dict().items() if k != "pro"})
        x = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            want, got = ref(x.clone()), ours(x)
            diff = (got - want).abs().max().item() / max(1.0, want.abs().max().item())
            mine: list[float] = []
            theirs: list[float] = []
            for _ in range(args.repeats):
                _timed(ours, x, mine)
                _timed(ref, x.clone(), theirs)  # spandrel's x4 adds into a tensor in place
        a, b = statistics.median(mine), statistics.median(theirs)
        print(
            f"{name:16s} x{scale}  srzoo {a * 1e3:8.1f} ms  spandrel {b * 1e3:8.1f} ms  "
            f"ratio {a / b:5.2f}  max rel diff {diff:.1e}"
        )


if __name__ == "__main__":
    main()
