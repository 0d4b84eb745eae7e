"""On a CUDA device: the same numbers as on the CPU, seamless tiling, half precision and inductor.

Skipped where no CUDA device is present (CI has none); run with ``pytest tests/test_cuda.py``
whenever a GPU is at hand. TF32 is switched off for the comparisons, so float32 on the card and
on the CPU agree to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

import srzoo
from srzoo.tiling import auto_tile_size

from .util import randomize_

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# A convnet, a pixel-shuffle net with attention-free lightweight blocks, a windowed transformer
# and a channel-attention net: the kernels that differ between the CPU and CUDA back-ends.
NAMES = ("edsr-baseline", "span", "swinir-light", "rcan", "omnisr", "dat-light")


@pytest.fixture(autouse=True)
def _no_tf32() -> Iterator[None]:
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().cpu(), b.double().cpu()
    return float((a - b).norm() / b.norm())


def _model(name: str, device: str) -> torch.nn.Module:
    spec = srzoo.model_info(name)
    net = srzoo.create(name, spec.scale)
    return randomize_(net, seed=0).eval().to(device)


@pytest.mark.parametrize("name", NAMES)
def test_cuda_float32_matches_cpu(name: str) -> None:
    x = torch.rand(1, 3, 37, 45, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        cpu = _model(name, "cpu")(x)
        gpu = _model(name, "cuda")(x.cuda())
    assert gpu.shape == cpu.shape
    assert _rel(gpu, cpu) <= 1e-4


def test_tiled_upscale_on_cuda_is_seamless() -> None:
    net = randomize_(srzoo.create("edsr-baseline", 4, n_resblocks=1, n_feats=8), seed=0)
    net = net.eval().cuda()
    x = torch.rand(1, 3, 70, 90, generator=torch.Generator().manual_seed(1)).cuda()
    whole = srzoo.upscale(net, x, tile=None)
    tiled = srzoo.upscale(net, x, tile=32, overlap=8, batch_size=3)
    assert tiled.device.type == "cuda"
    assert _rel(tiled, whole) <= 1e-6


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_upscale_on_cuda(dtype: torch.dtype) -> None:
    net = _model("edsr-baseline", "cuda")
    x = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2)).cuda()
    full = srzoo.upscale(net, x, tile=None)
    low = srzoo.upscale(net, x, tile=None, dtype=dtype)
    assert torch.isfinite(low).all()
    mse = float(((low.float() - full) ** 2).mean())
    assert 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-20))) > 40


def test_inductor_on_cuda_matches_eager() -> None:
    torch.manual_seed(0)
    eager = srzoo.load("span", weights=None, device="cuda")
    torch.manual_seed(0)  # the same random weights
    compiled = srzoo.load("span", weights=None, device="cuda", compile=True)
    for side in (40, 56):  # a second size reuses the dynamic graph
        x = torch.rand(1, 3, side, side, device="cuda")
        with torch.inference_mode():
            assert _rel(compiled(x), eager(x)) <= 1e-5


def test_auto_tile_on_cuda_fits_the_card() -> None:
    net = _model("swinir-light", "cuda")
    spec = srzoo.model_info("swinir-light")
    side = auto_tile_size(net, channels=3, size_multiple=spec.size_multiple, device="cuda")
    assert side >= 64 and side % spec.size_multiple == 0
