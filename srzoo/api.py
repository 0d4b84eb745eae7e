"""``create()`` and ``load()``: a model name becomes a ready ``torch.nn.Module``.

name -> :class:`~srzoo.registry.ModelSpec` -> module (built on the meta device when weights follow)
-> weights (converted from the upstream layout) -> device and dtype.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ._util import parameter_device_dtype, resolve_device, resolve_dtype
from .contract import Fusable, ModelConfig, model_config, set_model_config, unwrap_compiled
from .detect import at_scale_of, detect, spec_for
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    IncompatibleWeightsError,
    UnsupportedScaleError,
    WeightsError,
)
from .hub import resolve_pretrained
from .registry import (
    ModelSpec,
    StateDict,
    WeightSpec,
    as_scale,
    blend_options,
    find_weights,
    get_spec,
)
from .weights import (
    PICKLE_SUFFIXES,
    file_sha256,
    load_registered_weights,
    read_state_dict,
    registered_weights,
    unwrap_state_dict,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_WEIGHTS",
    "CompileArg",
    "LoadReport",
    "check_precision",
    "compile_model",
    "create",
    "load",
    "load_default",
    "load_file",
    "load_weights",
    "load_weights_into",
]

#: The registered model behind srzoo's offline default (``srzoo upscale`` without ``-m``,
#: ``srzoo.upscale(image, scale=s)`` without a model).
DEFAULT_MODEL: Final = "safmn"
#: Tag of srzoo's own weights for :data:`DEFAULT_MODEL`, shipped inside the package.
DEFAULT_WEIGHTS: Final = "srzoo"

WeightsArg = str | os.PathLike[str] | None

CompileArg = bool | str | Mapping[str, Any]
"""``compile=`` of :func:`load`: ``False``, ``True`` (srzoo's settings), a ``torch.compile``
mode such as ``"max-autotune"``, or a dict of ``torch.compile`` keyword arguments."""

_REDUCED = (torch.float16, torch.bfloat16)


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
    s = spec.resolve_scale(scale)
    model = spec.build(s, **overrides)
    _remember(model, spec, s, overrides)
    return model


def load(
    name: str,
    scale: int | None = None,
    *,
    weights: WeightsArg = "default",
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    strict: bool = True,
    progress: bool | None = None,
    channels_last: bool = True,
    fuse: bool = True,
    from_scale: int | None = None,
    compile: CompileArg = False,
    allow_unsafe_dtype: bool = False,
    **overrides: Any,
) -> nn.Module:
    """Build a model, fill it with weights, and return it ready for inference.

    Args:
        name: Registered model name, e.g. ``"edsr"``; or ``"local-dir:<folder>"`` /
            ``"hf-hub:owner/repo[@revision]"`` for a folder written by
            :func:`srzoo.save_pretrained` (its config gives the architecture and scale).
        scale: Upscaling factor; ``None`` means the model's default scale.
        weights: ``"default"`` (the registry's pretrained weights for that scale), a registry
            tag, ``None`` (random initialisation), or the path of a local checkpoint
            (``.safetensors``, ``.pth``, ``.pt``, ``.bin``) in any layout the family knows.
        device: Where to put the model (default: CPU).
        dtype: Floating-point dtype of the parameters, a ``torch.dtype`` or its name such as
            ``"bf16"`` (default: float32).
        strict: Refuse weights that do not cover every parameter exactly.
        progress: Show a progress bar while downloading; ``None`` shows one only on a terminal.
        channels_last: Store convolution weights in channels-last memory format, which makes
            convolutions markedly faster on CPUs (oneDNN) and for half precision on GPUs.
            Outputs are then channels-last tensors too (same shape and values; call
            ``.contiguous()`` where plain NCHW strides are needed).
        fuse: Fold re-parameterisable training branches into plain convolutions for
            inference (networks with a ``fuse()`` method, such as SPAN). Outputs are unchanged
            (to 1e-5); ``model.train()`` returns to the training branches.
        **overrides: Constructor arguments replacing the variant's defaults, and any load
            option the model's registered weights declare (a
            :class:`~srzoo.registry.WeightBlend`, such as ``denoise_strength=0.5`` for
            ``"realesr-general-x4v3"``: a number in [0, 1] that interpolates the registered
            weights with another registered checkpoint, both fetched and verified).
        from_scale: Load ``weights`` of this other scale into a model of ``scale``, as the
            EDSR paper initialised its x3 and x4 networks from the x2 one: every tensor is
            loaded except those whose shapes depend on the scale (the upsampler, found by
            building the network at both scales on the meta device), which keep their fresh
            initialisation. The :class:`LoadReport` is at ``model.srzoo_load_report``.
        compile: Return ``torch.compile(model)`` with srzoo's settings (:func:`compile_model`):
            ``True``, a mode such as ``"max-autotune"``, or a dict of ``torch.compile``
            arguments. Compilation is lazy: the first call pays for it. The config stays
            reachable (:func:`srzoo.model_config`, :func:`srzoo.save_pretrained`, ``upscale``).
        allow_unsafe_dtype: Load in a ``dtype`` this model is measured to break in
            (``srzoo.model_info(name).precision``) instead of refusing.

    Returns:
        The module in eval mode, on ``device`` in ``dtype``.

    Raises:
        UnknownModelError: ``name`` is not registered.
        UnsupportedScaleError: ``scale`` is not supported.
        ArgumentError: A blend option out of [0, 1], on a model or weights without it, or
            with weights it cannot apply to (``None``, a local file, a saved folder); a
            ``dtype`` measured to break this model (without ``allow_unsafe_dtype``).
        WeightsError: The weights cannot be found or read.
        IncompatibleWeightsError: The weights do not fit the module.

    Example:
        >>> model = srzoo.load("swinir", scale=4, compile=True)
        >>> model = srzoo.load("edsr", scale=4, weights="edsr_x4-4f62e9ef.pt")
        >>> model = srzoo.load("realesr-general-x4v3", denoise_strength=0.5)
        >>> model = srzoo.load("rcan", scale=2, weights=None, device="cuda")
        >>> model = srzoo.load("hf-hub:someone/my-edsr@v1")
        >>> model = srzoo.load("edsr-baseline", scale=3, from_scale=2)  # fresh x3 upsampler
    """
    resolve_device(device)  # a device this machine lacks fails before anything is read
    dtype = resolve_dtype(dtype)
    known = blend_options()
    blend = {k: overrides.pop(k) for k in list(overrides) if k in known}
    if name.startswith(("local-dir:", "hf-hub:")):
        if blend:
            option = next(iter(blend))
            raise ArgumentError(
                f"{option}= applies to registered weights, not to the saved folder {name}: its "
                "weights are loaded as saved. Load the registered model by name to blend."
            )
        if from_scale is not None:
            raise ArgumentError(
                f"from_scale= applies to registered names, not to the saved folder {name}. "
                "Pass the architecture's name and the folder's model.safetensors as weights=."
            )
        model = _load_pretrained_folder(name, scale, weights, strict, progress, overrides)
        return _finish(model, device, dtype, channels_last, fuse, compile, allow_unsafe_dtype)
    spec = get_spec(name)
    s = spec.resolve_scale(scale)
    if from_scale is not None:
        if blend:
            raise ArgumentError(
                "from_scale= and a weight-blending option cannot be combined; pass one of them."
            )
        model = _load_from_scale(spec, s, from_scale, weights, strict, progress, overrides)
        return _finish(model, device, dtype, channels_last, fuse, compile, allow_unsafe_dtype)
    if blend:
        state, source = _blended_weights(spec, s, weights, blend, known, progress=progress)
    elif weights is None:
        model = spec.build(s, **overrides)
        _remember(model, spec, s, overrides)
        return _finish(model, device, dtype, channels_last, fuse, compile, allow_unsafe_dtype)
    else:
        state, source = _resolve_weights(spec, s, weights, progress=progress)
    model = load_weights_into(
        spec,
        s,
        state,
        strict=strict,
        source=source,
        dtype=dtype,
        channels_last=channels_last,
        **overrides,
    )
    return _finish(model, device, None, False, fuse, compile, allow_unsafe_dtype)


def load_file(
    path: str | os.PathLike[str],
    scale: int | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    strict: bool = True,
    channels_last: bool = True,
    fuse: bool = True,
    compile: CompileArg = False,
    allow_unsafe_dtype: bool = False,
) -> nn.Module:
    """Load any checkpoint file srzoo can read, without naming its architecture.

    A file whose sha256 is a registered checkpoint is that checkpoint: it loads as
    ``load(name, scale, weights=path)`` would, with the facts the registry holds for it. Any
    other file is read once, recognised from its keys and shapes (:func:`srzoo.detect`), built
    on the meta device with the detected arguments and filled (through the family's converter
    where the layout needs one). The module records its configuration as :func:`load` does, so
    :func:`srzoo.save_pretrained` works on it.

    Args:
        path: A ``.pth`` / ``.pt`` / ``.safetensors`` (or any other name) checkpoint.
        scale: For a file that serves several scales (a multi-scale CARN or MDSR file; FSRCNN,
            SRCNN, VDSR, whose tensors do not fix the scale), the one wanted; ``None`` for the
            detected or default one. A scale the tensors cannot serve is an error.
        device: Where to put the model (default: CPU).
        dtype: Floating-point dtype of the parameters (default: float32).
        strict: Refuse weights that do not cover every parameter exactly.
        channels_last: As for :func:`load`.
        fuse: As for :func:`load`.
        compile: As for :func:`load`.
        allow_unsafe_dtype: As for :func:`load`.

    Returns:
        The module in eval mode, on ``device`` in ``dtype``.

    Raises:
        ArgumentError: A ``dtype`` measured to break the detected model (without
            ``allow_unsafe_dtype``).
        WeightsError: The file cannot be read, matches no known architecture (the message
            names the closest families and the keys each missed), or cannot serve ``scale``.
        IncompatibleWeightsError: The tensors were recognised but do not all fit (a missing
            or mis-shaped tensor).

    Example:
        >>> model = srzoo.load_file("4x-UltraSharp.pth")  # RRDBNet x4, eval mode
        >>> model = srzoo.load_file("carn_m.pth", scale=2)
    """
    resolve_device(device)
    dtype = resolve_dtype(dtype)
    p = Path(path).expanduser()
    s = None if scale is None else as_scale(scale)
    state = read_state_dict(p)  # names a missing, unreadable or non-checkpoint file
    matches = find_weights(file_sha256(p))
    if matches:
        at = [(m, w) for m, w in matches if s is None or w.scale == s]
        if not at:
            served = ", ".join(f"x{w.scale}" for _, w in matches)
            raise WeightsError(
                f"{p} is the registered checkpoint of {matches[0][0].name!r} for {served}, "
                f"not x{s}. Leave the scale out, or pass one of those."
            )
        spec, ws = next(((m, w) for m, w in at if w.scale == m.scale), at[0])
        model = load_weights_into(
            spec,
            ws.scale,
            state,
            strict=strict,
            source=str(p),
            dtype=dtype,
            channels_last=channels_last,
        )
        return _finish(model, device, None, False, fuse, compile, allow_unsafe_dtype)
    found = at_scale_of(detect(state, source=str(p)), s, str(p))
    model = load_weights_into(
        spec_for(found),
        found.scale,
        state,
        strict=strict,
        source=str(p),
        dtype=dtype,
        channels_last=channels_last,
        **found.model_args,
    )
    return _finish(model, device, None, False, fuse, compile, allow_unsafe_dtype)


def load_default(
    scale: int,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    channels_last: bool = True,
) -> nn.Module:
    """srzoo's own default model for ``scale``, from weights shipped inside the package.

    Needs no network and no cache: ``load(DEFAULT_MODEL, scale, weights=DEFAULT_WEIGHTS)``.
    The weights are srzoo's own (MIT), trained on BSD100 and Sun-Hays80; their Set14 scores are
    in ``srzoo.model_info(DEFAULT_MODEL).weights_for(scale, DEFAULT_WEIGHTS).metrics``.

    Args:
        scale: Upscaling factor: 2, 3 or 4.
        device: Where to put the model (default: CPU).
        dtype: Floating-point dtype of the parameters (default: float32).
        channels_last: As for :func:`load`.

    Returns:
        The module in eval mode.

    Raises:
        UnsupportedScaleError: No default model exists for ``scale``.

    Example:
        >>> model = srzoo.load_default(4)
    """
    spec = get_spec(DEFAULT_MODEL)
    scales = tuple(sorted(w.scale for w in spec.weights if w.tag == DEFAULT_WEIGHTS))
    s = as_scale(scale)
    if s not in scales:
        raise UnsupportedScaleError(DEFAULT_MODEL, s, scales, what="srzoo's default weights")
    return load(
        DEFAULT_MODEL,
        s,
        weights=DEFAULT_WEIGHTS,
        device=device,
        dtype=dtype,
        channels_last=channels_last,
    )


def _finish(
    model: nn.Module,
    device: str | torch.device | None,
    dtype: torch.dtype | None,
    channels_last: bool,
    fuse: bool,
    compile: CompileArg = False,
    allow_unsafe_dtype: bool = False,
) -> nn.Module:
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    if not allow_unsafe_dtype:
        check_precision(model)
    if channels_last:
        _to_channels_last(model)
    model.eval()
    if fuse and isinstance(model, Fusable):
        # Last, so that the fused kernels are computed in the final device and dtype.
        model.fuse()
    return compile_model(model, compile)


def compile_model(model: nn.Module, compile: CompileArg = True) -> nn.Module:
    """``torch.compile`` with srzoo's settings; what ``load(..., compile=...)`` returns.

    Settings: ``fullgraph=True`` (every family compiles without a graph break, so a break is a
    bug to see, not a silent slowdown) and ``dynamic=None``: the first input shape gets static
    kernels; a second size marks the dimensions that changed as dynamic, so further sizes reuse
    that graph instead of compiling again. :func:`srzoo.upscale` pads every tile to the tile
    size for compiled models, so one tile size runs one graph.

    Args:
        model: The module to wrap (its config, scale and state dict stay reachable through
            the wrapper's ``_orig_mod``, which srzoo reads).
        compile: ``False`` (return ``model``), ``True``, a ``torch.compile`` mode (``"default"``,
            ``"reduce-overhead"``, ``"max-autotune"``, ...) or a dict of ``torch.compile``
            arguments that replace srzoo's (``{"backend": "eager"}``, ``{"dynamic": True}``).

    Returns:
        The compiled module (compilation happens on its first call), or ``model``.

    Raises:
        ArgumentTypeError: ``compile`` is none of these.

    Example:
        >>> fast = compile_model(srzoo.load("swinir"), "max-autotune")
    """
    if compile is False:
        return model
    options: dict[str, Any] = {"fullgraph": True, "dynamic": None}
    if isinstance(compile, str):
        options["mode"] = compile
    elif isinstance(compile, Mapping):
        options.update(compile)
    elif compile is not True:
        raise ArgumentTypeError(
            "compile must be True, False, a torch.compile mode such as 'max-autotune' or a "
            f"dict of torch.compile arguments, got {type(compile).__name__}"
        )
    compiled: nn.Module = torch.compile(model, **options)  # type: ignore[assignment]
    return compiled


def check_precision(model: nn.Module) -> None:
    """Refuse a model held in a reduced precision it is measured to break in.

    Args:
        model: A loaded module; its dtype, device and registered name are read from it.

    Raises:
        ArgumentError: Its registry entry holds a ``"broken"`` verdict for its dtype on its
            device type (:attr:`srzoo.registry.ModelSpec.precision`).

    Example:
        >>> check_precision(srzoo.load("edsr", weights=None, dtype="bf16"))
    """
    device, dtype = parameter_device_dtype(model)
    config = model_config(model)
    if dtype not in _REDUCED or device is None or config is None:
        return
    verdict = get_spec(config.architecture).precision_verdict(dtype, device)
    if verdict is None or verdict.verdict != "broken":
        return
    measured = (
        "non-finite output" if not verdict.finite else f"PSNR {verdict.psnr_db:.1f} dB vs float32"
    )
    raise ArgumentError(
        f"{config.architecture!r} is measured broken in {verdict.dtype} on {verdict.device} "
        f"({measured}, {verdict.measured_on}); load it in float32, or pass "
        "allow_unsafe_dtype=True to load it anyway."
    )


def _is_path(weights: str | os.PathLike[str]) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    text = str(weights)
    return (
        os.sep in text
        or "/" in text
        or text.endswith((".safetensors", *PICKLE_SUFFIXES))
        or Path(text).is_file()
    )


_INIT_FUNCTIONS = frozenset(
    fn
    for name in dir(nn.init)
    if name.endswith("_") and not name.startswith("_") and callable(fn := getattr(nn.init, name))
)


class _SkipInitOnMeta(TorchFunctionMode):
    """Skip ``torch.nn.init`` calls on meta tensors while a module is built for loading.

    Random initialisation of meta tensors computes nothing, yet it costs about half the build
    time of deep models. ``nn.init`` functions dispatch through ``__torch_function__``, so a
    function mode (thread-local, like the ``torch.device`` context it runs beside) can return the
    meta tensor as it is; real tensors are initialised as usual.
    """

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _INIT_FUNCTIONS:
            tensor = args[0] if args else kwargs.get("tensor")
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


def _remember(
    model: nn.Module,
    spec: ModelSpec,
    scale: int,
    overrides: dict[str, Any],
    *,
    weights: str | None = None,
) -> None:
    args = {**spec.defaults, **overrides}
    set_model_config(model, ModelConfig(spec.name, scale, args, weights=weights))


def _load_pretrained_folder(
    reference: str,
    scale: int | None,
    weights: WeightsArg,
    strict: bool,
    progress: bool | None,
    overrides: dict[str, Any],
) -> nn.Module:
    folder = resolve_pretrained(reference, progress=progress)
    if scale is not None and as_scale(scale) != folder.scale:
        raise WeightsError(
            f"{reference} holds a x{folder.scale} model, not x{scale}. Leave scale out, or pass "
            f"scale={folder.scale}."
        )
    spec = get_spec(folder.architecture)
    spec.check_scale(folder.scale)
    args = {**folder.model_args, **overrides}
    if weights is None:
        model = spec.build(folder.scale, **args)
        _remember(model, spec, folder.scale, args)
        return model
    if weights == "default":
        state, source = read_state_dict(folder.weights), reference
    elif _is_path(weights):
        state, source = read_state_dict(weights), str(weights)
    else:
        raise WeightsError(
            f"weights={weights!r} has no meaning for {reference}: pass 'default' (its own "
            "weights), None (random initialisation) or the path of a checkpoint."
        )
    return load_weights_into(spec, folder.scale, state, strict=strict, source=source, **args)


def _resolve_weights(
    spec: ModelSpec,
    scale: int,
    weights: str | os.PathLike[str],
    *,
    progress: bool | None = None,
) -> tuple[StateDict, str]:
    is_tag = isinstance(weights, str) and any(w.tag == weights for w in spec.weights)
    if not is_tag and _is_path(weights):
        _check_not_another_checkpoint(spec, scale, Path(weights).expanduser())
        return read_state_dict(weights), str(weights)
    ws = registered_weights(
        spec,
        scale,
        str(weights),
        advice=(
            ". Pass weights=None for a randomly initialised model, or "
            "weights='path/to/checkpoint' to load a local file."
        ),
    )
    return load_registered_weights(ws, model=spec.name, progress=progress), ws.source


def _blended_weights(
    spec: ModelSpec,
    scale: int,
    weights: WeightsArg,
    blend: dict[str, Any],
    known: Mapping[str, list[str]],
    *,
    progress: bool | None,
) -> tuple[StateDict, str]:
    """The registered weights interpolated with another registered checkpoint, as a load
    option (:class:`~srzoo.registry.WeightBlend`) asks; the source string records the option."""
    option, value = next(iter(blend.items()))
    if len(blend) > 1:
        raise ArgumentError(
            f"pass one weight-blending option at a time, got {', '.join(sorted(blend))}"
        )
    declared = [w for w in spec.weights if w.scale == scale and w.blend is not None]
    if not any(w.blend is not None and w.blend.option == option for w in declared):
        owners = ", ".join(repr(n) for n in known[option])
        raise ArgumentError(
            f"{spec.name!r} at x{scale} has no {option}= option (it belongs to {owners}); "
            f"leave it out, or load one of those models."
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(
            f"{option} must be a number in [0, 1], got {value!r} ({type(value).__name__})"
        )
    strength = float(value)
    if not (math.isfinite(strength) and 0.0 <= strength <= 1.0):
        raise ArgumentError(f"{option} must be in [0, 1], got {value!r}")
    if weights is None or not isinstance(weights, str) or _is_path(weights):
        raise ArgumentError(
            f"{option}= blends {spec.name!r}'s registered weights and cannot apply to "
            f"weights={weights!r}; leave weights out (or pass weights='default')."
        )
    base = registered_weights(spec, scale, weights, advice=".")
    if base.blend is None or base.blend.option != option:
        raise ArgumentError(
            f"{option}= applies to {spec.name!r}'s weights tagged "
            f"{', '.join(repr(w.tag) for w in declared if w.blend and w.blend.option == option)}"
            f", not to weights={weights!r}."
        )
    state = load_registered_weights(base, model=spec.name, progress=progress)
    if strength == 1.0:
        # As the authors' script: the weights alone, the other checkpoint is not even read.
        return state, f"{base.source} ({option}={strength:g}: these weights alone)"
    other: WeightSpec = registered_weights(spec, scale, base.blend.other, advice=".")
    second = load_registered_weights(other, model=spec.name, progress=progress)
    return _interpolate(state, second, strength, option, base, other), (
        f"{option}={strength:g}: {strength:g} x {base.source} + {1 - strength:g} x {other.source}"
    )


def _interpolate(
    first: StateDict,
    second: StateDict,
    t: float,
    option: str,
    base: WeightSpec,
    other: WeightSpec,
) -> StateDict:
    """``t * first + (1 - t) * second`` for every floating-point tensor."""
    differ = sorted(set(first) ^ set(second)) + sorted(
        k for k in first.keys() & second.keys() if first[k].shape != second[k].shape
    )
    if differ:
        raise WeightsError(
            f"{option}= cannot blend {base.source} with {other.source}: their tensors differ "
            f"({', '.join(differ[:3])}). The registry entry pairs checkpoints that do not match."
        )
    return {
        k: t * v + (1 - t) * second[k] if v.is_floating_point() else v for k, v in first.items()
    }


def _check_not_another_checkpoint(spec: ModelSpec, scale: int, path: Path) -> None:
    """Refuse a file that is a registered checkpoint of another model or scale.

    Some families have tensors of the same shapes at every scale (FSRCNN, SRCNN and VDSR, whose
    scale lives only in the training data): their weights would load and upscale to garbage.
    The file's sha256 tells (hashed once per process while the file is unchanged).
    """
    if not path.is_file():
        return  # read_state_dict names the problem
    matches = find_weights(file_sha256(path))
    if not matches or any(m.name == spec.name and w.scale == scale for m, w in matches):
        return
    model, ws = matches[0]
    tag = "" if ws.tag == "default" else f", tag {ws.tag!r}"
    raise WeightsError(
        f"{path} is the registered checkpoint of {model.name!r} at x{ws.scale}{tag}, not of "
        f"{spec.name!r} at x{scale}: it would load and upscale wrongly. Load it with "
        f"srzoo.load({model.name!r}, scale={ws.scale}, weights=...)."
    )


def load_weights_into(
    spec: ModelSpec,
    scale: int,
    state: StateDict,
    *,
    strict: bool = True,
    source: str | None = None,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
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
        dtype: Floating-point dtype of the parameters (default: the module's, float32).
        channels_last: Store 4-D weights channels-last (done here, in the one copy that
            loading makes anyway).
        **overrides: Constructor arguments replacing the variant's defaults.

    Returns:
        The filled module (train mode, CPU).

    Raises:
        IncompatibleWeightsError: Keys or shapes do not match (with ``strict``), or nothing
            matches at all.

    Example:
        >>> net = load_weights_into(srzoo.model_info("edsr"), 4, read_state_dict(path))
    """
    with torch.device("meta"), _SkipInitOnMeta():
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
    wrong_kind = [
        f"{k} ({state[k].dtype})"
        for k in expected
        if k in state and expected[k].is_floating_point() and not state[k].is_floating_point()
    ]
    if wrong_kind:
        raise WeightsError(
            f"weights{f' from {source}' if source else ''} hold {len(wrong_kind)} tensors that "
            f"should be floating point but are not ({', '.join(wrong_kind[:3])}): integer, "
            "boolean or complex values cannot be network weights. The file is not a checkpoint "
            f"of {spec.name!r}, or it was damaged."
        )
    # Cast on the way in: a half-precision checkpoint must not leave half-precision parameters
    # in a float32 model (assign=True would adopt the checkpoint's dtype).
    typed = {
        k: _prepare(v, dtype or expected[k].dtype, channels_last)
        for k, v in state.items()
        if k in expected
    }
    model.load_state_dict(typed, strict=strict, assign=True)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        # Something the checkpoint does not hold (a non-strict load, a non-persistent buffer)
        # is still on the meta device: build a real module instead and copy into it.
        model = spec.build(scale, **overrides)
        model.load_state_dict(typed, strict=strict)
        model.to(dtype=dtype)
        if channels_last:
            _to_channels_last(model)
    _remember(model, spec, scale, overrides, weights=source)
    return model


def _to_channels_last(model: nn.Module) -> None:
    # Module.to(memory_format=...) also converts 5-D tensors, which channels-last refuses (the
    # kernel banks of modulated convolutions): the 4-D ones only, as _prepare does for files.
    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)


def _prepare(t: torch.Tensor, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    if t.is_floating_point():
        t = t.to(dtype)
    if channels_last and t.dim() == 4:
        t = t.contiguous(memory_format=torch.channels_last)
    return t


Resized = tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]

#: Attribute on a module built by ``load(..., from_scale=...)`` holding its :class:`LoadReport`.
LOAD_REPORT_ATTR: Final = "srzoo_load_report"


@dataclass(frozen=True)
class LoadReport:
    """What happened to each tensor when weights were loaded into a module.

    Args:
        loaded: Module keys filled from the weights.
        missing: Module keys the weights lack (left as they were).
        unexpected: Keys of the weights the module does not have (ignored).
        resized: ``(key, module shape, weights shape)`` for tensors whose shapes differ
            (skipped, left as they were).
        source: Where the weights came from, if known.

    Example:
        >>> report = srzoo.load_weights(model, "x2.pth", strict=False)  # into an x4 EDSR
        >>> report.reinitialised
        ('tail.0.2.weight', 'tail.0.2.bias')
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    resized: Resized = ()
    source: str | None = None

    @property
    def reinitialised(self) -> tuple[str, ...]:
        """Module keys not filled from the weights, which keep the module's own values: the
        missing and the resized ones."""
        return (*self.missing, *(k for k, _, _ in self.resized))

    @property
    def complete(self) -> bool:
        """Every module tensor was loaded and every tensor of the weights was used."""
        return not (self.missing or self.unexpected or self.resized)

    def __str__(self) -> str:
        origin = f" from {self.source}" if self.source else ""
        parts = [f"{len(self.loaded)} tensors loaded{origin}"]
        if self.reinitialised:
            parts.append(f"re-initialised: {', '.join(self.reinitialised)}")
        if self.unexpected:
            parts.append(f"ignored: {', '.join(self.unexpected)}")
        return "; ".join(parts)


def load_weights(
    model: nn.Module,
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
) -> LoadReport:
    """Copy weights into an existing module and report what fitted.

    A module built by srzoo takes any layout its family's converter knows (official, BasicSR,
    ...); the copy keeps the module's device and dtype. With ``strict=False``, tensors that are
    missing, unexpected or of another shape are skipped and reported, the rest are loaded.

    Args:
        model: The module (a compiled or DDP-wrapped one is unwrapped).
        weights: A checkpoint path (safetensors, or a PyTorch file read with
            ``weights_only=True``) or a state dict; wrapper keys (``params_ema``,
            ``state_dict``, ...) and ``module.`` prefixes are removed.
        strict: Raise unless the weights fit every tensor exactly.

    Returns:
        A :class:`LoadReport`: loaded, missing, unexpected and resized keys.

    Raises:
        ArgumentTypeError: ``model`` is not a module, or ``weights`` neither a path nor a mapping.
        WeightsError: The file cannot be read.
        IncompatibleWeightsError: With ``strict``, any key or shape that does not fit; in any
            case, weights of which not one tensor fits.

    Example:
        >>> model = srzoo.create("edsr-baseline", scale=4)
        >>> report = srzoo.load_weights(model, "my.pth", strict=False)
        >>> print(report)
        32 tensors loaded from my.pth; re-initialised: tail.0.2.weight, tail.0.2.bias
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"load_weights needs a torch.nn.Module, not {type(model).__name__}")
    module = unwrap_compiled(model)
    if isinstance(module, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        module = module.module
    if isinstance(weights, Mapping):
        state, source = unwrap_state_dict(dict(weights), source="the state dict"), None
    elif isinstance(weights, (str, os.PathLike)):
        state, source = read_state_dict(weights), str(weights)
    else:
        raise ArgumentTypeError(
            f"weights must be a checkpoint path or a state dict, not {type(weights).__name__}"
        )
    config = model_config(module)
    name = config.architecture if config is not None else type(module).__name__
    if config is not None:
        converter = get_spec(config.architecture).converter
        if converter is not None:
            state = converter(dict(state), module)
    report = _compare_state(module.state_dict(), state, source)
    if strict and not report.complete:
        raise IncompatibleWeightsError(
            name,
            missing=report.missing,
            unexpected=report.unexpected,
            mismatched=report.resized,
            source=source,
        )
    _copy_state(module, state, report, name)
    return report


def _compare_state(
    expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str | None
) -> LoadReport:
    return LoadReport(
        loaded=tuple(k for k in expected if k in state and expected[k].shape == state[k].shape),
        missing=tuple(k for k in expected if k not in state),
        unexpected=tuple(k for k in state if k not in expected),
        resized=tuple(
            (k, tuple(expected[k].shape), tuple(state[k].shape))
            for k in expected
            if k in state and expected[k].shape != state[k].shape
        ),
        source=source,
    )


def _copy_state(module: nn.Module, state: StateDict, report: LoadReport, name: str) -> None:
    if not report.loaded:
        raise IncompatibleWeightsError(
            name,
            missing=report.missing,
            unexpected=report.unexpected,
            mismatched=report.resized,
            source=report.source,
        )
    expected = module.state_dict()
    wrong_kind = [
        k
        for k in report.loaded
        if expected[k].is_floating_point() and not state[k].is_floating_point()
    ]
    if wrong_kind:
        raise WeightsError(
            f"weights{f' from {report.source}' if report.source else ''} hold tensors that "
            f"should be floating point but are not ({', '.join(wrong_kind[:3])}); they are not "
            f"weights of {name!r}."
        )
    # load_state_dict copies into the existing tensors: device and dtype stay the module's.
    module.load_state_dict({k: state[k] for k in report.loaded}, strict=False)


def _scale_dependent_keys(
    spec: ModelSpec, a: int, b: int, overrides: Mapping[str, Any]
) -> set[str]:
    """Keys whose presence or shape differs between the network at scales ``a`` and ``b``.

    Built on the meta device, so this costs no memory and no initialisation; what differs is
    whatever part of the family depends on the scale (its upsampler), with no list per family.
    """
    with torch.device("meta"), _SkipInitOnMeta():
        first = spec.build(a, **overrides).state_dict()
        second = spec.build(b, **overrides).state_dict()
    return set(first.keys() ^ second.keys()) | {
        k for k in first.keys() & second.keys() if first[k].shape != second[k].shape
    }


def _load_from_scale(
    spec: ModelSpec,
    scale: int,
    from_scale: object,
    weights: WeightsArg,
    strict: bool,
    progress: bool | None,
    overrides: dict[str, Any],
) -> nn.Module:
    """The network at ``scale`` with every tensor of ``from_scale``'s weights that does not
    depend on the scale; the upsampler keeps its fresh initialisation."""
    source_scale = as_scale(from_scale)
    spec.check_scale(source_scale)
    if weights is None:
        raise ArgumentError(
            "from_scale= loads the weights of another scale, but weights=None asks for none. "
            "Leave from_scale out for a random model, or pass weights='default' or a path."
        )
    state, source = _resolve_weights(spec, source_scale, weights, progress=progress)
    if spec.converter is not None:
        with torch.device("meta"), _SkipInitOnMeta():
            reference = spec.build(source_scale, **overrides)
        state = spec.converter(dict(state), reference)
    varies = _scale_dependent_keys(spec, source_scale, scale, overrides)
    model = spec.build(scale, **overrides)
    report = _compare_state(model.state_dict(), state, source)
    unexplained = [
        k
        for k in (*report.missing, *report.unexpected, *(k for k, _, _ in report.resized))
        if k not in varies
    ]
    if strict and unexplained:
        raise IncompatibleWeightsError(
            spec.name,
            missing=[k for k in report.missing if k not in varies],
            unexpected=[k for k in report.unexpected if k not in varies],
            mismatched=[r for r in report.resized if r[0] not in varies],
            source=source,
        )
    _copy_state(model, state, report, spec.name)
    fresh = ", ".join(report.reinitialised) or "nothing"
    _remember(
        model,
        spec,
        scale,
        overrides,
        weights=f"{source} (x{source_scale}; re-initialised for x{scale}: {fresh})",
    )
    setattr(model, LOAD_REPORT_ATTR, report)
    return model
