"""``create()`` and ``load()``: a model name becomes a ready ``torch.nn.Module``.

name -> :class:`~srzoo.registry.ModelSpec` -> module (built on the meta device when weights follow)
-> weights (converted from the upstream layout) -> device and dtype.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import IncompatibleWeightsError, WeightsError
from .registry import ModelSpec, StateDict, get_spec
from .weights import PICKLE_SUFFIXES, read_state_dict

__all__ = ["create", "load", "load_weights_into"]

WeightsArg = str | os.PathLike[str] | None


def create(name: str, scale: int | None = None, **overrides: Any) -> nn.Module:
    """Build a randomly initialised model in train mode, for training from scratch.

    Args:
        name: Registered model name, e.g. ``"rcan"``.
        scale: Upscaling factor; ``None`` means the model's default scale.
        **overrides: Constructor arguments replacing the variant's defaults
            (e.g. ``n_resgroups=2``).

    Returns:
        The module, in train mode, on the CPU in float32.

    Raises:
        UnknownModelError: ``name`` is not registered.
        UnsupportedScaleError: ``scale`` is not supported.

    Example:
        >>> net = srzoo.create("rcan", scale=4, n_resgroups=2)
        >>> net.training
        True
    """
    spec = get_spec(name)
    return spec.build(scale, **overrides)


def load(
    name: str,
    scale: int | None = None,
    *,
    weights: WeightsArg = "default",
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    strict: bool = True,
    **overrides: Any,
) -> nn.Module:
    """Build a model, fill it with weights, and return it ready for inference.

    Args:
        name: Registered model name, e.g. ``"edsr"``.
        scale: Upscaling factor; ``None`` means the model's default scale.
        weights: ``"default"`` (the registry's pretrained weights for that scale), a registry
            tag, ``None`` (random initialisation), or the path of a local checkpoint
            (``.safetensors``, ``.pth``, ``.pt``, ``.bin``) in any layout the family knows.
        device: Where to put the model (default: CPU).
        dtype: Floating-point dtype of the parameters (default: float32).
        strict: Refuse weights that do not cover every parameter exactly.
        **overrides: Constructor arguments replacing the variant's defaults.

    Returns:
        The module in eval mode, on ``device`` in ``dtype``.

    Raises:
        UnknownModelError: ``name`` is not registered.
        UnsupportedScaleError: ``scale`` is not supported.
        WeightsError: The weights cannot be found or read.
        IncompatibleWeightsError: The weights do not fit the module.

    Example:
        >>> model = srzoo.load("edsr", scale=4, weights="edsr_x4-4f62e9ef.pt")
        >>> model = srzoo.load("rcan", scale=2, weights=None, device="cuda")
    """
    spec = get_spec(name)
    s = spec.scale if scale is None else scale
    spec.check_scale(s)
    if weights is None:
        model = spec.build(s, **overrides)
    else:
        state, source = _resolve_weights(spec, s, weights)
        model = load_weights_into(spec, s, state, strict=strict, source=source, **overrides)
    model.to(device=device, dtype=dtype)
    return model.eval()


def _is_path(weights: str | os.PathLike[str]) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    text = str(weights)
    return (
        os.sep in text
        or "/" in text
        or text.endswith((".safetensors", *PICKLE_SUFFIXES))
        or Path(text).exists()
    )


def _resolve_weights(
    spec: ModelSpec, scale: int, weights: str | os.PathLike[str]
) -> tuple[StateDict, str]:
    if _is_path(weights):
        return read_state_dict(weights), str(weights)
    tag = str(weights)
    ws = spec.weights_for(scale, tag)
    if ws is None:
        have = sorted({f"x{w.scale}:{w.tag}" for w in spec.weights})
        if not spec.weights:
            detail = f"no pretrained weights are registered for {spec.name!r}"
        else:
            detail = (
                f"{spec.name!r} has no weights tagged {tag!r} at x{scale} "
                f"(registered: {', '.join(have)})"
            )
        raise WeightsError(
            f"{detail}. Pass weights=None for a randomly initialised model, or "
            "weights='path/to/checkpoint' to load a local file."
        )
    path = _fetch(ws.source)
    return read_state_dict(path), ws.source


def _fetch(source: str) -> Path:
    local = Path(source).expanduser()
    if local.is_file():
        return local
    raise WeightsError(f"cannot fetch {source}: downloading is not available in this version.")


def load_weights_into(
    spec: ModelSpec,
    scale: int,
    state: StateDict,
    *,
    strict: bool = True,
    source: str | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build ``spec`` at ``scale`` and fill it with ``state`` (any layout its converter knows).

    The module is built on the meta device and the tensors are assigned, so no time goes into a
    random initialisation that would be overwritten.

    Args:
        spec: The model's registry entry.
        scale: Upscaling factor.
        state: Tensors by name, in an upstream layout or srzoo's own.
        strict: Raise unless the tensors match the module's keys and shapes exactly.
        source: Where the tensors came from, for error messages.
        **overrides: Constructor arguments replacing the variant's defaults.

    Returns:
        The filled module (train mode, CPU).

    Raises:
        IncompatibleWeightsError: Keys or shapes do not match (with ``strict``), or nothing
            matches at all.

    Example:
        >>> net = load_weights_into(srzoo.model_info("edsr"), 4, read_state_dict(path))
    """
    with torch.device("meta"):
        model = spec.build(scale, **overrides)
    if spec.converter is not None:
        state = spec.converter(dict(state), model)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        (k, tuple(expected[k].shape), tuple(state[k].shape))
        for k in expected
        if k in state and expected[k].shape != state[k].shape
    ]
    if mismatched or (strict and (missing or unexpected)) or len(missing) == len(expected):
        raise IncompatibleWeightsError(
            spec.name, missing=missing, unexpected=unexpected, mismatched=mismatched, source=source
        )
    # Cast on the way in: a half-precision checkpoint must not leave half-precision parameters
    # in a float32 model (assign=True would adopt the checkpoint's dtype).
    typed = {
        k: v.to(expected[k].dtype) if v.is_floating_point() else v
        for k, v in state.items()
        if k in expected
    }
    model.load_state_dict(typed, strict=strict, assign=True)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        # Something the checkpoint does not hold (a non-strict load, a non-persistent buffer)
        # is still on the meta device: build a real module instead and copy into it.
        model = spec.build(scale, **overrides)
        model.load_state_dict(typed, strict=strict)
    return model
