"""ONNX export: files that run in onnxruntime like the module, at sizes other than the traced one.

Two families in the default run (each export takes seconds), at sizes and batches the trace never
saw; a file that disagrees with the module, or misses an extra, is an error that says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import srzoo
from srzoo.export import check_onnx, export_onnx

from .util import TINY, randomize_

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed")


def _tiny(name: str, scale: int = 2) -> torch.nn.Module:
    return randomize_(srzoo.create(name, scale, **TINY[name]), seed=3).eval()


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
