"""The ``srzoo`` command: list, describe, download and run super-resolution models.

Example:
    $ srzoo list "edsr*" --pretrained
    $ srzoo info rcan
    $ srzoo upscale photo.png -o out/ --scale 4  # srzoo's own model, shipped in the package
    $ srzoo upscale photos/ -o out/ -m edsr-baseline --scale 4 --tile 512 --dtype bf16
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ._util import atomic_write, progress_bar, show_progress
from .api import load, load_default
from .errors import SrzooError
from .evaluation import evaluate
from .image import IMAGE_SUFFIXES, read_image_array, write_image
from .inference import upscale
from .registry import get_spec, list_models
from .weights import download

__all__ = ["main"]

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_FORMATS = ("png", "jpg", "webp")


def _tile(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        tile = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of pixels or 'auto', got {value!r}"
        ) from None
    if tile < 1:
        raise argparse.ArgumentTypeError(f"tile must be positive, got {tile}")
    return tile


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def _positive_int(value: str) -> int:
    number = _non_negative(value)
    if number == 0:
        raise argparse.ArgumentTypeError("must be >= 1, got 0")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {value}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="srzoo", description="Image super-resolution models with their pretrained weights."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list registered models")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'edsr*'")
    p.add_argument("--pretrained", action="store_true", help="only models with weights")

    p = sub.add_parser("info", help="describe a model: scales, paper, licences, weights")
    p.add_argument("name")

    p = sub.add_parser("download", help="download a model's pretrained weights into the cache")
    p.add_argument("name")
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("eval", help="PSNR / SSIM on a benchmark folder, by the papers' protocol")
    p.add_argument("name", help="registered model name")
    p.add_argument("--hr", required=True, type=Path, help="folder of high-resolution images")
    p.add_argument("--lr", type=Path, default=None, help="matching LR folder (default: imresize)")
    p.add_argument("--scale", type=int, required=True, help="upscaling factor")
    p.add_argument("--weights", default=None, help="local checkpoint instead of the registry's")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flips and rotations")
    p.add_argument("--rgb", action="store_true", help="score RGB instead of Y")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cpu)")
    p.add_argument("--csv", type=Path, default=None, help="write per-image scores as CSV")
    p.add_argument("--json", type=Path, default=None, help="write per-image scores as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("upscale", help="upscale image files and folders")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument(
        "-m",
        "--model",
        default=None,
        help="registered model name (default: srzoo's own model, shipped in the package)",
    )
    p.add_argument("--scale", type=int, default=None, help="upscaling factor (required without -m)")
    p.add_argument("--weights", default=None, help="weights tag or local checkpoint (with -m)")
    p.add_argument("--tile", type=_tile, default=None, help="tile side in pixels, or 'auto'")
    p.add_argument("--overlap", type=_non_negative, default=16, help="context around tiles")
    p.add_argument("--batch-size", type=_positive_int, default=1, help="tiles per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if any)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="fp32")
    p.add_argument("--format", choices=_FORMATS, default="png", help="output format")
    p.add_argument("--outscale", type=_positive_float, default=None, help="final scale (resized)")
    p.add_argument("--alpha", choices=("bicubic", "model"), default="bicubic")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flips and rotations")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``srzoo`` command.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 when some file or download failed, 2 for bad usage.

    Example:
        >>> main(["list", "edsr*"])
        0
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else 2
    commands = {
        "list": _cmd_list,
        "info": _cmd_info,
        "download": _cmd_download,
        "eval": _cmd_eval,
        "upscale": _cmd_upscale,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


def _error(message: str) -> None:
    print(f"srzoo: error: {message}", file=sys.stderr)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, (SrzooError, ValueError, TypeError, OSError)):
        return text
    return f"{type(error).__name__}: {text}"


def _cmd_list(args: argparse.Namespace) -> int:
    names = list_models(args.pattern, pretrained=args.pretrained)
    if not names:
        _error(f"no model matches {args.pattern!r}" if args.pattern else "no models registered")
        return 1
    width = max(len(n) for n in names)
    for name in names:
        spec = get_spec(name)
        scales = ",".join(f"x{s}" for s in spec.scales)
        weights = "pretrained" if spec.pretrained else "-"
        print(f"{name:<{width}}  {scales:<12}  {spec.task:<10}  {weights:<10}  {spec.description}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        spec = get_spec(args.name)
    except SrzooError as error:
        _error(_one_line(error))
        return 2
    rows: list[tuple[str, str]] = [
        ("name", spec.name),
        ("family", spec.family),
        ("description", spec.description),
        ("scales", ", ".join(f"x{s}" for s in spec.scales) + f" (default x{spec.scale})"),
        ("task", spec.task),
        ("colour", spec.colour),
        ("paper", str(spec.paper)),
        ("code licence", spec.code_license),
        ("parameters", f"{spec.num_params():,} at x{spec.scale}"),
        ("size multiple", str(spec.size_multiple)),
    ]
    for key, value in rows:
        if value:
            print(f"{key + ':':<15}{value}")
    if not spec.weights:
        print(f"{'weights:':<15}none registered")
    for w in spec.weights:
        print(f"weights x{w.scale} [{w.tag}]")
        detail = [
            ("source", w.source),
            ("sha256", w.sha256 or f"unpublished {w.sha256_note}".strip()),
            ("size", f"{w.size:,} bytes" if w.size else ""),
            ("licence", w.license),
            ("layout", w.layout),
            ("trained on", w.train_data),
        ]
        for key, value in detail:
            if value:
                print(f"  {key + ':':<13}{value}")
        for m in w.metrics:
            source = f" ({m.source})" if m.source else ""
            print(f"  {'reported:':<13}{m.dataset} x{m.scale} {m.metric} {m.value}{source}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    progress = False if args.quiet else None
    try:
        path = download(args.name, args.scale, progress=progress)
    except (SrzooError, OSError, ValueError) as error:
        _error(_one_line(error))
        return 1
    print(path)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    try:
        weights = args.weights if args.weights is not None else "default"
        model = load(args.name, args.scale, weights=weights, device=args.device)
        result = evaluate(
            model,
            args.hr,
            scale=args.scale,
            lr_dir=args.lr,
            self_ensemble=args.self_ensemble,
            y_channel=not args.rgb,
            progress=False if args.quiet else None,
        )
    except (SrzooError, OSError, ValueError) as error:
        _error(_one_line(error))
        return 1
    channel = "RGB" if args.rgb else "Y"
    width = max(len(i.name) for i in result.images)
    print(f"{'image':<{width}}  PSNR-{channel} (dB)  SSIM-{channel}")
    for i in result.images:
        print(f"{i.name:<{width}}  {i.psnr:>13.4f}  {i.ssim:>7.4f}")
    print(f"{'mean':<{width}}  {result.psnr:>13.4f}  {result.ssim:>7.4f}")
    if args.csv is not None:
        result.save(args.csv, format="csv")
    if args.json is not None:
        result.save(args.json, format="json")
    return 0


@dataclass(frozen=True)
class _Job:
    source: Path
    target: Path


def _walk(inputs: Sequence[str], out_dir: Path, suffix: str) -> Iterator[_Job | str]:
    """Files to upscale with their outputs (names kept, relative paths kept inside folders),
    or one error line for an input that does not exist."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            inner_out = out_dir.resolve() != path.resolve()
            for f in files:
                if inner_out and out_dir.resolve() in f.resolve().parents:
                    continue  # outputs written into a subfolder of an input are not inputs
                rel = f.relative_to(path)
                yield _Job(f, out_dir / rel.parent / (rel.stem + suffix))
        elif path.is_file():
            yield _Job(path, out_dir / (path.stem + suffix))
        else:
            yield f"{path}: no such file or folder"


def _cmd_upscale(args: argparse.Namespace) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = _DTYPES[args.dtype]
    try:
        if args.model is None:
            if args.scale is None or args.weights is not None:
                _error(
                    "srzoo's built-in model needs --scale (2, 3 or 4) and takes no --weights; "
                    "or choose a model with -m NAME (srzoo list shows the names)"
                )
                return 2
            model = load_default(args.scale, device=device, dtype=dtype)
        else:
            weights = args.weights if args.weights is not None else "default"
            model = load(args.model, args.scale, weights=weights, device=device, dtype=dtype)
    except (SrzooError, OSError, ValueError, RuntimeError) as error:
        _error(_one_line(error))
        return 2
    suffix = "." + args.format
    jobs = list(_walk(args.inputs, args.output, suffix))
    failures: list[str] = [j for j in jobs if isinstance(j, str)]
    todo = [j for j in jobs if isinstance(j, _Job)]
    claimed: dict[Path, Path] = {}
    written = skipped = 0
    show = show_progress(False if args.quiet else None)
    with progress_bar(show, total=len(todo), desc="upscale", unit="image", leave=True) as bar:
        for job in todo:
            if job.target.resolve() == job.source.resolve():
                failures.append(f"{job.source}: the output would replace its input")
            elif job.target in claimed:
                failures.append(f"{job.source}: same output name as {claimed[job.target]}")
            elif job.target.exists() and not args.overwrite:
                skipped += 1
            else:
                claimed[job.target] = job.source
                try:
                    image = read_image_array(job.source)
                    result = upscale(
                        model,
                        image,
                        tile=args.tile,
                        overlap=args.overlap,
                        batch_size=args.batch_size,
                        outscale=args.outscale,
                        alpha=args.alpha,
                        self_ensemble=args.self_ensemble,
                        progress=show,
                    )
                    _write_atomically(job.target, result, args.format, write_image)
                    written += 1
                except Exception as error:
                    message = _one_line(error)
                    if str(job.source) not in message:
                        message = f"{job.source}: {message}"
                    failures.append(message)
            bar.update(1)
    summary = f"{written} written, {skipped} skipped (already exist), {len(failures)} failed"
    print(f"{summary}; outputs in {args.output}")
    for line in failures:
        _error(line)
    return 1 if failures else 0


def _write_atomically(target: Path, image: Any, fmt: str, write: Any) -> None:
    """Write to a hidden temporary name next to ``target`` and rename it once complete, so a
    failed or interrupted run never leaves a partial file or replaces a good one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # The writer creates the file, so outputs get the usual permissions rather than mkstemp's.
    with (
        atomic_write(target, suffix=".partial", mkstemp=False) as tmp,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        write(tmp, image, format=fmt)
    for w in caught:
        # The writer names the temporary file; the user knows the target.
        print(f"srzoo: warning: {str(w.message).replace(str(tmp), str(target))}", file=sys.stderr)
