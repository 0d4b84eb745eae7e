"""The shared window-attention pieces against the Swin code they replace (spandrel's SwinIR copy).

The masks and index tables must equal the reference's to the bit (the attention logits depend on
them), work for any image size, serve training after a first use under inference mode, and compile
into the graph.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from srzoo.archs._window import (
    MASK_VALUE,
    pad_to_multiple,
    reflect_pad,
    relative_position_index,
    shift_mask,
    window_partition,
    window_reverse,
)

CPU = torch.device("cpu")


def _swinir_block(window: int, shift: int) -> torch.nn.Module:
    arch = pytest.importorskip("spandrel.architectures.SwinIR.__arch.SwinIR")
    # A training resolution above every tested size, so the block keeps its window and shift.
    block: torch.nn.Module = arch.SwinTransformerBlock(
        dim=4, input_resolution=(96, 96), num_heads=2, window_size=window, shift_size=shift
    )
    return block


@pytest.mark.parametrize(
    ("h", "w", "window", "shift"),
    [(16, 24, 8, 4), (8, 8, 8, 4), (32, 16, 8, 3), (12, 18, 6, 3), (48, 32, 16, 8)],
)
def test_shift_mask_and_index_equal_the_swin_code(h: int, w: int, window: int, shift: int) -> None:
    block = _swinir_block(window, shift)
    expected = block.calculate_mask((h, w))  # type: ignore[operator]
    got = shift_mask(h, w, window, shift, device=CPU, dtype=torch.float32)
    assert torch.equal(got, expected)
    assert set(got.unique().tolist()) <= {0.0, MASK_VALUE}
    index = block.attn.relative_position_index  # type: ignore[union-attr]
    assert torch.equal(relative_position_index(window, CPU), index)


def test_rectangular_windows_and_shifts() -> None:
    # A (4, 8) window shifted by (2, 4): a token only attends to tokens of its own region.
    mask = shift_mask(8, 16, (4, 8), (2, 4), device=CPU, dtype=torch.float32)
    assert mask.shape == (2 * 2, 32, 32)
    regions = torch.zeros(8, 16)
    regions[-4:-2] += 1
    regions[-2:] += 2
    regions[:, -8:-4] += 3
    regions[:, -4:] += 6
    ids = window_partition(regions[None, :, :, None], (4, 8))[..., 0]
    expected = torch.where(ids[:, None, :] != ids[:, :, None], MASK_VALUE, 0.0)
    assert torch.equal(mask, expected)
    index = relative_position_index((4, 8), CPU)
    assert index.shape == (32, 32) and int(index.max()) == (2 * 4 - 1) * (2 * 8 - 1) - 1
    assert torch.equal(index.diagonal(), torch.full((32,), (4 - 1) * (2 * 8 - 1) + 8 - 1))


def test_masks_follow_the_dtype_and_are_cached() -> None:
    a = shift_mask(16, 16, 8, 4, device=CPU, dtype=torch.bfloat16)
    assert a.dtype == torch.bfloat16
    assert shift_mask(16, 16, 8, 4, device=CPU, dtype=torch.bfloat16) is a
    assert relative_position_index(8, CPU) is relative_position_index(8, CPU)


def test_a_mask_first_made_under_inference_mode_serves_training() -> None:
    with torch.inference_mode():
        mask = shift_mask(24, 24, 8, 4, device=CPU, dtype=torch.float64)
    assert not mask.is_inference()
    logits = torch.rand(9, 64, 64, dtype=torch.float64, requires_grad=True)
    q = torch.rand(9, 64, 4, dtype=torch.float64, requires_grad=True)
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=logits + mask)
    out.sum().backward()
    assert q.grad is not None and logits.grad is not None


@pytest.mark.parametrize("size", [(13, 11), (16, 16), (1, 1), (3, 2), (7, 20)])
@pytest.mark.parametrize("multiple", [1, 4, 8, 16])
def test_reflect_padding_any_size(size: tuple[int, int], multiple: int) -> None:
    x = torch.rand(2, 3, *size)
    y = pad_to_multiple(x, multiple)
    h, w = size
    ph, pw = -h % multiple, -w % multiple
    assert y.shape == (2, 3, h + ph, w + pw)
    assert torch.equal(y[..., :h, :w], x)
    if ph < h and pw < w:
        assert torch.equal(y, F.pad(x, (0, pw, 0, ph), mode="reflect"))
    else:
        # Beyond one reflection it continues periodically: 0 1 2 1 0 1 2 ...
        row = torch.arange(3.0).view(1, 1, 1, 3)
        assert reflect_pad(row, 0, 6).flatten().tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0]
        assert torch.equal(reflect_pad(torch.ones(1, 1, 1, 1), 3, 2), torch.ones(1, 1, 4, 3))


def test_partition_round_trip() -> None:
    arch = pytest.importorskip("spandrel.architectures.SwinIR.__arch.SwinIR")
    x = torch.rand(2, 16, 24, 5)
    windows = window_partition(x, 8)
    assert windows.shape == (2 * 2 * 3, 64, 5)
    assert torch.equal(windows.view(-1, 8, 8, 5), arch.window_partition(x, 8))
    assert torch.equal(window_reverse(windows, 8, 16, 24), x)
    assert torch.equal(window_reverse(window_partition(x, (4, 8)), (4, 8), 16, 24), x)


def test_compiles_into_one_graph() -> None:
    def masked(x: torch.Tensor) -> torch.Tensor:
        padded = pad_to_multiple(x.permute(0, 3, 1, 2), 4).permute(0, 2, 3, 1)
        h, w = padded.shape[1], padded.shape[2]
        mask = shift_mask(h, w, 4, 2, device=x.device, dtype=x.dtype)
        index = relative_position_index(4, x.device)
        windows = window_partition(padded, 4)
        return windows.sum() + mask.sum() + index.sum()

    torch._dynamo.reset()
    x = torch.rand(1, 6, 7, 3)
    explained = torch._dynamo.explain(masked)(x)
    assert explained.graph_break_count == 0
    compiled = torch.compile(masked, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), masked(x))
