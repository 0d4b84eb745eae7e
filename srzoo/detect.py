"""Detection: a checkpoint's keys and shapes -> the registered model, its arguments and scale.

Community checkpoints are bare ``.pth`` / ``.safetensors`` files without a config. Every family
registers a detector next to its module (``srzoo/archs/<family>.py``, through
:func:`srzoo.registry.register_detector`) that reads only key names and tensor shapes;
:func:`detect` runs them all and keeps the best match.

The specificity rule: when several families recognise the same tensors, the match whose
layout signature (the keys its detector declares every file of that layout holds) has the most
keys present wins, since it accounts for more of the file; a family whose keys are a superset
of another's therefore wins over it. Equal counts fall to the detector's ``priority``; a tie
that remains is an error naming both, never a silent guess.

Reading a file for detection materialises no tensor where the format allows: a safetensors
header gives every shape, and zip pickles are opened memory-mapped, so only the pickle's small
index is read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .errors import ArgumentError, ArgumentTypeError, WeightsError
from .registry import (
    Detected,
    DetectorSpec,
    ModelSpec,
    Shapes,
    detectors,
    find_weights,
    get_spec,
)
from .weights import file_sha256
from .weights.files import PREFIXES, WRAPPER_KEYS, checkpoint_format, read_state_dict

__all__ = [
    "Detected",
    "at_scale_of",
    "detect",
    "detect_file",
    "read_shapes",
    "shapes_of",
    "spec_for",
]

PathArg = str | os.PathLike[str]


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    return name


def shapes_of(state: Mapping[str, Any], *, source: str = "the state dict") -> Shapes:
    """The keys and shapes of a state dict, unwrapped as :func:`srzoo.load` unwraps files.

    Wrappers (``params_ema``, ``params``, ``state_dict``, ``model``, ``net``, ...) are opened
    and prefixes (``module.``, ``_orig_mod.``, ``netG.``) removed.

    Args:
        state: Tensors by name (or ``torch.Size`` / tuples of ints, shapes alone), possibly
            wrapped.
        source: Name used in error messages.

    Returns:
        The read-only view detectors take.

    Raises:
        ArgumentTypeError: ``state`` is not a mapping, or holds a value that is neither a
            tensor nor a shape.
        ArgumentError: It holds nothing.

    Example:
        >>> shapes_of({"params": {"module.conv.weight": torch.zeros(8, 3, 3, 3)}})["conv.weight"]
        (8, 3, 3, 3)
    """
    obj: Any = state
    while isinstance(obj, Mapping):
        inner = next(
            (obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None
        )
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise ArgumentTypeError(
            f"{source} is a {type(obj).__name__}, not a state dict (tensors by name). Pass "
            "model.state_dict(), the object torch.load returned, or a file's path."
        )
    shapes: dict[str, tuple[int, ...]] = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            shape: tuple[int, ...] = tuple(value.shape)
        elif isinstance(value, tuple) and all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
        ):
            shape = tuple(value)  # torch.Size is a tuple of ints too
        else:
            raise ArgumentTypeError(
                f"{source} holds a {type(value).__name__} at {str(key)!r}, not a tensor: a state "
                "dict maps names to tensors. Pass the tensors alone (model.state_dict())."
            )
        shapes[_strip(str(key))] = shape
    if not shapes:
        raise ArgumentError(
            f"{source} is empty: there is nothing to detect. Pass a checkpoint's tensors."
        )
    return Shapes(shapes)


def read_shapes(path: PathArg) -> Shapes:
    """The keys and shapes of a checkpoint file, without reading its tensors where possible.

    Safetensors files are read from their header alone; zip pickles (``torch.save``'s format)
    are opened memory-mapped with ``weights_only=True``, so no tensor data is read; legacy
    pickles are loaded whole (with ``weights_only=True``, they cannot run code).

    Args:
        path: A checkpoint file, whatever its name ends in.

    Returns:
        The unwrapped keys and shapes.

    Raises:
        WeightsError: The file is missing, unreadable, not a checkpoint, or holds no tensors.

    Example:
        >>> read_shapes("4x-UltraSharp.pth")["conv_first.weight"]
        (64, 3, 3, 3)
    """
    p = Path(path).expanduser()
    if checkpoint_format(p) != "safetensors":
        # read_state_dict maps zip pickles into memory: the tensors' bytes stay on disk.
        state = read_state_dict(p)
        return Shapes({k: tuple(v.shape) for k, v in state.items()})
    from safetensors import SafetensorError, safe_open  # imported here: keeps import srzoo fast

    try:
        with safe_open(str(p), framework="pt") as f:
            shapes = {_strip(k): tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(
            f"{p} is not a readable safetensors file ({e}). It may be truncated or corrupt: "
            "delete it and download it again."
        ) from e
    if not shapes:
        raise WeightsError(f"{p} contains no tensors; it is not a model checkpoint.")
    return Shapes(shapes)


def _signature_present(spec: DetectorSpec, layout: str, shapes: Shapes) -> int:
    return sum(k in shapes for k in spec.layouts.get(layout, ()))


def _no_match(shapes: Shapes, failures: Mapping[str, str], source: str) -> WeightsError:
    # Rank every family by the share of its best layout's signature keys that are present.
    ranked: list[tuple[float, int, str, str, list[str]]] = []
    for spec in detectors():
        best: tuple[float, int, str, list[str]] | None = None
        for layout, keys in spec.layouts.items():
            missed = [k for k in keys if k not in shapes]
            share = 1 - len(missed) / len(keys)
            if best is None or (share, len(keys)) > (best[0], best[1]):
                best = (share, len(keys), layout, missed)
        if best is not None and best[0] > 0:
            ranked.append((best[0], best[1], spec.family, best[2], best[3]))
    ranked.sort(key=lambda r: (-r[0], -r[1], r[2]))
    sample = ", ".join(list(shapes)[:4])
    parts = []
    for _, _, family, layout, missed in ranked[:3]:
        if family in failures:
            why = f"its detector failed ({failures[family]})"
        elif missed:
            shown = ", ".join(missed[:4]) + (
                f" and {len(missed) - 4} more" if len(missed) > 4 else ""
            )
            why = f"misses {shown}"
        else:
            why = "has every key it needs, but the shapes fit no configuration it builds"
        parts.append(f"{family} ({layout} layout) {why}")
    closest = (
        f" Closest: {'; '.join(parts)}."
        if parts
        else " No registered family shares any of its keys."
    )
    return WeightsError(
        f"{source} matches no architecture srzoo knows ({len(shapes)} tensors, e.g. {sample})."
        f"{closest} If it is a complete checkpoint of a registered model, load it with "
        "srzoo.load(name, scale=..., weights=path)."
    )


def _match(shapes: Shapes, source: str) -> Detected:
    found: list[tuple[int, int, DetectorSpec, Detected]] = []
    failures: dict[str, str] = {}
    for spec in detectors():
        try:
            result = spec.detect(shapes)
        except Exception as e:  # a detector's bug or an unforeseen shape: no match, said why
            failures[spec.family] = f"{type(e).__name__}: {e}"
            continue
        if result is None:
            continue
        specificity = _signature_present(spec, result.layout, shapes)
        found.append((specificity, spec.priority, spec, replace(result, family=spec.family)))
    if not found:
        raise _no_match(shapes, failures, source)
    found.sort(key=lambda f: (f[0], f[1]), reverse=True)
    if len(found) > 1 and found[0][:2] == found[1][:2]:
        a, b = found[0][3], found[1][3]
        raise WeightsError(
            f"{source} fits two architectures equally well: {a.family} ({a.name!r} x{a.scale}) "
            f"and {b.family} ({b.name!r} x{b.scale}). Load it by name with "
            "srzoo.load(name, scale=..., weights=path)."
        )
    return found[0][3]


def detect(state: Mapping[str, Any] | PathArg, *, source: str | None = None) -> Detected:
    """What a checkpoint is: family, registered model, constructor arguments, scale, layout.

    Only key names and tensor shapes are read, and no module is built. Values that shapes
    cannot tell (a mean shift's range, the scale of networks whose tensors are the same at
    every scale) are the defaults each family's detector documents; ``Detected.scales`` then
    lists the scales the tensors fit equally.

    Args:
        state: A state dict (tensors by name, possibly wrapped in ``params_ema`` /
            ``params`` / ``state_dict`` / ``model`` / ``net``, with ``module.`` /
            ``_orig_mod.`` / ``netG.`` prefixes), or the path of a checkpoint file (read as
            :func:`detect_file` reads it, without the registry look-up).
        source: Name of the weights in error messages.

    Returns:
        The :class:`~srzoo.registry.Detected` of the best match (see the specificity rule in
        this module's documentation).

    Raises:
        WeightsError: No family recognises the tensors (the message names the closest
            families and the keys each missed), or two fit equally well.
        ArgumentError: The state dict is empty.
        ArgumentTypeError: It is not a state dict, or holds a value that is not a tensor.

    Example:
        >>> srzoo.detect(torch.load("4x-UltraSharp.pth", weights_only=True))
        Detected(name='esrgan', scale=4, model_args={...}, layout='old-esrgan', ...)
    """
    if isinstance(state, (str, os.PathLike)):
        return _match(read_shapes(state), source or str(state))
    return _match(shapes_of(state, source=source or "the state dict"), source or "the state dict")


def detect_file(path: PathArg, *, scale: int | None = None, registered: bool = True) -> Detected:
    """What a checkpoint file is, the registry first: a registered file is that checkpoint.

    With ``registered``, the file's sha256 (computed once per process while the file is
    unchanged) is looked up among the registered checkpoints; a match gives that model's name,
    scale and registered arguments, and ``Detected.weights`` holds the facts the weights alone
    cannot tell (input range, training data, licence, tag). Any other file is detected from its
    keys and shapes (see :func:`detect`).

    Args:
        path: A checkpoint file.
        scale: For a file that serves several scales (a multi-scale checkpoint, or a network
            whose scale the tensors do not fix), the one wanted; ``None`` for the default.
        registered: Look the file up in the registry by its sha256.

    Returns:
        The :class:`~srzoo.registry.Detected`, with ``weights`` set for a registered file.

    Raises:
        WeightsError: The file cannot be read or matches nothing, or it cannot serve ``scale``.

    Example:
        >>> srzoo.detect.detect_file("IMDN_x4.pth").weights.license
        'unknown'
    """
    p = Path(path).expanduser()
    shapes = read_shapes(p)
    if registered:
        matches = find_weights(file_sha256(p))
        if matches:
            at_scale = [m for m in matches if scale is None or m[1].scale == scale]
            if not at_scale:
                served = sorted({w.scale for _, w in matches})
                raise WeightsError(
                    f"{p} is the registered checkpoint of {matches[0][0].name!r} for "
                    f"x{', x'.join(map(str, served))}, not x{scale}."
                )
            spec, ws = next(((m, w) for m, w in at_scale if w.scale == m.scale), at_scale[0])
            try:
                layout = _match(shapes, str(p)).layout
            except WeightsError:
                layout = "registered"
            others = tuple(sorted({w.scale for m, w in matches if m.name == spec.name}))
            return Detected(
                name=spec.name,
                scale=ws.scale,
                model_args=dict(spec.defaults),
                layout=layout,
                family=spec.family,
                scales=others if len(others) > 1 else (),
                weights=ws,
            )
    found = _match(shapes, str(p))
    return at_scale_of(found, scale, str(p))


def at_scale_of(found: Detected, scale: int | None, source: str) -> Detected:
    """``found`` at the scale asked for, when its tensors serve it.

    Args:
        found: A detection result.
        scale: The scale wanted (``None``: the detected one).
        source: Name of the weights in error messages.

    Returns:
        ``found`` with ``scale`` replaced.

    Raises:
        WeightsError: The tensors do not serve ``scale``.

    Example:
        >>> at_scale_of(detect(carn_m_state), 2, "carn_m.pth").scale
        2
    """
    if scale is None or scale == found.scale:
        return found
    if scale in found.scales:
        return replace(found, scale=scale)
    served = found.scales or (found.scale,)
    raise WeightsError(
        f"{source} holds a {found.family} network for x{', x'.join(map(str, served))} "
        f"(read from its shapes), not x{scale}. Leave the scale out, or pass one of those."
    )


def spec_for(found: Detected) -> ModelSpec:
    """The registered model that builds ``found``, accepting its scale.

    Community checkpoints come at scales the registered variants do not list (x1 and x8
    RRDBNets, x1 Compact networks); the architecture builds them, so the spec is widened to the
    detected scale for this load alone (the registry is unchanged).

    Args:
        found: A detection result.

    Returns:
        The :class:`~srzoo.registry.ModelSpec` to build with.

    Example:
        >>> spec_for(detect("1x-model.pth")).scales
        (2, 4, 1)
    """
    spec = get_spec(found.name)
    if found.scale in spec.scales:
        return spec
    return replace(spec, scales=(*spec.scales, found.scale))
