"""Tiled forward: seamless (equal to untiled), size multiples, batching, OOM back-off, auto tile."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import srzoo
from srzoo.tiling import (
    TileOutOfMemoryError,
    auto_tile_size,
    measure_peak_memory,
    plan_axis,
    plan_windows,
    tiled_forward,
)

from .util import randomize_

# edsr-baseline with one residual block at x4: 4 convolutions at the input resolution, one at x2
# (half an input pixel) and one at x4: a receptive-field radius under 6 input pixels.
OVERLAP = 8


def _net(scale: int = 4, seed: int = 0) -> nn.Module:
    net = srzoo.create("edsr-baseline", scale, n_resblocks=1, n_feats=8)
    return randomize_(net, seed=seed).eval()


def _untiled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


class Recorder(nn.Module):
    """Wraps a model and records the input shape of every call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.scale = model.scale
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.model(x)


class FakeOOM(Recorder):
    """Raises an out-of-memory error for inputs with more than ``limit`` values, or on chosen
    calls, the way a GPU would."""

    def __init__(
        self,
        model: nn.Module,
        limit: int | None = None,
        fail_calls: tuple[int, ...] = (),
        error: type[Exception] = torch.OutOfMemoryError,
    ) -> None:
        super().__init__(model)
        self.limit = limit
        self.fail_calls = fail_calls
        self.error = error
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if (self.limit is not None and x.numel() > self.limit) or self.calls in self.fail_calls:
            self.shapes.append(("oom", *x.shape))
            raise self.error("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().forward(x)


@pytest.mark.parametrize(
    ("length", "tile", "overlap"),
    [(n, t, o) for n in (1, 5, 16, 17, 63, 100) for t in (3, 8, 16, 33) for o in (0, 1, 4, 7)],
)
def test_plan_axis_cores_partition_and_windows_hold_their_context(
    length: int, tile: int, overlap: int
) -> None:
    if tile <= 2 * overlap and tile < length:
        with pytest.raises(ValueError, match="too small"):
            plan_axis(length, tile, overlap)
        return
    spans = plan_axis(length, tile, overlap)
    position = 0
    for start, core_start, core_stop in spans:
        assert core_start == position and core_stop > core_start
        position = core_stop
        stop = start + min(tile, length)
        assert start >= 0 and stop <= length, "windows lie inside the image, all one size"
        assert start <= max(core_start - overlap, 0), "context on the left"
        assert stop >= min(core_stop + overlap, length), "context on the right"
    assert position == length


@pytest.mark.parametrize(
    ("scale", "height", "width", "tile"),
    [(2, 37, 29, 24), (3, 23, 41, 20), (4, 50, 50, 21), (4, 37, 29, 24)],
)
def test_tiled_equals_untiled(scale: int, height: int, width: int, tile: int) -> None:
    net = _net(scale, seed=scale)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(1))
    rec = Recorder(net)
    y = tiled_forward(rec, x, scale=scale, tile=tile, overlap=OVERLAP, progress=False)
    assert len(rec.shapes) > 1, "the image was really tiled"
    torch.testing.assert_close(y, _untiled(net, x), atol=1e-5, rtol=0)


def test_too_little_overlap_shows_seams() -> None:
    # The check above can fail: without context the tile borders differ from the untiled run.
    net = _net()
    x = torch.rand(1, 3, 37, 29)
    y = tiled_forward(net, x, scale=4, tile=16, overlap=0, progress=False)
    assert (y - _untiled(net, x)).abs().max() > 1e-3


def test_tile_larger_than_image_is_one_untiled_pass() -> None:
    net = _net()
    x = torch.rand(2, 3, 13, 11)
    rec = Recorder(net)
    y = tiled_forward(rec, x, scale=4, tile=512, overlap=OVERLAP, progress=False)
    assert rec.shapes == [(1, 3, 13, 11), (1, 3, 13, 11)]
    torch.testing.assert_close(y, _untiled(net, x), atol=1e-5, rtol=0)


def test_batched_tiles_and_several_images() -> None:
    net = _net()
    x = torch.rand(2, 3, 30, 26)
    rec = Recorder(net)
    y = tiled_forward(rec, x, scale=4, tile=20, overlap=OVERLAP, batch_size=3, progress=False)
    assert max(s[0] for s in rec.shapes) == 3
    assert len({s[1:] for s in rec.shapes}) == 1, "every window has one shape"
    torch.testing.assert_close(y, _untiled(net, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("tile", [2 * 8 - 1, 8 - 1, 16])
def test_tiles_respect_the_size_multiple(tile: int) -> None:
    # With a multiple of 8, a tile of 15 becomes 8 and a tile of 7 (one below the multiple)
    # becomes 8 too; the overlap must then be small enough to leave a core.
    net = _net()
    x = torch.rand(1, 3, 19, 17)
    rec = Recorder(net)
    y = tiled_forward(rec, x, scale=4, tile=tile, overlap=3, size_multiple=8, progress=False)
    assert rec.shapes and all(h % 8 == 0 and w % 8 == 0 for _, _, h, w in rec.shapes)
    assert {s[2] for s in rec.shapes} == {max(tile // 8 * 8, 8)}
    assert y.shape == (1, 3, 76, 68)


def test_tile_too_small_for_the_overlap_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"tile=8 is too small.*overlap=8.*at least 17"):
        tiled_forward(_net(), torch.rand(1, 3, 40, 40), scale=4, tile=8, overlap=8)


@pytest.mark.parametrize("bad", [0, -5, "big", 2.5])
def test_bad_tile_arguments(bad: object) -> None:
    with pytest.raises(ValueError, match="tile"):
        tiled_forward(_net(), torch.rand(1, 3, 8, 8), scale=4, tile=bad)  # type: ignore[arg-type]


def test_wrong_scale_is_reported() -> None:
    with pytest.raises(ValueError, match="not x2"):
        tiled_forward(_net(4), torch.rand(1, 3, 8, 8), scale=2, progress=False)


@pytest.mark.parametrize("error", [torch.OutOfMemoryError, RuntimeError])
def test_out_of_memory_halves_the_tile_until_it_fits(error: type[Exception]) -> None:
    net = _net()
    x = torch.rand(1, 3, 128, 96)
    fake = FakeOOM(net, limit=3 * 40 * 40, error=error)
    y = tiled_forward(fake, x, scale=4, tile=None, overlap=OVERLAP, progress=False)
    ooms = [s for s in fake.shapes if s[0] == "oom"]
    done = [s for s in fake.shapes if s[0] != "oom"]
    assert [s[-2:] for s in ooms] == [(128, 96), (64, 64)], "whole image, a 64 tile, then 32"
    assert {s[2:] for s in done} == {(32, 32)}
    torch.testing.assert_close(y, _untiled(net, x), atol=1e-5, rtol=0)


def test_out_of_memory_keeps_the_tiles_already_done() -> None:
    net = _net()
    x = torch.rand(1, 3, 64, 64)
    fake = FakeOOM(net, fail_calls=(3,))
    y = tiled_forward(fake, x, scale=4, tile=40, overlap=OVERLAP, progress=False)
    big = [s for s in fake.shapes if s[0] != "oom" and s[2] == 40]
    small = [s for s in fake.shapes if s[0] != "oom" and s[2] == 20]
    assert len(big) == 2, "two 40-pixel tiles succeeded before the failure"
    full_plan_at_20 = len(plan_windows(1, 64, 64, 20, OVERLAP))
    assert 0 < len(small) < full_plan_at_20, "their area is not computed again"
    torch.testing.assert_close(y, _untiled(net, x), atol=1e-5, rtol=0)


def test_out_of_memory_halves_the_batch_first() -> None:
    net = _net()
    x = torch.rand(1, 3, 40, 40)
    fake = FakeOOM(net, limit=3 * 20 * 20 * 2)
    y = tiled_forward(fake, x, scale=4, tile=20, overlap=OVERLAP, batch_size=4, progress=False)
    done = [s for s in fake.shapes if s[0] != "oom"]
    assert {s[0] for s in done} <= {1, 2} and {s[2] for s in done} == {20}
    torch.testing.assert_close(y, _untiled(net, x), atol=1e-5, rtol=0)


def test_out_of_memory_below_the_floor_is_a_clear_error() -> None:
    fake = FakeOOM(_net(), limit=1)
    with pytest.raises(TileOutOfMemoryError, match=r"out of memory on cpu even with 32x32 tiles"):
        tiled_forward(fake, torch.rand(1, 3, 64, 64), scale=4, tile=64, overlap=OVERLAP)
    assert isinstance(TileOutOfMemoryError("x"), srzoo.SrzooError)


def test_other_errors_are_not_mistaken_for_out_of_memory() -> None:
    fake = FakeOOM(_net(), fail_calls=(1,), error=ValueError)
    with pytest.raises(ValueError, match="CUDA out of memory"):
        tiled_forward(fake, torch.rand(1, 3, 32, 32), scale=4, tile=16, overlap=4)
    assert fake.calls == 1


def test_output_assembled_in_uint8_on_the_host() -> None:
    net = _net()
    x = (torch.rand(1, 3, 30, 22) * 255).round().to(torch.uint8)
    out = torch.empty(1, 3, 120, 88, dtype=torch.uint8)
    result = tiled_forward(
        net,
        x,
        scale=4,
        tile=20,
        overlap=OVERLAP,
        preprocess=lambda t: t.float() / 255,
        postprocess=lambda y: (y.clamp(0, 1) * 255).round(),
        out=out,
        progress=False,
    )
    assert result is out
    expected = (_untiled(net, x.float() / 255).clamp(0, 1) * 255).round().to(torch.uint8)
    # Values exactly at .5 may round either way after float noise of 1e-5.
    assert (out.int() - expected.int()).abs().max() <= 1
    assert (out != expected).float().mean() < 1e-3


def test_integer_input_without_preprocess_is_refused() -> None:
    with pytest.raises(TypeError, match="preprocess"):
        tiled_forward(_net(), torch.zeros(1, 3, 8, 8, dtype=torch.uint8), scale=4)


def test_fixed_shape_for_compiled_models() -> None:
    # Images smaller than the tile and short last batches are padded, so one graph serves all.
    net = _net()
    rec = Recorder(net)
    for size in [(37, 29), (9, 13)]:
        tiled_forward(
            rec, torch.rand(1, 3, *size), scale=4, tile=16, overlap=4, batch_size=4,
            pad_to_tile=True, progress=False,
        )  # fmt: skip
    assert set(rec.shapes) == {(4, 3, 16, 16)}


def test_compiled_model_reuses_one_graph() -> None:
    torch._dynamo.reset()
    graphs: list[int] = []

    def backend(gm: torch.fx.GraphModule, example: list[torch.Tensor]) -> object:
        graphs.append(1)
        return gm.forward

    net = _net()
    compiled = torch.compile(net, backend=backend, dynamic=False)
    x = torch.rand(1, 3, 37, 29)
    y = tiled_forward(compiled, x, scale=4, tile=16, overlap=4, batch_size=2, progress=False)
    tiled_forward(compiled, torch.rand(1, 3, 10, 12), scale=4, tile=16, overlap=4, batch_size=2)
    assert len(graphs) == 1
    assert y.shape == (1, 3, 148, 116)


def test_measured_memory_grows_with_the_tile() -> None:
    net = _net()
    small = measure_peak_memory(net, torch.rand(1, 3, 32, 32))
    large = measure_peak_memory(net, torch.rand(1, 3, 64, 64))
    # Activations dominate: four times the pixels, close to four times the memory, and at least
    # the x4 float32 output itself.
    assert large >= 3 * 64 * 64 * 16 * 4
    assert 3.0 < large / small < 4.5


def test_auto_tile_follows_the_budget_and_matches_untiled() -> None:
    net = _net()
    kwargs = {"channels": 3, "overlap": OVERLAP, "size_multiple": 4}
    small = auto_tile_size(net, budget=20_000_000, **kwargs)  # type: ignore[arg-type]
    large = auto_tile_size(net, budget=80_000_000, **kwargs)  # type: ignore[arg-type]
    batched = auto_tile_size(net, budget=80_000_000, batch_size=4, **kwargs)  # type: ignore[arg-type]
    assert small % 4 == 0 and large % 4 == 0
    assert 1.8 < large / small < 2.2, "memory per pixel is constant, so side ~ sqrt(budget)"
    assert abs(batched - small) <= 8
    peak = measure_peak_memory(net, torch.rand(1, 3, large, large))
    assert peak <= 80_000_000, "the chosen tile fits the budget"
    x = torch.rand(1, 3, 40, 36)
    y = tiled_forward(net, x, scale=4, tile="auto", overlap=OVERLAP, progress=False)
    torch.testing.assert_close(y, _untiled(net, x), atol=1e-5, rtol=0)


class GlobalScores(nn.Module):
    """Attention over every pixel, scores held whole (no fused kernel): memory ~ pixels**2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = x.flatten(2)
        scores = (tokens.transpose(1, 2) @ tokens).softmax(-1)  # (b, h*w, h*w)
        out = (tokens @ scores).view(b, c, h, w)
        return F.interpolate(out, scale_factor=2, mode="nearest")


def test_auto_tile_extrapolates_memory_that_grows_with_the_image() -> None:
    net = GlobalScores()
    budget = measure_peak_memory(net, torch.rand(1, 3, 96, 96))
    side = auto_tile_size(net, channels=3, budget=budget)
    # Per-pixel memory read at 64x64 alone would allow a 144-pixel tile: five times the memory.
    assert 80 <= side <= 96
    assert measure_peak_memory(net, torch.rand(1, 3, side, side)) <= budget


def test_plan_windows_covers_every_image() -> None:
    windows = plan_windows(2, 50, 30, 20, 4)
    for n in range(2):
        covered = torch.zeros(50, 30, dtype=torch.int32)
        for w in (w for w in windows if w.index == n):
            top, bottom, left, right = w.core
            covered[top:bottom, left:right] += 1
        assert bool((covered == 1).all())
    assert len({(w.height, w.width) for w in windows}) == 1
    assert list(itertools.islice((w.index for w in windows), 1)) == [0]


def test_progress_bar_over_tiles(capsys: pytest.CaptureFixture[str]) -> None:
    x = torch.rand(1, 3, 40, 40)
    tiled_forward(_net(), x, scale=4, tile=24, overlap=4, progress=True, desc="demo")
    assert "demo" in capsys.readouterr().err
    tiled_forward(_net(), x, scale=4, tile=24, overlap=4, progress=None)
    assert capsys.readouterr().err == "", "no bar when stderr is not a terminal"


def test_available_memory_on_the_host() -> None:
    from srzoo.tiling import available_memory

    free = available_memory(torch.device("cpu"))
    assert 0 < free < 1 << 50


class _TileInto(nn.Module):
    """tiled_forward of a uint8 image into a uint8 output held as a buffer, so that
    measure_peak_memory counts what tiling allocates and not the output it writes into."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2)).eval()
        out = torch.empty(1, 3, 2 * size, 2 * size, dtype=torch.uint8)
        self.register_buffer("out", out, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tiled_forward(
            self.net,
            x,
            scale=2,
            tile=48,
            overlap=4,
            preprocess=lambda w: w.float() / 255,
            postprocess=lambda y: y.clamp_(0, 1).mul_(255).round_(),
            out=self.out,
        )


def _host_peak_of_tiling(size: int) -> int:
    run = _TileInto(size)
    x = torch.randint(0, 256, (1, 3, size, size), dtype=torch.uint8)
    peak = measure_peak_memory(run, x)
    assert run.out.float().std() > 0  # the output was written
    return peak


def test_host_memory_is_set_by_the_window_not_the_image() -> None:
    # A uint8 image into a uint8 output: no float copy of the image or of the output, no
    # accumulator or bookkeeping the size of the image; what is allocated per window is freed
    # before the next, so a 9 times larger image allocates no more at its peak.
    small, large = _host_peak_of_tiling(96), _host_peak_of_tiling(288)
    window_output = (2 * 48) ** 2 * 12 * 4  # the convolution's float output for one window
    assert large <= small <= 4 * window_output
