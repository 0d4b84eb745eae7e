"""Weight files: where they come from, how they are verified and cached, and how they are read.

A weight source is a Hub file (``hf://owner/repo/path/file@revision``, fetched with
``huggingface_hub`` so ``HF_HOME``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and ``HF_TOKEN`` apply), an
``https://`` URL (downloaded into ``$SRZOO_HOME``, default ``~/.cache/srzoo``, and renamed into the
cache only after its sha256 matched), ``package://<file>`` (a file shipped under
``srzoo/weights/``) or a local path.

Safetensors files are read with safetensors; ``.pth`` / ``.pt`` / ``.bin`` / ``.ckpt`` pickles only
with ``torch.load(weights_only=True)``, so a checkpoint can never run code while it loads. A pickle
fetched for registered weights is converted once to safetensors in the cache, so later loads map
the file into memory and never unpickle again.

Environment: ``SRZOO_HOME`` (cache folder), ``SRZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` (use the
cache only), ``SRZOO_DOWNLOAD_TIMEOUT`` (seconds without data before a URL download fails, default
30).
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
import re
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

import torch

from ._util import atomic_write, show_progress
from .errors import WeightsError

if TYPE_CHECKING:
    from .registry import ModelSpec, WeightSpec

__all__ = [
    "PICKLE_SUFFIXES",
    "WRAPPER_KEYS",
    "Source",
    "cache_home",
    "download",
    "fetch",
    "hub_download",
    "is_offline",
    "load_registered_weights",
    "parse_source",
    "read_state_dict",
    "save_safetensors_atomic",
    "sha256_file",
    "unwrap_state_dict",
]

StateDict = dict[str, torch.Tensor]

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "net_g", "generator")
"""Keys that training frameworks wrap a state dict in, in order of preference (EMA first)."""

_PREFIXES = ("module.", "_orig_mod.")

DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")
# torch.hub's convention: ``name-<leading hex digits of the sha256>.ext``. Eight digits at least,
# so that a version suffix such as ``-1.pt`` is not mistaken for a hash.
_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")
_TRUE = {"1", "true", "yes", "on"}


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


# --------------------------------------------------------------------------------------------------
# Sources and the cache


@dataclass(frozen=True)
class Source:
    """A parsed weight source.

    Args:
        kind: ``"hf"`` (a Hub file), ``"url"``, ``"package"`` (shipped inside srzoo) or
            ``"local"``.
        location: The URL, the local path, the packaged file name, or the Hub file as written.
        repo_id: Hub repository (``owner/name``), for ``"hf"``.
        filename: File inside the Hub repository, for ``"hf"``.
        revision: Hub branch, tag or commit, for ``"hf"`` (``None``: the default branch).
    """

    kind: Literal["hf", "url", "package", "local"]
    location: str
    repo_id: str = ""
    filename: str = ""
    revision: str | None = None


def parse_source(source: str) -> Source:
    """Split a weight source into its kind and parts.

    Args:
        source: ``hf://owner/repo/path/file[@revision]``, ``https://...``, ``package://<file>``
            or a local path.

    Returns:
        The parsed :class:`Source`.

    Raises:
        WeightsError: The source is malformed (a Hub source without a file, a packaged file
            that escapes ``srzoo/weights``).

    Example:
        >>> parse_source("hf://someone/edsr/edsr_x4.safetensors@v1").repo_id
        'someone/edsr'
    """
    if source.startswith("hf://"):
        rest = source[len("hf://") :]
        revision: str | None = None
        if "@" in rest:
            rest, revision = rest.rsplit("@", 1)
        parts = rest.split("/")
        if len(parts) < 3 or not all(parts) or revision == "":
            raise WeightsError(
                f"malformed Hub source {source!r}: expected hf://owner/repo/path/file[@revision]."
            )
        return Source(
            "hf",
            source,
            repo_id="/".join(parts[:2]),
            filename="/".join(parts[2:]),
            revision=revision,
        )
    if source.startswith(("https://", "http://")):
        return Source("url", source)
    if source.startswith("package://"):
        name = source[len("package://") :]
        if not name or name.startswith("/") or ".." in Path(name).parts:
            raise WeightsError(
                f"malformed packaged source {source!r}: expected package://<file under "
                "srzoo/weights>."
            )
        return Source("package", name)
    return Source("local", source)


def cache_home() -> Path:
    """The folder srzoo caches downloads and converted weights in.

    Returns:
        ``$SRZOO_HOME`` if set, else ``~/.cache/srzoo``.

    Example:
        >>> cache_home()
        PosixPath('/home/me/.cache/srzoo')
    """
    env = os.environ.get("SRZOO_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "srzoo"


def is_offline() -> bool:
    """Whether downloads are disabled (``SRZOO_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``).

    Returns:
        ``True`` when only the cache may be used.

    Example:
        >>> os.environ["SRZOO_OFFLINE"] = "1"; is_offline()
        True
    """
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE
        for var in ("SRZOO_OFFLINE", "HF_HUB_OFFLINE")
    )


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


def _name_hash_prefix(name: str) -> str | None:
    match = _NAME_HASH.search(name)
    return match.group(1) if match else None


def _timeout() -> float:
    raw = os.environ.get("SRZOO_DOWNLOAD_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError as e:
        raise WeightsError(f"SRZOO_DOWNLOAD_TIMEOUT={raw!r} is not a number of seconds.") from e
    if value <= 0:
        raise WeightsError(f"SRZOO_DOWNLOAD_TIMEOUT={raw!r} must be positive.")
    return value


def _offline_error(what: str, hint: str | None) -> WeightsError:
    fill = (
        f"Run `{hint}` while online to fill the cache"
        if hint
        else "Download it while online to fill the cache"
    )
    return WeightsError(
        f"{what} is not in the cache and downloads are disabled (SRZOO_OFFLINE or "
        f"HF_HUB_OFFLINE is set). {fill}, or unset the variable."
    )


# --------------------------------------------------------------------------------------------------
# Fetching


def fetch(
    source: str,
    *,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool | None = None,
    hint: str | None = None,
) -> Path:
    """Turn a weight source into a verified local file, downloading it into the cache if needed.

    Args:
        source: ``hf://owner/repo/path/file[@revision]``, an ``https://`` URL,
            ``package://<file>`` or a local path.
        sha256: Expected sha256 hex digest of the file. Without it, a URL whose file name
            carries a torch.hub-style hash prefix (``edsr_x4-4f62e9ef.pt``) is checked against
            that prefix, and a Hub file against the Hub's own etag.
        size: Expected size in bytes, checked before the hash.
        progress: Show a progress bar; ``None`` shows one when stderr is a terminal.
        hint: A command that fills the cache, quoted in the error raised when offline.

    Returns:
        The path of the verified file (in the cache for downloads).

    Raises:
        WeightsError: The file cannot be found or downloaded, fails verification, or is not in
            the cache while offline. Nothing half-written is left in the cache.

    Example:
        >>> fetch("https://cv.snu.ac.kr/research/EDSR/models/edsr_x4-4f62e9ef.pt")
        PosixPath('/home/me/.cache/srzoo/downloads/.../edsr_x4-4f62e9ef.pt')
    """
    path, _ = _fetch(parse_source(source), sha256=sha256, size=size, progress=progress, hint=hint)
    return path


def _fetch(
    src: Source,
    *,
    sha256: str | None,
    size: int | None,
    progress: bool | None,
    hint: str | None,
) -> tuple[Path, str | None]:
    """Return the verified file and its sha256 when known without hashing it again."""
    if sha256 is not None:
        sha256 = sha256.lower()
        if not _HEX64.fullmatch(sha256):
            raise WeightsError(
                f"expected sha256 {sha256!r} for {src.location} is not 64 hex digits."
            )
    if src.kind == "hf":
        return _fetch_hf(src, sha256=sha256, progress=progress, hint=hint)
    if src.kind == "url":
        return _fetch_url(src.location, sha256=sha256, size=size, progress=progress, hint=hint)
    if src.kind == "package":
        path = Path(__file__).resolve().parent / "weights" / src.location
        if not path.is_file():
            raise WeightsError(
                f"packaged weights {src.location!r} are missing from {path.parent}: the srzoo "
                "installation is incomplete. Reinstall srzoo."
            )
    else:
        path = Path(src.location).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}. Check the path.")
    if size is not None and path.stat().st_size != size:
        raise WeightsError(
            f"{path} has {path.stat().st_size} bytes, expected {size}: it is not the registered "
            "file. Replace it with the original."
        )
    if sha256 is not None:
        digest = sha256_file(path)
        if digest != sha256:
            raise WeightsError(
                f"{path} has sha256 {digest}, expected {sha256}: it is not the registered file. "
                "Replace it with the original."
            )
    return path, sha256


def _url_cache_path(url: str) -> Path:
    parsed = urllib.parse.urlsplit(url)
    name = Path(urllib.parse.unquote(parsed.path)).name or "weights"
    # One folder per URL keeps the original file name (and its hash prefix) while two URLs that
    # end in the same name never share a cache entry.
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_home() / "downloads" / key / name


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _fetch_url(
    url: str, *, sha256: str | None, size: int | None, progress: bool | None, hint: str | None
) -> tuple[Path, str | None]:
    dest = _url_cache_path(url)
    hit = _cached_url(dest, sha256, locked=False)
    if hit is not None:
        return dest, hit
    if is_offline():
        raise _offline_error(f"{dest.name} (from {url})", hint)
    from filelock import FileLock

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WeightsError(
            f"cannot create the cache folder {dest.parent} ({e}). Set SRZOO_HOME to a writable "
            "folder."
        ) from e
    # A second process asking for the same file waits here and then finds it in the cache.
    with FileLock(str(dest.parent / (dest.name + ".lock"))):
        hit = _cached_url(dest, sha256, locked=True)
        if hit is not None:
            return dest, hit
        digest = _download(url, dest, sha256=sha256, size=size, progress=progress)
    return dest, digest


def _cached_url(dest: Path, sha256: str | None, *, locked: bool) -> str | None:
    """The digest of a complete cache entry for ``dest``, or ``None`` when there is none.

    A stale entry (other bytes than ``sha256``) is removed only by the holder of the lock.
    """
    if not dest.is_file():
        return None
    sidecar = _sidecar(dest)
    try:
        recorded = sidecar.read_text().strip()
    except OSError:
        recorded = ""
    if not _HEX64.fullmatch(recorded):
        # Entries are renamed into place only after verification and the digest is written
        # first, so a file without one was not put there by srzoo: verify it now.
        recorded = sha256_file(dest)
        prefix = _name_hash_prefix(dest.name)
        if prefix is not None and not recorded.startswith(prefix):
            return None
        if sha256 is None or recorded == sha256:
            _write_text_atomic(sidecar, recorded + "\n")
    if sha256 is not None and recorded != sha256:
        # The registry now names different bytes for this URL: fetch them again.
        if locked:
            dest.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
        return None
    return recorded


def _write_text_atomic(path: Path, text: str) -> None:
    with atomic_write(path, suffix=".tmp") as tmp:
        tmp.write_text(text)


def _open_temp(tmp: Path) -> IO[bytes]:
    return tmp.open("wb")


def _download(
    url: str, dest: Path, *, sha256: str | None, size: int | None, progress: bool | None
) -> str:
    """Stream ``url`` to a temporary file beside ``dest``; rename it into place once verified."""
    from . import __version__

    timeout = _timeout()
    request = urllib.request.Request(url, headers={"User-Agent": f"srzoo/{__version__}"})
    what = f"downloading {url}"
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        raise _http_error(url, e.code, e.reason) from e
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise _timeout_error(url, timeout) from e
        raise WeightsError(
            f"{what} failed: {e.reason}. Check the network connection (and any proxy), or "
            "download the file by hand and pass its path as weights=."
        ) from e
    except TimeoutError as e:
        raise _timeout_error(url, timeout) from e
    with response:
        ctype = response.headers.get("Content-Type", "")
        if ctype.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml"):
            raise _html_error(url)
        length_header = response.headers.get("Content-Length")
        expected_len = int(length_header) if length_header and length_header.isdigit() else None
        if size is not None and expected_len is not None and expected_len != size:
            raise WeightsError(
                f"{url} is {expected_len} bytes, but the registered file is {size} bytes: "
                "the server no longer holds the registered file. Report this to srzoo; "
                "nothing was saved."
            )
        sidecar = _sidecar(dest)
        try:
            with atomic_write(dest, suffix=".part") as tmp:
                hexdigest, received = _receive(
                    response,
                    tmp,
                    url=url,
                    dest=dest,
                    total=expected_len or size,
                    progress=progress,
                    timeout=timeout,
                )
                if expected_len is not None and received != expected_len:
                    raise WeightsError(
                        f"{what} was truncated: received {received} of {expected_len} bytes. "
                        "Try again; nothing was saved."
                    )
                if size is not None and received != size:
                    raise WeightsError(
                        f"{what} gave {received} bytes, expected {size}: the file is truncated "
                        "or not the registered one. Try again; nothing was saved."
                    )
                _check_digest(hexdigest, sha256=sha256, name=dest.name, where=url)
                # The digest goes in before the end of the block renames the file into place:
                # a cache entry is complete when its file exists.
                _write_text_atomic(sidecar, hexdigest + "\n")
        except OSError as e:
            sidecar.unlink(missing_ok=True)
            raise _write_error(dest, e) from e
    return hexdigest


def _receive(
    response: IO[bytes],
    tmp: Path,
    *,
    url: str,
    dest: Path,
    total: int | None,
    progress: bool | None,
    timeout: float,
) -> tuple[str, int]:
    """Copy the response body into ``tmp`` and onto the disk; return its sha256 and length."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    received = 0
    bar = tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=dest.name,
        disable=not show_progress(progress),
        leave=False,
    )
    with _open_temp(tmp) as f, bar:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except TimeoutError as e:
                raise _timeout_error(url, timeout) from e
            except OSError as e:
                raise WeightsError(
                    f"downloading {url} broke off after {received} bytes ({e}). Try again; "
                    "nothing was saved."
                ) from e
            if not chunk:
                break
            if received == 0 and _looks_like_html(chunk):
                raise _html_error(url)
            try:
                f.write(chunk)
            except OSError as e:
                raise _write_error(dest, e) from e
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        try:
            f.flush()
            os.fsync(f.fileno())
        except OSError as e:
            raise _write_error(dest, e) from e
    return digest.hexdigest(), received


def _check_digest(digest: str, *, sha256: str | None, name: str, where: str) -> None:
    prefix = _name_hash_prefix(name)
    if sha256 is not None and digest != sha256:
        raise WeightsError(
            f"sha256 mismatch for {where}: expected {sha256}, got {digest}. The download was "
            "corrupted or the file changed upstream; nothing was saved. Try again, and report it "
            "to srzoo if it persists."
        )
    if prefix is not None and not digest.startswith(prefix):
        raise WeightsError(
            f"sha256 mismatch for {where}: its name promises a digest starting with {prefix}, got "
            f"{digest}. The download was corrupted or the file changed upstream; nothing was "
            "saved. Try again, and report it to srzoo if it persists."
        )


def _looks_like_html(head: bytes) -> bool:
    return head.lstrip()[:15].lower().startswith((b"<!doctype", b"<html", b"<?xml", b"<head"))


def _html_error(url: str) -> WeightsError:
    return WeightsError(
        f"{url} returned an HTML page instead of a checkpoint (a login, quota or error page). "
        "Nothing was saved. Open the URL in a browser to see why, or download the file by hand "
        "and pass its path as weights=."
    )


def _http_error(url: str, code: int, reason: object) -> WeightsError:
    if code == 404:
        advice = (
            "The file has moved or the URL is wrong: update srzoo, or download the file by hand "
            "and pass its path as weights=."
        )
    elif code in (401, 403):
        advice = "The server refused access: download the file by hand and pass its path."
    elif code >= 500:
        advice = "The server failed: try again later."
    else:
        advice = "Try again later, or download the file by hand and pass its path as weights=."
    return WeightsError(f"downloading {url} failed with HTTP {code} ({reason}). {advice}")


def _timeout_error(url: str, timeout: float) -> WeightsError:
    return WeightsError(
        f"downloading {url} timed out (no data for {timeout:g} s). Nothing was saved. Check the "
        "connection and try again, or raise SRZOO_DOWNLOAD_TIMEOUT."
    )


def _write_error(dest: Path, e: OSError) -> WeightsError:
    if e.errno == errno.ENOSPC:
        return WeightsError(
            f"no space left on the device while saving {dest.name} into {dest.parent}. Nothing "
            "was kept. Free some space, or set SRZOO_HOME to a folder on a larger disk."
        )
    return WeightsError(
        f"cannot write {dest.name} into {dest.parent} ({e}). Nothing was kept. Check the "
        "folder's permissions, or set SRZOO_HOME to a writable folder."
    )


# --------------------------------------------------------------------------------------------------
# The Hugging Face Hub


def _hf_cache_dir() -> str | None:
    # huggingface_hub reads these once, at import; reading them per call lets a program (or a
    # test) point srzoo at another cache after the import.
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None


def _hf_tqdm(progress: bool | None) -> Any:
    """The ``tqdm_class`` for huggingface_hub: ``None`` keeps its own bar, which follows the same
    terminal rule as srzoo's and also obeys ``HF_HUB_DISABLE_PROGRESS_BARS``; an explicit choice
    overrides both."""
    if progress is None:
        return None
    from tqdm import tqdm

    show = progress

    class _Bar(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = not show
            kwargs.pop("name", None)
            super().__init__(*args, **kwargs)

    return _Bar


def hub_download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    sha256: str | None = None,
    progress: bool | None = None,
    hint: str | None = None,
) -> Path:
    """Fetch one file of a Hub repository into huggingface_hub's cache and verify it.

    Args:
        repo_id: ``owner/name``.
        filename: Path of the file inside the repository.
        revision: Branch, tag or commit (``None``: the default branch).
        sha256: Expected sha256, if known.
        progress: Show a progress bar; ``None`` shows one when stderr is a terminal.
        hint: A command that fills the cache, quoted in the error raised when offline.

    Returns:
        The local path of the file.

    Raises:
        WeightsError: The repository, revision or file does not exist or cannot be reached, the
            file fails verification, or it is not cached while offline.

    Example:
        >>> hub_download("someone/my-edsr", "config.json")
    """
    src = Source(
        "hf", f"hf://{repo_id}/{filename}", repo_id=repo_id, filename=filename, revision=revision
    )
    return _fetch_hf(src, sha256=sha256, progress=progress, hint=hint)[0]


def _fetch_hf(
    src: Source, *, sha256: str | None, progress: bool | None, hint: str | None
) -> tuple[Path, str | None]:
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download, hf_hub_url, try_to_load_from_cache

    endpoint = os.environ.get("HF_ENDPOINT") or None
    cache_dir = _hf_cache_dir()
    offline = is_offline()
    url = hf_hub_url(src.repo_id, src.filename, revision=src.revision, endpoint=endpoint)
    where = f"{src.filename} from the Hub repository {src.repo_id}" + (
        f" at {src.revision}" if src.revision else ""
    )
    try:
        before = try_to_load_from_cache(
            src.repo_id, src.filename, cache_dir=cache_dir, revision=src.revision
        )
    except (ValueError, OSError):
        before = None
    was_cached = isinstance(before, str)
    try:
        local = hf_hub_download(
            src.repo_id,
            src.filename,
            revision=src.revision,
            cache_dir=cache_dir,
            endpoint=endpoint,
            local_files_only=offline,
            tqdm_class=_hf_tqdm(progress),
        )
    except hf_errors.LocalEntryNotFoundError as e:
        if offline:
            raise _offline_error(where, hint) from e
        raise WeightsError(
            f"cannot reach the Hub for {where} ({url}) and it is not cached. Check the "
            "connection and HF_ENDPOINT, then try again."
        ) from e
    except hf_errors.OfflineModeIsEnabled as e:
        raise _offline_error(where, hint) from e
    except hf_errors.RepositoryNotFoundError as e:
        raise WeightsError(
            f"the Hub repository {src.repo_id} was not found, or it is private or gated ({url}). "
            "Check the name; for a private or gated repository, log in (`hf auth login`) or set "
            "HF_TOKEN."
        ) from e
    except hf_errors.RevisionNotFoundError as e:
        raise WeightsError(
            f"revision {src.revision!r} does not exist in the Hub repository {src.repo_id} "
            f"({url}). Check the branch, tag or commit."
        ) from e
    except hf_errors.EntryNotFoundError as e:
        raise WeightsError(
            f"the Hub repository {src.repo_id} has no file {src.filename!r} ({url}). Check the "
            "file name and revision."
        ) from e
    except hf_errors.HfHubHTTPError as e:
        raise WeightsError(f"downloading {url} failed ({e}). Try again later.") from e
    except Exception as e:  # network and filesystem errors of the HTTP client
        raise WeightsError(
            f"downloading {url} failed ({type(e).__name__}: {e}). Nothing was kept in the cache. "
            "Check the connection and free disk space, then try again."
        ) from e
    path = Path(local)
    blob = path.resolve()
    # The blob's name is the Hub's etag: the sha256 of the file for LFS files.
    etag = blob.name if _HEX64.fullmatch(blob.name) else None
    if was_cached:
        if sha256 is not None and etag is not None and etag != sha256:
            raise WeightsError(
                f"{where} in the cache has sha256 {etag}, expected {sha256}: the revision no "
                "longer holds the registered file. Pin the registered revision."
            )
        return path, sha256 or etag
    digest = sha256_file(blob)
    for expected in (etag, sha256):
        if expected is not None and digest != expected:
            blob.unlink(missing_ok=True)
            if path.is_symlink() or path.exists():
                path.unlink(missing_ok=True)
            raise WeightsError(
                f"sha256 mismatch for {where} ({url}): expected {expected}, got {digest}. The "
                "download was corrupted and was removed from the cache; try again."
            )
    return path, digest


# --------------------------------------------------------------------------------------------------
# Registered weights


def _converted_path(digest: str) -> Path:
    return cache_home() / "converted" / f"{digest}.safetensors"


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
    from safetensors.torch import save_file

    try:
        with atomic_write(path, suffix=".part") as tmp:
            save_file(_storage_safe(state), str(tmp), metadata={"format": "pt", **(metadata or {})})
    except OSError as e:
        raise _write_error(path, e) from e


def _converted_state_dict(path: Path, digest: str, source: str) -> StateDict:
    """Read a pickle through its safetensors conversion in the cache, converting it once."""
    target = _converted_path(digest)
    if target.is_file():
        try:
            return read_state_dict(target)
        except WeightsError:
            target.unlink(missing_ok=True)  # a damaged conversion is rebuilt from the original
    from filelock import FileLock

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_error(target, e) from e
    with FileLock(str(target.parent / (target.name + ".lock"))):
        if target.is_file():
            return read_state_dict(target)
        state = read_state_dict(path)
        try:
            save_safetensors_atomic(state, target, {"source": source, "source_sha256": digest})
        except WeightsError:
            # The weights are verified and in memory; a cache that cannot take the converted
            # copy only costs speed next time.
            return state
    return read_state_dict(target)


def load_registered_weights(
    spec: WeightSpec, *, model: str, progress: bool | None = None
) -> StateDict:
    """Fetch, verify and read the checkpoint a :class:`~srzoo.registry.WeightSpec` names.

    A pickle is converted once to safetensors in the cache; later calls read that copy and never
    unpickle again.

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
    path, digest = _fetch_spec(spec, model=model, progress=progress)
    if path.suffix != ".safetensors" and digest is not None:
        return _converted_state_dict(path, digest, spec.source)
    return read_state_dict(path)


def _registered_weights(spec: ModelSpec, scale: int, tag: str, *, advice: str) -> WeightSpec:
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
        >>> _registered_weights(srzoo.model_info("edsr"), 4, "default", advice=".").scale
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


def _fetch_spec(spec: WeightSpec, *, model: str, progress: bool | None) -> tuple[Path, str | None]:
    hint = f"srzoo download {model} --scale {spec.scale}"
    if spec.tag != "default":
        hint += f" --tag {spec.tag}"
    return _fetch(
        parse_source(spec.source),
        sha256=spec.sha256,
        size=spec.size,
        progress=progress,
        hint=hint,
    )


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
    from .registry import get_spec

    spec = get_spec(name)
    s = spec.scale if scale is None else scale
    spec.check_scale(s)
    ws = _registered_weights(spec, s, tag, advice="; there is nothing to download.")
    path, digest = _fetch_spec(ws, model=spec.name, progress=progress)
    if path.suffix != ".safetensors" and digest is not None:
        _converted_state_dict(path, digest, ws.source)
    return path
