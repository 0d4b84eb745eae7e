"""srzoo: image super-resolution networks with their official pretrained weights.

Example:
    >>> import srzoo
    >>> srzoo.list_models("edsr*")
    ['edsr', 'edsr-baseline']
    >>> model = srzoo.load("rcan", scale=4, weights=None)
    >>> sr = srzoo.upscale("photo.png", scale=4)  # srzoo's own model, shipped in the package
"""

from __future__ import annotations

from . import bench, contract, data, discriminators, losses, metrics, train
from ._version import __version__
from .api import (
    DEFAULT_MODEL,
    DEFAULT_WEIGHTS,
    LoadReport,
    create,
    load,
    load_default,
    load_file,
    load_weights,
)
from .compare import compare
from .contract import ModelConfig, SRModel, model_config
from .detect import detect
from .errors import (
    ArgumentError,
    ArgumentTypeError,
    ExportError,
    ImageReadError,
    IncompatibleWeightsError,
    MissingDependencyError,
    NonFiniteOutputError,
    PrecisionWarning,
    SrzooError,
    TileOutOfMemoryError,
    TilingWarning,
    UnknownModelError,
    UnsupportedScaleError,
    WeightsError,
)
from .evaluation import EvalResult, evaluate
from .export import export_onnx
from .hub import save_pretrained
from .inference import upscale
from .registry import (
    Detected,
    ModelSpec,
    Paper,
    PrecisionVerdict,
    ReportedMetric,
    WeightSpec,
    list_models,
    model_info,
)
from .registry import register_model as register_model
from .weights import download

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_WEIGHTS",
    "ArgumentError",
    "ArgumentTypeError",
    "Detected",
    "EvalResult",
    "ExportError",
    "ImageReadError",
    "IncompatibleWeightsError",
    "LoadReport",
    "MissingDependencyError",
    "ModelConfig",
    "ModelSpec",
    "NonFiniteOutputError",
    "Paper",
    "PrecisionVerdict",
    "PrecisionWarning",
    "ReportedMetric",
    "SRModel",
    "SrzooError",
    "TileOutOfMemoryError",
    "TilingWarning",
    "UnknownModelError",
    "UnsupportedScaleError",
    "WeightSpec",
    "WeightsError",
    "__version__",
    "bench",
    "compare",
    "contract",
    "create",
    "data",
    "detect",
    "discriminators",
    "download",
    "evaluate",
    "export_onnx",
    "list_models",
    "load",
    "load_default",
    "load_file",
    "load_weights",
    "losses",
    "metrics",
    "model_config",
    "model_info",
    "register_model",
    "save_pretrained",
    "train",
    "upscale",
]
