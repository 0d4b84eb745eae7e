"""Forward time and peak memory of the GAN generators, srzoo against spandrel on the same weights.

For ``realesrgan-x4plus`` (RRDBNet, 23 blocks) and ``realesr-animevideov3`` (Real-ESRGAN Compact,
16 convolutions) at x4 on a 256x256 input: the model as ``srzoo.load`` returns it (channels-last
convolution weights) and spandrel's as its ``ModelLoader`` returns it from the same file, timed
alternately under ``torch.inference_mode`` (median of the runs; process CPU time as well, which
other work on a shared machine disturbs less), the ratio srzoo / spandrel, the largest output
difference, and the growth of the peak resident memory during one forward call (the Linux
high-water mark, reset before the call through ``/proc/self/clear_refs``), each implementation
measured in a fresh process after one warm-up call, so that neither inherits the other's
allocator cache.

Usage:
    python benchmarks/bench_gan.py [--size 256] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import srzoo

NAMES = ("realesrgan-x4plus", "realesr-animevideov3")


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and process CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _peak_growth_mib(fn: Callable[[], object]) -> float | None:
    """How far one call raises the resident-memory high-water mark above the current RSS."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _status_kib("VmRSS")
    except OSError:
        return None  # not Linux, or not allowed
    fn()
    return (_status_kib("VmHWM") - before) / 1024


def _load(name: str, impl: str, path: Path) -> nn.Module:
    if impl == "srzoo":
        return srzoo.load(name, weights=path)
    import spandrel  # a test and benchmark dependency, not one of srzoo's

    model: nn.Module = spandrel.ModelLoader().load_from_file(path).model.eval()
    return model


def _child_memory(name: str, impl: str, path: Path, size: int, threads: int) -> float | None:
    """Peak memory growth of one forward call, measured in a fresh process."""
    script = (
        "import json, sys, torch\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import bench_gan\n"
        "torch.set_num_threads(int(sys.argv[6]))\n"
        "model = bench_gan._load(sys.argv[2], sys.argv[3], bench_gan.Path(sys.argv[4]))\n"
        "x = torch.rand(1, 3, int(sys.argv[5]), int(sys.argv[5]))\n"
        "with torch.inference_mode():\n"
        "    model(x)\n"
        "    print(json.dumps(bench_gan._peak_growth_mib(lambda: model(x))))\n"
    )
    args = [str(Path(__file__).parent), name, impl, str(path), str(size), str(threads)]
    out = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=True
    )
    value: float | None = json.loads(out.stdout.strip().splitlines()[-1])
    return value


def bench(name: str, size: int, repeats: int, folder: Path) -> list[str]:
    """Time and measure one model, returning its report lines."""
    spec = srzoo.model_info(name)
    torch.manual_seed(0)
    reference = spec.build(spec.scale)
    path = folder / f"{name}.pth"
    # The official files hold the tensors under "params_ema" / "params".
    torch.save({"params": reference.state_dict()}, path)
    ours = _load(name, "srzoo", path)
    theirs = _load(name, "spandrel", path)
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    ours_t: list[tuple[float, float]] = []
    theirs_t: list[tuple[float, float]] = []
    with torch.inference_mode():
        diff = (ours(x) - theirs(x)).abs().max().item()  # also the warm-up
        for _ in range(repeats):
            ours_t.append(_time(lambda: ours(x)))
            theirs_t.append(_time(lambda: theirs(x)))
    threads = torch.get_num_threads()
    mem_ours = _child_memory(name, "srzoo", path, size, threads)
    mem_theirs = _child_memory(name, "spandrel", path, size, threads)
    t_ours = statistics.median(w for w, _ in ours_t)
    t_theirs = statistics.median(w for w, _ in theirs_t)
    cpu = statistics.median(c for _, c in ours_t) / statistics.median(c for _, c in theirs_t)
    lines = [
        f"{name} x{spec.scale}, {size}x{size}: srzoo {t_ours * 1000:.0f} ms, spandrel "
        f"{t_theirs * 1000:.0f} ms, ratio {t_ours / t_theirs:.3f} (CPU time {cpu:.3f}); "
        f"max |diff| {diff:.1e}"
    ]
    if mem_ours is not None and mem_theirs is not None:
        lines.append(
            f"  peak memory growth of one forward (fresh process each): srzoo {mem_ours:.0f} MiB, "
            f"spandrel {mem_theirs:.0f} MiB"
        )
    return lines


def main() -> None:
    """Parse the arguments and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    with tempfile.TemporaryDirectory() as folder:
        for name in NAMES:
            for line in bench(name, args.size, args.repeats, Path(folder)):
                print(line, flush=True)


if __name__ == "__main__":
    main()
