"""Training data: (LR, HR) patches aligned and made with MATLAB's bicubic, reproducible from the
seed alone, the LR folder alternative, the Real-ESRGAN-style degradation, and the sampler that
makes N processes see what one process with N times the batch sees."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import srzoo
from srzoo.data import (
    PairedImageDataset,
    RealESRGANDegradation,
    StepBatchSampler,
    augment_pair,
    list_images,
    lr_from_hr,
    read_rgb,
)
from srzoo.metrics import imresize


def write_images(folder: Path, n: int = 4, size: tuple[int, int] = (50, 42)) -> list[Path]:
    """Smooth random colour images (textures a bicubic kernel does not flatten to nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        coarse = rng.integers(0, 256, (size[0] // 5 + 2, size[1] // 5 + 2, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size[1], size[0]), Image.Resampling.BICUBIC)
        path = folder / f"img{i}.png"
        image.save(path)
        paths.append(path)
    return paths


def _to_u8(t: torch.Tensor) -> torch.Tensor:
    return t.mul(255).round().byte()


def test_lr_is_matlab_bicubic_of_the_cropped_hr(tmp_path: Path) -> None:
    (path,) = write_images(tmp_path, n=1, size=(50, 42))
    hr = read_rgb(path)
    lr, hr_cropped = lr_from_hr(hr, 4)
    assert tuple(hr_cropped.shape) == (3, 48, 40) and tuple(lr.shape) == (3, 12, 10)
    assert torch.equal(lr, imresize(hr[:, :48, :40], scale=1 / 4))
    assert lr.dtype == torch.uint8


def test_patches_are_aligned_crops_of_the_bicubic_pair(tmp_path: Path) -> None:
    write_images(tmp_path)
    ds = PairedImageDataset(tmp_path, scale=2, patch_size=12, augment=False, seed=3)
    for i in range(len(ds)):
        lp, hp = ds[i]
        assert lp.shape == (3, 12, 12) and hp.shape == (3, 24, 24)
        assert lp.dtype == hp.dtype == torch.float32 and lp.min() >= 0 and hp.max() <= 1
        # Away from the crop's edges, resizing the HR patch gives the LR patch bit for bit:
        # the same HR pixels enter the same bicubic sums.
        again = imresize(_to_u8(hp), scale=1 / 2)
        assert torch.equal(again[:, 3:-3, 3:-3], _to_u8(lp)[:, 3:-3, 3:-3])


def test_augmentation_is_one_dihedral_transform_applied_to_both(tmp_path: Path) -> None:
    write_images(tmp_path)
    plain = PairedImageDataset(tmp_path, scale=3, patch_size=8, augment=False, seed=1)
    turned = PairedImageDataset(tmp_path, scale=3, patch_size=8, augment=True, seed=1)
    seen = set()
    for i in range(24):
        (lp, hp), (la, ha) = plain[i], turned[i]
        matches = [
            (k, flip)
            for k in range(4)
            for flip in (False, True)
            if torch.equal(_dihedral(lp, k, flip), la) and torch.equal(_dihedral(hp, k, flip), ha)
        ]
        assert matches, f"item {i}: LR and HR were not turned alike"
        seen.add(matches[0])
    assert len(seen) >= 4  # the transforms do vary


def _dihedral(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    y = torch.rot90(x, k, (-2, -1))
    return y.flip(-1) if flip else y


def test_items_depend_on_seed_and_index_only(tmp_path: Path) -> None:
    write_images(tmp_path)
    a = PairedImageDataset(tmp_path, scale=2, patch_size=8, seed=7)
    b = PairedImageDataset(tmp_path, scale=2, patch_size=8, seed=7, cache=False)
    order = [5, 0, 9, 2]
    first = {i: a[i] for i in order}
    for i in reversed(order):  # another order, another (uncached) instance: the same items
        assert all(torch.equal(x, y) for x, y in zip(first[i], b[i], strict=True))
    other_seed = PairedImageDataset(tmp_path, scale=2, patch_size=8, seed=8)
    assert not torch.equal(a[0][1], other_seed[0][1])
    # Index i + len: the same image, other draws (a fresh epoch's crops).
    assert not torch.equal(a[1][1], a[1 + len(a)][1])


def test_lr_folder_replaces_the_bicubic_lr(tmp_path: Path) -> None:
    paths = write_images(tmp_path / "hr")
    (tmp_path / "lr").mkdir()
    for p in paths:
        lr, _ = lr_from_hr(read_rgb(p), 2)
        Image.fromarray(lr.permute(1, 2, 0).numpy()).save(tmp_path / "lr" / f"{p.stem}x2.png")
    made = PairedImageDataset(tmp_path / "hr", scale=2, patch_size=10, seed=0)
    read = PairedImageDataset(
        tmp_path / "hr", scale=2, patch_size=10, seed=0, lr_root=tmp_path / "lr"
    )
    for i in range(len(made)):
        assert all(torch.equal(x, y) for x, y in zip(made[i], read[i], strict=True))

    wrong = PairedImageDataset(tmp_path / "hr", scale=3, patch_size=5, lr_root=tmp_path / "lr")
    with pytest.raises(srzoo.ArgumentError, match="no low-resolution image"):
        wrong[0]
    Image.new("RGB", (7, 7)).save(tmp_path / "lr" / "img0x2.png")
    with pytest.raises(srzoo.ArgumentError, match="check lr_root and scale"):
        PairedImageDataset(tmp_path / "hr", scale=2, patch_size=5, lr_root=tmp_path / "lr")[0]


def test_realesrgan_degradation_is_reproducible_and_sized(tmp_path: Path) -> None:
    write_images(tmp_path, size=(96, 96))
    deg = RealESRGANDegradation()
    ds = PairedImageDataset(tmp_path, scale=4, patch_size=16, degradation=deg, seed=2)
    lp, hp = ds[0]
    assert lp.shape == (3, 16, 16) and hp.shape == (3, 64, 64)
    assert float(lp.min()) >= 0 and float(lp.max()) <= 1
    again = PairedImageDataset(tmp_path, scale=4, patch_size=16, degradation=deg, seed=2)
    assert torch.equal(again[0][0], lp) and torch.equal(again[0][1], hp)
    # A degradation, not a bicubic resize: blur, noise and JPEG move the pixels.
    bicubic = imresize(hp, scale=1 / 4)
    assert float((bicubic - lp).abs().mean()) > 1 / 255
    outputs = {ds[i][0].sum().item() for i in range(len(ds), len(ds) + 3)}
    assert len(outputs) == 3


def test_sampler_splits_the_global_batch_across_processes() -> None:
    n, steps = 7, 9
    one = list(StepBatchSampler(n, batch_size=4, steps=steps, seed=5))
    two = [
        list(StepBatchSampler(n, batch_size=2, steps=steps, seed=5, rank=r, world_size=2))
        for r in (0, 1)
    ]
    for t in range(steps):
        assert two[0][t] + two[1][t] == one[t]
    flat = [i for batch in one for i in batch]
    for epoch in range(len(flat) // n):  # every pass visits every image once
        assert sorted(i % n for i in flat[epoch * n : (epoch + 1) * n]) == list(range(n))
        assert all(i // n == epoch for i in flat[epoch * n : (epoch + 1) * n])
    resumed = list(StepBatchSampler(n, batch_size=4, steps=steps, seed=5, start_step=4))
    assert (
        resumed == one[4:]
        and len(StepBatchSampler(n, batch_size=4, steps=steps, start_step=4)) == 5
    )
    assert list(StepBatchSampler(n, batch_size=4, steps=steps, seed=6)) != one


def test_dataloader_with_workers_gives_the_same_batches(tmp_path: Path) -> None:
    write_images(tmp_path, n=3)
    ds = PairedImageDataset(tmp_path, scale=2, patch_size=8, seed=0)
    sampler = StepBatchSampler(len(ds), batch_size=2, steps=3, seed=0)
    direct = [torch.stack([ds[i][0] for i in batch]) for batch in sampler]
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=1)
    assert all(torch.equal(a, lr) for a, (lr, _) in zip(direct, loader, strict=True))


def test_read_rgb_handles_gray_alpha_and_16_bit(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "g.png")
    assert torch.equal(read_rgb(tmp_path / "g.png"), torch.from_numpy(gray).expand(3, 3, 4))
    rgba = np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert torch.equal(
        read_rgb(tmp_path / "a.png"), torch.from_numpy(rgba[..., :3]).permute(2, 0, 1)
    )
    deep = (gray.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    assert torch.equal(read_rgb(tmp_path / "d.png")[0], torch.from_numpy(gray))


def test_listing_and_bad_arguments(tmp_path: Path) -> None:
    write_images(tmp_path / "b", n=1)
    write_images(tmp_path / "a", n=2)
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == [
        "a/img0.png",
        "a/img1.png",
        "b/img0.png",
    ]
    with pytest.raises(srzoo.ArgumentError, match="no images"):
        PairedImageDataset([], scale=2, patch_size=8)
    with pytest.raises(srzoo.ArgumentError, match="not a folder"):
        PairedImageDataset(tmp_path / "missing", scale=2, patch_size=8)
    with pytest.raises(srzoo.ArgumentError, match="patch_size"):
        PairedImageDataset(tmp_path, scale=2, patch_size=0)
    with pytest.raises(srzoo.ArgumentError, match="smaller than patch_size"):
        PairedImageDataset(tmp_path, scale=2, patch_size=64)[0]
    with pytest.raises(srzoo.ArgumentError, match="rank"):
        StepBatchSampler(3, batch_size=1, steps=1, rank=2, world_size=2)
    lr, hr = torch.zeros(3, 4, 4), torch.zeros(3, 8, 8)
    a, b = augment_pair(lr, hr, random.Random(0))
    assert a.shape == lr.shape and b.shape == hr.shape
