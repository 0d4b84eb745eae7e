"""RDN: the Residual Dense Network.

Paper: Zhang, Tian, Kong, Zhong, Fu, "Residual Dense Network for Image Super-Resolution",
CVPR 2018, arXiv:1802.08797.

Parameter names follow Coloquinte/torchSR ``torchsr/models/rdn.py`` (``sfe1`` / ``sfe2`` /
``rdbs.N.layers.M.conv`` / ``rdbs.N.lff`` / ``gff`` / ``upscale`` / ``output``), the network of
sanghyun-son/EDSR-PyTorch ``src/model/rdn.py`` with the key names of yjn870/RDN-pytorch, whose
PyTorch weights torchSR republishes. Like those weights the network works on RGB in [0, 1], with
no mean shift. EDSR-PyTorch's own key names (``SFENet1`` / ``RDBs.N.convs.M.conv.0`` /
``RDBs.N.LFF`` / ``GFF`` / ``UPNet``, a network trained on 0..255) are converted on load by
:func:`convert_rdn`.

Weights: none registered. The only PyTorch checkpoints are yjn870/RDN-pytorch's retrained
weights (Dropbox) and torchSR's copies of them (``rdn_x{2,3,4}.pt`` in its v1.0.3 release); no
sha256 or byte size of any of them is published, and the authors released Torch7 models only.
Any of these files loads with ``srzoo.load("rdn", scale=s, weights=path)``.

Receptive field: ``sfe1``, ``sfe2``, the ``D * C`` 3x3 convolutions of the dense blocks and the
3x3 convolution of ``gff`` reach ``D * C + 3`` low-resolution pixels (131 for RDN); the upsampler
and ``output`` add 2 at every scale (133).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..errors import UnsupportedScaleError
from ..registry import (
    Detected,
    ModelSpec,
    Paper,
    Shapes,
    StateDict,
    register_detector,
    register_model,
    shuffle_factor,
)
from ._blocks import (
    conv3x3,
    image_forward,
    receptive_radius,
    rename_keys,
    shuffle_factors,
    upsampler_steps,
)

__all__ = ["RDN", "ResidualDenseBlock", "convert_rdn", "detect_rdn"]


class _DenseLayer(nn.Module):
    """A 3x3 convolution and ReLU whose output is appended to its input's channels."""

    def __init__(self, in_channels: int, growth: int) -> None:
        super().__init__()
        self.conv = conv3x3(in_channels, growth)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.relu(self.conv(x))), dim=1)


class ResidualDenseBlock(nn.Module):
    """Residual dense block: ``C`` densely connected layers, 1x1 local fusion, local skip.

    Args:
        g0: Channels in and out of the block.
        growth: Channels each layer adds (``G``).
        n_layers: Layers in the block (``C``).
    """

    def __init__(self, *, g0: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            *(_DenseLayer(g0 + i * growth, growth) for i in range(n_layers))
        )
        self.lff = nn.Conv2d(g0 + n_layers * growth, g0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lff(self.layers(x)) + x


class RDN(nn.Module):
    """Residual Dense Network.

    Takes and returns RGB in [0, 1].

    Args:
        scale: Upscaling factor: 2, 3 or 4.
        g0: Channels between the blocks (``G0``, 64).
        n_blocks: Residual dense blocks (``D``, 16 in configuration B, 20 in A).
        n_layers: Layers per block (``C``, 8 in B, 6 in A).
        growth: Growth rate of the dense layers, and the upsampler's width (``G``, 64 in B,
            32 in A).
        in_channels: Input channels.
        out_channels: Output channels.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        g0: int = 64,
        n_blocks: int = 16,
        n_layers: int = 8,
        growth: int = 64,
        in_channels: int = 3,
        out_channels: int = 3,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise UnsupportedScaleError("RDN", scale, (2, 3, 4))
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.sfe1 = conv3x3(in_channels, g0)
        self.sfe2 = conv3x3(g0, g0)
        self.rdbs = nn.ModuleList(
            ResidualDenseBlock(g0=g0, growth=growth, n_layers=n_layers) for _ in range(n_blocks)
        )
        self.gff = nn.Sequential(nn.Conv2d(n_blocks * g0, g0, 1), conv3x3(g0, g0))
        # Each stage widens to growth * f * f and shuffles to growth channels.
        stages: list[nn.Module] = []
        width = g0
        for factor in shuffle_factors(scale, name="RDN"):
            stages += [conv3x3(width, growth * factor * factor), nn.PixelShuffle(factor)]
            width = growth
        self.upscale = nn.Sequential(*stages)
        self.output = conv3x3(growth, out_channels)
        # sfe1, sfe2, the blocks' 3x3 layers and gff's 3x3 at LR; the upsampler; output at HR.
        self.receptive_field: int | None = receptive_radius(
            [("conv", n_blocks * n_layers + 3), *upsampler_steps(scale), ("conv", 1)]
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shallow = self.sfe1(x)
        h = self.sfe2(shallow)
        outs: list[torch.Tensor] = []
        for block in self.rdbs:
            h = block(h)
            outs.append(h)
        h = self.gff(torch.cat(outs, dim=1)) + shallow
        return self.output(self.upscale(h))


_EDSR_PYTORCH_RULES = (
    (r"SFENet1\.", "sfe1."),
    (r"SFENet2\.", "sfe2."),
    (r"RDBs\.(\d+)\.convs\.(\d+)\.conv\.0\.", r"rdbs.\1.layers.\2.conv."),
    (r"RDBs\.(\d+)\.LFF\.", r"rdbs.\1.lff."),
    (r"GFF\.", "gff."),
)
_EDSR_PYTORCH_RANGE = 255.0


def convert_rdn(state: StateDict, module: nn.Module) -> StateDict:
    """Map an RDN state dict in EDSR-PyTorch's layout to :class:`RDN` keys; others unchanged.

    EDSR-PyTorch names the layers differently and ends with ``UPNet`` (the upsampler and the
    last convolution in one ``Sequential``), and trains on 0..255 input. Every layer of RDN is
    a convolution, a ReLU, a concatenation or a sum, so ``f(255 x) = 255 f(x)`` once every bias
    is divided by 255: dividing the biases makes the network take and return [0, 1] exactly.
    A state dict without ``SFENet1.weight`` (torchSR's and yjn870's layout) is returned as is.

    Args:
        state: The checkpoint's tensors (already unwrapped).
        module: The :class:`RDN` they are meant for.

    Returns:
        The state dict in srzoo's keys.

    Example:
        >>> convert_rdn(torch.load("rdn_x2_edsr_pytorch.pt"), net)["sfe1.weight"].shape
        torch.Size([64, 3, 3, 3])
    """
    if "SFENet1.weight" not in state:
        return dict(state)
    stages = len(shuffle_factors(module.scale)) if isinstance(module, RDN) else 1
    # UPNet holds (conv, shuffle) per stage, then the last convolution.
    last = 2 * stages
    rules = (
        *_EDSR_PYTORCH_RULES,
        (rf"UPNet\.{last}\.", "output."),
        (r"UPNet\.", "upscale."),
    )
    converted = rename_keys(state, rules)
    return {
        k: v / _EDSR_PYTORCH_RANGE if re.search(r"\.bias$", k) else v for k, v in converted.items()
    }


_PAPER = Paper(
    title="Residual Dense Network for Image Super-Resolution",
    venue="CVPR",
    year=2018,
    arxiv="1802.08797",
)

register_model(
    ModelSpec(
        name="rdn",
        family="rdn",
        builder=RDN,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",
        description="RDN: 16 residual dense blocks of 8 layers, growth 64 (configuration B)",
        defaults={"g0": 64, "n_blocks": 16, "n_layers": 8, "growth": 64},
        converter=convert_rdn,
    )
)


_LAYOUTS = {
    "torchsr": (
        "sfe1.weight",
        "sfe2.weight",
        "rdbs.0.layers.0.conv.weight",
        "rdbs.0.lff.weight",
        "gff.0.weight",
        "upscale.0.weight",
        "output.weight",
    ),
    "edsr-pytorch": (
        "SFENet1.weight",
        "SFENet2.weight",
        "RDBs.0.convs.0.conv.0.weight",
        "RDBs.0.LFF.weight",
        "GFF.0.weight",
        "UPNet.0.weight",
    ),
}


def detect_rdn(shapes: Shapes) -> Detected | None:
    """Recognise an RDN checkpoint (torchSR / yjn870 keys, or EDSR-PyTorch's) from its shapes.

    Reads ``g0``, ``n_blocks``, ``n_layers``, ``growth``, the image channels and the scale (the
    upsampler's stages). Nothing is left to a default.

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an RDN.
    """
    if shapes.has(*_LAYOUTS["torchsr"]):
        layout, first = "torchsr", "sfe1.weight"
        blocks = shapes.count(r"rdbs\.(\d+)\.lff\.weight")
        layers = shapes.count(r"rdbs\.0\.layers\.(\d+)\.conv\.weight")
        growth = shapes.dim("rdbs.0.layers.0.conv.weight")
        stages = shapes.indices(r"upscale\.(\d+)\.weight")
        last = "output.weight"
        up = "upscale"
    elif shapes.has(*_LAYOUTS["edsr-pytorch"]):
        layout, first = "edsr-pytorch", "SFENet1.weight"
        blocks = shapes.count(r"RDBs\.(\d+)\.LFF\.weight")
        layers = shapes.count(r"RDBs\.0\.convs\.(\d+)\.conv\.0\.weight")
        growth = shapes.dim("RDBs.0.convs.0.conv.0.weight")
        *stages, tail = shapes.indices(r"UPNet\.(\d+)\.weight")
        last = f"UPNet.{tail}.weight"
        up = "UPNet"
    else:
        return None
    g0 = shapes.dim(first)
    widths = [g0, *([growth] * (len(stages) - 1))]
    factors = [
        shuffle_factor(shapes.dim(f"{up}.{i}.weight"), growth)
        * (shapes.dim(f"{up}.{i}.weight", 1) == w)
        for i, w in zip(stages, widths, strict=True)
    ]
    scale = {(2,): 2, (3,): 3, (2, 2): 4}.get(tuple(factors), 0)
    if not (blocks and layers and growth and scale):
        return None
    args = {
        "g0": g0,
        "n_blocks": blocks,
        "n_layers": layers,
        "growth": growth,
        "in_channels": shapes.dim(first, 1),
        "out_channels": shapes.dim(last),
    }
    return Detected("rdn", scale, args, layout)


register_detector("rdn", detect_rdn, layouts=_LAYOUTS)
