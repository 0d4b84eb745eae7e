"""Forward time of DRCT, srzoo against spandrel on the same weights.

For each model (``drct`` by default; ``drct-l`` on request) at x4 on a 64x64 input: the
registered configuration with seeded random weights, saved in the official layout; srzoo's module
as ``srzoo.load`` returns it from that file and spandrel's DRCT built with the same configuration
(``img_size`` 64, as the releases) and given the same parameters (it computes its index tables and
masks itself, which srzoo does not store), timed alternately under ``torch.inference_mode``
(median; process CPU time as well). Prints the ratio srzoo / spandrel and the largest output
difference relative to the output's magnitude.

Usage:
    python benchmarks/bench_drct.py [--size 64] [--repeats 5] [--threads 2] [--models drct]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import srzoo
import srzoo.archs.drct  # registers the family


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _spandrel(name: str, scale: int) -> nn.Module:
    """spandrel's DRCT in the registered configuration of ``name``."""
    from spandrel.architectures.DRCT import DRCT

    defaults = dict(srzoo.model_info(name).defaults)
    model: nn.Module = DRCT(img_size=64, upscale=scale, upsampler="pixelshuffle", **defaults)
    return model


def _with_parameters(reference: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """``reference`` holding srzoo's parameters; only its own computed tables may be missing."""
    result = reference.load_state_dict(state, strict=False)
    parameters = {k for k, _ in reference.named_parameters()}
    missing = parameters & set(result.missing_keys)
    if missing or result.unexpected_keys:
        raise SystemExit(f"layouts differ: {sorted(missing)[:3]} {result.unexpected_keys[:3]}")
    return reference.eval()


def bench(name: str, size: int, repeats: int, folder: Path) -> str:
    """Time one model; return its report line."""
    scale = 4
    torch.manual_seed(0)
    state = srzoo.model_info(name).build(scale).state_dict()
    path = folder / f"{name}_x{scale}.pth"
    torch.save({"params_ema": state}, path)
    ours = srzoo.load(name, scale=scale, weights=path)
    theirs = _with_parameters(_spandrel(name, scale), state)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    ours_t: list[tuple[float, float]] = []
    theirs_t: list[tuple[float, float]] = []
    with torch.inference_mode():
        # spandrel's DRCT does not pad: the benchmark size is a multiple of the window.
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
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["drct"])
    args = parser.parse_args()
    if args.size % 16:
        raise SystemExit("--size must be a multiple of 16 (spandrel's DRCT does not pad)")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            print(bench(name, args.size, args.repeats, Path(folder)), flush=True)


if __name__ == "__main__":
    main()
