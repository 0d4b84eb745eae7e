"""The model contract, for every built-in model at a tiny configuration.

Output shape at every scale, odd sizes, batches, 1x1 inputs, the input left untouched, gradients
reaching every trainable parameter, and ``torch.compile(fullgraph=True)`` capture.
"""

from __future__ import annotations

import pytest

import srzoo

from .util import TINY, check_compiles, check_forward_contract, check_gradients, randomize_

BUILTIN = [
    n
    for n in srzoo.list_models()
    if srzoo.model_info(n).builder.__module__.startswith("srzoo.archs")
]


def _channels(name: str) -> int:
    return 1 if srzoo.model_info(name).colour == "y" else 3


def test_every_builtin_model_has_a_tiny_configuration() -> None:
    # A family added without one would silently skip every contract test below.
    assert sorted(BUILTIN) == sorted(TINY)


@pytest.mark.parametrize(
    ("name", "scale"), [(n, s) for n in sorted(TINY) for s in srzoo.model_info(n).scales]
)
def test_forward_contract(name: str, scale: int) -> None:
    model = randomize_(srzoo.create(name, scale, **TINY[name]), seed=scale)
    check_forward_contract(model, scale, channels=_channels(name))


@pytest.mark.parametrize("name", sorted(TINY))
def test_gradients_reach_every_parameter(name: str) -> None:
    model = randomize_(srzoo.create(name, 2, **TINY[name]))
    check_gradients(model, channels=_channels(name))


@pytest.mark.parametrize("name", sorted(TINY))
def test_fullgraph_compile(name: str) -> None:
    model = randomize_(srzoo.create(name, None, **TINY[name]))
    check_compiles(model, channels=_channels(name))
