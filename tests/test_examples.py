"""Every script in ``examples/`` runs, with small arguments, offline.

A smoke test: each script runs as a user would start it (``python examples/NAME.py ARGS``, a
fresh process in an empty folder, downloads disabled) and must exit 0 and write what its
arguments ask for. ``SMOKE`` holds the arguments per script; a new script without an entry fails
``test_every_example_has_smoke_arguments`` with its name. Placeholders: ``{data}`` is a folder of
twelve small drawn pictures, ``{out}`` a fresh folder for outputs, ``{model}`` a folder holding a
tiny x2 model written by ``srzoo.save_pretrained`` (for ``local-dir:``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class Smoke:
    """How to run one example small.

    Args:
        args: Command-line arguments, with ``{data}`` and ``{out}`` placeholders.
        writes: Paths (with placeholders) that must exist afterwards.
        needs: Modules the script imports beyond srzoo's dev extra; it skips without them.
    """

    args: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()


_TRAIN = ("--batch", "2", "--patch", "8", "--threads", "1")

SMOKE: dict[str, Smoke] = {
    "quickstart.py": Smoke(writes=("quickstart_x4.png", "quickstart_bicubic_x4.png")),
    "train_default.py": Smoke(
        args=(
            *("--arch", "safmn", "--scale", "2", "--data", "{data}", "--iters", "2"),
            *("--val-every", "2", "--arg", "dim=8", "--arg", "n_blocks=1", *_TRAIN),
            *("--out", "{out}/w.safetensors"),
        ),
        writes=("{out}/w.safetensors", "{out}/w.json"),
    ),
    "finetune.py": Smoke(
        args=(
            *("edsr-baseline", "--scale", "2", "--data", "{data}", "--out", "{out}/ft"),
            *("--weights", "none", "--steps", "2", "--val", "2", "--device", "cpu", "--quiet"),
            *("--arg", "n_resblocks=1", "--arg", "n_feats=8", *_TRAIN),
        ),
        writes=("{out}/ft/model.safetensors", "{out}/ft/config.json"),
    ),
    "batch_upscale_ray.py": Smoke(
        args=(
            *("{data}", "{out}/up", "--model", "local-dir:{model}", "--scale", "2"),
            *("--num-cpus", "1"),
        ),
        writes=("{out}/up/a/img_00.png", "{out}/up/b/img_11.png"),
        needs=("ray",),
    ),
}


def _scripts() -> list[str]:
    return sorted(p.name for p in EXAMPLES.glob("*.py"))


def test_every_example_has_smoke_arguments() -> None:
    missing = [name for name in _scripts() if name not in SMOKE]
    assert not missing, (
        f"examples/{missing[0]} has no entry in SMOKE (tests/test_examples.py): add the small "
        "arguments it runs with in a few seconds, offline"
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve small drawn pictures in two sub-folders (examples look recursively)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for i in range(12):
        folder = root / ("a" if i < 6 else "b")
        folder.mkdir(exist_ok=True)
        yy, xx = np.mgrid[0:40, 0:44]
        picture = np.stack([(xx * 5 + i * 20) % 256, (yy * 6) % 256, (xx * yy) % 256], axis=-1)
        picture = np.clip(picture + rng.integers(-20, 20, picture.shape), 0, 255)
        Image.fromarray(picture.astype(np.uint8)).save(folder / f"img_{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny x2 EDSR-baseline written by ``srzoo.save_pretrained``, for ``local-dir:``."""
    import srzoo

    folder = tmp_path_factory.mktemp("model")
    srzoo.save_pretrained(srzoo.create("edsr-baseline", 2, n_resblocks=1, n_feats=8), folder)
    return folder


def _present(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("name", _scripts())
def test_example_runs(name: str, data: Path, model: Path, tmp_path: Path) -> None:
    if name not in SMOKE:
        pytest.fail(f"examples/{name} has no entry in SMOKE")
    smoke = SMOKE[name]
    absent = [m for m in smoke.needs if not _present(m)]
    if absent:
        pytest.skip(f"examples/{name} needs {', '.join(absent)} (not in the dev extra)")
    out = tmp_path / "out"
    out.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    fill = {"data": str(data), "out": str(out), "model": str(model)}
    env = {
        **os.environ,
        "SRZOO_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "SRZOO_HOME": str(tmp_path / "srzoo-home"),
        "OMP_NUM_THREADS": "1",
    }
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *(a.format(**fill) for a in smoke.args)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, f"examples/{name} failed:\n{run.stderr[-3000:]}"
    for path in smoke.writes:
        target = Path(path.format(**fill))
        target = target if target.is_absolute() else work / target
        assert target.exists(), f"examples/{name} did not write {path}"
