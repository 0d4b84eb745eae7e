"""MkDocs hooks: the parts of the site that are computed from the code at build time.

- ``<!-- generated:NAME -->`` markers in a page are replaced by the Markdown of
  ``docs/gen_models.py`` (the model table from the registry, the reproduced numbers), so no table
  is maintained by hand and a newly registered family appears on the next build.
- ``images/before-after.png`` is made on every build: the project's own sample picture
  (:func:`sample_picture`, drawn here, so it is srzoo's to ship under its MIT licence) is shrunk
  x4 with srzoo's MATLAB-exact bicubic and upscaled back with the built-in model, which ships
  inside the package: no network, no file outside the repository.

Hooks are plain functions that MkDocs calls (``hooks:`` in ``mkdocs.yml``); nothing here is
imported by srzoo itself.
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
PICTURE = "images/before-after.png"
SAMPLE = "images/sample.png"
MARKER = re.compile(r"<!-- generated:([a-z-]+) -->")


def _gen_models() -> ModuleType:
    """``docs/gen_models.py`` as a module (docs/ is not a package, and not on the path)."""
    name = "srzoo_docs_gen_models"
    spec = importlib.util.spec_from_file_location(name, HERE / "gen_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered before running, as dataclasses look their module up by name.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def sample_picture(size: int = 256) -> npt.NDArray[np.uint8]:
    """srzoo's own sample picture: a drawn test card with the details upscalers are judged on.

    A Siemens star (edges at every angle, finer towards the centre), text, thin lines of falling
    spacing, and flat shapes over a colour gradient. Deterministic: the same array on every call.

    Args:
        size: Side in pixels (a multiple of 4, so it shrinks x4 exactly).

    Returns:
        An ``(size, size, 3)`` uint8 RGB array.

    Example:
        >>> sample_picture().shape
        (256, 256, 3)
    """
    from PIL import Image, ImageDraw, ImageFont

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    base = np.stack([0.35 + 0.5 * xx, 0.45 + 0.35 * yy, 0.85 - 0.5 * xx * yy], axis=-1)
    img = Image.fromarray(np.asarray(base * 255, dtype=np.uint8))
    draw = ImageDraw.Draw(img)
    # Siemens star in the upper left quarter.
    cx = cy = size * 0.27
    radius = size * 0.23
    spokes = 18
    for i in range(spokes):
        a0, a1 = 2 * np.pi * i / spokes, 2 * np.pi * (i + 0.5) / spokes
        points = [(cx, cy)] + [
            (cx + radius * np.cos(a), cy + radius * np.sin(a)) for a in np.linspace(a0, a1, 8)
        ]
        draw.polygon(points, fill=(20, 20, 30))
    # Text: the detail people look at first.
    font = ImageFont.load_default(size=size // 9)
    draw.text((size * 0.55, size * 0.08), "srzoo", fill=(250, 250, 245), font=font)
    small = ImageFont.load_default(size=size // 18)
    draw.text((size * 0.56, size * 0.25), "x4 super-", fill=(30, 30, 40), font=small)
    draw.text((size * 0.56, size * 0.32), "resolution", fill=(30, 30, 40), font=small)
    # Lines with falling spacing (left: wide, right: two pixels apart).
    x = size * 0.06
    gap = 9.0
    while x < size * 0.94 and gap >= 2:
        draw.line([(x, size * 0.58), (x, size * 0.7)], fill=(15, 15, 15), width=1)
        x += gap
        gap *= 0.93
    # Flat shapes: hard colour edges that bicubic blurs.
    draw.ellipse([size * 0.08, size * 0.76, size * 0.3, size * 0.96], fill=(220, 60, 50))
    draw.rectangle([size * 0.38, size * 0.78, size * 0.6, size * 0.95], fill=(40, 120, 200))
    draw.polygon(
        [(size * 0.7, size * 0.96), (size * 0.82, size * 0.75), (size * 0.94, size * 0.96)],
        fill=(250, 200, 40),
    )
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def before_after() -> tuple[bytes, bytes]:
    """The sample picture (PNG) and its before/after sheet at x4 (PNG).

    Returns:
        ``(sample PNG bytes, comparison PNG bytes)``.

    Example:
        >>> sample, sheet = before_after()
    """
    import srzoo
    from srzoo.metrics import imresize

    original = sample_picture()
    small = imresize(original, scale=1 / 4)
    model = srzoo.load_default(4)
    sr = srzoo.upscale(model, small)
    sheet = srzoo.compare(small, {"srzoo built-in": sr, "original": original}, crop=(4, 4, 24, 18))
    return _png(original), _png(sheet)


def _png(image: Any) -> bytes:
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def on_files(files: Any, config: Any) -> Any:
    """Add the pictures made from the code to the site (MkDocs hook)."""
    from mkdocs.structure.files import File

    sample, sheet = before_after()
    files.append(File.generated(config, SAMPLE, content=sample))
    files.append(File.generated(config, PICTURE, content=sheet))
    return files


_GENERATORS: dict[str, Callable[[], str]] = {}


def on_config(config: Any) -> Any:
    """Load the generators once per build (MkDocs hook)."""
    gen = _gen_models()
    _GENERATORS.clear()
    _GENERATORS.update(
        {
            "models-table": gen.models_table,
            "weights": gen.weights_details,
            "reproduced": gen.reproduced_table,
            "precision": gen.precision_table,
        }
    )
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every ``<!-- generated:NAME -->`` marker by its Markdown (MkDocs hook)."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in _GENERATORS:
            known = ", ".join(sorted(_GENERATORS))
            raise ValueError(f"{page.file.src_path}: unknown marker {name!r}; known: {known}")
        return _GENERATORS[name]()

    return MARKER.sub(fill, markdown)
