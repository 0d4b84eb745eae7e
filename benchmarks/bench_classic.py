"""CPU forward time of the classic families (SRCNN, FSRCNN, ESPCN, VDSR, CARN, CARN-M).

For each model at x4 on a 256x256 input, prints srzoo's median forward time under
``torch.inference_mode`` for the module as ``srzoo.load`` returns it, and, where torchSR provides
the network, the ratio srzoo / torchSR measured in the same process on the same weights. Two
ratios are printed: srzoo as loaded (``srzoo.load`` may choose a faster memory format) and srzoo
in torchSR's own contiguous NCHW format, which compares the module code alone. All variants are
timed in rotating order, so a change in machine load affects each alike.

torchSR's ``vdsr`` is a different network (RGB, biased convolutions, mean shift, PyTorch
bicubic), so its VDSR ratio compares equal trunk work on different weights and is marked so.

Usage:
    python benchmarks/bench_classic.py [--size 256] [--repeats 5] [--threads 2] [--only carn-m]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

import srzoo

NAMES = ("srcnn", "fsrcnn", "espcn", "vdsr", "carn", "carn-m")


def _reference(name: str, scale: int) -> tuple[nn.Module, bool] | None:
    """torchSR's network for ``name`` and whether it holds the same weights as srzoo's."""
    try:
        from torchsr import models
    except ImportError:
        return None
    if name == "carn":
        return models.carn(scale), True
    if name == "carn-m":
        return models.carn_m(scale), True
    if name == "vdsr":
        return models.vdsr(scale), False
    return None


def bench(name: str, scale: int, size: int, repeats: int) -> str:
    """Time one model and return a report line.

    Args:
        name: Registered model name.
        scale: Upscaling factor.
        size: Height and width of the square input.
        repeats: Timed runs per variant (after one warm-up run each).

    Returns:
        A line with srzoo's median time and, where available, the ratios to torchSR.

    Example:
        >>> print(bench("espcn", 4, 64, 3))
    """
    spec = srzoo.model_info(name)
    ref_info = _reference(name, scale)
    ref: nn.Module | None = None
    same = False
    weights: str | None = None
    with tempfile.TemporaryDirectory() as tmp:
        if ref_info is not None:
            ref, same = ref_info
            ref.eval()
            if same:
                # Identical weights: srzoo loads the reference's multi-scale file, as a user would.
                weights = str(Path(tmp) / f"{name}.pt")
                torch.save(ref.state_dict(), weights)
        ours = srzoo.load(name, scale, weights=weights)
    torch.manual_seed(0)
    x = torch.rand(1, 1 if spec.colour == "y" else 3, size, size)
    variants: dict[str, tuple[nn.Module, torch.Tensor]] = {"srzoo": (ours, x)}
    if ref is not None:
        nchw = copy.deepcopy(ours).to(memory_format=torch.contiguous_format)
        variants["srzoo-nchw"] = (nchw, x)
        variants["torchsr"] = (ref, x if same else torch.rand(1, 3, size, size))
    times: dict[str, list[float]] = {k: [] for k in variants}
    with torch.inference_mode():
        outputs = {k: m(inp) for k, (m, inp) in variants.items()}  # warm-up
        if same:
            # Timing two different computations would be meaningless.
            for k in ("srzoo", "srzoo-nchw"):
                torch.testing.assert_close(outputs[k], outputs["torchsr"], atol=1e-4, rtol=0)
        del outputs
        order = list(variants)
        for i in range(repeats):
            for k in order[i % len(order) :] + order[: i % len(order)]:
                model, inp = variants[k]
                start = time.perf_counter()
                model(inp)
                times[k].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    line = f"{name:7s} x{scale} {size}x{size}  srzoo {med['srzoo'] * 1000:9.1f} ms"
    if ref is not None:
        note = "same weights" if same else "different network (RGB, biased), equal trunk"
        line += (
            f"  torchSR {med['torchsr'] * 1000:9.1f} ms"
            f"  ratio as loaded {med['srzoo'] / med['torchsr']:.3f}"
            f"  ratio NCHW {med['srzoo-nchw'] / med['torchsr']:.3f}  ({note})"
        )
    return line


def main() -> None:
    """Run the benchmark for the classic families and print one line per model."""
    parser = argparse.ArgumentParser(description="CPU forward time of srzoo's classic families")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=NAMES, action="append")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.only or NAMES:
        print(bench(name, 4, args.size, args.repeats), flush=True)


if __name__ == "__main__":
    main()
