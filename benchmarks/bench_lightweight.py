"""CPU forward time of the lightweight families (IMDN, RFDN, PAN, SAFMN, SPAN).

For each model at x4 on a square input (256x256 by default), prints srzoo's median forward time
under ``torch.inference_mode`` and, where spandrel implements the network (SAFMN and SPAN), the
ratio srzoo / spandrel measured in the same process on the same weights. The two are timed
alternately, so a change in machine load affects both alike; the ratio of process CPU time is
printed as well, being less sensitive to other work on a shared machine. spandrel has no IMDN,
RFDN or PAN (nor has torchSR), so those rows give srzoo's time only.

Usage:
    python benchmarks/bench_lightweight.py [--size 256] [--repeats 5] [--threads 2] [--scale 4]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import srzoo

NAMES = ("imdn", "rfdn", "pan", "safmn", "span")


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _reference(name: str, scale: int) -> nn.Module | None:
    """spandrel's network for ``name`` in the registered configuration, if it has one."""
    try:
        from spandrel.architectures.SAFMN import SAFMN
        from spandrel.architectures.SPAN import SPAN
    except ImportError:
        return None
    if name == "safmn":
        return SAFMN(dim=36, n_blocks=8, ffn_scale=2.0, upscaling_factor=scale)
    if name == "span":
        return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=scale)
    return None


def bench(name: str, scale: int, size: int, repeats: int) -> str:
    """Time one model and return a report line.

    Args:
        name: Registered model name.
        scale: Upscaling factor.
        size: Height and width of the square input.
        repeats: Timed runs per implementation (after one warm-up run each).

    Returns:
        A line with srzoo's median time and, where spandrel has the network, the ratio.

    Example:
        >>> print(bench("span", 4, 256, 5))
    """
    spec = srzoo.model_info(name)
    built = spec.build(scale).eval()
    ref = _reference(name, scale)
    if ref is not None:
        ref.load_state_dict(built.state_dict())
        ref.eval()
    # As srzoo.load returns it: fused where the network re-parameterises (SPAN).
    ours = built.fuse() if isinstance(built, srzoo.contract.Fusable) else built
    torch.manual_seed(0)
    x = torch.rand(1, 3, size, size)
    ours_t: list[tuple[float, float]] = []
    ref_t: list[tuple[float, float]] = []
    with torch.inference_mode():
        ours(x)
        if ref is not None:
            ref(x)
        for _ in range(repeats):
            ours_t.append(_time(lambda: ours(x)))
            if ref is not None:
                ref_t.append(_time(lambda: ref(x)))
    t = statistics.median(w for w, _ in ours_t)
    line = f"{name:6s} x{scale}  {size}x{size}  srzoo {t * 1000:8.1f} ms"
    if ref is not None:
        r = statistics.median(w for w, _ in ref_t)
        cpu = statistics.median(c for _, c in ours_t) / statistics.median(c for _, c in ref_t)
        line += f"  spandrel {r * 1000:8.1f} ms  ratio {t / r:.3f} (CPU time {cpu:.3f})"
    else:
        line += "  (no spandrel reference)"
    return line


def main() -> None:
    """Parse the arguments and print one line per family."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    for name in NAMES:
        print(bench(name, args.scale, args.size, args.repeats), flush=True)


if __name__ == "__main__":
    main()
