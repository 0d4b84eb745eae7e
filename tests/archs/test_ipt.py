"""IPT: parameter counts, the official layout against spandrel on identical random weights (its
chopped forward at sizes on and off the chop's stride, and its own detection of the same
files), multi-task files read at each task's scale, the converter, the chop's blend weights,
detection from a bare state dict, compile capture and bfloat16.

huawei-noah/Pretrained-IPT's files and spandrel's state dicts share one key layout (spandrel's
``mlp=True`` is upstream's default, ``--no_mlp`` off). spandrel runs the authors' chop
(``Model.forward_chop``) on one image at a time (it mixes the images of a batch) and refuses
sides shorter than the patch: the reference runs each image alone and, for those sizes,
reflect-pads it to the patch and crops, as srzoo does.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo.archs._blocks import DIV2K_RGB_MEAN
from srzoo.archs.ipt import IPT, chop_weights, convert_ipt, detect_ipt
from srzoo.errors import ArgumentError, IncompatibleWeightsError, UnsupportedScaleError
from srzoo.registry import Shapes

from ..util import TINY, assert_loads_correctly, assert_no_graph_breaks, randomize_


def _spandrel_ipt(monkeypatch: pytest.MonkeyPatch | None = None, **config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.IPT")
    if monkeypatch is not None:
        # spandrel's mean shifts are built from CPU tensors, which the meta device refuses;
        # a plain 1x1 convolution has their parameters.
        module = importlib.import_module("spandrel.architectures.IPT.__arch.ipt")
        monkeypatch.setattr(module, "MeanShift", lambda rgb_range, sign=-1: nn.Conv2d(3, 3, 1))
    model: nn.Module = arch.IPT(**config)
    return model


def _chopped(task: int) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """spandrel's call (the authors' chop, on 0..255) with task ``task``, image by image."""

    def run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        chop = importlib.import_module("spandrel.architectures.IPT.__arch.model").Model(module)
        p, rgb = int(module.patch_size), float(module.rgb_range)
        outs = []
        for image in x.split(1):
            h, w = image.shape[-2:]
            padded = F.pad(image, (0, max(p - w, 0), 0, max(p - h, 0)), mode="reflect")
            y = chop.forward(padded * rgb, task) / rgb
            s = y.shape[-1] // padded.shape[-1]
            outs.append(y[..., : h * s, : w * s])
        return torch.cat(outs)

    return run


def _spandrel_detected(path: Path) -> nn.Module:
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

# Parameters: 115.6M at x4, as spandrel's module has. The registry counts the state dict, which
# also holds the 256 position ids (16 x 16 tokens).
PARAMS = {2: 115_460_443, 3: 115_645_083, 4: 115_608_155}
POSITION_IDS = 256


@pytest.mark.parametrize("scale", sorted(PARAMS))
def test_parameter_counts_of_the_official_configuration(
    scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = srzoo.model_info("ipt")
    assert info.num_params(scale) == PARAMS[scale] + POSITION_IDS
    with torch.device("meta"):
        ref = _spandrel_ipt(monkeypatch, scale=[scale])
        ours = info.build(scale)
    assert sum(p.numel() for p in ref.parameters()) == PARAMS[scale]
    assert sum(p.numel() for p in ours.parameters()) == PARAMS[scale]
    # Every tensor has the official name and shape.
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in ref.state_dict().items()
    }


def test_registry_entry() -> None:
    info = srzoo.model_info("ipt")
    assert info.family == "ipt" and info.colour == "rgb" and info.task == "psnr"
    assert info.scales == (2, 3, 4) and info.scale == 4 and info.size_multiple == 1
    assert info.paper.arxiv == "2012.00364" and info.paper.year == 2021
    assert info.code_license == "Apache-2.0"
    # Published only on Google Drive and Baidu: nothing registered (the docstring says why).
    assert info.weights == ()
    model = info.build(2, **TINY["ipt"])
    assert model.receptive_field is None and model.task_scales == (2,) and model.task == 0


def test_bad_arguments() -> None:
    with pytest.raises(ArgumentError, match="multiple of 4"):
        IPT(patch_size=30)
    with pytest.raises(ArgumentError, match="patch_dim"):
        IPT(patch_size=48, patch_dim=5)
    with pytest.raises(ArgumentError, match="divide"):
        IPT(n_feats=4, num_heads=5)
    with pytest.raises(UnsupportedScaleError):
        IPT(scale=3, task_scales=(2, 4))
    with pytest.raises(ArgumentError, match="sub-pixel"):
        IPT(scale=5, n_feats=4, num_heads=2)


# --------------------------------------------------------------------------------------------
# The official layout against spandrel
# --------------------------------------------------------------------------------------------

# Small patches (8 or 12: strides 2 and 3) so that small images take many patches; each
# configuration switches one of upstream's options. 12 heads, the only count spandrel's loader
# (and srzoo's detector) knows.
SMALL: dict[int, dict[str, Any]] = {
    2: {"patch_size": 8, "patch_dim": 2, "n_feats": 3, "num_heads": 12, "num_layers": 2},
    3: {"patch_size": 12, "patch_dim": 3, "n_feats": 4, "num_heads": 12, "num_layers": 1},
    4: {"patch_size": 8, "patch_dim": 2, "n_feats": 6, "num_heads": 12, "num_layers": 1},
}
OPTIONS: dict[int, dict[str, Any]] = {2: {}, 3: {"no_norm": True}, 4: {"no_pos": True}}


# 13x11 is off the chop's stride (an edge-flush row and column), 16x16 on it; 5x9 is shorter
# than the patch (padded).
LAYOUT_CASES = [(2, (13, 11)), (2, (5, 9)), (3, (16, 16))]
OTHER_LAYOUT_CASES = [(2, (16, 16)), (3, (13, 11)), (4, (13, 11)), (4, (16, 16))]


@pytest.mark.parametrize(
    ("scale", "size"),
    [*LAYOUT_CASES, *(pytest.param(*case, marks=pytest.mark.slow) for case in OTHER_LAYOUT_CASES)],
)
def test_official_layout_matches_spandrel(
    tmp_path: Path, scale: int, size: tuple[int, int]
) -> None:
    config = {**SMALL[scale], **OPTIONS[scale]}
    assert_loads_correctly(
        tmp_path,
        "ipt",
        scale,
        _spandrel_ipt(scale=[scale], **config),
        overrides=config,
        safetensors=size == (16, 16),
        run_reference=_chopped(0),
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


@pytest.mark.parametrize("scale", [3, pytest.param(2, marks=pytest.mark.slow), 4])
def test_spandrel_and_srzoo_detect_the_same_official_file(tmp_path: Path, scale: int) -> None:
    # An official file holds the authors' mean shifts (spandrel reads rgb_range from them);
    # everything else random.
    ref = randomize_(_spandrel_ipt(scale=[scale], **SMALL[scale], **OPTIONS[scale]), seed=scale)
    with torch.no_grad():
        for layer, sign in ((ref.sub_mean, -1), (ref.add_mean, 1)):
            layer.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            layer.bias.copy_(sign * 255.0 * torch.tensor(DIV2K_RGB_MEAN))
    path = tmp_path / f"IPT_sr{scale}.pth"
    torch.save(ref.eval().state_dict(), path)
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(scale))
    with torch.no_grad():
        expected = _chopped(0)(ref, x)
        again = _chopped(0)(_spandrel_detected(path).eval(), x)
        ours = srzoo.load_file(path)(x)
    bound = 1e-4 * max(1.0, expected.abs().max().item())
    assert (again - expected).abs().max().item() <= bound
    assert (ours - expected).abs().max().item() <= bound


def test_pos_every_and_another_range_match_spandrel(tmp_path: Path) -> None:
    # Neither is in the weights' shapes: srzoo takes them as arguments.
    config = {**SMALL[2], "pos_every": True, "rgb_range": 1.0, "mlp": False}
    ref = _spandrel_ipt(scale=[2], **config)
    assert_loads_correctly(
        tmp_path,
        "ipt",
        2,
        ref,
        overrides=config,
        run_reference=_chopped(0),
        seed=7,
        size=(14, 9),
        atol=1e-4,
        relative=True,
    )


@pytest.mark.slow
def test_full_size_matches_spandrel(tmp_path: Path) -> None:
    # The released configuration: 48x48 patches, 64x50 takes nine of them.
    ref = _spandrel_ipt(scale=[4])
    assert_loads_correctly(
        tmp_path,
        "ipt",
        4,
        ref,
        safetensors=False,
        run_reference=_chopped(0),
        seed=11,
        size=(64, 50),
        atol=1e-4,
        relative=True,
    )


# --------------------------------------------------------------------------------------------
# Files with several tasks
# --------------------------------------------------------------------------------------------

TASKS = (2, 3, 4)


def _multi_task(tmp_path: Path) -> tuple[nn.Module, Path]:
    ref = _spandrel_ipt(scale=list(TASKS), num_queries=len(TASKS), **SMALL[2])
    randomize_(ref, seed=3).eval()
    path = tmp_path / "ipt_tasks.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


@pytest.mark.parametrize(
    ("index", "scale"),
    [(1, 3), *(pytest.param(i, s, marks=pytest.mark.slow) for i, s in ((0, 2), (2, 4)))],
)
def test_a_multi_task_file_loads_at_each_scale(tmp_path: Path, index: int, scale: int) -> None:
    ref = _spandrel_ipt(scale=list(TASKS), num_queries=len(TASKS), **SMALL[2])
    model = assert_loads_correctly(
        tmp_path,
        "ipt",
        scale,
        ref,
        overrides={**SMALL[2], "task_scales": TASKS},
        run_reference=_chopped(index),
        safetensors=False,
        seed=3,
        size=(10, 13),
        atol=1e-4,
        relative=True,
    )
    assert model.task == index
    assert model.state_dict()["body.query_embed.weight"].shape[0] == 1


def test_a_multi_task_file_is_detected_with_its_scales(tmp_path: Path) -> None:
    ref, path = _multi_task(tmp_path)
    found = srzoo.detect(path)
    assert (found.name, found.scale, found.scales) == ("ipt", 2, TASKS)
    assert found.model_args["task_scales"] == TASKS
    x = torch.rand(1, 3, 9, 11)
    model = srzoo.load_file(path, scale=3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _chopped(1)(ref, x), atol=1e-5, rtol=1e-4)


def test_a_missing_task_embedding_fails_loudly(tmp_path: Path) -> None:
    # Three heads but one task embedding: upstream would fail on task 1 as well.
    ref = _spandrel_ipt(scale=list(TASKS), num_queries=1, **SMALL[2])
    net = IPT(scale=3, task_scales=TASKS, **SMALL[2])
    with pytest.raises(IncompatibleWeightsError, match="query_embed"):
        convert_ipt(ref.state_dict(), net)


def test_converter_checks_the_position_ids_and_keeps_own_layout() -> None:
    ref = _spandrel_ipt(scale=[3], **SMALL[3]).state_dict()
    net = IPT(scale=3, **SMALL[3])
    converted = convert_ipt(ref, net)
    assert set(converted) == set(net.state_dict())
    assert all(converted[k] is ref[k] for k in converted)
    own = net.state_dict()
    assert convert_ipt(own, net).keys() == own.keys()
    # Position ids of another patch size are refused, by name.
    other = {**ref, "body.position_encoding.position_ids": torch.arange(9).unsqueeze(0)}
    with pytest.raises(IncompatibleWeightsError, match="position_ids"):
        convert_ipt(other, net)
    # A file without them gets them.
    del other["body.position_encoding.position_ids"]
    assert torch.equal(
        convert_ipt(other, net)["body.position_encoding.position_ids"],
        ref["body.position_encoding.position_ids"],
    )


# --------------------------------------------------------------------------------------------
# The chop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("patch", [8, 48])
@pytest.mark.parametrize("scale", [2, 3])
def test_the_blend_weights_sum_to_one_everywhere(patch: int, scale: int) -> None:
    # Every output pixel is a weighted mean of the patches covering it, for every size from
    # one patch to three strides beyond, on and off the stride.
    stride = patch // 4
    for n in range(patch, patch + 3 * stride + 1):
        rows, cols, top = chop_weights(n, n, patch, scale, torch.device("cpu"), torch.float64)
        starts = list(range(0, n - patch + 1, stride))
        if (n - patch) % stride:
            starts.append(n - patch)
        assert rows.shape == cols.shape == top.shape == (len(starts), patch * scale)
        for w in (rows, cols, top):
            assert bool((w >= 0).all())
            total = torch.zeros(n * scale, dtype=torch.float64)
            for start, weight in zip(starts, w, strict=True):
                total[start * scale : (start + patch) * scale] += weight
            torch.testing.assert_close(total, torch.ones_like(total))


def test_images_of_a_batch_are_chopped_alone_in_any_patch_batches() -> None:
    model = randomize_(srzoo.create("ipt", 2, **TINY["ipt"]), seed=1).eval()
    x = torch.rand(3, 3, 13, 19)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(image) for image in x.split(1)])
        model.crop_batch_size = 7  # 3 x 6 x 8 patches in 21 batches, the last one short
        batched = model(x)
    torch.testing.assert_close(together, alone, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(batched, together, atol=1e-6, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Detection from a bare state dict
# --------------------------------------------------------------------------------------------

DETECT_GRID: list[tuple[int, dict[str, Any]]] = [
    (2, {"patch_size": 8, "patch_dim": 2, "n_feats": 3, "num_layers": 2}),
    (3, {"patch_size": 12, "patch_dim": 3, "n_feats": 4, "num_layers": 1, "no_norm": True}),
    # The patch from the task embedding's width (no position embedding) ...
    (4, {"patch_size": 8, "patch_dim": 1, "n_feats": 12, "num_layers": 1, "no_pos": True}),
    # ... or from the position embedding's rows (no task embedding); a x1 (denoising) head.
    (1, {"patch_size": 4, "patch_dim": 2, "n_feats": 3, "num_layers": 1, "mlp": False}),
]


@pytest.mark.parametrize(
    ("scale", "config"),
    [*DETECT_GRID[2:], *(pytest.param(*case, marks=pytest.mark.slow) for case in DETECT_GRID[:2])],
)
def test_bare_state_dicts_are_detected(tmp_path: Path, scale: int, config: dict[str, Any]) -> None:
    original = randomize_(IPT(scale=scale, **config), seed=scale).eval()
    built = {**(IPT.__init__.__kwdefaults__ or {}), **config}
    x = torch.rand(1, 3, 9, 14)
    with torch.no_grad():
        expected = original(x)
    state = {k: v.contiguous() for k, v in original.state_dict().items()}
    torch.save(state, tmp_path / "bare.pth")
    save_file(state, str(tmp_path / "bare.safetensors"))
    for path in (tmp_path / "bare.pth", tmp_path / "bare.safetensors"):
        found = srzoo.detect(path)
        assert (found.family, found.name, found.scale, found.layout, found.scales) == (
            "ipt",
            "ipt",
            scale,
            "official",
            (),
        )
        for key, value in found.model_args.items():
            assert value == built[key], key
        model = srzoo.load_file(path)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def test_other_files_are_not_ipt() -> None:
    state = _spandrel_ipt(scale=[2], **SMALL[2]).state_dict()
    shapes = {k: v.shape for k, v in state.items()}
    assert detect_ipt(Shapes(shapes)) is not None
    # A head that is not RGB, or a decoder shorter than the encoder, is not an IPT.
    assert detect_ipt(Shapes({**shapes, "head.0.0.weight": (4, 1, 3, 3)})) is None
    del shapes["body.decoder.layers.1.linear1.weight"]
    assert detect_ipt(Shapes(shapes)) is None
    edsr = srzoo.create("edsr", 2, n_resblocks=1, n_feats=8).state_dict()
    assert detect_ipt(Shapes({k: v.shape for k, v in edsr.items()})) is None


# --------------------------------------------------------------------------------------------
# Compile, bfloat16
# --------------------------------------------------------------------------------------------


def _tiny(scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create("ipt", scale, **TINY["ipt"]), seed=1).eval()


def test_fullgraph_capture_without_graph_breaks_at_two_sizes() -> None:
    # 13x11: an edge-flush row and column; 16x24: the grid alone.
    assert_no_graph_breaks(_tiny(), ((13, 11), (16, 24)))


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = _tiny()
    x = torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and bool(torch.isfinite(got).all())
    assert (got.float() - expected).abs().max().item() < 0.05 * max(1.0, expected.abs().max())
