"""`srzoo upscale` stopped by SIGTERM or SIGINT: no temporary file left, a clear exit status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file

import srzoo
import srzoo.cli
from srzoo.cli import main

from .util import randomize_

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

EXIT = {signal.SIGTERM: 143, signal.SIGINT: 130}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = randomize_(srzoo.create("edsr-baseline", 2), seed=3)
    path = tmp_path_factory.mktemp("weights") / "edsr_baseline_x2.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def _image(path: Path, side: int) -> Path:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _args(image: Path, out: Path, weights: Path, *extra: str) -> list[str]:
    return [
        "upscale",
        str(image),
        "-o",
        str(out),
        "-m",
        "edsr-baseline",
        "--scale",
        "2",
        "--weights",
        str(weights),
        "--quiet",
        *extra,
    ]


class _Stray(BaseException):
    """Raised by the handler a test installs, if srzoo did not install its own."""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_during_a_write_leaves_nothing_behind(
    tmp_path: Path,
    weights: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    signum: signal.Signals,
) -> None:
    def stray(sig: int, frame: FrameType | None) -> None:
        raise _Stray(sig)

    def write_then_signal(path: Path, image: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"half an image")
        os.kill(os.getpid(), signum)
        time.sleep(30)  # the signal interrupts this
        raise AssertionError("not interrupted")

    image = _image(tmp_path / "a.png", 8)
    out = tmp_path / "out"
    monkeypatch.setattr(srzoo.cli, "write_image", write_then_signal)
    previous = signal.signal(signum, stray)
    try:
        status = main(_args(image, out, weights))
        after = signal.getsignal(signum)
    finally:
        signal.signal(signum, previous)
    assert status == EXIT[signum]
    assert after is stray, "the caller's handler is back once main() returns"
    assert list(out.iterdir()) == [], "no hidden temporary file, no partial output"
    err = capsys.readouterr().err
    assert f"srzoo: error: interrupted by {signum.name}" in err and "Traceback" not in err


def test_an_ignored_signal_stays_ignored(
    tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `nohup` (SIGHUP ignored) a hang-up must not stop the job; SIGTERM still does."""
    during: dict[signal.Signals, object] = {}

    def record(path: Path, image: object, **kwargs: object) -> None:
        during.update({s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM)})
        Path(path).write_bytes(b"an image")

    monkeypatch.setattr(srzoo.cli, "write_image", record)
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        assert main(_args(_image(tmp_path / "a.png", 8), tmp_path / "out", weights)) == 0
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert during[signal.SIGHUP] is signal.SIG_IGN
    assert callable(during[signal.SIGTERM]), "srzoo stops cleanly on SIGTERM"


def test_main_restores_the_signal_handlers() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    assert main(["list", "edsr"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before


# The child starts with Ctrl-C's default handler, as from an interactive shell: a test run that
# a shell started in the background (`pytest &`) passes SIGINT on as ignored, and srzoo keeps
# ignored signals ignored (test_an_ignored_signal_stays_ignored).
_SLOW_WRITE = """
import pathlib, signal, sys, time
import srzoo.cli

signal.signal(signal.SIGINT, signal.default_int_handler)

def slow_write(path, image, **kwargs):
    pathlib.Path(path).write_bytes(b"half an image")
    pathlib.Path(sys.argv[1]).touch()  # tell the test the temporary file exists
    time.sleep(120)

srzoo.cli.write_image = slow_write
sys.exit(srzoo.cli.main(sys.argv[2:]))
"""


def _wait_for(condition: object, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_signal_to_the_process_during_a_write(
    tmp_path: Path, weights: Path, signum: signal.Signals
) -> None:
    image = _image(tmp_path / "a.png", 8)
    out = tmp_path / "out"
    started = tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITE, str(started), *_args(image, out, weights)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(started.exists, proc)
        assert any(p.name.endswith(".partial") for p in out.iterdir())
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == EXIT[signum], err
    assert f"srzoo: error: interrupted by {signum.name}" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_sigterm_while_the_model_runs(tmp_path: Path, weights: Path) -> None:
    """`python -m srzoo` on a job of many tiles, terminated once it computes."""
    image = _image(tmp_path / "big.png", 512)
    out = tmp_path / "out"
    done = tmp_path / "done.png"
    _image(done, 8)
    # The first (tiny) image is written quickly; the big one keeps the model busy for long.
    args = _args(done, out, weights, "--tile", "24", "--overlap", "4")
    args.insert(2, str(image))
    proc = subprocess.Popen(
        [sys.executable, "-m", "srzoo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for((out / "done.png").exists, proc)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "srzoo: error: interrupted by SIGTERM" in err
    assert sorted(p.name for p in out.iterdir()) == ["done.png"], "only finished outputs"
