"""Forward time of the attention families, srzoo against spandrel on the same weights.

For each model (``swinir``, ``swinir-light``, ``hat-s``, ``dat-light`` by default) at x4 on a
64x64 input: the registered configuration with seeded random weights, saved in the official
layout; srzoo's module as ``srzoo.load`` returns it from that file and spandrel's network built
with the same configuration and given the same parameters (it computes its index tables and
masks itself, which srzoo does not store), timed alternately under ``torch.inference_mode``
(median; process CPU time as well). Prints the ratio srzoo / spandrel, the largest output
difference, the achieved GFLOP/s (``torch.utils.flop_counter`` counts the matrix products and
convolutions of one forward), and, with ``--compile``, srzoo under ``torch.compile`` (inductor)
against its own eager time together with the one-off compile time.

Usage:
    python benchmarks/bench_attention.py [--size 64] [--repeats 5] [--threads 2] [--compile]
        [--models swinir swinir-light hat-s dat-light]
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
from torch.utils.flop_counter import FlopCounterMode

import srzoo

NAMES = ("swinir", "swinir-light", "hat-s", "dat-light")


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _flops(model: nn.Module, x: torch.Tensor) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return int(counter.get_total_flops())


def _spandrel(name: str, scale: int) -> nn.Module:
    """spandrel's network in the registered configuration of ``name``."""
    from spandrel.architectures.DAT import DAT
    from spandrel.architectures.HAT import HAT
    from spandrel.architectures.SwinIR import SwinIR

    common = {"upscale": scale, "in_chans": 3, "img_size": 64, "img_range": 1.0}
    if name == "swinir":
        return SwinIR(
            **common,
            window_size=8,
            depths=[6] * 6,
            embed_dim=180,
            num_heads=[6] * 6,
            mlp_ratio=2,
            upsampler="pixelshuffle",
            resi_connection="1conv",
        )
    if name == "swinir-light":
        return SwinIR(
            **common,
            window_size=8,
            depths=[6] * 4,
            embed_dim=60,
            num_heads=[6] * 4,
            mlp_ratio=2,
            upsampler="pixelshuffledirect",
            resi_connection="1conv",
        )
    if name == "hat-s":
        return HAT(
            **common,
            window_size=16,
            depths=[6] * 6,
            embed_dim=144,
            num_heads=[6] * 6,
            compress_ratio=24,
            squeeze_factor=24,
            conv_scale=0.01,
            overlap_ratio=0.5,
            mlp_ratio=2,
            upsampler="pixelshuffle",
            resi_connection="1conv",
        )
    if name == "dat-light":
        return DAT(
            **common,
            depth=[18],
            embed_dim=60,
            num_heads=[6],
            expansion_factor=2,
            resi_connection="3conv",
            split_size=[8, 32],
            upsampler="pixelshuffledirect",
        )
    raise SystemExit(f"no spandrel configuration for {name!r} in this benchmark")


def _with_parameters(reference: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """``reference`` holding srzoo's parameters; only its own computed tables may be missing."""
    result = reference.load_state_dict(state, strict=False)
    parameters = {k for k, _ in reference.named_parameters()}
    missing = parameters & set(result.missing_keys)
    if missing or result.unexpected_keys:
        raise SystemExit(f"layouts differ: {sorted(missing)[:3]} {result.unexpected_keys[:3]}")
    return reference.eval()


def bench(name: str, size: int, repeats: int, folder: Path, compile_: bool) -> list[str]:
    """Time one model; return its report lines."""
    spec = srzoo.model_info(name)
    scale = 4
    torch.manual_seed(0)
    state = spec.build(scale).state_dict()
    path = folder / f"{name}_x{scale}.pth"
    torch.save({"params": state}, path)
    ours = srzoo.load(name, scale=scale, weights=path)
    theirs = _with_parameters(_spandrel(name, scale), state)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    ours_t: list[tuple[float, float]] = []
    theirs_t: list[tuple[float, float]] = []
    with torch.inference_mode():
        expected = theirs(x)
        diff = (ours(x) - expected).abs().max().item() / max(1.0, expected.abs().max().item())
        for _ in range(repeats):
            ours_t.append(_time(lambda: ours(x)))
            theirs_t.append(_time(lambda: theirs(x)))
    flops = _flops(theirs, x)
    t_ours = statistics.median(w for w, _ in ours_t)
    t_theirs = statistics.median(w for w, _ in theirs_t)
    cpu = statistics.median(c for _, c in ours_t) / statistics.median(c for _, c in theirs_t)
    lines = [
        f"{name} x{scale}, {size}x{size}, {flops / 1e9:.1f} GFLOP: srzoo {t_ours * 1000:.0f} ms "
        f"({flops / t_ours / 1e9:.0f} GFLOP/s), spandrel {t_theirs * 1000:.0f} ms "
        f"({flops / t_theirs / 1e9:.0f} GFLOP/s), ratio {t_ours / t_theirs:.3f} "
        f"(CPU time {cpu:.3f}); max relative diff {diff:.1e}"
    ]
    if compile_:
        torch._dynamo.reset()
        compiled = torch.compile(ours)
        with torch.inference_mode():
            start = time.perf_counter()
            compiled(x)
            compile_s = time.perf_counter() - start
            eager_t, compiled_t = [], []
            for _ in range(repeats):
                eager_t.append(_time(lambda: ours(x))[0])
                compiled_t.append(_time(lambda: compiled(x))[0])
        t_c, t_e = statistics.median(compiled_t), statistics.median(eager_t)
        lines.append(
            f"  torch.compile (inductor): {t_c * 1000:.0f} ms vs eager {t_e * 1000:.0f} ms, "
            f"speed-up {t_e / t_c:.2f}x; first call (compile) {compile_s:.0f} s"
        )
    return lines


def main() -> None:
    """Parse the arguments and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", dest="compile_")
    parser.add_argument("--models", nargs="+", default=list(NAMES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            for line in bench(name, args.size, args.repeats, Path(folder), args.compile_):
                print(line, flush=True)


if __name__ == "__main__":
    main()
