"""Shareable model folders: ``save_pretrained`` writes one, ``load("local-dir:...")`` and
``load("hf-hub:owner/repo[@revision]")`` read one back.

A folder holds ``model.safetensors`` (the state dict in srzoo's own keys) and ``config.json``::

    {"architecture": "edsr", "scale": 4, "model_args": {...}, "srzoo_version": "0.1.0", ...}

``model_args`` are the constructor arguments that rebuild the module; the same folder uploaded to
the Hugging Face Hub is loaded with ``hf-hub:``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._util import write_text_atomic
from ._version import __version__
from .contract import CONFIG_ATTR, model_config, model_scale, unwrap_compiled
from .errors import ArgumentError, ArgumentTypeError, WeightsError
from .registry import get_spec
from .weights import hub_download, save_safetensors_atomic

__all__ = [
    "CONFIG_KEY",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "PretrainedFolder",
    "resolve_pretrained",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CONFIG_KEY = CONFIG_ATTR
"""Attribute srzoo sets on every module it builds (see :mod:`srzoo.contract`)."""

FORMAT_VERSION = 1


@dataclass(frozen=True)
class PretrainedFolder:
    """A resolved ``local-dir:`` or ``hf-hub:`` reference.

    Args:
        architecture: Registered model name.
        scale: Upscaling factor the weights were saved at.
        model_args: Constructor arguments that rebuild the module.
        weights: Local path of ``model.safetensors``.
        reference: The reference as the user wrote it.
    """

    architecture: str
    scale: int
    model_args: dict[str, Any]
    weights: Path
    reference: str


def save_pretrained(
    model: nn.Module, directory: str | os.PathLike[str], *, name: str | None = None
) -> Path:
    """Write ``model`` to a folder that ``srzoo.load("local-dir:<folder>")`` rebuilds it from.

    Writes ``model.safetensors`` and ``config.json``. Upload the folder to the Hugging Face Hub
    and ``srzoo.load("hf-hub:owner/repo")`` loads it from there.

    Args:
        model: A module built by srzoo (``load``, ``create``), or any module of a registered
            architecture when ``name`` is given.
        directory: The folder to write (created if missing; the two files are replaced).
        name: Registered architecture name, needed only for modules srzoo did not build.

    Returns:
        The folder's path.

    Raises:
        ValueError: srzoo does not know the module's architecture and ``name`` is missing, or the
            module does not match the named architecture.
        WeightsError: The files cannot be written.

    Example:
        >>> model = srzoo.load("edsr", scale=4)
        >>> srzoo.save_pretrained(model, "my-edsr/")
        PosixPath('my-edsr')
        >>> srzoo.load("local-dir:my-edsr/")
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(
            f"save_pretrained needs a torch.nn.Module, not {type(model).__name__}"
        )
    module = unwrap_compiled(model)
    recorded = model_config(module)
    if name is None and recorded is None:
        raise ArgumentError(
            f"srzoo does not know which architecture this {type(module).__name__} is (it was not "
            "built by srzoo.load or srzoo.create). Pass name=, e.g. "
            "save_pretrained(model, directory, name='edsr')."
        )
    if recorded is not None and (name is None or recorded.architecture == name):
        architecture = recorded.architecture
        scale = recorded.scale
        model_args = dict(recorded.model_args)
    else:
        assert name is not None
        architecture = name
        scale = model_scale(module)
        model_args = {}
    spec = get_spec(architecture)
    if scale not in spec.scales:
        raise ArgumentError(
            f"the module's scale ({scale}) is not one of {spec.name!r}'s scales {spec.scales}."
        )
    _check_rebuilds(module, architecture, scale, model_args)
    state = module.state_dict()
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    config = {
        "architecture": spec.name,
        "scale": scale,
        "model_args": model_args,
        "family": spec.family,
        "srzoo_version": __version__,
        "format_version": FORMAT_VERSION,
        "weights": WEIGHTS_NAME,
        "dtype": dtypes[0] if len(dtypes) == 1 else dtypes,
    }
    try:
        text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    except TypeError as e:
        raise ArgumentError(
            f"the constructor arguments {model_args!r} cannot be written to config.json ({e})."
        ) from e
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(f"cannot create {folder} ({e}). Choose a writable folder.") from e
    save_safetensors_atomic(
        state, folder / WEIGHTS_NAME, {"architecture": spec.name, "scale": str(scale)}
    )
    try:
        write_text_atomic(folder / CONFIG_NAME, text)
    except OSError as e:
        raise WeightsError(f"cannot write {folder / CONFIG_NAME} ({e}).") from e
    return folder


def _check_rebuilds(
    module: nn.Module, architecture: str, scale: int, model_args: Mapping[str, Any]
) -> None:
    # A folder that cannot be rebuilt is worse than none: find out now, on the meta device.
    spec = get_spec(architecture)
    try:
        with torch.device("meta"):
            rebuilt = spec.build(scale, **model_args)
    except TypeError as e:
        raise ArgumentError(
            f"{architecture!r} cannot be rebuilt from {dict(model_args)!r}: {e}"
        ) from e
    want = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    if want != have:
        diff = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise ArgumentError(
            f"the module does not match {architecture!r} at x{scale} with arguments "
            f"{dict(model_args)!r} (differences at {', '.join(diff[:3])}). Build it with "
            "srzoo.create(name, scale, **args) so its arguments are recorded, or pass the "
            "matching name."
        )


def resolve_pretrained(reference: str, *, progress: bool | None = None) -> PretrainedFolder:
    """Find the config and weights of a ``local-dir:`` or ``hf-hub:`` reference.

    Args:
        reference: ``local-dir:<folder>`` or ``hf-hub:owner/repo[@revision]``.
        progress: Show download progress for Hub files; ``None``: only on a terminal.

    Returns:
        The parsed config and the local path of the weights.

    Raises:
        WeightsError: The folder or repository lacks the files, or the config is invalid.

    Example:
        >>> resolve_pretrained("local-dir:my-edsr").architecture
        'edsr'
    """
    if reference.startswith("local-dir:"):
        folder = Path(reference[len("local-dir:") :]).expanduser()
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for p in (config_path, weights_path):
            if not p.is_file():
                raise WeightsError(
                    f"{p} not found: {reference} is not a folder written by "
                    "srzoo.save_pretrained (it needs config.json and model.safetensors)."
                )
    elif reference.startswith("hf-hub:"):
        repo = reference[len("hf-hub:") :]
        revision: str | None = None
        if "@" in repo:
            repo, revision = repo.split("@", 1)
        if repo.count("/") != 1 or not all(repo.split("/")) or revision == "":
            raise WeightsError(
                f"malformed Hub reference {reference!r}: expected hf-hub:owner/repo[@revision]."
            )
        config_path = hub_download(repo, CONFIG_NAME, revision=revision, progress=False)
        config = _read_config(config_path, reference)
        name = str(config.get("weights", WEIGHTS_NAME))
        weights_path = hub_download(repo, name, revision=revision, progress=progress)
        return _folder(config, weights_path, reference)
    else:
        raise WeightsError(f"{reference!r} is neither local-dir:<folder> nor hf-hub:owner/repo.")
    return _folder(_read_config(config_path, reference), weights_path, reference)


def _read_config(path: Path, reference: str) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise WeightsError(f"{path} of {reference} is not valid JSON ({e}).") from e
    if not isinstance(config, dict):
        raise WeightsError(f"{path} of {reference} does not hold a JSON object.")
    return config


def _folder(config: Mapping[str, Any], weights: Path, reference: str) -> PretrainedFolder:
    architecture = config.get("architecture")
    scale = config.get("scale")
    model_args = config.get("model_args", {})
    if not isinstance(architecture, str) or not isinstance(scale, int):
        raise WeightsError(
            f"the config.json of {reference} lacks 'architecture' (a name) or 'scale' (an "
            "integer); it was not written by srzoo.save_pretrained."
        )
    if not isinstance(model_args, dict):
        raise WeightsError(f"'model_args' in the config.json of {reference} is not an object.")
    return PretrainedFolder(architecture, scale, dict(model_args), weights, reference)
