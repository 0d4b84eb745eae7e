"""Swin2SR: the four registered variants against spandrel on identical random weights (spandrel's
Swin2SR keys are mv-lab/swin2sr's), parameter counts, the ``transformers`` layout, compilation,
bfloat16 and tiling.

spandrel's model stores tables that follow from the configuration (relative position indices,
log-spaced coordinates, shift masks) as buffers, which the random weights overwrite; the
reference is run with them restored, while the checkpoint keeps the overwritten copies: srzoo
must ignore them.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs._window import pad_to_multiple
from srzoo.archs.swin2sr import Swin2SR, convert_swin2sr

from ..util import TINY, assert_loads_correctly, randomize_

NAMES = ("swin2sr", "swin2sr-light", "swin2sr-real", "swin2sr-compressed")
UPSAMPLER = {
    "swin2sr": "pixelshuffle",
    "swin2sr-light": "pixelshuffledirect",
    "swin2sr-real": "nearest+conv",
    "swin2sr-compressed": "pixelshuffle_aux",
}
# The released configurations, as mv-lab/swin2sr's main_test_swin2sr.py builds them.
OFFICIAL: dict[str, dict[str, Any]] = {
    name: {
        "embed_dim": 60 if name == "swin2sr-light" else 180,
        "depths": [6] * (4 if name == "swin2sr-light" else 6),
        "num_heads": [6] * (4 if name == "swin2sr-light" else 6),
        "window_size": 8,
        "mlp_ratio": 2.0,
        "img_range": 1.0,
        "resi_connection": "1conv",
        "upsampler": UPSAMPLER[name],
        "img_size": 48 if name == "swin2sr-compressed" else 64,
    }
    for name in NAMES
}
# Small configurations: two residual groups of different depth and head count.
# Every (model, scale) with released weights.
RELEASED = [
    ("swin2sr", 2),
    ("swin2sr", 4),
    ("swin2sr-light", 2),
    ("swin2sr-real", 4),
    ("swin2sr-compressed", 4),
]
SMALL: dict[str, Any] = {"embed_dim": 12, "depths": (2, 3), "num_heads": (2, 3)}
DERIVED = ("relative_coords_table", "attn_mask")


def _ref_swin2sr(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.Swin2SR")
    model: nn.Module = arch.Swin2SR(**config)
    return model


def _restore_tables(reference: nn.Module, config: dict[str, Any]) -> None:
    """Put back the configuration's tables that ``randomize_`` overwrote in the reference."""
    fresh = _ref_swin2sr(**config).state_dict()
    with torch.no_grad():
        for key, value in reference.state_dict().items():
            if key.endswith(DERIVED):
                value.copy_(fresh[key])


def _runner(
    config: dict[str, Any], *, pad: bool = False
) -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """Runs the reference with its tables restored; with ``pad``, on the input reflect-padded
    to the window and cropped after, as the authors' test script calls the network."""

    def run(reference: nn.Module, x: torch.Tensor) -> torch.Tensor:
        _restore_tables(reference, config)
        if not pad:
            y: torch.Tensor = reference(x)
            return y
        s = config["upscale"]
        out: torch.Tensor = reference(pad_to_multiple(x, config["window_size"]))
        return out[..., : x.shape[-2] * s, : x.shape[-1] * s]

    return run


def _wrapper(name: str) -> Callable[[dict[str, torch.Tensor]], object]:
    # main_test_swin2sr.py reads 'params_ema' for the real-world model, 'params' otherwise.
    key = "params_ema" if name == "swin2sr-real" else "params"
    return lambda state: {key: state}


# --------------------------------------------------------------------------------------------
# Parameter counts of the released configurations
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scale"),
    RELEASED,
)
def test_parameter_counts_match_spandrel(
    name: str, scale: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # spandrel's constructor reads its stochastic-depth rates with .item(), which the meta
    # device cannot answer: those few numbers are made on the CPU, everything else on meta.
    linspace = torch.linspace
    monkeypatch.setattr(torch, "linspace", lambda *a, **k: linspace(*a, **{**k, "device": "cpu"}))
    with torch.device("meta"):
        ref = _ref_swin2sr(upscale=scale, **OFFICIAL[name])
    # Parameters only: spandrel's buffers are the tables srzoo computes.
    expected = sum(p.numel() for p in ref.parameters())
    assert srzoo.model_info(name).num_params(scale) == expected
    if name == "swin2sr-light":
        assert abs(expected - 1_000_000) < 10_000  # "1000K" in the paper's Table 4
    if name == "swin2sr" and scale == 4:
        assert 11.5e6 < expected < 12.5e6  # "only 12M parameters" (Section 4.2)


# --------------------------------------------------------------------------------------------
# The official layout against spandrel
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "scale", "size"),
    [
        ("swin2sr", 2, (13, 11)),
        ("swin2sr", 3, (16, 16)),
        ("swin2sr", 4, (16, 16)),
        ("swin2sr-light", 2, (13, 11)),
        ("swin2sr-light", 2, (16, 16)),
        ("swin2sr-real", 4, (13, 11)),
        ("swin2sr-real", 4, (16, 16)),
        ("swin2sr-compressed", 4, (13, 11)),
        ("swin2sr-compressed", 4, (16, 16)),
    ],
)
def test_matches_spandrel(tmp_path: Path, name: str, scale: int, size: tuple[int, int]) -> None:
    config = {**OFFICIAL[name], **SMALL, "upscale": scale}
    # The compressed-input head's bicubic skip: spandrel (like the upstream network) squeezes
    # the padded input into the unpadded output size; srzoo enlarges the padded input and crops,
    # which is what the authors' test script computes (it pads before calling the network).
    pad = name == "swin2sr-compressed" and size[0] % 8 + size[1] % 8 > 0
    assert_loads_correctly(
        tmp_path,
        name,
        scale,
        _ref_swin2sr(**config),
        overrides=SMALL,
        container=_wrapper(name),
        run_reference=_runner(config, pad=pad),
        seed=scale,
        size=size,
        atol=1e-4,
        relative=True,
    )


def test_compressed_head_differs_from_spandrel_only_by_the_padding(tmp_path: Path) -> None:
    # Where no padding is needed the two agree (test above); where it is, spandrel's bicubic
    # skip is stretched by the padding, so the bottom-right of its output is shifted.
    config = {**OFFICIAL["swin2sr-compressed"], **SMALL, "upscale": 4}
    ref = randomize_(_ref_swin2sr(**config)).eval()
    state = {k: v.clone() for k, v in ref.state_dict().items()}
    _restore_tables(ref, config)
    path = tmp_path / "compressed.pth"
    torch.save({"params": state}, path)
    model = srzoo.load("swin2sr-compressed", 4, weights=path, **SMALL)
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(x)
        stretched = ref(x)
        aligned = ref(pad_to_multiple(x, 8))[..., : 13 * 4, : 11 * 4]
    torch.testing.assert_close(ours, aligned, atol=1e-5, rtol=1e-5)
    assert (ours - stretched).abs().max() > 1e-3


@pytest.mark.slow
def test_full_size_matches_spandrel(tmp_path: Path) -> None:
    # The released classical configuration at full width, on one window.
    config = {**OFFICIAL["swin2sr"], "upscale": 2}
    assert_loads_correctly(
        tmp_path,
        "swin2sr",
        2,
        _ref_swin2sr(**config),
        container=_wrapper("swin2sr"),
        run_reference=_runner(config),
        safetensors=False,
        seed=5,
        size=(8, 8),
        atol=1e-4,
        relative=True,
    )


def test_derived_tables_of_another_training_size_are_ignored() -> None:
    # The compressed-SR file was trained on 48x48 patches: its shift masks have another shape.
    model = Swin2SR(scale=4, upsampler="pixelshuffle_aux", **SMALL)
    ref = _ref_swin2sr(**{**OFFICIAL["swin2sr-compressed"], **SMALL, "upscale": 4})
    state = ref.state_dict()
    assert state["layers.0.residual_group.blocks.1.attn_mask"].shape[0] == 36
    converted = convert_swin2sr(dict(state), model)
    assert not any(k.endswith((*DERIVED, "relative_position_index")) for k in converted)
    assert set(converted) == set(model.state_dict())


# --------------------------------------------------------------------------------------------
# The transformers layout (caidas/swin2SR-* on the Hub)
# --------------------------------------------------------------------------------------------


def _to_transformers(state: dict[str, torch.Tensor], upsampler: str) -> dict[str, torch.Tensor]:
    """The official layout -> ``Swin2SRForImageSuperResolution``'s keys.

    Written from transformers' ``convert_swin2sr_original_to_pytorch.py`` (``rename_key`` and
    the q / k / v split), with the x3 stage named as in ``modeling_swin2sr.Upsample``.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith((*DERIVED, "relative_position_index")):
            continue  # transformers keeps these as non-persistent buffers
        if key.endswith("attn.qkv.weight"):
            stem = key.replace("layers", "swin2sr.encoder.stages", 1)
            stem = stem.replace("residual_group.blocks", "layers").replace("attn.qkv.weight", "")
            dim = value.shape[0] // 3
            for i, part in enumerate(("query", "key", "value")):
                out[f"{stem}attention.self.{part}.weight"] = value[i * dim : (i + 1) * dim]
            continue
        out[_hf_name(key, upsampler)] = value
    return out


def _hf_name(name: str, upsampler: str) -> str:
    if "patch_embed.proj" in name and "layers" not in name:
        name = name.replace("patch_embed.proj", "embeddings.patch_embeddings.projection")
    name = name.replace("patch_embed.norm", "embeddings.patch_embeddings.layernorm")
    name = name.replace("layers", "encoder.stages").replace("residual_group.blocks", "layers")
    name = name.replace("attn.proj", "attention.output.dense").replace("attn", "attention.self")
    name = name.replace("norm1", "layernorm_before").replace("norm2", "layernorm_after")
    name = name.replace("mlp.fc1", "intermediate.dense").replace("mlp.fc2", "output.dense")
    name = name.replace("q_bias", "query.bias").replace("v_bias", "value.bias")
    name = name.replace("cpb_mlp", "continuous_position_bias_mlp")
    name = name.replace("patch_embed.proj", "patch_embed.projection")
    if name in ("norm.weight", "norm.bias"):
        name = "layer" + name
    name = name.replace("conv_first", "first_convolution")
    heads = ("upsample", "conv_before_upsample", "conv_bicubic", "conv_up", "conv_hr")
    if any(h in name for h in (*heads, "conv_last", "aux")):
        name = name.replace("conv_last", "final_convolution")
        if upsampler == "pixelshuffledirect":
            return name.replace("upsample.0.", "upsample.conv.")
        name = name.replace("conv_before_upsample.0", "conv_before_upsample")
        for i in (0, 1):
            name = name.replace(f"upsample.{2 * i}.", f"upsample.convolution_{i}.")
        return "upsample." + name
    return "swin2sr." + name


@pytest.mark.parametrize(
    ("name", "scale"),
    RELEASED,
)
def test_transformers_layout_loads_like_the_official_one(
    tmp_path: Path, name: str, scale: int
) -> None:
    config = {**OFFICIAL[name], **SMALL, "upscale": scale}
    state = randomize_(_ref_swin2sr(**config), seed=7).state_dict()
    hub = _to_transformers(state, UPSAMPLER[name])
    assert any(k.startswith("swin2sr.encoder.stages.1.layers.2.attention.self.") for k in hub)
    assert not any(re.search(r"(qkv|q_bias|cpb_mlp|norm1)", k) for k in hub)
    official_path, hub_path = tmp_path / "official.pth", tmp_path / "pytorch_model.bin"
    torch.save({"params": state}, official_path)
    torch.save(hub, hub_path)
    x = torch.rand(1, 3, 13, 11, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = srzoo.load(name, scale, weights=official_path, **SMALL)(x)
        got = srzoo.load(name, scale, weights=hub_path, **SMALL)(x)
    torch.testing.assert_close(got, expected, atol=0, rtol=0)


def test_transformers_x3_stage_is_converted() -> None:
    model = Swin2SR(scale=3, **SMALL)
    hub = {
        "upsample.upsample.convolution.weight": torch.zeros(576, 64, 3, 3),
        "upsample.upsample.convolution.bias": torch.zeros(576),
        "swin2sr.layernorm.weight": torch.ones(12),
    }
    converted = convert_swin2sr(hub, model)
    assert set(converted) == {"upsample.0.weight", "upsample.0.bias", "norm.weight"}


# --------------------------------------------------------------------------------------------
# Construction errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"upsampler": "pixelshuffle_hf"}, "upsampler must be one of"),
        ({"resi_connection": "2conv"}, "resi_connection"),
        ({"embed_dim": 10, "num_heads": (3, 3), "depths": (1, 1)}, "multiple of every"),
        ({"depths": (2, 2), "num_heads": (2,)}, "same length"),
        ({"window_size": 0}, "must be positive"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(srzoo.ArgumentError, match=message):
        Swin2SR(scale=2, **{**SMALL, **overrides})


def test_unsupported_scales_of_a_head_are_refused() -> None:
    with pytest.raises(srzoo.ArgumentError, match="x2 and x4"):
        Swin2SR(scale=3, upsampler="nearest+conv", **SMALL)
    with pytest.raises(srzoo.ArgumentError, match="scale 3 and powers of two"):
        Swin2SR(scale=5, upsampler="pixelshuffle", **SMALL)
    assert Swin2SR(scale=5, upsampler="pixelshuffledirect", **SMALL).scale == 5


# --------------------------------------------------------------------------------------------
# Registry entries
# --------------------------------------------------------------------------------------------


def test_registry_entries() -> None:
    defaults = {n: {w.scale for w in srzoo.model_info(n).weights} for n in NAMES}
    assert defaults == {
        "swin2sr": {2, 4},
        "swin2sr-light": {2},
        "swin2sr-real": {4},
        "swin2sr-compressed": {4},
    }
    assert srzoo.model_info("swin2sr-light").scale == 2
    assert srzoo.model_info("swin2sr-real").task == "real-world"
    for name in NAMES:
        info = srzoo.model_info(name)
        assert info.family == "swin2sr" and info.size_multiple == 8
        assert info.paper.arxiv == "2209.11345" and info.code_license == "Apache-2.0"
        for w in info.weights:
            # The authors' release is the default; the transformers copy is tagged "hf".
            if w.tag == "default":
                assert w.source.startswith("https://github.com/mv-lab/swin2sr/releases/")
            else:
                assert w.tag == "hf" and w.source.startswith("hf://caidas/swin2SR-")
            assert w.sha256 is not None or w.sha256_note
            assert w.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", w.sha256)
            assert all(m.scale == w.scale and m.source for m in w.metrics)


# --------------------------------------------------------------------------------------------
# Compilation, bfloat16, tiling
# --------------------------------------------------------------------------------------------


def _tiny(name: str = "swin2sr", scale: int = 2) -> nn.Module:
    return randomize_(srzoo.create(name, scale, **TINY[name]), seed=1).eval()


def test_no_graph_breaks_at_two_sizes() -> None:
    # The compressed-input head runs every path the others do, plus the bicubic skip.
    # (tests/archs/test_registry.py captures every registered variant with fullgraph=True.)
    model = _tiny("swin2sr-compressed", 4)
    torch._dynamo.reset()
    with torch.no_grad():
        for size in ((16, 16), (13, 21)):
            explained = torch._dynamo.explain(model)(torch.rand(1, 3, *size))
            assert explained.graph_break_count == 0, explained.break_reasons


def test_dynamic_compile_takes_a_new_tile_size_without_recompiling() -> None:
    model = _tiny()
    graphs: list[torch.fx.GraphModule] = []

    def backend(gm: torch.fx.GraphModule, _: Any) -> Callable[..., Any]:
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    compiled = torch.compile(model, backend=backend, dynamic=True, fullgraph=True)
    with torch.no_grad():
        # Tile-like sizes on one side of the CPU convolutions' algorithm switch (inputs below
        # about 20480 values choose another kernel, which guards any CNN's graph) and window
        # multiples (a size that needs padding takes a second graph, once).
        for size in ((64, 72), (72, 88), (80, 56)):
            x = torch.rand(1, 3, *size)
            torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
    assert len(graphs) == 1


def test_bfloat16_forward_is_finite_and_close() -> None:
    model = _tiny("swin2sr-compressed", 4)
    x = torch.rand(1, 3, 13, 19, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        got = model.to(torch.bfloat16)(x.to(torch.bfloat16))
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    scale = expected.abs().max()
    assert (got.float() - expected).abs().max() <= 0.05 * scale


def test_tiling_warns_and_stays_close() -> None:
    model = _tiny("swin2sr", 2)
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    whole = srzoo.upscale(model, x, tile=None)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tiled = srzoo.upscale(model, x, tile=32)
    assert any(issubclass(w.category, srzoo.TilingWarning) for w in record)
    assert tiled.shape == whole.shape == (3, 128, 128)
    diff = (tiled - whole).abs()
    # Shifted windows see the whole image: tiles change the output a little, not wildly.
    assert 0 < diff.max() < 0.5 and diff.mean() < 0.05
