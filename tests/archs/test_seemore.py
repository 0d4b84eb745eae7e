"""SeemoRe: the official layout against spandrel on identical random weights (sizes on and off
the aggregation's multiple, batches routed per image), detection from bare state dicts,
parameter counts of the authors' configurations, torch.compile capture and bfloat16.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs.seemore import SeemoRe, detect_seemore, expert_ranks
from srzoo.errors import ArgumentError
from srzoo.registry import Shapes

from ..util import NARROW, TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_

# Upstream needs 4 ** recursive pixels a side: 16 is the smallest (a multiple of 4), 19x17 none.
SIZES = [(19, 17), (16, 16)]

# Small configurations of each registered shape: SeemoRe-T/-B's (shuffle, two aggregation
# steps, three experts of ranks 2, 4, 8), SeemoRe-L's (no shuffle, one step), and the other
# rank rules with two experts chosen per image.
CONFIGS: dict[str, list[dict[str, Any]]] = {
    "seemore": [
        {"num_layers": 2, "embedding_dim": 12},
        {"num_layers": 1, "embedding_dim": 8, "num_experts": 4, "lr_space": "linear", "topk": 2},
    ],
    "seemore-b": [
        {"num_layers": 2, "embedding_dim": 8, "global_kernel_size": 7},
        {"num_layers": 1, "embedding_dim": 8, "num_experts": 3, "lr_space": "double"},
    ],
    "seemore-l": [
        {"num_layers": 2, "embedding_dim": 8},
        {"num_layers": 1, "embedding_dim": 12, "num_experts": 2, "topk": 2},
    ],
}
CASES = [(name, i) for name, configs in CONFIGS.items() for i in range(len(configs))]


def _ref(name: str, scale: int, **config: Any) -> nn.Module:
    """spandrel's SeemoRe (the upstream code) in the variant's configuration."""
    arch = pytest.importorskip("spandrel.architectures.SeemoRe")
    model: nn.Module = arch.SeemoRe(scale=scale, **{**srzoo.model_info(name).defaults, **config})
    return model


def _per_image(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    # Upstream's inference routes the whole batch by the first image's choice (and fails for
    # top-2); one image at a time is what it computes correctly.
    return torch.cat([model(x[i : i + 1]) for i in range(x.shape[0])])


def _spandrel_detected(path: Path) -> nn.Module:
    spandrel = pytest.importorskip("spandrel")
    model: nn.Module = spandrel.ModelLoader().load_from_file(path).model
    return model


# --------------------------------------------------------------------------------------------
# Against spandrel
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("name", "index"), CASES)
def test_official_layout_matches_spandrel(
    tmp_path: Path, name: str, index: int, size: tuple[int, int]
) -> None:
    config = CONFIGS[name][index]
    scale = 2 + (index + len(name)) % 3
    # spandrel's own detection assumes the shuffle, two steps and top-1 (SeemoRe-T/-B), as the
    # authors' T and B files are: check it there.
    detect = _spandrel_detected if name != "seemore-l" and "topk" not in config else None
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        _ref(name, scale, **config),
        overrides=config,
        container=lambda sd: {"params": sd},
        run_reference=_per_image,
        reload_reference=detect,
        seed=scale + index,
        size=size,
        atol=1e-4,
        relative=True,
    )


def test_training_mode_matches_upstreams_batched_path() -> None:
    # In training mode upstream weights every expert (zero where not chosen) over the batch,
    # which is what srzoo computes in both modes.
    config = CONFIGS["seemore"][0]
    ref = randomize_(_ref("seemore", 3, **config), seed=5).train()
    ours = SeemoRe(scale=3, **{**srzoo.model_info("seemore").defaults, **config}).train()
    ours.load_state_dict(ref.state_dict())
    x = torch.rand(3, 3, 18, 21, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.eval()(x), ref(x), atol=1e-5, rtol=1e-5)


def test_small_inputs_pad_to_the_aggregation_size() -> None:
    # Below 4 ** recursive pixels upstream has nothing to aggregate; srzoo reflect-pads to it,
    # so the result is the padded image's, cropped.
    model = _tiny(3)
    assert model.min_size == 16
    x = torch.rand(1, 3, 5, 16, generator=torch.Generator().manual_seed(4))
    # Rows 0..4 reflected without repeating the edge: 0 1 2 3 4 3 2 1 0 1 ...
    rows = torch.tensor([0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1])
    padded = x[:, :, rows]
    with torch.no_grad():
        got = model(x)
        want = model(padded)[..., :15, :]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for size in ((1, 1), (7, 9), (17, 3)):
        with torch.no_grad():
            assert model(torch.rand(1, 3, *size)).shape == (1, 3, size[0] * 3, size[1] * 3)


# --------------------------------------------------------------------------------------------
# Detection
# --------------------------------------------------------------------------------------------

GRID: list[tuple[str, int, dict[str, Any]]] = [
    ("seemore", 2, {"num_layers": 2, "embedding_dim": 8}),
    ("seemore", 3, {"num_layers": 1, "embedding_dim": 8, "num_experts": 4, "lr_space": "linear"}),
    ("seemore", 4, {"num_layers": 3, "embedding_dim": 4, "global_kernel_size": 5}),
    ("seemore-l", 4, {"num_layers": 16, "embedding_dim": 48, "num_experts": 1}),
]


@pytest.mark.parametrize(("name", "scale", "config"), GRID)
def test_detected_from_a_bare_state_dict(
    tmp_path: Path, name: str, scale: int, config: dict[str, Any]
) -> None:
    args = {**srzoo.model_info(name).defaults, **config}
    model = randomize_(SeemoRe(scale=scale, **args), seed=scale).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    pth, st = tmp_path / "seemore.pth", tmp_path / "seemore.safetensors"
    torch.save(state, pth)
    save_file(state, str(st))
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x)
    for path in (pth, st):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout) == (
            "seemore",
            name,
            scale,
            "official",
        )
        assert dict(found.model_args) == args
        loaded = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), want, atol=1e-5, rtol=1e-5)


def test_detection_reads_the_rank_rule_and_needs_the_whole_signature() -> None:
    def shapes_of(model: nn.Module) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in model.state_dict().items()}

    with torch.device("meta"):
        shapes = shapes_of(SeemoRe(scale=2, embedding_dim=8, num_layers=2, num_experts=3))
        double = shapes_of(SeemoRe(embedding_dim=8, num_experts=3, lr_space="double"))
    found = detect_seemore(Shapes(shapes))
    assert found is not None and found.model_args["lr_space"] == "exp" and found.scale == 2
    found = detect_seemore(Shapes(double))
    assert found is not None and found.model_args["lr_space"] == "double"
    for key in ("upsampler.0.weight", "conv_1.weight", "body.0.global_block.ffn.gate.weight"):
        assert detect_seemore(Shapes({k: s for k, s in shapes.items() if k != key})) is None
    # A gap in the groups is an incomplete file, not a smaller network.
    gap = {k: s for k, s in shapes.items() if not k.startswith("body.0.")}
    assert detect_seemore(Shapes(gap)) is None
    # Ranks no rule gives are not a SeemoRe srzoo can build.
    odd = dict(shapes)
    odd["body.0.local_block.block.moe_layer.experts.1.conv_1.weight"] = (5, 8, 1, 1)
    assert detect_seemore(Shapes(odd)) is None


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

# spandrel's parameters at the authors' configurations; the paper's Table 1 lists SeemoRe-T
# at 220K, 225K and 232K.
COUNTS = {
    "seemore": {2: 220_104, 3: 224_979, 4: 231_804},
    "seemore-b": {2: 490_364, 3: 496_859, 4: 505_952},
    "seemore-l": {2: 953_308, 3: 959_803, 4: 968_896},
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_equal_spandrels(name: str) -> None:
    info = srzoo.model_info(name)
    for scale, count in COUNTS[name].items():
        with torch.device("meta"):
            ref = _ref(name, scale)
            ours = info.build(scale)
        assert set(ours.state_dict()) == set(ref.state_dict())
        assert sum(p.numel() for p in ref.parameters()) == count
        assert info.num_params(scale) == count


def test_registry_entries() -> None:
    shapes = {
        "seemore": (6, 36, True, 2),
        "seemore-b": (8, 48, True, 2),
        "seemore-l": (16, 48, False, 1),
    }
    for name, (layers, dim, shuffle, recursive) in shapes.items():
        info = srzoo.model_info(name)
        assert info.family == "seemore" and info.task == "psnr" and info.colour == "rgb"
        assert info.paper.arxiv == "2402.03412" and info.code_license == "Apache-2.0"
        assert info.scales == (2, 3, 4) and info.scale == 4 and info.size_multiple == 1
        # The authors' files are on Google Drive only, without a digest.
        assert info.weights == ()
        d = info.defaults
        assert (d["num_layers"], d["embedding_dim"], d["use_shuffle"], d["recursive"]) == (
            layers,
            dim,
            shuffle,
            recursive,
        )
        assert (d["num_experts"], d["lr_space"], d["topk"], d["global_kernel_size"]) == (
            3,
            "exp",
            1,
            11,
        )


# --------------------------------------------------------------------------------------------
# torch.compile, bfloat16, the module
# --------------------------------------------------------------------------------------------


def _tiny(scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create("seemore", scale, **TINY["seemore"]), seed=1).eval()


def test_no_graph_breaks_at_two_sizes() -> None:
    # 13x21 pads to the aggregation size, 24x20 does not.
    assert_no_graph_breaks(_tiny(), ((13, 21), (24, 20)))


def test_bfloat16_forward() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 19, 17, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), expected, atol=5e-2, rtol=0)


def test_contract_attributes_and_tiny_entries() -> None:
    with torch.device("meta"):
        model = srzoo.model_info("seemore-l").build(4)
    assert model.receptive_field is None and model.min_size == 4
    assert (model.scale, model.in_channels, model.out_channels) == (4, 3, 3)
    for name in COUNTS:
        assert set(NARROW[name]) == {"embedding_dim"}
        assert TINY[name]["topk"] == TINY[name]["num_experts"]  # every expert gets a gradient


def test_expert_ranks() -> None:
    assert expert_ranks(4, "exp") == [2, 4, 8, 16]
    assert expert_ranks(4, "linear") == [2, 3, 4, 5]
    assert expert_ranks(4, "double") == [2, 4, 6, 8]


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ArgumentError, match="in_chans"):
        SeemoRe(in_chans=1)
    with pytest.raises(ArgumentError, match="topk"):
        SeemoRe(num_experts=2, topk=3)
    with pytest.raises(ArgumentError, match="lr_space"):
        SeemoRe(lr_space="cubic")  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="odd"):
        SeemoRe(global_kernel_size=10)
    with pytest.raises(ArgumentError, match="num_layers"):
        SeemoRe(num_layers=0)
