"""Files of Hugging Face Hub repositories, through ``huggingface_hub``.

``huggingface_hub`` keeps its own cache and honours ``HF_HOME``, ``HF_HUB_CACHE``,
``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` and ``HF_TOKEN``; srzoo adds verification: a freshly downloaded
file is hashed against the Hub's etag (the sha256 of an LFS file) and the registered digest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import WeightsError
from .cache import is_offline, is_sha256, offline_error
from .files import sha256_file

__all__ = ["fetch_hf", "hub_download"]


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
    # imported only when a bar is configured: keeps `import srzoo` fast
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
    return fetch_hf(
        repo_id, filename, revision=revision, sha256=sha256, progress=progress, hint=hint
    )[0]


def fetch_hf(
    repo_id: str,
    filename: str,
    *,
    revision: str | None,
    sha256: str | None,
    progress: bool | None,
    hint: str | None,
) -> tuple[Path, str | None]:
    """Like :func:`hub_download`, and also return the file's sha256 when it is known.

    Args:
        repo_id: As for :func:`hub_download`.
        filename: As for :func:`hub_download`.
        revision: As for :func:`hub_download`.
        sha256: As for :func:`hub_download`.
        progress: As for :func:`hub_download`.
        hint: As for :func:`hub_download`.

    Returns:
        The local path and its sha256 (from the etag, the registry or a fresh hash).

    Raises:
        WeightsError: As for :func:`hub_download`.

    Example:
        >>> path, digest = fetch_hf("someone/my-edsr", "model.safetensors", revision=None,
        ...                         sha256=None, progress=False, hint=None)
    """
    # huggingface_hub takes a noticeable time to import: only when the Hub is used
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download, hf_hub_url, try_to_load_from_cache

    endpoint = os.environ.get("HF_ENDPOINT") or None
    cache_dir = _hf_cache_dir()
    offline = is_offline()
    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
    where = f"{filename} from the Hub repository {repo_id}" + (
        f" at {revision}" if revision else ""
    )
    try:
        before = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision)
    except (ValueError, OSError):
        before = None
    was_cached = isinstance(before, str)
    try:
        local = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=cache_dir,
            endpoint=endpoint,
            local_files_only=offline,
            tqdm_class=_hf_tqdm(progress),
        )
    except hf_errors.LocalEntryNotFoundError as e:
        if offline:
            raise offline_error(where, hint) from e
        raise WeightsError(
            f"cannot reach the Hub for {where} ({url}) and it is not cached. Check the "
            "connection and HF_ENDPOINT, then try again."
        ) from e
    except hf_errors.OfflineModeIsEnabled as e:
        raise offline_error(where, hint) from e
    except hf_errors.RepositoryNotFoundError as e:
        raise WeightsError(
            f"the Hub repository {repo_id} was not found, or it is private or gated ({url}). "
            "Check the name; for a private or gated repository, log in (`hf auth login`) or set "
            "HF_TOKEN."
        ) from e
    except hf_errors.RevisionNotFoundError as e:
        raise WeightsError(
            f"revision {revision!r} does not exist in the Hub repository {repo_id} "
            f"({url}). Check the branch, tag or commit."
        ) from e
    except hf_errors.EntryNotFoundError as e:
        raise WeightsError(
            f"the Hub repository {repo_id} has no file {filename!r} ({url}). Check the "
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
    etag = blob.name if is_sha256(blob.name) else None
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
