"""The registry as a whole: the model contract for every built-in model, and the families' files.

Output shape at every scale, odd sizes, batches, 1x1 inputs, the input left untouched, gradients
reaching every trainable parameter, and ``torch.compile(fullgraph=True)`` capture, each at a
tiny configuration; every family module imported, registered and tested; registry entries.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import srzoo
import srzoo.archs

from ..util import TINY, check_compiles, check_forward_contract, check_gradients, randomize_

BUILTIN = [
    n
    for n in srzoo.list_models()
    if srzoo.model_info(n).builder.__module__.startswith("srzoo.archs")
]

FAMILIES = sorted(m.name for m in pkgutil.iter_modules(srzoo.archs.__path__) if m.name[0] != "_")

TESTS = Path(__file__).resolve().parent


def _channels(name: str) -> int:
    return 1 if srzoo.model_info(name).colour == "y" else 3


# --------------------------------------------------------------------------------------------
# Every family file is wired in
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_import() -> dict[str, Any]:
    """What ``import srzoo.archs`` imports and registers in a new interpreter.

    A fresh process, because this one has imported the family modules directly (tests do), which
    would hide a module that ``srzoo/archs/__init__.py`` forgets.
    """
    script = (
        "import json, sys\n"
        "import srzoo.archs\n"
        "from srzoo.registry import list_models, model_info\n"
        "specs = {n: model_info(n) for n in list_models()}\n"
        "print(json.dumps({\n"
        "    'imported': sorted(m for m in sys.modules if m.startswith('srzoo.archs.')),\n"
        "    'registered': {n: [s.family, getattr(s.builder, '__module__', '')]\n"
        "                   for n, s in specs.items()},\n"
        "}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=TESTS.parents[1],  # the checkout's srzoo, as the tests in this process see it
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_family_list_is_not_empty() -> None:
    # pkgutil finding nothing (a packaging change) would make the test below pass vacuously.
    assert {"edsr", "rcan", "span"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_module_is_imported_registered_and_tested(
    fresh_import: dict[str, Any], family: str
) -> None:
    module = f"srzoo.archs.{family}"
    assert module in fresh_import["imported"], (
        f"{module} is not imported by srzoo/archs/__init__.py: its models are never registered"
    )
    registered = [
        name
        for name, (spec_family, builder_module) in fresh_import["registered"].items()
        if builder_module == module or spec_family == family
    ]
    assert registered, f"{module} registers no model"
    assert (TESTS / f"test_{family}.py").is_file(), f"no tests/archs/test_{family}.py"


# --------------------------------------------------------------------------------------------
# The model contract at tiny configurations
# --------------------------------------------------------------------------------------------


def test_every_builtin_model_has_a_tiny_configuration() -> None:
    # The contract tests below run over the registry; each needs a configuration that runs fast.
    assert sorted(BUILTIN) == sorted(TINY)


@pytest.mark.parametrize(
    ("name", "scale"), [(n, s) for n in sorted(BUILTIN) for s in srzoo.model_info(n).scales]
)
def test_forward_contract(name: str, scale: int) -> None:
    model = randomize_(srzoo.create(name, scale, **TINY[name]), seed=scale)
    check_forward_contract(model, scale, channels=_channels(name))


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_gradients_reach_every_parameter(name: str) -> None:
    model = randomize_(srzoo.create(name, 2, **TINY[name]))
    check_gradients(model, channels=_channels(name))


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_fullgraph_compile(name: str) -> None:
    model = randomize_(srzoo.create(name, None, **TINY[name]))
    check_compiles(model, channels=_channels(name))


# --------------------------------------------------------------------------------------------
# Registry entries
# --------------------------------------------------------------------------------------------

LIGHTWEIGHT = ("imdn", "rfdn", "pan", "safmn", "span")
CLASSIC = ("srcnn", "fsrcnn", "espcn", "vdsr")


@pytest.mark.parametrize("name", LIGHTWEIGHT)
def test_registry_entries_are_complete(name: str) -> None:
    info = srzoo.model_info(name)
    assert info.family == name
    assert info.scales == (2, 3, 4)
    assert info.task == "psnr" and info.colour == "rgb"
    assert info.paper.arxiv and info.code_license
    assert info.weights, f"{name} has no registered weights"
    for w in info.weights:
        # srzoo's own weights ship inside the package (tests/test_default_model.py checks them).
        assert w.source.startswith("https://") or w.tag == "srzoo"
        assert "drive.google" not in w.source and "pan.baidu" not in w.source
        assert w.sha256 is not None and len(w.sha256) == 64
        int(w.sha256, 16)
        for m in w.metrics:
            assert m.scale == w.scale and m.source and m.dataset in {"Set5", "Set14"}


def test_registered_scales_of_weights() -> None:
    scales = {
        n: sorted(w.scale for w in srzoo.model_info(n).weights if w.tag == "default")
        for n in LIGHTWEIGHT
    }
    assert scales == {
        "imdn": [2, 3, 4],
        "rfdn": [4],
        "pan": [2, 3, 4],
        "safmn": [2, 3, 4],
        "span": [2, 4],
    }


def test_classics_are_registered_as_y_channel_models() -> None:
    for name in CLASSIC:
        spec = srzoo.model_info(name)
        assert spec.colour == "y"
        assert spec.task == "psnr"
        assert spec.scales == (2, 3, 4)
        model = spec.build(spec.scale)
        assert model.in_channels == model.out_channels == 1
