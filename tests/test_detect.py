"""Detection: every family's checkpoints, in every layout srzoo loads, recognised from keys and
shapes alone; ``load_file`` reproducing the reference; the real checkpoints in ``../shared``;
malformed state dicts; agreement with spandrel; the registry's sha256 path; the specificity rule.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo
from srzoo import registry
from srzoo.archs._window import relative_position_index
from srzoo.archs.hat import overlap_position_index
from srzoo.detect import detect_file, read_shapes
from srzoo.errors import ArgumentError, ArgumentTypeError, IncompatibleWeightsError, WeightsError
from srzoo.registry import Detected, ModelSpec, Paper, Shapes, WeightSpec
from srzoo.weights.sources import PACKAGE_DATA

from .archs.reference_ntire import RefRLFN, RefSAFMNNTIRE
from .archs.test_esrgan import _basicsr as esrgan_basicsr
from .archs.test_esrgan import _kair as esrgan_kair
from .archs.test_swin2sr import _to_transformers as swin2sr_to_transformers
from .util import CHECKPOINTS, randomize_, require_shared

StateDict = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------
# Layouts: srzoo's keys -> each upstream layout the family's converter reads
# --------------------------------------------------------------------------------------------


def _rename(rules: list[tuple[str, str]]) -> Callable[[StateDict], StateDict]:
    def apply(state: StateDict) -> StateDict:
        out: StateDict = {}
        for key, value in state.items():
            for pattern, repl in rules:
                new, n = re.subn(f"^{pattern}", repl, key)
                if n:
                    key = new
                    break
            out[key] = value
        return out

    return apply


def _edsr_frame_to_basicsr(n_blocks: int, body: list[tuple[str, str]]) -> Callable[..., StateDict]:
    rename = _rename(
        [
            (r"head\.0\.", "conv_first."),
            (rf"body\.{n_blocks}\.", "conv_after_body."),
            *body,
            (r"tail\.0\.", "upsample."),
            (r"tail\.1\.", "conv_last."),
        ]
    )
    # BasicSR keeps the DIV2K mean as a constant, not a layer.
    return lambda s: rename({k: v for k, v in s.items() if "_mean" not in k})


def _edsr_basicsr(n: int) -> Callable[[StateDict], StateDict]:
    return _edsr_frame_to_basicsr(
        n,
        [
            (r"body\.(\d+)\.body\.0\.", r"body.\1.conv1."),
            (r"body\.(\d+)\.body\.2\.", r"body.\1.conv2."),
        ],
    )


def _rcan_basicsr(groups: int, blocks: int) -> Callable[[StateDict], StateDict]:
    return _edsr_frame_to_basicsr(
        groups,
        [
            (
                r"body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.0\.",
                r"body.\1.residual_group.\2.rcab.3.attention.1.",
            ),
            (
                r"body\.(\d+)\.body\.(\d+)\.body\.3\.conv_du\.2\.",
                r"body.\1.residual_group.\2.rcab.3.attention.3.",
            ),
            (rf"body\.(\d+)\.body\.{blocks}\.", r"body.\1.conv."),
            (r"body\.(\d+)\.body\.(\d+)\.body\.", r"body.\1.residual_group.\2.rcab."),
        ],
    )


def _rdn_edsr_pytorch(stages: int) -> Callable[[StateDict], StateDict]:
    rename = _rename(
        [
            (r"sfe1\.", "SFENet1."),
            (r"sfe2\.", "SFENet2."),
            (r"rdbs\.(\d+)\.layers\.(\d+)\.conv\.", r"RDBs.\1.convs.\2.conv.0."),
            (r"rdbs\.(\d+)\.lff\.", r"RDBs.\1.LFF."),
            (r"gff\.", "GFF."),
            (r"upscale\.", "UPNet."),
            (r"output\.", f"UPNet.{2 * stages}."),
        ]
    )
    # EDSR-PyTorch works in 0..255: the converter divides every bias by 255.
    return lambda s: rename({k: v * 255 if k.endswith(".bias") else v for k, v in s.items()})


_MSRRESNET_KAIR = _rename([(r"body\.", "recon_trunk."), (r"conv_hr\.", "HRconv.")])


def _carn_single(scale: int) -> Callable[[StateDict], StateDict]:
    return _rename([(rf"upsample\.up{scale}\.", "upsample.up.")])


def _wrap(kind: str) -> Callable[[StateDict], object]:
    if kind in ("params_ema", "params", "state_dict", "model", "net"):
        return lambda s: {kind: s, "iter": 1}
    return lambda s: {f"{kind}{k}": v for k, v in s.items()}


def _swin_indices(window: int) -> Callable[[StateDict], StateDict]:
    """SwinIR / Swin2SR: the index table upstream stores in every attention layer."""

    def apply(state: StateDict) -> StateDict:
        index = relative_position_index(window, torch.device("cpu"))
        out = dict(state)
        for key in state:
            if key.endswith(".attn.qkv.weight"):
                out[key.replace(".qkv.weight", ".relative_position_index")] = index.clone()
        return out

    return apply


def _hat_indices(window: int, overlap_ratio: float) -> Callable[[StateDict], StateDict]:
    """HAT: the two index tables the official files store at the top level."""
    overlap = int(window * overlap_ratio) + window
    cpu = torch.device("cpu")
    return lambda s: {
        **s,
        "relative_position_index_SA": relative_position_index(window, cpu).clone(),
        "relative_position_index_OCA": overlap_position_index(window, overlap, cpu).clone(),
    }


def _dat_buffers(h: int, w: int) -> Callable[[StateDict], StateDict]:
    """DAT: each spatial attention's offsets and index (upstream's persistent buffers)."""

    def offsets(a: int, b: int) -> torch.Tensor:
        grid = torch.meshgrid(torch.arange(1 - a, a), torch.arange(1 - b, b), indexing="ij")
        return torch.stack(grid).flatten(1).t().float()

    def apply(state: StateDict) -> StateDict:
        out = dict(state)
        for key in state:
            if m := re.fullmatch(r"(.*\.attns\.(\d))\.pos\.pos_proj\.weight", key):
                a, b = (h, w) if m[2] == "0" else (w, h)
                out[f"{m[1]}.rpe_biases"] = offsets(a, b)
                out[f"{m[1]}.relative_position_index"] = relative_position_index(
                    (a, b), torch.device("cpu")
                ).clone()
        return out

    return apply


# --------------------------------------------------------------------------------------------
# The grid: (model, scale, constructor arguments, layout) per family
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    name: str  # the registered model built as the reference
    scale: int
    args: dict[str, Any]
    layout: str = "official"
    to_upstream: Callable[[StateDict], StateDict] = dict
    wrapper: str | None = None
    channels: int = 3
    scales: tuple[int, ...] = ()

    @property
    def id(self) -> str:
        args = "-".join(f"{v}" for v in self.args.values())
        return f"{self.name}-x{self.scale}-{self.layout}-{args}-{self.wrapper or 'flat'}"


_SWINIR_TINY: dict[str, Any] = {
    "embed_dim": 12,
    "depths": (2,),
    "num_heads": (2,),
    "window_size": 4,
    "num_feat": 8,
}
_SWIN2SR_TINY: dict[str, Any] = {"embed_dim": 12, "depths": (2,), "num_heads": (2,), "num_feat": 8}
_HAT_TINY: dict[str, Any] = {
    "embed_dim": 12,
    "depths": (2,),
    "num_heads": (2,),
    "window_size": 4,
    "compress_ratio": 3,
    "squeeze_factor": 4,
    "num_feat": 8,
}
_DAT_TINY: dict[str, Any] = {"embed_dim": 32, "depth": (2,), "num_heads": (2,)}


def _light(args: dict[str, Any]) -> dict[str, Any]:
    """The arguments without ``num_feat``: a one-step pixel-shuffle head has no features."""
    return {k: v for k, v in args.items() if k != "num_feat"}


CASES = [
    *(Case("carn", s, {"n_feats": 8}) for s in (2, 3, 4)),
    Case("carn-m", 3, {"n_feats": 8, "group": 4, "mobile": True}, wrapper="module."),
    Case("carn", 2, {"n_feats": 8}, "official-single-scale", _carn_single(2)),
    *(
        Case("realesr-animevideov3", s, {"num_feat": 8, "num_conv": c}, wrapper="params")
        for s, c in ((1, 2), (2, 1), (4, 3))
    ),
    Case("realesr-general-x4v3", 4, {"num_feat": 4, "num_conv": 32}),
    *(
        Case("edsr-baseline", s, {"n_resblocks": 2, "n_feats": 16, "res_scale": 1.0})
        for s in (2, 3, 4)
    ),
    Case("edsr", 2, {"n_resblocks": 1, "n_feats": 256, "res_scale": 0.1}),
    Case(
        "edsr-baseline",
        4,
        {"n_resblocks": 3, "n_feats": 8, "res_scale": 1.0},
        "basicsr",
        _edsr_basicsr(3),
        wrapper="params",
    ),
    Case(
        "edsr-baseline",
        3,
        {"n_resblocks": 2, "n_feats": 8, "res_scale": 1.0},
        "basicsr",
        _edsr_basicsr(2),
    ),
    *(Case("espcn", s, {"n1": 8, "n2": 4}, channels=1) for s in (2, 3, 4)),
    *(Case("fsrcnn", 3, {"d": 8, "s": 4, "m": m}, channels=1, scales=(2, 3, 4)) for m in (1, 4)),
    *(Case("imdn", s, {"nf": 32, "num_modules": n}) for s, n in ((2, 1), (3, 2), (4, 3))),
    *(Case("mdsr", s, {"n_resblocks": 2, "n_feats": 8}) for s in (2, 3, 4)),
    *(
        Case("pan", s, {"nf": 8, "unf": 4, "nb": n}, scales=() if s == 4 else (2, 3))
        for s, n in ((2, 1), (3, 2), (4, 2))
    ),
    *(
        Case("rcan", s, {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": r})
        for s, r in ((2, 4), (3, 2), (4, 8), (8, 4))
    ),
    Case(
        "rcan",
        4,
        {"n_resgroups": 2, "n_resblocks": 3, "n_feats": 8, "reduction": 2},
        "basicsr",
        _rcan_basicsr(2, 3),
        wrapper="params_ema",
    ),
    *(
        Case("rdn", s, {"g0": 8, "n_blocks": 2, "n_layers": 3, "growth": 4}, "torchsr")
        for s in (2, 3, 4)
    ),
    Case(
        "rdn",
        4,
        {"g0": 8, "n_blocks": 3, "n_layers": 2, "growth": 4},
        "edsr-pytorch",
        _rdn_edsr_pytorch(2),
    ),
    Case(
        "rdn",
        3,
        {"g0": 8, "n_blocks": 2, "n_layers": 2, "growth": 6},
        "edsr-pytorch",
        _rdn_edsr_pytorch(1),
    ),
    *(Case("rfdn", s, {"nf": 12, "num_modules": n}) for s, n in ((2, 1), (4, 3))),
    *(
        Case("rlfn", s, {"feature_channels": 12, "num_blocks": n, "esa_channels": 4})
        for s, n in ((2, 1), (3, 2), (4, 2))
    ),
    Case(
        "rlfn-s",
        4,
        {"feature_channels": 48, "num_blocks": 1, "esa_channels": 4},
        wrapper="module.",
    ),
    Case(
        "rlfn-ntire",
        2,
        {"feature_channels": 10, "mid_channels": 12, "num_blocks": 2, "esa_channels": 4},
    ),
    *(
        Case("safmn", s, {"dim": d, "n_blocks": n, "ffn_scale": f}, wrapper=w)
        for s, d, n, f, w in (
            (2, 8, 1, 2.0, None),
            (3, 12, 2, 1.5, "params"),
            (4, 16, 1, 1.75, None),
        )
    ),
    *(
        Case(
            "safmn-ntire2023", s, {"dim": d, "n_blocks": n, "ffn_scale": f}, "ntire2023", wrapper=w
        )
        for s, d, n, f, w in ((2, 8, 2, 2.0, "params"), (4, 12, 1, 1.5, None))
    ),
    *(Case("span", s, {"feature_channels": f}, wrapper="params_ema") for s, f in ((2, 8), (4, 12))),
    Case("srcnn", 3, {"n1": 8, "n2": 4, "f1": 9, "f2": 1, "f3": 5}, channels=1, scales=(2, 3, 4)),
    *(
        Case(
            "srdensenet",
            s,
            {"n_blocks": 2, "n_layers": 2, "growth": 4, "bottleneck": 8},
            channels=1,
            scales=() if s == 4 else (2, 3),
        )
        for s in (2, 4)
    ),
    *(Case("srresnet", s, {"channels": 8, "num_blocks": 2}, "srresnet") for s in (2, 3, 4)),
    *(
        Case("msrresnet", s, {"num_feat": 8, "num_block": 2}, "basicsr", wrapper="params")
        for s in (2, 3, 4)
    ),
    Case("msrresnet", 4, {"num_feat": 8, "num_block": 3}, "kair", _MSRRESNET_KAIR),
    Case("vdsr", 4, {"depth": 5, "n_feats": 8}, channels=1, scales=(2, 3, 4), wrapper="_orig_mod."),
    Case(
        "esrgan", 4, {"num_feat": 8, "num_block": 2, "num_grow_ch": 4}, "basicsr", wrapper="netG."
    ),
    Case("esrgan", 8, {"num_feat": 8, "num_block": 1, "num_grow_ch": 4}, "basicsr", wrapper="net"),
    Case(
        "realesrgan-x2plus",
        2,
        {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "pixel_unshuffle": True},
        "basicsr",
        wrapper="params_ema",
    ),
    Case(
        "realesrgan-x2plus",
        1,
        {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "pixel_unshuffle": True},
        "basicsr",
        wrapper="state_dict",
    ),
    # Attention families: window sizes from the stored index tables where the case adds them.
    Case(
        "swinir",
        2,
        _SWINIR_TINY | {"depths": (2, 1), "num_heads": (2, 3), "mlp_ratio": 1.5},
        to_upstream=_swin_indices(4),
        wrapper="params",
    ),
    Case("swinir", 3, _SWINIR_TINY | {"window_size": 8}),
    Case("swinir-light", 4, {**_light(_SWINIR_TINY), "num_heads": (3,)}, wrapper="params"),
    Case("swinir-real", 2, _SWINIR_TINY, wrapper="params_ema"),
    Case("swinir-real-large", 4, {**_SWINIR_TINY, "embed_dim": 16}, wrapper="params_ema"),
    Case(
        "swin2sr",
        2,
        {**_SWINIR_TINY, "window_size": 4},
        to_upstream=_swin_indices(4),
        wrapper="params",
    ),
    Case("swin2sr", 3, _SWIN2SR_TINY | {"depths": (1, 1), "num_heads": (2, 3), "mlp_ratio": 1.5}),
    Case("swin2sr-light", 4, _light(_SWIN2SR_TINY) | {"resi_connection": "3conv"}),
    Case("swin2sr-real", 4, _SWIN2SR_TINY, wrapper="params_ema"),
    Case("swin2sr-compressed", 2, _SWIN2SR_TINY, to_upstream=_swin_indices(8)),
    Case(
        "swin2sr",
        4,
        _SWIN2SR_TINY,
        "transformers",
        lambda s: swin2sr_to_transformers(s, "pixelshuffle"),
    ),
    Case(
        "swin2sr-light",
        3,
        _light(_SWIN2SR_TINY),
        "transformers",
        lambda s: swin2sr_to_transformers(s, "pixelshuffledirect"),
    ),
    Case("hat-s", 2, _HAT_TINY, to_upstream=_hat_indices(4, 0.5), wrapper="params_ema"),
    Case(
        "hat-s",
        3,
        _HAT_TINY
        | {
            "embed_dim": 16,
            "depths": (1, 1),
            "num_heads": (2, 4),
            "window_size": 8,
            "compress_ratio": 4,
            "squeeze_factor": 8,
            "overlap_ratio": 0.25,
            "mlp_ratio": 1.5,
        },
    ),
    Case("hat-l", 4, _HAT_TINY | {"depths": (1,) * 7, "num_heads": (2,) * 7}),
    Case(
        "hat",
        2,
        _HAT_TINY | {"embed_dim": 180, "compress_ratio": 30, "squeeze_factor": 30},
        to_upstream=_hat_indices(4, 0.5),
        wrapper="params_ema",
    ),
    Case(
        "dat-2",
        2,
        _DAT_TINY | {"split_size": (2, 4)},
        to_upstream=_dat_buffers(2, 4),
        wrapper="params",
    ),
    Case("dat", 3, _DAT_TINY | {"depth": (1, 1), "num_heads": (2, 4)}),
    Case("dat-s", 4, _DAT_TINY, to_upstream=_dat_buffers(8, 16), wrapper="params"),
    Case("dat-light", 2, _DAT_TINY | {"depth": (3,), "expansion_factor": 1.5}),
]


def _build(case: Case) -> nn.Module:
    spec = registry.get_spec(case.name)
    return spec.builder(scale=case.scale, **{**spec.defaults, **case.args})


def _save(
    tmp_path: Path, stem: str, state: StateDict, container: Callable[[StateDict], object] | None
) -> list[Path]:
    pth, st = tmp_path / f"{stem}.pth", tmp_path / f"{stem}.safetensors"
    torch.save(container(state) if container else state, pth)
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(st))
    return [pth, st]


def _check(found: Detected, case: Case, expected_args: Mapping[str, Any]) -> None:
    assert found.name == case.name, found
    assert found.scale == case.scale or case.scale in found.scales, found
    assert found.layout == case.layout, found
    assert found.family == registry.get_spec(case.name).family
    assert found.scales == case.scales, found
    for key, value in expected_args.items():
        assert found.model_args.get(key) == value, (
            f"{key}: {found.model_args.get(key)!r} != {value!r}"
        )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_detects_and_loads_every_family(tmp_path: Path, case: Case) -> None:
    reference = randomize_(_build(case), seed=len(case.id)).eval()
    # Mean shifts keep their built values: BasicSR's layout stores none, and its converter
    # supplies the DIV2K mean.
    fresh = _build(case).state_dict()
    with torch.no_grad():
        for key, value in reference.state_dict().items():
            if "_mean" in key:
                value.copy_(fresh[key])
    state = case.to_upstream({k: v.detach().clone() for k, v in reference.state_dict().items()})
    container = _wrap(case.wrapper) if case.wrapper else None
    spec = registry.get_spec(case.name)
    expected = {**spec.defaults, **case.args}
    x = torch.rand(1, case.channels, 9, 7, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = reference(x)
    for path in _save(tmp_path, "ckpt", state, container):
        found = srzoo.detect(path)
        _check(found, case, expected)
        # The same answer from the tensors themselves, wrapped as the file is.
        from_tensors = srzoo.detect(
            container(state) if container and path.suffix == ".pth" else state
        )
        assert from_tensors == found
        model = srzoo.load_file(path, case.scale)
        assert not model.training
        assert srzoo.model_config(model) is not None
        with torch.no_grad():
            got = model(x)
        bound = 1e-4 * max(1.0, want.abs().max().item())
        assert (got - want).abs().max().item() <= bound, path.name


# --------------------------------------------------------------------------------------------
# RRDBNet: its three layouts, from spandrel's reference (the original xinntao/ESRGAN keys)
# --------------------------------------------------------------------------------------------


_ESRGAN_LAYOUTS: dict[
    str, tuple[Callable[[StateDict], StateDict], Callable[[StateDict], object] | None]
] = {
    "old-esrgan": (dict, None),
    "basicsr": (esrgan_basicsr, lambda s: {"params_ema": s}),
    "esrgan-2019": (esrgan_kair, None),
}


_SLOW = pytest.mark.slow


@pytest.mark.parametrize("layout", sorted(_ESRGAN_LAYOUTS))
@pytest.mark.parametrize(
    ("scale", "shuffle", "blocks"),
    [
        (2, None, 1),
        pytest.param(4, None, 2, marks=_SLOW),
        pytest.param(4, 2, 1, marks=_SLOW),
        pytest.param(4, 4, 1, marks=_SLOW),
        pytest.param(8, None, 1, marks=_SLOW),
    ],
)
def test_rrdbnet_layouts_against_spandrel(
    tmp_path: Path, layout: str, scale: int, shuffle: int | None, blocks: int
) -> None:
    arch = pytest.importorskip("spandrel.architectures.ESRGAN")
    in_nc = 3 * (shuffle or 1) ** 2
    ref = randomize_(
        arch.ESRGAN(
            in_nc=in_nc,
            out_nc=3,
            num_filters=8,
            num_blocks=blocks,
            scale=scale,
            shuffle_factor=shuffle,
        ),
        seed=scale + blocks,
    ).eval()
    to_upstream, container = _ESRGAN_LAYOUTS[layout]
    state = to_upstream(ref.state_dict())
    path = _save(tmp_path, "rrdb", state, container)[0]
    found = srzoo.detect(path)
    srzoo_scale = scale // shuffle if shuffle else scale
    assert (found.name, found.scale, found.layout) == (
        "realesrgan-x2plus" if shuffle else "esrgan",
        srzoo_scale,
        layout,
    )
    assert found.model_args == {
        "in_channels": 3,
        "out_channels": 3,
        "num_feat": 8,
        "num_block": blocks,
        "num_grow_ch": 32,
        "pixel_unshuffle": bool(shuffle),
    }
    x = torch.rand(1, 3, 8, 6, generator=torch.Generator().manual_seed(3))
    model = srzoo.load_file(path)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-4, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# RLFN and SAFMN-NTIRE from the upstream stand-ins; the families that share blocks told apart
# --------------------------------------------------------------------------------------------


def _rlfn_in_unit_range(ref: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    # Every released RLFN works in 0..255; srzoo's takes and returns [0, 1].
    return lambda x: ref(x * 255.0) / 255.0


@pytest.mark.parametrize(
    ("name", "scale", "layout", "make", "args"),
    [
        (
            "rlfn-ntire",
            4,
            "ntire2022",
            lambda: RefRLFN(nf=10, nb=4, upscale=4, mf=12, esa=4, ntire2022_names=True),
            {"feature_channels": 10, "mid_channels": 12, "num_blocks": 4, "esa_channels": 4},
        ),
        (
            "rlfn",
            3,
            "ntire2022",  # the challenge repository's names on an unpruned network
            lambda: RefRLFN(nf=8, nb=2, upscale=3, esa=4, ntire2022_names=True),
            {"feature_channels": 8, "mid_channels": None, "num_blocks": 2, "esa_channels": 4},
        ),
        (
            "rlfn",
            2,
            "official",
            lambda: RefRLFN(nf=12, nb=2, upscale=2, esa=4),
            {"feature_channels": 12, "mid_channels": None, "num_blocks": 2, "esa_channels": 4},
        ),
        (
            "safmn-ntire2023",
            3,
            "ntire2023",
            lambda: RefSAFMNNTIRE(8, 2, 1.5, 3),
            {"dim": 8, "n_blocks": 2, "ffn_scale": 1.5},
        ),
    ],
    ids=["rlfn-ntire-x4-ntire2022", "rlfn-x3-ntire2022", "rlfn-x2-official", "safmn-ntire2023-x3"],
)
def test_upstream_stand_ins_are_detected_and_load(
    tmp_path: Path,
    name: str,
    scale: int,
    layout: str,
    make: Callable[[], nn.Module],
    args: dict[str, Any],
) -> None:
    ref = randomize_(make(), seed=scale).eval()
    run = _rlfn_in_unit_range(ref) if name.startswith("rlfn") else ref
    wrap = (lambda s: {"params": s}) if name.startswith("safmn") else None
    state = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    # 17 x 16: the NTIRE 2023 SAFMN needs 16 pixels a side, RLFN 15.
    x = torch.rand(1, 3, 17, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = run(x)
    expected_name = "rlfn-ntire" if layout == "ntire2022" else name
    for path in _save(tmp_path, "ref", state, wrap):
        found = srzoo.detect(path)
        assert (found.name, found.scale, found.layout) == (expected_name, scale, layout)
        assert found.family == registry.get_spec(name).family and found.scales == ()
        assert {k: found.model_args[k] for k in args} == args
        model = srzoo.load_file(path)
        with torch.no_grad():
            got = model(x)
        torch.testing.assert_close(got, want, atol=1e-4 * max(1.0, want.abs().max().item()), rtol=0)


def _state(name: str, scale: int, **args: Any) -> StateDict:
    net = randomize_(srzoo.create(name, scale, **args), seed=scale)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_rfdn_and_rlfn_share_esa_but_are_told_apart() -> None:
    from srzoo.archs.rfdn import detect_rfdn
    from srzoo.archs.rlfn import detect_rlfn

    rfdn = _state("rfdn", 4, nf=12, num_modules=2)
    # The challenge repository's RLFN names are RFDN's: fea_conv, B1 ..., LR_conv, upsampler.
    rlfn = dict(RefRLFN(nf=12, nb=2, upscale=4, esa=3, ntire2022_names=True).state_dict())
    assert {k.split(".")[0] for k in rfdn} >= {k.split(".")[0] for k in rlfn}
    assert srzoo.detect(rfdn).family == "rfdn"
    assert srzoo.detect(rlfn).family == "rlfn"
    assert detect_rlfn(Shapes({k: v.shape for k, v in rfdn.items()})) is None
    assert detect_rfdn(Shapes({k: v.shape for k, v in rlfn.items()})) is None
    # SPAN's conv_1 / block_1 names hold re-parameterised convolutions (``.sk``): not RLFN's.
    assert srzoo.detect(_state("span", 2, feature_channels=8)).family == "span"


def test_safmn_and_its_ntire2023_variant_are_told_apart_by_grn() -> None:
    plain = _state("safmn", 4, dim=8, n_blocks=2)
    ntire = _state("safmn-ntire2023", 4, dim=8, n_blocks=2)
    assert (srzoo.detect(plain).name, srzoo.detect(plain).layout) == ("safmn", "official")
    assert (srzoo.detect(ntire).name, srzoo.detect(ntire).layout) == (
        "safmn-ntire2023",
        "ntire2023",
    )
    # GRN's tensors beside the paper model's LayerNorms, or the variant with biases: neither is
    # a network srzoo builds, so neither is guessed.
    with pytest.raises(WeightsError, match="matches no architecture"):
        srzoo.detect(
            {**plain, "norm.gamma": torch.zeros(1, 8, 1, 1), "norm.beta": torch.zeros(1, 8, 1, 1)}
        )
    with pytest.raises(WeightsError, match="matches no architecture"):
        srzoo.detect({**ntire, "feats.0.safm.aggr.bias": torch.zeros(8)})


@pytest.mark.parametrize(("dim", "ffn_scale"), [(28, 2.2), (36, 2.0), (12, 1.75)])
def test_safmn_hidden_width_round_trips(dim: int, ffn_scale: float) -> None:
    # int(28 * 2.2) is 61, and 28 * (61 / 28) falls just short of 61: the read ratio must
    # still build 61 channels.
    with torch.device("meta"):
        state = srzoo.create("safmn", 2, dim=dim, n_blocks=1, ffn_scale=ffn_scale).state_dict()
        found = srzoo.detect(state)
        again = srzoo.create(found.name, found.scale, **found.model_args).state_dict()
    assert {k: v.shape for k, v in again.items()} == {k: v.shape for k, v in state.items()}


def test_the_packaged_safmn_weights_are_detected_from_their_shapes() -> None:
    for w in srzoo.model_info("safmn").weights:
        if w.tag != "srzoo":
            continue
        path = PACKAGE_DATA / w.source.removeprefix("package://")
        found = srzoo.detect(path)
        assert (found.name, found.scale, found.layout) == ("safmn", w.scale, "official")
        assert found.model_args == {"dim": 36, "n_blocks": 8, "ffn_scale": 2.0}
        assert detect_file(path).weights == w


# --------------------------------------------------------------------------------------------
# Multi-scale files: CARN and MDSR
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["carn", "mdsr"])
def test_multi_scale_file_serves_each_scale(tmp_path: Path, name: str) -> None:
    args = {"n_feats": 8} if name == "carn" else {"n_resblocks": 2, "n_feats": 8}
    nets = {s: randomize_(srzoo.create(name, s, **args), seed=s).eval() for s in (2, 3, 4)}
    branch = re.compile(r"(upsample|pre_process)\.")
    merged = dict(nets[4].state_dict())
    for s in (2, 3):
        merged.update({k: v for k, v in nets[s].state_dict().items() if branch.match(k)})
    path = _save(tmp_path, name, merged, None)[0]
    found = srzoo.detect(path)
    assert (found.scale, found.scales) == (4, (2, 3, 4))
    x = torch.rand(1, 3, 7, 6)
    for s in (2, 3, 4):
        model = srzoo.load_file(path, s)
        reference = srzoo.create(name, s, **args).eval()
        reference.load_state_dict({k: v for k, v in merged.items() if k in reference.state_dict()})
        with torch.no_grad():
            torch.testing.assert_close(model(x), reference(x), atol=1e-4, rtol=1e-4)
    with pytest.raises(WeightsError, match="x2, x3, x4"):
        srzoo.load_file(path, 8)


# --------------------------------------------------------------------------------------------
# Real checkpoints in ../shared
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "name", "scale", "args"),
    [
        ("IMDN_x2.pth", "imdn", 2, {"nf": 64, "num_modules": 6, "in_nc": 3, "out_nc": 3}),
        ("IMDN_x3.pth", "imdn", 3, {"nf": 64, "num_modules": 6, "in_nc": 3, "out_nc": 3}),
        ("IMDN_x4.pth", "imdn", 4, {"nf": 64, "num_modules": 6, "in_nc": 3, "out_nc": 3}),
        ("carn_m.pth", "carn-m", 4, {"n_feats": 64, "mobile": True, "group": 4}),
        ("fsrcnn_x3.pth", "fsrcnn", 3, {"d": 56, "s": 12, "m": 4}),
    ],
)
def test_real_checkpoints_are_detected(
    file: str, name: str, scale: int, args: dict[str, Any]
) -> None:
    path = require_shared(CHECKPOINTS / file)
    found = srzoo.detect(path)
    assert (found.name, found.scale) == (name, scale)
    assert {k: found.model_args[k] for k in args} == args
    # Registered files are those checkpoints: the registry's facts come with them.
    registered = detect_file(path)
    assert registered.weights is not None and registered.weights.sha256
    assert (registered.name, registered.scale) == (name, scale)


def test_a_registered_file_loads_as_its_checkpoint() -> None:
    path = require_shared(CHECKPOINTS / "carn_m.pth")
    x = torch.rand(1, 3, 9, 8)
    for scale in (2, 3):
        model = srzoo.load_file(path, scale)
        config = srzoo.model_config(model)
        assert config is not None and (config.architecture, config.scale) == ("carn-m", scale)
        expected = srzoo.load("carn-m", scale, weights=path)
        with torch.no_grad():
            torch.testing.assert_close(model(x), expected(x))


def test_a_registered_fake_checkpoint_carries_the_registry_facts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = randomize_(srzoo.create("fsrcnn", 2, d=8, s=4, m=1), seed=5)
    path = tmp_path / "fsrcnn_x2_fake.pth"
    torch.save(net.state_dict(), path)
    digest = srzoo.weights.file_sha256(path)
    spec = ModelSpec(
        name="detect-test-fsrcnn",
        family="fsrcnn",
        builder=type(net),
        scales=(2,),
        paper=Paper("test", "test", 2024),
        code_license="MIT",
        defaults={"d": 8, "s": 4, "m": 1},
        weights=(WeightSpec(2, str(path), sha256=digest, input_range="test-range", license="T"),),
    )
    monkeypatch.setitem(registry._REGISTRY, spec.name, spec)
    # The weights alone say x3 (FSRCNN's tensors do not fix the scale); the registry says x2.
    assert srzoo.detect(path).scale == 3
    found = detect_file(path)
    assert (found.name, found.scale) == ("detect-test-fsrcnn", 2)
    assert found.weights is not None and found.weights.input_range == "test-range"
    model = srzoo.load_file(path)
    config = srzoo.model_config(model)
    assert config is not None and (config.architecture, config.scale) == (spec.name, 2)
    assert model(torch.rand(1, 1, 5, 4)).shape == (1, 1, 10, 8)


def test_a_loaded_file_can_be_saved_and_reloaded(tmp_path: Path) -> None:
    net = randomize_(srzoo.create("rcan", 2, n_resgroups=1, n_resblocks=1, n_feats=8, reduction=2))
    torch.save({"params": net.state_dict()}, tmp_path / "rcan.pth")
    model = srzoo.load_file(tmp_path / "rcan.pth")
    folder = srzoo.save_pretrained(model, tmp_path / "saved")
    again = srzoo.load(f"local-dir:{folder}")
    x = torch.rand(1, 3, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))


# --------------------------------------------------------------------------------------------
# Malformed input
# --------------------------------------------------------------------------------------------


def _rrdb_state() -> StateDict:
    net = srzoo.create("esrgan", 4, num_feat=8, num_block=2, num_grow_ch=4)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_a_missing_signature_key_names_the_closest_families() -> None:
    state = _rrdb_state()
    del state["conv_hr.weight"]
    with pytest.raises(
        WeightsError, match=r"Closest: esrgan \(basicsr layout\) misses conv_hr\.weight"
    ):
        srzoo.detect(state)


def test_a_missing_block_or_a_wrong_shape_fails_to_load_with_the_key(tmp_path: Path) -> None:
    state = _rrdb_state()
    del state["body.1.rdb2.conv3.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(IncompatibleWeightsError, match=r"body\.1\.rdb2\.conv3\.weight"):
        srzoo.load_file(tmp_path / "missing.pth")
    state = _rrdb_state()
    state["conv_body.weight"] = torch.zeros(8, 8, 1, 1)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(IncompatibleWeightsError, match=r"conv_body\.weight: expected"):
        srzoo.load_file(tmp_path / "shape.pth")


def test_shapes_that_fit_no_configuration_are_said_so() -> None:
    state = _rrdb_state()
    state["conv_last.weight"] = torch.zeros(3, 8, 3)  # no longer a conv kernel
    state["conv_first.weight"] = torch.zeros(8, 5, 3, 3)
    state["conv_up1.weight"] = torch.zeros(0)
    with pytest.raises(WeightsError, match="matches no architecture"):
        srzoo.detect({k: v for k, v in state.items() if k != "body.0.rdb1.conv1.weight"})


def test_empty_and_non_tensor_input_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="empty"):
        srzoo.detect({})
    with pytest.raises(ArgumentError, match="empty"):
        srzoo.detect({"params": {}})
    with pytest.raises(ArgumentTypeError, match=r"'conv\.bias'"):
        srzoo.detect({"conv.weight": torch.zeros(1), "conv.bias": [1.0, 2.0]})
    with pytest.raises(ArgumentTypeError, match="not a state dict"):
        srzoo.detect([torch.zeros(1)])  # type: ignore[arg-type]
    with pytest.raises(WeightsError, match="No registered family shares any of its keys"):
        srzoo.detect({"foo.weight": torch.zeros(2, 2)})
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        srzoo.load_file(tmp_path / "empty.pth")
    torch.save({}, tmp_path / "nothing.pth")
    with pytest.raises(WeightsError, match="no tensors"):
        srzoo.detect(tmp_path / "nothing.pth")


def test_a_scale_the_tensors_cannot_serve_is_refused(tmp_path: Path) -> None:
    torch.save(_rrdb_state(), tmp_path / "rrdb.pth")
    with pytest.raises(WeightsError, match="not x2"):
        srzoo.load_file(tmp_path / "rrdb.pth", 2)


def test_read_shapes_reads_no_tensor_data(tmp_path: Path) -> None:
    state = _rrdb_state()
    save_file(state, str(tmp_path / "a.safetensors"))
    torch.save({"params_ema": state}, tmp_path / "a.pth")
    for name in ("a.safetensors", "a.pth"):
        shapes = read_shapes(tmp_path / name)
        assert dict(shapes) == {k: tuple(v.shape) for k, v in state.items()}


# --------------------------------------------------------------------------------------------
# The specificity rule
# --------------------------------------------------------------------------------------------


def test_the_more_specific_family_wins_and_a_tie_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shapes = {"a.weight": (1,), "b.weight": (1,)}

    def generic(view: Shapes) -> Detected | None:
        return (
            Detected("vdsr", 4, {"depth": 3, "n_feats": 1}, "one") if "a.weight" in view else None
        )

    def specific(view: Shapes) -> Detected | None:
        return Detected("srcnn", 3, {}, "two") if view.has("a.weight", "b.weight") else None

    registry.detectors()  # the built-in families first
    monkeypatch.setattr(registry, "_DETECTORS", {})
    registry.register_detector("generic", generic, layouts={"one": ("a.weight",)})
    registry.register_detector("specific", specific, layouts={"two": ("a.weight", "b.weight")})
    assert srzoo.detect(shapes).family == "specific"
    registry.register_detector("specific", specific, layouts={"two": ("a.weight",)}, overwrite=True)
    with pytest.raises(WeightsError, match="fits two architectures equally well"):
        srzoo.detect(shapes)
    registry.register_detector(
        "generic", generic, layouts={"one": ("a.weight",)}, priority=1, overwrite=True
    )
    assert srzoo.detect(shapes).family == "generic"
    with pytest.raises(ArgumentError, match="already registered"):
        registry.register_detector("generic", generic, layouts={"one": ("a.weight",)})


def test_every_registered_family_has_a_detector() -> None:
    # A family without a detector cannot be loaded from a bare file (srzoo.load_file).
    families = {d.family for d in registry.detectors()}
    registered = {srzoo.model_info(name).family for name in srzoo.list_models()}
    assert registered - families == set()


# --------------------------------------------------------------------------------------------
# Agreement with spandrel where it supports the family
# --------------------------------------------------------------------------------------------


_SPANDREL_FAMILIES = {
    "ESRGAN": "esrgan",
    "Compact": "compact",
    "RCAN": "rcan",
    "SPAN": "span",
    "SAFMN": "safmn",
}


@pytest.mark.parametrize(
    ("name", "scale", "args", "wrap"),
    [
        # spandrel reads no growth width: it assumes 32, the only one published.
        ("esrgan", 4, {"num_feat": 8, "num_block": 2, "num_grow_ch": 32}, esrgan_kair),
        ("realesrgan-x2plus", 2, {"num_feat": 8, "num_block": 1, "num_grow_ch": 32}, dict),
        ("realesr-animevideov3", 2, {"num_feat": 8, "num_conv": 2}, dict),
        ("realesr-animevideov3", 1, {"num_feat": 8, "num_conv": 1}, dict),
        ("rcan", 3, {"n_resgroups": 2, "n_resblocks": 1, "n_feats": 16, "reduction": 4}, dict),
        ("span", 4, {"feature_channels": 8}, dict),
        ("span", 2, {"feature_channels": 16}, dict),
        ("safmn", 4, {"dim": 8, "n_blocks": 2}, dict),
        ("safmn", 3, {"dim": 12, "n_blocks": 1, "ffn_scale": 1.5}, dict),
    ],
)
def test_detection_agrees_with_spandrel(
    name: str, scale: int, args: dict[str, Any], wrap: Callable[[StateDict], StateDict]
) -> None:
    spandrel = pytest.importorskip("spandrel")
    spec = registry.get_spec(name)
    state = dict(spec.builder(scale=scale, **{**spec.defaults, **args}).state_dict())
    if name == "esrgan":  # spandrel reads the KAIR layout; srzoo's own is BasicSR's
        state = wrap(_to_old(state))
    found = srzoo.detect(state)
    theirs = spandrel.ModelLoader().load_from_state_dict(dict(state))
    assert _SPANDREL_FAMILIES[theirs.architecture.id] == found.family
    assert theirs.scale == found.scale
    assert theirs.input_channels == 3


# The attention families, from spandrel's own networks: their state dicts hold every buffer the
# upstream code stores (index tables, shift masks, DAT's offsets), as the released files do.
_ATTENTION_SPANDREL = {"SwinIR": "swinir", "Swin2SR": "swin2sr", "HAT": "hat", "DAT": "dat"}


@pytest.mark.parametrize(
    ("arch", "scale", "config", "window"),
    [
        ("SwinIR", 2, {"upsampler": "pixelshuffle", "window_size": 4}, 4),
        ("SwinIR", 3, {"upsampler": "pixelshuffledirect", "window_size": 8}, 8),
        ("SwinIR", 4, {"upsampler": "nearest+conv", "window_size": 4}, 4),
        ("Swin2SR", 2, {"upsampler": "pixelshuffle", "window_size": 4}, 4),
        ("Swin2SR", 4, {"upsampler": "pixelshuffle_aux", "window_size": 8}, 8),
        ("Swin2SR", 3, {"upsampler": "pixelshuffledirect", "window_size": 4}, 4),
        ("Swin2SR", 4, {"upsampler": "nearest+conv", "window_size": 4}, 4),
        ("HAT", 3, {"window_size": 4, "compress_ratio": 3, "squeeze_factor": 4}, 4),
        ("HAT", 4, {"window_size": 8, "compress_ratio": 4, "squeeze_factor": 6}, 8),
        ("DAT", 2, {"split_size": [2, 4], "upsampler": "pixelshuffle"}, (2, 4)),
        ("DAT", 4, {"split_size": [8, 16], "upsampler": "pixelshuffledirect"}, (8, 16)),
    ],
)
def test_attention_families_agree_with_spandrel(
    arch: str, scale: int, config: dict[str, Any], window: object
) -> None:
    spandrel = pytest.importorskip("spandrel")
    module = pytest.importorskip(f"spandrel.architectures.{arch}")
    if arch == "DAT":
        size = {"embed_dim": 32, "depth": [2], "num_heads": [2], "expansion_factor": 2.0}
    else:
        size = {"embed_dim": 12, "depths": [2], "num_heads": [2]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.meshgrid's indexing notice
        net = getattr(module, arch)(upscale=scale, img_size=16, **size, **config)
    state = dict(net.state_dict())
    found = srzoo.detect(state)
    theirs = spandrel.ModelLoader().load_from_state_dict(dict(state))
    assert _ATTENTION_SPANDREL[theirs.architecture.id] == found.family
    assert theirs.scale == found.scale == scale
    assert found.model_args["split_size" if arch == "DAT" else "window_size"] == window
    if "upsampler" in config:
        assert found.model_args["upsampler"] == config["upsampler"]


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if registry.get_spec(c.name).family in {"swinir", "swin2sr", "hat", "dat"}],
    ids=lambda c: c.id,
)
def test_attention_families_match_only_their_own_files(case: Case) -> None:
    # SwinIR, Swin2SR and HAT share conv_first / layers.N.residual_group.blocks.M...: each
    # detector must recognise its family's files and no other's (no specificity contest).
    state = case.to_upstream(dict(_build(case).state_dict()))
    shapes = Shapes({k: tuple(v.shape) for k, v in state.items()})
    matched = [d.family for d in registry.detectors() if d.detect(shapes) is not None]
    assert matched == [registry.get_spec(case.name).family]


def _to_old(state: StateDict) -> StateDict:
    """BasicSR's RRDBNet keys -> the original xinntao/ESRGAN ``model.N`` keys."""
    n = max(int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))) + 1
    ups = sorted({k.split(".")[0] for k in state if k.startswith("conv_up")})
    tail = {name: 3 + 3 * i for i, name in enumerate(ups)}
    tail["conv_hr"] = 3 + 3 * len(ups) - 1 if ups else 2
    tail["conv_last"] = tail["conv_hr"] + 2
    out: StateDict = {}
    for key, value in state.items():
        head, kind = key.rsplit(".", 1)
        if m := re.fullmatch(r"body\.(\d+)\.rdb(\d)\.conv(\d)", head):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{kind}"] = value
        elif head == "conv_body":
            out[f"model.1.sub.{n}.{kind}"] = value
        elif head == "conv_first":
            out[f"model.0.{kind}"] = value
        else:
            out[f"model.{tail[head]}.{kind}"] = value
    return out
