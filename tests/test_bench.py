"""``srzoo.bench.bench``: the numbers it reports agree with each other and with the run it
made; and ``benchmarks/gpu_suite.py`` still runs (its CPU smoke mode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from srzoo.bench import BenchResult, bench, device_name
from srzoo.errors import ArgumentError

ROOT = Path(__file__).resolve().parents[1]


def test_bench_a_named_model() -> None:
    r = bench("espcn", size=24, batch=2, runs=3, warmup=1)
    assert isinstance(r, BenchResult)
    assert (r.model, r.scale, r.size, r.batch, r.runs) == ("espcn", 3, 24, 2, 3)
    assert (r.dtype, r.compiled, r.compile_s) == ("float32", False, None)
    assert r.device.startswith("cpu (")
    assert r.ms_per_image > 0
    # Megapixels per second follow from the time per image: both come from one median.
    assert r.input_mpix_per_s == pytest.approx(24 * 24 / 1e6 / (r.ms_per_image / 1000))
    if Path("/proc/self/clear_refs").exists():
        assert r.peak_memory_mib is not None and r.peak_memory_mib >= 0
    assert "espcn x3 24x24 batch 2 float32" in r.summary()


def test_bench_dtype_compile_and_modules() -> None:
    r = bench("espcn", size=16, dtype="bf16", runs=1, compile={"backend": "eager"})
    assert (r.dtype, r.compiled) == ("bfloat16", True)
    assert r.compile_s is not None and r.compile_s >= 0
    assert "compiled (compile" in r.summary()
    net = torch.nn.Upsample(scale_factor=2)
    net.scale, net.in_channels, net.out_channels = 2, 3, 3  # the contract's attributes
    plain = bench(net, size=8, runs=1, warmup=0)
    assert (plain.model, plain.scale) == ("Upsample", 2)


@pytest.mark.parametrize(
    "kwargs", [{"size": 0}, {"batch": 0}, {"runs": 0}, {"warmup": -1}], ids=str
)
def test_bench_refuses_bad_arguments(kwargs: dict[str, int]) -> None:
    with pytest.raises(ArgumentError):
        bench("espcn", **kwargs)  # type: ignore[arg-type]


def test_device_name_names_the_processor() -> None:
    assert device_name("cpu").startswith("cpu (") and len(device_name("cpu")) > 6


def _gpu_suite(*args: str) -> None:
    script = str(ROOT / "benchmarks" / "gpu_suite.py")
    subprocess.run([sys.executable, script, *args], check=True, capture_output=True, cwd=ROOT)


def test_gpu_suite_cpu_smoke_mode(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    _gpu_suite("--device", "cpu", "--quick", "--models", "espcn", "fsrcnn", "--out", str(out))
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["card"].startswith("cpu (") and result["quick"] is True
    assert [r["model"] for r in result["rows"]] == ["espcn", "fsrcnn"]
    for row in result["rows"]:
        assert all(v is not None and v > 0 for v in row["ms_per_mpix"].values()), row["errors"]
        assert set(row["verdicts"]) == {"float16", "bfloat16"}
        assert row["compile_s"] is not None, row["errors"]
    table = out.with_suffix(".md").read_text()
    assert result["card"] in table and "| `fsrcnn` | x3 |" in table
    # A second run's rows join the first's in one table (a run cut short, then the rest).
    second = json.loads(out.with_suffix(".json").read_text())
    second["rows"] = [dict(second["rows"][0], model="srcnn", family="srcnn")]
    (tmp_path / "second.json").write_text(json.dumps(second))
    merged = tmp_path / "merged"
    _gpu_suite(
        "--merge",
        str(out.with_suffix(".json")),
        str(tmp_path / "second.json"),
        "--out",
        str(merged),
    )
    joined = json.loads(merged.with_suffix(".json").read_text())
    assert [r["model"] for r in joined["rows"]] == ["espcn", "fsrcnn", "srcnn"]
    assert "| `srcnn` |" in merged.with_suffix(".md").read_text()
