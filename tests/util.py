"""Helpers every architecture's tests reuse, and a stand-in terminal for progress-bar tests."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
CHECKPOINTS = SHARED / "checkpoints"


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal, to stand in for ``sys.stderr``."""

    def isatty(self) -> bool:
        return True


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
    torch.manual_seed(0)
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


# Small configurations of every built-in model, for behaviour tests that must run in seconds.
TINY: dict[str, dict[str, Any]] = {
    "edsr": {"n_resblocks": 2, "n_feats": 16},
    "edsr-baseline": {"n_resblocks": 2, "n_feats": 16},
    "rcan": {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 2},
    "srresnet": {"channels": 16, "num_blocks": 2},
    "msrresnet": {"num_feat": 16, "num_block": 2},
    "carn": {"n_feats": 8},
    "carn-m": {"n_feats": 8},  # group 4 from the variant's defaults: two channels per group
    "srcnn": {"n1": 8, "n2": 4},
    "fsrcnn": {"d": 8, "s": 4, "m": 1},
    "espcn": {"n1": 8, "n2": 4},
    "vdsr": {"depth": 4, "n_feats": 8},
    "imdn": {"nf": 32, "num_modules": 2},  # CCA squeezes 16x: 32 -> 8 distilled -> 2 hidden
    # The gradient check's 9x10 input pools to one pixel in ESA; with 12 features (3 in the
    # attention branch) some of its ReLUs stay alive for the fixed random weights.
    "rfdn": {"nf": 12, "num_modules": 2},
    "pan": {"nf": 8, "unf": 4, "nb": 2},
    "safmn": {"dim": 8, "n_blocks": 2},
    "span": {"feature_channels": 8},
}
