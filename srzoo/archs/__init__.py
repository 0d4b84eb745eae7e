"""Architecture families; importing this package registers every built-in model."""

from __future__ import annotations

from . import carn, edsr, espcn, fsrcnn, imdn, pan, rcan, rfdn, safmn, span, srcnn, srresnet, vdsr

__all__ = [
    "carn",
    "edsr",
    "espcn",
    "fsrcnn",
    "imdn",
    "pan",
    "rcan",
    "rfdn",
    "safmn",
    "span",
    "srcnn",
    "srresnet",
    "vdsr",
]
