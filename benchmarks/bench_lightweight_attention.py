"""Forward time of the lightweight attention families, srzoo against spandrel on the same weights.

For each model (``omnisr``, ``ditn``, ``dctlsa``) at x4 on a 64x64 input: the registered
configuration with seeded random weights, saved in the official layout; srzoo's module as
``srzoo.load`` returns it from that file and spandrel's network built with the same
configuration and loaded with the same file, timed alternately under ``torch.inference_mode``
(median of several runs; process CPU time as well). Prints the ratio srzoo / spandrel and the
largest output difference. Omni-SR is compared on [0, 1] (``signed=False``, as spandrel runs
it); srzoo's default maps to the authors' [-1, 1] and back, two element-wise passes.

Usage:
    python benchmarks/bench_lightweight_attention.py [--size 64] [--repeats 7] [--threads 2]
        [--models omnisr ditn dctlsa]
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import srzoo

NAMES = ("omnisr", "ditn", "dctlsa")


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _spandrel(name: str, scale: int) -> tuple[nn.Module, dict[str, Any]]:
    """spandrel's network in the registered configuration, and srzoo's overrides to match."""
    if name == "omnisr":
        from spandrel.architectures.OmniSR import OmniSR

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            net: nn.Module = OmniSR(up_scale=scale, num_feat=64, res_num=5, window_size=8)
        return net, {"signed": False}
    if name == "ditn":
        from spandrel.architectures.DITN import DITN

        return DITN(upscale=scale), {}
    from spandrel.architectures.DCTLSA import DCTLSA

    return DCTLSA(upscale=scale), {}


def bench(name: str, size: int, repeats: int, folder: Path) -> str:
    """Time srzoo's and spandrel's forward of ``name`` at x4 and describe the result."""
    importlib.import_module(f"srzoo.archs.{name}")  # registers the family if not built in
    scale = 4
    theirs, overrides = _spandrel(name, scale)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, t in theirs.state_dict().items():
            if key.endswith("running_var"):  # batch-norm variances must stay positive
                t.copy_(torch.rand(t.shape, generator=generator) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=generator) * 0.05)
    path = folder / f"{name}_x{scale}.pth"
    torch.save(theirs.state_dict(), path)
    ours = srzoo.load(name, scale=scale, weights=path, **overrides)
    theirs.eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    ours_t: list[tuple[float, float]] = []
    theirs_t: list[tuple[float, float]] = []
    with torch.inference_mode():
        expected = theirs(x)
        diff = (ours(x) - expected).abs().max().item() / max(1.0, expected.abs().max().item())
        for _ in range(repeats):
            ours_t.append(_time(lambda: ours(x)))
            theirs_t.append(_time(lambda: theirs(x)))
    t_ours = statistics.median(w for w, _ in ours_t)
    t_theirs = statistics.median(w for w, _ in theirs_t)
    cpu = statistics.median(c for _, c in ours_t) / statistics.median(c for _, c in theirs_t)
    return (
        f"{name} x{scale}, {size}x{size}: srzoo {t_ours * 1000:.0f} ms, spandrel "
        f"{t_theirs * 1000:.0f} ms, ratio {t_ours / t_theirs:.3f} (CPU time {cpu:.3f}); "
        f"max relative diff {diff:.1e}"
    )


def main() -> None:
    """Parse the arguments and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(NAMES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            print(bench(name, args.size, args.repeats, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
