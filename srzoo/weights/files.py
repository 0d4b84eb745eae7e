"""Reading and writing checkpoint files safely.

The format is read from a file's first bytes, never from its name: a safetensors header, a zip
archive (``torch.save`` since PyTorch 1.6) or a legacy pickle. Safetensors files are read with
safetensors; zip and legacy pickles only with ``torch.load(weights_only=True)``, so a checkpoint
can never run code while it loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch

from .._util import atomic_write
from ..errors import WeightsError
from .cache import write_error

__all__ = [
    "PICKLE_SUFFIXES",
    "PREFIXES",
    "WRAPPER_KEYS",
    "CheckpointFormat",
    "StateDict",
    "checkpoint_format",
    "file_sha256",
    "read_state_dict",
    "save_safetensors_atomic",
    "sha256_file",
    "unwrap_state_dict",
]

StateDict = dict[str, torch.Tensor]
CheckpointFormat = Literal["safetensors", "zip", "pickle"]

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
"""Names PyTorch checkpoints usually end in (a hint for telling paths from tags, nothing more)."""

WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net_g", "generator", "net")
"""Keys that training frameworks wrap a state dict in, in order of preference (EMA first)."""

PREFIXES = ("module.", "_orig_mod.", "netG.")
"""Key prefixes added by ``DataParallel`` / ``DistributedDataParallel`` and ``torch.compile``,
and the generator prefix of pix2pix-style GAN trainers (``netG.``)."""

_CHUNK = 1 << 20
# A safetensors file starts with the little-endian length of its JSON header, then the header.
_MAX_SAFETENSORS_HEADER = 100_000_000


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a file, read in chunks.

    Args:
        path: The file.

    Returns:
        64 lowercase hex digits.

    Example:
        >>> sha256_file("edsr_x4-4f62e9ef.pt")[:8]
        '4f62e9ef'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """:func:`sha256_file`, remembered for this process while the file's identity, size and
    modification time stay the same: a file is hashed once however often it is loaded, and any
    write to it (which moves its mtime) makes it hashed again.

    Args:
        path: The file.

    Returns:
        64 lowercase hex digits.

    Example:
        >>> file_sha256("edsr_x4-4f62e9ef.pt")[:8]
        '4f62e9ef'
    """
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    digest = _DIGESTS.get(key)
    if digest is None:
        digest = _DIGESTS[key] = sha256_file(p)
    return digest


def checkpoint_format(path: str | os.PathLike[str]) -> CheckpointFormat:
    """Tell a checkpoint's format from its first bytes, whatever its name.

    Args:
        path: The file.

    Returns:
        ``"safetensors"``, ``"zip"`` (``torch.save``'s default format) or ``"pickle"`` (the
        legacy ``torch.save`` format, ``_use_new_zipfile_serialization=False``).

    Raises:
        WeightsError: The file is missing, empty, or none of the three (an HTML error page, an
            image, a text file, ...).

    Example:
        >>> checkpoint_format("model.pth")  # a safetensors file with a .pth name
        'safetensors'
    """
    p = Path(path)
    try:
        with p.open("rb") as f:
            head = f.read(64)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError as e:
        raise WeightsError(f"weights file not found: {p}. Check the path.") from e
    except IsADirectoryError as e:
        raise WeightsError(f"{p} is a folder, not a weights file. Pass the file's path.") from e
    except OSError as e:
        raise WeightsError(f"cannot read {p} ({e}).") from e
    if not head:
        raise WeightsError(f"{p} is empty, not a checkpoint. Delete it and download it again.")
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    # Safetensors before pickle: a header length such as 640 starts with the bytes 0x80 0x02,
    # which also open a pickle; a pickle never has a plausible length followed by "{".
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 2 <= header_len <= min(_MAX_SAFETENSORS_HEADER, size - 8) and head[8:9] == b"{":
            return "safetensors"
    # Legacy torch.save: a pickle (protocol 2 or later) of its magic number.
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"{")):
        what = "a text or HTML page (often an error page saved in its place)"
    else:
        what = "neither a safetensors file nor a PyTorch checkpoint"
    raise WeightsError(
        f"{p} is not a checkpoint: it is {what}. Delete it and download the file again."
    )


def read_state_dict(path: str | os.PathLike[str]) -> StateDict:
    """Read a checkpoint file and return its flat state dict, on the CPU.

    Args:
        path: A safetensors file or a PyTorch checkpoint (zip or legacy pickle, read with
            ``weights_only=True``), whatever its name ends in.

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
    p = Path(path).expanduser()
    fmt = checkpoint_format(p)
    obj: Any = _read_safetensors(p) if fmt == "safetensors" else _read_pickle(p, fmt)
    return unwrap_state_dict(obj, source=str(p))


def _read_safetensors(p: Path) -> StateDict:
    # imported on first read: keeps `import srzoo` fast
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError, json.JSONDecodeError) as e:
        raise WeightsError(
            f"{p} is not a readable safetensors file ({e}). It may be truncated or corrupt: "
            "delete it and download it again."
        ) from e


def _read_pickle(p: Path, fmt: CheckpointFormat) -> Any:
    try:
        if p.suffix == ".safetensors":
            # torch.load goes by a path's suffix here; an open file is read by its content.
            with p.open("rb") as f:
                return torch.load(f, map_location="cpu", weights_only=True)
        # mmap avoids copying the whole file into memory; only the zip format supports it.
        return torch.load(p, map_location="cpu", weights_only=True, mmap=fmt == "zip")
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise WeightsError(
                f"{p} holds Python objects besides tensors, and srzoo never unpickles those "
                "(they could run code). Ask its author for a safetensors file, or save its state "
                "dict alone as safetensors from a program you trust."
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
            for prefix in PREFIXES:
                if name.startswith(prefix):
                    name = name[len(prefix) :]
                    changed = True
        state[name] = value
    if not state:
        raise WeightsError(f"{source} contains no tensors; it is not a model checkpoint.")
    return state


def _storage_safe(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tensors that safetensors accepts: contiguous, on the CPU, none sharing storage."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in state.items():
        t = value.detach().to("cpu").contiguous()
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        whole = storage.nbytes() == t.numel() * t.element_size()
        if ptr in seen or not whole:
            t = t.clone()
            ptr = t.untyped_storage().data_ptr()
        seen.add(ptr)
        out[key] = t
    return out


def save_safetensors_atomic(
    state: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """Write ``state`` to ``path`` as safetensors through a temporary file and a rename.

    Args:
        state: Tensors by name (shared or non-contiguous storage is handled).
        path: Destination file.
        metadata: String metadata stored in the file header.

    Raises:
        WeightsError: The file cannot be written (no space, no permission); nothing is left.

    Example:
        >>> save_safetensors_atomic(model.state_dict(), Path("model.safetensors"))
    """
    # imported on first write: keeps `import srzoo` fast
    from safetensors.torch import save_file

    try:
        with atomic_write(path, suffix=".part") as tmp:
            save_file(_storage_safe(state), str(tmp), metadata={"format": "pt", **(metadata or {})})
    except OSError as e:
        raise write_error(path, e) from e
