"""The ``srzoo`` command: list, describe, download and run super-resolution models.

Example:
    $ srzoo list "edsr*" --pretrained
    $ srzoo info rcan
    $ srzoo upscale photo.png -o out/ --scale 4  # srzoo's own model, shipped in the package
    $ srzoo upscale photos/ -o out/ -m edsr-baseline --scale 4 --tile 512 --dtype bf16
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import os
import signal
import sys
import tempfile
import threading
import urllib.parse
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from ._util import atomic_write, progress_bar, show_progress
from ._version import __version__
from .api import load, load_default, load_file
from .bench import bench
from .detect import detect_file
from .errors import SrzooError
from .evaluation import evaluate
from .image import (
    IMAGE_SUFFIXES,
    pil_image_module,
    read_image_array,
    read_image_tags,
    write_image,
)
from .inference import upscale
from .registry import get_spec, list_models
from .weights import download

__all__ = ["main"]

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_FORMATS = ("png", "jpg", "webp")

# What srzoo records in each output (Software and Description tags): that srzoo wrote it, and
# from which input name. The name is URL-quoted, as EXIF holds ASCII only; the folder is left
# out, so that outputs do not carry the user's paths.
_SOFTWARE = f"srzoo {__version__}"
_FROM = "upscaled by srzoo from "

_UPSCALE_HELP = """\
Upscale image files, and the images in folders (searched recursively), into one output folder.

Outputs: an input keeps its name with the --format suffix (x.jpg -> OUT/x.png); an image found
in a folder keeps its path inside that folder (photos/sub/a.png -> OUT/sub/a.png). An input
named twice is upscaled once. Each output is written under a hidden temporary name and renamed
once complete: never a partial file. srzoo records itself and the input's name in every output
(the PNG Software and Description texts, the same EXIF tags in JPEG and WebP).

Reruns: an output that srzoo wrote from an input of the same name is skipped, unless
--overwrite. Any other file in an output's place fails (exit 1) and is kept, unless
--overwrite replaces it.

Collisions are found from the whole list before anything is written, and fail on every run
(exit 1) with nothing written for the inputs concerned: inputs whose outputs would be one
file (x.png and x.jpg: "OUT/x.png would also be the output of ..."), and an input whose
output would replace an input.

Outputs are not inputs: a file that srzoo wrote from a listed input, and that lies where that
input's outputs go, is not an input (whatever its --format then). So a rerun into an input
folder (-o on an input folder, with another --format) skips those outputs instead of
upscaling them again. An image srzoo did not write is always an input, whatever its name.
When the output folder lies inside an input folder, nothing under it is read as input.

Exit status: 0 done; 1 some inputs failed (each one named); 2 bad usage or an output folder
that cannot be created or written (checked before a model is loaded); 130, 143 or 129 when
stopped by SIGINT, SIGTERM or SIGHUP (finished outputs are kept, no temporary file is left).
Images over Pillow's pixel limit (a guard against decompression bombs) fail; --max-pixels
raises it for trusted files.
"""


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

    p = sub.add_parser(
        "info",
        help="describe a model (scales, paper, licences, weights), or what a checkpoint file is",
    )
    p.add_argument("name", help="registered model name, or the path of a checkpoint file")
    p.add_argument("--scale", type=int, default=None, help="for a file: the scale wanted")

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

    p = sub.add_parser(
        "upscale",
        help="upscale image files and folders",
        description=_UPSCALE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    p.add_argument("-o", "--output", required=True, type=Path, help="output folder")
    p.add_argument(
        "-m",
        "--model",
        default=None,
        help=(
            "registered model name, or a checkpoint file (its architecture is detected) "
            "(default: srzoo's own model, shipped in the package)"
        ),
    )
    p.add_argument("--scale", type=int, default=None, help="upscaling factor (required without -m)")
    p.add_argument("--weights", default=None, help="weights tag or local checkpoint (with -m)")
    p.add_argument("--tile", type=_tile, default=None, help="tile side in pixels, or 'auto'")
    p.add_argument(
        "--overlap",
        type=_non_negative,
        default=None,
        help="context around tiles (default: the network's receptive field, capped)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=1, help="tiles per forward pass")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if any)")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="fp32")
    p.add_argument("--format", choices=_FORMATS, default="png", help="output format")
    p.add_argument("--outscale", type=_positive_float, default=None, help="final scale (resized)")
    p.add_argument("--alpha", choices=("bicubic", "model"), default="bicubic")
    p.add_argument("--self-ensemble", action="store_true", help="x8 flips and rotations")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--max-pixels",
        type=_non_negative,
        default=None,
        help="largest input in pixels (default: PIL.Image.MAX_IMAGE_PIXELS; 0: no limit)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "bench",
        help="time a model's forward pass: median ms per image, MP/s, peak memory",
        description=(
            "Time a model (random weights) on a random square input: warm-up calls, then "
            "the median of several timed calls; with --compile, the compile time as well."
        ),
    )
    p.add_argument("name", help="registered model name")
    p.add_argument("--scale", type=int, default=None, help="upscaling factor (default: model's)")
    p.add_argument("--size", type=_positive_int, default=256, help="input side in pixels")
    p.add_argument("--batch", type=_positive_int, default=1, help="images per call")
    p.add_argument("--dtype", choices=sorted(_DTYPES), default="fp32")
    p.add_argument("--compile", action="store_true", help="torch.compile with srzoo's settings")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cpu)")
    p.add_argument("--runs", type=_positive_int, default=5, help="timed calls")
    p.add_argument("--warmup", type=_non_negative, default=1, help="untimed calls before")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        result = bench(
            args.name,
            scale=args.scale,
            size=args.size,
            batch=args.batch,
            dtype=_DTYPES[args.dtype],
            compile=args.compile,
            device=args.device,
            runs=args.runs,
            warmup=args.warmup,
        )
    except SrzooError as error:
        _error(_one_line(error))
        return 2
    print(json.dumps(dataclasses.asdict(result)) if args.json else result.summary())
    return 0


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_ALLOCATOR_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def _keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks in the process instead of returning them to the system.

    By default every CPU forward pass faults in fresh pages for its activations, which costs up
    to a third of the time (``benchmarks/bench_allocator.py``). Only the command does this, for
    its own process: importing srzoo never changes the allocator. Allocator settings already in
    the environment are left as they are.

    Returns:
        Whether both thresholds were set.
    """
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _ALLOCATOR_ENV):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    # Both or neither: either one alone switches off glibc's adaptive mmap threshold and faults
    # more than the default does. Some glibc versions refuse an mmap threshold above 32 MiB.
    if not any(mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in (1 << 30, 32 << 20)):
        return False
    return bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30) == 1)


def run() -> int:
    """The ``srzoo`` and ``python -m srzoo`` entry point: :func:`main` in a process whose
    allocator keeps freed memory (see ``docs/performance.md``, "The CPU allocator")."""
    _keep_freed_memory()
    return main()


def main(argv: list[str] | None = None) -> int:
    """Run the ``srzoo`` command.

    While it runs, SIGTERM and SIGHUP stop it as SIGINT (Ctrl-C) does, so that no temporary
    file is left behind; the signal handlers in place before the call are restored after it.
    ``srzoo upscale --help`` states the rules of the upscale command.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 when some file or download failed, 2 for bad usage
        (or an unusable output folder), 128 + the signal's number when stopped by a signal
        (130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).

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
        "bench": _cmd_bench,
    }
    signals = _SignalsStop()
    try:
        with signals:
            return commands[args.command](args)
    except KeyboardInterrupt:
        signum = signals.received or signal.SIGINT
        _error(f"interrupted by {signal.Signals(signum).name}")
        return 128 + signum


class _SignalsStop:
    """Within its block, SIGTERM and SIGHUP stop the program as SIGINT does: by raising
    KeyboardInterrupt in the main thread, so that every ``finally`` (which removes temporary
    files) runs. A second signal while stopping is ignored, so the cleanup is not cut short.
    Signals that were ignored on entry (``nohup``) stay ignored; the previous handlers are
    restored on exit."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalsStop:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set handlers (main() called from a thread)
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            signum = getattr(signal, name, None)
            if signum is None:
                continue  # SIGHUP does not exist on Windows
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._stop)
        return self

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if self.received is not None:
            return
        self.received = signum
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        for signum, previous in self._previous.items():
            # None: a handler set outside Python, which cannot be put back; the default is.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()


def _error(message: str) -> None:
    print(f"srzoo: error: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"srzoo: warning: {message}", file=sys.stderr)


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


def _is_file_argument(value: str) -> bool:
    """A model argument that names a checkpoint file rather than a registered model."""
    if value.startswith(("local-dir:", "hf-hub:")):
        return False
    if Path(value).expanduser().is_file():
        return True
    return os.sep in value or "/" in value or value.endswith(_CHECKPOINT_SUFFIXES)


_CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")


def _info_file(path: str, scale: int | None) -> int:
    try:
        found = detect_file(path, scale=scale)
    except SrzooError as error:
        _error(_one_line(error))
        return 2
    args = ", ".join(f"{k}={v!r}" for k, v in found.model_args.items())
    rows: list[tuple[str, str]] = [
        ("file", str(path)),
        ("family", found.family),
        ("name", found.name),
        ("scale", f"x{found.scale}"),
        ("scales", ", ".join(f"x{s}" for s in found.scales)),
        ("model_args", args or "(the registered defaults)"),
        ("layout", found.layout),
    ]
    ws = found.weights
    if ws is not None:
        tag = "" if ws.tag == "default" else f" [{ws.tag}]"
        rows += [
            ("registered", f"{found.name} x{ws.scale}{tag} (sha256 {ws.sha256})"),
            ("source", ws.source),
            ("input range", ws.input_range),
            ("licence", ws.license),
            ("trained on", ws.train_data),
        ]
    else:
        rows.append(("registered", "no (detected from its keys and shapes)"))
    for key, value in rows:
        if value:
            print(f"{key + ':':<15}{value}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    if _is_file_argument(args.name):
        return _info_file(args.name, args.scale)
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
            # Where the file comes from (a mirror, a conversion of the authors' weights, ...).
            ("note", w.sha256_note if w.sha256 else ""),
            ("size", f"{w.size:,} bytes" if w.size else ""),
            ("licence", w.license),
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


@dataclass
class _Plan:
    """What a run will do, decided from the whole list of inputs before anything is written."""

    run: list[_Job] = field(default_factory=list)
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _key(path: Path) -> Path:
    """The file a path names, for comparing paths (links, ``..``, relative paths)."""
    return Path(os.path.realpath(path))


def _broken_link(path: Path) -> str:
    return f"{path}: a broken symbolic link (its target {os.readlink(path)} does not exist)"


def _walk(inputs: Sequence[str], out_dir: Path, suffix: str, plan: _Plan) -> list[_Job]:
    """Files to upscale with their outputs (names kept, relative paths kept inside folders);
    inputs that do not exist go to ``plan.failures``."""
    out_key = _key(out_dir)
    jobs: list[_Job] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            root = _key(path)
            # An output folder inside an input folder holds outputs, never inputs.
            holds_out = root in out_key.parents
            found = 0
            for f in sorted(path.rglob("*")):
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                parent = _key(f.parent)
                if holds_out and (parent == out_key or out_key in parent.parents):
                    continue
                if f.is_symlink() and not f.exists():
                    plan.failures.append(_broken_link(f))
                elif f.is_file():
                    rel = f.relative_to(path)
                    jobs.append(_Job(f, out_dir / rel.parent / (rel.stem + suffix)))
                else:
                    continue  # a folder named like an image
                found += 1
            if not found:
                suffixes = " ".join(sorted(IMAGE_SUFFIXES))
                plan.notes.append(f"{path}: no image files in this folder ({suffixes})")
        elif path.is_symlink() and not path.exists():
            plan.failures.append(_broken_link(path))
        elif path.exists():
            jobs.append(_Job(path, out_dir / (path.stem + suffix)))
        else:
            plan.failures.append(f"{path}: no such file or folder")
    return jobs


def _description(source: Path) -> str:
    return _FROM + urllib.parse.quote(source.name)


def _srzoo_output_of(job: _Job, producers: dict[tuple[Path, str], set[Path]]) -> bool:
    """Whether srzoo wrote ``job.source`` from another input that ``producers`` lists."""
    tags = read_image_tags(job.source)
    if not tags.get("Software", "").startswith("srzoo"):
        return False
    made_by = producers.get((_key(job.source.parent), tags.get("Description", "")), set())
    return bool(made_by - {_key(job.source)})


def _written_from(path: Path, source: Path) -> bool:
    """Whether srzoo wrote ``path`` as the output of an input named as ``source`` is."""
    tags = read_image_tags(path)
    written_by_srzoo = tags.get("Software", "").startswith("srzoo")
    return written_by_srzoo and tags.get("Description") == _description(source)


def _plan(inputs: Sequence[str], out_dir: Path, suffix: str, *, overwrite: bool) -> _Plan:
    """The rules of ``srzoo upscale --help``: duplicates, earlier outputs, collisions, skips."""
    plan = _Plan()
    unique: dict[tuple[Path, Path], _Job] = {}
    for job in _walk(inputs, out_dir, suffix, plan):
        unique.setdefault((_key(job.source), _key(job.target)), job)
    jobs = list(unique.values())
    # An earlier output is not an input: srzoo wrote it from an input listed now, and it lies
    # where that input's outputs go (in any format).
    producers: dict[tuple[Path, str], set[Path]] = {}
    for job in jobs:
        home = (_key(job.target.parent), _description(job.source))
        producers.setdefault(home, set()).add(_key(job.source))
    homes = {folder for folder, _ in producers}
    kept: list[_Job] = []
    for job in jobs:
        folder = _key(job.source.parent)
        if folder in homes and _srzoo_output_of(job, producers):
            continue
        kept.append(job)
    by_target: dict[Path, list[_Job]] = {}
    for job in kept:
        by_target.setdefault(_key(job.target), []).append(job)
    sources = {_key(job.source): job.source for job in kept}
    for job in kept:
        target = _key(job.target)
        others = [str(j.source) for j in by_target[target] if j is not job]
        blocker = _file_in_the_way(job.target, out_dir)
        if target == _key(job.source):
            plan.failures.append(
                f"{job.source}: the output would replace its input; choose another output "
                "folder (-o) or --format"
            )
        elif target in sources:
            plan.failures.append(
                f"{job.source}: its output {job.target} is the input {sources[target]}, which "
                "srzoo did not write; choose another output folder (-o) or --format"
            )
        elif others:
            plan.failures.append(
                f"{job.source}: {job.target} would also be the output of {', '.join(others)}; "
                "rename one of them, or upscale them into separate folders"
            )
        elif blocker is not None:
            plan.failures.append(
                f"{job.source}: cannot write {job.target}: {blocker} is a file, not a folder"
            )
        elif job.target.exists() or job.target.is_symlink():
            if not job.target.is_file():
                plan.failures.append(
                    f"{job.source}: {job.target} exists and is not a file; move it away"
                )
            elif overwrite:
                plan.run.append(job)
            elif _written_from(job.target, job.source):
                plan.skipped += 1
            else:
                plan.failures.append(
                    f"{job.source}: {job.target} exists and srzoo did not write it from "
                    f"{job.source.name}; move it away, or replace it with --overwrite"
                )
        else:
            plan.run.append(job)
    return plan


def _file_in_the_way(target: Path, out_dir: Path) -> Path | None:
    """A file where a folder between ``out_dir`` and ``target`` must be created, if any."""
    for parent in target.parents:
        if parent == out_dir:
            return None
        if parent.exists() and not parent.is_dir():
            return parent
    return None


def _check_output_folder(out: Path) -> str | None:
    """Create the output folder and write a probe file there; what is wrong, if anything."""
    if out.is_symlink() and not out.exists():
        return f"the output folder {out} is a broken symbolic link; choose a folder with -o"
    if out.exists() and not out.is_dir():
        return f"the output {out} exists and is not a folder; choose a folder with -o"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return (
            f"cannot create the output folder {out} ({error.strerror or error}); choose a "
            "folder you can write to with -o"
        )
    try:
        fd, probe = tempfile.mkstemp(dir=out, prefix=".srzoo-probe-")
    except OSError as error:
        return (
            f"cannot write into the output folder {out} ({error.strerror or error}); choose a "
            "folder you can write to with -o"
        )
    try:
        os.close(fd)
    finally:
        os.unlink(probe)
    return None


def _remove_empty(folders: Sequence[Path]) -> None:
    """Remove folders this run created (deepest first) if they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


@contextmanager
def _pixel_limit(limit: int | None) -> Iterator[None]:
    """Pillow's guard against decompression bombs set to ``limit`` (0: none) for the block."""
    if limit is None:
        yield
        return
    image_mod = pil_image_module()
    previous = image_mod.MAX_IMAGE_PIXELS
    image_mod.MAX_IMAGE_PIXELS = limit or None
    try:
        yield
    finally:
        image_mod.MAX_IMAGE_PIXELS = previous


def _cmd_upscale(args: argparse.Namespace) -> int:
    """``srzoo upscale``: its rules are those of ``_UPSCALE_HELP``, the command's ``--help``."""
    if args.model is None and (args.scale is None or args.weights is not None):
        _error(
            "srzoo's built-in model needs --scale (2, 3 or 4) and takes no --weights; "
            "or choose a model with -m NAME (srzoo list shows the names)"
        )
        return 2
    try:
        pil_image_module()
    except SrzooError as error:
        _error(_one_line(error))
        return 2
    out: Path = args.output
    new_folders = [p for p in (out, *out.parents) if not p.exists() and not p.is_symlink()]
    problem = _check_output_folder(out)
    if problem is not None:
        _remove_empty(new_folders)
        _error(problem)
        return 2
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = _DTYPES[args.dtype]
    try:
        if args.model is None:
            model = load_default(args.scale, device=device, dtype=dtype)
        elif _is_file_argument(args.model):
            if args.weights is not None:
                _remove_empty(new_folders)
                _error(
                    "--weights goes with a model name; a checkpoint file given to -m is the weights"
                )
                return 2
            model = load_file(args.model, args.scale, device=device, dtype=dtype)
        else:
            weights = args.weights if args.weights is not None else "default"
            model = load(args.model, args.scale, weights=weights, device=device, dtype=dtype)
    except (SrzooError, OSError, ValueError, RuntimeError) as error:
        _remove_empty(new_folders)
        _error(_one_line(error))
        return 2
    plan = _plan(args.inputs, out, "." + args.format, overwrite=args.overwrite)
    for note in plan.notes:
        _warn(note)
    failures = list(plan.failures)
    written = 0
    show = show_progress(False if args.quiet else None)
    try:
        with (
            _pixel_limit(args.max_pixels),
            progress_bar(
                show, total=len(plan.run), desc="upscale", unit="image", leave=True
            ) as bar,
        ):
            for job in plan.run:
                try:
                    _upscale_one(job, model, args, show)
                    written += 1
                except Exception as error:
                    message = _one_line(error)
                    if str(job.source) not in message:
                        message = f"{job.source}: {message}"
                    failures.append(message)
                bar.update(1)
    except KeyboardInterrupt:
        print(f"{written} written before the interruption; outputs in {out}")
        raise
    summary = f"{written} written, {plan.skipped} skipped (already exist), {len(failures)} failed"
    print(f"{summary}; outputs in {out}")
    for line in failures:
        _error(line)
    return 1 if failures else 0


def _upscale_one(job: _Job, model: Any, args: argparse.Namespace, show: bool) -> None:
    """Read, upscale and write one image; what the readers and writers warn is printed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
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
            _write_atomically(job.target, result, args.format, _description(job.source))
        finally:
            for w in caught:
                _warn(" ".join(str(w.message).split()))


def _write_atomically(target: Path, image: Any, fmt: str, description: str) -> None:
    """Write to a hidden temporary name next to ``target`` and rename it once complete, so a
    failed or interrupted run never leaves a partial file or replaces a good one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # The writer creates the file, so outputs get the usual permissions rather than mkstemp's.
    with (
        atomic_write(target, suffix=".partial", mkstemp=False) as tmp,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        write_image(tmp, image, format=fmt, software=_SOFTWARE, description=description)
    for w in caught:
        # The writer names the temporary file; the user knows the target.
        message = str(w.message).replace(str(tmp), str(target))
        warnings.warn(message, UserWarning, stacklevel=2)
