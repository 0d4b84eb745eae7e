"""CPU forward time with glibc's default allocator settings against settings that keep memory.

On Linux, glibc gives large freed blocks back to the operating system (memory-mapped chunks and
the top of the heap beyond a trim threshold), so the next forward pass touches fresh pages and
pays a page fault for every 4 KiB of its activations. Setting ``MALLOC_MMAP_THRESHOLD_`` and
``MALLOC_TRIM_THRESHOLD_`` high keeps the memory in the process instead.

For each model (random weights, ``srzoo.load`` as it returns it), a child process is run with
the default settings and one with both thresholds at 1 GiB, alternately, ``--rounds`` times
each; a child times ``--repeats`` calls after two warm-ups and counts the minor page faults per
call and its peak resident memory. Prints the medians and the ratio tuned / default.

Usage:
    python benchmarks/bench_allocator.py [--rounds 2] [--repeats 9] [NAME[:SIZE] ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, resource, statistics, sys, time
import torch
import srzoo

name, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
torch.manual_seed(0)
model = srzoo.load(name, weights=None)
channels = 1 if srzoo.model_info(name).colour == "y" else 3
x = torch.rand(1, channels, size, size)
times, faults = [], []
with torch.inference_mode():
    model(x)
    model(x)
    for _ in range(repeats):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(json.dumps({
    "ms": statistics.median(times) * 1000,
    "faults": statistics.median(faults),
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""

TUNED = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**30)}
DEFAULT = ("ditn:64", "span:256", "swinir-light:64", "edsr-baseline:256", "rcan:64")


def _child(name: str, size: int, repeats: int, tuned: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in TUNED}
    if tuned:
        env.update(TUNED)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, name, str(size), str(repeats)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT), help="NAME or NAME:SIZE")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    print(
        "model                 size  default ms  faults/call   tuned ms  faults/call  ratio"
        "  peak MiB default / tuned"
    )
    for spec in args.models:
        name, _, size_text = spec.partition(":")
        size = int(size_text or 64)
        runs: dict[bool, list[dict[str, float]]] = {False: [], True: []}
        for _ in range(args.rounds):
            for tuned in (False, True):
                runs[tuned].append(_child(name, size, args.repeats, tuned))

        d = {k: _median(runs[False], k) for k in ("ms", "faults", "peak_mib")}
        t = {k: _median(runs[True], k) for k in ("ms", "faults", "peak_mib")}
        print(
            f"{name:20s} {size:5d} {d['ms']:11.1f} {d['faults']:12.0f} {t['ms']:10.1f} "
            f"{t['faults']:12.0f} {t['ms'] / d['ms']:6.2f}  "
            f"{d['peak_mib']:8.0f} / {t['peak_mib']:.0f}"
        )


if __name__ == "__main__":
    main()
