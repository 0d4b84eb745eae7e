"""Helpers every architecture's tests reuse, and a stand-in terminal for progress-bar tests."""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import srzoo

SHARED = Path(__file__).resolve().parents[2] / "shared"
DATA = SHARED / "data"
CHECKPOINTS = SHARED / "checkpoints"


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal, to stand in for ``sys.stderr``."""

    def isatty(self) -> bool:
        return True


def require_shared(path: Path) -> Path:
    """Skip the calling test unless ``path`` (inside ../shared) exists."""
    if not path.exists():
        pytest.skip(f"reference data not available: {path} (../shared is absent in this checkout)")
    return path


@torch.no_grad()
def small_scale(name: str) -> int:
    """x2 where the model has it (small outputs in tests), else its first scale (x4-only AuraSR)."""
    scales = srzoo.model_info(name).scales
    return 2 if 2 in scales else scales[0]


def randomize_(module: nn.Module, seed: int = 0, gain: float = 0.5) -> nn.Module:
    """Overwrite every floating-point parameter and buffer with random values, in place.

    Default initialisations (zero biases, identity mean shifts, unit batch-norm) can hide a
    wiring error; random values in every tensor make a swapped or skipped layer visible.
    Weights are scaled by fan-in so activations stay of order one through deep networks.
    """
    g = torch.Generator().manual_seed(seed)
    for name, t in module.state_dict().items():
        if not t.is_floating_point():
            continue
        if name.endswith("running_var"):
            values = torch.rand(t.shape, generator=g) + 0.5
        elif t.dim() >= 2:
            fan_in = t[0].numel()
            values = torch.randn(t.shape, generator=g) * gain / fan_in**0.5
        else:
            values = (torch.rand(t.shape, generator=g) - 0.5) * 0.2
            if name.endswith("weight") and "sub_mean" not in name and "add_mean" not in name:
                values += 1.0  # norm scales and PReLU slopes near their usual values
        t.copy_(values.to(t.dtype))
    return module


StateDict = dict[str, torch.Tensor]


def _run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y: torch.Tensor = module(x)
    return y


def assert_loads_correctly(
    tmp_path: Path,
    name: str,
    scale: int,
    reference: nn.Module,
    *,
    overrides: Mapping[str, Any] | None = None,
    to_upstream: Callable[[StateDict], StateDict] = dict,
    container: Callable[[StateDict], object] | None = None,
    safetensors: bool = True,
    run_reference: Callable[[nn.Module, torch.Tensor], torch.Tensor] = _run,
    reload_reference: Callable[[Path], nn.Module] | None = None,
    seed: int = 0,
    size: tuple[int, int] = (11, 9),
    channels: int = 3,
    atol: float = 1e-5,
    relative: bool = False,
) -> nn.Module:
    """An upstream checkpoint loads through ``srzoo.load`` and reproduces the upstream outputs.

    The reference (an installed upstream implementation, a stand-in written from the upstream
    code, or srzoo's own module where its keys are the upstream layout) is randomised, its state
    dict mapped to the upstream layout and written as the upstream project writes it (a
    ``torch.save`` pickle, optionally wrapped by ``container``) and as flat safetensors; each
    file is loaded with ``srzoo.load(name, scale=scale, weights=path, **overrides)`` and run on
    a fixed random input of odd size and batch 2.

    Args:
        tmp_path: Folder for the checkpoint files.
        name: Registered model name.
        scale: Upscaling factor.
        reference: The upstream network, randomised here in place.
        overrides: Constructor arguments matching the reference's configuration.
        to_upstream: Maps the reference's state dict to the checkpoint's keys (e.g. adds a
            ``module.`` prefix); flat in, flat out.
        container: Wraps the flat tensors for the pickle as upstream saves them (e.g.
            ``{"params": ...}``); safetensors files are always flat.
        safetensors: Also check a ``.safetensors`` copy.
        run_reference: Calls the reference on the [0, 1] input, converting what it expects
            (an enlarged image, a 0..255 range).
        reload_reference: Builds the reference again from the pickle with its own loader (e.g.
            spandrel's detection), which must agree with the original.
        seed: Seed of the random weights.
        size: Input height and width.
        channels: Input channels.
        atol: Largest absolute difference allowed.
        relative: Scale ``atol`` by the peak output magnitude when above 1 (random weights in
            networks that work on 0..255 give outputs far from [0, 1]).

    Returns:
        The model srzoo loaded from the last file.
    """
    randomize_(reference, seed=seed).eval()
    upstream = to_upstream({k: v.detach().clone() for k, v in reference.state_dict().items()})
    stem = f"{name}_x{scale}_upstream"
    paths = [tmp_path / f"{stem}.pth"]
    torch.save(container(upstream) if container is not None else upstream, paths[0])
    if safetensors:
        paths.append(tmp_path / f"{stem}.safetensors")
        # safetensors refuses tensors that share memory; the copies share nothing.
        save_file({k: v.contiguous().clone() for k, v in upstream.items()}, str(paths[1]))

    x = torch.rand(2, channels, *size, generator=torch.Generator().manual_seed(1234))
    with torch.no_grad():
        expected = run_reference(reference, x.clone())  # some references scale in place
    assert expected.shape == (2, expected.shape[1], size[0] * scale, size[1] * scale)
    assert torch.isfinite(expected).all()
    bound = atol * max(1.0, expected.abs().max().item()) if relative else atol
    if reload_reference is not None:
        reloaded = reload_reference(paths[0]).eval()
        with torch.no_grad():
            again = run_reference(reloaded, x.clone())
        diff = (again - expected).abs().max().item()
        assert diff <= bound, f"the reference's own loader differs by {diff:.3g}"

    model: nn.Module | None = None
    for path in paths:
        model = srzoo.load(name, scale=scale, weights=path, **(overrides or {}))
        assert not model.training
        before = x.clone()
        with torch.no_grad():
            got = model(x)
        assert torch.equal(x, before), "forward modified its input"
        assert got.shape == expected.shape, f"{path.name}: shape {tuple(got.shape)}"
        diff = (got - expected).abs().max().item()
        assert diff <= bound, f"{path.name}: max difference {diff:.3g} exceeds {bound:.3g}"
    assert model is not None
    return model


def check_forward_contract(model: nn.Module, scale: int, channels: int = 3) -> None:
    """Output shape and dtype for odd sizes and batches; the input is left untouched."""
    model.eval()
    assert model.scale == scale
    assert model.in_channels == channels
    torch.manual_seed(0)
    x = torch.rand(2, channels, 13, 11)
    before = x.clone()
    with torch.no_grad():
        y = model(x)
        single = model(x[1:2])
    assert torch.equal(x, before), "forward modified its input"
    assert y.shape == (2, model.out_channels, 13 * scale, 11 * scale)
    assert y.dtype == x.dtype
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y[1:2], single, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        tiny = model(torch.rand(1, channels, 1, 1))
    assert tiny.shape == (1, model.out_channels, scale, scale)


def check_gradients(model: nn.Module, channels: int = 3) -> None:
    """A loss on the output sends a non-zero gradient to every trainable parameter."""
    model.train()
    torch.manual_seed(0)
    x = torch.rand(2, channels, 9, 10)
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        assert p.grad is not None, f"no gradient reached {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient at {name}"


def check_compiles(model: nn.Module, channels: int = 3) -> None:
    """``torch.compile(fullgraph=True)`` captures forward in one graph with the same output,
    for a batch and for an unbatched ``(C, H, W)`` image (the input checks cost no break)."""
    torch._dynamo.reset()
    model.eval()
    x = torch.rand(1, channels, 8, 7)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(compiled(x[0]), model(x[0]), atol=1e-5, rtol=1e-5)


def assert_no_graph_breaks(
    model: nn.Module,
    sizes: Sequence[tuple[int, int]],
    *,
    channels: int = 3,
    one_graph: bool = True,
) -> None:
    """``torch._dynamo.explain`` finds no graph break at each input size (and, with
    ``one_graph``, captures forward as a single graph), from a fresh compiler cache each time."""
    for size in sizes:
        torch._dynamo.reset()
        with torch.no_grad():
            explained = torch._dynamo.explain(model)(torch.rand(1, channels, *size))
        assert explained.graph_break_count == 0, explained.break_reasons
        if one_graph:
            assert explained.graph_count == 1


# HAT's variants differ only in width and depth, so one tiny configuration serves all four.
_HAT_TINY: dict[str, Any] = {
    "embed_dim": 8,
    "depths": (2, 2),
    "num_heads": (2, 2),
    "window_size": 4,
    "compress_ratio": 4,
    "squeeze_factor": 1,
    "num_feat": 8,
}

# Small configurations of every built-in model, for behaviour tests that must run in seconds.
TINY: dict[str, dict[str, Any]] = {
    "edsr": {"n_resblocks": 2, "n_feats": 16},
    "edsr-baseline": {"n_resblocks": 2, "n_feats": 16},
    "rcan": {"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 2},
    "rdn": {"g0": 8, "n_blocks": 2, "n_layers": 2, "growth": 4},
    "mdsr": {"n_resblocks": 2, "n_feats": 8},
    "srdensenet": {"n_blocks": 2, "n_layers": 2, "growth": 4, "bottleneck": 8},
    "srresnet": {"channels": 16, "num_blocks": 2},
    "srgan": {"channels": 16, "num_blocks": 2},
    "msrresnet": {"num_feat": 16, "num_block": 2},
    "carn": {"n_feats": 8},
    "carn-m": {"n_feats": 8},  # group 4 from the variant's defaults: two channels per group
    "srcnn": {"n1": 8, "n2": 4},
    "fsrcnn": {"d": 8, "s": 4, "m": 1},
    "espcn": {"n1": 8, "n2": 4},
    "vdsr": {"depth": 4, "n_feats": 8},
    "imdn": {"nf": 32, "num_modules": 2},  # CCA squeezes 16x: 32 -> 8 distilled -> 2 hidden
    # The gradient check's 9x10 input pools to one pixel in ESA; with 12 features (3 in the
    # attention branch) some of its ReLUs stay alive for the fixed random weights.
    "rfdn": {"nf": 12, "num_modules": 2},
    "pan": {"nf": 8, "unf": 4, "nb": 2},
    "safmn": {"dim": 8, "n_blocks": 2},
    "span": {"feature_channels": 8},
    "esrgan": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "esrgan-psnr": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realesrgan-x4plus": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realesrnet-x4plus": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realesrgan-x2plus": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realesrgan-x4plus-anime-6b": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "bsrgan": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "bsrnet": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realsr-dped": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realsr-df2k": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realsr-df2k-jpeg": {"num_feat": 8, "num_block": 1, "num_grow_ch": 4},
    "realesr-animevideov3": {"num_feat": 8, "num_conv": 1},
    "realesr-general-x4v3": {"num_feat": 8, "num_conv": 1},
    "realesr-general-wdn-x4v3": {"num_feat": 8, "num_conv": 1},
    "realesrganv2-animevideo-xsx2": {"num_feat": 8, "num_conv": 1},
    "realesrganv2-animevideo-xsx4": {"num_feat": 8, "num_conv": 1},
    # SwinIR: three layers then two, so a group ends once after a plain and once after a
    # shifted layer; window 8 (the released one), so a 13x11 input pads to 2x2 windows.
    "swinir": {"embed_dim": 8, "depths": (3, 2), "num_heads": (2, 2), "num_feat": 8},
    "swinir-light": {"embed_dim": 8, "depths": (3, 2), "num_heads": (2, 2)},
    "swinir-real": {"embed_dim": 8, "depths": (3, 2), "num_heads": (2, 2), "num_feat": 8},
    "swinir-real-large": {"embed_dim": 8, "depths": (3, 2), "num_heads": (2, 2), "num_feat": 8},
    # TINY:swinir
    # Swin2SR: two residual groups (an unshifted and a shifted block each), heads of 2 and 3.
    "swin2sr": {"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 3), "num_feat": 8},
    "swin2sr-light": {"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 3)},
    "swin2sr-real": {"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 3), "num_feat": 8},
    "swin2sr-compressed": {"embed_dim": 12, "depths": (2, 2), "num_heads": (2, 3), "num_feat": 8},
    # TINY:swin2sr
    # Window 4 (overlap window 6) so 13x11 inputs span several windows; two groups of two
    # blocks (plain and shifted windows); 2 channels in each CAB, 8 in its channel attention
    # (with fewer, all its ReLUs die at once for the gradient check's random weights).
    "hat-s": _HAT_TINY,
    "hat": _HAT_TINY,
    "hat-l": _HAT_TINY,
    "real-hat-gan": _HAT_TINY,
    # TINY:hat
    # Two groups (both shift schedules: block 2 of group 0, block 0 of group 1), both window
    # orientations; 96 features: the position-bias MLP is embed_dim // 32 wide, and at one or
    # two units its layer norms leave some of its parameters without a gradient.
    "dat": {"embed_dim": 96, "depth": (3, 1), "num_heads": (2, 2), "split_size": (2, 4)},
    "dat-s": {"embed_dim": 96, "depth": (3, 1), "num_heads": (2, 2), "split_size": (2, 4)},
    "dat-2": {"embed_dim": 96, "depth": (3, 1), "num_heads": (2, 2), "split_size": (2, 4)},
    "dat-light": {"embed_dim": 96, "depth": (3, 1), "num_heads": (2, 2), "split_size": (2, 4)},
    # TINY:dat
    # RLFN: two blocks, 4 channels in the attention branch; the challenge model's pruned middle.
    "rlfn": {"feature_channels": 8, "num_blocks": 2, "esa_channels": 4},
    "rlfn-s": {"feature_channels": 8, "num_blocks": 2, "esa_channels": 4},
    "rlfn-ntire": {"feature_channels": 8, "mid_channels": 12, "num_blocks": 2, "esa_channels": 4},
    "safmn-ntire2023": {"dim": 8, "n_blocks": 2},
    # TINY:detect
    # PLKSR: two blocks of 5x5 partial kernels on two of eight channels.
    "plksr": {"dim": 8, "n_blocks": 2, "kernel_size": 5},
    "plksr-tiny": {"dim": 8, "n_blocks": 2, "kernel_size": 5},
    "realplksr": {"dim": 8, "n_blocks": 2, "kernel_size": 5},
    # TINY:plksr
    "swiftsrgan": {"num_channels": 8, "num_blocks": 1},
    # TINY:swiftsrgan
    # Real-CUGAN's widths are fixed (32 to 256 channels): the networks themselves.
    "realcugan": {},
    "realcugan-pro": {},
    "realcugan-fast": {},
    # TINY:realcugan
    # Omni-SR: one group of one block, window 4 so 13x11 spans several windows and grid cells.
    "omnisr": {"num_feat": 8, "block_num": 1, "res_num": 1, "window_size": 4},
    # TINY:omnisr
    # DITN: one ITL and one SAL on patches of 4, so 13x11 (padded to 16) holds 16 patches.
    "ditn": {"dim": 8, "itl_blocks": 1, "sal_blocks": 1, "patch_size": 4},
    # TINY:ditn
    # DCTLSA: the six blocks are fixed; five features, one per head.
    "dctlsa": {"nf": 5},
    # TINY:dctlsa
    # DRCT: one group (its five dense layers: plain and shifted windows, both MLP widths) of
    # 8 + k * 4 channels, two heads each; window 4, so a 13x11 input pads to 4x3 windows.
    "drct": {
        "embed_dim": 8,
        "depths": (6,),
        "num_heads": (2,),
        "window_size": 4,
        "gc": 4,
        "num_feat": 8,
    },
    "drct-l": {
        "embed_dim": 8,
        "depths": (6,),
        "num_heads": (2,),
        "window_size": 4,
        "gc": 4,
        "num_feat": 8,
    },
    # TINY:drct
    # ATD: one group of a plain and a shifted layer (the first refines the dictionary); window 4
    # and categories of 16, so a 13x11 input pads to 12 windows and 12 category groups.
    "atd": {
        "embed_dim": 8,
        "depths": (2,),
        "num_heads": (2,),
        "window_size": 4,
        "category_size": 16,
        "num_tokens": 4,
        "reducted_dim": 2,
        "convffn_kernel_size": 3,
        "num_feat": 8,
    },
    "atd-light": {
        "embed_dim": 8,
        "depths": (2,),
        "num_heads": (2,),
        "window_size": 4,
        "category_size": 16,
        "num_tokens": 4,
        "reducted_dim": 2,
        "convffn_kernel_size": 3,
    },
    # TINY:atd
    # Every path: unshifted L-SA, RG-SA, shifted L-SA, and group 1's shift schedule; 96
    # features: the position-bias MLP is embed_dim // 32 wide, and its layer norms over one or
    # two units can make the bias independent of the offset (zero gradients).
    "rgt": {"embed_dim": 96, "depth": (3, 1), "num_heads": (2, 2), "split_size": (2, 4)},
    "rgt-s": {"embed_dim": 96, "depth": (3, 1), "num_heads": (2, 2), "split_size": (2, 4)},
    # TINY:rgt
    # Both ways out of a group; the released windows (22: odd shift, 16: even shift).
    "srformer": {"embed_dim": 8, "depths": (3, 2), "num_heads": (2, 2), "num_feat": 8},
    "srformer-light": {"embed_dim": 8, "depths": (3, 2), "num_heads": (2, 2)},
    # TINY:srformer
    # CRAFT: one cross-refinement step (an unshifted and a shifted window block, HFERB, HFB);
    # 64 features, so that the position-bias MLP is two units wide and its bias live (one unit,
    # at 48, makes it a constant per head); 2x4 windows in a 4-pixel padding multiple.
    "craft": {
        "embed_dim": 64,
        "depths": (1,),
        "num_heads": (4,),
        "split_size_0": 2,
        "split_size_1": 4,
        "window_size": 4,
    },
    # TINY:craft
    # GRL: stages of 4 and 1 blocks run every path (shifted and unshifted windows, row and
    # column stripes, shifted stripes). GRL-B's channel attention has embed_dim // 18 hidden
    # units, fed the image mean (alike for two random images): 108 features give six, so that
    # some stay alive for the gradient check.
    "grl": {
        "embed_dim": 108,
        "depths": (4, 1),
        "num_heads_window": (2, 2),
        "num_heads_stripe": (2, 2),
        "window_size": 4,
        "stripe_size": (4, 8),
        "anchor_window_down_factor": 2,
        "num_feat": 8,
    },
    "grl-small": {
        "embed_dim": 8,
        "depths": (4, 1),
        "num_heads_window": (2, 2),
        "num_heads_stripe": (2, 2),
        "window_size": 4,
        "stripe_size": (4, 8),
        "anchor_window_down_factor": 2,
        "num_feat": 8,
    },
    "grl-tiny": {
        "embed_dim": 8,
        "depths": (4, 1),
        "num_heads_window": (2, 2),
        "num_heads_stripe": (2, 2),
        "window_size": 4,
        "stripe_size": (4, 8),
        "anchor_window_down_factor": 2,
    },
    # TINY:grl
    # SeemoRe: one group of 8 features; two experts both used (topk 2), so the router's
    # weights vary and every expert gets a gradient; recursive 2 pads small inputs to 16.
    "seemore": {"num_layers": 1, "embedding_dim": 8, "num_experts": 2, "topk": 2},
    "seemore-b": {"num_layers": 1, "embedding_dim": 8, "num_experts": 2, "topk": 2},
    "seemore-l": {"num_layers": 1, "embedding_dim": 8, "num_experts": 2, "topk": 2},
    # TINY:seemore
    # MoSR: two gated blocks of 8 features, 3x3 depth-wise kernels (the sub-pixel head).
    "mosr": {"n_block": 2, "dim": 8, "kernel_size": 3},
    "mosr-t": {"n_block": 2, "dim": 8, "kernel_size": 3},
    # TINY:mosr
    # MoESR2: one group of one gated block and the multi-scale gate, 8 features (one per
    # Inception branch, two folded by the gate).
    "moesr": {"dim": 8, "n_blocks": 1, "n_block": 1, "upsample_dim": 8},
    # TINY:moesr
    "safmn-bcie": {"dim": 8, "n_blocks": 1, "num_layers": 1},  # two channels per pooling level
    # TINY:safmnbcie
    # FDAT: one group of a window and a channel block, 4x4 windows (13x11 spans several), two
    # channels in the channel gate; each variant keeps its own upsampler.
    **{
        name: {
            "embed_dim": 8,
            "num_groups": 1,
            "depth_per_group": 1,
            "num_heads": 2,
            "window_size": 4,
            "aim_reduction_ratio": 4,
            "mid_dim": 8,
        }
        for name in ("fdat-tiny", "fdat-light", "fdat", "fdat-large", "fdat-xl")
    },
    # TINY:fdat
    # MM-RealSR: one RRDB and its modulation; an estimator with a stride-1 width change, a
    # stride-2 convolution and a last stage.
    "mmrealsr": {
        "num_feat": 8,
        "num_block": 1,
        "num_grow_ch": 4,
        "num_feats": (4, 8, 8),
        "num_blocks": (1, 1, 1),
        "downscales": (1, 2, 1),
    },
    # TINY:mmrealsr
    **{
        name: {
            "dim": 2,
            "resnet_blocks": 1,
            "full_attn": (False, True, False, True, True),
            "attn_depths": (1, 1, 1, 1, 1),
            "mid_attn_depth": 1,
            "self_attn_heads": 2,
            "self_attn_dim_head": 4,
            "num_conv_kernels": 2,
            "style_dim_in": 4,
            "style_dim": 8,
            "style_depth": 1,
        }
        for name in ("aurasr", "aurasr-v2")
    },
    # TINY:aurasr
    # IPT: one encoder and one decoder layer on 8x8 patches of 2x2 tokens, 4 features, 2 heads;
    # all patches in one batch (test_ipt.py checks several batches against one).
    "ipt": {
        "n_feats": 4,
        "patch_size": 8,
        "patch_dim": 2,
        "num_heads": 2,
        "num_layers": 1,
        "crop_batch_size": 4096,
    },
    # TINY:ipt
}


# The paper's depth of every built-in model with the fewest features its blocks allow, for the
# receptive-field measurement (depth sets the field; width only the cost). Wide enough that the
# ReLU networks keep a live path to the edge of the field for a few random seeds.
NARROW: dict[str, dict[str, Any]] = {
    "edsr": {"n_feats": 4},
    "edsr-baseline": {"n_feats": 4},
    "rcan": {"n_feats": 4, "reduction": 4},  # one hidden channel in each channel attention
    "rdn": {"g0": 4, "growth": 4},
    "mdsr": {"n_feats": 4},
    "srdensenet": {"growth": 8, "bottleneck": 8},  # no identity paths: ReLUs need width
    "srresnet": {"channels": 4},
    "srgan": {"channels": 4},
    "msrresnet": {"num_feat": 4},
    "carn": {"n_feats": 8},
    "carn-m": {"n_feats": 8},  # group 4: two channels per group
    "srcnn": {"n1": 4, "n2": 4},
    "fsrcnn": {"d": 4, "s": 4},
    "espcn": {"n1": 4, "n2": 4},
    "vdsr": {"n_feats": 4},
    "imdn": {"nf": 16},  # CCA squeezes 16x: 16 -> 4 distilled -> 1 hidden
    "rfdn": {"nf": 8},  # ESA works on a quarter of the features
    "pan": {"nf": 4, "unf": 4},
    "safmn": {"dim": 4},  # one channel per pooling level
    "span": {"feature_channels": 4},
    # RRDBNet: LeakyReLU keeps every path alive, so one channel suffices.
    "esrgan": {"num_feat": 1, "num_grow_ch": 1},
    "esrgan-psnr": {"num_feat": 1, "num_grow_ch": 1},
    "realesrgan-x4plus": {"num_feat": 1, "num_grow_ch": 1},
    "realesrnet-x4plus": {"num_feat": 1, "num_grow_ch": 1},
    "realesrgan-x2plus": {"num_feat": 1, "num_grow_ch": 1},
    "realesrgan-x4plus-anime-6b": {"num_feat": 1, "num_grow_ch": 1},
    "bsrgan": {"num_feat": 1, "num_grow_ch": 1},
    "bsrnet": {"num_feat": 1, "num_grow_ch": 1},
    "realsr-dped": {"num_feat": 1, "num_grow_ch": 1},
    "realsr-df2k": {"num_feat": 1, "num_grow_ch": 1},
    "realsr-df2k-jpeg": {"num_feat": 1, "num_grow_ch": 1},
    "realesr-animevideov3": {"num_feat": 4},
    "realesr-general-x4v3": {"num_feat": 4},
    "realesr-general-wdn-x4v3": {"num_feat": 4},
    "realesrganv2-animevideo-xsx2": {"num_feat": 4},
    "realesrganv2-animevideo-xsx4": {"num_feat": 4},
    # SwinIR: one feature per head (six heads; eight in SwinIR-L).
    "swinir": {"embed_dim": 6, "num_feat": 4},
    "swinir-light": {"embed_dim": 6},
    "swinir-real": {"embed_dim": 6, "num_feat": 4},
    "swinir-real-large": {"embed_dim": 8, "num_feat": 4},
    # NARROW:swinir
    # Swin2SR: six heads of two channels (one channel would make the cosine attention constant).
    "swin2sr": {"embed_dim": 12, "num_feat": 4},
    "swin2sr-light": {"embed_dim": 12},
    "swin2sr-real": {"embed_dim": 12, "num_feat": 4},
    "swin2sr-compressed": {"embed_dim": 12, "num_feat": 4},
    # NARROW:swin2sr
    # Six heads of one channel; two channels in each CAB and channel attention.
    "hat-s": {"embed_dim": 6, "compress_ratio": 3, "squeeze_factor": 3, "num_feat": 4},
    "hat": {"embed_dim": 6, "compress_ratio": 3, "squeeze_factor": 3, "num_feat": 4},
    "hat-l": {"embed_dim": 6, "compress_ratio": 3, "squeeze_factor": 3, "num_feat": 4},
    "real-hat-gan": {"embed_dim": 6, "compress_ratio": 3, "squeeze_factor": 3, "num_feat": 4},
    # NARROW:hat
    "dat": {"embed_dim": 36},  # six heads: the fewest features they divide above 32
    "dat-s": {"embed_dim": 36},
    "dat-2": {"embed_dim": 36},
    "dat-light": {"embed_dim": 36},
    # NARROW:dat
    "rlfn": {"feature_channels": 4, "esa_channels": 2},  # LeakyReLU keeps the paths alive
    "rlfn-s": {"feature_channels": 4, "esa_channels": 2},
    "rlfn-ntire": {"feature_channels": 4, "mid_channels": 4, "esa_channels": 2},
    "safmn-ntire2023": {"dim": 4},  # one channel per pooling level
    # NARROW:detect
    "plksr": {"dim": 4},  # a quarter of the channels: one under the large kernel
    "plksr-tiny": {"dim": 4},
    "realplksr": {"dim": 4},  # one channel per group-norm group
    # NARROW:plksr
    "swiftsrgan": {"num_channels": 4},  # PReLU and batch norm keep every path alive
    # NARROW:swiftsrgan
    "realcugan": {},  # fixed widths
    "realcugan-pro": {},
    "realcugan-fast": {},
    # NARROW:realcugan
    "omnisr": {"num_feat": 4},  # four heads of one channel
    # NARROW:omnisr
    "ditn": {"dim": 4},
    # NARROW:ditn
    "dctlsa": {"nf": 5},  # five heads of one channel
    # NARROW:dctlsa
    # DRCT: six heads of one channel; gc 6 keeps every dense layer a multiple of six wide.
    "drct": {"embed_dim": 6, "gc": 6, "num_feat": 4},
    "drct-l": {"embed_dim": 6, "gc": 6, "num_feat": 4},
    # NARROW:drct
    "atd": {"embed_dim": 6, "num_feat": 4},  # six heads of one channel
    "atd-light": {"embed_dim": 4},  # four heads of one channel
    # NARROW:atd
    "rgt": {"embed_dim": 36},  # six heads: the fewest features they divide from 32 up
    "rgt-s": {"embed_dim": 36},
    # NARROW:rgt
    "srformer": {"embed_dim": 12, "num_feat": 4},  # a multiple of 4 (the 2x2 fold) and 6 heads
    "srformer-light": {"embed_dim": 12},
    # NARROW:srformer
    "craft": {"embed_dim": 36},  # six heads: the fewest features they divide from 32 up
    # NARROW:craft
    "grl": {"embed_dim": 18, "num_feat": 4},  # 3 + 3 heads of 3; 18: the channel attention
    "grl-small": {"embed_dim": 4, "num_feat": 4},  # 2 + 2 heads of one channel
    "grl-tiny": {"embed_dim": 4},
    # NARROW:grl
    "seemore": {"embedding_dim": 4},
    "seemore-b": {"embedding_dim": 4},
    "seemore-l": {"embedding_dim": 4},
    # NARROW:seemore
    "mosr": {"dim": 8},  # hidden 12, all 8 channels under the depth-wise kernel
    "mosr-t": {"dim": 8},
    # NARROW:mosr
    "moesr": {"dim": 8, "upsample_dim": 8},  # the fewest the Inception mixer and the gate take
    # NARROW:moesr
    "safmn-bcie": {"dim": 8},
    # NARROW:safmnbcie
    # FDAT: the fewest features the heads and the channel gate's 8x reduction divide.
    "fdat-tiny": {"embed_dim": 24, "mid_dim": 4},  # three heads
    "fdat-light": {"embed_dim": 8, "mid_dim": 4},
    "fdat": {"embed_dim": 8, "mid_dim": 4},
    "fdat-large": {"embed_dim": 24, "mid_dim": 4},  # six heads
    "fdat-xl": {"embed_dim": 24, "mid_dim": 4},
    # NARROW:fdat
    # MM-RealSR: RRDBNet's one channel (LeakyReLU); the estimator's stages one channel (two last).
    "mmrealsr": {"num_feat": 1, "num_grow_ch": 1, "num_feats": (1, 1, 1, 2)},
    # NARROW:mmrealsr
    **{
        name: {"dim": 2, "self_attn_dim_head": 2, "style_dim_in": 4, "style_dim": 8}
        for name in ("aurasr", "aurasr-v2")
    },
    # NARROW:aurasr
    # 12 heads over 4 * 3 * 3 channels. A 72-pixel patch holds a whole 64x64 image, whose centre
    # then attends to every corner; at the paper's 48 the chop's patches do not all reach them.
    "ipt": {"n_feats": 4, "patch_size": 72},
    # NARROW:ipt
}
