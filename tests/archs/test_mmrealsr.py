"""MM-RealSR: the official layout against spandrel on identical random weights (x4, and x2 / x1
with the estimator on the folded input), chosen degrees against upstream's ``custom_degrees``,
detection from a bare state dict, parameter counts, registry entry, compile and bf16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.mmrealsr import MMRealSR, detect_mmrealsr
from srzoo.errors import ArgumentError, ArgumentTypeError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_


def _ref(scale: int = 4, **config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.MMRealSR")
    lists = {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}
    model: nn.Module = arch.MMRealSR(num_in_ch=3, num_out_ch=3, scale=scale, **lists)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


def _params(state: dict[str, torch.Tensor]) -> object:
    return {"params": state}  # BasicSR's wrapper, as in the authors' release files


def _image(ref: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = ref(x)[0]  # upstream returns (image, estimated degrees)
    return out


class _Folded(nn.Module):
    """Upstream's estimator fed the pixel-unshuffled input its first convolution was built for."""

    def __init__(self, estimator: nn.Module, fold: int) -> None:
        super().__init__()
        self.estimator, self.fold = estimator, fold

    def forward(self, x: torch.Tensor) -> Any:
        return self.estimator(F.pixel_unshuffle(x, self.fold))


def _image_folded(ref: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # Upstream's x2 / x1 forward hands the unfolded image to an estimator built for the folded
    # channels and fails; srzoo folds first. Everything else is upstream's own forward.
    estimator = ref.de_net
    ref.de_net = _Folded(estimator, {2: 2, 1: 4}[int(ref.scale)])
    try:
        return _image(ref, x)
    finally:
        ref.de_net = estimator


# Small trunks; estimators with a stride-2 convolution (between stages and after the last one),
# one or two degradations (spandrel's forward indexes two custom degrees at most).
_CONFIGS = [
    {
        "num_feat": 8,
        "num_block": 2,
        "num_grow_ch": 4,
        "num_feats": (8, 16),
        "num_blocks": (2, 1),
        "downscales": (2, 1),
    },
    {
        "num_feat": 12,
        "num_block": 1,
        "num_grow_ch": 6,
        "num_degradation": 1,
        "num_feats": (4, 8),
        "num_blocks": (1, 2),
        "downscales": (2, 2),
    },
]


@pytest.mark.parametrize(
    ("config", "size"),
    [(_CONFIGS[0], (13, 11)), (_CONFIGS[1], (16, 16)), (_CONFIGS[0], (16, 16))],
)
def test_matches_spandrel(tmp_path: Path, config: dict[str, Any], size: tuple[int, int]) -> None:
    assert_loads_correctly(
        tmp_path,
        "mmrealsr",
        4,
        _ref(**config),
        overrides=config,
        container=_params,
        run_reference=_image,
        reload_reference=_spandrel_detected,
        seed=size[0],
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize(("scale", "size"), [(2, (14, 12)), (1, (16, 12))])
def test_folded_scales_match_spandrel_with_a_folded_estimator(
    tmp_path: Path, scale: int, size: tuple[int, int]
) -> None:
    assert_loads_correctly(
        tmp_path,
        "mmrealsr",
        scale,
        _ref(scale, **_CONFIGS[0]),
        overrides=_CONFIGS[0],
        container=_params,
        run_reference=_image_folded,
        reload_reference=_spandrel_detected,
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


def test_tanh_heads_match_spandrel(tmp_path: Path) -> None:
    # The activation is not in the weights: spandrel's loader assumes sigmoid, so no reload.
    config = {**_CONFIGS[0], "degradation_degree_actv": "tanh"}
    assert_loads_correctly(
        tmp_path,
        "mmrealsr",
        4,
        _ref(**config),
        overrides=config,
        container=_params,
        run_reference=_image,
        seed=5,
        size=(12, 9),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
def test_released_configuration_matches_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "mmrealsr",
        4,
        _ref(num_feats=[64, 64, 64, 128], downscales=[1, 1, 2, 1]),
        container=_params,
        run_reference=_image,
        reload_reference=_spandrel_detected,
        seed=3,
        size=(12, 9),
        atol=1e-4,
        relative=True,
    )


def _pair(seed: int = 0) -> tuple[nn.Module, MMRealSR]:
    # A large gain so that the degrees visibly move the output.
    ref = randomize_(_ref(**_CONFIGS[0]), seed=seed, gain=1.5).eval()
    ours = MMRealSR(**_CONFIGS[0]).eval()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("chosen", [(None, 0.0), (0.7, None), (0.25, 1.0)])
def test_chosen_degrees_match_upstream_custom_degrees(
    tmp_path: Path, chosen: tuple[float | None, float | None]
) -> None:
    ref, ours = _pair()
    x = torch.rand(2, 3, 10, 9, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, estimated = ref(x, chosen)
        estimate = ours(x)
        ours.degrees = chosen
        got = ours(x)
        torch.testing.assert_close(ours.estimate_degrees(x), torch.stack(estimated, 1))
    bound = 1e-5 * max(1.0, want.abs().max().item())  # the large gain: outputs beyond 1
    torch.testing.assert_close(got, want, atol=bound, rtol=0)
    assert (got - estimate).abs().max() > 1e-3, "the chosen degrees changed nothing"
    # The same through the loader's keyword.
    path = tmp_path / "m.pth"
    torch.save(_params(ref.state_dict()), path)
    loaded = srzoo.load("mmrealsr", scale=4, weights=path, degrees=chosen, **_CONFIGS[0])
    assert loaded.degrees == chosen
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), want, atol=bound, rtol=0)


def test_degrees_are_checked() -> None:
    model = MMRealSR(**TINY["mmrealsr"])
    assert model.degrees == (None, None)
    model.degrees = [0, None]
    assert model.degrees == (0.0, None)
    model.degrees = None
    assert model.degrees == (None, None)
    with pytest.raises(ArgumentError, match="2 degrees"):
        model.degrees = (0.5,)
    with pytest.raises(ArgumentTypeError, match="numbers"):
        model.degrees = ("0.5", None)  # type: ignore[assignment]
    with pytest.raises(ArgumentTypeError, match="sequence"):
        MMRealSR(degrees=0.5)  # type: ignore[arg-type]


def _save(tmp_path: Path, state: dict[str, torch.Tensor]) -> list[Path]:
    pth, st = tmp_path / "m.pth", tmp_path / "m.safetensors"
    torch.save(_params(state), pth)
    save_file({k: v.contiguous() for k, v in state.items()}, str(st))
    return [pth, st]


@pytest.mark.parametrize(
    ("scale", "config"),
    [
        (4, _CONFIGS[0]),
        (4, _CONFIGS[1]),
        (2, {**_CONFIGS[0], "num_degradation": 3}),
        (1, {**_CONFIGS[1], "num_feats": (4,), "num_blocks": (3,), "downscales": (1,)}),
    ],
)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, scale: int, config: dict[str, Any]
) -> None:
    model = randomize_(MMRealSR(scale=scale, **config), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = {"num_degradation": 2, "degradation_degree_actv": "sigmoid", **config}
    x = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        want = model(x)
    for path in _save(tmp_path, state):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "mmrealsr",
            "mmrealsr",
            scale,
            "official",
        )
        for key, value in expected.items():
            assert found.model_args[key] == value, key
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=0)


def test_released_layout_is_detected_as_an_equal_network() -> None:
    # The authors' stage lists read back as maximal runs: the same layers, the same keys.
    with torch.device("meta"):
        released = MMRealSR()
        shapes = Shapes({k: v.shape for k, v in released.state_dict().items()})
        found = detect_mmrealsr(shapes)
        assert found is not None and found.scale == 4
        stages = [found.model_args[k] for k in ("num_feats", "num_blocks", "downscales")]
        assert stages == [(64, 128), (6, 2), (2, 1)]
        rebuilt = MMRealSR(scale=found.scale, **found.model_args)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == dict(shapes)


def test_esrgan_files_stay_esrgan_and_mmrealsr_wins_over_esrgan() -> None:
    # An MM-RealSR file holds every key of BasicSR's RRDBNet: the more specific match wins.
    model = MMRealSR(**TINY["mmrealsr"])
    assert srzoo.detect(dict(model.state_dict())).family == "mmrealsr"
    trunk = {k: v for k, v in model.state_dict().items() if not k.startswith(("am_", "de_", "dd_"))}
    assert detect_mmrealsr(Shapes({k: v.shape for k, v in trunk.items()})) is None
    assert srzoo.detect(trunk).family == "esrgan"


def test_spandrel_and_srzoo_detect_the_same_network() -> None:
    spandrel = pytest.importorskip("spandrel")
    for scale in (4, 2, 1):
        state = dict(MMRealSR(scale=scale, **_CONFIGS[0]).state_dict())
        found = srzoo.detect(state)
        theirs = spandrel.ModelLoader().load_from_state_dict(dict(state))
        assert theirs.architecture.id == "MMRealSR" and found.family == "mmrealsr"
        assert theirs.scale == found.scale == scale


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_parameter_counts_match_spandrel(scale: int) -> None:
    with torch.device("meta"):
        ref = _ref(scale, num_feats=[64, 64, 64, 128], downscales=[1, 1, 2, 1])
    count = sum(t.numel() for t in ref.state_dict().values())
    assert srzoo.model_info("mmrealsr").num_params(scale) == count
    if scale == 4:
        assert count == 26_134_149


def test_registry_entry() -> None:
    info = srzoo.model_info("mmrealsr")
    assert info.family == "mmrealsr" and info.task == "real-world" and info.colour == "rgb"
    assert info.paper.arxiv == "2205.05065" and info.paper.venue == "ECCV"
    assert info.code_license == "BSD-3-Clause"
    assert info.scales == (1, 2, 4) and info.scale == 4 and info.size_multiple == 4
    assert not info.weights  # the release files have no published digest
    with torch.device("meta"):
        assert MMRealSR().receptive_field is None  # the estimator averages the whole image
    assert set(NARROW["mmrealsr"]) <= {"num_feat", "num_grow_ch", "num_feats"}


def test_any_size_at_every_scale() -> None:
    for scale in (1, 2, 4):
        model = randomize_(MMRealSR(scale=scale, **TINY["mmrealsr"])).eval()
        for size in ((1, 1), (5, 3), (6, 7)):
            x = torch.rand(1, 3, *size)
            with torch.no_grad():
                y = model(x)
            assert y.shape == (1, 3, size[0] * scale, size[1] * scale)
            assert torch.isfinite(y).all()


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="scales 1, 2 and 4"):
        MMRealSR(scale=3)
    with pytest.raises(ArgumentError, match="degradation_degree_actv"):
        MMRealSR(degradation_degree_actv="relu")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="one entry per stage"):
        MMRealSR(num_feats=(8, 16), num_blocks=(1,), downscales=(2, 1))
    with pytest.raises(ArgumentError, match="downscales"):
        MMRealSR(num_feats=(8,), num_blocks=(1,), downscales=(3,))
    with pytest.raises(ArgumentError, match="num_degradation"):
        MMRealSR(num_degradation=0)


def test_compiles_without_graph_breaks_at_two_sizes() -> None:
    model = randomize_(MMRealSR(scale=4, **TINY["mmrealsr"])).eval()
    assert_no_graph_breaks(model, ((8, 8), (7, 5)))
    model.degrees = (None, 0.3)  # a chosen degree is a constant of the graph
    assert_no_graph_breaks(model, ((7, 5),))


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = randomize_(MMRealSR(scale=4, **TINY["mmrealsr"]), seed=1).eval()
    x = torch.rand(1, 3, 9, 10)
    with torch.no_grad():
        full = model(x)
        half = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(
        half.float(), full, atol=5e-2 * max(1.0, full.abs().max().item()), rtol=0
    )
