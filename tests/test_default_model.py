"""srzoo's own default model: weights shipped in the package, offline, and what they score."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

import srzoo
from srzoo.cli import main
from srzoo.metrics import imresize, psnr

from .util import DATA, require_shared

ROOT = Path(__file__).resolve().parents[1]
_spec_qs = importlib.util.spec_from_file_location("quickstart", ROOT / "examples" / "quickstart.py")
assert _spec_qs is not None and _spec_qs.loader is not None
quickstart = importlib.util.module_from_spec(_spec_qs)
_spec_qs.loader.exec_module(quickstart)
# The quickstart's test picture: sharp-edged shapes that a trained model restores and bicubic blurs.
shapes = quickstart.test_picture

PACKAGE_WEIGHTS = Path(srzoo.__file__).resolve().parent / "_data"
SCALES = (2, 3, 4)


def _spec(scale: int) -> srzoo.WeightSpec:
    ws = srzoo.model_info(srzoo.DEFAULT_MODEL).weights_for(scale, srzoo.DEFAULT_WEIGHTS)
    assert ws is not None, f"no default weights registered at x{scale}"
    return ws


def _registered(scale: int, metric: str) -> float:
    (value,) = [
        m.value for m in _spec(scale).metrics if m.dataset == "Set14" and m.metric == metric
    ]
    return value


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Any socket connection fails, and the srzoo and Hub caches are new and empty."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the default model must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    home = tmp_path / "srzoo-home"
    monkeypatch.setenv("SRZOO_HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    return home


def test_packaged_files_are_the_registered_ones() -> None:
    total = 0
    for scale in SCALES:
        ws = _spec(scale)
        assert ws.source.startswith("package://")
        path = PACKAGE_WEIGHTS / ws.source[len("package://") :]
        data = path.read_bytes()
        assert len(data) == ws.size
        assert hashlib.sha256(data).hexdigest() == ws.sha256
        assert ws.license.startswith("MIT")
        with safe_open(str(path), "pt") as f:
            dtypes = {f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
            assert dtypes == {torch.float16}
            assert f.metadata() == {"arch": srzoo.DEFAULT_MODEL, "scale": str(scale)}
        total += len(data)
    assert total <= 2_000_000, f"packaged weights take {total} bytes, over the 2 MB budget"


def test_wheel_ships_the_weights(tmp_path: Path) -> None:
    """The package data setting puts the weights in the built wheel (not only in a checkout)."""
    pytest.importorskip("setuptools")
    out = tmp_path / "wheel"
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*cmd, "-w", str(out), str(ROOT)], check=True, cwd=tmp_path, timeout=300)
    import zipfile

    (wheel,) = out.glob("srzoo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for scale in SCALES:
        assert f"srzoo/_data/{_spec(scale).source[len('package://') :]}" in names


@pytest.mark.parametrize("scale", SCALES)
def test_load_default_offline(scale: int, no_network: Path) -> None:
    model = srzoo.load_default(scale)
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.scale == scale
    out = model(torch.rand(1, 3, 9, 11))
    assert out.shape == (1, 3, 9 * scale, 11 * scale)
    assert not no_network.exists(), "packaged weights are read in place, never cached"
    half = srzoo.load_default(scale, dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}


def test_load_default_refuses_other_scales() -> None:
    with pytest.raises(srzoo.UnsupportedScaleError, match="x2, x3, x4"):
        srzoo.load_default(8)
    with pytest.raises(srzoo.ArgumentTypeError, match="integer"):
        srzoo.load_default(True)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", SCALES)
def test_default_model_beats_bicubic_offline(scale: int, no_network: Path) -> None:
    """Trained weights, not random ones: clearly better than bicubic on sharp-edged shapes."""
    hr = shapes()
    hr = hr[: hr.shape[0] - hr.shape[0] % scale, : hr.shape[1] - hr.shape[1] % scale]
    lr = imresize(hr, scale=1 / scale)
    sr = srzoo.upscale(lr, scale=scale)
    bicubic = imresize(lr, scale=scale)
    gain = psnr(sr, hr, crop_border=scale) - psnr(bicubic, hr, crop_border=scale)
    assert gain > 0.5, f"x{scale}: only {gain:.2f} dB over bicubic"


def test_upscale_without_a_model(no_network: Path, tmp_path: Path) -> None:
    lr = imresize(shapes(96), scale=0.5)
    same = srzoo.upscale(srzoo.load_default(2), lr)
    assert np.array_equal(srzoo.upscale(lr, scale=2), same)
    assert np.array_equal(srzoo.upscale(image=lr, scale=2), same)
    path = tmp_path / "in.png"
    Image.fromarray(lr).save(path)
    pil = srzoo.upscale(path, scale=2)
    assert np.array_equal(np.asarray(pil), same)
    t = torch.from_numpy(lr).permute(2, 0, 1).float() / 255
    assert srzoo.upscale(t, scale=3).shape == (3, lr.shape[0] * 3, lr.shape[1] * 3)


def test_upscale_without_a_model_explains_what_is_missing() -> None:
    lr = shapes(32)
    with pytest.raises(TypeError, match="needs scale="):
        srzoo.upscale(lr)
    with pytest.raises(TypeError, match="needs an image"):
        srzoo.upscale("edsr-baseline", scale=2)  # a model name, then no image
    with pytest.raises(TypeError, match="needs an image"):
        srzoo.upscale(srzoo.load_default(2))
    with pytest.raises(srzoo.UnsupportedScaleError):
        srzoo.upscale(lr, scale=8)


def test_cli_upscale_uses_the_default_model(
    no_network: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lr = imresize(shapes(96), scale=1 / 3)
    Image.fromarray(lr).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    status = main(["upscale", str(tmp_path / "photo.png"), "-o", str(out), "--scale", "3"])
    assert status == 0, capsys.readouterr().err
    result = np.asarray(Image.open(out / "photo.png"))
    assert np.array_equal(result, srzoo.upscale(lr, scale=3))


@pytest.mark.parametrize(
    ("extra", "message"),
    [([], "needs --scale"), (["--scale", "4", "--weights", "x.pth"], "takes no --weights")],
)
def test_cli_default_model_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    Image.fromarray(shapes(48)).save(tmp_path / "a.png")
    assert main(["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_tag_wins_over_a_folder_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weights="srzoo" is the tag even where the working directory has a folder called srzoo."""
    (tmp_path / "srzoo").mkdir()
    monkeypatch.chdir(tmp_path)
    model = srzoo.load(srzoo.DEFAULT_MODEL, 4, weights=srzoo.DEFAULT_WEIGHTS)
    reference = srzoo.load_default(4)
    for a, b in zip(model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("scale", [4, *(pytest.param(s, marks=pytest.mark.slow) for s in (2, 3))])
def test_set14_reproduces_the_registered_numbers(scale: int, no_network: Path) -> None:
    """Set14 by the papers' protocol (LR by srzoo's imresize) gives the numbers that the registry
    and the docs quote, well above bicubic."""
    hr = require_shared(DATA / "benchmark" / "Set14" / "HR")
    result = srzoo.evaluate(srzoo.load_default(scale), hr, scale=scale, progress=False)
    assert result.psnr == pytest.approx(_registered(scale, "psnr_y"), abs=1e-3)
    assert result.ssim == pytest.approx(_registered(scale, "ssim_y"), abs=1e-3)
    bicubic = srzoo.evaluate(_Bicubic(scale), hr, scale=scale, progress=False).psnr
    # The bicubic figure that the docs quote beside the model's.
    assert bicubic == pytest.approx({2: 30.32, 3: 27.63, 4: 26.09}[scale], abs=0.005)
    assert result.psnr > bicubic + 1.5


class _Bicubic(torch.nn.Module):
    """MATLAB's bicubic upscaling of the 8-bit image (rounded after each pass, as MATLAB does for
    uint8) as a model, to score it by the same protocol."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = self.out_channels = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        as_uint8 = x.mul(255).round().clamp(0, 255).to(torch.uint8)
        return imresize(as_uint8, scale=self.scale).float() / 255


def test_training_logs_match_the_shipped_weights() -> None:
    """Every shipped file has its training log: seed, data, schedule, and the device it ran on."""
    logs = ROOT / "examples" / "logs"
    for scale in SCALES:
        final = sorted(logs.glob(f"safmn_srzoo_x{scale}*.json"))[-1]
        log = json.loads(final.read_text())
        assert log["arch"] == srzoo.DEFAULT_MODEL and log["scale"] == scale
        shipped = srzoo.load_default(scale)
        assert log["params"] == sum(p.numel() for p in shipped.parameters())
        assert log["complete"] and log["iters_done"] == log["iters"]
        names = {Path(f).stem for f in log["train_files"]} | {
            Path(f).stem for f in log["val_files"]
        }
        assert not any("set5" in n.lower() or "set14" in n.lower() for n in names)
        assert {Path(f).parent.name for f in log["train_files"]} == {"BSD100", "SunHays80"}
        assert set(log["train_files"]).isdisjoint(log["val_files"])


def _tiny_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(12):
        img = shapes(48, seed=i) if i % 2 else rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
        folder = root / ("a" if i < 6 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"img_{i:02d}.png")
    return root


def test_training_script_runs_and_its_weights_load(tmp_path: Path) -> None:
    """examples/train_default.py end to end on a tiny dataset: weights that srzoo.load() takes,
    a log that names every file, and the same weights again from the same arguments."""
    data = _tiny_dataset(tmp_path / "data")
    script = ROOT / "examples" / "train_default.py"
    common = ["--arch", "safmn", "--scale", "2", "--data", str(data), "--batch", "2"]
    common += ["--patch", "8", "--iters", "3", "--val-every", "2", "--threads", "1", "--half"]
    outs = []
    for run in ("one", "two"):
        out = tmp_path / run / "w.safetensors"
        subprocess.run(
            [sys.executable, str(script), *common, "--out", str(out)],
            check=True,
            timeout=300,
            capture_output=True,
        )
        outs.append(out)
    log = json.loads(outs[0].with_suffix(".json").read_text())
    assert log["complete"] and log["iters"] == 3
    assert [h["iter"] for h in log["history"]] == [2, 3]
    assert len(log["train_files"]) + len(log["val_files"]) == 12
    model = srzoo.load("safmn", 2, weights=outs[0])
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)
    first, second = (load_file(str(out)) for out in outs)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), f"{key}: same seed and arguments, new weights"


def test_quickstart_runs_offline(
    no_network: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """The README's main job: the quickstart upscales x4, offline, and beats bicubic."""
    monkeypatch.chdir(tmp_path)
    quickstart.demo()
    printed = capsys.readouterr().out
    srzoo_db, bicubic_db = (float(x) for x in re.findall(r"(\d+\.\d+) dB", printed))
    assert srzoo_db > bicubic_db + 0.5
    assert Image.open("quickstart_x4.png").size == (192, 192)
    quickstart.upscale_file(Path("quickstart_input.png"))
    assert Image.open("quickstart_input_x4.png").size == (192, 192)
