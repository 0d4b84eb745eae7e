"""Architecture families; importing this package registers every built-in model.

The window-attention families (SwinIR, Swin2SR, HAT, DAT and their successors) share the pieces
in ``_window``: padding to the window multiple inside ``forward``, window partitions,
relative-position indices and shift masks computed on the input's device and cached per shape;
and the frame in ``_transformer``: token layout, MLP, stochastic depth, the convolutions closing
each residual group, and SwinIR's reconstruction heads under their official key names.

Re-parameterisable networks (SPAN) follow the RepVGG convention: ``model.eval().fuse()`` folds
their training-time branches into plain convolutions for inference, in place, and returns the
model. Fusing leaves the outputs (to float rounding) and the state dict unchanged, is idempotent,
and is undone by ``model.train()``, so a loader may call ``fuse`` on any eval-mode model that has
one. See :mod:`srzoo.archs.span`.
"""

from __future__ import annotations

from . import (
    atd,
    carn,
    compact,
    dat,
    dctlsa,
    ditn,
    drct,
    edsr,
    espcn,
    esrgan,
    fsrcnn,
    hat,
    imdn,
    mdsr,
    omnisr,
    pan,
    plksr,
    rcan,
    rdn,
    realcugan,
    rfdn,
    rgt,
    rlfn,
    safmn,
    span,
    srcnn,
    srdensenet,
    srformer,
    srresnet,
    swiftsrgan,
    swin2sr,
    swinir,
    vdsr,
)

__all__ = [
    "atd",
    "carn",
    "compact",
    "dat",
    "dctlsa",
    "ditn",
    "drct",
    "edsr",
    "espcn",
    "esrgan",
    "fsrcnn",
    "hat",
    "imdn",
    "mdsr",
    "omnisr",
    "pan",
    "plksr",
    "rcan",
    "rdn",
    "realcugan",
    "rfdn",
    "rgt",
    "rlfn",
    "safmn",
    "span",
    "srcnn",
    "srdensenet",
    "srformer",
    "srresnet",
    "swiftsrgan",
    "swin2sr",
    "swinir",
    "vdsr",
]
