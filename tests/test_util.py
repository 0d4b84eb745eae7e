"""The shared helpers: the progress-bar rule and atomic file replacement."""

from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import pytest

from srzoo._util import atomic_write, show_progress

from .util import FakeTerminal


def test_show_progress_follows_the_choice_then_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert show_progress(True) is True
    assert show_progress(False) is False
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert show_progress(None) is False
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    assert show_progress(None) is True
    assert show_progress(False) is False
    monkeypatch.setattr(sys, "stderr", None)  # pythonw and some services have no stderr
    assert show_progress(None) is False
    monkeypatch.setattr(sys, "stderr", object())  # a replacement without isatty
    assert show_progress(None) is False


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_write(target, suffix=".part") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.")
        assert tmp.name.endswith(".part")
        tmp.write_text("new")
        assert target.read_text() == "old", "the target changes only when the block ends"
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


@pytest.mark.parametrize("mkstemp", [True, False])
def test_atomic_write_keeps_the_old_file_on_failure(tmp_path: Path, mkstemp: bool) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with (
        pytest.raises(RuntimeError, match="writer failed"),
        atomic_write(target, mkstemp=mkstemp) as tmp,
    ):
        tmp.write_text("half")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    # A writer that fails before creating anything is cleaned up after too.
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "new.txt", mkstemp=mkstemp):
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_write_without_mkstemp_names_and_permissions(tmp_path: Path) -> None:
    target = tmp_path / "image.png"
    with atomic_write(target, suffix=".partial", mkstemp=False) as tmp:
        assert tmp == tmp_path / f".image.png.{os.getpid()}.partial"
        assert not tmp.exists(), "the writer creates the file"
        tmp.write_bytes(b"x")
    assert target.read_bytes() == b"x"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_atomic_write_with_mkstemp_is_private_to_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "w.safetensors"
    with atomic_write(target) as tmp:
        assert tmp.is_file()
        tmp.write_bytes(b"x")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_atomic_write_cleans_up_when_the_rename_fails(tmp_path: Path) -> None:
    target = tmp_path / "taken"
    (target / "inside").mkdir(parents=True)  # a folder cannot be replaced by a file
    with pytest.raises(OSError), atomic_write(target) as tmp:
        tmp.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
