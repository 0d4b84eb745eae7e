"""Where srzoo keeps what it downloads, and the settings every weight source obeys.

Environment: ``SRZOO_HOME`` (cache folder, default ``~/.cache/srzoo``), ``SRZOO_OFFLINE=1`` or
``HF_HUB_OFFLINE=1`` (use the cache only).
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from ..errors import WeightsError

__all__ = [
    "cache_home",
    "is_offline",
    "is_sha256",
    "offline_error",
    "write_error",
]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_TRUE = {"1", "true", "yes", "on"}


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


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a sha256 hex digest (64 lowercase hex digits).

    Args:
        text: The candidate.

    Returns:
        ``True`` for a well-formed digest.

    Example:
        >>> is_sha256("0" * 64)
        True
    """
    return _HEX64.fullmatch(text) is not None


def offline_error(what: str, hint: str | None) -> WeightsError:
    """The error for a file that is not cached while downloads are disabled.

    Args:
        what: The file, as the message should name it.
        hint: A command that fills the cache (``srzoo download ...``), if there is one.

    Returns:
        The error to raise.

    Example:
        >>> raise offline_error("edsr_x4.pt", "srzoo download edsr --scale 4")
    """
    fill = (
        f"Run `{hint}` while online to fill the cache"
        if hint
        else "Download it while online to fill the cache"
    )
    return WeightsError(
        f"{what} is not in the cache and downloads are disabled (SRZOO_OFFLINE or "
        f"HF_HUB_OFFLINE is set). {fill}, or unset the variable."
    )


def write_error(dest: Path, e: OSError) -> WeightsError:
    """The error for a file that cannot be written into its folder.

    Args:
        dest: The file that was being written.
        e: What the operating system said.

    Returns:
        The error to raise, with advice for a full disk or a read-only folder.

    Example:
        >>> raise write_error(Path("/cache/x.pt"), OSError(errno.ENOSPC, "full"))
    """
    if e.errno == errno.ENOSPC:
        return WeightsError(
            f"no space left on the device while saving {dest.name} into {dest.parent}. Nothing "
            "was kept. Free some space, or set SRZOO_HOME to a folder on a larger disk."
        )
    return WeightsError(
        f"cannot write {dest.name} into {dest.parent} ({e}). Nothing was kept. Check the "
        "folder's permissions, or set SRZOO_HOME to a writable folder."
    )
