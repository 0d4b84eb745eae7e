"""Write docs/models.md from the registry, so the model table never drifts from the code.

Usage: python docs/gen_models.py            (rewrite docs/models.md)
       python docs/gen_models.py --check    (exit 1 if docs/models.md is stale)

tests/test_docs.py fails when the checked-in table differs from what this script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import srzoo

OUT = Path(__file__).with_name("models.md")


def render() -> str:
    """The text of docs/models.md for the models registered now."""
    lines = [
        "# Models",
        "",
        "Generated from the registry by `python docs/gen_models.py`; `srzoo.model_info(name)` "
        "gives the same facts in code.",
        "",
        "| name | family | scales | colour | parameters (default scale) | paper | code licence "
        "| pretrained |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in srzoo.list_models():
        info = srzoo.model_info(name)
        scales = ", ".join(f"x{s}" for s in info.scales)
        params = f"{info.num_params(info.scale):,}"
        paper = f"{info.paper.title} ({info.paper.venue} {info.paper.year})"
        if info.paper.arxiv:
            paper += f", [arXiv:{info.paper.arxiv}](https://arxiv.org/abs/{info.paper.arxiv})"
        weights = ", ".join(sorted({f"x{w.scale}" for w in info.weights})) or "none"
        lines.append(
            f"| `{name}` | {info.family} | {scales} | {info.colour} | {params} | {paper} "
            f"| {info.code_license} | {weights} |"
        )
    lines += ["", "## Pretrained weights", ""]
    for name in srzoo.list_models(pretrained=True):
        info = srzoo.model_info(name)
        lines.append(f"### `{name}`")
        lines.append("")
        lines.append("| scale | tag | licence | trained on | layout | reported |")
        lines.append("|---|---|---|---|---|---|")
        for w in info.weights:
            reported = "; ".join(f"{m.dataset} x{m.scale} {m.metric} {m.value}" for m in w.metrics)
            lines.append(
                f"| x{w.scale} | {w.tag} | {w.license} | {w.train_data} | {w.layout} "
                f"| {reported or '-'} |"
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
