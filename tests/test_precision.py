"""Reduced precision: the measured verdicts in the registry, ``load()`` refusing a precision
measured to break a model, ``upscale()`` falling back to float32 (measured verdict, or NaN and
infinity seen at run time), and the script that measures the verdicts."""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srzoo
from srzoo import registry
from srzoo.bench import precision_check
from srzoo.errors import ArgumentError, NonFiniteOutputError, PrecisionWarning
from srzoo.registry import (
    BROKEN_BELOW_DB,
    DEGRADED_BELOW_DB,
    PRECISION_FILE,
    ModelSpec,
    PrecisionVerdict,
    measured_precision,
)

from .util import DATA, require_shared

ROOT = Path(__file__).resolve().parents[1]


def _tiny_edsr(scale: int, **_: Any) -> nn.Module:
    return srzoo.model_info("edsr-baseline").builder(scale=scale, n_resblocks=1, n_feats=8)


def _verdict(dtype: str, device: str, verdict: str) -> PrecisionVerdict:
    broken = verdict == "broken"
    return PrecisionVerdict(
        dtype=dtype,
        device=device,
        psnr_db=12.5 if broken else 48.0,
        finite=True,
        verdict=PrecisionVerdict.classify(12.5 if broken else 48.0, True),
        measured_on="test machine",
    )


@pytest.fixture(scope="module")
def broken_bf16() -> Iterator[str]:
    """A model whose bfloat16 is measured broken on CPUs and float16 on CUDA, registered for this
    module only (a later test listing the registry must not see it)."""
    name = "test-precision-broken-bf16"
    spec = ModelSpec(
        name=name,
        family="test",
        builder=_tiny_edsr,
        scales=(2,),
        paper=srzoo.model_info("edsr-baseline").paper,
        code_license="MIT",
        precision=(
            _verdict("bfloat16", "cpu", "broken"),
            _verdict("float16", "cuda", "broken"),
        ),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(registry._REGISTRY, name, spec)
        yield name


def test_thresholds() -> None:
    assert PrecisionVerdict.classify(BROKEN_BELOW_DB - 0.1, True) == "broken"
    assert PrecisionVerdict.classify(BROKEN_BELOW_DB + 0.1, True) == "degraded"
    assert PrecisionVerdict.classify(DEGRADED_BELOW_DB + 0.1, True) == "ok"
    assert PrecisionVerdict.classify(60.0, False) == "broken"
    assert PrecisionVerdict.classify(None, False) == "broken"


def test_every_registered_model_is_measured_in_bfloat16_on_cpu() -> None:
    # A family added without rerunning benchmarks/measure_precision.py fails here.
    builtin = [
        n
        for n in srzoo.list_models()
        if srzoo.model_info(n).builder.__module__.startswith("srzoo.archs")
    ]
    missing = [n for n in builtin if n not in measured_precision()]
    assert not missing, f"run: python benchmarks/measure_precision.py {' '.join(missing)}"
    for name in builtin:
        verdict = srzoo.model_info(name).precision_verdict(torch.bfloat16, "cpu")
        assert verdict is not None
        assert verdict.finite == (verdict.psnr_db is not None)
        assert verdict.verdict == PrecisionVerdict.classify(verdict.psnr_db, verdict.finite)
        assert verdict.measured_on and verdict.note


def test_the_data_file_is_what_the_registry_holds() -> None:
    data = json.loads(PRECISION_FILE.read_text())
    name = next(iter(data["models"]))
    expected = tuple(PrecisionVerdict(**e) for e in data["models"][name])
    assert srzoo.model_info(name).precision == expected
    assert srzoo.model_info(name).precision_verdict("bfloat16", "cuda:0") is None or any(
        v.device == "cuda" for v in expected
    )


def test_load_refuses_a_broken_precision_unless_allowed(broken_bf16: str) -> None:
    with pytest.raises(ArgumentError, match=r"broken in bfloat16 on cpu.*allow_unsafe_dtype"):
        srzoo.load(broken_bf16, weights=None, dtype="bf16")
    model = srzoo.load(broken_bf16, weights=None, dtype="bf16", allow_unsafe_dtype=True)
    assert next(model.parameters()).dtype == torch.bfloat16
    # float16 is measured broken on CUDA only: on a CPU nothing is known, so nothing is refused.
    half = srzoo.load(broken_bf16, weights=None, dtype=torch.float16)
    assert next(half.parameters()).dtype == torch.float16


def test_upscale_runs_a_broken_precision_in_float32(broken_bf16: str) -> None:
    torch.manual_seed(0)
    model = srzoo.load(broken_bf16, weights=None)
    image = torch.rand(1, 3, 12, 10)
    expected = srzoo.upscale(model, image)
    with pytest.warns(PrecisionWarning, match="broken in bfloat16"):
        got = srzoo.upscale(model, image, dtype=torch.bfloat16)
    torch.testing.assert_close(got, expected)
    # A module already held in the broken precision runs as a float32 copy.
    held = srzoo.load(broken_bf16, weights=None, dtype="bf16", allow_unsafe_dtype=True)
    with pytest.warns(PrecisionWarning):
        srzoo.upscale(held, image)
    assert next(held.parameters()).dtype == torch.bfloat16  # the caller's module is unchanged


class _Overflows(nn.Module):
    """x2 nearest upscale through an intermediate value float16 cannot hold (90000 > 65504)."""

    scale = 2
    in_channels = 3
    out_channels = 3

    def __init__(self, nan: bool = False) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(300.0))
        self.nan = nan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = (x * self.gain * self.gain) / self.gain / self.gain
        if self.nan:
            y = y * torch.nan
        return F.interpolate(y, scale_factor=2, mode="nearest")


def test_non_finite_output_in_reduced_precision_reruns_in_float32() -> None:
    image = torch.rand(1, 3, 8, 8)
    with pytest.warns(PrecisionWarning, match="NaN or infinite values in float16"):
        out = srzoo.upscale(_Overflows().half(), image)
    torch.testing.assert_close(out, F.interpolate(image, scale_factor=2, mode="nearest"))
    # In float32 nothing can be done: the error stays.
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        with pytest.raises(NonFiniteOutputError):
            srzoo.upscale(_Overflows(nan=True), image)


def test_precision_check_measures_overflow_and_rounding() -> None:
    image = [torch.rand(1, 3, 8, 8)]
    overflow = precision_check(_Overflows(), image, dtype=torch.float16)
    assert (overflow.finite, overflow.psnr_db, overflow.verdict) == (False, None, "broken")
    torch.manual_seed(0)
    net = _tiny_edsr(2).eval()
    rounded = precision_check(net, image, dtype="bf16", note="tiny")
    assert rounded.finite and rounded.psnr_db is not None
    assert 25 < rounded.psnr_db < 80  # bfloat16 keeps 8 bits of mantissa: clearly not exact
    assert (rounded.dtype, rounded.device, rounded.note) == ("bfloat16", "cpu", "tiny")
    assert next(net.parameters()).dtype == torch.float32  # measured on a copy
    with pytest.raises(ArgumentError):
        precision_check(net, image, dtype=torch.float32)


def test_measure_script_merges_into_the_data_file(tmp_path: Path) -> None:
    require_shared(DATA / "benchmark" / "Set14" / "LR_bicubic")
    spec = importlib.util.spec_from_file_location(
        "measure_precision", ROOT / "benchmarks" / "measure_precision.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "precision.json"
    other = {"dtype": "float16", "device": "cuda", "psnr_db": 41.0, "finite": True}
    other |= {"verdict": "ok", "measured_on": "a card", "note": ""}
    out.write_text(json.dumps({"models": {"espcn": [other]}}))
    assert script.main(["espcn", "--crop", "16", "--images", "1", "--out", str(out)]) == 0
    entries = json.loads(out.read_text())["models"]["espcn"]
    assert other in entries  # another device's measurement is kept
    (bf16,) = [e for e in entries if e["dtype"] == "bfloat16"]
    assert bf16["device"] == "cpu" and bf16["finite"] and bf16["psnr_db"] > BROKEN_BELOW_DB
    assert "1 Set14 crops of 16x16" in bf16["note"]
