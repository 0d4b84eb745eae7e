"""Benchmark evaluation by the papers' protocol.

The protocol of EDSR, RCAN and their successors: low-resolution inputs made with MATLAB's bicubic
``imresize`` (or read from a folder of such files), the model's output clamped and rounded to
8 bits, PSNR and SSIM on the BT.601 Y channel with ``scale`` pixels cropped at every border,
averaged over the images.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from ._util import progress_bar
from .contract import model_scale
from .errors import ArgumentError, SrzooError
from .image import IMAGE_SUFFIXES, read_image
from .inference import resolve_model, upscale
from .metrics import imresize, psnr, ssim

__all__ = ["EvalResult", "ImageScore", "evaluate"]


@dataclass(frozen=True)
class ImageScore:
    """Scores of one image.

    Args:
        name: File name of the high-resolution image.
        psnr: PSNR in dB.
        ssim: SSIM.
    """

    name: str
    psnr: float
    ssim: float


@dataclass(frozen=True)
class EvalResult:
    """Per-image and mean scores of one evaluation.

    Args:
        scale: Upscaling factor.
        images: One :class:`ImageScore` per image, in file-name order.
        y_channel: Whether scores were computed on Y (else on RGB).
        crop_border: Pixels dropped at each border before scoring.
    """

    scale: int
    images: tuple[ImageScore, ...]
    y_channel: bool = True
    crop_border: int = 0

    @property
    def psnr(self) -> float:
        """Mean PSNR over the images (dB)."""
        return float(np.mean([i.psnr for i in self.images]))

    @property
    def ssim(self) -> float:
        """Mean SSIM over the images."""
        return float(np.mean([i.ssim for i in self.images]))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict with the settings, mean scores and per-image scores.

        Returns:
            A JSON-serialisable dict.

        Example:
            >>> json.dumps(result.to_dict())
        """
        return {
            "scale": self.scale,
            "y_channel": self.y_channel,
            "crop_border": self.crop_border,
            "psnr": self.psnr,
            "ssim": self.ssim,
            "images": [asdict(i) for i in self.images],
        }

    def save(self, path: str | os.PathLike[str], *, format: str | None = None) -> Path:
        """Write the scores as CSV (one row per image, then the mean) or JSON.

        Args:
            path: Output file.
            format: ``"csv"`` or ``"json"``; ``None`` chooses CSV for a ``.csv`` suffix and JSON
                otherwise.

        Returns:
            The path written.

        Example:
            >>> result.save("set14_x4.csv")
        """
        out = Path(path)
        kind = format or ("csv" if out.suffix.lower() == ".csv" else "json")
        if kind not in ("csv", "json"):
            raise ArgumentError(f"format must be 'csv' or 'json', not {format!r}")
        if kind == "csv":
            with out.open("w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["image", "psnr", "ssim"])
                for i in self.images:
                    writer.writerow([i.name, f"{i.psnr:.4f}", f"{i.ssim:.4f}"])
                writer.writerow(["mean", f"{self.psnr:.4f}", f"{self.ssim:.4f}"])
        else:
            out.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return out

    def _summary(self) -> str:
        space = "Y" if self.y_channel else "RGB"
        return (
            f"x{self.scale}, {len(self.images)} images, {space}, {self.crop_border}-pixel border "
            f"cropped: PSNR {self.psnr:.4f} dB, SSIM {self.ssim:.4f}"
        )

    def _repr_markdown_(self) -> str:
        """The mean and per-image scores as a Markdown table, for notebooks (Jupyter calls this)."""
        lines = [f"**{self._summary()}**", "", "| image | PSNR (dB) | SSIM |", "|---|---:|---:|"]
        for i in self.images:
            name = i.name.replace("|", "\\|")
            lines.append(f"| {name} | {i.psnr:.4f} | {i.ssim:.4f} |")
        lines.append(f"| **mean** | **{self.psnr:.4f}** | **{self.ssim:.4f}** |")
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        """The mean and per-image scores as an HTML table, for notebooks (Jupyter calls this)."""
        rows = "".join(
            f"<tr><td>{escape(i.name)}</td><td>{i.psnr:.4f}</td><td>{i.ssim:.4f}</td></tr>"
            for i in self.images
        )
        mean = f"<tr><th>mean</th><th>{self.psnr:.4f}</th><th>{self.ssim:.4f}</th></tr>"
        head = "<tr><th>image</th><th>PSNR (dB)</th><th>SSIM</th></tr>"
        return f"<p><b>{escape(self._summary())}</b></p><table>{head}{rows}{mean}</table>"


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise SrzooError(f"{folder} is not a folder of images.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SrzooError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return files


def _read_rgb(path: Path) -> npt.NDArray[np.uint8]:
    # Gray benchmark images (Set14's bridge) count as RGB with equal channels.
    return np.asarray(read_image(path).convert("RGB"), dtype=np.uint8).copy()


def _find_lr(lr_dir: Path, hr: Path, scale: int) -> Path:
    candidates = [f"{hr.stem}x{scale}", f"{hr.stem}_x{scale}", f"{hr.stem}X{scale}", hr.stem]
    for stem in candidates:
        for suffix in (hr.suffix, *sorted(IMAGE_SUFFIXES)):
            p = lr_dir / f"{stem}{suffix}"
            if p.is_file():
                return p
    raise SrzooError(
        f"no low-resolution file for {hr.name} in {lr_dir} (looked for {candidates[0]}.png and "
        f"{hr.stem}.png)."
    )


def evaluate(
    model: nn.Module | str,
    hr_dir: str | os.PathLike[str],
    *,
    scale: int | None = None,
    lr_dir: str | os.PathLike[str] | None = None,
    self_ensemble: bool = False,
    y_channel: bool = True,
    crop_border: int | None = None,
    tile: int | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    names: Sequence[str] | None = None,
) -> EvalResult:
    """Score a model on a benchmark folder by the papers' protocol.

    Each high-resolution image is read as 8-bit RGB (grayscale as three equal channels). Without
    ``lr_dir`` it is cropped to a multiple of ``scale`` and shrunk with
    :func:`srzoo.metrics.imresize` (MATLAB's bicubic, bit-exact); with ``lr_dir`` the matching
    file (``<name>x<scale>.png`` or ``<name>.png``) is read instead. The model's output is
    clamped and rounded to 8 bits, the high-resolution image cropped to the output's size, and
    PSNR / SSIM are computed on BT.601 Y with ``scale`` pixels dropped at every border.

    Args:
        model: A module following srzoo's contract, or a registered name (loaded with its
            default weights).
        hr_dir: Folder of high-resolution images.
        scale: Upscaling factor (default: the model's ``scale``).
        lr_dir: Folder of matching low-resolution images; ``None`` makes them with ``imresize``.
        self_ensemble: Average the eight flips and rotations (the papers' "+" results).
        y_channel: Score on Y (the papers' convention) rather than RGB.
        crop_border: Pixels dropped at each border (default: ``scale``).
        tile: Tile size for large images (default: whole images).
        device: Where to run the model (default: where its parameters are).
        progress: Progress bar over images; ``None`` shows one only on a terminal.
        names: Only these HR file names (default: every image in ``hr_dir``).

    Returns:
        An :class:`EvalResult` with per-image and mean PSNR / SSIM.

    Raises:
        SrzooError: A folder is missing or empty, a name in ``names`` is not in ``hr_dir``, or a
            low-resolution file cannot be found.

    Example:
        >>> result = srzoo.evaluate("imdn", "Set14/HR", scale=4)
        >>> print(f"{result.psnr:.2f} dB")
    """
    # Once, not per image: a module on another device would otherwise be copied for every image.
    model = resolve_model(model, scale=scale if isinstance(model, str) else None, device=device)
    s = model_scale(model)
    if scale is not None and scale != s:
        raise ArgumentError(f"the model upscales x{s}, but scale={scale} was asked for.")
    border = s if crop_border is None else crop_border
    files = _images(Path(hr_dir))
    if names is not None:
        wanted = set(names)
        files = [f for f in files if f.name in wanted]
        missing = wanted - {f.name for f in files}
        if missing:
            raise SrzooError(f"no such images in {hr_dir}: {', '.join(sorted(missing))}")
    lr_folder = Path(lr_dir) if lr_dir is not None else None

    scores: list[ImageScore] = []
    with progress_bar(progress, total=len(files), desc="evaluate", unit="image") as bar:
        for hr_path in files:
            hr = _read_rgb(hr_path)
            if lr_folder is None:
                h, w = hr.shape[0] - hr.shape[0] % s, hr.shape[1] - hr.shape[1] % s
                lr = imresize(np.ascontiguousarray(hr[:h, :w]), scale=1.0 / s)
            else:
                lr = _read_rgb(_find_lr(lr_folder, hr_path, s))
            sr = upscale(
                model,
                lr,
                tile=tile,
                self_ensemble=self_ensemble,
                progress=False,
            )
            oh, ow = sr.shape[:2]
            if hr.shape[0] < oh or hr.shape[1] < ow:
                raise SrzooError(
                    f"{hr_path.name}: the output ({ow}x{oh}) is larger than the high-resolution "
                    f"image ({hr.shape[1]}x{hr.shape[0]}); check the scale and the LR folder."
                )
            ref = np.ascontiguousarray(hr[:oh, :ow])
            scores.append(
                ImageScore(
                    hr_path.name,
                    psnr(sr, ref, crop_border=border, y_channel=y_channel),
                    ssim(sr, ref, crop_border=border, y_channel=y_channel),
                )
            )
            bar.update(1)
    return EvalResult(scale=s, images=tuple(scores), y_channel=y_channel, crop_border=border)
