"""Exception types raised by srzoo.

Every error derives from :class:`SrzooError`, so ``except srzoo.SrzooError`` catches all of them.
Messages say what was wrong and what the user can do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "ExportError",
    "ImageReadError",
    "IncompatibleWeightsError",
    "MissingDependencyError",
    "NonFiniteOutputError",
    "PrecisionWarning",
    "SrzooError",
    "TileOutOfMemoryError",
    "TilingWarning",
    "UnknownModelError",
    "UnsupportedScaleError",
    "WeightsError",
]


class SrzooError(Exception):
    """Base class of every error srzoo raises on purpose."""


class ArgumentError(SrzooError, ValueError):
    """An argument with a value srzoo cannot use (a negative overlap, an empty image, ...).

    Also a :class:`ValueError`, so code written against the standard exceptions still catches it.
    """


class ArgumentTypeError(SrzooError, TypeError):
    """An argument of a type srzoo cannot use (a list where an image belongs, ...).

    Also a :class:`TypeError`, so code written against the standard exceptions still catches it.
    """


class MissingDependencyError(SrzooError, ImportError):
    """An optional package a feature needs is not installed; the message names the extra."""


class ExportError(SrzooError, RuntimeError):
    """A model that cannot be exported (to ONNX), or whose exported file disagrees with it."""


class ImageReadError(SrzooError, ValueError):
    """A file that is not a readable, non-empty image."""


class NonFiniteOutputError(SrzooError, RuntimeError):
    """A model produced NaN or infinite values: its weights are damaged, or it overflowed (often
    in float16). srzoo never turns such values into an image."""


class PrecisionWarning(UserWarning):
    """A reduced precision (float16, bfloat16) that this model is measured or seen to break in
    (NaN, infinity, or a large error against float32): srzoo ran it in float32 instead."""


class TileOutOfMemoryError(SrzooError, RuntimeError):
    """The model ran out of memory even on the smallest tile allowed."""


class TilingWarning(UserWarning):
    """Tiling changes this network's output: it uses global operations (channel attention,
    global pooling), so no overlap makes tiles equal to the untiled result."""


class UnknownModelError(SrzooError, KeyError):
    """A model name that is not registered.

    Args:
        name: The name that was asked for.
        suggestions: The closest registered names, best first.
    """

    def __init__(self, name: str, suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.suggestions = tuple(suggestions)
        hint = (
            f" Did you mean {', '.join(repr(s) for s in self.suggestions)}?"
            if self.suggestions
            else ""
        )
        super().__init__(
            f"unknown model {name!r}.{hint} srzoo.list_models() lists every registered name."
        )

    def __str__(self) -> str:
        # KeyError.__str__ would wrap the message in quotes.
        return str(self.args[0])


class UnsupportedScaleError(SrzooError, ValueError):
    """A scale that the architecture (or its weights) does not support.

    Args:
        name: The model name.
        scale: The scale that was asked for.
        supported: The scales that are supported.
        what: What does not support it (the architecture, or its pretrained weights).
    """

    def __init__(
        self, name: str, scale: int, supported: Sequence[int], what: str = "architecture"
    ) -> None:
        self.name = name
        self.scale = scale
        self.supported = tuple(supported)
        listed = ", ".join(f"x{s}" for s in self.supported) or "none"
        super().__init__(
            f"{name!r} does not support scale x{scale} ({what}); supported scales: {listed}."
        )


class WeightsError(SrzooError):
    """Weights that cannot be found, fetched, verified or read."""


class IncompatibleWeightsError(WeightsError):
    """A state dict that does not fit the module it is loaded into.

    Args:
        name: The model the weights were meant for.
        missing: Keys the module needs that the weights lack.
        unexpected: Keys in the weights that the module does not have.
        mismatched: ``(key, expected shape, found shape)`` for tensors of the wrong shape.
        source: Where the weights came from (a path or URL), if known.
    """

    def __init__(
        self,
        name: str,
        *,
        missing: Sequence[str] = (),
        unexpected: Sequence[str] = (),
        mismatched: Sequence[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
        source: str | None = None,
    ) -> None:
        self.missing = tuple(missing)
        self.unexpected = tuple(unexpected)
        self.mismatched = tuple(mismatched)
        parts: list[str] = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_few(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_few(self.unexpected)})")
        if self.mismatched:
            shown = ", ".join(
                f"{k}: expected {tuple(e)}, found {tuple(f)}" for k, e, f in self.mismatched[:3]
            )
            more = f", and {len(self.mismatched) - 3} more" if len(self.mismatched) > 3 else ""
            parts.append(f"{len(self.mismatched)} of the wrong shape ({shown}{more})")
        origin = f" from {source}" if source else ""
        super().__init__(
            f"weights{origin} do not fit {name!r}: {'; '.join(parts)}. Check the model name, "
            "the scale and any constructor overrides, or pass strict=False to load what fits."
        )


def _few(keys: Sequence[str], n: int = 3) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f", and {len(keys) - n} more" if len(keys) > n else "")
