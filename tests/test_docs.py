"""The documentation: the site builds strictly, its generated parts follow the code, and every
Python block in it runs.

Code blocks: every ```` ```python ```` block of ``docs/*.md`` and ``README.md`` runs, the blocks of
one page in order in one namespace (as a reader types them), in a fresh folder that holds
``photo.png`` (srzoo's drawn sample picture, 24x24) and ``Set14/HR`` with ``Set14/LR_bicubic/X4``
(two drawn pictures and their x4 reductions; not the real benchmark), with downloads disabled
and any socket connection refused. A block preceded by ``<!-- no-test: reason -->`` is skipped;
the reason is required.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import srzoo

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]

FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[^\n]*$")
NO_TEST = re.compile(r"^\s*<!--\s*no-test:(?P<reason>.*?)-->\s*$")


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


hooks = _load("srzoo_docs_hooks", DOCS / "hooks.py")
gen_models = _load("srzoo_docs_gen_models", DOCS / "gen_models.py")


# --------------------------------------------------------------------------------------------
# Code blocks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One fenced Python block: where it starts, its code, and why it is skipped (if it is)."""

    line: int
    code: str
    skip: str | None


def python_blocks(text: str) -> list[Block]:
    """The fenced ``python`` blocks of a Markdown text, with their no-test markers."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, lang = match.group("indent"), match.group("lang")
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if lang == "python":
            previous = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
            marker = NO_TEST.match(previous)
            skip = None
            if marker:
                skip = marker.group("reason").strip()
                assert skip, f"line {i}: a no-test marker needs a reason"
            body = "\n".join(
                ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end]
            )
            blocks.append(Block(i + 1, textwrap.dedent(body), skip))
        i = end + 1
    return blocks


def test_block_parser_reads_fences_markers_and_indentation() -> None:
    text = (
        "# t\n\n```python\na = 1\n```\n\n<!-- no-test: needs a GPU -->\n```python\nb = 2\n```\n"
        "- item\n\n    ```python\n    c = 3\n    ```\n\n```bash\nls\n```\n"
    )
    blocks = python_blocks(text)
    assert [(b.code, b.skip) for b in blocks] == [
        ("a = 1", None),
        ("b = 2", "needs a GPU"),
        ("c = 3", None),
    ]
    with pytest.raises(AssertionError, match="needs a reason"):
        python_blocks("<!-- no-test: -->\n```python\nx = 1\n```\n")


def _working_folder(folder: Path) -> None:
    """``photo.png`` and a two-picture ``Set14`` layout, drawn here (see the module docstring)."""
    from PIL import Image

    from srzoo.metrics import imresize

    # Small, so that every block runs in a fraction of a second on a CPU.
    Image.fromarray(imresize(hooks.sample_picture(96), scale=1 / 4)).save(folder / "photo.png")
    hr, lr = folder / "Set14" / "HR", folder / "Set14" / "LR_bicubic" / "X4"
    hr.mkdir(parents=True)
    lr.mkdir(parents=True)
    for name, picture in [
        ("card", hooks.sample_picture(48)),
        ("flipped", hooks.sample_picture(48)[:, ::-1]),
    ]:
        picture = np.ascontiguousarray(picture)
        Image.fromarray(picture).save(hr / f"{name}.png")
        Image.fromarray(imresize(picture, scale=1 / 4)).save(lr / f"{name}x4.png")


@pytest.fixture
def offline_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh working folder with the pictures the docs use; no network, empty caches."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a documentation block without a no-test marker used the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("SRZOO_HOME", str(tmp_path / "srzoo-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("SRZOO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    work = tmp_path / "work"
    work.mkdir()
    _working_folder(work)
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs(page: Path, offline_folder: Path) -> None:
    blocks = python_blocks(page.read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    ran = 0
    for block in blocks:
        if block.skip is not None:
            continue
        where = f"{page.relative_to(ROOT)}:{block.line}"
        try:
            exec(compile(block.code, where, "exec"), namespace)
        except Exception as error:
            raise AssertionError(
                f"the block at {where} fails: {type(error).__name__}: {error}"
            ) from error
        ran += 1
    if blocks:
        skipped = sum(b.skip is not None for b in blocks)
        assert ran > 0 or skipped == len(blocks)


def test_few_blocks_are_exempt() -> None:
    """The no-test marker is for the rare block that cannot run offline; most run."""
    blocks = [b for page in PAGES for b in python_blocks(page.read_text(encoding="utf-8"))]
    skipped = [b for b in blocks if b.skip is not None]
    assert len(skipped) * 4 <= len(blocks), f"{len(skipped)} of {len(blocks)} blocks are not tested"


# --------------------------------------------------------------------------------------------
# Generated parts
# --------------------------------------------------------------------------------------------


def test_api_reference_covers_every_public_name() -> None:
    text = (DOCS / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: srzoo\.(\w+)$", text, flags=re.M))
    missing = sorted(set(srzoo.__all__) - documented - {"__version__"})
    assert not missing, f"add `::: srzoo.NAME` entries to docs/api.md for {missing}"
    unknown = sorted(documented - set(srzoo.__all__))
    assert not unknown, f"docs/api.md documents names srzoo does not export: {unknown}"


def test_reproduced_numbers_name_registered_checkpoints() -> None:
    entries = gen_models.reproduced()
    assert entries
    for r in entries:
        info = srzoo.model_info(r.model)
        w = info.weights_for(r.scale, r.tag)
        assert w is not None, f"{r.model} x{r.scale} {r.tag}: no such registered weights"
        assert (ROOT / r.checked_by).is_file(), f"{r.checked_by} does not exist"
        assert r.metric in ("psnr_y", "ssim_y")


def test_sample_picture_is_drawn_deterministically() -> None:
    a, b = hooks.sample_picture(64), hooks.sample_picture(64)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert a.std() > 30, "a picture with edges and text, not a flat field"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mkdocs build --strict`` into a temporary folder, offline."""
    pytest.importorskip("mkdocs", reason="the docs dependencies: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings_handlers.python", reason="pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        "SRZOO_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "SRZOO_HOME": str(out.parent / "srzoo-home"),
    }
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stderr[-4000:]}"
    return out


def test_site_builds_strictly_with_every_page(site: Path) -> None:
    for page in DOCS.glob("*.md"):
        name = "index.html" if page.stem == "index" else f"{page.stem}/index.html"
        assert (site / name).is_file(), f"{page.name} was not built"


def test_model_table_has_one_row_per_registered_name(site: Path) -> None:
    html = (site / "models" / "index.html").read_text(encoding="utf-8")
    table = html[: html.index('id="finding-a-model"')]
    rows = re.findall(r"<tr>\s*<td><code>([^<]+)</code></td>", table)
    assert rows == srzoo.list_models(), "the table must list exactly the registry, in order"
    for name in srzoo.list_models(pretrained=True):
        assert f'id="weights-{name}"' in html, f"no weights section for {name}"
    assert "<!-- generated:" not in html


def test_reproduced_numbers_reach_the_pages(site: Path) -> None:
    models = (site / "models" / "index.html").read_text(encoding="utf-8")
    evaluation = (site / "evaluation" / "index.html").read_text(encoding="utf-8")
    for r in gen_models.reproduced():
        assert f"{r.value:.4f}" in evaluation, r
    imdn_row = re.search(r"<tr>\s*<td><code>imdn</code></td>.*?</tr>", models, flags=re.S)
    assert imdn_row is not None and "Set14 28.58" in imdn_row.group(0)


def test_before_after_picture_is_made_at_build_time(site: Path) -> None:
    from PIL import Image

    with Image.open(site / hooks.PICTURE) as sheet:
        # Four panels (nearest, bicubic, built-in, original) of the 256-pixel picture, two rows.
        assert sheet.width > 4 * 256 and sheet.height > 256
    html = (site / "index.html").read_text(encoding="utf-8")
    assert hooks.PICTURE in html


def test_api_reference_renders_docstrings(site: Path) -> None:
    html = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("srzoo.load", "srzoo.upscale", "srzoo.ModelSpec", "srzoo.EvalResult"):
        assert f'id="{name}"' in html, f"{name} is missing from the API reference"
    assert "&gt;&gt;&gt;" in html, "docstring examples render as code"
