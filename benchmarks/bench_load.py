"""Time loading RCAN x4 weights: srzoo.load versus building the module and load_state_dict.

Measures, on the CPU:

1. ``srzoo.load("rcan", scale=4, weights=<local .safetensors>)`` with random full-size weights
   (goal: at most 0.5 s), beside the usual ``RCAN()`` + ``load_state_dict``;
2. ``srzoo.load("rcan", scale=4)`` with the default weights already in the cache, i.e. read from
   the safetensors copy converted at the first download. The "download" comes from a server on
   127.0.0.1 (``tests/hub_server.py``) holding a random RCAN in the official ``.pt`` layout, so no
   internet is needed; ``torch.load`` is patched to fail to show that the cached load never
   unpickles.

Usage::

    python benchmarks/bench_load.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import srzoo  # noqa: E402
from srzoo.registry import WeightSpec  # noqa: E402
from tests.hub_server import HubServer  # noqa: E402


def _report(label: str, fn: Callable[[], Any], repeat: int) -> float:
    """Print best and median wall time, and the best CPU time, of ``repeat`` calls."""
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    best = min(wall)
    print(
        f"{label:<44s} best {best:.3f} s, median {statistics.median(wall):.3f} s "
        f"(CPU best {min(cpu):.3f} s)"
    )
    return best


def _layout_kwargs() -> dict[str, Any]:
    # load() may convert weights to channels-last after loading; time the loading without it too.
    return (
        {"channels_last": False}
        if "channels_last" in inspect.signature(srzoo.load).parameters
        else {}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))

    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        os.environ["SRZOO_HOME"] = str(tmpdir / "srzoo-home")
        for var in ("SRZOO_OFFLINE", "HF_HUB_OFFLINE"):
            os.environ.pop(var, None)

        ref = srzoo.create("rcan", 4)
        state = {k: v.detach().contiguous() for k, v in ref.state_dict().items()}
        n_params = sum(v.numel() for v in state.values())
        local = tmpdir / "rcan_x4.safetensors"
        save_file(state, local)
        print(f"RCAN x4: {n_params / 1e6:.2f} M values, {local.stat().st_size / 1e6:.1f} MB")

        layout_kw = _layout_kwargs()

        def srzoo_local() -> None:
            srzoo.load("rcan", scale=4, weights=local)

        def srzoo_local_plain_layout() -> None:
            srzoo.load("rcan", scale=4, weights=local, **layout_kw)

        def plain() -> None:
            from srzoo.archs.rcan import RCAN

            net = RCAN(scale=4)
            net.load_state_dict(load_file(str(local)))
            net.eval()

        srzoo_local()  # warm-up: imports, allocator
        _report("srzoo.load(weights=local .safetensors)", srzoo_local, args.repeat)
        if layout_kw:
            _report("  the same with channels_last=False", srzoo_local_plain_layout, args.repeat)
        _report("RCAN() + load_state_dict(load_file(...))", plain, args.repeat)

        # Default weights through the download path, served from 127.0.0.1.
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        server = HubServer().start()
        try:
            url = server.add_file("rcan_x4.pt", data)
            spec = srzoo.model_info("rcan")
            weights = (
                WeightSpec(
                    scale=4,
                    source=url,
                    sha256=hashlib.sha256(data).hexdigest(),
                    size=len(data),
                    license="benchmark",
                ),
            )
            srzoo.register_model(
                dataclasses.replace(spec, name="bench-rcan", weights=weights), overwrite=True
            )
            t0 = time.perf_counter()
            srzoo.load("bench-rcan", scale=4, progress=False)
            first = time.perf_counter() - t0
            print(f"{'first load (download + verify + convert)':<44s} {first:.3f} s")
        finally:
            server.stop()

        real_load = torch.load
        calls = 0

        def refuse(*a: Any, **k: Any) -> Any:
            nonlocal calls
            calls += 1
            raise AssertionError("torch.load called on a cached load")

        torch.load = refuse
        try:

            def cached() -> None:
                srzoo.load("bench-rcan", scale=4, progress=False)

            def cached_plain_layout() -> None:
                srzoo.load("bench-rcan", scale=4, progress=False, **layout_kw)

            best_c = _report("cached default weights (converted copy)", cached, args.repeat)
            if layout_kw:
                _report("  the same with channels_last=False", cached_plain_layout, args.repeat)
        finally:
            torch.load = real_load
        print(f"torch.load calls during cached loads: {calls}")
        print(f"(best cached load {best_c:.3f} s; 1-minute load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
