"""Architecture families; importing this package registers every built-in model."""

from __future__ import annotations

from . import edsr, rcan, srresnet

__all__ = ["edsr", "rcan", "srresnet"]
