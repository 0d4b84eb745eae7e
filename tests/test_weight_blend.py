"""Load options that blend two registered checkpoints (``WeightBlend``), such as Real-ESRGAN's
``denoise_strength``: ``t * default + (1 - t) * other`` for every tensor.

Two randomised tiny checkpoints are served from 127.0.0.1 (``tests/hub_server.py``) for a
test-only registration; nothing reaches the internet.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import srzoo
from srzoo.errors import ArgumentError, ArgumentTypeError
from srzoo.registry import _REGISTRY, ModelSpec, WeightBlend, WeightSpec

from .hub_server import HubServer
from .util import TINY, randomize_

NAME = "test-blend"
BASE = "realesr-general-x4v3"
CONFIG = TINY[BASE]
OPTION = "denoise_strength"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private srzoo cache, no offline flags."""
    monkeypatch.setenv("SRZOO_HOME", str(tmp_path / "srzoo-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    for var in ("SRZOO_OFFLINE", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def server() -> Iterator[HubServer]:
    srv = HubServer().start()
    yield srv
    srv.stop()


def _state(seed: int) -> dict[str, torch.Tensor]:
    model = randomize_(srzoo.create(BASE, 4, **CONFIG), seed=seed)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _pickle(state: dict[str, torch.Tensor]) -> bytes:
    buf = io.BytesIO()
    torch.save({"params": state}, buf)  # the official files' container
    return buf.getvalue()


def _spec(server: HubServer, file: str, data: bytes, **kw: object) -> WeightSpec:
    return WeightSpec(
        scale=4,
        source=server.add_file(file, data),
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        license="test-only",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture()
def pair(server: HubServer) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """A test-only model whose default weights blend with its 'wdn' weights."""
    general, wdn = _state(1), _state(2)
    weights = (
        _spec(
            server, "general.pth", _pickle(general), blend=WeightBlend(option=OPTION, other="wdn")
        ),
        _spec(server, "wdn.pth", _pickle(wdn), tag="wdn"),
    )
    base = srzoo.model_info(BASE)
    srzoo.register_model(
        dataclasses.replace(base, name=NAME, defaults={**base.defaults, **CONFIG}, weights=weights),
        overwrite=True,
    )
    yield general, wdn
    _REGISTRY.pop(NAME, None)


def _loaded(strength: float) -> dict[str, torch.Tensor]:
    model = srzoo.load(NAME, denoise_strength=strength)
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def _assert_equal(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(got[k], v), k


# --------------------------------------------------------------------------------------------
# The blend
# --------------------------------------------------------------------------------------------


def test_strength_one_is_the_default_weights_alone(pair: tuple, server: HubServer) -> None:
    general, _ = pair
    _assert_equal(_loaded(1.0), general)
    _assert_equal(_loaded(1), general)
    # As the authors' script: the other checkpoint is not even fetched.
    assert not any(key == "wdn.pth" for _, key in server.requests)


def test_strength_zero_is_the_other_weights(pair: tuple) -> None:
    _, wdn = pair
    _assert_equal(_loaded(0.0), wdn)


@pytest.mark.parametrize("t", [0.5, 0.25, 0.9])
def test_strength_between_interpolates_every_tensor(pair: tuple, t: float) -> None:
    general, wdn = pair
    expected = {k: t * general[k] + (1 - t) * wdn[k] for k in general}
    _assert_equal(_loaded(t), expected)
    assert not torch.equal(expected["body.0.weight"], general["body.0.weight"])


def test_the_default_tag_spelled_out_is_the_same(pair: tuple) -> None:
    general, wdn = pair
    model = srzoo.load(NAME, weights="default", denoise_strength=0.5)
    _assert_equal(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        {k: 0.5 * general[k] + 0.5 * wdn[k] for k in general},
    )


def test_without_the_option_the_default_weights_load(pair: tuple) -> None:
    general, wdn = pair
    plain = srzoo.load(NAME)
    _assert_equal({k: v.contiguous() for k, v in plain.state_dict().items()}, general)
    other = srzoo.load(NAME, weights="wdn")
    _assert_equal({k: v.contiguous() for k, v in other.state_dict().items()}, wdn)


def test_the_config_records_the_option_and_save_pretrained_keeps_the_blend(
    pair: tuple, tmp_path: Path
) -> None:
    model = srzoo.load(NAME, denoise_strength=0.5)
    config = srzoo.model_config(model)
    assert config is not None and config.architecture == NAME
    assert config.weights is not None
    assert "denoise_strength=0.5" in config.weights and "wdn.pth" in config.weights
    assert OPTION not in config.model_args  # not a constructor argument
    plain = srzoo.model_config(srzoo.load(NAME))
    assert plain is not None and plain.weights != config.weights

    srzoo.save_pretrained(model, tmp_path / "blended")
    again = srzoo.load(f"local-dir:{tmp_path / 'blended'}")
    _assert_equal(
        {k: v.contiguous() for k, v in again.state_dict().items()},
        {k: v.contiguous() for k, v in model.state_dict().items()},
    )


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), float("inf")])
def test_strength_outside_zero_one(pair: tuple, bad: float) -> None:
    with pytest.raises(ArgumentError, match=r"denoise_strength must be in \[0, 1\]"):
        srzoo.load(NAME, denoise_strength=bad)


@pytest.mark.parametrize("bad", ["0.5", True, None])
def test_strength_of_the_wrong_type(pair: tuple, bad: object) -> None:
    with pytest.raises(ArgumentTypeError, match="denoise_strength must be a number"):
        srzoo.load(NAME, denoise_strength=bad)


def test_a_model_without_the_option(pair: tuple) -> None:
    with pytest.raises(ArgumentError, match=r"'edsr-baseline' at x2 has no denoise_strength"):
        srzoo.load("edsr-baseline", 2, denoise_strength=0.5)
    with pytest.raises(ArgumentError, match="'realesr-general-wdn-x4v3'"):
        srzoo.load("realesr-general-wdn-x4v3", denoise_strength=0.5)


def test_the_option_with_a_local_file(pair: tuple, tmp_path: Path) -> None:
    general, _ = pair
    path = tmp_path / "mine.pth"
    torch.save(general, path)
    with pytest.raises(ArgumentError, match="cannot apply to weights="):
        srzoo.load(NAME, weights=path, denoise_strength=0.5)
    with pytest.raises(ArgumentError, match="cannot apply to weights="):
        srzoo.load(NAME, weights=str(path), denoise_strength=0.5)


def test_the_option_with_random_weights(pair: tuple) -> None:
    with pytest.raises(ArgumentError, match="cannot apply to weights=None"):
        srzoo.load(NAME, weights=None, denoise_strength=0.5)


def test_the_option_with_the_other_tag(pair: tuple) -> None:
    with pytest.raises(ArgumentError, match="not to weights='wdn'"):
        srzoo.load(NAME, weights="wdn", denoise_strength=0.5)


def test_the_option_with_a_saved_folder(pair: tuple, tmp_path: Path) -> None:
    srzoo.save_pretrained(srzoo.load(NAME), tmp_path / "saved")
    with pytest.raises(ArgumentError, match="saved folder"):
        srzoo.load(f"local-dir:{tmp_path / 'saved'}", denoise_strength=0.5)


def test_a_blend_naming_an_unregistered_tag_is_refused() -> None:
    base = srzoo.model_info(BASE)
    w = WeightSpec(scale=4, source="https://x.org/w.pth", blend=WeightBlend(OPTION, "nope"))
    with pytest.raises(ArgumentError, match="names tag 'nope'"):
        ModelSpec(
            **{**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)}, "weights": (w,)}
        )
