"""The docs that are generated from the code are not stale."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_model_table_is_generated_from_the_registry() -> None:
    spec = importlib.util.spec_from_file_location("gen_models", ROOT / "docs" / "gen_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    expected = module.render()
    assert (ROOT / "docs" / "models.md").read_text() == expected, (
        "docs/models.md is stale: run `python docs/gen_models.py`"
    )
