"""Measuring models: forward speed and memory (:func:`bench`), and how far a reduced precision
strays from float32 (:func:`precision_check`).

The ``srzoo bench`` command, ``benchmarks/measure_precision.py`` (which writes the verdicts the
registry ships) and ``benchmarks/gpu_suite.py`` are thin layers over these two functions.
"""

from __future__ import annotations

import copy
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ._util import parameter_device_dtype, resolve_device, resolve_dtype, unwrap_compiled
from .api import CompileArg, load
from .contract import model_channels, model_config, model_scale
from .errors import ArgumentError
from .registry import PrecisionVerdict

__all__ = ["BenchResult", "bench", "device_name", "precision_check"]


@dataclass(frozen=True)
class BenchResult:
    """What :func:`bench` measured for one model, input size, batch, dtype and device.

    Args:
        model: The model's name (its registered architecture, or the module's class).
        scale: Upscaling factor.
        size: Side of the square input, in pixels.
        batch: Images per forward call.
        dtype: Compute dtype, e.g. ``"float32"``.
        device: Where it ran, with the processor or card's name.
        compiled: Whether it ran through ``torch.compile``.
        runs: Timed calls (after the warm-up).
        ms_per_image: Median time of one call divided by ``batch``, in milliseconds.
        input_mpix_per_s: Input megapixels processed per second (at the median time).
        peak_memory_mib: Peak memory of one call: CUDA's ``max_memory_allocated`` in a timed
            call, or on Linux CPUs the growth of the process's resident high-water mark in the
            first call (compilation included when compiling); ``None`` where neither can be
            read.
        compile_s: For a compiled model, the first call's time minus the median call's (the
            compilation itself); ``None`` otherwise.
    """

    model: str
    scale: int
    size: int
    batch: int
    dtype: str
    device: str
    compiled: bool
    runs: int
    ms_per_image: float
    input_mpix_per_s: float
    peak_memory_mib: float | None
    compile_s: float | None

    def summary(self) -> str:
        """One line for a terminal.

        Example:
            >>> print(bench("edsr-baseline", size=64, runs=3).summary())
            edsr-baseline x4 64x64 batch 1 float32 on cpu (...): 50.1 ms/image, ...
        """
        memory = "n/a" if self.peak_memory_mib is None else f"{self.peak_memory_mib:.0f} MiB"
        compiled = (
            f", compiled (compile {self.compile_s:.1f} s)" if self.compile_s is not None else ""
        )
        return (
            f"{self.model} x{self.scale} {self.size}x{self.size} batch {self.batch} "
            f"{self.dtype} on {self.device}{compiled}: {self.ms_per_image:.1f} ms/image, "
            f"{self.input_mpix_per_s:.3g} input MP/s, peak memory {memory}"
        )


def device_name(device: torch.device | str) -> str:
    """A readable name of the processor or card behind ``device``.

    Example:
        >>> device_name("cpu")
        'cpu (Intel(R) Xeon(R) ...)'
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(dev)})"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: platform's name is what there is
    return f"{dev.type} ({cpu})"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _peak_memory_mib(fn: Callable[[], object], device: torch.device) -> float | None:
    """Peak memory of one call: CUDA allocations, or on Linux the resident high-water growth."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type != "cpu":
        fn()
        return None
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = _status_kib("VmRSS")
    except OSError:
        fn()
        return None  # not Linux, or not allowed
    fn()
    # The kernel folds per-thread RSS counts into VmRSS and VmHWM lazily (a few pages at a
    # time), so the two can disagree by that much: a call that grows nothing can read as -16 KiB.
    peak = max(_status_kib("VmHWM"), _status_kib("VmRSS"))
    return max(peak - before, 0) / 1024


def bench(
    model: str | nn.Module,
    *,
    scale: int | None = None,
    size: int = 256,
    batch: int = 1,
    dtype: torch.dtype | str | None = None,
    compile: CompileArg = False,
    device: str | torch.device | None = None,
    runs: int = 5,
    warmup: int = 1,
) -> BenchResult:
    """Time a model's forward pass on random input: median of ``runs`` after ``warmup`` calls.

    A named model is built with random weights (speed does not depend on their values) and
    loaded as :func:`srzoo.load` would (channels-last, fused, eval mode). Every call runs under
    ``torch.inference_mode``; on CUDA each is synchronised.

    Args:
        model: A registered name, or a module following srzoo's contract.
        scale: Scale to build a named model at (default: its default scale).
        size: Side of the square input, in pixels.
        batch: Images per call.
        dtype: Compute dtype (default: float32, or the module's).
        compile: As for :func:`srzoo.load`: ``True``, a mode such as ``"max-autotune"`` or a
            dict of ``torch.compile`` options. The first call's extra time is the compile time.
        device: Where to run (default: CPU, or the module's device).
        runs: Timed calls.
        warmup: Untimed calls before them (at least one when compiling).

    Returns:
        The :class:`BenchResult`.

    Raises:
        ArgumentError: ``size``, ``batch`` or ``runs`` below 1, or ``warmup`` below 0.

    Example:
        >>> print(srzoo.bench.bench("swinir", scale=4, size=64, dtype="bf16").summary())
    """
    for label, value, least in (("size", size, 1), ("batch", batch, 1), ("runs", runs, 1)):
        if value < least:
            raise ArgumentError(f"{label} must be >= {least}, got {value}")
    if warmup < 0:
        raise ArgumentError(f"warmup must be >= 0, got {warmup}")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    if isinstance(model, str):
        # A measurement, not a result: a precision measured to break is still timed.
        net = load(
            model,
            scale,
            weights=None,
            device=dev,
            dtype=dt,
            compile=compile,
            allow_unsafe_dtype=True,
        )
    else:
        net = model.eval()
        if dev is not None or dt is not None:
            net = net.to(device=dev, dtype=dt)
        if compile:
            raise ArgumentError("compile= applies to a named model; compile the module yourself")
    have_device, have_dtype = parameter_device_dtype(net)
    run_device = have_device or torch.device("cpu")
    run_dtype = have_dtype or torch.float32
    config = model_config(net)
    name = config.architecture if config else type(unwrap_compiled(net)).__name__
    x = torch.rand(
        batch, model_channels(net), size, size, generator=torch.Generator().manual_seed(0)
    )
    x = x.to(device=run_device, dtype=run_dtype).contiguous(memory_format=torch.channels_last)

    def call() -> None:
        net(x)
        _sync(run_device)

    compiled = unwrap_compiled(net) is not net
    times: list[float] = []
    first: list[float] = []
    with torch.inference_mode():
        if run_device.type == "cpu":
            # The first call: later ones reuse memory the C allocator kept, so they would not
            # raise the resident high-water mark (for a compiled model, compilation counts too).
            peak = _peak_memory_mib(lambda: first.append(_timed(call)), run_device)
        else:
            first.append(_timed(call))
        for _ in range(max(warmup - 1, 0)):
            call()
        for _ in range(runs):
            times.append(_timed(call))
        if run_device.type != "cpu":
            peak = _peak_memory_mib(call, run_device)
    median = statistics.median(times)
    return BenchResult(
        model=name,
        scale=model_scale(net),
        size=size,
        batch=batch,
        dtype=str(run_dtype).removeprefix("torch."),
        device=device_name(run_device),
        compiled=compiled,
        runs=runs,
        ms_per_image=median * 1000 / batch,
        input_mpix_per_s=batch * size * size / 1e6 / median,
        peak_memory_mib=peak,
        compile_s=max(first[0] - median, 0.0) if compiled else None,
    )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def precision_check(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    *,
    dtype: torch.dtype | str,
    measured_on: str = "",
    note: str = "",
) -> PrecisionVerdict:
    """Run ``model`` in ``dtype`` and in float32 on ``images`` and judge the difference.

    The PSNR takes the float32 outputs' value range as its peak (1 for a trained network, which
    answers in [0, 1]; whatever it is for random weights), over the unclamped outputs of all the
    images together. Thresholds: :data:`srzoo.registry.BROKEN_BELOW_DB` and
    :data:`srzoo.registry.DEGRADED_BELOW_DB`.

    Args:
        model: A float32 module in eval mode, on the device to measure (left unchanged: a copy
            is converted).
        images: Inputs ``(N, C, H, W)`` in [0, 1], any dtype and device.
        dtype: The reduced precision, e.g. ``torch.bfloat16`` or ``"fp16"``.
        measured_on: The processor or card (default: :func:`device_name` with torch's version).
        note: What weights and images were used.

    Returns:
        The :class:`~srzoo.registry.PrecisionVerdict`.

    Example:
        >>> precision_check(net, [torch.rand(1, 3, 48, 48)], dtype=torch.bfloat16).verdict
        'ok'
    """
    low_dtype = resolve_dtype(dtype)
    if low_dtype is None or low_dtype == torch.float32:
        raise ArgumentError(f"dtype must be a reduced precision such as bfloat16, got {dtype}")
    device, _ = parameter_device_dtype(model)
    device = device or torch.device("cpu")
    low = copy.deepcopy(unwrap_compiled(model)).to(dtype=low_dtype).eval()
    squared, count, finite = 0.0, 0, True
    lo, hi = math.inf, -math.inf
    with torch.inference_mode():
        for image in images:
            x = image.to(device=device, dtype=torch.float32)
            ref = model(x).float()
            out = low(x.to(low_dtype)).float()
            finite = finite and bool(torch.isfinite(out).all())
            lo, hi = min(lo, float(ref.min())), max(hi, float(ref.max()))
            squared += float((out - ref).double().pow(2).sum())
            count += ref.numel()
    psnr: float | None = None
    if finite:
        peak = hi - lo if hi - lo > 1e-6 else 1.0
        mse = squared / max(count, 1)
        # Capped so that identical outputs still give a number a JSON file can hold.
        psnr = 200.0 if mse == 0 else min(200.0, 10 * math.log10(peak * peak / mse))
    return PrecisionVerdict(
        dtype=str(low_dtype).removeprefix("torch."),
        device=device.type,
        psnr_db=None if psnr is None else round(psnr, 2),
        finite=finite,
        verdict=PrecisionVerdict.classify(psnr, finite),
        measured_on=measured_on or f"{device_name(device)}, torch {torch.__version__}",
        note=note,
    )
