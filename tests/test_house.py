"""The house rules, checked on the source: imports point down, no module borrows another's
private names, public torch APIs only. A new family or module that breaks a rule fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "srzoo"

# Lower numbers sit lower in the house; a module may import only modules of a lower layer.
LAYERS: dict[str, int] = {
    "srzoo.errors": 0,
    "srzoo._version": 0,
    "srzoo._util": 1,
    "srzoo.metrics": 2,
    "srzoo.registry": 2,
    "srzoo.tiling": 2,
    "srzoo.image": 3,
    "srzoo.archs": 3,
    "srzoo.weights": 3,
    "srzoo.contract": 3,
    "srzoo.compare": 4,
    "srzoo.hub": 4,
    "srzoo.detect": 4,
    "srzoo.discriminators": 4,
    "srzoo.export": 4,
    "srzoo.data": 4,
    "srzoo.losses": 4,
    "srzoo.train": 4,
    "srzoo.api": 5,
    "srzoo.inference": 6,
    "srzoo.bench": 6,
    "srzoo.evaluation": 7,
    "srzoo.cli": 8,
    "srzoo": 9,
    "srzoo.__main__": 10,
}

# The one upward import: the registry loads the built-in families on its first lookup, so that
# `import srzoo.registry` works alone. It happens inside a function, after every module exists.
UPWARD = {("srzoo.registry", "srzoo.archs")}


def _module_name(path: Path) -> str:
    parts = ["srzoo", *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> tuple[str, int]:
    """The layer entry a module belongs to: itself, or the package that holds it."""
    name = module
    while name not in LAYERS:
        name = name.rpartition(".")[0]
    return name, LAYERS[name]


def _sources() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(imported srzoo module, imported names, line) for every import of srzoo code."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, list[str], int]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "srzoo" or target.startswith("srzoo."):
                names = [a.name for a in node.names]
                # `from . import archs` imports a module, not a name.
                for name in names:
                    sub = f"{target}.{name}"
                    if (ROOT.parent / sub.replace(".", "/")).with_suffix(".py").exists() or (
                        ROOT.parent / sub.replace(".", "/")
                    ).is_dir():
                        found.append((sub, [], node.lineno))
                    else:
                        found.append((target, [name], node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "srzoo" or alias.name.startswith("srzoo."):
                    found.append((alias.name, [], node.lineno))
    return found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path) -> None:
    module = _module_name(path)
    here, rank = _layer(module)
    for target, _, line in _imports(path):
        there, target_rank = _layer(target)
        if there == here or (here, there) in UPWARD:
            continue
        assert target_rank < rank, (
            f"{module} (layer {rank}) imports {target} (layer {target_rank}) at line {line}"
        )


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_borrows_private_names(path: Path) -> None:
    for target, names, line in _imports(path):
        private = [n for n in names if n.startswith("_") and n != "__version__"]
        assert not private, f"{path.name}:{line} imports {private} from {target}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_lower_layer_imports_the_package_root(path: Path) -> None:
    module = _module_name(path)
    if module in ("srzoo", "srzoo.__main__"):
        return
    for target, _, line in _imports(path):
        assert target != "srzoo", f"{module} imports the package root at line {line}"


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_public_torch_apis_only(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            assert node.attr != "_C", f"{path.name}:{node.lineno} uses torch._C"
            if node.attr in ("_parameters", "_buffers", "_modules"):
                raise AssertionError(f"{path.name}:{node.lineno} touches module.{node.attr}")
        if isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                text = ast.unparse(t)
                assert "nn.init." not in text and "torch.nn.init" not in text, (
                    f"{path.name}:{node.lineno} patches torch.nn.init"
                )
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "setattr" and node.args:
            assert "init" not in ast.unparse(node.args[0]), (
                f"{path.name}:{node.lineno} patches torch.nn.init"
            )


def test_every_module_has_a_layer() -> None:
    for path in _sources():
        module = _module_name(path)
        assert _layer(module)[0] in LAYERS, module
        assert module in LAYERS or "." in module, module


def test_function_level_imports_say_why() -> None:
    """An import inside a function is there to keep `import srzoo` cheap (an optional or heavy
    package) or to break a cycle; the line before it, or the import itself, says which."""
    for path in _sources():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    # The comment may stand above a run of consecutive imports.
                    i = inner.lineno - 1
                    documented = "#" in lines[i]
                    while not documented and i > 0:
                        i -= 1
                        above = lines[i].strip()
                        documented = above.startswith("#")
                        if not above.startswith(("from ", "import ")):
                            break
                    assert documented, (
                        f"{path.relative_to(ROOT)}:{inner.lineno} imports inside a function "
                        "without a comment saying why"
                    )
