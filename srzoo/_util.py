"""Small helpers that several layers share: progress bars, atomic file replacement, where a
module computes, the device a caller asked for, the MATLAB cubic kernel.

This module imports nothing from srzoo but its exception types, so any module may use it without
an import cycle.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ArgumentError, ArgumentTypeError

__all__ = [
    "atomic_write",
    "matlab_cubic",
    "parameter_device_dtype",
    "progress_bar",
    "resolve_device",
    "resolve_dtype",
    "show_progress",
    "unwrap_compiled",
    "write_text_atomic",
]


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a progress bar: ``progress`` when given, else whether stderr is a terminal.

    Args:
        progress: The caller's choice; ``None`` leaves it to the terminal test.

    Returns:
        ``True`` to draw a bar.

    Example:
        >>> show_progress(False)
        False
    """
    if progress is not None:
        return progress
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and bool(stream.isatty())


@contextmanager
def atomic_write(target: Path, *, suffix: str = ".tmp", mkstemp: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    Readers of ``target`` see either the old file or the complete new one, never a partial
    write. The temporary file is removed whatever happens, so a failed or interrupted write
    leaves nothing behind and keeps the old ``target``.

    Args:
        target: The file to write; its folder must exist.
        suffix: Ending of the temporary file's name (which starts with ``.<target name>.``).
        mkstemp: Create the temporary file with :func:`tempfile.mkstemp` (a unique name,
            readable by its owner only). ``False`` leaves creating it to the writer, under a
            per-process name, so the result gets the permissions the umask gives new files.

    Yields:
        The temporary path to write to.

    Raises:
        OSError: The temporary file cannot be created or renamed; nothing is left behind.

    Example:
        >>> with atomic_write(Path("config.json")) as tmp:
        ...     tmp.write_text("{}")
    """
    if mkstemp:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = target.with_name(f".{target.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers never see a partial file.

    Args:
        path: The file to write; its folder must exist.
        text: The whole new content.

    Raises:
        OSError: The file cannot be written; the old one is kept and nothing else is left.

    Example:
        >>> write_text_atomic(Path("config.json"), "{}")
    """
    with atomic_write(path, suffix=".tmp") as tmp:
        tmp.write_text(text)


class _NoBar:
    """What :func:`progress_bar` returns when no bar is drawn: every call does nothing."""

    def update(self, n: int = 1) -> None:
        del n

    def reset(self, total: int | None = None) -> None:
        del total

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def progress_bar(
    progress: bool | None, *, total: int | None, desc: str, unit: str, **options: Any
) -> Any:
    """A tqdm bar when :func:`show_progress` says so, else an object whose calls do nothing.

    tqdm is imported only when a bar is drawn, which keeps ``import srzoo`` cheap.

    Args:
        progress: The caller's choice; ``None`` draws a bar only when stderr is a terminal.
        total: Number of steps (``None``: unknown).
        desc: Text before the bar.
        unit: What one step is (``"image"``, ``"tile"``, ``"B"``).
        **options: Further tqdm options (``unit_scale``, ``leave``, ...).

    Returns:
        Something with ``update(n)``, ``reset(total)``, ``close()`` that is also a context
        manager.

    Example:
        >>> with progress_bar(None, total=3, desc="evaluate", unit="image") as bar:
        ...     bar.update(1)
    """
    if not show_progress(progress):
        return _NoBar()
    # imported only when a bar is drawn: keeps `import srzoo` fast
    from tqdm import tqdm

    options.setdefault("leave", False)
    options.setdefault("dynamic_ncols", True)
    return tqdm(total=total, desc=desc, unit=unit, **options)


def parameter_device_dtype(module: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Where a module computes: the device and dtype of its first floating-point parameter.

    Args:
        module: Any module.

    Returns:
        ``(device, dtype)``, or ``(None, None)`` for a module without floating-point parameters.

    Example:
        >>> parameter_device_dtype(nn.Conv2d(3, 3, 3))
        (device(type='cpu'), torch.float32)
    """
    for p in module.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return None, None


def matlab_cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with ``a = -0.5``, the kernel of MATLAB's ``'bicubic'``.

    PyTorch's own ``bicubic`` uses ``a = -0.75``; the SR literature's low-resolution inputs and
    the MATLAB-trained classics (SRCNN, VDSR) need this one.

    Args:
        x: Distances from the sample point, any shape and floating dtype.

    Returns:
        The kernel's value at each distance (0 beyond 2), same shape and dtype.

    Example:
        >>> matlab_cubic(torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0]))
        tensor([ 1.0000,  0.5625,  0.0000, -0.0625,  0.0000])
    """
    ax = x.abs()
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1).to(x.dtype)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)).to(x.dtype)
    return inner + outer


def unwrap_compiled(model: nn.Module) -> nn.Module:
    """The module inside a ``torch.compile`` wrapper, or ``model`` itself.

    Args:
        model: A module, compiled or not.

    Returns:
        The original module (whose attributes and state dict keys srzoo reads).

    Example:
        >>> unwrap_compiled(torch.compile(net)) is net
        True
    """
    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(inner, nn.Module) else model


def resolve_device(device: str | int | torch.device | None) -> torch.device | None:
    """Check a device argument before anything is moved there.

    Args:
        device: ``None``, a :class:`torch.device`, a string such as ``"cuda:0"``, or a GPU
            index.

    Returns:
        The :class:`torch.device` (``None`` stays ``None``: "wherever the model is").

    Raises:
        ArgumentTypeError: ``device`` is neither a string nor a device.
        ArgumentError: A malformed name, or a device this machine does not have (CUDA
            without a GPU or a CUDA build of torch, an index past the last GPU, MPS off a Mac).

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return None
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise ArgumentTypeError(
            f"device must be a string such as 'cpu' or 'cuda:0', or a torch.device; got "
            f"{type(device).__name__}"
        )
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ArgumentError(f"{device!r} is not a device name ({e}); use e.g. 'cpu', 'cuda'") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ArgumentError(
                f"device={str(device)!r} but CUDA is not available here (no GPU, or a CPU-only "
                "build of torch); use device='cpu'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ArgumentError(
                f"device={str(device)!r} but this machine has {torch.cuda.device_count()} CUDA "
                "device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ArgumentError(f"device={str(device)!r} but MPS is not available here; use 'cpu'")
    return dev


_DTYPE_NAMES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "double": torch.float64,
}


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """Check a compute-dtype argument: a floating-point ``torch.dtype`` or its name.

    Args:
        dtype: ``None`` (keep the model's), a floating :class:`torch.dtype`, or a name such as
            ``"bfloat16"`` / ``"bf16"`` / ``"float16"``.

    Returns:
        The :class:`torch.dtype`, or ``None``.

    Raises:
        ArgumentTypeError: An integer, boolean or complex dtype, or something else entirely.

    Example:
        >>> resolve_dtype("bf16")
        torch.bfloat16
    """
    if dtype is None:
        return None
    if isinstance(dtype, str):
        found = _DTYPE_NAMES.get(dtype.strip().lower().removeprefix("torch."))
        if found is None:
            raise ArgumentTypeError(
                f"dtype {dtype!r} is not a floating-point type; use one of "
                f"{', '.join(sorted(_DTYPE_NAMES))} or a torch.dtype"
            )
        return found
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ArgumentTypeError(
            f"dtype must be a floating-point torch.dtype (float32, bfloat16, float16, float64), "
            f"got {dtype!r}"
        )
    return dtype
