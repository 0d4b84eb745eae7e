"""evaluate(): the papers' protocol, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srzoo
from srzoo.evaluation import evaluate
from srzoo.metrics import imresize, psnr, ssim

from .util import CHECKPOINTS, DATA, require_shared

Image = pytest.importorskip("PIL.Image")


class _Nearest(nn.Module):
    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.in_channels = self.out_channels = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="nearest")


def _write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = []
    for i, (h, w) in enumerate(sizes):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 3 % 256, yy * 5 % 256, (xx + yy) % 256], axis=-1)
        img = np.clip(base + rng.integers(0, 20, size=base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
        images.append(img)
    return images


def test_scores_follow_the_protocol(tmp_path: Path) -> None:
    images = _write_images(tmp_path / "HR", [(30, 25), (17, 22)])
    result = evaluate(_Nearest(2), tmp_path / "HR", scale=2)
    assert [i.name for i in result.images] == ["img0.png", "img1.png"]
    for hr, score in zip(images, result.images, strict=True):
        h, w = hr.shape[0] // 2 * 2, hr.shape[1] // 2 * 2
        lr = imresize(hr[:h, :w], scale=0.5)
        sr = np.repeat(np.repeat(lr, 2, axis=0), 2, axis=1)
        assert score.psnr == pytest.approx(psnr(sr, hr[:h, :w], crop_border=2, y_channel=True))
        assert score.ssim == pytest.approx(ssim(sr, hr[:h, :w], crop_border=2, y_channel=True))
    assert result.psnr == pytest.approx(np.mean([i.psnr for i in result.images]))


def test_lr_folder_is_used_when_given(tmp_path: Path) -> None:
    hr = _write_images(tmp_path / "HR", [(20, 20)])[0]
    (tmp_path / "LR").mkdir()
    lr = np.full((10, 10, 3), 128, np.uint8)
    Image.fromarray(lr).save(tmp_path / "LR" / "img0x2.png")
    result = evaluate(_Nearest(2), tmp_path / "HR", scale=2, lr_dir=tmp_path / "LR")
    expected = psnr(np.full((20, 20, 3), 128, np.uint8), hr, crop_border=2, y_channel=True)
    assert result.images[0].psnr == pytest.approx(expected)


def test_missing_lr_file_and_bad_folders_are_clear(tmp_path: Path) -> None:
    _write_images(tmp_path / "HR", [(20, 20)])
    (tmp_path / "LR").mkdir()
    with pytest.raises(srzoo.SrzooError, match=r"no low-resolution file for img0\.png"):
        evaluate(_Nearest(2), tmp_path / "HR", scale=2, lr_dir=tmp_path / "LR")
    with pytest.raises(srzoo.SrzooError, match="not a folder"):
        evaluate(_Nearest(2), tmp_path / "nope", scale=2)
    with pytest.raises(srzoo.SrzooError, match="no images"):
        evaluate(_Nearest(2), tmp_path / "LR", scale=2)
    with pytest.raises(srzoo.SrzooError, match="upscales x2"):
        evaluate(_Nearest(2), tmp_path / "HR", scale=3)


def test_unknown_names_are_refused(tmp_path: Path) -> None:
    _write_images(tmp_path / "HR", [(20, 20)])
    with pytest.raises(srzoo.SrzooError, match=r"no such images .*: nope\.png"):
        evaluate(_Nearest(2), tmp_path / "HR", scale=2, names=["img0.png", "nope.png"])


class _Weighted(_Nearest):
    def __init__(self, scale: int) -> None:
        super().__init__(scale)
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.gain


def test_a_model_on_another_device_is_moved_once_not_per_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy

    import srzoo.inference

    copies = []
    real = copy.deepcopy
    monkeypatch.setattr(srzoo.inference.copy, "deepcopy", lambda x: copies.append(x) or real(x))
    _write_images(tmp_path / "HR", [(20, 20), (24, 26), (30, 22)])
    model = _Weighted(2)
    result = evaluate(model, tmp_path / "HR", scale=2, device="cpu:0")
    assert len(result.images) == 3
    assert len(copies) == 1, "one copy onto the device, not one per image"
    assert model.gain.device == torch.device("cpu"), "the caller's module is left as it was"


def test_results_save_as_csv_and_json(tmp_path: Path) -> None:
    _write_images(tmp_path / "HR", [(20, 18), (16, 16)])
    result = evaluate(_Nearest(2), tmp_path / "HR", scale=2)
    rows = result.save(tmp_path / "r.csv").read_text().splitlines()
    assert rows[0] == "image,psnr,ssim"
    assert rows[-1].startswith("mean,") and len(rows) == 4
    data = json.loads(result.save(tmp_path / "r.json").read_text())
    assert data["psnr"] == pytest.approx(result.psnr)
    assert [i["name"] for i in data["images"]] == ["img0.png", "img1.png"]


def _imdn_set14(scale: int) -> None:
    hr_dir = require_shared(DATA / "benchmark" / "Set14" / "HR")
    ckpt = require_shared(CHECKPOINTS / f"IMDN_x{scale}.pth")
    model = srzoo.load("imdn", scale, weights=ckpt)
    published = {2: 33.6266, 3: 30.3216, 4: 28.5820}[scale]
    # LR made by srzoo's own MATLAB-exact imresize, not the shipped files.
    result = evaluate(model, hr_dir, scale=scale)
    assert result.psnr == pytest.approx(published, abs=0.01)


def test_imdn_set14_x4_through_evaluate_with_srzoo_imresize() -> None:
    _imdn_set14(4)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [2, 3])
def test_imdn_set14_x2_x3_through_evaluate_with_srzoo_imresize(scale: int) -> None:
    _imdn_set14(scale)


def test_eval_command_prints_and_writes_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from srzoo.cli import main

    _write_images(tmp_path / "HR", [(24, 20), (16, 18)])
    model = srzoo.create("edsr-baseline", 2, n_resblocks=1, n_feats=8)
    weights = tmp_path / "w.pth"
    torch.save(model.state_dict(), weights)
    code = main(
        [
            "eval", "edsr-baseline", "--hr", str(tmp_path / "HR"), "--scale", "2",
            "--weights", str(weights), "--csv", str(tmp_path / "s.txt"),
            "--json", str(tmp_path / "s.json"), "--quiet",
        ]
    )  # fmt: skip
    assert code != 0  # the tiny model's weights do not fit the full-size default config
    assert "do not fit" in capsys.readouterr().err
    full = srzoo.create("edsr-baseline", 2)
    torch.save(full.state_dict(), weights)
    code = main(
        [
            "eval", "edsr-baseline", "--hr", str(tmp_path / "HR"), "--scale", "2",
            "--weights", str(weights), "--csv", str(tmp_path / "s.txt"),
            "--json", str(tmp_path / "s.json"), "--quiet",
        ]
    )  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "img0.png" in out and out.splitlines()[-1].startswith("mean")
    assert (tmp_path / "s.txt").read_text().startswith("image,psnr,ssim")
    expected = evaluate(srzoo.load("edsr-baseline", 2, weights=weights), tmp_path / "HR", scale=2)
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["psnr"] == pytest.approx(expected.psnr)
