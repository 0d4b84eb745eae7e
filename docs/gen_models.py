"""The generated parts of the documentation: the model table and the reproduced numbers.

Everything here is read from the registry (``srzoo.list_models`` / ``srzoo.model_info``) and from
``docs/reproduced.json`` (the numbers srzoo measured itself) while ``mkdocs build`` renders the
pages (``docs/hooks.py`` calls these functions), so no table is ever written by hand, and a newly
registered family appears on the next build.

Usage: python docs/gen_models.py    (print the Models page's generated Markdown)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import srzoo
from srzoo.contract import receptive_field
from srzoo.registry import PRECISION_FILE, ModelSpec, WeightSpec

REPRODUCED = Path(__file__).with_name("reproduced.json")
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Reproduced:
    """One number srzoo measured itself with a registered checkpoint.

    Args:
        model: Registered model name.
        tag: Weight tag.
        scale: Upscaling factor.
        dataset: Benchmark (``"Set14"``).
        metric: ``"psnr_y"`` or ``"ssim_y"``.
        value: What srzoo measured.
        reference: What the checkpoint's own upstream code gives on the same files, if run.
        checked_by: The test that measures it again.
    """

    model: str
    tag: str
    scale: int
    dataset: str
    metric: str
    value: float
    reference: float | None = None
    checked_by: str = ""


def reproduced() -> list[Reproduced]:
    """Every entry of ``docs/reproduced.json``, in file order.

    Returns:
        The measured numbers.

    Example:
        >>> reproduced()[0].model
        'imdn'
    """
    data = json.loads(REPRODUCED.read_text(encoding="utf-8"))
    return [Reproduced(**entry) for entry in data["results"]]


def _paper(info: ModelSpec) -> str:
    paper = info.paper
    title = paper.title.replace("|", "/")
    if paper.arxiv:
        title = f"[{title}](https://arxiv.org/abs/{paper.arxiv})"
    return f"{title}, {paper.venue} {paper.year}"


def _default_weights(info: ModelSpec) -> WeightSpec | None:
    """The weights ``srzoo.load(name)`` uses: the default tag at the default scale, if any."""
    return info.weights_for(info.scale) or (info.weights[0] if info.weights else None)


def _psnr(metrics: Iterable[Any], dataset: str, scale: int) -> float | None:
    for m in metrics:
        if m.dataset == dataset and m.scale == scale and m.metric == "psnr_y":
            return float(m.value)
    return None


def _reported(w: WeightSpec | None) -> str:
    """The authors' Set5 / Set14 Y-PSNR for these weights, e.g. ``32.46 / 28.80 (x4)``."""
    if w is None:
        return "–"
    set5, set14 = (_psnr(w.metrics, d, w.scale) for d in ("Set5", "Set14"))
    if set5 is None and set14 is None:
        return "–"
    values = " / ".join("–" if v is None else f"{v:.2f}" for v in (set5, set14))
    return f"{values} (x{w.scale})"


def _reproduced_cell(name: str, w: WeightSpec | None, measured: list[Reproduced]) -> str:
    if w is None:
        return "–"
    hits = [
        r
        for r in measured
        if (r.model, r.tag, r.scale) == (name, w.tag, w.scale) and r.metric == "psnr_y"
    ]
    return "; ".join(f"{r.dataset} {r.value:.2f}" for r in hits) or "–"


def _licences(info: ModelSpec) -> str:
    weights = sorted({w.license for w in info.weights})
    code = f"code: {info.code_license}"
    return f"{code}; weights: {', '.join(weights)}" if weights else code


def _precision(info: ModelSpec) -> str:
    """The measured precision verdicts (``bfloat16 cpu: ok``), or "not measured"."""
    verdicts = getattr(info, "precision", None)
    if not verdicts:
        return NOT_MEASURED
    if isinstance(verdicts, str):
        return verdicts
    parts = []
    for v in verdicts:
        if hasattr(v, "verdict"):
            db = f", {v.psnr_db:.1f} dB" if getattr(v, "psnr_db", None) is not None else ""
            parts.append(f"{v.dtype} {v.device}: {v.verdict}{db}")
        else:
            parts.append(str(v))
    return "; ".join(parts)


@dataclass(frozen=True)
class _Shape:
    params: int
    field: str
    scale_free: bool


def _shape(info: ModelSpec) -> _Shape:
    """Parameters at the default scale, receptive field, and whether weights are scale-free.

    Built on the meta device (no memory, no initialisation). Networks with global operations
    are global at every scale and their upsampler differs per scale, so only local networks
    (cheap to build) are built at their other scales too.
    """
    with torch.device("meta"):
        first = info.build(info.scale)
        models: dict[int, nn.Module] = {info.scale: first}
        if receptive_field(first) != "global":
            models.update({s: info.build(s) for s in info.scales if s != info.scale})
    params = sum(t.numel() for t in first.state_dict().values())
    fields = [receptive_field(models[s]) for s in sorted(models)]
    if any(not isinstance(f, int) for f in fields):
        field = "global" if all(f == "global" for f in fields) else "not declared"
    else:
        field = str(fields[0]) if len(set(fields)) == 1 else " / ".join(str(f) for f in fields)
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models.values()]
    scale_free = len(shapes) > 1 and all(s == shapes[0] for s in shapes)
    return _Shape(params, field, scale_free)


COLUMNS = (
    "name",
    "family",
    "paper",
    "scales",
    "parameters",
    "task",
    "colour",
    "receptive field",
    "pretrained",
    "reported Set5 / Set14",
    "reproduced by srzoo",
    "licences",
    "precision",
)


def models_table() -> str:
    """The Models page's table: one row per registered name, then notes.

    Returns:
        Markdown.

    Example:
        >>> "| `rcan` |" in models_table()
        True
    """
    measured = reproduced()
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    scale_free: list[str] = []
    for name in srzoo.list_models():
        info = srzoo.model_info(name)
        shape = _shape(info)
        w = _default_weights(info)
        scales = ", ".join(f"x{s}" for s in info.scales)
        pretrained = ", ".join(f"x{s}" for s in sorted({w.scale for w in info.weights}))
        if pretrained:
            pretrained = f"[{pretrained}](#weights-{name})"
        cells = [
            f"`{name}`",
            info.family,
            _paper(info),
            scales,
            f"{shape.params:,}",
            info.task,
            info.colour,
            shape.field,
            pretrained or "none",
            _reported(w),
            _reproduced_cell(name, w, measured),
            _licences(info),
            _precision(info),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if shape.scale_free:
            scale_free.append(f"`{name}`")
    if scale_free:
        lines += [
            "",
            f"The weights of {', '.join(scale_free)} have the same tensor shapes at every scale, "
            "so a checkpoint does not tell which scale it was trained for: srzoo recognises a "
            "file's scale only when it is a registered checkpoint (by its sha256), refuses a "
            "registered checkpoint of another scale, and trusts the scale you pass for any "
            "other file.",
        ]
    return "\n".join(lines) + "\n"


def weights_details() -> str:
    """One table per pretrained model: every registered checkpoint and its numbers.

    Returns:
        Markdown, with a heading per model (anchor ``weights-<name>``).

    Example:
        >>> "{#weights-imdn}" in weights_details()
        True
    """
    measured = reproduced()
    lines: list[str] = []
    for name in srzoo.list_models(pretrained=True):
        info = srzoo.model_info(name)
        lines += [
            f"### `{name}` {{#weights-{name}}}",
            "",
            "| scale | tag | weights licence | trained on | reported | reproduced by srzoo |",
            "|---|---|---|---|---|---|",
        ]
        for w in info.weights:
            reported = "; ".join(f"{m.dataset} x{m.scale} {m.metric} {m.value}" for m in w.metrics)
            ours = "; ".join(
                f"{r.dataset} x{r.scale} {r.metric} {r.value}"
                for r in measured
                if (r.model, r.tag, r.scale) == (name, w.tag, w.scale)
            )
            cells = [f"x{w.scale}", w.tag, w.license, w.train_data, reported or "–", ours or "–"]
            lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def reproduced_table() -> str:
    """The Evaluation page's table of srzoo's own measurements, one row per checkpoint.

    Returns:
        Markdown.

    Example:
        >>> reproduced_table().splitlines()[0].startswith("| model |")
        True
    """
    rows: dict[tuple[str, str, str, str], dict[int, Reproduced]] = {}
    for r in reproduced():
        rows.setdefault((r.model, r.tag, r.dataset, r.metric), {})[r.scale] = r
    scales = sorted({r.scale for r in reproduced()})
    head = ["model", "weights", "benchmark", *(f"x{s}" for s in scales), "upstream code"]
    head += ["authors report", "checked by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (model, tag, dataset, metric), by_scale in rows.items():
        info = srzoo.model_info(model)
        ours = [f"{by_scale[s].value:.4f}" if s in by_scale else "–" for s in scales]
        refs = " / ".join(
            f"{r.reference:.4f}" for r in by_scale.values() if r.reference is not None
        )
        authors = []
        for s, r in by_scale.items():
            w = info.weights_for(s, r.tag)
            value = None if w is None else _psnr(w.metrics, dataset, s)
            authors.append("–" if value is None else f"{value:.2f}")
        checked = sorted({f"`{r.checked_by}`" for r in by_scale.values() if r.checked_by})
        cells = [f"`{model}`", tag, f"{dataset} {metric}", *ours, refs or "–"]
        cells += [" / ".join(authors), ", ".join(checked) or "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def precision_table() -> str:
    """The data file as a markdown table: one row per model, one column per dtype and device."""
    models = json.loads(PRECISION_FILE.read_text())["models"]
    columns = sorted({(e["device"], e["dtype"]) for entries in models.values() for e in entries})
    head = " | ".join(f"{dtype} on {device}" for device, dtype in columns)
    lines = [f"| model | {head} | weights |", "|---" * (len(columns) + 2) + "|"]
    for name, entries in models.items():
        found = {(e["device"], e["dtype"]): e for e in entries}
        cells = []
        for key in columns:
            e = found.get(key)
            psnr = "NaN/Inf" if e and not e["finite"] else (f"{e['psnr_db']:.1f} dB" if e else "")
            cells.append(f"{e['verdict']} ({psnr})" if e else "-")
        weights = entries[0]["note"].split(" weights")[0]
        lines.append(f"| `{name}` | {' | '.join(cells)} | {weights} |")
    return "\n".join(lines)


def main() -> None:
    print(models_table())
    print(weights_details())


if __name__ == "__main__":
    main()
