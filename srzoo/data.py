"""Training data for fine-tuning: folders of images become aligned (LR, HR) patches.

The low-resolution images are made with :func:`srzoo.metrics.imresize`, MATLAB's bicubic
reproduced bit for bit, so a network fine-tuned here sees the same degradation as the one the
benchmarks and most published weights assume; or they are read from a folder of LR files; or,
as an option, made by a Real-ESRGAN-style random degradation (:class:`RealESRGANDegradation`).

Every random choice (which crop, which flip or rotation, which degradation) comes from a
generator keyed by ``(seed, index)``, so an item is the same in any process, worker or run.

Example:
    >>> ds = srzoo.data.PairedImageDataset("photos/", scale=4, patch_size=48, seed=0)
    >>> lr, hr = ds[0]
    >>> lr.shape, hr.shape
    (torch.Size([3, 48, 48]), torch.Size([3, 192, 192]))
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from .errors import ArgumentError, ArgumentTypeError
from .image import pil_image_module, read_image_array
from .metrics import imresize

__all__ = [
    "IMAGE_SUFFIXES",
    "PairedImageDataset",
    "RealESRGANDegradation",
    "StepBatchSampler",
    "augment_pair",
    "list_images",
    "lr_from_hr",
    "random_crop_pair",
    "read_rgb",
]

#: File suffixes :func:`list_images` picks up by default.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

Pair = tuple[torch.Tensor, torch.Tensor]


def list_images(
    root: str | os.PathLike[str], *, suffixes: Sequence[str] = IMAGE_SUFFIXES
) -> list[Path]:
    """Every image under ``root`` (recursively), in a stable order.

    Files are ordered by their path relative to ``root`` without the suffix, so a folder
    converted from PNG to WebP lists in the same order.

    Args:
        root: The folder.
        suffixes: File suffixes to take (lower case, with the dot).

    Returns:
        The paths.

    Raises:
        ArgumentError: ``root`` is not a folder.

    Example:
        >>> srzoo.data.list_images("photos/", suffixes=(".png",))[:1]
        [PosixPath('photos/a.png')]
    """
    folder = Path(root)
    if not folder.is_dir():
        raise ArgumentError(f"{folder} is not a folder of images; pass the folder that holds them")
    wanted = tuple(s.lower() for s in suffixes)
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in wanted]
    return sorted(files, key=lambda p: p.relative_to(folder).with_suffix("").as_posix())


def read_rgb(path: str | os.PathLike[str]) -> torch.Tensor:
    """An image file as a ``uint8`` RGB tensor ``(3, H, W)``.

    Gray images become three equal channels, alpha is dropped, 16-bit files are rounded to 8
    bits (the networks and their metrics are 8-bit).

    Args:
        path: The image file.

    Returns:
        The pixels.

    Raises:
        ImageReadError: The file is not a readable image.

    Example:
        >>> srzoo.data.read_rgb("photo.png").shape
        torch.Size([3, 480, 640])
    """
    array = read_image_array(path)
    if array.dtype == np.uint16:
        array = np.round(array.astype(np.float64) / 257.0).astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] in (2, 4):  # gray + alpha, RGBA: drop the alpha channel
        array = array[:, :, :-1]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    # PIL's arrays can be read-only, which torch.from_numpy must not wrap: copy those.
    array = np.require(array, requirements=["C", "W"])
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def lr_from_hr(hr: torch.Tensor, scale: int) -> Pair:
    """``hr`` cropped to a multiple of ``scale`` and its bicubic low-resolution image.

    ``uint8`` images are resized in float64 with MATLAB's rounding after each pass, on any
    device, so the result is the same on a CPU and a GPU and equals MATLAB's
    ``imresize(hr, 1/scale)``.

    Args:
        hr: ``(C, H, W)`` or ``(N, C, H, W)`` image, ``uint8`` or float.
        scale: Downscaling factor.

    Returns:
        ``(lr, hr_cropped)``.

    Example:
        >>> lr, hr = srzoo.data.lr_from_hr(srzoo.data.read_rgb("photo.png"), 4)
    """
    s = _check_scale(scale)
    h, w = hr.shape[-2] - hr.shape[-2] % s, hr.shape[-1] - hr.shape[-1] % s
    if h == 0 or w == 0:
        raise ArgumentError(f"an image of {hr.shape[-1]}x{hr.shape[-2]} is smaller than x{s}")
    hr = hr[..., :h, :w]
    return imresize(hr, scale=1.0 / s), hr


def random_crop_pair(
    lr: torch.Tensor, hr: torch.Tensor, *, patch_size: int, scale: int, rng: random.Random
) -> Pair:
    """Aligned random crops: ``patch_size`` pixels of ``lr`` and the matching ``hr`` pixels.

    Draws the row, then the column, from ``rng``.

    Args:
        lr: Low-resolution ``(C, h, w)``.
        hr: High-resolution ``(C, h * scale, w * scale)`` (or larger).
        patch_size: Side of the low-resolution crop.
        scale: Upscaling factor.
        rng: The random generator.

    Returns:
        ``(lr_patch, hr_patch)``.

    Raises:
        ArgumentError: The image is smaller than the patch.

    Example:
        >>> lp, hp = random_crop_pair(lr, hr, patch_size=48, scale=4, rng=random.Random(0))
    """
    h, w = lr.shape[-2], lr.shape[-1]
    if h < patch_size or w < patch_size:
        raise ArgumentError(
            f"a low-resolution image of {w}x{h} is smaller than patch_size={patch_size}; "
            "use a smaller patch or larger images"
        )
    y = rng.randrange(h - patch_size + 1)
    x = rng.randrange(w - patch_size + 1)
    lp = lr[..., y : y + patch_size, x : x + patch_size]
    hp = hr[..., y * scale : (y + patch_size) * scale, x * scale : (x + patch_size) * scale]
    return lp, hp


def augment_pair(lr: torch.Tensor, hr: torch.Tensor, rng: random.Random) -> Pair:
    """The same random 90-degree rotation (0 to 3 turns), then horizontal flip, on both.

    With the eight results equally likely, this is the dihedral augmentation of EDSR and RCAN.

    Args:
        lr: Low-resolution ``(C, h, w)``.
        hr: High-resolution ``(C, H, W)``.
        rng: The random generator (draws the turns, then the flip).

    Returns:
        ``(lr, hr)`` augmented.

    Example:
        >>> lp, hp = augment_pair(lp, hp, random.Random(0))
    """
    k = rng.randrange(4)
    flip = rng.random() < 0.5
    lr, hr = torch.rot90(lr, k, (-2, -1)), torch.rot90(hr, k, (-2, -1))
    if flip:
        lr, hr = lr.flip(-1), hr.flip(-1)
    return lr, hr


@dataclass(frozen=True)
class RealESRGANDegradation:
    """A Real-ESRGAN-style second-order degradation: blur, resize, noise, JPEG, twice.

    Following Wang et al., "Real-ESRGAN: Training Real-World Blind Super-Resolution with Pure
    Synthetic Data" (ICCVW 2021, arXiv:2107.10833), the high-resolution patch goes through two
    rounds of: a random Gaussian blur (isotropic or anisotropic, rotated), a random resize
    (up, down or keep; area, bilinear or bicubic), additive Gaussian or Poisson noise (colour
    or gray), and JPEG compression; the second round ends at the target size. Simplified
    against the authors' pipeline: no generalized-Gaussian, plateau or sinc kernels, and the
    images are degraded one at a time on the CPU, not batched on the GPU. The defaults are the
    paper's ranges. JPEG needs Pillow.

    Example:
        >>> ds = PairedImageDataset("photos/", scale=4, patch_size=64,
        ...                         degradation=RealESRGANDegradation())
    """

    blur_sigma: tuple[float, float] = (0.2, 3.0)
    blur_sigma2: tuple[float, float] = (0.2, 1.5)
    second_blur_prob: float = 0.8
    resize_range: tuple[float, float] = (0.15, 1.5)
    resize_range2: tuple[float, float] = (0.3, 1.2)
    gaussian_noise_prob: float = 0.5
    noise_sigma: tuple[float, float] = (1.0, 30.0)
    noise_sigma2: tuple[float, float] = (1.0, 25.0)
    poisson_scale: tuple[float, float] = (0.05, 3.0)
    poisson_scale2: tuple[float, float] = (0.05, 2.5)
    gray_noise_prob: float = 0.4
    jpeg_quality: tuple[int, int] = (30, 95)

    def __call__(self, hr: torch.Tensor, scale: int, rng: random.Random) -> torch.Tensor:
        """Degrade ``hr`` (float ``(C, H, W)`` in [0, 1]) to ``(C, H // scale, W // scale)``.

        Args:
            hr: High-resolution image, float in [0, 1].
            scale: Downscaling factor of the result.
            rng: The random generator every choice is drawn from.

        Returns:
            The low-resolution image, float in [0, 1] (8-bit values after the last JPEG).
        """
        out_h, out_w = hr.shape[-2] // scale, hr.shape[-1] // scale
        gen = torch.Generator().manual_seed(rng.getrandbits(63))
        x = hr[None].double()
        x = _blur(x, rng, self.blur_sigma)
        x = _random_resize(x, rng, self.resize_range, (x.shape[-2], x.shape[-1]))
        x = self._noise(x, rng, gen, self.noise_sigma, self.poisson_scale)
        x = _jpeg(x, rng.randint(*self.jpeg_quality))
        if rng.random() < self.second_blur_prob:
            x = _blur(x, rng, self.blur_sigma2)
        x = _random_resize(x, rng, self.resize_range2, (out_h, out_w))
        x = self._noise(x, rng, gen, self.noise_sigma2, self.poisson_scale2)
        # As the authors: resize to the target then compress, or compress then resize.
        if rng.random() < 0.5:
            x = _resize(x, (out_h, out_w), rng.choice(_MODES))
            x = _jpeg(x, rng.randint(*self.jpeg_quality))
        else:
            x = _jpeg(x, rng.randint(*self.jpeg_quality))
            x = _resize(x, (out_h, out_w), rng.choice(_MODES))
        return x[0].clamp(0, 1).to(hr.dtype)

    def _noise(
        self,
        x: torch.Tensor,
        rng: random.Random,
        gen: torch.Generator,
        sigma: tuple[float, float],
        poisson: tuple[float, float],
    ) -> torch.Tensor:
        gray = rng.random() < self.gray_noise_prob
        shape = (x.shape[0], 1, *x.shape[2:]) if gray else tuple(x.shape)
        if rng.random() < self.gaussian_noise_prob:
            std = rng.uniform(*sigma) / 255.0
            noise = torch.randn(shape, generator=gen, dtype=x.dtype) * std
        else:
            # Poisson (shot) noise: photon counts of a 0..255 image, scaled by the strength.
            strength = rng.uniform(*poisson)
            base = x.clamp(0, 1) * 255.0
            if gray:
                base = (
                    base * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype)[:, None, None]
                ).sum(1, keepdim=True)
            noise = (torch.poisson(base, generator=gen) - base) / 255.0 * strength
        return (x + noise).clamp(0, 1)


_MODES = ("area", "bilinear", "bicubic")


def _blur(x: torch.Tensor, rng: random.Random, sigma: tuple[float, float]) -> torch.Tensor:
    size = rng.randrange(7, 22, 2)
    sx = rng.uniform(*sigma)
    sy = sx if rng.random() < 0.5 else rng.uniform(*sigma)  # isotropic or anisotropic
    theta = rng.uniform(-math.pi, math.pi)
    r = torch.arange(size, dtype=x.dtype) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    kernel = torch.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))
    kernel = (kernel / kernel.sum()).expand(x.shape[1], 1, size, size)
    pad = size // 2
    mode = "reflect" if min(x.shape[-2:]) > pad else "replicate"
    return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode=mode), kernel, groups=x.shape[1])


def _random_resize(
    x: torch.Tensor, rng: random.Random, factor_range: tuple[float, float], base: tuple[int, int]
) -> torch.Tensor:
    """``base`` scaled up (30%), down (40%) or kept (30%), as Real-ESRGAN draws its resize."""
    kind = rng.random()
    if kind < 0.3:
        factor = rng.uniform(1.0, factor_range[1])
    elif kind < 0.7:
        factor = rng.uniform(factor_range[0], 1.0)
    else:
        factor = 1.0
    size = (max(1, round(base[0] * factor)), max(1, round(base[1] * factor)))
    return _resize(x, size, rng.choice(_MODES))


def _resize(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "area":
        return F.interpolate(x, size=size, mode="area").clamp(0, 1)
    return F.interpolate(x, size=size, mode=mode, align_corners=False).clamp(0, 1)


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    image_module = pil_image_module()
    pixels = (x[0].clamp(0, 1) * 255.0).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    image_module.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with image_module.open(buffer) as decoded:
        back = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(back.copy()).permute(2, 0, 1)[None].to(x.dtype) / 255.0


class PairedImageDataset(Dataset[Pair]):
    """Aligned (LR, HR) training patches from a folder of high-resolution images.

    Item ``i`` is a random ``patch_size`` crop of image ``i % len(self)`` with a random
    rotation and flip, as float tensors in [0, 1]: LR ``(3, patch_size, patch_size)`` and HR
    ``(3, patch_size * scale, patch_size * scale)``. Any index ``i >= 0`` is valid: index
    ``i + k * len(self)`` is the same image with other random draws, so a sampler asks for
    fresh crops in every epoch without telling the dataset (and DataLoader workers, which hold
    copies of it, need no message). Draws come from a generator keyed by ``(seed, i)``.

    The LR image is, in order of preference: ``degradation(hr_patch)`` when given (the HR patch
    is cropped first, as Real-ESRGAN does); the matching file in ``lr_root``
    (``<name>x<scale>.<ext>`` or ``<name>.<ext>``, the DIV2K and benchmark layouts); else
    :func:`srzoo.metrics.imresize` of the whole HR image (MATLAB's bicubic, bit-exact), cached.

    Args:
        root: Folder of high-resolution images (searched recursively), or a list of files.
        scale: Upscaling factor.
        patch_size: Side of the low-resolution patch.
        lr_root: Folder of matching low-resolution images (default: made by ``imresize``).
        degradation: A callable ``(hr, scale, rng) -> lr``, such as
            :class:`RealESRGANDegradation`; ``None`` for bicubic.
        augment: Random rotations and flips.
        seed: Seed of every random draw.
        cache: Keep decoded images and their LR versions in memory (a few MB per image).

    Raises:
        ArgumentError: No images, a bad scale or patch size, a missing or mis-sized LR file.

    Example:
        >>> ds = PairedImageDataset("photos/", scale=4, patch_size=48)
        >>> loader = torch.utils.data.DataLoader(ds, batch_size=16, shuffle=True)
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        *,
        scale: int,
        patch_size: int,
        lr_root: str | os.PathLike[str] | None = None,
        degradation: RealESRGANDegradation | Any | None = None,
        augment: bool = True,
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        self.scale = _check_scale(scale)
        if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 1:
            raise ArgumentError(f"patch_size must be a positive int, got {patch_size!r}")
        self.patch_size = patch_size
        if isinstance(root, (str, os.PathLike)):
            self.files = list_images(root)
            where = str(root)
        elif isinstance(root, Sequence):
            self.files = [Path(p) for p in root]
            where = "the list of files"
        else:
            raise ArgumentTypeError(
                f"root must be a folder or a list of files, not {type(root).__name__}"
            )
        if not self.files:
            raise ArgumentError(f"no images in {where} (looked for {', '.join(IMAGE_SUFFIXES)})")
        if degradation is not None and not callable(degradation):
            raise ArgumentTypeError("degradation must be callable as (hr, scale, rng) -> lr")
        self.lr_root = Path(lr_root) if lr_root is not None else None
        self.degradation = degradation
        self.augment = augment
        self.seed = int(seed)
        self.cache = cache
        self._pairs: dict[int, Pair] = {}

    def __len__(self) -> int:
        return len(self.files)

    def pair(self, image: int) -> Pair:
        """Image number ``image`` as a whole ``uint8`` (LR, HR) pair, the HR cropped to a
        multiple of the scale (with a degradation, the LR is not made: the HR stands in)."""
        if image in self._pairs:
            return self._pairs[image]
        hr = read_rgb(self.files[image])
        if self.lr_root is not None or self.degradation is not None:
            h, w = hr.shape[1] - hr.shape[1] % self.scale, hr.shape[2] - hr.shape[2] % self.scale
            hr = hr[:, :h, :w]
        if self.degradation is not None:
            lr = hr
        elif self.lr_root is not None:
            lr = read_rgb(self._lr_file(self.files[image]))
            if tuple(lr.shape[1:]) != (h // self.scale, w // self.scale):
                raise ArgumentError(
                    f"{self._lr_file(self.files[image])} is {lr.shape[2]}x{lr.shape[1]}, not "
                    f"{w // self.scale}x{h // self.scale} (its HR image / {self.scale}); check "
                    "lr_root and scale"
                )
        else:
            lr, hr = lr_from_hr(hr, self.scale)
        if self.cache:
            self._pairs[image] = (lr, hr)
        return lr, hr

    def _lr_file(self, hr_file: Path) -> Path:
        assert self.lr_root is not None
        for name in (f"{hr_file.stem}x{self.scale}", hr_file.stem):
            for suffix in (hr_file.suffix, *IMAGE_SUFFIXES):
                candidate = self.lr_root / f"{name}{suffix}"
                if candidate.is_file():
                    return candidate
        raise ArgumentError(
            f"no low-resolution image for {hr_file.name} in {self.lr_root} (looked for "
            f"{hr_file.stem}x{self.scale}.* and {hr_file.stem}.*)"
        )

    def __getitem__(self, index: int) -> Pair:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise ArgumentError(f"index must be a non-negative int, got {index!r}")
        rng = random.Random(f"srzoo-paired:{self.seed}:{int(index)}")
        lr, hr = self.pair(int(index) % len(self.files))
        if self.degradation is not None:
            # As Real-ESRGAN: crop the HR patch first, then degrade only the patch.
            hp_size = self.patch_size * self.scale
            _, hp = random_crop_pair(hr, hr, patch_size=hp_size, scale=1, rng=rng)
            if self.augment:
                _, hp = augment_pair(hp, hp, rng)
            hp_float = hp.float() / 255.0
            lp_float = self.degradation(hp_float, self.scale, rng)
            return lp_float.contiguous(), hp_float.contiguous()
        lp, hp = random_crop_pair(lr, hr, patch_size=self.patch_size, scale=self.scale, rng=rng)
        if self.augment:
            lp, hp = augment_pair(lp, hp, rng)
        return lp.float().div(255.0).contiguous(), hp.float().div(255.0).contiguous()


class StepBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices for ``steps`` training steps, split across processes.

    Each pass over the data is a random permutation keyed by ``(seed, pass)``; the global
    batch of step ``t`` is the next ``batch_size * world_size`` indices, of which process
    ``rank`` takes its contiguous ``batch_size`` share. So ``N`` processes with ``batch_size=B``
    see exactly the samples of one process with ``N * B``, and a run resumed at ``start_step``
    continues with the batches it would have had. Indices of pass ``p`` are offset by
    ``p * dataset_size``, which :class:`PairedImageDataset` turns into fresh crops.

    Args:
        dataset_size: Number of items in one pass (``len(dataset)``).
        batch_size: Items per process and step.
        steps: Steps to yield, counted from 0.
        seed: Seed of the permutations.
        rank: This process's rank.
        world_size: Number of processes.
        start_step: First step to yield (for a resumed run).

    Example:
        >>> sampler = StepBatchSampler(len(ds), batch_size=16, steps=1000, seed=0)
        >>> loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=4)
    """

    def __init__(
        self,
        dataset_size: int,
        *,
        batch_size: int,
        steps: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        if dataset_size < 1 or batch_size < 1 or steps < 0:
            raise ArgumentError(
                f"need dataset_size >= 1, batch_size >= 1 and steps >= 0, got {dataset_size}, "
                f"{batch_size}, {steps}"
            )
        if not 0 <= rank < world_size:
            raise ArgumentError(f"rank {rank} is not in 0..{world_size - 1}")
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.steps = steps
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_step = start_step

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)

    def __iter__(self) -> Iterator[list[int]]:
        per_step = self.batch_size * self.world_size
        first = self.start_step * per_step
        stop = self.steps * per_step
        start = first + self.rank * self.batch_size
        for offset in range(start, stop, per_step):
            yield [self._index(offset + j) for j in range(self.batch_size)]

    def _index(self, position: int) -> int:
        n = self.dataset_size
        epoch, within = divmod(position, n)
        return epoch * n + _permutation(self.seed, epoch, n)[within]


_PERMUTATIONS: dict[tuple[int, int, int], list[int]] = {}


def _permutation(seed: int, epoch: int, n: int) -> list[int]:
    key = (seed, epoch, n)
    if key not in _PERMUTATIONS:
        if len(_PERMUTATIONS) > 8:
            _PERMUTATIONS.clear()
        order = list(range(n))
        random.Random(f"srzoo-epoch:{seed}:{epoch}").shuffle(order)
        _PERMUTATIONS[key] = order
    return _PERMUTATIONS[key]


def _check_scale(scale: object) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ArgumentError(f"scale must be a positive int, got {scale!r}")
    return int(scale)
