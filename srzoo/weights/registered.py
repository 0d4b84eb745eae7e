"""The pretrained weights the registry names: fetched, verified, converted once, read.

A registered checkpoint that is a pickle is converted once to safetensors in the cache
(``$SRZOO_HOME/converted/<sha256 of the original>.safetensors``), so later loads map the file
into memory and never unpickle again. Every cached file srzoo reads is hashed against the digest
recorded when it was written (beside it, ``<file>.sha256``); a damaged copy is rebuilt from the
verified original, or downloaded again, and never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .._util import write_text_atomic
from ..errors import WeightsError
from .cache import cache_home, is_sha256, write_error
from .files import (
    StateDict,
    checkpoint_format,
    file_sha256,
    read_state_dict,
    save_safetensors_atomic,
    sha256_file,
)
from .sources import fetch_verified, parse_source

if TYPE_CHECKING:
    from ..registry import ModelSpec, WeightSpec

__all__ = ["download", "load_registered_weights", "registered_weights"]


def registered_weights(spec: ModelSpec, scale: int, tag: str, *, advice: str) -> WeightSpec:
    """The weights registered for ``spec`` at ``scale`` under ``tag``.

    Args:
        spec: The model's registry entry.
        scale: Upscaling factor.
        tag: Weight tag; ``"default"`` means the first registered for that scale.
        advice: What the user can do instead, appended to the error message.

    Returns:
        The matching :class:`~srzoo.registry.WeightSpec`.

    Raises:
        WeightsError: None matches; the message lists the registered scales and tags.

    Example:
        >>> registered_weights(srzoo.model_info("edsr"), 4, "default", advice=".").scale
        4
    """
    ws = spec.weights_for(scale, tag)
    if ws is not None:
        return ws
    if not spec.weights:
        detail = f"no pretrained weights are registered for {spec.name!r}"
    else:
        have = ", ".join(sorted({f"x{w.scale}:{w.tag}" for w in spec.weights}))
        detail = f"{spec.name!r} has no weights tagged {tag!r} at x{scale} (registered: {have})"
    raise WeightsError(detail + advice)


def load_registered_weights(
    spec: WeightSpec, *, model: str, progress: bool | None = None
) -> StateDict:
    """Fetch, verify and read the checkpoint a :class:`~srzoo.registry.WeightSpec` names.

    A pickle is converted once to safetensors in the cache; later calls read that copy and never
    unpickle again. Cached files are hashed before they are read: a damaged one is rebuilt or
    downloaded again.

    Args:
        spec: The registered weights.
        model: The model name, for the ``srzoo download`` hint in offline errors.
        progress: Show a progress bar; ``None`` shows one when stderr is a terminal.

    Returns:
        The flat state dict, on the CPU.

    Raises:
        WeightsError: The file cannot be fetched, verified or read.

    Example:
        >>> state = load_registered_weights(srzoo.model_info("edsr").weights_for(4), model="edsr")
    """
    path, recorded = _fetch(spec, model=model, progress=progress)
    pickled = checkpoint_format(path) != "safetensors"
    known = spec.sha256 or recorded
    if pickled and known is not None:
        # A verified conversion is all a load reads: the original is not even hashed.
        state = _read_converted(_converted_path(known))
        if state is not None:
            return state
    path, digest = _verified(spec, path, recorded, model=model, progress=progress)
    if pickled:
        return _converted_state_dict(spec, path, digest)
    return read_state_dict(path)


def download(
    name: str, scale: int | None = None, *, tag: str = "default", progress: bool | None = None
) -> Path:
    """Fill the cache with a model's registered weights ahead of time.

    The file is downloaded (unless cached), verified against its registered sha256, and, if it
    is a pickle, converted once to safetensors so that loading it later needs no network and no
    unpickling.

    Args:
        name: Registered model name, e.g. ``"edsr"``.
        scale: Upscaling factor; ``None`` means the model's default scale.
        tag: Which of the registered weights for that scale (``"default"``: the first).
        progress: Show a progress bar; ``None`` shows one when stderr is a terminal.

    Returns:
        The local path of the verified file.

    Raises:
        UnknownModelError: ``name`` is not registered.
        UnsupportedScaleError: ``scale`` is not supported.
        WeightsError: No such weights are registered, or they cannot be fetched or verified.

    Example:
        >>> srzoo.download("edsr", scale=4)
        PosixPath('/home/me/.cache/srzoo/downloads/.../edsr_x4-4f62e9ef.pt')
    """
    # The registry imports nothing from this package; importing it here keeps the layers' order
    # at import time (the registry's families import the weights' types only).
    from ..registry import get_spec

    spec = get_spec(name)
    s = spec.resolve_scale(scale)
    ws = registered_weights(spec, s, tag, advice="; there is nothing to download.")
    path, recorded = _fetch(ws, model=spec.name, progress=progress)
    path, digest = _verified(ws, path, recorded, model=spec.name, progress=progress)
    if checkpoint_format(path) != "safetensors":
        _converted_state_dict(ws, path, digest)
    return path


def _hint(spec: WeightSpec, model: str) -> str:
    hint = f"srzoo download {model} --scale {spec.scale}"
    return hint if spec.tag == "default" else f"{hint} --tag {spec.tag}"


def _fetch(spec: WeightSpec, *, model: str, progress: bool | None) -> tuple[Path, str | None]:
    return fetch_verified(
        parse_source(spec.source),
        sha256=spec.sha256,
        size=spec.size,
        progress=progress,
        hint=_hint(spec, model),
    )


def _verified(
    spec: WeightSpec, path: Path, recorded: str | None, *, model: str, progress: bool | None
) -> tuple[Path, str]:
    """``path`` hashed now, with its digest: a cache entry found damaged is fetched again
    (once), so a flipped byte on the disk never reaches a model."""
    digest = file_sha256(path)
    expected = spec.sha256 or recorded
    if expected is None or digest == expected:
        return path, digest
    kind = parse_source(spec.source).kind
    if kind not in ("url", "hf"):
        # Packaged and local files are never deleted or replaced.
        raise WeightsError(
            f"{path} has sha256 {digest}, expected {expected}: it is not the registered file. "
            "Replace it with the original."
        )
    blob = path.resolve()
    for stale in (blob, path, path.with_name(path.name + ".sha256")):
        stale.unlink(missing_ok=True)
    path, recorded = _fetch(spec, model=model, progress=progress)
    digest = sha256_file(path)
    if digest != (spec.sha256 or recorded):
        raise WeightsError(
            f"{path} has sha256 {digest}, expected {spec.sha256 or recorded}, even after "
            "fetching it again. Delete it and check the disk."
        )
    return path, digest


def _converted_path(digest: str) -> Path:
    return cache_home() / "converted" / f"{digest}.safetensors"


def _recorded_digest(path: Path) -> str | None:
    try:
        text = path.with_name(path.name + ".sha256").read_text().strip()
    except OSError:
        return None
    return text if is_sha256(text) else None


def _read_converted(target: Path) -> StateDict | None:
    """The converted copy's tensors when it matches the digest recorded at writing, else
    ``None`` (after removing a damaged copy)."""
    if not target.is_file():
        return None
    recorded = _recorded_digest(target)
    if recorded is not None and file_sha256(target) == recorded:
        try:
            return read_state_dict(target)
        except WeightsError:
            pass
    target.unlink(missing_ok=True)
    target.with_name(target.name + ".sha256").unlink(missing_ok=True)
    return None


def _converted_state_dict(spec: WeightSpec, path: Path, digest: str) -> StateDict:
    """Read a pickle through its safetensors conversion in the cache, converting it once."""
    target = _converted_path(digest)
    state = _read_converted(target)
    if state is not None:
        return state
    # imported when a conversion is written: keeps `import srzoo` fast
    from filelock import FileLock

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(target, e) from e
    with FileLock(str(target.parent / (target.name + ".lock"))):
        state = _read_converted(target)
        if state is not None:
            return state
        state = read_state_dict(path)
        try:
            save_safetensors_atomic(state, target, {"source": spec.source, "source_sha256": digest})
            # Recorded after the file is complete: a copy without a digest is never trusted.
            write_text_atomic(target.with_name(target.name + ".sha256"), sha256_file(target) + "\n")
        except (WeightsError, OSError):
            # The weights are verified and in memory; a cache that cannot take the converted
            # copy only costs speed next time.
            target.unlink(missing_ok=True)
            return state
    converted = _read_converted(target)
    return state if converted is None else converted
