"""Fine-tuning end to end: weights loaded with a report, scale transfer as the EDSR paper did it,
``examples/finetune.py`` (held-out PSNR, save_pretrained, resume, torchrun with Gloo giving one
process's result), a pretrained model that keeps its Set14 score, and the Ray Data example."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import srzoo
from srzoo.contract import model_config

from .test_data import write_images
from .util import CHECKPOINTS, DATA, require_shared

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = {"n_resblocks": 1, "n_feats": 8}
TINY_ARGS = ["--arg", "n_resblocks=1", "--arg", "n_feats=8"]


def _example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"srzoo_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _save(model: torch.nn.Module, path: Path) -> Path:
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_load_weights_reports_what_fitted(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x2 = _save(srzoo.create("edsr-baseline", 2, **TINY), tmp_path / "x2.safetensors")
    model = srzoo.create("edsr-baseline", 4, **TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(srzoo.IncompatibleWeightsError, match=r"tail\.0\.2\.weight"):
        srzoo.load_weights(model, x2)
    report = srzoo.load_weights(model, x2, strict=False)
    assert isinstance(report, srzoo.LoadReport) and not report.complete
    assert report.missing == ("tail.0.2.weight", "tail.0.2.bias") and report.unexpected == ()
    assert report.reinitialised == report.missing and report.source == str(x2)
    state = load_file(str(x2))
    after = model.state_dict()
    for k in report.loaded:
        assert torch.equal(after[k], state[k]), k
    for k in report.reinitialised:
        assert torch.equal(after[k], before[k]), k
    assert "re-initialised: tail.0.2.weight, tail.0.2.bias" in str(report)

    # A state dict works too (wrappers unwrapped), resized tensors are reported and skipped.
    x3 = srzoo.create("edsr-baseline", 3, **TINY)
    report3 = srzoo.load_weights(x3, {"params": state}, strict=False)
    assert [k for k, _, _ in report3.resized] == ["tail.0.0.weight", "tail.0.0.bias"]
    assert report3.resized[0][1:] == ((72, 8, 3, 3), (32, 8, 3, 3))
    assert srzoo.load_weights(srzoo.create("edsr-baseline", 2, **TINY), x2).complete
    with pytest.raises(srzoo.IncompatibleWeightsError):
        srzoo.load_weights(model, {"unrelated": torch.zeros(1)}, strict=False)
    with pytest.raises(srzoo.ArgumentTypeError):
        srzoo.load_weights(model, 3)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [3, 4])
def test_scale_transfer_loads_all_but_the_upsampler(tmp_path: Path, scale: int) -> None:
    torch.manual_seed(0)
    x2 = _save(srzoo.create("edsr-baseline", 2, **TINY), tmp_path / "x2.safetensors")
    model = srzoo.load(
        "edsr-baseline", scale, weights=x2, from_scale=2, channels_last=False, **TINY
    )
    assert model.scale == scale and model(torch.rand(1, 3, 5, 6)).shape == (
        1,
        3,
        5 * scale,
        6 * scale,
    )
    report = model.srzoo_load_report
    state, own = load_file(str(x2)), model.state_dict()
    # What differs between the x2 and x`scale` networks is exactly what was re-initialised.
    fresh = srzoo.create("edsr-baseline", scale, **TINY).state_dict()
    differs = {k for k in own if k not in state or state[k].shape != own[k].shape}
    assert set(report.reinitialised) == differs and differs
    assert all(k.startswith("tail.") for k in differs)
    for k in own:
        if k not in differs:
            assert torch.equal(own[k], state[k]), k
        else:
            assert own[k].shape == fresh[k].shape
    config = model_config(model)
    assert config is not None and "re-initialised for" in str(config.weights)
    srzoo.save_pretrained(model, tmp_path / "out")
    again = srzoo.load(f"local-dir:{tmp_path / 'out'}", channels_last=False)
    assert all(
        torch.equal(a, b) for a, b in zip(again.state_dict().values(), own.values(), strict=True)
    )


def test_scale_transfer_still_refuses_weights_of_another_network(tmp_path: Path) -> None:
    wide = _save(
        srzoo.create("edsr-baseline", 2, n_resblocks=1, n_feats=16), tmp_path / "w.safetensors"
    )
    with pytest.raises(srzoo.IncompatibleWeightsError, match="head"):
        srzoo.load("edsr-baseline", 3, weights=wide, from_scale=2, **TINY)
    with pytest.raises(srzoo.ArgumentError, match="from_scale"):
        srzoo.load("edsr-baseline", 3, weights=None, from_scale=2, **TINY)
    with pytest.raises(srzoo.UnsupportedScaleError):
        srzoo.load("edsr-baseline", 3, weights=wide, from_scale=5, **TINY)


def test_scale_transfer_of_an_official_checkpoint() -> None:
    path = require_shared(CHECKPOINTS / "IMDN_x2.pth")
    model = srzoo.load("imdn", 3, weights=path, from_scale=2)
    report = model.srzoo_load_report
    assert report.reinitialised == ("upsampler.0.weight", "upsampler.0.bias")
    assert not report.unexpected and len(report.loaded) == len(model.state_dict()) - 2


def _run_finetune(args: list[str]) -> dict[str, Any]:
    threads = torch.get_num_threads()  # the script sets --threads for the whole process
    try:
        result: dict[str, Any] = _example("finetune").main(args)
    finally:
        torch.set_num_threads(threads)
    return result


def _common(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "edsr-baseline",
        "--scale",
        "2",
        "--data",
        str(data),
        "--out",
        str(out),
        "--weights",
        "none",
        *TINY_ARGS,
        "--patch",
        "12",
        "--lr",
        "2e-3",
        "--val",
        "2",
        "--quiet",
        "--threads",
        "1",
        *extra,
    ]


def test_finetune_from_random_weights_raises_held_out_psnr(tmp_path: Path) -> None:
    write_images(tmp_path / "data", n=6, size=(48, 48))
    out = tmp_path / "out"
    log = _run_finetune(_common(tmp_path / "data", out, "--steps", "40", "--batch", "4"))
    assert log["psnr_after"] > log["psnr_before"] + 3
    assert len(log["held_out"]) == 2 and log["steps"] == 40
    # What was saved is the model that was scored, and srzoo.load reads it back.
    model = srzoo.load(f"local-dir:{out}", channels_last=False)
    pairs = [srzoo.data.lr_from_hr(srzoo.data.read_rgb(f), 2) for f in log["held_out"]]
    assert srzoo.train.psnr_on(model, pairs, scale=2) == pytest.approx(log["psnr_after"])
    assert json.loads((out / "finetune.json").read_text())["psnr_after"] == log["psnr_after"]


def test_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    write_images(tmp_path / "data", n=5, size=(40, 40))
    data = tmp_path / "data"
    straight = _run_finetune(
        _common(data, tmp_path / "a", "--steps", "6", "--batch", "2", "--ema", "0.5")
    )
    _run_finetune(_common(data, tmp_path / "b", "--steps", "3", "--batch", "2", "--ema", "0.5"))
    resumed = _run_finetune(
        _common(data, tmp_path / "b", "--steps", "6", "--batch", "2", "--ema", "0.5", "--resume")
    )
    assert resumed["losses"] == straight["losses"] and len(resumed["losses"]) == 6
    a, b = (
        load_file(str(tmp_path / "a" / "model.safetensors")),
        load_file(str(tmp_path / "b" / "model.safetensors")),
    )
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_gan_recipe_runs(tmp_path: Path) -> None:
    write_images(tmp_path / "data", n=3, size=(40, 40))
    log = _run_finetune(
        _common(
            tmp_path / "data",
            tmp_path / "out",
            "--steps",
            "2",
            "--batch",
            "2",
            "--gan",
            "--vgg-weights",
            "none",
            "--val",
            "1",
        )
    )
    assert len(log["losses"]) == 2 and all(np.isfinite(log["losses"]))
    state = torch.load(tmp_path / "out" / "train_state.pt", weights_only=True)
    assert "net_d" in state and state["step"] == 2


def test_torchrun_with_two_processes_equals_one_with_the_doubled_batch(tmp_path: Path) -> None:
    write_images(tmp_path / "data", n=5, size=(40, 40))
    data = tmp_path / "data"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = _common(data, tmp_path / "ddp", "--steps", "4", "--batch", "2")
    # `python -m torch.distributed.run` is the `torchrun` command, whichever bin folder holds it.
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    run = subprocess.run(
        [*launcher, str(EXAMPLES / "finetune.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    one = _run_finetune(_common(data, tmp_path / "one", "--steps", "4", "--batch", "4"))
    ddp = json.loads((tmp_path / "ddp" / "finetune.json").read_text())
    assert ddp["losses"] == pytest.approx(one["losses"], rel=1e-5)
    a = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    b = load_file(str(tmp_path / "one" / "model.safetensors"))
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert not all(
        torch.equal(a[k], srzoo.create("edsr-baseline", 2, **TINY).state_dict()[k]) for k in a
    )


@pytest.mark.slow
def test_finetuning_a_pretrained_model_keeps_its_set14_score(tmp_path: Path) -> None:
    ckpt = require_shared(CHECKPOINTS / "IMDN_x4.pth")
    train = require_shared(DATA / "train")
    set14 = require_shared(DATA / "benchmark" / "Set14" / "HR")
    start = time.perf_counter()
    log = _run_finetune(
        [
            "imdn",
            "--scale",
            "4",
            "--data",
            str(train),
            "--weights",
            str(ckpt),
            "--out",
            str(tmp_path / "out"),
            "--steps",
            "10",
            "--batch",
            "4",
            "--patch",
            "32",
            "--lr",
            "1e-5",
            "--val",
            "4",
            "--quiet",
        ]
    )
    before = srzoo.evaluate(srzoo.load("imdn", 4, weights=ckpt), set14, scale=4, progress=False)
    after = srzoo.evaluate(
        srzoo.load(f"local-dir:{tmp_path / 'out'}"), set14, scale=4, progress=False
    )
    seconds = time.perf_counter() - start
    print(
        f"Set14 Y-PSNR {before.psnr:.3f} -> {after.psnr:.3f} dB; held-out "
        f"{log['psnr_before']:.3f} -> {log['psnr_after']:.3f} dB; {seconds:.0f} s"
    )
    assert after.psnr >= before.psnr - 0.05


@pytest.mark.slow
def test_ray_batch_upscale_equals_upscale(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    paths = write_images(tmp_path / "in", n=3, size=(20, 24))
    (tmp_path / "in" / "sub").mkdir()
    shutil.move(paths[2], tmp_path / "in" / "sub" / paths[2].name)
    torch.manual_seed(0)
    model = srzoo.create("edsr-baseline", 2, **TINY)
    srzoo.save_pretrained(model, tmp_path / "model")
    ray_example = _example("batch_upscale_ray")
    written = ray_example.main(
        [
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            "--model",
            f"local-dir:{tmp_path / 'model'}",
            "--scale",
            "2",
            "--num-cpus",
            "2",
        ]
    )
    assert written == 3
    reference = srzoo.load(f"local-dir:{tmp_path / 'model'}")
    for src in sorted((tmp_path / "in").rglob("*.png")):
        rel = src.relative_to(tmp_path / "in")
        got = np.asarray(srzoo.image.read_image(tmp_path / "out" / rel))
        expected = np.asarray(srzoo.upscale(reference, srzoo.image.read_image(src)))
        assert got.shape == expected.shape and np.array_equal(got, expected), rel
