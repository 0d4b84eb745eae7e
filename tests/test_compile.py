"""``load(..., compile=...)``: the compiled module works everywhere srzoo takes a model (config,
``upscale`` and tiling, ``save_pretrained``, checkpoints with ``_orig_mod.`` keys), fixed-size
tiles reuse one graph, and a new tile size does not compile everything again. Inductor (the real
compiler) runs in the slow tests; the others use the eager backend, which captures the same graph.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch._dynamo.testing import CompileCounter

import srzoo
from srzoo.api import compile_model
from srzoo.errors import ArgumentTypeError

from .util import TINY, randomize_

EAGER = {"backend": "eager"}


def _tiny(name: str, *, compile: object = False) -> nn.Module:
    torch.manual_seed(0)
    model = srzoo.load(
        name, 2 if name == "edsr-baseline" else None, weights=None, compile=compile, **TINY[name]
    )  # type: ignore[arg-type]
    return model


def _counted(name: str) -> tuple[nn.Module, nn.Module, CompileCounter]:
    torch._dynamo.reset()
    counter = CompileCounter()
    eager = randomize_(_tiny(name))
    return eager, compile_model(eager, {"backend": counter}), counter


def test_load_compile_returns_a_compiled_module_with_its_config() -> None:
    torch._dynamo.reset()
    model = _tiny("edsr-baseline", compile=EAGER)
    assert isinstance(model, torch._dynamo.eval_frame.OptimizedModule)
    config = srzoo.model_config(model)
    assert config is not None and config.architecture == "edsr-baseline" and config.scale == 2
    assert not model.training
    x = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model._orig_mod(x))
    assert _tiny("edsr-baseline", compile=False) is not None
    with pytest.raises(ArgumentTypeError, match="compile must be"):
        compile_model(model._orig_mod, 3)  # type: ignore[arg-type]


def test_fixed_tile_size_runs_one_graph() -> None:
    eager, compiled, counter = _counted("edsr-baseline")
    for size in ((40, 40), (37, 52)):
        image = torch.rand(1, 3, *size)
        out = srzoo.upscale(compiled, image, tile=16, overlap=4)
        torch.testing.assert_close(out, srzoo.upscale(eager, image, tile=16, overlap=4))
    assert counter.frame_count == 1


def test_a_new_tile_size_does_not_compile_each_size_again() -> None:
    # dynamic=None: the second size marks height and width dynamic; the third reuses that graph.
    _, compiled, counter = _counted("edsr-baseline")
    image = torch.rand(1, 3, 40, 40)
    for tile in (16, 24, 32):
        srzoo.upscale(compiled, image, tile=tile, overlap=4)
    assert counter.frame_count == 2


def test_save_pretrained_and_orig_mod_checkpoints(tmp_path: Path) -> None:
    torch._dynamo.reset()
    model = randomize_(_tiny("edsr-baseline", compile=EAGER))
    assert all(k.startswith("_orig_mod.") for k in model.state_dict())
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        expected = model(x)
    folder = srzoo.save_pretrained(model, tmp_path / "saved")
    again = srzoo.load(f"local-dir:{folder}")
    path = tmp_path / "compiled.pth"
    torch.save(model.state_dict(), path)
    by_name = srzoo.load("edsr-baseline", 2, weights=path, **TINY["edsr-baseline"])
    by_file = srzoo.load_file(path, compile=EAGER)
    with torch.no_grad():
        for loaded in (again, by_name, by_file):
            torch.testing.assert_close(loaded(x), expected)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["edsr-baseline", "swinir", "span", "realesrgan-x4plus"])
def test_inductor_matches_eager(name: str) -> None:
    torch._dynamo.reset()
    eager = randomize_(_tiny(name))
    compiled = compile_model(eager, True)
    image = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        torch.testing.assert_close(compiled(image), eager(image), atol=1e-4, rtol=1e-4)
    out = srzoo.upscale(compiled, image, tile=16, overlap=4)
    torch.testing.assert_close(
        out, srzoo.upscale(eager, image, tile=16, overlap=4), atol=1e-4, rtol=1e-4
    )
