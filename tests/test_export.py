"""ONNX export: files that run in onnxruntime like the module, at sizes other than the traced one.

The default run exports one family per distinct code path (each export takes seconds), at sizes
and batches the trace never saw; the slow run exports every model with a tiny configuration. A
file that disagrees with the module, or misses an extra, is an error that says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import srzoo
from srzoo.export import check_onnx, export_onnx

from .util import TINY, randomize_, small_scale

# One model per code path that the exporter sees differently.
REPRESENTATIVES = {
    "srcnn": "MATLAB bicubic enlargement before the network",
    "realesrgan-x2plus": "padding to the fold, then pixel-unshuffle",
    "safmn": "max pooling to a grid that follows the image size",
}
# Slower (8 s and 18 s of export), so with the slow tests: the attention families' paths.
SLOW_REPRESENTATIVES = {
    "ditn": "attention over patches, padding to the patch multiple inside forward",
    "swinir": "shifted-window attention, masks and orders computed for the padded size",
}

# Families export_onnx refuses even for one input size, and why: it raises an ExportError with
# the exporter's reason and writes no file. A family that starts exporting fails here: move it
# out. (RGT and IPT export for one input size: they declare onnx_fixed_size_reason.)
# What export_onnx says when it refuses: the exporter failed, or the file fails, gives the wrong
# size or other numbers in onnxruntime at a size it was not traced at.
REFUSED = r"cannot be exported|fails in onnxruntime|gives shape|differs from PyTorch"
NOT_EXPORTED = {"atd": "its token grouping sorts, and ONNX export has no stable sort"}

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")


def _tiny(name: str, scale: int = 2) -> torch.nn.Module:
    return randomize_(srzoo.create(name, scale, **TINY[name]), seed=3).eval()


def _assert_exports(tmp_path: Path, name: str) -> None:
    model = _tiny(name, small_scale(name))
    if srzoo.model_info(name).family in NOT_EXPORTED:
        for dynamic in (True, False):
            with pytest.raises(srzoo.ExportError, match=REFUSED):
                export_onnx(
                    model, tmp_path / f"{name}.onnx", dynamic=dynamic, example_size=(24, 20)
                )
        assert not (tmp_path / f"{name}.onnx").exists()
        return
    if isinstance(getattr(model, "onnx_fixed_size_reason", None), str):
        with pytest.raises(srzoo.ExportError, match="dynamic=False"):
            export_onnx(model, tmp_path / f"{name}.onnx")
        export_onnx(model, tmp_path / f"{name}.onnx", dynamic=False, example_size=(24, 20))
        return
    # export_onnx checks the traced size and one that is no multiple of the model's multiple.
    path = export_onnx(model, tmp_path / f"{name}.onnx", example_size=(24, 20))
    assert check_onnx(model, path, sizes=[(9, 14)], batch=1) <= 1e-4


@pytest.mark.parametrize(
    "name",
    [
        *sorted(REPRESENTATIVES),
        *(pytest.param(n, marks=pytest.mark.slow) for n in sorted(SLOW_REPRESENTATIVES)),
    ],
)
def test_each_code_path_exports_with_a_free_size(tmp_path: Path, name: str) -> None:
    _assert_exports(tmp_path, name)


class SizeBranch(torch.nn.Module):
    """Pads small inputs in a Python branch, which the trace fixes to the example size's case."""

    scale, in_channels, out_channels = 2, 3, 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < 15 or w < 15:
            x = F.pad(x, (0, max(15 - w, 0), 0, max(15 - h, 0)), mode="replicate")
        mask = F.interpolate(F.max_pool2d(x, 7, 3), size=x.shape[-2:], mode="nearest")
        y = F.interpolate(x * torch.sigmoid(mask), scale_factor=2.0, mode="nearest")
        return y[..., : 2 * h, : 2 * w]


def test_a_graph_that_only_holds_for_the_traced_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(srzoo.ExportError, match=REFUSED):
        export_onnx(SizeBranch().eval(), tmp_path / "branch.onnx", example_size=(24, 20))
    assert not (tmp_path / "branch.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(n for n in TINY if n in srzoo.list_models()))
def test_every_registered_model_exports(tmp_path: Path, name: str) -> None:
    _assert_exports(tmp_path, name)


def test_a_model_that_needs_one_size_says_so(tmp_path: Path) -> None:
    class OneSize(torch.nn.Module):
        onnx_fixed_size_reason = "its pooling grid is fixed at construction"
        scale, in_channels, out_channels = 2, 3, 3

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")

    model = OneSize().eval()
    with pytest.raises(srzoo.ExportError, match=r"pooling grid is fixed.*dynamic=False"):
        export_onnx(model, tmp_path / "one.onnx")
    assert not (tmp_path / "one.onnx").exists()
    path = export_onnx(model, tmp_path / "one.onnx", dynamic=False, example_size=(8, 6))
    assert check_onnx(model, path, sizes=[(8, 6)]) <= 1e-4


@pytest.mark.parametrize("name", ["realesr-animevideov3", "rcan"])
def test_exported_files_agree_at_new_sizes_and_batches(tmp_path: Path, name: str) -> None:
    model = _tiny(name)
    path = export_onnx(model, tmp_path / "sub" / f"{name}.onnx", example_size=(24, 20))
    assert path == tmp_path / "sub" / f"{name}.onnx" and path.stat().st_size > 0
    assert not list(path.parent.glob(".*partial"))
    # Sizes and a batch the trace never saw.
    worst = check_onnx(model, path, sizes=[(13, 11), (31, 40)], batch=3)
    assert worst <= 1e-4


def test_a_fixed_shape_file(tmp_path: Path) -> None:
    model = _tiny("realesr-animevideov3")
    path = export_onnx(model, tmp_path / "fixed.onnx", dynamic=False, example_size=(16, 12))
    ort = pytest.importorskip("onnxruntime")
    shape = ort.InferenceSession(str(path)).get_inputs()[0].shape
    assert shape == [1, 3, 16, 12]


def test_a_file_that_disagrees_is_refused(tmp_path: Path) -> None:
    model = _tiny("realesr-animevideov3")
    path = export_onnx(model, tmp_path / "good.onnx", example_size=(16, 16))
    with torch.no_grad():
        model.body[0].bias.add_(1.0)  # the module changes after export
    with pytest.raises(srzoo.ExportError, match="differs from PyTorch"):
        check_onnx(model, path, sizes=[(16, 16)])


def test_training_mode_and_bad_sizes_are_refused(tmp_path: Path) -> None:
    model = _tiny("realesr-animevideov3").train()
    with pytest.raises(srzoo.ArgumentError, match=r"model\.eval\(\)"):
        export_onnx(model, tmp_path / "m.onnx")
    with pytest.raises(srzoo.ArgumentError, match="example_size"):
        export_onnx(model.eval(), tmp_path / "m.onnx", example_size=(0, 8))
    assert not (tmp_path / "m.onnx").exists()


def test_a_missing_extra_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import now raises ImportError
    with pytest.raises(srzoo.MissingDependencyError, match=r"srzoo\[onnx\]"):
        export_onnx(_tiny("realesr-animevideov3"), tmp_path / "m.onnx")
