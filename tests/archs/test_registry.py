"""The registry as a whole: the model contract for every built-in model, and the families' files.

Output shape at every scale, odd sizes, batches, 1x1 inputs, the input left untouched, gradients
reaching every trainable parameter, and ``torch.compile(fullgraph=True)`` capture, each at a
tiny configuration; the contract's attributes at every scale of the full configurations; the
same input handling in every family (unbatched images, clear errors for other ranks and
channel counts); each declared receptive field measured by autograd, and tiling at the default
overlap reproducing the untiled output of every local network (a warning for the global ones);
every family module imported, registered and tested; registry entries.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo
import srzoo.archs
import srzoo.inference
from srzoo.contract import SRModel, check_contract, receptive_field
from srzoo.errors import ArgumentError, ArgumentTypeError

from ..util import (
    NARROW,
    TINY,
    check_compiles,
    check_forward_contract,
    check_gradients,
    randomize_,
    small_scale,
)

BUILTIN = [
    n
    for n in srzoo.list_models()
    if srzoo.model_info(n).builder.__module__.startswith("srzoo.archs")
]

FAMILIES = sorted(m.name for m in pkgutil.iter_modules(srzoo.archs.__path__) if m.name[0] != "_")

TESTS = Path(__file__).resolve().parent

# The attention families and the other heavy networks (MMRealSR, AuraSR): capturing their tiny
# configurations and walking a gradient through the paper's depth take tens of seconds per name
# on two cores, so those two registry-wide checks run with the slow tests for them; each family's
# own test file captures it at two sizes (and checks for graph breaks), in the default run except
# DCTLSA's (six fixed blocks: minutes).
ATTENTION = {
    "swinir",
    "swin2sr",
    "hat",
    "dat",
    "drct",
    "atd",
    "rgt",
    "srformer",
    "omnisr",
    "ditn",
    "dctlsa",
    "craft",
    "grl",
    "seemore",
    "fdat",
    "mmrealsr",
    "aurasr",
    "ipt",
}


def _heavy_slow(names: list[str]) -> list[Any]:
    return [
        pytest.param(n, marks=pytest.mark.slow) if srzoo.model_info(n).family in ATTENTION else n
        for n in names
    ]


def _one_per_family(names: list[str]) -> list[Any]:
    # Compiling costs seconds per name: the default run captures the first name of each family
    # (the variants of a family run the same code), the slow run every name.
    seen: set[str] = set()
    params: list[Any] = []
    for n in names:
        family = srzoo.model_info(n).family
        heavy = family in ATTENTION or family in seen
        seen.add(family)
        params.append(pytest.param(n, marks=pytest.mark.slow) if heavy else n)
    return params


def _channels(name: str) -> int:
    return 1 if srzoo.model_info(name).colour == "y" else 3


# --------------------------------------------------------------------------------------------
# Every family file is wired in
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fresh_import() -> dict[str, Any]:
    """What ``import srzoo.archs`` imports and registers in a new interpreter.

    A fresh process, because this one has imported the family modules directly (tests do), which
    would hide a module that ``srzoo/archs/__init__.py`` forgets.
    """
    script = (
        "import json, sys\n"
        "import srzoo.archs\n"
        "from srzoo.registry import list_models, model_info\n"
        "specs = {n: model_info(n) for n in list_models()}\n"
        "print(json.dumps({\n"
        "    'imported': sorted(m for m in sys.modules if m.startswith('srzoo.archs.')),\n"
        "    'registered': {n: [s.family, getattr(s.builder, '__module__', '')]\n"
        "                   for n, s in specs.items()},\n"
        "}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
        cwd=TESTS.parents[1],  # the checkout's srzoo, as the tests in this process see it
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_family_list_is_not_empty() -> None:
    # pkgutil finding nothing (a packaging change) would make the test below pass vacuously.
    assert {"edsr", "rcan", "span"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_module_is_imported_registered_and_tested(
    fresh_import: dict[str, Any], family: str
) -> None:
    module = f"srzoo.archs.{family}"
    assert module in fresh_import["imported"], (
        f"{module} is not imported by srzoo/archs/__init__.py: its models are never registered"
    )
    registered = [
        name
        for name, (spec_family, builder_module) in fresh_import["registered"].items()
        if builder_module == module or spec_family == family
    ]
    assert registered, f"{module} registers no model"
    assert (TESTS / f"test_{family}.py").is_file(), f"no tests/archs/test_{family}.py"


# --------------------------------------------------------------------------------------------
# The model contract at tiny configurations
# --------------------------------------------------------------------------------------------


def test_every_builtin_model_has_a_tiny_configuration() -> None:
    # The contract tests below run over the registry; each needs a configuration that runs fast.
    assert sorted(BUILTIN) == sorted(TINY)


@pytest.mark.parametrize(
    ("name", "scale"), [(n, s) for n in sorted(BUILTIN) for s in srzoo.model_info(n).scales]
)
def test_forward_contract(name: str, scale: int) -> None:
    model = randomize_(srzoo.create(name, scale, **TINY[name]), seed=scale)
    check_forward_contract(model, scale, channels=_channels(name))


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_gradients_reach_every_parameter(name: str) -> None:
    model = randomize_(srzoo.create(name, small_scale(name), **TINY[name]))
    check_gradients(model, channels=_channels(name))


@pytest.mark.parametrize("name", _one_per_family(sorted(BUILTIN)))
def test_fullgraph_compile(name: str) -> None:
    model = randomize_(srzoo.create(name, None, **TINY[name]))
    check_compiles(model, channels=_channels(name))


def _first_per_family(names: list[str]) -> list[str]:
    firsts: dict[str, str] = {}
    for n in names:
        firsts.setdefault(srzoo.model_info(n).family, n)
    return sorted(firsts.values())


@pytest.mark.parametrize("name", _first_per_family(sorted(BUILTIN)))
def test_attention_inputs_suit_the_fused_kernels(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With a strided last dimension, CUDA's scaled_dot_product_attention falls back to its math
    # kernel, which holds the whole score matrix: AuraSR asked for 128 GiB at 512x512 that way.
    sdpa = torch.nn.functional.scaled_dot_product_attention
    strides: list[tuple[int, int, int]] = []

    def spy(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *a: Any, **kw: Any) -> Any:
        strides.append((q.stride(-1), k.stride(-1), v.stride(-1)))
        return sdpa(q, k, v, *a, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    model = randomize_(srzoo.create(name, None, **TINY[name])).eval()
    side = max(16, srzoo.model_info(name).size_multiple)
    with torch.inference_mode():
        model(torch.rand(1, _channels(name), side, side))
    assert all(s == (1, 1, 1) for s in strides), strides


# --------------------------------------------------------------------------------------------
# The contract at every scale of the full configurations
# --------------------------------------------------------------------------------------------

ALL_SCALES = [(n, s) for n in sorted(BUILTIN) for s in srzoo.model_info(n).scales]


def _meta_build(name: str, scale: int, **overrides: Any) -> nn.Module:
    with torch.device("meta"):
        return srzoo.model_info(name).build(scale, **overrides)


@pytest.mark.parametrize(("name", "scale"), ALL_SCALES)
def test_contract_at_every_scale(name: str, scale: int) -> None:
    model = _meta_build(name, scale)
    check_contract(model)
    assert isinstance(model, SRModel)
    assert model.scale == scale
    # Every built-in family says how far it looks: a radius, or "global" (None on the module).
    field = receptive_field(model)
    assert field is not None, f"{name} x{scale} declares no receptive_field"
    assert field == "global" or (isinstance(field, int) and field >= 0)


# --------------------------------------------------------------------------------------------
# One input convention for every family
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_unbatched_images_and_bad_shapes(name: str) -> None:
    c = _channels(name)
    model = randomize_(srzoo.create(name, small_scale(name), **TINY[name])).eval()
    image = torch.rand(c, 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        single = model(image)
        batched = model(image[None])
    # torch's convention for convolution layers: (C, H, W) in, (C', H', W') out.
    s = model.scale
    assert single.shape == (model.out_channels, 13 * s, 11 * s)
    torch.testing.assert_close(single, batched[0], atol=0, rtol=0)

    cls = type(model).__name__
    for bad in (
        image[0],  # (H, W)
        image[None, None],  # (1, 1, C, H, W)
        torch.rand(1, c + 1, 13, 11),  # wrong channels, batched
        torch.rand(c + 1, 13, 11),  # wrong channels, unbatched
        torch.rand(1, c, 0, 11),  # empty
    ):
        with pytest.raises(ArgumentError) as info:
            model(bad)
        message = str(info.value)
        assert isinstance(info.value, ValueError)
        assert "\n" not in message
        assert cls in message and f"(N, {c}, H, W)" in message, message
        assert str(tuple(bad.shape)) in message, message
    with pytest.raises(ArgumentTypeError, match=r"torch\.uint8"):
        model(torch.zeros(1, c, 4, 4, dtype=torch.uint8))


# --------------------------------------------------------------------------------------------
# Receptive fields: declared from the constructor's arguments, measured by autograd
# --------------------------------------------------------------------------------------------

_FIELDS = {(n, s): receptive_field(_meta_build(n, s)) for n, s in ALL_SCALES}
LOCAL = sorted(n for n in BUILTIN if isinstance(_FIELDS[n, srzoo.model_info(n).scale], int))
GLOBAL = sorted(n for n in BUILTIN if _FIELDS[n, srzoo.model_info(n).scale] == "global")
SEEDS = (0, 1, 2)


def _gradient_support(model: nn.Module, side: int, seed: int) -> tuple[torch.Tensor, int]:
    """Input pixels the output block of the centre input pixel depends on, and that centre.

    Float64, random weights and input; the gradient of the sum, over channels and the
    ``scale x scale`` output pixels that belong to the centre input pixel, of the output. Every
    sub-pixel position is in the sum, so the support is the union of their fields.
    """
    s = model.scale
    x = torch.rand(
        1,
        model.in_channels,
        side,
        side,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(100 + seed),
    ).requires_grad_()
    centre = side // 2
    model(x)[0, :, centre * s : (centre + 1) * s, centre * s : (centre + 1) * s].sum().backward()
    assert x.grad is not None
    return x.grad[0].abs().sum(dim=0) != 0, centre


def _measured_radius(name: str, scale: int, overrides: dict[str, Any], declared: int) -> int:
    """The largest Chebyshev distance from the centre with a non-zero gradient, over seeds.

    ReLU dead zones can hide the edge of the field for one set of random weights, so a few
    seeds are tried (stopping once the declared radius is reached). The input leaves four
    pixels beyond the declared radius on each side, so a field that reaches further shows.
    """
    side = 2 * declared + 9
    radius = -1
    for seed in SEEDS:
        spec = srzoo.model_info(name)
        model = randomize_(spec.build(scale, **overrides), seed=seed).double().eval()
        support, centre = _gradient_support(model, side, seed)
        rows, cols = support.nonzero(as_tuple=True)
        distance = torch.maximum((rows - centre).abs(), (cols - centre).abs())
        radius = max(radius, int(distance.max()))
        if radius >= declared:
            break
    return radius


# Beyond this radius a gradient through the paper's depth underflows float64 before it reaches
# the edge of the field (RRDBNet: about 345 low-resolution convolutions, each dense block shrinking
# the gradient by ~1e-5 at random weights), and the measurement would take minutes. Those networks
# are measured at their TINY depth, which runs through the same arithmetic of the constructor.
_MEASURABLE = 128
# The paper's depth whose measurement takes over ten seconds on two cores (MoSR 14 s, SRDenseNet
# 13 s): with the slow tests, like the other scales; their TINY depth stays in the default run.
_SLOW_NARROW = {"mosr", "srdensenet"}
MEASURED = [
    # The paper's depth at the model's default scale in the default run; at its other scales
    # (the same blocks, another upsampler) with the slow tests.
    pytest.param(n, s, config, marks=pytest.mark.slow)
    if config == "narrow" and (s != srzoo.model_info(n).scale or n in _SLOW_NARROW)
    else (n, s, config)
    for n, s in ALL_SCALES
    if n in LOCAL
    for config in ("narrow", "tiny")
    if config == "tiny" or int(_FIELDS[n, s]) <= _MEASURABLE  # type: ignore[call-overload]
]


@pytest.mark.parametrize(("name", "scale", "config"), MEASURED)
def test_declared_receptive_field_is_the_measured_one(name: str, scale: int, config: str) -> None:
    # "narrow": the paper's depth, few features; "tiny": the depth overrides of TINY, so the
    # radius must follow the constructor's arguments.
    overrides = NARROW[name] if config == "narrow" else TINY[name]
    declared = srzoo.model_info(name).build(scale, **overrides).receptive_field
    assert isinstance(declared, int)
    if config == "narrow":
        assert declared == _FIELDS[name, scale], "width changed the declared radius"
    assert _measured_radius(name, scale, overrides, declared) == declared


@pytest.mark.parametrize("name", _heavy_slow(GLOBAL))
def test_global_networks_see_the_whole_image(name: str) -> None:
    # A pixel in the middle of a 64x64 image depends on all four corners, for some seed.
    spec = srzoo.model_info(name)
    assert spec.build(spec.scale, **NARROW[name]).receptive_field is None
    for seed in SEEDS:
        model = randomize_(spec.build(spec.scale, **NARROW[name]), seed=seed).double().eval()
        support, _ = _gradient_support(model, 64, seed)
        if all(bool(support[i, j]) for i in (0, -1) for j in (0, -1)):
            return
    pytest.fail(f"{name}: the centre's gradient never reaches the corners")


def test_every_builtin_model_is_local_or_global() -> None:
    assert sorted(LOCAL + GLOBAL) == sorted(BUILTIN)
    assert sorted(NARROW) == sorted(BUILTIN)


# --------------------------------------------------------------------------------------------
# Tiling at the default overlap
# --------------------------------------------------------------------------------------------


def _mostly_unclamped(name: str, scale: int, x: torch.Tensor) -> nn.Module:
    """The tiny model with the first random weights whose output is mostly inside (0, 1).

    upscale() clamps to [0, 1]; with outputs clamped everywhere, tiled and untiled would agree
    whatever the overlap.
    """
    for seed in range(6):
        for gain in (0.5, 0.2):
            model = srzoo.create(name, scale, **TINY[name])
            model = randomize_(model, seed=seed, gain=gain).double().eval()
            with torch.no_grad():
                y = model(x.double())
            if ((y > 0) & (y < 1)).double().mean() >= 0.4:
                return model
    raise AssertionError(f"{name} x{scale}: no random weights give outputs inside (0, 1)")


@pytest.mark.parametrize(("name", "scale"), [(n, s) for n, s in ALL_SCALES if n in LOCAL])
def test_tiles_at_the_default_overlap_reproduce_the_whole_image(name: str, scale: int) -> None:
    field = srzoo.create(name, scale, **TINY[name]).receptive_field
    assert isinstance(field, int)
    tile = 4 * field  # the default overlap (the radius) is capped at a quarter of the tile
    height, width = max(40, tile + 8), max(37, tile + 5)  # at least two tiles each way
    # A network that folds blocks of pixels (pixel-unshuffle) is exact on images whose sides are
    # multiples of its block: only then do all tiles lie on the image's grid.
    multiple = srzoo.model_info(name).size_multiple
    height, width = -(-height // multiple) * multiple, -(-width // multiple) * multiple
    x = torch.rand(_channels(name), height, width, generator=torch.Generator().manual_seed(7))
    model = _mostly_unclamped(name, scale, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a local network is tiled without a warning
        whole = srzoo.upscale(model, x, tile=None)
        tiled = srzoo.upscale(model, x, tile=tile)
    assert tiled.shape == whole.shape == (x.shape[0], height * scale, width * scale)
    # float64 inside the network: the tiles equal the whole image to the last float32 bit here;
    # the tolerance leaves room for one rounding step on another BLAS.
    torch.testing.assert_close(tiled, whole, atol=1e-7, rtol=0)


@pytest.mark.parametrize("name", GLOBAL)
def test_tiling_a_global_network_warns_once(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The warning is given once per model name and process: start from a process that has
    # given none.
    monkeypatch.setattr(srzoo.inference, "_WARNED", set())
    model = randomize_(srzoo.create(name, small_scale(name), **TINY[name])).eval()
    # Larger than two padded tiles of 16 even where the network pads to 64 (GRL).
    side = max(40, 2 * srzoo.model_info(name).size_multiple + 3)
    x = torch.rand(3, side, side - 3, generator=torch.Generator().manual_seed(7))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        srzoo.upscale(model, x, tile=None)  # one piece: nothing to warn about
    with pytest.warns(srzoo.TilingWarning) as record:
        srzoo.upscale(model, x, tile=16)
        srzoo.upscale(model, x, tile=16)
    warned = [w for w in record if issubclass(w.category, srzoo.TilingWarning)]
    assert len(warned) == 1, [str(w.message) for w in warned]
    assert name in str(warned[0].message)


# --------------------------------------------------------------------------------------------
# Registry entries
# --------------------------------------------------------------------------------------------

LIGHTWEIGHT = ("imdn", "rfdn", "pan", "safmn", "span")
CLASSIC = ("srcnn", "fsrcnn", "espcn", "vdsr")


@pytest.mark.parametrize("name", LIGHTWEIGHT)
def test_registry_entries_are_complete(name: str) -> None:
    info = srzoo.model_info(name)
    assert info.family == name
    assert info.scales == (2, 3, 4)
    assert info.task == "psnr" and info.colour == "rgb"
    assert info.paper.arxiv and info.code_license
    assert info.weights, f"{name} has no registered weights"
    for w in info.weights:
        # srzoo's own weights ship inside the package (tests/test_default_model.py checks them).
        assert w.source.startswith("https://") or w.tag == "srzoo"
        assert "drive.google" not in w.source and "pan.baidu" not in w.source
        assert w.sha256 is not None and len(w.sha256) == 64
        int(w.sha256, 16)
        for m in w.metrics:
            assert m.scale == w.scale and m.source and m.dataset in {"Set5", "Set14"}


def test_registered_scales_of_weights() -> None:
    scales = {
        n: sorted(w.scale for w in srzoo.model_info(n).weights if w.tag == "default")
        for n in LIGHTWEIGHT
    }
    assert scales == {
        "imdn": [2, 3, 4],
        "rfdn": [4],
        "pan": [2, 3, 4],
        "safmn": [2, 3, 4],
        "span": [2, 4],
    }


def test_classics_are_registered_as_y_channel_models() -> None:
    for name in CLASSIC:
        spec = srzoo.model_info(name)
        assert spec.colour == "y"
        assert spec.task == "psnr"
        assert spec.scales == (2, 3, 4)
        model = spec.build(spec.scale)
        assert model.in_channels == model.out_channels == 1
