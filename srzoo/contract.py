"""The model contract: what every srzoo network is, in one place.

Every architecture is a plain :class:`torch.nn.Module` that takes a float ``(N, C, H, W)`` tensor
in [0, 1] and returns ``(N, out_channels, H * scale, W * scale)``, and declares ``scale``,
``in_channels`` and ``out_channels`` (:class:`SRModel`). A module built by :func:`srzoo.load` or
:func:`srzoo.create` also carries the :class:`ModelConfig` it was built from, which
:func:`srzoo.save_pretrained` writes out and the registry entry it names completes
(``size_multiple``). The functions here are the only readers and writers of both, so the rest of
srzoo never guesses with ``getattr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import nn

from ._util import unwrap_compiled
from .errors import ArgumentTypeError, UnknownModelError
from .registry import get_spec

__all__ = [
    "CONFIG_ATTR",
    "Fusable",
    "ModelConfig",
    "SRModel",
    "check_contract",
    "model_channels",
    "model_config",
    "model_scale",
    "receptive_field",
    "set_model_config",
    "size_multiple",
    "unwrap_compiled",
]

CONFIG_ATTR = "srzoo_config"
"""The attribute holding a module's :class:`ModelConfig` (a plain attribute: state dicts are
unchanged)."""


@runtime_checkable
class SRModel(Protocol):
    """What srzoo relies on in a super-resolution module.

    Attributes:
        scale: Upscaling factor (an int >= 1).
        in_channels: Channels of the input (3 for RGB, 1 for the Y-channel classics).
        out_channels: Channels of the output.
    """

    scale: int
    in_channels: int
    out_channels: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, in_channels, H, W)`` in [0, 1] -> ``(N, out_channels, H*scale, W*scale)``."""
        ...


@runtime_checkable
class Fusable(Protocol):
    """A re-parameterisable network (SPAN, RepVGG-style blocks): ``fuse()`` folds its training
    branches into plain convolutions for inference, exactly, and returns the module.
    ``train()`` returns to the branches."""

    def fuse(self) -> nn.Module:
        """Fold the training branches for inference; returns ``self``."""
        ...


@dataclass(frozen=True)
class ModelConfig:
    """How a module was built: enough to build it again.

    Args:
        architecture: Registered model name.
        scale: Upscaling factor.
        model_args: Constructor arguments (the variant's defaults with any overrides).
        weights: Where its weights came from (a path, URL or Hub file), for messages;
            ``None`` for random initialisation.
    """

    architecture: str
    scale: int
    model_args: Mapping[str, Any] = field(default_factory=dict)
    weights: str | None = field(default=None, compare=False)

    def describe(self) -> str:
        """``'name' x4 with weights <source>``, for messages."""
        weights = f" with weights {self.weights}" if self.weights else " (random weights)"
        return f"{self.architecture!r} x{self.scale}{weights}"


def set_model_config(model: nn.Module, config: ModelConfig) -> None:
    """Record how ``model`` was built (done by :func:`srzoo.load` and :func:`srzoo.create`).

    Args:
        model: The module.
        config: Its architecture, scale and constructor arguments.

    Example:
        >>> set_model_config(net, ModelConfig("edsr", 4, {"n_resblocks": 32}))
    """
    # object.__setattr__ keeps nn.Module from treating it as anything but a plain attribute.
    object.__setattr__(unwrap_compiled(model), CONFIG_ATTR, config)


def model_config(model: nn.Module) -> ModelConfig | None:
    """How ``model`` was built, when srzoo built it.

    Args:
        model: A module (compiled or not).

    Returns:
        Its :class:`ModelConfig`, or ``None`` for a module srzoo did not build.

    Example:
        >>> model_config(srzoo.create("edsr-baseline", 2)).architecture
        'edsr-baseline'
    """
    config = getattr(unwrap_compiled(model), CONFIG_ATTR, None)
    return config if isinstance(config, ModelConfig) else None


def model_scale(model: nn.Module) -> int:
    """The module's upscaling factor.

    Args:
        model: A module following the contract.

    Returns:
        ``model.scale``.

    Raises:
        ArgumentTypeError: The module declares no integer ``scale`` >= 1.

    Example:
        >>> model_scale(srzoo.create("edsr-baseline", 2))
        2
    """
    scale = getattr(unwrap_compiled(model), "scale", None)
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ArgumentTypeError(
            f"{type(model).__name__} has no integer 'scale' attribute; srzoo models declare "
            "scale, in_channels and out_channels"
        )
    return scale


def model_channels(model: nn.Module) -> int:
    """The module's input channels: 3 (RGB), or 1 for single-channel (Y) networks.

    Args:
        model: A module following the contract.

    Returns:
        ``model.in_channels`` (3 when the module does not declare it).

    Raises:
        ArgumentTypeError: The module declares a channel count other than 1 or 3.

    Example:
        >>> model_channels(srzoo.create("srcnn", 2))
        1
    """
    channels = getattr(unwrap_compiled(model), "in_channels", 3)
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ArgumentTypeError(
            f"{type(model).__name__}.in_channels is {channels}; expected 1 or 3"
        )
    return int(channels)


def size_multiple(model: nn.Module) -> int:
    """The input multiple the network prefers (it pads inside anyway; tiles use it).

    Args:
        model: A module.

    Returns:
        The registry entry's ``size_multiple`` for a module srzoo built, else the module's own
        ``size_multiple`` attribute, else 1.

    Example:
        >>> size_multiple(srzoo.create("edsr-baseline", 2))
        1
    """
    config = model_config(model)
    if config is not None:
        try:
            return get_spec(config.architecture).size_multiple
        except UnknownModelError:
            pass  # registered by a program that is not running now
    value = getattr(unwrap_compiled(model), "size_multiple", 1)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else 1


def receptive_field(model: nn.Module) -> int | Literal["global"] | None:
    """How far, in input pixels, one output pixel looks: what tiling needs to know.

    A module declares ``receptive_field``: an int (the radius; tiles overlapping by that much
    reproduce the untiled output exactly) or ``None`` (the network uses global operations, such
    as channel attention or global pooling, so tiles never reproduce it exactly).

    Args:
        model: A module (compiled or not).

    Returns:
        The radius, ``"global"``, or ``None`` when the module does not say.

    Example:
        >>> receptive_field(srzoo.create("srcnn", 2))
        6
    """
    module = unwrap_compiled(model)
    try:
        value = module.receptive_field
    except AttributeError:
        return None
    if value is None:
        return "global"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ArgumentTypeError(
        f"{type(module).__name__}.receptive_field is {value!r}; expected a radius in input "
        "pixels (an int >= 0) or None for a network with global operations"
    )


def check_contract(model: nn.Module) -> None:
    """Raise unless ``model`` declares the attributes of :class:`SRModel` with sane values.

    Args:
        model: The module to check.

    Raises:
        ArgumentTypeError: A missing or malformed attribute, named in the message.

    Example:
        >>> check_contract(srzoo.create("edsr-baseline", 2))
    """
    module = unwrap_compiled(model)
    if not isinstance(module, nn.Module):
        raise ArgumentTypeError(f"expected a torch.nn.Module, got {type(model).__name__}")
    for attr in ("scale", "in_channels", "out_channels"):
        value = getattr(module, attr, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ArgumentTypeError(
                f"{type(module).__name__}.{attr} is {value!r}; the srzoo contract needs a "
                "positive int"
            )
    if not isinstance(module, SRModel):
        raise ArgumentTypeError(f"{type(module).__name__} does not follow the SRModel protocol")
    receptive_field(module)
