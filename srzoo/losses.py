"""Training losses for fine-tuning: pixel, perceptual and adversarial.

Pixel and perceptual losses take ``(sr, hr)`` and return a scalar; they combine with ``+`` and
scale with ``*``::

    loss = srzoo.losses.L1() + 0.01 * srzoo.losses.Perceptual()
    value = loss(sr, hr)

:class:`GANLoss` takes a discriminator's output instead (the discriminators are in
:mod:`srzoo.discriminators`). :class:`Perceptual` compares VGG19 features the way BasicSR's
``PerceptualLoss`` does: inputs in [0, 1] normalised with the ImageNet mean and standard
deviation, features taken at named layers (``conv5_4`` before its ReLU, ``relu5_4`` after it)
and summed with per-layer weights.

Example:
    >>> loss = srzoo.losses.Charbonnier() + 0.1 * srzoo.losses.Perceptual(weights=None)
    >>> loss(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)).shape
    torch.Size([])
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ArgumentError, ArgumentTypeError, MissingDependencyError, WeightsError
from .weights import read_state_dict

__all__ = [
    "L1",
    "VGG19_LAYERS",
    "Charbonnier",
    "GANLoss",
    "Loss",
    "Perceptual",
    "SumLoss",
]

_TRAIN_EXTRA = "pip install 'srzoo[train]'"


class Loss(nn.Module):
    """Base of the ``(sr, hr) -> scalar`` losses: ``a + b`` and ``w * a`` build a
    :class:`SumLoss`.

    Example:
        >>> loss = srzoo.losses.L1() + 0.5 * srzoo.losses.Charbonnier()
    """

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The loss of ``sr`` against ``hr`` (overridden by each loss)."""
        raise NotImplementedError

    def __add__(self, other: object) -> SumLoss:
        if not isinstance(other, Loss):
            return NotImplemented
        return SumLoss([*_terms(self), *_terms(other)])

    def __mul__(self, weight: object) -> SumLoss:
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            return NotImplemented
        return SumLoss([(float(weight) * w, loss) for w, loss in _terms(self)])

    __rmul__ = __mul__


def _terms(loss: Loss) -> list[tuple[float, Loss]]:
    return list(loss.terms) if isinstance(loss, SumLoss) else [(1.0, loss)]


class SumLoss(Loss):
    """A weighted sum of losses; ``terms`` lists ``(weight, loss)``.

    Args:
        terms: ``(weight, loss)`` pairs.

    Example:
        >>> SumLoss([(1.0, L1()), (0.01, Perceptual(weights=None))])
    """

    def __init__(self, terms: list[tuple[float, Loss]]) -> None:
        super().__init__()
        self.weights = [w for w, _ in terms]
        self.losses = nn.ModuleList([loss for _, loss in terms])

    @property
    def terms(self) -> list[tuple[float, Loss]]:
        """The ``(weight, loss)`` pairs."""
        return [(w, self._loss(i)) for i, w in enumerate(self.weights)]

    def _loss(self, i: int) -> Loss:
        loss = self.losses[i]
        assert isinstance(loss, Loss)
        return loss

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """The weighted sum of every term's loss."""
        total = sr.new_zeros(())
        for w, loss in zip(self.weights, self.losses, strict=True):
            total = total + w * loss(sr, hr)
        return total

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


class L1(Loss):
    """Mean absolute error, the loss of EDSR, RCAN and most PSNR-oriented networks.

    Example:
        >>> srzoo.losses.L1()(sr, hr)
    """

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Mean of ``|sr - hr|``."""
        return F.l1_loss(sr, hr)


class Charbonnier(Loss):
    """``mean(sqrt((sr - hr)^2 + eps^2))``: a differentiable L1 (LapSRN, SwinIR's denoising).

    Args:
        eps: The smoothing constant, in the images' units (1e-3 of the [0, 1] range).

    Example:
        >>> srzoo.losses.Charbonnier(eps=1e-3)(sr, hr)
    """

    def __init__(self, *, eps: float = 1e-3) -> None:
        super().__init__()
        if not eps > 0:
            raise ArgumentError(f"eps must be positive, got {eps!r}")
        self.eps = float(eps)

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Mean Charbonnier distance."""
        return torch.sqrt((sr - hr) ** 2 + self.eps**2).mean()

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


def _vgg19_layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for block, convs in enumerate((2, 2, 4, 4, 4), start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return tuple(names)


#: Names of the layers of VGG19's ``features``, in order (index ``i`` is ``features[i]``).
VGG19_LAYERS: Final = _vgg19_layer_names()
_VGG19_CHANNELS = (64, 128, 256, 512, 512)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg19_features(last: int) -> nn.Sequential:
    """``features[: last + 1]`` of torchvision's VGG19, with its parameter names."""
    layers: list[nn.Module] = []
    channels = 3
    for name in VGG19_LAYERS[: last + 1]:
        block = int(name[-3]) if name.startswith("conv") else 0
        if name.startswith("conv"):
            width = _VGG19_CHANNELS[block - 1]
            layers.append(nn.Conv2d(channels, width, 3, padding=1))
            channels = width
        elif name.startswith("relu"):
            layers.append(nn.ReLU(inplace=False))
        else:
            layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


def _imagenet_vgg19_state(progress: bool) -> dict[str, torch.Tensor]:
    try:
        # optional (the train extra): torchvision names VGG19's ImageNet weights and their hash
        from torchvision.models import VGG19_Weights
    except ImportError as error:
        raise MissingDependencyError(
            "Perceptual(weights='imagenet') takes VGG19's ImageNet weights from torchvision, "
            f"which is not installed: {_TRAIN_EXTRA}, or pass weights='path/to/vgg19.pth'."
        ) from error
    url = VGG19_Weights.IMAGENET1K_V1.url
    try:
        state: dict[str, torch.Tensor] = torch.hub.load_state_dict_from_url(
            url, progress=progress, check_hash=True, weights_only=True
        )
    except Exception as error:  # any network or hash failure: say what to do instead
        raise WeightsError(
            f"cannot fetch VGG19's ImageNet weights from {url} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}). Download that file where "
            "there is a network and pass Perceptual(weights='path/to/vgg19-dcbb9e9d.pth')."
        ) from error
    return state


class Perceptual(Loss):
    """Distance between VGG19 features of ``sr`` and ``hr`` (Johnson et al., SRGAN, ESRGAN).

    As BasicSR's ``PerceptualLoss``: inputs in [0, 1] are normalised with the ImageNet mean and
    standard deviation (``range_norm=True`` first maps [-1, 1] to [0, 1]), features are taken
    at the named layers of VGG19 (``conv5_4``: the convolution's output before its ReLU, as
    ESRGAN; ``relu5_4``: after it), and the loss is ``sum(weight * criterion(f(sr), f(hr)))``
    over the layers, with the ``hr`` features detached. The VGG is frozen (VGG19's
    ``features`` have no dropout or batch norm, so train and eval mode compute the same).

    Args:
        layer_weights: Weight of each layer, by name (:data:`VGG19_LAYERS`); the default is
            ESRGAN's ``{"conv5_4": 1.0}``. Real-ESRGAN uses ``{"conv1_2": 0.1, "conv2_2": 0.1,
            "conv3_4": 1, "conv4_4": 1, "conv5_4": 1}``.
        weights: ``"imagenet"`` (torchvision's ImageNet weights, downloaded once into the
            torch hub cache; needs torchvision: the ``train`` extra), the path of a VGG19
            state dict (torchvision's keys, ``features.N.weight``, with or without the
            ``features.`` prefix), or ``None`` for random weights (tests only).
        criterion: ``"l1"``, ``"l2"`` or ``"fro"`` (Frobenius norm, as BasicSR).
        use_input_norm: Normalise with the ImageNet mean and standard deviation.
        range_norm: Inputs are in [-1, 1] rather than [0, 1].
        progress: Show a progress bar while downloading the ImageNet weights.

    Raises:
        ArgumentError: An unknown layer name or criterion.
        MissingDependencyError: ``weights="imagenet"`` without torchvision.
        WeightsError: The ImageNet weights cannot be downloaded, or the file cannot be read.

    Example:
        >>> loss = srzoo.losses.Perceptual({"conv5_4": 1.0})  # ImageNet VGG19
        >>> loss = srzoo.losses.Perceptual(weights="vgg19-dcbb9e9d.pth")
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        layer_weights: Mapping[str, float] | None = None,
        *,
        weights: str | os.PathLike[str] | None = "imagenet",
        criterion: Literal["l1", "l2", "fro"] = "l1",
        use_input_norm: bool = True,
        range_norm: bool = False,
        progress: bool = True,
    ) -> None:
        super().__init__()
        chosen = dict(layer_weights) if layer_weights is not None else {"conv5_4": 1.0}
        unknown = sorted(set(chosen) - set(VGG19_LAYERS))
        if not chosen or unknown:
            raise ArgumentError(
                f"unknown VGG19 layer(s) {unknown or '(none given)'}; use names such as "
                "'conv5_4' (before the ReLU) or 'relu5_4' (after it)"
            )
        if criterion not in ("l1", "l2", "fro"):
            raise ArgumentError(f"criterion must be 'l1', 'l2' or 'fro', got {criterion!r}")
        self.layer_weights = chosen
        self.criterion = criterion
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        self._indices = {VGG19_LAYERS.index(name): name for name in chosen}
        self.vgg = _vgg19_features(max(self._indices))
        if weights is not None:
            self._load(weights, progress)
        self.vgg.requires_grad_(False)
        self.vgg.eval()
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), False)

    def _load(self, weights: str | os.PathLike[str], progress: bool) -> None:
        if isinstance(weights, str) and weights == "imagenet":
            state = _imagenet_vgg19_state(progress)
        elif isinstance(weights, (str, os.PathLike)):
            state = read_state_dict(weights)
        else:
            raise ArgumentTypeError(
                f"weights must be 'imagenet', a path or None, not {type(weights).__name__}"
            )
        features = {
            k.removeprefix("features."): v
            for k, v in state.items()
            if k.startswith("features.") or k.split(".")[0].isdigit()
        }
        own = self.vgg.state_dict()
        missing = [k for k in own if k not in features or features[k].shape != own[k].shape]
        if missing:
            raise WeightsError(
                f"{weights} is not a VGG19 state dict: {', '.join(missing[:3])} missing or of "
                "another shape. Pass torchvision's vgg19 weights (keys 'features.N.weight')."
            )
        self.vgg.load_state_dict({k: features[k] for k in own})

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """VGG19 features of ``x`` at the chosen layers, by name.

        Args:
            x: Images ``(N, 3, H, W)`` in [0, 1] (or [-1, 1] with ``range_norm``).

        Returns:
            Feature maps by layer name.
        """
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.vgg):
            x = layer(x)
            if i in self._indices:
                out[self._indices[i]] = x
        return out

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Weighted sum over the chosen layers of the feature distance."""
        if sr.shape[-3] != 3:
            raise ArgumentError(f"Perceptual compares RGB images, got {sr.shape[-3]} channels")
        fs = self.features(sr)
        fh = self.features(hr.detach())
        total = sr.new_zeros(())
        for name, weight in self.layer_weights.items():
            a, b = fs[name], fh[name].detach()
            if self.criterion == "l1":
                d = F.l1_loss(a, b)
            elif self.criterion == "l2":
                d = F.mse_loss(a, b)
            else:
                d = torch.linalg.vector_norm(a - b)
            total = total + weight * d
        return total

    def extra_repr(self) -> str:
        return f"layer_weights={self.layer_weights}, criterion={self.criterion!r}"


class GANLoss(nn.Module):
    """Adversarial losses on a discriminator's raw outputs (logits).

    - ``"vanilla"``: binary cross-entropy on logits (SRGAN, ESRGAN, Real-ESRGAN);
    - ``"lsgan"``: least squares against the labels (Mao et al.);
    - ``"hinge"``: for the discriminator ``relu(1 - x)`` on real and ``relu(1 + x)`` on fake,
      for the generator ``-x`` (Miyato et al.).

    Call it as ``loss(logits, target_is_real, for_discriminator=...)``: the discriminator's
    step uses ``for_discriminator=True``; the generator's step passes the discriminator's
    logits of the generated images with ``target_is_real=True, for_discriminator=False``.

    Args:
        kind: ``"vanilla"``, ``"lsgan"`` or ``"hinge"``.
        real_label: Target of real images (vanilla, lsgan).
        fake_label: Target of generated images (vanilla, lsgan).

    Example:
        >>> gan = srzoo.losses.GANLoss("vanilla")
        >>> d_loss = gan(net_d(hr), True) + gan(net_d(sr.detach()), False)
        >>> g_loss = gan(net_d(sr), True, for_discriminator=False)
    """

    def __init__(
        self,
        kind: Literal["vanilla", "lsgan", "hinge"] = "vanilla",
        *,
        real_label: float = 1.0,
        fake_label: float = 0.0,
    ) -> None:
        super().__init__()
        if kind not in ("vanilla", "lsgan", "hinge"):
            raise ArgumentError(f"kind must be 'vanilla', 'lsgan' or 'hinge', got {kind!r}")
        self.kind = kind
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    def forward(
        self, logits: torch.Tensor, target_is_real: bool, *, for_discriminator: bool = True
    ) -> torch.Tensor:
        """The loss of ``logits`` against the real or fake target."""
        if self.kind == "hinge":
            if not for_discriminator:
                return -logits.mean()
            return F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean()
        target = torch.full_like(logits, self.real_label if target_is_real else self.fake_label)
        if self.kind == "vanilla":
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}"
