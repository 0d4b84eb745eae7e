"""The model registry: typed descriptions of every architecture and its pretrained weights.

Families register their variants next to the modules they describe (``srzoo/archs/<family>.py``),
and third parties call the same :func:`register_model`.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import json
import math
import operator
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .errors import ArgumentError, ArgumentTypeError, UnknownModelError, UnsupportedScaleError

__all__ = [
    "Converter",
    "Detected",
    "Detector",
    "DetectorSpec",
    "ModelBuilder",
    "ModelSpec",
    "Paper",
    "PrecisionVerdict",
    "ReportedMetric",
    "Shapes",
    "StateDict",
    "WeightBlend",
    "WeightSpec",
    "as_scale",
    "blend_options",
    "detectors",
    "find_weights",
    "get_spec",
    "list_models",
    "measured_precision",
    "model_info",
    "register_detector",
    "register_model",
    "set5_set14",
    "shuffle_factor",
    "shuffle_split",
]

StateDict = dict[str, torch.Tensor]
Task = Literal["psnr", "gan", "real-world"]
Colour = Literal["rgb", "y"]


ModelBuilder = Callable[..., nn.Module]
"""Builds a module: ``builder(scale=4, **overrides) -> nn.Module`` (usually the class itself)."""


Converter = Callable[[StateDict, nn.Module], StateDict]
"""Maps a state dict in any known upstream layout to the keys of the given module."""


@dataclass(frozen=True)
class Paper:
    """The publication an architecture comes from.

    Args:
        title: Paper title.
        venue: Where it was published (e.g. ``"CVPR Workshops"``).
        year: Publication year.
        arxiv: arXiv identifier, if any.
    """

    title: str
    venue: str
    year: int
    arxiv: str | None = None

    def __str__(self) -> str:
        ref = f", arXiv:{self.arxiv}" if self.arxiv else ""
        return f"{self.title} ({self.venue} {self.year}{ref})"


@dataclass(frozen=True)
class ReportedMetric:
    """A number the authors report for a set of weights.

    Args:
        value: The value (dB for PSNR).
        dataset: Benchmark it was measured on (``"Set5"``, ``"Set14"``, ...).
        scale: Upscaling factor.
        metric: What was measured, e.g. ``"psnr_y"`` or ``"ssim_y"``.
        source: Where the number comes from (paper table, README, ...).
    """

    value: float
    dataset: str
    scale: int
    metric: str = "psnr_y"
    source: str = ""


def as_scale(value: object) -> int:
    """An upscaling factor as a plain ``int``: Python and NumPy integers are accepted.

    Args:
        value: What the caller passed as ``scale``.

    Returns:
        The factor as an ``int`` (not yet checked against any model's scales).

    Raises:
        ArgumentTypeError: A float, a bool, a string or anything else that is not an integer.

    Example:
        >>> as_scale(np.int64(4))
        4
    """
    if not isinstance(value, bool):
        try:
            return operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            pass
    hint = (
        " Networks upscale by whole factors; for another final size, use upscale(..., "
        "outscale=...)."
        if isinstance(value, float)
        else ""
    )
    raise ArgumentTypeError(
        f"scale must be an integer such as 4, got {value!r} ({type(value).__name__}).{hint}"
    )


def set5_set14(
    scale: int, set5: float, set14: float, *, source: str
) -> tuple[ReportedMetric, ReportedMetric]:
    """The Set5 and Set14 Y-PSNR of one row of a paper's benchmark table.

    Args:
        scale: Upscaling factor.
        set5: Value on Set5.
        set14: Value on Set14.
        source: Where the numbers come from (paper table, README, ...).

    Returns:
        ``(Set5 metric, Set14 metric)``.

    Example:
        >>> set5_set14(4, 32.46, 28.80, source="Lim et al. 2017, Table 3")[1].dataset
        'Set14'
    """
    return (
        ReportedMetric(set5, "Set5", scale, "psnr_y", source=source),
        ReportedMetric(set14, "Set14", scale, "psnr_y", source=source),
    )


@dataclass(frozen=True)
class WeightBlend:
    """A load option that interpolates a checkpoint with another registered one.

    ``srzoo.load(name, **{option: t})`` with ``t`` in [0, 1] loads, for every tensor,
    ``t * these_weights + (1 - t) * other_weights`` (deep network interpolation); ``t = 1`` is
    these weights alone, and the other checkpoint is then not fetched.

    Args:
        option: The keyword argument of :func:`srzoo.load`, e.g. ``"denoise_strength"``.
        other: Tag of the other checkpoint, registered for the same model and scale.
        description: What the option does, for listings.
    """

    option: str
    other: str
    description: str = ""


Verdict = Literal["ok", "degraded", "broken"]

#: Below this PSNR (dB) against float32, or with any NaN or infinity, a precision is "broken".
BROKEN_BELOW_DB: float = 30.0
#: Below this PSNR (dB) against float32, a precision is "degraded" (visible on close inspection).
DEGRADED_BELOW_DB: float = 40.0


@dataclass(frozen=True)
class PrecisionVerdict:
    """How one model fares in a reduced precision, measured against float32.

    The outputs of the registered configuration in ``dtype`` and in float32 on the same images
    are compared: ``psnr_db`` is their PSNR, with the float32 output's value range as the peak.
    ``benchmarks/measure_precision.py`` measures every registered model and writes
    ``srzoo/_data/precision.json``, which the registry reads when a model registers.

    Args:
        dtype: ``"float16"`` or ``"bfloat16"``.
        device: Device type it was measured on: ``"cpu"`` or ``"cuda"``.
        psnr_db: PSNR of the reduced-precision output against float32; ``None`` when the
            output held NaN or infinite values.
        finite: Whether every output value was finite.
        verdict: ``"broken"`` (not finite, or below :data:`BROKEN_BELOW_DB`), ``"degraded"``
            (below :data:`DEGRADED_BELOW_DB`) or ``"ok"``.
        measured_on: The processor or card, and the torch version.
        note: Which weights and images were used.

    Example:
        >>> srzoo.model_info("edsr").precision_verdict("bfloat16", "cpu").verdict
        'ok'
    """

    dtype: str
    device: str
    psnr_db: float | None
    finite: bool
    verdict: Verdict
    measured_on: str = ""
    note: str = ""

    @staticmethod
    def classify(psnr_db: float | None, finite: bool) -> Verdict:
        """The verdict for a measured PSNR (dB) and finiteness, by the documented thresholds.

        Example:
            >>> PrecisionVerdict.classify(35.0, True)
            'degraded'
        """
        if not finite or psnr_db is None or psnr_db < BROKEN_BELOW_DB:
            return "broken"
        return "degraded" if psnr_db < DEGRADED_BELOW_DB else "ok"


@dataclass(frozen=True)
class WeightSpec:
    """One pretrained checkpoint for one scale of a model.

    Args:
        scale: Upscaling factor the weights were trained for.
        source: ``hf://owner/repo/path@revision``, an ``https://`` URL, ``package://<file>``
            for a file shipped inside srzoo, or a local path.
        tag: Name of this checkpoint among the model's weights for that scale.
        sha256: Hex digest of the file, or ``None`` when none is published (say why in
            ``sha256_note``).
        size: Size of the file in bytes, if known.
        input_range: Range the original network expected (srzoo's module always takes [0, 1]).
        train_data: What the weights were trained on.
        license: Licence of the weights themselves.
        metrics: Numbers the authors report for these weights.
        sha256_note: Why ``sha256`` is missing, or how it was obtained.
        blend: A load option that interpolates these weights with another registered
            checkpoint (see :class:`WeightBlend`).
    """

    scale: int
    source: str
    tag: str = "default"
    sha256: str | None = None
    size: int | None = None
    input_range: str = "0-1"
    train_data: str = ""
    license: str = "unknown"
    metrics: tuple[ReportedMetric, ...] = ()
    sha256_note: str = ""
    blend: WeightBlend | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything srzoo knows about one public model name.

    Args:
        name: Public name, e.g. ``"rcan"``.
        family: Architecture family (one file in ``srzoo/archs``).
        builder: ``builder(scale=..., **overrides) -> nn.Module``.
        scales: Supported upscaling factors.
        paper: The publication.
        code_license: Licence of the upstream code whose layout srzoo follows.
        description: One line for listings.
        task: ``"psnr"`` (fidelity), ``"gan"`` (perceptual) or ``"real-world"``.
        colour: ``"rgb"``, or ``"y"`` for single-channel luma models.
        default_scale: Scale used when ``scale=None``.
        weights: Pretrained checkpoints, keyed by scale and tag.
        converter: Maps known upstream layouts to the module's own keys.
        defaults: The constructor arguments that define this variant.
        size_multiple: Input sizes the network needs a multiple of (it pads inside anyway).
        precision: Measured :class:`PrecisionVerdict` per reduced dtype and device type;
            empty when never measured (then no precision is refused). Filled at registration
            from ``srzoo/_data/precision.json`` when the spec gives none.
    """

    name: str
    family: str
    builder: ModelBuilder
    scales: tuple[int, ...]
    paper: Paper
    code_license: str
    description: str = ""
    task: Task = "psnr"
    colour: Colour = "rgb"
    default_scale: int | None = None
    weights: tuple[WeightSpec, ...] = ()
    converter: Converter | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    size_multiple: int = 1
    precision: tuple[PrecisionVerdict, ...] = ()

    def __post_init__(self) -> None:
        if not self.scales:
            raise ArgumentError(f"model {self.name!r} declares no scales")
        if self.default_scale is not None and self.default_scale not in self.scales:
            raise ArgumentError(f"model {self.name!r}: default_scale not in scales")
        for w in self.weights:
            if w.scale not in self.scales:
                raise ArgumentError(
                    f"model {self.name!r}: weights for unsupported scale x{w.scale}"
                )
            if w.blend is not None and not any(
                o.scale == w.scale and o.tag == w.blend.other and o is not w for o in self.weights
            ):
                raise ArgumentError(
                    f"model {self.name!r}: the {w.blend.option!r} option of its x{w.scale} "
                    f"weights names tag {w.blend.other!r}, which is not registered at x{w.scale}"
                )

    @property
    def scale(self) -> int:
        """The default scale: ``default_scale`` if set, else 4 when supported, else the largest."""
        if self.default_scale is not None:
            return self.default_scale
        return 4 if 4 in self.scales else max(self.scales)

    @property
    def pretrained(self) -> bool:
        """Whether any pretrained weights are registered."""
        return bool(self.weights)

    def check_scale(self, scale: int) -> None:
        """Raise unless ``scale`` is an integer this model supports.

        Args:
            scale: Upscaling factor to check.

        Raises:
            ArgumentTypeError: ``scale`` is not an integer (see :func:`as_scale`).
            UnsupportedScaleError: The model does not support it.

        Example:
            >>> srzoo.model_info("edsr").check_scale(4)
        """
        self.resolve_scale(scale)

    def resolve_scale(self, scale: object | None) -> int:
        """The scale to build at: ``None`` means the default; integers are checked.

        Args:
            scale: What the caller passed (``None``, a Python or NumPy integer).

        Returns:
            The scale as an ``int``.

        Raises:
            ArgumentTypeError: ``scale`` is not an integer.
            UnsupportedScaleError: The model does not support it.

        Example:
            >>> srzoo.model_info("edsr").resolve_scale(None)
            4
        """
        if scale is None:
            return self.scale
        s = as_scale(scale)
        if s not in self.scales:
            raise UnsupportedScaleError(self.name, s, self.scales)
        return s

    def weights_for(self, scale: int, tag: str = "default") -> WeightSpec | None:
        """The registered weights for ``scale`` with ``tag``, or ``None``.

        Args:
            scale: Upscaling factor.
            tag: Weight tag; ``"default"`` means the first registered for that scale.

        Returns:
            The matching :class:`WeightSpec`, or ``None``.

        Example:
            >>> srzoo.model_info("edsr").weights_for(4)
        """
        at_scale = [w for w in self.weights if w.scale == scale]
        for w in at_scale:
            if w.tag == tag:
                return w
        if tag == "default" and at_scale:
            return at_scale[0]
        return None

    def precision_verdict(
        self, dtype: torch.dtype | str, device: torch.device | str = "cpu"
    ) -> PrecisionVerdict | None:
        """The measured verdict for ``dtype`` on ``device``'s type, or ``None`` if unmeasured.

        Args:
            dtype: ``torch.bfloat16`` / ``torch.float16`` or their names (``"bfloat16"``).
            device: A device or device type (``"cuda:1"`` counts as ``"cuda"``).

        Returns:
            The :class:`PrecisionVerdict`, or ``None``.

        Example:
            >>> srzoo.model_info("edsr").precision_verdict(torch.bfloat16)
        """
        name = str(dtype).removeprefix("torch.")
        kind = torch.device(device).type
        return next((v for v in self.precision if v.dtype == name and v.device == kind), None)

    def build(self, scale: int | None = None, **overrides: Any) -> nn.Module:
        """Build the module with random initialisation (train mode).

        Args:
            scale: Upscaling factor (``None``: the default scale).
            **overrides: Constructor arguments that replace this variant's defaults.

        Returns:
            The freshly initialised module.

        Example:
            >>> net = srzoo.model_info("edsr-baseline").build(2)
        """
        s = self.resolve_scale(scale)
        return self.builder(scale=s, **{**self.defaults, **overrides})

    def num_params(self, scale: int | None = None) -> int:
        """Number of values in the state dict at ``scale``, counted on the meta device.

        Args:
            scale: Upscaling factor (``None``: the default scale).

        Returns:
            The count of every parameter and persistent buffer (mean shifts included).

        Example:
            >>> srzoo.model_info("edsr").num_params(4)
            43089947
        """
        s = self.resolve_scale(scale)
        with _PARAMS_LOCK:
            key = (self.name, s)
            if key not in _PARAMS_CACHE:
                with torch.device("meta"):
                    module = self.build(s)
                _PARAMS_CACHE[key] = sum(t.numel() for t in module.state_dict().values())
            return _PARAMS_CACHE[key]

    def _facts(self) -> tuple[list[tuple[str, str, str | None]], list[list[str]]]:
        """``(label, text, link)`` rows about the model, and one row per registered checkpoint."""
        paper = f"{self.paper.title} ({self.paper.venue} {self.paper.year})"
        link = f"https://arxiv.org/abs/{self.paper.arxiv}" if self.paper.arxiv else None
        scales = ", ".join(f"x{s}" for s in self.scales)
        facts: list[tuple[str, str, str | None]] = [
            ("family", self.family, None),
            ("paper", paper, link),
            ("scales", f"{scales} (default x{self.scale})", None),
            ("parameters", f"{self.num_params():,} at x{self.scale}", None),
            ("task", self.task, None),
            ("colour", self.colour, None),
            ("code licence", self.code_license, None),
        ]
        verdicts = getattr(self, "precision", ())
        if verdicts:
            text = "; ".join(f"{v.dtype} {v.device}: {v.verdict}" for v in verdicts)
            facts.append(("precision", text, None))
        weights = [
            [
                f"x{w.scale}",
                w.tag,
                w.license,
                w.train_data,
                "; ".join(f"{m.dataset} x{m.scale} {m.metric} {m.value}" for m in w.metrics),
            ]
            for w in self.weights
        ]
        return facts, weights

    def _repr_markdown_(self) -> str:
        """The model's facts as Markdown tables, for notebooks (Jupyter calls this)."""
        facts, weights = self._facts()
        lines = [f"**`{self.name}`**: {_md(self.description)}", "", "| | |", "|---|---|"]
        for label, text, link in facts:
            lines.append(f"| {label} | {f'[{_md(text)}]({link})' if link else _md(text)} |")
        if weights:
            lines += [
                "",
                "| weights | tag | licence | trained on | reported |",
                "|---|---|---|---|---|",
            ]
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in weights]
        else:
            lines += ["", "No pretrained weights registered (`weights=None` builds it untrained)."]
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        """The model's facts as HTML tables, for notebooks (Jupyter calls this)."""
        facts, weights = self._facts()
        parts = [f"<p><b><code>{escape(self.name)}</code></b>: {escape(self.description)}</p>"]
        rows = []
        for label, text, link in facts:
            cell = f'<a href="{escape(link)}">{escape(text)}</a>' if link else escape(text)
            rows.append(f"<tr><th style='text-align:left'>{escape(label)}</th><td>{cell}</td></tr>")
        parts.append("<table>" + "".join(rows) + "</table>")
        if weights:
            head = "".join(
                f"<th>{h}</th>" for h in ("weights", "tag", "licence", "trained on", "reported")
            )
            body = "".join(
                "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in weights
            )
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
        return "".join(parts)


def _md(text: str) -> str:
    """Text that stays inside one Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


_REGISTRY: dict[str, ModelSpec] = {}
_PARAMS_CACHE: dict[tuple[str, int], int] = {}
_PARAMS_LOCK = threading.Lock()


def register_model(spec: ModelSpec, *, overwrite: bool = False) -> ModelSpec:
    """Add a model to the registry.

    Args:
        spec: The model's description.
        overwrite: Replace an existing entry of the same name instead of raising.

    Returns:
        The registered spec, so the call can be used as an expression: ``spec`` itself, or,
        when ``spec`` gives no ``precision`` and srzoo's measurements hold some for its name, a
        copy with them.

    Raises:
        ValueError: The name is taken and ``overwrite`` is false.

    Example:
        >>> srzoo.register_model(ModelSpec(name="my-net", family="mine", builder=MyNet,
        ...                                scales=(2,), paper=paper, code_license="MIT"))
    """
    if spec.name in _REGISTRY and not overwrite:
        raise ArgumentError(f"a model named {spec.name!r} is already registered")
    if not spec.precision and (measured := measured_precision().get(spec.name)):
        spec = dataclasses.replace(spec, precision=measured)
    _REGISTRY[spec.name] = spec
    return spec


PRECISION_FILE = Path(__file__).parent / "_data" / "precision.json"
"""Measured precision verdicts per model, written by ``benchmarks/measure_precision.py``."""


@functools.cache
def measured_precision() -> dict[str, tuple[PrecisionVerdict, ...]]:
    """The measured precision verdicts shipped with srzoo, by model name (read once).

    Returns:
        ``{model name: verdicts}``; empty when the data file is absent.

    Example:
        >>> measured_precision()["edsr"][0].dtype
        'bfloat16'
    """
    try:
        data = json.loads(PRECISION_FILE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {
        name: tuple(PrecisionVerdict(**entry) for entry in entries)
        for name, entries in data["models"].items()
    }


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name``.

    Args:
        name: Public model name (case-insensitive; ``_`` and ``-`` are interchangeable).

    Returns:
        The spec.

    Raises:
        UnknownModelError: No such name; the error lists the closest names.

    Example:
        >>> srzoo.registry.get_spec("rcan").family
        'rcan'
    """
    _ensure_builtin()
    if name in _REGISTRY:
        return _REGISTRY[name]
    normal = name.strip().lower().replace("_", "-")
    if normal in _REGISTRY:
        return _REGISTRY[normal]
    close = difflib.get_close_matches(normal, list(_REGISTRY), n=3, cutoff=0.5)
    if not close:
        close = [n for n in _REGISTRY if normal in n or n in normal][:3]
    raise UnknownModelError(name, close)


def find_weights(sha256: str) -> list[tuple[ModelSpec, WeightSpec]]:
    """Every registered checkpoint whose file has this sha256.

    Args:
        sha256: Hex digest of a file.

    Returns:
        ``(model, weights)`` pairs, in registry order (empty for an unregistered file).

    Example:
        >>> [(m.name, w.scale) for m, w in find_weights(digest)]
        [('fsrcnn', 3)]
    """
    _ensure_builtin()
    digest = sha256.lower()
    return [(spec, w) for spec in _REGISTRY.values() for w in spec.weights if w.sha256 == digest]


def blend_options() -> dict[str, list[str]]:
    """The load options that blend registered weights, with the models that declare each.

    Returns:
        ``{option: [model names]}``, e.g. ``{"denoise_strength": ["realesr-general-x4v3"]}``.

    Example:
        >>> blend_options()["denoise_strength"]
        ['realesr-general-x4v3']
    """
    _ensure_builtin()
    options: dict[str, list[str]] = {}
    for spec in _REGISTRY.values():
        for option in dict.fromkeys(w.blend.option for w in spec.weights if w.blend is not None):
            options.setdefault(option, []).append(spec.name)
    return options


def model_info(name: str) -> ModelSpec:
    """Describe a registered model: family, scales, task, colour, paper, licence, weights.

    Args:
        name: Public model name.

    Returns:
        Its :class:`ModelSpec`; ``num_params(scale)`` gives the parameter count.

    Example:
        >>> info = srzoo.model_info("rcan")
        >>> info.scales, info.paper.arxiv
        ((2, 3, 4, 8), '1807.02758')
    """
    return get_spec(name)


def list_models(
    pattern: str | None = None, *, pretrained: bool = False, family: str | None = None
) -> list[str]:
    """Names of the registered models, sorted.

    Args:
        pattern: An fnmatch pattern such as ``"edsr*"``; ``None`` lists everything.
        pretrained: Only models with registered pretrained weights.
        family: Only models of this family.

    Returns:
        Sorted model names.

    Example:
        >>> srzoo.list_models("edsr*")
        ['edsr', 'edsr-baseline']
    """
    _ensure_builtin()
    names = sorted(_REGISTRY)
    if pattern is not None:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern.lower())]
    if pretrained:
        names = [n for n in names if _REGISTRY[n].pretrained]
    if family is not None:
        names = [n for n in names if _REGISTRY[n].family == family]
    return names


# --------------------------------------------------------------------------------------------
# Detection: a checkpoint's keys and shapes -> the registered model that reads them
# --------------------------------------------------------------------------------------------

Shape = tuple[int, ...]


class Shapes(Mapping[str, Shape]):
    """A read-only view of a state dict's keys and tensor shapes: all that detectors see.

    Detectors never see tensor values, so detection costs nothing like reading the weights.

    Args:
        shapes: Shape of every tensor, by key (tensors' ``.shape`` or plain tuples).

    Example:
        >>> view = Shapes({"conv.weight": (8, 3, 3, 3)})
        >>> view.dim("conv.weight", 1), view.has("conv.weight", "conv.bias")
        (3, False)
    """

    __slots__ = ("_shapes",)

    def __init__(self, shapes: Mapping[str, Sequence[int]]) -> None:
        self._shapes: dict[str, Shape] = {k: tuple(int(d) for d in v) for k, v in shapes.items()}

    def __getitem__(self, key: str) -> Shape:
        return self._shapes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)

    def __repr__(self) -> str:
        return f"Shapes({len(self._shapes)} tensors)"

    def has(self, *keys: str) -> bool:
        """Whether every one of ``keys`` is present."""
        return all(k in self._shapes for k in keys)

    def has_prefix(self, prefix: str) -> bool:
        """Whether any key starts with ``prefix``."""
        return any(k.startswith(prefix) for k in self._shapes)

    def dim(self, key: str, axis: int = 0) -> int:
        """Size of ``key``'s tensor along ``axis``, or 0 when the key or the axis is absent."""
        shape = self._shapes.get(key)
        if shape is None or not -len(shape) <= axis < len(shape):
            return 0
        return shape[axis]

    def indices(self, pattern: str) -> list[int]:
        """The distinct values of the one ``(\\d+)`` group of ``pattern`` over all keys, sorted.

        Args:
            pattern: A regular expression matched against whole keys, e.g.
                ``r"body\\.(\\d+)\\.conv1\\.weight"``.

        Returns:
            The indices found (empty when no key matches).
        """
        regex = re.compile(pattern)
        return sorted({int(m.group(1)) for k in self._shapes if (m := regex.fullmatch(k))})

    def stacked_shuffle_scale(self, prefix: str, suffix: str, channels: int) -> int:
        """The scale of a multi-stage sub-pixel upsampler (EDSR-PyTorch's ``Upsampler``).

        The stages are the convolutions ``<prefix><i><suffix>`` in index order; each widens
        ``channels`` by ``f * f`` before a shuffle by ``f``, and the stages are one x3 or a
        x2 per factor of two.

        Args:
            prefix: Key before the stage index, e.g. ``"tail.0."``.
            suffix: Key after it, e.g. ``".weight"``.
            channels: Feature channels around the upsampler.

        Returns:
            The product of the factors, or 0 when the stages are absent or not such an upsampler.
        """
        found = self.indices(re.escape(prefix) + r"(\d+)" + re.escape(suffix))
        factors = [shuffle_factor(self.dim(f"{prefix}{i}{suffix}"), channels) for i in found]
        if factors == [3] or (factors and all(f == 2 for f in factors)):
            return math.prod(factors)
        return 0

    def count(self, pattern: str) -> int:
        """``max index + 1`` of :meth:`indices` when the indices run 0..n-1 without a gap, else 0.

        A gap (a missing block) means the file is incomplete: a detector then reports no match
        rather than a network that would fail to load.
        """
        found = self.indices(pattern)
        return len(found) if found == list(range(len(found))) else 0


def shuffle_factor(out_channels: int, channels: int) -> int:
    """The pixel-shuffle factor ``f`` with ``out_channels == channels * f * f``, or 0 if none.

    Args:
        out_channels: Output channels of the convolution before the shuffle.
        channels: Channels after the shuffle.

    Returns:
        ``f`` (at least 1), or 0 when ``out_channels`` is not ``channels`` times a square.

    Example:
        >>> shuffle_factor(48, 3)
        4
    """
    if channels < 1 or out_channels % channels:
        return 0
    f = math.isqrt(out_channels // channels)
    return f if f * f * channels == out_channels and f >= 1 else 0


def shuffle_split(total: int, in_channels: int) -> tuple[int, int]:
    """``(scale, out_channels)`` of a pixel-shuffle head with ``total`` output channels.

    The image channels are taken equal to ``in_channels`` when that fits, else 3, else 1 (a
    head's width alone cannot tell ``3 * 4**2`` from ``12 * 2**2``; networks nearly always
    return the channels they take).

    Args:
        total: Output channels of the convolution before the shuffle.
        in_channels: Image channels the network takes.

    Returns:
        ``(scale, out_channels)``, or ``(0, 0)`` when no choice fits.

    Example:
        >>> shuffle_split(48, 3)
        (4, 3)
    """
    for channels in dict.fromkeys((in_channels, 3, 1)):
        if f := shuffle_factor(total, channels):
            return f, channels
    return 0, 0


@dataclass(frozen=True)
class Detected:
    """What a checkpoint's keys and shapes say it is.

    Args:
        name: The registered model whose builder (and converter) reads it.
        scale: Upscaling factor; where the weights do not fix it (``scales`` lists more than
            one), the detector's documented default.
        model_args: Constructor arguments that build the network the tensors fit (complete:
            they do not depend on the variant's defaults).
        layout: Which upstream key layout the tensors are in (e.g. ``"old-esrgan"``).
        family: The family whose detector matched (filled in by :func:`srzoo.detect`).
        scales: The scales the same tensors serve, when the weights do not fix one (a
            multi-scale file, or a network whose scale lives only in its training data);
            empty when ``scale`` is read from the weights.
        weights: The registered checkpoint the file is (by its sha256), when it is one.

    Example:
        >>> srzoo.detect(state)
        Detected(name='esrgan', scale=4, model_args={...}, layout='old-esrgan', ...)
    """

    name: str
    scale: int
    model_args: Mapping[str, Any]
    layout: str
    family: str = ""
    scales: tuple[int, ...] = ()
    weights: WeightSpec | None = None


Detector = Callable[[Shapes], Detected | None]
"""Reads a :class:`Shapes` view; returns what it is, or ``None`` when it is not this family."""


@dataclass(frozen=True)
class DetectorSpec:
    """A family's detector and the facts :func:`srzoo.detect` needs about it.

    Args:
        family: The family (one file in ``srzoo/archs``).
        detect: The detector.
        layouts: For each layout the detector reads, keys every file in it holds (whatever
            the configuration): they name the closest families when nothing matches, and they
            rank matches (the specificity rule of :func:`srzoo.detect`).
        priority: Breaks a tie between matches of equal specificity (higher wins).
    """

    family: str
    detect: Detector
    layouts: Mapping[str, tuple[str, ...]]
    priority: int = 0


_DETECTORS: dict[str, DetectorSpec] = {}


def register_detector(
    family: str,
    detect: Detector,
    *,
    layouts: Mapping[str, Sequence[str]],
    priority: int = 0,
    overwrite: bool = False,
) -> DetectorSpec:
    """Register the function that recognises a family's checkpoints from keys and shapes.

    Args:
        family: The family the detector belongs to (one detector per family).
        detect: ``detect(shapes) -> Detected | None``; it must read only keys and shapes,
            build nothing, and return ``None`` for anything that is not its family.
        layouts: Layout name -> keys every checkpoint in that layout holds; every
            ``Detected.layout`` the detector returns must be one of these names.
        priority: Breaks ties between equally specific matches (higher wins).
        overwrite: Replace the family's detector instead of raising.

    Returns:
        The registration.

    Raises:
        ArgumentError: The family has a detector already, or ``layouts`` is empty.

    Example:
        >>> register_detector("mine", detect_mine, layouts={"official": ("head.weight",)})
    """
    if family in _DETECTORS and not overwrite:
        raise ArgumentError(f"a detector for family {family!r} is already registered")
    if not layouts or not all(layouts.values()):
        raise ArgumentError(f"the detector of {family!r} needs at least one key per layout")
    spec = DetectorSpec(
        family=family,
        detect=detect,
        layouts={name: tuple(keys) for name, keys in layouts.items()},
        priority=priority,
    )
    _DETECTORS[family] = spec
    return spec


def detectors() -> tuple[DetectorSpec, ...]:
    """Every registered detector, in registration order.

    Returns:
        The :class:`DetectorSpec` of each family that has one.

    Example:
        >>> "esrgan" in {d.family for d in detectors()}
        True
    """
    _ensure_builtin()
    return tuple(_DETECTORS.values())


_BUILTIN_LOADED = False


def _ensure_builtin() -> None:
    # The built-in families register themselves when srzoo.archs is imported; importing it here
    # (once) keeps `import srzoo.registry` usable on its own.
    global _BUILTIN_LOADED
    if not _BUILTIN_LOADED:
        _BUILTIN_LOADED = True
        from . import archs  # noqa: F401
