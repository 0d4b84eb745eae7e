"""Helpers every architecture's tests reuse."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
CHECKPOINTS = SHARED / "checkpoints"


def require_shared(path: Path) -> Path:
    """Skip the calling test unless ``path`` (inside ../shared) exists."""
    if not path.exists():
        pytest.skip(f"reference data not available: {path} (../shared is absent in this checkout)")
    return path


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0, gain: float = 0.5) -> nn.Module:
    """Overwrite every floating-point parameter and buffer with random values, in place.

    Default initialisations (zero biases, identity mean shifts, unit batch-norm) can hide a
    wiring error; random values in every tensor make a swapped or skipped layer visible.
    Weights are scaled by fan-in so activations stay of order one through deep networks.
    """
    g = torch.Generator().manual_seed(seed)
    for name, t in module.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var"):
            values = torch.rand(t.shape, generator=g) + 0.5
        elif t.dim() >= 2:
            fan_in = t[0].numel()
            values = torch.randn(t.shape, generator=g) * gain / fan_in**0.5
        else:
            values = (torch.rand(t.shape, generator=g) - 0.5) * 0.2
            if name.endswith("weight") and "sub_mean" not in name and "add_mean" not in name:
                values += 1.0  # norm scales and PReLU slopes near their usual values
        t.copy_(values.to(t.dtype))
    return module


def check_forward_contract(model: nn.Module, scale: int, channels: int = 3) -> None:
    """Output shape and dtype for odd sizes and batches; the input is left untouched."""
    model.eval()
    assert model.scale == scale
    assert model.in_channels == channels
    torch.manual_seed(0)
    x = torch.rand(2, channels, 13, 11)
    before = x.clone()
    with torch.no_grad():
        y = model(x)
        single = model(x[1:2])
    assert torch.equal(x, before), "forward modified its input"
    assert y.shape == (2, model.out_channels, 13 * scale, 11 * scale)
    assert y.dtype == x.dtype
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[1:2], single, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        tiny = model(torch.rand(1, channels, 1, 1))
    assert tiny.shape == (1, model.out_channels, scale, scale)


def check_gradients(model: nn.Module, channels: int = 3) -> None:
    """A loss on the output sends a non-zero gradient to every trainable parameter."""
    model.train()
    x = torch.rand(2, channels, 9, 10)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"no gradient reached {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient at {name}"


def check_compiles(model: nn.Module, channels: int = 3) -> None:
    """``torch.compile(fullgraph=True)`` captures forward in one graph with the same output."""
    torch._dynamo.reset()
    model.eval()
    x = torch.rand(1, channels, 8, 7)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
