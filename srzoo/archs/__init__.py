"""Architecture families; importing this package registers every built-in model.

Re-parameterisable networks (SPAN) follow the RepVGG convention: ``model.eval().fuse()`` folds
their training-time branches into plain convolutions for inference, in place, and returns the
model. Fusing leaves the outputs (to float rounding) and the state dict unchanged, is idempotent,
and is undone by ``model.train()``, so a loader may call ``fuse`` on any eval-mode model that has
one. See :mod:`srzoo.archs.span`.
"""

from __future__ import annotations

from . import (
    carn,
    compact,
    edsr,
    espcn,
    esrgan,
    fsrcnn,
    imdn,
    mdsr,
    pan,
    rcan,
    rdn,
    rfdn,
    rlfn,
    safmn,
    span,
    srcnn,
    srdensenet,
    srresnet,
    vdsr,
)

__all__ = [
    "carn",
    "compact",
    "edsr",
    "espcn",
    "esrgan",
    "fsrcnn",
    "imdn",
    "mdsr",
    "pan",
    "rcan",
    "rdn",
    "rfdn",
    "rlfn",
    "safmn",
    "span",
    "srcnn",
    "srdensenet",
    "srresnet",
    "vdsr",
]
