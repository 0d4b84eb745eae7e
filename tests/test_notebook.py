"""srzoo in a notebook: the example notebook runs, and models and scores display as tables.

``examples/notebook.ipynb`` is executed top to bottom in a kernel of the test environment
(nbclient, ipykernel), offline, in a fresh folder; the repository keeps it with its outputs
stripped.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import srzoo
from srzoo.evaluation import EvalResult, ImageScore

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


def test_model_spec_renders_as_tables() -> None:
    info = srzoo.model_info("imdn")
    markdown = info._repr_markdown_()
    assert markdown.startswith("**`imdn`**")
    assert f"| parameters | {info.num_params(4):,} at x4 |" in markdown
    assert "](https://arxiv.org/abs/1909.11856)" in markdown
    # One row per registered checkpoint, with the authors' numbers.
    weight_rows = [ln for ln in markdown.splitlines() if re.match(r"\| x\d \| default \|", ln)]
    assert len(weight_rows) == len(info.weights) == 3
    assert "Set14 x4 psnr_y 28.58" in markdown
    html = info._repr_html_()
    assert html.count("<table>") == 2 and '<a href="https://arxiv.org/abs/1909.11856">' in html


def test_model_spec_without_weights_says_so_and_escapes_html() -> None:
    info = srzoo.model_info("srcnn")
    assert not info.weights
    assert "No pretrained weights registered" in info._repr_markdown_()
    assert info._repr_html_().count("<table>") == 1
    # Text from the registry is escaped, never markup of its own.
    odd = dataclasses.replace(info, description="a <b>bold</b> | claim")
    assert "a &lt;b&gt;bold&lt;/b&gt; | claim" in odd._repr_html_()
    assert "a <b>bold</b> \\| claim" in odd._repr_markdown_()


def test_eval_result_renders_mean_and_every_image() -> None:
    result = EvalResult(
        scale=4,
        images=(ImageScore("a|b.png", 30.0, 0.9), ImageScore("<c>.png", 32.0, 0.8)),
        crop_border=4,
    )
    markdown = result._repr_markdown_()
    assert "PSNR 31.0000 dB, SSIM 0.8500" in markdown
    assert "| a\\|b.png | 30.0000 | 0.9000 |" in markdown
    assert "| **mean** | **31.0000** | **0.8500** |" in markdown
    html = result._repr_html_()
    assert "&lt;c&gt;.png" in html and "<c>" not in html
    assert html.count("<tr>") == 4  # header, two images, mean


def test_notebook_is_committed_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[docs]'")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, (
                "strip the outputs of examples/notebook.ipynb before committing it"
            )


def test_notebook_runs_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[docs]'")
    nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[docs]'")
    pytest.importorskip("ipykernel", reason="pip install -e '.[docs]'")
    # The kernel inherits this environment: no downloads, an empty cache.
    monkeypatch.setenv("SRZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SRZOO_HOME", str(tmp_path / "srzoo-home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    kinds = {kind for out in outputs for kind in out.get("data", {})}
    assert "image/png" in kinds, "the before/after comparison shows inline"
    assert {"text/markdown", "text/html"} & kinds, "model_info and evaluate show as tables"
    printed = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "downloads are disabled" in printed, "offline, the authors' weights say what to do"
    evaluated = notebook.cells[-1].outputs[0]["data"]["text/markdown"]
    psnr = float(re.search(r"PSNR (\d+\.\d+) dB", evaluated).group(1))  # type: ignore[union-attr]
    assert np.isfinite(psnr) and psnr > 20
    assert (tmp_path / "notebook_benchmark" / "card.png").is_file()
