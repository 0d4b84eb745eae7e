"""Weight sources: a Hub file, a URL, a file shipped inside srzoo, or a local path, each turned
into a verified local file.

``hf://owner/repo/path/file@revision`` goes through ``huggingface_hub`` (:mod:`.hf`); an
``https://`` URL is downloaded into ``$SRZOO_HOME`` (:mod:`.urls`); ``package://<file>`` names a
file shipped in ``srzoo/_data/``; anything else is a local path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import WeightsError
from .cache import is_sha256
from .files import sha256_file
from .hf import fetch_hf
from .urls import fetch_url

__all__ = ["PACKAGE_DATA", "Source", "fetch", "fetch_verified", "parse_source"]

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "_data"
"""The folder of weight files shipped inside srzoo (``package://<file>``)."""


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
            that escapes ``srzoo/_data``).

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
                "srzoo/_data>."
            )
        return Source("package", name)
    return Source("local", source)


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
    path, _ = fetch_verified(
        parse_source(source), sha256=sha256, size=size, progress=progress, hint=hint
    )
    return path


def fetch_verified(
    src: Source,
    *,
    sha256: str | None,
    size: int | None,
    progress: bool | None,
    hint: str | None,
) -> tuple[Path, str | None]:
    """Like :func:`fetch`, for a parsed source, and also return the file's sha256.

    Args:
        src: The parsed source.
        sha256: Expected sha256 hex digest, if known.
        size: Expected size in bytes, if known.
        progress: Show a progress bar; ``None`` shows one when stderr is a terminal.
        hint: A command that fills the cache, quoted in the error raised when offline.

    Returns:
        The verified file and its sha256 when known without hashing it again (``None`` for a
        local or packaged file given no digest to check).

    Raises:
        WeightsError: As for :func:`fetch`.

    Example:
        >>> fetch_verified(parse_source("model.pth"), sha256=None, size=None, progress=None,
        ...                hint=None)
    """
    if sha256 is not None:
        sha256 = sha256.lower()
        if not is_sha256(sha256):
            raise WeightsError(
                f"expected sha256 {sha256!r} for {src.location} is not 64 hex digits."
            )
    if src.kind == "hf":
        return fetch_hf(
            src.repo_id,
            src.filename,
            revision=src.revision,
            sha256=sha256,
            progress=progress,
            hint=hint,
        )
    if src.kind == "url":
        return fetch_url(src.location, sha256=sha256, size=size, progress=progress, hint=hint)
    if src.kind == "package":
        path = PACKAGE_DATA / src.location
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
