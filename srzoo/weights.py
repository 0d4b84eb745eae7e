"""Weight files: read a checkpoint safely and unwrap it to a flat state dict.

Safetensors files are read with safetensors; ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` pickles only
with ``torch.load(weights_only=True)``, so a checkpoint can never run code while it loads.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import WeightsError

__all__ = ["PICKLE_SUFFIXES", "WRAPPER_KEYS", "read_state_dict", "unwrap_state_dict"]

StateDict = dict[str, torch.Tensor]

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net_g", "generator")
"""Keys that training frameworks wrap a state dict in, in order of preference (EMA first)."""

_PREFIXES = ("module.", "_orig_mod.")


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Read a checkpoint file and return its flat state dict, on the CPU.

    Args:
        path: A ``.safetensors`` file, or a PyTorch pickle (``.pth``, ``.pt``, ``.bin``,
            ``.ckpt``) read with ``weights_only=True``.

    Returns:
        Tensors by name, unwrapped from ``params_ema`` / ``params`` / ``state_dict`` / ``model``
        and with ``module.`` / ``_orig_mod.`` prefixes removed.

    Raises:
        WeightsError: The file is missing, truncated, not a checkpoint, or a pickle that needs
            arbitrary Python objects to load.

    Example:
        >>> state = read_state_dict("edsr_x4-4f62e9ef.pt")
        >>> state["head.0.weight"].shape
        torch.Size([256, 3, 3, 3])
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file not found: {p}. Check the path.")
    if p.suffix == ".safetensors":
        obj: Any = _read_safetensors(p)
    else:
        obj = _read_pickle(p)
    return unwrap_state_dict(obj, source=str(p))


def _read_safetensors(p: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise WeightsError(
            f"{p} is not a readable safetensors file ({e}). It may be truncated or corrupt: "
            "delete it and download it again."
        ) from e


def _read_pickle(p: Path) -> Any:
    with p.open("rb") as f:
        head = f.read(64)
    if head.lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml", b"{")):
        raise WeightsError(
            f"{p} is a text or HTML page, not a checkpoint (often an error page saved in its "
            "place). Delete it and download the file again."
        )
    is_zip = zipfile.is_zipfile(p)
    try:
        # mmap avoids copying the whole file into memory; only the zip format supports it.
        return torch.load(p, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise WeightsError(
                f"{p} needs arbitrary Python objects to load, and srzoo never unpickles those "
                "(it could run code). If you trust the file, convert it once with "
                "`torch.save(torch.load(path, weights_only=False)['<key>'], new_path)` or save "
                "it as safetensors, then load the result."
            ) from e
        raise WeightsError(f"{p} is not a valid PyTorch checkpoint ({e}).") from e
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise WeightsError(
            f"{p} could not be read as a PyTorch checkpoint ({type(e).__name__}: {e}). It may be "
            "truncated or corrupt: delete it and download it again."
        ) from e


def unwrap_state_dict(obj: Any, *, source: str = "checkpoint") -> StateDict:
    """Find the state dict inside a loaded checkpoint object.

    Args:
        obj: What ``torch.load`` or safetensors returned.
        source: Name used in error messages.

    Returns:
        Tensors by name, with wrapper keys and ``module.`` / ``_orig_mod.`` prefixes removed.

    Raises:
        WeightsError: No tensors were found.

    Example:
        >>> unwrap_state_dict({"params": {"module.conv.weight": w}})
        {'conv.weight': w}
    """
    while isinstance(obj, Mapping):
        inner = next(
            (obj[k] for k in WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None
        )
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source} holds a {type(obj).__name__}, not a state dict.")
    state: StateDict = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        name = str(key)
        changed = True
        while changed:
            changed = False
            for prefix in _PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    changed = True
        state[name] = value
    if not state:
        raise WeightsError(f"{source} contains no tensors; it is not a model checkpoint.")
    return state
