"""Write docs/models.md from the registry, so the model table never drifts from the code.

Usage: python docs/gen_models.py            (rewrite docs/models.md)
       python docs/gen_models.py --check    (exit 1 if docs/models.md is stale)

tests/test_docs.py fails when the checked-in table differs from what this script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

import srzoo
from srzoo.contract import receptive_field
from srzoo.registry import ModelSpec

OUT = Path(__file__).with_name("models.md")


def _built(info: ModelSpec) -> dict[int, nn.Module]:
    """The model at each of its scales, on the meta device (no memory, no initialisation)."""
    with torch.device("meta"):
        return {s: info.build(s) for s in info.scales}


def _receptive_field(models: dict[int, nn.Module]) -> str:
    """``"global"``, one radius, or one radius per scale (``"6 / 4 / 4"``)."""
    fields = [receptive_field(m) for m in models.values()]
    if any(not isinstance(f, int) for f in fields):
        return "global" if all(f == "global" for f in fields) else "not declared"
    return str(fields[0]) if len(set(fields)) == 1 else " / ".join(str(f) for f in fields)


def _scale_free_weights(models: dict[int, nn.Module]) -> bool:
    """Whether the state dicts have the same keys and shapes at every scale."""
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models.values()]
    return len(shapes) > 1 and all(s == shapes[0] for s in shapes)


def render() -> str:
    """The text of docs/models.md for the models registered now."""
    lines = [
        "# Models",
        "",
        "Generated from the registry by `python docs/gen_models.py`; `srzoo.model_info(name)` "
        "gives the same facts in code.",
        "",
        "| name | family | scales | colour | parameters (default scale) | receptive field "
        "| paper | code licence | pretrained |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    scale_free: list[str] = []
    for name in srzoo.list_models():
        info = srzoo.model_info(name)
        models = _built(info)
        scales = ", ".join(f"x{s}" for s in info.scales)
        params = f"{info.num_params(info.scale):,}"
        paper = f"{info.paper.title} ({info.paper.venue} {info.paper.year})"
        if info.paper.arxiv:
            paper += f", [arXiv:{info.paper.arxiv}](https://arxiv.org/abs/{info.paper.arxiv})"
        weights = ", ".join(sorted({f"x{w.scale}" for w in info.weights})) or "none"
        lines.append(
            f"| `{name}` | {info.family} | {scales} | {info.colour} | {params} "
            f"| {_receptive_field(models)} | {paper} | {info.code_license} | {weights} |"
        )
        if _scale_free_weights(models):
            scale_free.append(f"`{name}`")
    lines += [
        "",
        "The receptive field is the radius, in input (low-resolution) pixels, that one output "
        "pixel depends on (per scale where it differs): tiles overlapping by that much reproduce "
        "the untiled output, and `srzoo.upscale` overlaps its tiles by it (up to 64) unless told "
        "otherwise. *global* networks use operations over the whole image (channel attention) or "
        "whose windows follow the image's size (pooling to a fraction of it, resizing back to "
        "it), so tiles never reproduce them exactly and tiling them warns "
        "(`srzoo.TilingWarning`).",
    ]
    if scale_free:
        lines += [
            "",
            f"The weights of {', '.join(scale_free)} have the same tensor shapes at every scale, "
            "so a checkpoint does not tell which scale it was trained for: srzoo recognises a "
            "file's scale only when it is a registered checkpoint (by its sha256), refuses a "
            "registered checkpoint of another scale, and trusts the scale you pass for any "
            "other file.",
        ]
    lines += ["", "## Pretrained weights", ""]
    for name in srzoo.list_models(pretrained=True):
        info = srzoo.model_info(name)
        lines.append(f"### `{name}`")
        lines.append("")
        lines.append("| scale | tag | licence | trained on | reported |")
        lines.append("|---|---|---|---|---|")
        for w in info.weights:
            reported = "; ".join(f"{m.dataset} x{m.scale} {m.metric} {m.value}" for m in w.metrics)
            lines.append(
                f"| x{w.scale} | {w.tag} | {w.license} | {w.train_data} | {reported or '-'} |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    text = render()
    if "--check" in sys.argv[1:]:
        if OUT.read_text() != text:
            print(f"{OUT} is stale: run python docs/gen_models.py", file=sys.stderr)
            raise SystemExit(1)
        return
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
