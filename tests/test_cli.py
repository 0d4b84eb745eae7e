"""The srzoo command: list, info, download, and upscale over files and folders."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import save_file

import srzoo
import srzoo.cli
from srzoo.cli import main
from srzoo.image import read_image_array, write_image

from .util import randomize_

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random (but fixed) weights for the full edsr-baseline at x2, in the official layout."""
    net = randomize_(srzoo.create("edsr-baseline", 2), seed=3)
    path = tmp_path_factory.mktemp("weights") / "edsr_baseline_x2.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(RNG.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(RNG.integers(0, 256, (8, 9), dtype=np.uint8)).save(folder / "b.jpg")
    Image.fromarray(RNG.integers(0, 256, (7, 6, 4), dtype=np.uint8)).save(folder / "sub/c.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image, and not an image suffix either")
    return folder


def _upscale(inputs: list[Path], out: Path, weights: Path, *extra: str) -> int:
    args = ["upscale", *map(str, inputs), "-o", str(out), "-m", "edsr-baseline", "--scale", "2"]
    return main([*args, "--weights", str(weights), "--quiet", *extra])


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_upscale_a_folder(
    photos: Path, tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    status = _upscale([photos], out, weights)
    captured = capsys.readouterr()
    assert status == 1, "bad files make the run fail"
    assert _files(out) == {"a.png", "b.png", "sub/c.png"}, "names kept, PNG, no partial files"
    a = read_image_array(out / "a.png")
    assert a.shape == (24, 20, 3) and a.dtype == np.uint8
    assert read_image_array(out / "b.png").shape == (16, 18)
    assert read_image_array(out / "sub/c.png").shape == (14, 12, 4)
    errors = [line for line in captured.err.splitlines() if line]
    assert len(errors) == 2 and all(line.startswith("srzoo: error: ") for line in errors)
    assert any("broken.png" in line for line in errors)
    assert any("empty.png" in line and "empty" in line for line in errors)
    assert "Traceback" not in captured.err
    assert "3 written, 0 skipped (already exist), 2 failed" in captured.out


def test_existing_outputs_are_skipped_unless_overwrite(
    photos: Path, tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = photos / "a.png"
    out = tmp_path / "out"
    out.mkdir()
    marker = b"an existing output"
    (out / "a.png").write_bytes(marker)
    assert _upscale([good], out, weights) == 0
    assert (out / "a.png").read_bytes() == marker
    assert "0 written, 1 skipped" in capsys.readouterr().out
    assert _upscale([good], out, weights, "--overwrite") == 0
    assert read_image_array(out / "a.png").shape == (24, 20, 3)
    assert _files(out) == {"a.png"}


def test_a_failed_run_never_replaces_an_output(
    photos: Path, tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "broken.png").write_bytes(b"precious")
    (out / "a.png").write_bytes(b"precious too")
    assert _upscale([photos / "broken.png"], out, weights, "--overwrite") == 1
    assert (out / "broken.png").read_bytes() == b"precious"

    def fail_halfway(path: Path, image: object, **kwargs: object) -> None:
        Path(path).write_bytes(b"half an image")
        raise OSError("disk full")

    monkeypatch.setattr("srzoo.cli.write_image", fail_halfway)
    assert _upscale([photos / "a.png"], out, weights, "--overwrite") == 1
    assert (out / "a.png").read_bytes() == b"precious too"
    assert _files(out) == {"a.png", "broken.png"}, "no temporary file left behind"


def test_formats_outscale_tiles_and_sixteen_bit(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    deep = RNG.integers(0, 65536, (10, 8, 3), dtype=np.uint16)
    write_image(src / "deep.png", deep)
    out = tmp_path / "out"
    assert _upscale([src / "deep.png"], out, weights, "--tile", "auto", "--overlap", "4") == 0
    result = read_image_array(out / "deep.png")
    assert result.dtype == np.uint16 and result.shape == (20, 16, 3)
    assert _upscale([src / "deep.png"], out, weights, "--format", "jpg", "--outscale", "3") == 0
    assert read_image_array(out / "deep.jpg").shape == (30, 24, 3)
    warning = capsys.readouterr().err
    assert f"srzoo: warning: {out / 'deep.jpg'}: JPEG cannot hold 16 bits" in warning
    assert ".partial" not in warning
    tiled = tmp_path / "tiled"
    assert _upscale([src / "deep.png"], tiled, weights, "--tile", "8", "--overlap", "2") == 0
    assert read_image_array(tiled / "deep.png").shape == (20, 16, 3)


def test_missing_input_and_bad_model(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _upscale([tmp_path / "nope.png"], tmp_path / "out", weights) == 1
    assert "nope.png: no such file or folder" in capsys.readouterr().err
    status = main(["upscale", str(tmp_path), "-o", str(tmp_path / "o"), "-m", "edsr_basline"])
    err = capsys.readouterr().err
    assert status == 2 and "unknown model 'edsr_basline'" in err and "edsr-baseline" in err
    status = main(
        ["upscale", str(tmp_path), "-o", str(tmp_path / "o"), "-m", "edsr", "--scale", "5"]
    )
    assert status == 2 and "x5" in capsys.readouterr().err
    for bad in (["--tile", "zero"], ["--batch-size", "0"], ["--outscale", "-2"]):
        assert main(["upscale", str(tmp_path), "-o", "x", "-m", "edsr", *bad]) == 2
        assert bad[0] in capsys.readouterr().err


def test_list_and_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "edsr*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["edsr", "edsr-baseline"]
    assert main(["list", "--pretrained"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == srzoo.list_models(pretrained=True)
    assert main(["list", "nothing-like-this*"]) == 1

    assert main(["info", "edsr"]) == 0
    out = capsys.readouterr().out
    assert "arXiv:1707.02921" in out and "x2, x3, x4" in out
    assert f"{srzoo.model_info('edsr').num_params():,}" in out
    spec = srzoo.model_info("edsr")
    for w in spec.weights:
        assert w.source in out
        for m in w.metrics:
            assert f"{m.dataset} x{m.scale} {m.metric} {m.value}" in out
    assert main(["info", "rcann"]) == 2
    assert "rcan" in capsys.readouterr().err


def test_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[tuple[object, ...]] = []

    def fake(name: str, scale: int | None = None, *, progress: bool | None = None) -> Path:
        calls.append((name, scale, progress))
        return tmp_path / "edsr_x2.safetensors"

    monkeypatch.setattr(srzoo.cli, "download", fake)
    assert main(["download", "edsr", "--scale", "2", "--quiet"]) == 0
    assert calls == [("edsr", 2, False)]
    assert str(tmp_path / "edsr_x2.safetensors") in capsys.readouterr().out

    def failing(name: str, scale: int | None = None, *, progress: bool | None = None) -> Path:
        raise srzoo.WeightsError("cannot fetch https://example.invalid/x.pt: offline")

    monkeypatch.setattr(srzoo.cli, "download", failing)
    assert main(["download", "edsr"]) == 1
    assert "offline" in capsys.readouterr().err


def test_python_dash_m_is_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "srzoo", "list", "rcan"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.split()[0] == "rcan"
    usage = subprocess.run(
        [sys.executable, "-m", "srzoo", "upscale"], capture_output=True, text=True, timeout=120
    )
    assert usage.returncode == 2 and "required" in usage.stderr


def test_outputs_next_to_inputs(
    photos: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    original = (photos / "a.png").read_bytes()
    # Into the input folder itself: a.png would replace its input; b.jpg becomes b.png.
    assert _upscale([photos / "a.png", photos / "b.jpg"], photos, weights, "--overwrite") == 1
    assert (photos / "a.png").read_bytes() == original
    assert read_image_array(photos / "b.png").shape == (16, 18)
    assert "a.png: the output would replace its input" in capsys.readouterr().err
    # Into a subfolder of an input folder: earlier outputs there are not taken as inputs.
    out = photos / "out"
    assert _upscale([photos], out, weights) == 1
    assert _upscale([photos], out, weights) == 1
    assert "0 written, 4 skipped" in capsys.readouterr().out
    assert not (out / "out").exists()


def test_upscale_a_saved_folder_by_name(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`local-dir:` works wherever a model name does, in upscale() and in the command."""
    folder = tmp_path / "my-model"
    srzoo.save_pretrained(srzoo.load("edsr-baseline", 2, weights=weights), folder)
    image = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    expected = srzoo.upscale(srzoo.load("local-dir:" + str(folder)), image)
    assert np.array_equal(srzoo.upscale("local-dir:" + str(folder), image), expected)
    args = ["upscale", str(tmp_path / "in.png"), "-o", str(tmp_path / "out")]
    assert main([*args, "-m", f"local-dir:{folder}", "--quiet"]) == 0, capsys.readouterr().err
    assert np.array_equal(read_image_array(tmp_path / "out" / "in.png"), expected)
