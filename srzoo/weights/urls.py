"""Downloads from plain URLs into srzoo's cache, verified before they are kept.

A file is streamed to a temporary name beside its cache entry and renamed into place only after
its size and sha256 matched; its digest is recorded next to it (``<file>.sha256``). Two processes
asking for the same file take turns through a file lock, and the second finds it in the cache.

Environment: ``SRZOO_DOWNLOAD_TIMEOUT`` (seconds without data before a download fails,
default 30).
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO

from .._util import atomic_write, progress_bar, write_text_atomic
from .._version import __version__
from ..errors import WeightsError
from .cache import cache_home, is_offline, is_sha256, offline_error, write_error
from .files import sha256_file

__all__ = ["DEFAULT_TIMEOUT", "fetch_url", "name_hash_prefix"]

DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 20
# torch.hub's convention: ``name-<leading hex digits of the sha256>.ext``. Eight digits at least,
# so that a version suffix such as ``-1.pt`` is not mistaken for a hash.
_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


def name_hash_prefix(name: str) -> str | None:
    """The sha256 prefix a torch.hub-style file name promises (``edsr_x4-4f62e9ef.pt``).

    Args:
        name: A file name.

    Returns:
        The hex digits after the last ``-``, or ``None`` when the name carries none.

    Example:
        >>> name_hash_prefix("edsr_x4-4f62e9ef.pt")
        '4f62e9ef'
    """
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


def _url_cache_path(url: str) -> Path:
    parsed = urllib.parse.urlsplit(url)
    name = Path(urllib.parse.unquote(parsed.path)).name or "weights"
    # One folder per URL keeps the original file name (and its hash prefix) while two URLs that
    # end in the same name never share a cache entry.
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_home() / "downloads" / key / name


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def fetch_url(
    url: str, *, sha256: str | None, size: int | None, progress: bool | None, hint: str | None
) -> tuple[Path, str | None]:
    """The cached, verified copy of ``url``, downloading it first when needed.

    Args:
        url: An ``https://`` (or ``http://``) URL.
        sha256: Expected sha256 hex digest, if known.
        size: Expected size in bytes, if known.
        progress: Show a progress bar; ``None`` shows one when stderr is a terminal.
        hint: A command that fills the cache, quoted in the error raised when offline.

    Returns:
        The cached file and its sha256 (``None`` only if it was never computed).

    Raises:
        WeightsError: The download fails or does not verify (nothing is kept), or the file is
            not cached while offline.

    Example:
        >>> fetch_url("https://example.org/edsr_x4-4f62e9ef.pt", sha256=None, size=None,
        ...           progress=False, hint=None)
    """
    dest = _url_cache_path(url)
    hit = _cached_url(dest, sha256, locked=False)
    if hit is not None:
        return dest, hit
    if is_offline():
        raise offline_error(f"{dest.name} (from {url})", hint)
    # imported when a download starts: keeps `import srzoo` fast
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
    if not is_sha256(recorded):
        # Entries are renamed into place only after verification and the digest is written
        # first, so a file without one was not put there by srzoo: verify it now.
        recorded = sha256_file(dest)
        prefix = name_hash_prefix(dest.name)
        if prefix is not None and not recorded.startswith(prefix):
            return None
        if sha256 is None or recorded == sha256:
            write_text_atomic(sidecar, recorded + "\n")
    if sha256 is not None and recorded != sha256:
        # The registry now names different bytes for this URL: fetch them again.
        if locked:
            dest.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
        return None
    return recorded


def _open_temp(tmp: Path) -> IO[bytes]:
    return tmp.open("wb")


def _download(
    url: str, dest: Path, *, sha256: str | None, size: int | None, progress: bool | None
) -> str:
    """Stream ``url`` to a temporary file beside ``dest``; rename it into place once verified."""
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
                write_text_atomic(sidecar, hexdigest + "\n")
        except OSError as e:
            sidecar.unlink(missing_ok=True)
            raise write_error(dest, e) from e
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
    digest = hashlib.sha256()
    received = 0
    bar = progress_bar(
        progress, total=total, desc=dest.name, unit="B", unit_scale=True, unit_divisor=1024
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
                raise write_error(dest, e) from e
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        try:
            f.flush()
            os.fsync(f.fileno())
        except OSError as e:
            raise write_error(dest, e) from e
    return digest.hexdigest(), received


def _check_digest(digest: str, *, sha256: str | None, name: str, where: str) -> None:
    prefix = name_hash_prefix(name)
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
