"""Small helpers that several layers share: the progress-bar rule and atomic file replacement.

This module imports nothing from srzoo, so any module may use it without an import cycle.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "show_progress"]


def show_progress(progress: bool | None) -> bool:
    """Whether to draw a progress bar: ``progress`` when given, else whether stderr is a terminal.

    Args:
        progress: The caller's choice; ``None`` leaves it to the terminal test.

    Returns:
        ``True`` to draw a bar.

    Example:
        >>> show_progress(False)
        False
    """
    if progress is not None:
        return progress
    stream = sys.stderr
    return stream is not None and hasattr(stream, "isatty") and bool(stream.isatty())


@contextmanager
def atomic_write(target: Path, *, suffix: str = ".tmp", mkstemp: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` if the block succeeds.

    Readers of ``target`` see either the old file or the complete new one, never a partial
    write. The temporary file is removed whatever happens, so a failed or interrupted write
    leaves nothing behind and keeps the old ``target``.

    Args:
        target: The file to write; its folder must exist.
        suffix: Ending of the temporary file's name (which starts with ``.<target name>.``).
        mkstemp: Create the temporary file with :func:`tempfile.mkstemp` (a unique name,
            readable by its owner only). ``False`` leaves creating it to the writer, under a
            per-process name, so the result gets the permissions the umask gives new files.

    Yields:
        The temporary path to write to.

    Raises:
        OSError: The temporary file cannot be created or renamed; nothing is left behind.

    Example:
        >>> with atomic_write(Path("config.json")) as tmp:
        ...     tmp.write_text("{}")
    """
    if mkstemp:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
        os.close(fd)
        tmp = Path(name)
    else:
        tmp = target.with_name(f".{target.name}.{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
