"""One run on one CUDA device that measures every family: speed per precision, precision verdicts,
``torch.compile`` speed-up and compile time, and the tile ``tile="auto"`` picks.

Per family (one representative model each, random weights at its default scale):

- float32 / float16 / bfloat16 milliseconds per input megapixel at 512x512 (:func:`srzoo.bench.
  bench`: warm-up, median of timed calls, ``torch.cuda.synchronize`` around each);
- float16 and bfloat16 verdicts against float32 (:func:`srzoo.bench.precision_check`; the
  registry's own verdicts come from ``benchmarks/measure_precision.py --device cuda``, run on
  real images with pretrained weights where available);
- the float32 speed-up of ``torch.compile`` (srzoo's settings, inductor) and its compile time;
- the largest tile ``tile="auto"`` picks (:func:`srzoo.tiling.auto_tile_size`), and the peak
  memory (``torch.cuda.max_memory_allocated``) of one 512x512 float32 call.

It writes ``<out>.json`` and ``<out>.md`` (a table naming the card). Budget: about 5 minutes on a
recent card; ``--max-seconds`` stops adding families when the time is spent. ``--device cpu
--quick`` is a smoke run of the same code (tiny inputs, one timed call, the eager compile
backend) that a test runs, so that this script keeps working between GPU runs.

Usage:
    python benchmarks/gpu_suite.py [--out gpu_suite] [--models NAME ...] [--max-seconds 270]
    python benchmarks/gpu_suite.py --device cpu --quick --models espcn fsrcnn --out /tmp/smoke
    python benchmarks/gpu_suite.py --merge run1.json run2.json --out gpu_suite
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import srzoo
from srzoo.bench import bench, device_name, precision_check
from srzoo.tiling import auto_tile_size

DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class Row:
    """What the suite measured for one model."""

    model: str
    family: str
    scale: int
    ms_per_mpix: dict[str, float | None]
    verdicts: dict[str, str]
    psnr_db: dict[str, float | None]
    compile_speedup: float | None
    compile_s: float | None
    auto_tile: int | None
    peak_memory_mib: float | None
    errors: list[str]


def representatives() -> list[str]:
    """One model per family: the one named as the family, else the first in sorted order."""
    chosen: dict[str, str] = {}
    for name in srzoo.list_models():
        family = srzoo.model_info(name).family
        if family not in chosen or name == family:
            chosen[family] = name
    return sorted(chosen.values())


def _time(model: torch.nn.Module, dtype: str, *, size: int, device: str, quick: bool) -> Any:
    """:func:`bench` on a copy of ``model`` in ``dtype``: three timed calls for a model that
    takes 50 ms or more, ten for a faster one (where three medians would be noise)."""
    runs = 1 if quick else 3
    r = bench(copy.deepcopy(model), size=size, dtype=dtype, device=device, runs=runs, warmup=1)
    if not quick and r.ms_per_image < 50:
        r = bench(copy.deepcopy(model), size=size, dtype=dtype, device=device, runs=10, warmup=2)
    return r


def measure(name: str, *, device: str, quick: bool) -> Row:
    """Every measurement of one model; a failing step is recorded, not fatal."""
    spec = srzoo.model_info(name)
    size = 32 if quick else 512
    errors: list[str] = []
    torch.manual_seed(0)
    # Built once (random initialisation of the largest models takes seconds); each timing runs
    # on a copy converted to its dtype.
    model = srzoo.load(name, weights=None, device=device)
    ms: dict[str, float | None] = {}
    peak = None
    for dtype in DTYPES:
        try:
            r = _time(model, dtype, size=size, device=device, quick=quick)
            ms[dtype] = r.ms_per_image / (size * size / 1e6)
            if dtype == "float32":
                peak = r.peak_memory_mib
        except Exception as error:  # out of memory, an unsupported kernel: note it, go on
            ms[dtype] = None
            errors.append(f"{dtype}: {type(error).__name__}: {error}"[:200])
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    channels = 1 if spec.colour == "y" else 3
    crop = 32 if quick else 128
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(1, channels, crop, crop, generator=g)]
    verdicts: dict[str, str] = {}
    psnr: dict[str, float | None] = {}
    for dtype in DTYPES[1:]:
        try:
            v = precision_check(model, images, dtype=dtype, note="seeded random weights")
            verdicts[dtype], psnr[dtype] = v.verdict, v.psnr_db
        except Exception as error:
            verdicts[dtype], psnr[dtype] = "error", None
            errors.append(f"precision {dtype}: {type(error).__name__}: {error}"[:200])
    tile = None
    if not quick:  # the probe is cheap, but on a CPU "free memory" says little
        try:
            tile = auto_tile_size(
                model,
                channels=channels,
                size_multiple=spec.size_multiple,
                device=device,
            )
        except Exception as error:
            errors.append(f"auto tile: {type(error).__name__}: {error}"[:200])
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return Row(
        model=name,
        family=spec.family,
        scale=spec.scale,
        ms_per_mpix=ms,
        verdicts=verdicts,
        psnr_db=psnr,
        compile_speedup=None,
        compile_s=None,
        auto_tile=tile,
        peak_memory_mib=peak,
        errors=errors,
    )


def add_compile(row: Row, *, device: str, quick: bool) -> None:
    """The float32 speed-up of ``torch.compile`` (inductor; eager when quick) and its time."""
    size = 32 if quick else 512
    runs, warmup = (1, 1) if quick else (5, 2)
    compile_arg: Any = {"backend": "eager"} if quick else True
    torch.compiler.reset()
    try:
        r = bench(
            row.model, size=size, device=device, runs=runs, warmup=warmup, compile=compile_arg
        )
    except Exception as error:
        row.errors.append(f"compile: {type(error).__name__}: {error}"[:200])
        return
    row.compile_s = r.compile_s
    eager = row.ms_per_mpix["float32"]
    if eager is not None:
        row.compile_speedup = eager / (r.ms_per_image / (size * size / 1e6))


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _tf32() -> dict[str, bool]:
    return {
        "convolutions": torch.backends.cudnn.allow_tf32,
        "matmul": torch.backends.cuda.matmul.allow_tf32,
    }


def markdown(
    rows: list[Row],
    card: str,
    size: int,
    *,
    torch_version: str = torch.__version__,
    tf32: dict[str, bool] | None = None,
) -> str:
    """The table of one run (or of merged runs on one card)."""
    tf32 = tf32 or _tf32()
    lines = [
        f"Measured on {card}, torch {torch_version}, {size}x{size} input, random weights.",
        f"float32 with TF32 convolutions {'on' if tf32['convolutions'] else 'off'} and "
        f"TF32 matrix products {'on' if tf32['matmul'] else 'off'}.",
        "",
        "| model | scale | fp32 ms/MP | fp16 ms/MP | bf16 ms/MP | fp16 | bf16 | compile speed-up "
        "| compile s | auto tile | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = {
            d: f"{r.verdicts.get(d, '-')} ({_num(r.psnr_db.get(d), '.1f')} dB)" for d in DTYPES[1:]
        }
        lines.append(
            f"| `{r.model}` | x{r.scale} | {_num(r.ms_per_mpix['float32'], '.1f')} "
            f"| {_num(r.ms_per_mpix['float16'], '.1f')} | {_num(r.ms_per_mpix['bfloat16'], '.1f')} "
            f"| {verdict['float16']} | {verdict['bfloat16']} "
            f"| {_num(r.compile_speedup, '.2f')} | {_num(r.compile_s, '.1f')} "
            f"| {_num(r.auto_tile, 'd')} | {_num(r.peak_memory_mib, '.0f')} |"
        )
    return "\n".join(lines) + "\n"


# Compiled first, as far as the time allows: the families most used in practice, then the rest
# in table order.
COMPILE_FIRST = ("swinir", "edsr", "rcan", "esrgan", "realesr-animevideov3", "span", "hat")


def _save(out: Path, result: dict[str, Any]) -> str:
    """Write a run's ``result`` as ``<out>.json`` and its table as ``<out>.md``."""
    rows = [Row(**row) for row in result["rows"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(
        rows, result["card"], result["size"], torch_version=result["torch"], tf32=result["tf32"]
    )
    out.with_suffix(".md").write_text(table)
    return table


def write(out: Path, rows: list[Row], *, card: str, size: int, quick: bool, start: float) -> str:
    """Write ``<out>.json`` and ``<out>.md`` (after every model, so a stopped run keeps them)."""
    result = {
        "card": card,
        "torch": torch.__version__,
        "tf32": _tf32(),
        "size": size,
        "quick": quick,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": [asdict(r) for r in rows],
    }
    return _save(out, result)


def merge(paths: list[Path], out: Path) -> str:
    """Join the JSON of runs on one card (e.g. a run cut short and one over the rest) into one
    ``<out>.json`` and ``<out>.md``, one row per model (a later run's row wins)."""
    runs = [json.loads(p.read_text()) for p in paths]
    cards = {(r["card"], r["torch"], r["size"]) for r in runs}
    if len(cards) != 1:
        raise SystemExit(f"runs from different cards, torch versions or sizes: {sorted(cards)}")
    by_model = {row["model"]: row for r in runs for row in r["rows"]}
    first = runs[0]
    result = dict(first, seconds=round(sum(r["seconds"] for r in runs), 1))
    result["rows"] = [by_model[name] for name in sorted(by_model)]
    # Runs written before the TF32 settings were recorded ran with PyTorch's defaults.
    result["tf32"] = first.get("tf32", {"convolutions": True, "matmul": False})
    return _save(out, result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="*", help="default: one model per family")
    parser.add_argument("--out", type=Path, default=Path("gpu_suite"), help="path without suffix")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny inputs, eager")
    parser.add_argument("--max-seconds", type=float, default=270.0)
    parser.add_argument("--merge", nargs="+", type=Path, help="join these runs' JSON; no run")
    args = parser.parse_args(argv)
    if args.merge:
        print(merge(args.merge, args.out))
        return 0
    names = args.models or representatives()
    card = device_name(args.device)
    size = 32 if args.quick else 512
    start = time.perf_counter()
    rows: list[Row] = []

    def save() -> str:
        return write(args.out, rows, card=card, size=size, quick=args.quick, start=start)

    # Cheap measurements of every family first (most of the time), then compilation (tens of
    # seconds each with inductor) for as many as the remaining time allows.
    for name in names:
        if time.perf_counter() - start > args.max_seconds * 0.6:
            print(f"time budget spent: {len(names) - len(rows)} models left out", flush=True)
            break
        t0 = time.perf_counter()
        rows.append(measure(name, device=args.device, quick=args.quick))
        save()
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    order = sorted(
        rows,
        key=lambda r: COMPILE_FIRST.index(r.model) if r.model in COMPILE_FIRST else len(rows),
    )
    for row in order:
        if time.perf_counter() - start > args.max_seconds:
            print("time budget spent: compilation measured for part of the models", flush=True)
            break
        t0 = time.perf_counter()
        add_compile(row, device=args.device, quick=args.quick)
        save()
        print(f"{row.model} compiled: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(save())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
