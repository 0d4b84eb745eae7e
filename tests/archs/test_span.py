"""SPAN: parameter counts, layouts against spandrel on identical random weights, and the
re-parameterisation: ``fuse()`` folds each Conv3XC into one 3x3 convolution for inference.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import srzoo
from srzoo.archs.span import SPAN, Conv3XC

from ..util import TINY, assert_loads_correctly, check_compiles, randomize_

# The eight tensors each Conv3XC's kernel is computed from.
CONV3XC_SOURCES = [
    f"{c}.{p}" for c in ("sk", "conv.0", "conv.1", "conv.2") for p in ("weight", "bias")
]
N_CONV3XC = 20  # conv_1, three per block, conv_2


def _ref_span(**config: Any) -> nn.Module:
    arch = pytest.importorskip("spandrel.architectures.SPAN")
    model: nn.Module = arch.SPAN(**config)
    return model


def _spandrel_detected(path: Path) -> nn.Module:
    # spandrel's own loader detects the configuration from the file.
    model: nn.Module = pytest.importorskip("spandrel").ModelLoader().load_from_file(path).model
    return model


# --------------------------------------------------------------------------------------------
# Parameter counts and layouts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_parameter_counts_match_spandrel(scale: int) -> None:
    with torch.device("meta"):
        ref = _ref_span(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=scale)
    assert srzoo.model_info("span").num_params(scale) == sum(
        t.numel() for t in ref.state_dict().values()
    )


def test_span_inference_form_has_the_papers_size() -> None:
    # SPAN's "426K" counts the re-parameterised network: one 3x3 kernel per Conv3XC.
    with torch.device("meta"):
        net = srzoo.create("span", 4)
    state = net.state_dict()
    branches = (".sk.", ".conv.")
    assert sum(v.numel() for k, v in state.items() if not any(b in k for b in branches)) == 426_288


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_span_matches_spandrel(tmp_path: Path, scale: int) -> None:
    assert_loads_correctly(
        tmp_path,
        "span",
        scale,
        _ref_span(num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=scale),
        overrides={"feature_channels": 16},
        reload_reference=_spandrel_detected,
        seed=4,
        size=(9, 14),
        relative=True,
    )


def test_span_full_size_matches_spandrel(tmp_path: Path) -> None:
    assert_loads_correctly(
        tmp_path,
        "span",
        4,
        _ref_span(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=4),
        container=lambda state: {"params_ema": state},
        seed=9,
        size=(11, 10),
        relative=True,
    )


# --------------------------------------------------------------------------------------------
# Re-parameterisation
# --------------------------------------------------------------------------------------------


def _span(seed: int = 14, scale: int = 2, **overrides: Any) -> SPAN:
    config = overrides or TINY["span"]
    model = randomize_(srzoo.create("span", scale, **config), seed=seed).eval()
    assert isinstance(model, SPAN)
    return model


def _eval(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        y: torch.Tensor = model(x)
    return y


def _fresh_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The eval output of a new, never fused module holding ``model``'s current tensors."""
    twin = srzoo.create("span", model.scale, **TINY["span"]).to(x.dtype).eval()
    twin.load_state_dict(model.state_dict())
    # Not in the state dict, and possibly rounded by a dtype change.
    twin.mean = model.get_buffer("mean").clone()
    return _eval(twin, x)


def _fused_kernels(model: nn.Module) -> dict[str, torch.Tensor | None]:
    return {
        f"{name}.{attr}": getattr(m, attr)
        for name, m in model.named_modules()
        if isinstance(m, Conv3XC)
        for attr in ("fused_weight", "fused_bias")
    }


def _stored_kernels(model: nn.Module) -> dict[str, torch.Tensor]:
    kernels = _fused_kernels(model)
    stored = {k: v for k, v in kernels.items() if v is not None}
    assert len(stored) == len(kernels) == 2 * N_CONV3XC, "the model is not fused"
    return stored


def _peak_close(got: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    # Random weights in a network that works on 0..255 give outputs far from [0, 1].
    bound = tol * max(1.0, expected.abs().max().item())
    diff = (got - expected).abs().max().item()
    assert diff <= bound, f"max difference {diff:.3g} exceeds {bound:.3g}"


@pytest.mark.parametrize(
    ("config", "scale", "channels_last"),
    [
        pytest.param(TINY["span"], 2, False, id="tiny-x2"),
        pytest.param(TINY["span"], 3, False, id="tiny-x3"),
        pytest.param(TINY["span"], 4, True, id="tiny-x4-channels-last"),
        pytest.param({"feature_channels": 48}, 4, False, id="full-x4"),
    ],
)
def test_fused_outputs_match_unfused(
    config: dict[str, Any], scale: int, channels_last: bool
) -> None:
    model = _span(seed=scale, scale=scale, **config)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 9, 8)
    unfused = _eval(model, x)
    fused = _eval(model.fuse(), x)
    _stored_kernels(model)
    torch.testing.assert_close(fused, unfused, rtol=0, atol=1e-5)


def test_span_training_and_fused_forms_agree() -> None:
    # The eval-mode kernel is derived from the training branches; both forms must compute the
    # same function, borders included (the training path pads before its first 1x1 conv).
    model = randomize_(srzoo.create("span", 3, feature_channels=8), seed=12)
    x = torch.rand(1, 3, 7, 6)
    with torch.no_grad():
        trained = model.train()(x)
        unfused = model.eval()(x)
        fused = model.fuse()(x)
    for y in (unfused, fused):
        torch.testing.assert_close(y, trained, rtol=1e-5, atol=1e-5 * trained.abs().max().item())


def test_span_ignores_a_stale_eval_conv() -> None:
    # Checkpoints saved in training form carry whatever eval_conv held at save time; like the
    # original, the output depends on the training branches only, fused or not.
    model = _span(seed=13)
    x = torch.rand(1, 3, 6, 6)
    before = _eval(model, x)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "eval_conv" in name:
                p.zero_()
    torch.testing.assert_close(_eval(model, x), before, rtol=0, atol=0)
    torch.testing.assert_close(_eval(model.fuse(), x), before, rtol=0, atol=0)


def test_fuse_returns_the_model_and_is_idempotent() -> None:
    model = _span()
    x = torch.rand(2, 3, 7, 6)
    assert model.fuse() is model
    block = model.block_1.c1_r
    assert block.fuse() is block
    first = {k: v.clone() for k, v in _stored_kernels(model).items()}
    y = _eval(model, x)
    model.fuse().fuse()
    again = _stored_kernels(model)
    assert all(torch.equal(v, again[k]) for k, v in first.items())
    assert torch.equal(_eval(model, x), y)


def test_fuse_refuses_training_mode() -> None:
    model = randomize_(srzoo.create("span", 2, **TINY["span"]))
    with pytest.raises(srzoo.ArgumentError, match=r"SPAN\.fuse\(\).*\.eval\(\)"):
        model.fuse()
    with pytest.raises(srzoo.ArgumentError, match=r"Conv3XC\.fuse\(\)"):
        model.conv_1.fuse()
    assert all(v is None for v in _fused_kernels(model).values())


def test_fuse_leaves_the_state_dict_unchanged(tmp_path: Path) -> None:
    model = _span()
    # The official files' eval_conv tensors are loaded and saved as they are, never rewritten.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "eval_conv" in name:
                p.copy_(torch.randn(p.shape))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = [name for name, _ in model.named_buffers()]
    model.fuse()
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert not any("fused" in k for k in after)
    assert any("eval_conv" in k for k in after)
    # The fused kernels are buffers (they follow .to() and copies) that no state dict holds.
    assert set(buffers) < {name for name, _ in model.named_buffers()}

    path = tmp_path / "span_fused.pth"
    torch.save(model.state_dict(), path)
    reloaded = srzoo.load("span", 2, weights=path, **TINY["span"])
    x = torch.rand(1, 3, 7, 5)
    torch.testing.assert_close(_eval(reloaded, x), _eval(model, x), rtol=0, atol=1e-5)
    assert all(torch.equal(reloaded.state_dict()[k], v) for k, v in before.items())


def test_train_drops_the_fused_kernels_and_uses_the_branches() -> None:
    model = _span().fuse()
    x = torch.rand(2, 3, 9, 10)
    model.train()
    assert all(v is None for v in _fused_kernels(model).values())
    model(x).square().mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"
    # Back in eval mode without fusing: the kernel is computed from the branches again.
    model.eval()
    assert all(v is None for v in _fused_kernels(model).values())
    assert torch.equal(_eval(model, x), _fresh_output(model, x))


def test_which_kernel_an_eval_forward_uses() -> None:
    # The stored kernel serves forwards that need no gradient for the branch parameters; when
    # autograd needs them, the forward computes the kernel from the branches.
    model = _span().fuse()
    x = torch.rand(1, 3, 6, 5)
    expected = _eval(model, x)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, Conv3XC):
                m.get_buffer("fused_weight").zero_()
    assert not torch.equal(_eval(model, x), expected), "the fused kernel was not used"
    with torch.enable_grad():
        y = model(x)
    _peak_close(y.detach(), expected, 1e-5)
    model.requires_grad_(False)
    with torch.enable_grad():
        assert not torch.equal(model(x), expected), "frozen parameters need no branches"


def test_eval_mode_gradients_reach_every_branch_parameter_when_fused() -> None:
    # Fine-tuning without calling train() (frozen batch statistics elsewhere, say) must not
    # silently lose the gradients of the re-parameterised layers.
    model = _span().fuse()
    x = torch.rand(1, 3, 6, 5)
    y = model(x)
    _peak_close(y.detach(), _eval(model, x), 1e-5)
    y.square().mean().backward()
    for name, p in model.named_parameters():
        if ".sk." in name or ".conv." in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reached {name}"


def test_input_gradients_through_fused_kernels() -> None:
    # A frozen model differentiated with respect to its input (attacks, perceptual guidance):
    # a kernel fused under inference mode must still be usable in the backward pass.
    model = _span().requires_grad_(False)
    with torch.inference_mode():
        model.fuse()
    x = torch.rand(1, 3, 6, 5)
    xg = x.clone().requires_grad_()
    model(xg).square().mean().backward()
    twin = _span().requires_grad_(False)
    xt = x.clone().requires_grad_()
    twin(xt).square().mean().backward()
    assert xg.grad is not None and xt.grad is not None
    torch.testing.assert_close(xg.grad, xt.grad, rtol=1e-5, atol=1e-7)


def _scale_in_place(model: nn.Module, name: str) -> None:
    with torch.no_grad():
        model.get_parameter(name).mul_(1.5)


def _scale_through_data(model: nn.Module, name: str) -> None:
    # As EMA updates do: ``.data`` writes leave the parameter's version counter unchanged.
    p = model.get_parameter(name)
    p.data.copy_(p.data * 1.5)


def _scale_by_loading(model: nn.Module, name: str) -> None:
    state = model.state_dict()
    state[name] = state[name] * 1.5
    model.load_state_dict(state)


def _scale_by_assigning(model: nn.Module, name: str) -> None:
    state = model.state_dict()
    state[name] = state[name] * 1.5
    model.load_state_dict(state, assign=True)


def _scale_one_tensor_non_strictly(model: nn.Module, name: str) -> None:
    model.load_state_dict({name: model.state_dict()[name] * 1.5}, strict=False)


UPDATES = [_scale_in_place, _scale_through_data, _scale_by_loading, _scale_by_assigning]
LOADS = [_scale_by_loading, _scale_by_assigning, _scale_one_tensor_non_strictly]


@pytest.mark.parametrize("update", UPDATES)
def test_an_unfused_eval_model_follows_every_parameter(update: Any) -> None:
    # Correctness never depends on fuse(): without it, every forward reads the branches.
    model = _span()
    x = torch.rand(1, 3, 6, 5)
    for source in CONV3XC_SOURCES:
        name = f"block_2.c3_r.{source}"
        before = _eval(model, x)
        update(model, name)
        after = _eval(model, x)
        assert not torch.equal(after, before), f"changing {name} left the output unchanged"
        assert torch.equal(after, _fresh_output(model, x)), f"stale kernel after changing {name}"


@pytest.mark.parametrize("update", LOADS)
def test_load_state_dict_refreshes_the_fused_kernels(update: Any) -> None:
    model = _span().fuse()
    x = torch.rand(1, 3, 6, 5)
    for source in CONV3XC_SOURCES:
        name = f"block_2.c3_r.{source}"
        before = _eval(model, x)
        update(model, name)
        _stored_kernels(model)  # still fused
        after = _eval(model, x)
        assert not torch.equal(after, before), f"loading {name} left the output unchanged"
        _peak_close(after, _fresh_output(model, x), 1e-5)


def test_fuse_again_after_in_place_updates() -> None:
    # Fine-tuning in eval mode with an eval-mode validation between steps: the documented
    # fuse() after each step brings the stored kernels up to date.
    model = _span().fuse()
    x = torch.rand(1, 3, 6, 5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        before = _eval(model, x)
        optimizer.zero_grad()
        model(x).square().mean().backward()
        optimizer.step()
        after = _eval(model.fuse(), x)
        assert not torch.equal(after, before)
        _peak_close(after, _fresh_output(model, x), 1e-5)


def test_fuse_computes_in_full_precision_under_autocast() -> None:
    model = _span()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.fuse()
    twin = _span().fuse()
    kernels, expected = _stored_kernels(model), _stored_kernels(twin)
    for key, value in kernels.items():
        assert value.dtype == torch.float32
        assert torch.equal(value, expected[key]), key


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-5), (torch.float16, 1e-2)])
def test_fused_kernels_follow_dtype_changes(dtype: torch.dtype, tol: float) -> None:
    model = _span().fuse().to(dtype)
    assert all(v is not None and v.dtype == dtype for v in _fused_kernels(model).values())
    x = torch.rand(1, 3, 6, 5, dtype=dtype)
    y = _eval(model, x)
    assert y.dtype == dtype
    # Fused in float32 and rounded once, against fused from the rounded branches.
    _peak_close(y.double(), _fresh_output(model, x).double(), tol)


def test_a_fused_model_deep_copies_and_pickles() -> None:
    model = _span().fuse()
    x = torch.rand(1, 3, 6, 5)
    y = _eval(model, x)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        _stored_kernels(twin)
        assert torch.equal(_eval(twin, x), y)
        # The copy holds its own tensors and its own load hook: loading changes only the copy.
        state = twin.state_dict()
        state["conv_2.conv.1.weight"] = state["conv_2.conv.1.weight"] * 1.5
        twin.load_state_dict(state)
        changed = _eval(twin, x)
        assert not torch.equal(changed, y)
        _peak_close(changed, _fresh_output(twin, x), 1e-5)
        assert torch.equal(_eval(model, x), y)


@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
def test_fullgraph_compile(fused: bool) -> None:
    model = _span()
    if fused:
        model.fuse()
    check_compiles(model)
    assert all((v is not None) == fused for v in _fused_kernels(model).values())
