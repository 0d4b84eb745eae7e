"""The srzoo command: list, info, download, and upscale over files and folders."""

from __future__ import annotations

import json
import os
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
    # A file srzoo did not write (from a.png) is not a.png's output: kept, and the input fails.
    marker = b"someone else's file"
    (out / "a.png").write_bytes(marker)
    for _ in range(2):
        assert _upscale([good], out, weights) == 1
        captured = capsys.readouterr()
        assert "0 written, 0 skipped (already exist), 1 failed" in captured.out
        assert f"{out / 'a.png'} exists and srzoo did not write it from a.png" in captured.err
    assert (out / "a.png").read_bytes() == marker
    assert _upscale([good], out, weights, "--overwrite") == 0
    assert read_image_array(out / "a.png").shape == (24, 20, 3)
    assert _files(out) == {"a.png"}
    # Its own output from an earlier run is skipped.
    written = (out / "a.png").read_bytes()
    assert _upscale([good], out, weights) == 0
    assert "0 written, 1 skipped (already exist), 0 failed" in capsys.readouterr().out
    assert (out / "a.png").read_bytes() == written
    # srzoo's output of another input of that name (x.jpg's, asked for x.png) is not skipped.
    other = _folder(tmp_path / "other", {"a.jpg": (4, 4, 3)})
    assert _upscale([other / "a.jpg"], out, weights) == 1
    assert "srzoo did not write it from a.jpg" in capsys.readouterr().err


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
    # Into a subfolder of an input folder: earlier outputs there are not taken as inputs. The
    # b.png written above is an input now, whose output out/b.png is also b.jpg's: both fail,
    # on every run, and neither is reported as skipped.
    out = photos / "out"
    capsys.readouterr()
    for run in range(2):
        assert _upscale([photos], out, weights) == 1
        captured = capsys.readouterr()
        written = 2 if run == 0 else 0
        assert f"{written} written, {2 - written} skipped (already exist), 4 failed" in captured.out
        assert f"{photos / 'b.png'}: {out / 'b.png'} would also be the output of" in captured.err
        assert f"{photos / 'b.jpg'}: {out / 'b.png'} would also be the output of" in captured.err
    assert _files(out) == {"a.png", "sub/c.png"}


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


def _folder(root: Path, names: dict[str, tuple[int, ...]]) -> Path:
    """A folder of random images: file name (relative) -> array shape."""
    for name, shape in names.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return root


def test_name_collisions_fail_on_every_run(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """x.png and x.jpg both map to out/x.png: neither is written, on any run, and a rerun does
    not call the other input's output (or its own) 'skipped'."""
    src = _folder(tmp_path / "in", {"x.png": (6, 5, 3), "x.jpg": (6, 5, 3), "y.png": (4, 4, 3)})
    out = tmp_path / "out"
    for run, extra in enumerate([(), (), ("--overwrite",)]):
        assert _upscale([src], out, weights, *extra) == 1
        captured = capsys.readouterr()
        written = 0 if run == 1 else 1
        skipped = 1 if run == 1 else 0
        assert f"{written} written, {skipped} skipped (already exist), 2 failed" in captured.out
        for mine, other in (("x.png", "x.jpg"), ("x.jpg", "x.png")):
            line = f"{src / mine}: {out / 'x.png'} would also be the output of {src / other}"
            assert line in captured.err
        assert _files(out) == {"y.png"}
    # The same from two folders, and from files named one by one.
    a = _folder(tmp_path / "a", {"p.png": (4, 4, 3)})
    b = _folder(tmp_path / "b", {"p.png": (4, 4, 3)})
    assert _upscale([a, b], tmp_path / "two", weights) == 1
    assert f"{a / 'p.png'}: {tmp_path / 'two' / 'p.png'} would also be the output of " in (
        capsys.readouterr().err
    )
    assert _upscale([a / "p.png", b / "p.png"], tmp_path / "two", weights) == 1
    assert not (tmp_path / "two" / "p.png").exists()


def test_an_input_given_twice_is_upscaled_once(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _folder(tmp_path / "in", {"a.png": (4, 5, 3)})
    out = tmp_path / "out"
    assert _upscale([src / "a.png", src / "a.png"], out, weights) == 0
    assert "1 written, 0 skipped (already exist), 0 failed" in capsys.readouterr().out
    assert _upscale([src, src / "a.png", tmp_path / "in" / ".." / "in"], out, weights) == 0
    assert "0 written, 1 skipped (already exist), 0 failed" in capsys.readouterr().out
    assert _files(out) == {"a.png"}


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading or running a model fails the test: setup errors must come first."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded or run before the output folder was checked")

    for name in ("load", "load_default", "upscale"):
        monkeypatch.setattr(srzoo.cli, name, refuse)


@pytest.mark.usefixtures("no_model")
def test_an_unusable_output_folder_is_a_setup_error(
    photos: Path,
    tmp_path: Path,
    weights: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a_file = tmp_path / "taken"
    a_file.write_bytes(b"a file, not a folder")
    assert _upscale([photos / "a.png"], a_file, weights) == 2
    err = capsys.readouterr().err
    assert f"srzoo: error: the output {a_file} exists and is not a folder" in err
    assert a_file.read_bytes() == b"a file, not a folder"

    below_a_file = a_file / "out"
    assert _upscale([photos / "a.png"], below_a_file, weights) == 2
    err = capsys.readouterr().err
    assert f"srzoo: error: cannot create the output folder {below_a_file} (" in err

    def no_write(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied", str(tmp_path / "ro" / ".probe-x"))

    monkeypatch.setattr("tempfile.mkstemp", no_write)
    out = tmp_path / "ro"
    assert _upscale([photos / "a.png"], out, weights) == 2
    err = capsys.readouterr().err
    assert f"srzoo: error: cannot write into the output folder {out} (Permission denied)" in err
    assert "probe" not in err and len(err.splitlines()) == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anyway")
@pytest.mark.usefixtures("no_model")
def test_a_read_only_output_folder_is_a_setup_error(
    photos: Path, tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert _upscale([photos / "a.png"], out, weights) == 2
        assert f"cannot write into the output folder {out}" in capsys.readouterr().err
        assert _upscale([photos / "a.png"], out / "sub", weights) == 2
        assert f"cannot create the output folder {out / 'sub'}" in capsys.readouterr().err
    finally:
        out.chmod(0o700)
    assert list(out.iterdir()) == []


def test_a_bad_model_leaves_no_new_output_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "new" / "out"
    assert main(["upscale", str(tmp_path), "-o", str(out), "-m", "edsr_basline"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_jpg_outputs_in_the_input_folder_are_not_inputs_of_a_rerun(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _folder(tmp_path / "in", {"a.png": (5, 4, 3), "sub/b.png": (4, 6)})
    before = _files(src)
    for run, extra in enumerate([(), (), ("--overwrite",)]):
        assert _upscale([src], src, weights, "--format", "jpg", *extra) == 0, capsys.readouterr()
        counts = ("0 written, 2 skipped" if run == 1 else "2 written, 0 skipped") + " (already"
        assert counts in capsys.readouterr().out
    assert _files(src) == before | {"a.jpg", "sub/b.jpg"}
    assert read_image_array(src / "a.jpg").shape == (10, 8, 3)
    # In another format, the earlier outputs are still not inputs (nor in the way).
    assert _upscale([src], src, weights, "--format", "webp") == 0, capsys.readouterr()
    assert "2 written, 0 skipped (already exist), 0 failed" in capsys.readouterr().out
    assert _files(src) == before | {"a.jpg", "sub/b.jpg", "a.webp", "sub/b.webp"}
    # A shell glob names the outputs too: they are still not inputs.
    assert _upscale([src / "a.png", src / "a.jpg"], src, weights, "--format", "jpg") == 0
    assert "0 written, 1 skipped (already exist), 0 failed" in capsys.readouterr().out


def test_an_image_srzoo_did_not_write_is_never_taken_for_an_output(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """c.jpg beside c.png is the user's photo: c.png's output would replace it, on every run."""
    src = _folder(tmp_path / "in", {"c.png": (5, 4, 3), "c.jpg": (5, 4, 3)})
    photo = (src / "c.jpg").read_bytes()
    for extra in [(), ("--overwrite",)]:
        assert _upscale([src], src, weights, "--format", "jpg", *extra) == 1
        captured = capsys.readouterr()
        assert "0 written, 0 skipped (already exist), 2 failed" in captured.out
        assert f"{src / 'c.png'}: its output {src / 'c.jpg'} is the input {src / 'c.jpg'}" in (
            captured.err
        )
        assert f"{src / 'c.jpg'}: the output would replace its input" in captured.err
    assert (src / "c.jpg").read_bytes() == photo


def test_an_input_folder_inside_the_output_folder(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    src = _folder(out / "in", {"a.png": (4, 4, 3), "in/b.png": (4, 4, 3)})
    # in/in/b.png is written to out/in/b.png: inside the input folder, not an input next time.
    assert _upscale([src], out, weights) == 0
    assert "2 written" in capsys.readouterr().out
    assert _files(out) == {"in/a.png", "in/in/b.png", "a.png", "in/b.png"}
    assert _upscale([src], out, weights) == 0
    assert "0 written, 2 skipped (already exist), 0 failed" in capsys.readouterr().out


def test_links_and_folders_in_the_way(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _folder(tmp_path / "in", {"a.png": (4, 4, 3)})
    (src / "gone.png").symlink_to(tmp_path / "nowhere.png")
    out = tmp_path / "out"
    assert _upscale([src], out, weights) == 1
    captured = capsys.readouterr()
    assert f"{src / 'gone.png'}: a broken symbolic link" in captured.err
    assert "1 written, 0 skipped (already exist), 1 failed" in captured.out
    assert _upscale([src / "gone.png"], out, weights) == 1
    assert f"{src / 'gone.png'}: a broken symbolic link" in capsys.readouterr().err
    # An output name taken by a folder is a failure, not a skipped file.
    (out / "b.png").mkdir()
    _folder(src, {"b.png": (4, 4, 3)})
    assert _upscale([src / "b.png"], out, weights) == 1
    captured = capsys.readouterr()
    assert "0 written, 0 skipped (already exist), 1 failed" in captured.out
    assert f"{out / 'b.png'} exists and is not a file" in captured.err


def test_animated_and_huge_inputs_fail_clearly(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _folder(tmp_path / "in", {"a.png": (12, 10, 3)})
    first, *rest = [Image.new("RGB", (8, 6), (40 * i, 0, 0)) for i in range(3)]
    first.save(src / "anim.gif", save_all=True, append_images=rest)
    out = tmp_path / "out"
    assert _upscale([src], out, weights) == 1
    captured = capsys.readouterr()
    assert f"srzoo: error: {src / 'anim.gif'}: the file has 3 frames" in captured.err
    assert _files(out) == {"a.png"}
    limit = Image.MAX_IMAGE_PIXELS
    assert _upscale([src / "a.png"], out, weights, "--overwrite", "--max-pixels", "100") == 1
    err = capsys.readouterr().err
    assert "a.png: the image has 120 pixels, over the limit of 100" in err and "--max-pixels" in err
    assert limit == Image.MAX_IMAGE_PIXELS, "the limit is the command's, for its run only"
    assert _upscale([src / "a.png"], out, weights, "--overwrite", "--max-pixels", "0") == 0
    assert limit == Image.MAX_IMAGE_PIXELS


def test_a_folder_without_images_is_reported(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no images here")
    assert _upscale([tmp_path / "in"], tmp_path / "out", weights) == 0
    captured = capsys.readouterr()
    assert f"srzoo: warning: {tmp_path / 'in'}: no image files" in captured.err
    assert "0 written, 0 skipped (already exist), 0 failed" in captured.out


def test_sixteen_bit_gray_and_warnings_while_reading(
    tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "gray16.png", RNG.integers(0, 65536, (10, 8), dtype=np.uint16))
    out = tmp_path / "out"
    assert _upscale([src / "gray16.png"], out, weights) == 0
    result = read_image_array(out / "gray16.png")
    assert result.dtype == np.uint16 and result.shape == (20, 16)
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(src / "deep.tif", RNG.integers(0, 65536, (6, 5, 3), dtype=np.uint16))
    assert _upscale([src / "deep.tif"], out, weights) == 0
    err = capsys.readouterr().err
    assert f"srzoo: warning: {src / 'deep.tif'}: a 16-bit colour TIFF is read as 8 bits" in err


def test_the_help_states_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["upscale", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("would also be", "Software", "not inputs", "143", "--max-pixels"):
        assert phrase in text


def test_the_overlap_default_is_the_networks(
    photos: Path, tmp_path: Path, weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --overlap, upscale() picks it from the network's receptive field."""
    seen: list[object] = []

    def fake(model: object, image: np.ndarray, **kwargs: object) -> np.ndarray:
        seen.append(kwargs["overlap"])
        return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)

    monkeypatch.setattr(srzoo.cli, "upscale", fake)
    assert _upscale([photos / "a.png"], tmp_path / "out", weights, "--tile", "8") == 0
    assert _upscale([photos / "a.png"], tmp_path / "o2", weights, "--overlap", "3") == 0
    assert seen == [None, 3]


def test_info_on_a_checkpoint_file_prints_what_was_detected(
    weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(weights)]) == 0
    out = capsys.readouterr().out
    for expected in ("family:        edsr", "name:          edsr-baseline", "scale:         x2"):
        assert expected in out
    assert "n_resblocks=16" in out and "layout:        official" in out
    assert "registered:    no" in out
    assert main(["info", "edsr"]) == 0  # names keep their meaning
    assert main(["info", str(weights.parent / "absent.pth")]) == 2
    assert "not found" in capsys.readouterr().err


def test_upscale_with_a_checkpoint_file_as_the_model(
    photos: Path, tmp_path: Path, weights: Path
) -> None:
    out = tmp_path / "out"
    args = ["upscale", str(photos / "a.png"), "-o", str(out), "-m", str(weights), "--quiet"]
    assert main(args) == 0
    assert read_image_array(out / "a.png").shape[:2] == (24, 20)
    reference = tmp_path / "ref"
    assert _upscale([photos / "a.png"], reference, weights) == 0
    np.testing.assert_array_equal(
        read_image_array(out / "a.png"), read_image_array(reference / "a.png")
    )


def test_bench(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "espcn", "--size", "16", "--runs", "2", "--dtype", "bf16"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("espcn x3 16x16 batch 1 bfloat16 on cpu (") and "ms/image" in line
    assert main(["bench", "espcn", "--size", "16", "--runs", "1", "--batch", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["model"], result["batch"], result["runs"]) == ("espcn", 2, 1)
    assert result["ms_per_image"] > 0 and result["compile_s"] is None
    assert main(["bench", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err


# Runs the command's entry point (`srzoo list edsr`) or not, then reuses a freed 64 MiB block.
_REUSE = """
import contextlib, io, resource, sys
import torch
import srzoo.cli

if sys.argv[1] == "command":
    sys.argv = ["srzoo", "list", "edsr"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert srzoo.cli.run() == 0
faults = []
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20)  # 64 MiB, filled, then freed
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(faults[-1])
"""
_ALLOCATOR_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def _faults_on_reuse(mode: str, **env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if k not in _ALLOCATOR_ENV}
    out = subprocess.run(
        [sys.executable, "-c", _REUSE, mode],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    return int(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_command_keeps_freed_memory_in_its_process() -> None:
    """A freed 64 MiB block is reused without page faults in a process the command ran in; by
    default glibc returns it and the next one faults in 16k fresh pages."""
    assert _faults_on_reuse("plain") == pytest.approx(16384, rel=0.1)
    assert _faults_on_reuse("command") < 100
    # An allocator setting the user made is theirs: the command leaves the allocator alone.
    assert _faults_on_reuse("command", MALLOC_TRIM_THRESHOLD_="131072") > 10000


def test_the_installed_command_runs_through_run() -> None:
    from importlib.metadata import entry_points

    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "srzoo"]
    assert script.load() is srzoo.cli.run
