"""ONNX export of any srzoo model, checked in onnxruntime against PyTorch.

``export_onnx`` traces the module with ``torch.onnx.export`` (the ``torch.export`` based
exporter), with the batch, height and width dynamic by default, and then runs the file in
onnxruntime at three input sizes (the traced one, a larger and a smaller one, neither a multiple
of the model's size multiple), comparing with the module's own output. A model whose graph the
exporter cannot capture raises :class:`~srzoo.errors.ExportError` naming the model and the
exporter's reason; one that exports but disagrees with PyTorch raises it too, with the
difference, so a file that was written is a file that works.

A network whose graph can only hold one input size declares it with a class attribute
``onnx_fixed_size_reason`` (a sentence saying why); ``export_onnx`` then refuses
``dynamic=True`` up front with that reason, and ``dynamic=False`` exports it at
``example_size``. RGT (whose recursion depth follows the input size) and IPT (whose patch
count does) declare it. Size-dependent pooling (SAFMN), Real-ESRGAN x2plus's padding before its
pixel-unshuffle and the MATLAB bicubic enlargement of SRCNN and VDSR are written so that the
height and width stay free in the graph, and while exporting, padding is a gather computed from
the free size and shifted-window masks are repeated per image. ATD, whose token grouping needs a
sort the exporter lacks, raises ``ExportError`` with the reason; ``docs/guide.md`` lists the
families.

onnx, onnxscript and onnxruntime are an optional extra: ``pip install "srzoo[onnx]"``.

Example:
    >>> model = srzoo.load("realesr-animevideov3")
    >>> srzoo.export_onnx(model, "animevideov3.onnx")
    PosixPath('animevideov3.onnx')
"""

from __future__ import annotations

import importlib
import io
import os
import re
import warnings
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ._util import parameter_device_dtype, unwrap_compiled
from .contract import model_channels, model_scale, size_multiple
from .errors import ArgumentError, ExportError, MissingDependencyError

__all__ = ["DEFAULT_OPSET", "check_onnx", "export_onnx"]

DEFAULT_OPSET = 18
# Largest relative difference (to the output's peak magnitude) between onnxruntime and PyTorch.
TOLERANCE = 1e-4
_EXTRA = 'pip install "srzoo[onnx]"'


def _require(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingDependencyError(
            f"ONNX export needs the {module} package, which is not installed: {_EXTRA}"
        ) from e


def _example(model: nn.Module, size: tuple[int, int], batch: int) -> torch.Tensor:
    device, dtype = parameter_device_dtype(model)
    channels = model_channels(model)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, channels, *size, generator=generator)
    return x.to(device=device or "cpu", dtype=dtype or torch.float32)


def _root_cause(error: BaseException) -> str:
    """The innermost exception of a chain, as one line without terminal colour codes."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    example_size: tuple[int, int] = (64, 64),
    check: bool = True,
) -> Path:
    """Write ``model`` as an ONNX file and check it in onnxruntime.

    Args:
        model: An srzoo model (or any module taking ``(N, C, H, W)`` images), in eval mode on
            the device and dtype it should be traced on.
        path: The ``.onnx`` file to write (written whole or not at all).
        dynamic: Leave the batch, height and width free in the graph; ``False`` fixes them to
            ``example_size`` and batch 1.
        opset: ONNX opset version.
        example_size: Height and width of the input traced (a multiple of the model's preferred
            size multiple is used as given; other sizes work too).
        check: Run the file in onnxruntime at three input sizes (one when not ``dynamic``) and
            compare with the module's output: at most 1e-4 of the output's peak magnitude.

    Returns:
        The path written.

    Raises:
        MissingDependencyError: onnx / onnxscript / onnxruntime is missing.
        ArgumentError: The model is in training mode, or the sizes are not positive.
        ExportError: The exporter cannot capture the model, the model declares that it
            cannot be exported with a free size (``onnx_fixed_size_reason``) and ``dynamic``
            is set, or onnxruntime disagrees with PyTorch.

    Example:
        >>> srzoo.export_onnx(srzoo.load("span", scale=4), "span_x4.onnx", dynamic=True)
        PosixPath('span_x4.onnx')
    """
    _require("onnx")
    _require("onnxscript")
    if min(example_size) < 1:
        raise ArgumentError(f"export_onnx: example_size must be positive, got {example_size}")
    net = unwrap_compiled(model)
    if net.training:
        raise ArgumentError(
            "export_onnx: the model is in training mode; call model.eval() first (batch norm "
            "and re-parameterised branches export their inference form)"
        )
    name = type(net).__name__
    fixed_reason = getattr(net, "onnx_fixed_size_reason", None)
    if dynamic and isinstance(fixed_reason, str):
        raise ExportError(
            f"{name} cannot be exported with a free height and width: {fixed_reason}; pass "
            f"dynamic=False to export it for one input size (example_size={example_size})"
        )
    x = _example(net, example_size, 2 if dynamic else 1)
    dynamic_shapes: Any = None
    if dynamic:
        dims = torch.export.Dim.AUTO
        dynamic_shapes = ({0: dims, 2: dims, 3: dims},)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        # The exporter reports its progress on stdout and warns about internals users cannot
        # act on; its errors are what matter, and they are raised.
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                net,
                (x,),
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                input_names=["image"],
                output_names=["upscaled"],
                external_data=False,
            )
            if program is None:
                raise ExportError(f"torch.onnx.export returned no program for {name}")
            program.save(str(partial))
    except ExportError:
        raise
    except Exception as e:  # the exporter raises many types; the message is what helps
        partial.unlink(missing_ok=True)
        raise ExportError(
            f"{name} cannot be exported to ONNX by torch {torch.__version__}: {_root_cause(e)}"
        ) from e
    try:
        if check:
            sizes = [example_size]
            if dynamic:
                multiple = size_multiple(net)
                # One more than a multiple of the size multiple: the padding paths run too.
                sizes.append((example_size[0] + multiple + 1, example_size[1] + 2 * multiple + 1))
                # And a smaller one: a graph specialised on the traced size (pooling windows,
                # padding branches) often still agrees above it but not below.
                sizes.append((max(1, example_size[0] // 3), max(1, example_size[1] // 2 + 1)))
            check_onnx(net, partial, sizes=sizes, batch=x.shape[0])
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def check_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    sizes: list[tuple[int, int]],
    batch: int = 1,
) -> float:
    """Run an exported file in onnxruntime and compare it with the module.

    Args:
        model: The module the file was exported from.
        path: The ONNX file.
        sizes: Input heights and widths to compare at.
        batch: Batch size of the inputs.

    Returns:
        The largest difference found, relative to the output's peak magnitude.

    Raises:
        MissingDependencyError: onnxruntime is missing.
        ExportError: onnxruntime cannot run the file at a size, or its output has the wrong
            shape or differs by more than 1e-4 of the output's peak magnitude.
    """
    ort: Any = _require("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    net = unwrap_compiled(model)
    scale = model_scale(net)
    worst = 0.0
    for size in sizes:
        x = _example(net, size, batch)
        with torch.inference_mode():
            expected = net(x).float().cpu()
        try:
            got = torch.from_numpy(session.run(None, {input_name: x.cpu().numpy()})[0])
        except Exception as e:  # onnxruntime's own error types
            raise ExportError(
                f"the ONNX file of {type(net).__name__} fails in onnxruntime at "
                f"{size[0]}x{size[1]} (the traced graph does not hold for that size): "
                f"{_root_cause(e)}"
            ) from e
        if scale is not None and tuple(got.shape[-2:]) != (size[0] * scale, size[1] * scale):
            raise ExportError(
                f"the ONNX file of {type(net).__name__} gives shape {tuple(got.shape)} for a "
                f"{size[0]}x{size[1]} input, expected x{scale}"
            )
        peak = max(1.0, expected.abs().max().item())
        diff = (got.float() - expected).abs().max().item() / peak
        worst = max(worst, diff)
        if not diff <= TOLERANCE:
            raise ExportError(
                f"the ONNX file of {type(net).__name__} differs from PyTorch by {diff:.2e} "
                f"(relative) at {size[0]}x{size[1]}, above {TOLERANCE:g}"
            )
    return worst
