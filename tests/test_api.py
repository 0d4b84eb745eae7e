"""load(), create(), the registry and the errors users catch."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import srzoo
from srzoo.errors import (
    IncompatibleWeightsError,
    SrzooError,
    UnknownModelError,
    UnsupportedScaleError,
    WeightsError,
)

from .util import randomize_

SMALL = {"n_resblocks": 2, "n_feats": 16}


def _small_edsr(scale: int = 2) -> torch.nn.Module:
    return randomize_(srzoo.create("edsr-baseline", scale, **SMALL), seed=scale)


def test_list_models_and_patterns() -> None:
    names = srzoo.list_models()
    assert names == sorted(names)
    assert {"edsr", "edsr-baseline", "msrresnet", "rcan", "srresnet"} <= set(names)
    assert srzoo.list_models("edsr*") == ["edsr", "edsr-baseline"]
    assert srzoo.list_models("*rcan*") == ["rcan"]
    assert srzoo.list_models(family="srresnet") == ["msrresnet", "srgan", "srresnet"]


def test_model_info_is_typed_and_complete() -> None:
    info = srzoo.model_info("rcan")
    assert isinstance(info, srzoo.ModelSpec)
    assert info.family == "rcan"
    assert info.scales == (2, 3, 4, 8)
    assert info.scale == 4
    assert info.paper.arxiv == "1807.02758"
    assert info.task == "psnr" and info.colour == "rgb"
    assert info.code_license
    assert "arXiv:1807.02758" in str(info.paper)


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError) as err:
        srzoo.load("edsr_basline", weights=None)
    assert "edsr-baseline" in err.value.suggestions
    assert "edsr-baseline" in str(err.value)
    assert isinstance(err.value, SrzooError)


def test_names_are_forgiving_about_case_and_underscores() -> None:
    assert srzoo.model_info("EDSR_Baseline").name == "edsr-baseline"


def test_unsupported_scale_lists_supported() -> None:
    with pytest.raises(UnsupportedScaleError) as err:
        srzoo.load("edsr", scale=8, weights=None)
    assert err.value.supported == (2, 3, 4)
    assert "x2, x3, x4" in str(err.value)


def test_default_weights_when_none_registered_say_so() -> None:
    with pytest.raises(WeightsError, match="no pretrained weights are registered for 'srresnet'"):
        srzoo.load("srresnet", scale=4)


def test_random_init_is_eval_mode_and_create_is_train_mode() -> None:
    model = srzoo.load("rcan", scale=2, weights=None, n_resgroups=1, n_resblocks=1)
    assert not model.training
    net = srzoo.create("rcan", scale=2, n_resgroups=2, n_resblocks=1)
    assert net.training
    assert len(net.body) == 3  # two groups and the trailing convolution


def test_scale_none_means_default_scale() -> None:
    model = srzoo.load("edsr-baseline", weights=None, **SMALL)
    assert model.scale == 4


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".pt", ".bin"])
def test_local_files_round_trip(tmp_path: Path, suffix: str) -> None:
    ref = _small_edsr()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    else:
        torch.save(ref.state_dict(), path)
    model = srzoo.load("edsr-baseline", 2, weights=path, **SMALL)
    for key, value in ref.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not any(t.is_meta for t in model.state_dict().values())
    # The frozen mean shifts stay frozen after the tensors are assigned.
    assert not model.sub_mean.weight.requires_grad
    assert all(p.requires_grad for n, p in model.named_parameters() if "mean" not in n)


@pytest.mark.parametrize("wrapper", ["params_ema", "params", "state_dict", "model"])
def test_wrappers_and_prefixes_are_unwrapped(tmp_path: Path, wrapper: str) -> None:
    ref = _small_edsr()
    state = {f"module._orig_mod.{k}": v for k, v in ref.state_dict().items()}
    path = tmp_path / "wrapped.pth"
    torch.save({wrapper: state, "epoch": 3}, path)
    model = srzoo.load("edsr-baseline", 2, weights=path, **SMALL)
    assert torch.equal(model.head[0].weight, ref.head[0].weight)


def test_half_precision_checkpoint_gives_float32_model(tmp_path: Path) -> None:
    ref = _small_edsr()
    path = tmp_path / "half.pth"
    torch.save({k: v.half() for k, v in ref.state_dict().items()}, path)
    model = srzoo.load("edsr-baseline", 2, weights=path, **SMALL)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_dtype_and_device_arguments(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(_small_edsr().state_dict(), path)
    model = srzoo.load("edsr-baseline", 2, weights=path, dtype=torch.float64, device="cpu", **SMALL)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    out = model(torch.rand(1, 3, 4, 4, dtype=torch.float64))
    assert out.dtype == torch.float64


def test_wrong_scale_weights_name_the_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "x2.pth"
    torch.save(_small_edsr(2).state_dict(), path)
    with pytest.raises(IncompatibleWeightsError) as err:
        srzoo.load("edsr-baseline", 4, weights=path, **SMALL)
    message = str(err.value)
    assert "tail.0.2.weight" in message  # missing second x2 stage
    assert str(path) in message


def test_wrong_width_reports_shapes(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(_small_edsr(2).state_dict(), path)
    with pytest.raises(IncompatibleWeightsError) as err:
        srzoo.load("edsr-baseline", 2, weights=path, n_resblocks=2, n_feats=32)
    assert err.value.mismatched
    assert "expected (32, 3, 3, 3), found (16, 3, 3, 3)" in str(err.value)


def test_non_strict_load_keeps_what_fits(tmp_path: Path) -> None:
    ref = _small_edsr(2)
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("tail")}
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    model = srzoo.load("edsr-baseline", 2, weights=path, strict=False, **SMALL)
    assert torch.equal(model.head[0].weight, ref.head[0].weight)
    assert not any(t.is_meta for t in model.state_dict().values())


def test_official_layout_without_mean_shift_is_refused(tmp_path: Path) -> None:
    # A network trained without mean shift must not silently gain one on load.
    state = {k: v for k, v in _small_edsr().state_dict().items() if "mean" not in k}
    path = tmp_path / "nomean.pth"
    torch.save(state, path)
    with pytest.raises(IncompatibleWeightsError, match=r"sub_mean\.weight"):
        srzoo.load("edsr-baseline", 2, weights=path, **SMALL)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("srzoo-test: this code ran",))


def test_pickle_that_runs_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"head.0.weight": torch.zeros(1), "payload": _Evil()}, path)
    with pytest.raises(WeightsError, match="never unpickles"):
        srzoo.load("edsr-baseline", 2, weights=path, **SMALL)
    assert "this code ran" not in capsys.readouterr().out


def test_legacy_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil_legacy.pt"
    with path.open("wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(WeightsError):
        srzoo.load("edsr-baseline", 2, weights=path, **SMALL)


def test_html_page_saved_as_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "edsr_x2.pt"
    path.write_text("<!DOCTYPE html><html><body>Not Found</body></html>")
    with pytest.raises(WeightsError, match="HTML"):
        srzoo.load("edsr-baseline", 2, weights=path, **SMALL)


def test_truncated_checkpoint(tmp_path: Path) -> None:
    good = tmp_path / "good.pth"
    torch.save(_small_edsr().state_dict(), good)
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(WeightsError, match="truncated"):
        srzoo.load("edsr-baseline", 2, weights=bad, **SMALL)


def test_truncated_safetensors(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    save_file(_small_edsr().state_dict(), good)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good.read_bytes()[:100])
    with pytest.raises(WeightsError, match="truncated"):
        srzoo.load("edsr-baseline", 2, weights=bad, **SMALL)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        srzoo.load("edsr-baseline", 2, weights=tmp_path / "nope.pth", **SMALL)


def test_register_model_rejects_duplicates() -> None:
    spec = srzoo.model_info("edsr")
    with pytest.raises(ValueError, match="already registered"):
        srzoo.register_model(spec)


def test_import_builds_nothing() -> None:
    import subprocess
    import sys

    code = (
        "import torch.nn as nn\n"
        "calls = []\n"
        "orig = nn.Module.__init__\n"
        "def spy(self, *a, **k):\n"
        "    calls.append(type(self).__name__)\n"
        "    orig(self, *a, **k)\n"
        "nn.Module.__init__ = spy\n"
        "import srzoo\n"
        "print(len(calls))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


def test_channels_last_is_default_and_changes_no_value(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(_small_edsr(2).state_dict(), path)
    fast = srzoo.load("edsr-baseline", 2, weights=path, **SMALL)
    plain = srzoo.load("edsr-baseline", 2, weights=path, channels_last=False, **SMALL)
    assert fast.head[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.head[0].weight.is_contiguous()
    x = torch.rand(2, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), atol=1e-5, rtol=1e-5)


def test_batch_norm_statistics_load_exactly(tmp_path: Path) -> None:
    ref = randomize_(srzoo.create("srresnet", 2, channels=8, num_blocks=1), seed=4).eval()
    ref.trunk[0].rcb[1].num_batches_tracked.fill_(7)
    path = tmp_path / "srresnet.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, path)
    model = srzoo.load("srresnet", 2, weights=path, channels=8, num_blocks=1)
    for key, value in ref.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not any(isinstance(b, torch.nn.Parameter) for b in model.buffers())
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)
