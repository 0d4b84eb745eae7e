"""srzoo: image super-resolution networks with their official pretrained weights.

Example:
    >>> import srzoo
    >>> srzoo.list_models("edsr*")
    ['edsr', 'edsr-baseline']
    >>> model = srzoo.load("rcan", scale=4, weights=None)
    >>> sr = srzoo.upscale("photo.png", scale=4)  # srzoo's own model, shipped in the package
"""

from __future__ import annotations

from . import metrics
from .api import DEFAULT_MODEL, DEFAULT_WEIGHTS, create, load, load_default
from .errors import (
    IncompatibleWeightsError,
    SrzooError,
    UnknownModelError,
    UnsupportedScaleError,
    WeightsError,
)
from .evaluation import EvalResult, evaluate
from .hub import save_pretrained
from .inference import compare, upscale
from .registry import ModelSpec, Paper, ReportedMetric, WeightSpec, list_models, model_info
from .registry import register_model as register_model
from .weights import download

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_WEIGHTS",
    "EvalResult",
    "IncompatibleWeightsError",
    "ModelSpec",
    "Paper",
    "ReportedMetric",
    "SrzooError",
    "UnknownModelError",
    "UnsupportedScaleError",
    "WeightSpec",
    "WeightsError",
    "__version__",
    "compare",
    "create",
    "download",
    "evaluate",
    "list_models",
    "load",
    "load_default",
    "metrics",
    "model_info",
    "register_model",
    "save_pretrained",
    "upscale",
]
