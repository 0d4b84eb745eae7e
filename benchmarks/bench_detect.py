"""Detection cost against plain reading, for a ~64 MB checkpoint (RRDBNet x4, 23 blocks).

Prints, for a ``torch.save`` zip file and a safetensors file of the same random weights:
reading the state dict (``read_state_dict``), reading keys and shapes (``read_shapes``),
detecting from the file (``srzoo.detect(path)``: keys and shapes, then every detector), detecting
from tensors already read (the detectors alone), and ``load_file`` against
``load(name, weights=path)``; the ratios say what detection adds to reading.

    python benchmarks/bench_detect.py [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

import srzoo
from srzoo.detect import read_shapes
from srzoo.weights.files import read_state_dict


def _median(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm the page cache and the imports
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(2)
    state = srzoo.create("esrgan", 4).state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "pth (zip)": Path(tmp) / "rrdb_x4.pth",
            "safetensors": Path(tmp) / "rrdb_x4.safetensors",
        }
        torch.save({"params_ema": state}, files["pth (zip)"])
        save_file({k: v.contiguous() for k, v in state.items()}, str(files["safetensors"]))
        for kind, path in files.items():
            size = path.stat().st_size / 2**20
            read = _median(lambda p=path: read_state_dict(p), args.repeat)
            shapes = _median(lambda p=path: read_shapes(p), args.repeat)
            detect = _median(lambda p=path: srzoo.detect(p), args.repeat)
            loaded = read_state_dict(path)
            detectors = _median(lambda s=loaded: srzoo.detect(s), args.repeat)
            load_file = _median(lambda p=path: srzoo.load_file(p), max(3, args.repeat // 2))
            load = _median(
                lambda p=path: srzoo.load("esrgan", 4, weights=p), max(3, args.repeat // 2)
            )
            print(f"{kind}: {size:.1f} MiB")
            print(f"  read_state_dict  {read * 1e3:8.1f} ms")
            print(f"  read_shapes      {shapes * 1e3:8.1f} ms")
            print(
                f"  detect(path)             {detect * 1e3:8.1f} ms  ({detect / read:.2f}x reading)"
            )
            share = detectors / read
            print(f"  detect(tensors)  {detectors * 1e3:8.1f} ms  ({share:.1%} of reading)")
            print(f"  load_file(path)  {load_file * 1e3:8.1f} ms")
            ratio = load_file / load
            print(f"  load(name, path) {load * 1e3:8.1f} ms  (load_file/load {ratio:.2f})")


if __name__ == "__main__":
    main()
