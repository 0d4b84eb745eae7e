"""SRDenseNet: super-resolution with dense skip connections (the paper's "SRDenseNet_All").

Paper: Tong, Li, Liu, Gao, "Image Super-Resolution Using Dense Skip Connections", ICCV 2017
(no arXiv version).

The authors released no code and no PyTorch weights, so the architecture is registered without
weights and its parameter names are srzoo's own (``low_level`` / ``blocks.N.layers.M`` /
``bottleneck`` / ``deconv`` / ``reconstruction``). The configuration is the paper's: a 3x3
low-level convolution, 8 dense blocks of 8 3x3 convolutions with growth rate 16 (128 feature
maps out of each block), the low-level features and every block's output concatenated into a
1x1 bottleneck of 256 feature maps, two 3x3 deconvolution layers of stride 2 with 256 feature
maps for x4, and a 3x3 reconstruction convolution, every layer but the last followed by a ReLU.

Choices where the paper leaves a detail open:

- The network works on the luminance (Y) channel in [0, 1], as the paper's experiments do.
- The low-level convolution gives 128 feature maps, the width of a block's output, so the
  bottleneck takes ``128 + 8 * 128 = 1152`` channels.
- Inside a block, layer ``j`` takes the block's input and the outputs of layers ``1 .. j-1``
  (DenseNet's convention); the block outputs the concatenation of its layers' outputs only.
- Each deconvolution has padding 1 and ``output_padding = stride - 1``, so it enlarges exactly
  by its stride. The paper reports x4 only; x2 uses one stride-2 deconvolution and x3 one of
  stride 3.

Receptive field: the low-level convolution and the 64 dense layers reach 65 low-resolution
pixels; each deconvolution and the reconstruction convolution add at most one more (66 at x4).
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UnsupportedScaleError
from ..registry import Detected, ModelSpec, Paper, Shapes, register_detector, register_model
from ._blocks import FieldStep, conv3x3, image_forward, receptive_radius, shuffle_factors

__all__ = ["DenseBlock", "SRDenseNet", "detect_srdensenet"]


class DenseBlock(nn.Module):
    """Densely connected 3x3 convolutions with ReLU; returns their outputs, concatenated.

    Args:
        in_channels: Channels of the block's input.
        growth: Channels each layer produces.
        n_layers: Layers in the block.
    """

    def __init__(self, *, in_channels: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(conv3x3(in_channels + i * growth, growth), nn.ReLU(inplace=True))
            for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features[1:], dim=1)


class SRDenseNet(nn.Module):
    """SRDenseNet with dense skip connections from every block to the bottleneck.

    Takes and returns the Y channel in [0, 1].

    Args:
        scale: Upscaling factor: 2, 3 or 4 (the paper's is 4).
        n_blocks: Dense blocks (8).
        n_layers: Convolutions per dense block (8).
        growth: Growth rate (16).
        bottleneck: Feature maps of the bottleneck and the deconvolution layers (256).
        in_channels: Input channels (1: Y).
        out_channels: Output channels.
    """

    def __init__(
        self,
        *,
        scale: int = 4,
        n_blocks: int = 8,
        n_layers: int = 8,
        growth: int = 16,
        bottleneck: int = 256,
        in_channels: int = 1,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise UnsupportedScaleError("SRDenseNet", scale, (2, 3, 4))
        self.scale = scale
        self.in_channels = in_channels
        self.out_channels = out_channels
        width = n_layers * growth
        self.low_level = nn.Sequential(conv3x3(in_channels, width), nn.ReLU(inplace=True))
        self.blocks = nn.ModuleList(
            DenseBlock(in_channels=width, growth=growth, n_layers=n_layers) for _ in range(n_blocks)
        )
        self.bottleneck = nn.Sequential(
            nn.Conv2d(width * (n_blocks + 1), bottleneck, 1), nn.ReLU(inplace=True)
        )
        factors = shuffle_factors(scale, name="SRDenseNet")
        deconv: list[nn.Module] = []
        for f in factors:
            deconv += [
                nn.ConvTranspose2d(
                    bottleneck, bottleneck, 3, stride=f, padding=1, output_padding=f - 1
                ),
                nn.ReLU(inplace=True),
            ]
        self.deconv = nn.Sequential(*deconv)
        self.reconstruction = conv3x3(bottleneck, out_channels)
        # A k=3, padding-1 transposed convolution of stride f puts pixel i at f * i and
        # reaches one pixel around it.
        up: list[tuple[FieldStep, int]] = []
        for f in factors:
            up += [("zeros", f), ("conv", 1)]
        self.receptive_field: int | None = receptive_radius(
            [("conv", 1 + n_blocks * n_layers), *up, ("conv", 1)]
        )

    @image_forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.low_level(x)
        skips = [h]
        for block in self.blocks:
            h = block(h)
            skips.append(h)
        h = self.deconv(self.bottleneck(torch.cat(skips, dim=1)))
        out: torch.Tensor = self.reconstruction(h)
        return out


_PAPER = Paper(
    title="Image Super-Resolution Using Dense Skip Connections",
    venue="ICCV",
    year=2017,
)

register_model(
    ModelSpec(
        name="srdensenet",
        family="srdensenet",
        builder=SRDenseNet,
        scales=(2, 3, 4),
        paper=_PAPER,
        code_license="MIT",  # srzoo's own implementation: no upstream code was released
        description="SRDenseNet: 8 dense blocks of 8 layers, growth 16, dense skips (Y channel)",
        colour="y",
        defaults={"n_blocks": 8, "n_layers": 8, "growth": 16, "bottleneck": 256},
    )
)


_LAYOUTS = {
    "official": (
        "low_level.0.weight",
        "blocks.0.layers.0.0.weight",
        "bottleneck.0.weight",
        "deconv.0.weight",
        "reconstruction.weight",
    ),
}


def detect_srdensenet(shapes: Shapes) -> Detected | None:
    """Recognise an SRDenseNet checkpoint (srzoo's keys; no official PyTorch weights exist).

    Reads ``n_blocks``, ``n_layers``, ``growth``, ``bottleneck``, the image channels and the
    number of deconvolution stages: two are x4; one stage (a transposed convolution whose
    kernel is the same for a stride of 2 or 3) is x2 by default, and ``Detected.scales`` lists
    (2, 3).

    Args:
        shapes: The checkpoint's keys and shapes.

    Returns:
        What it is, or ``None`` when it is not an SRDenseNet.
    """
    if not shapes.has(*_LAYOUTS["official"]):
        return None
    blocks = shapes.count(r"blocks\.(\d+)\.layers\.0\.0\.weight")
    layers = shapes.count(r"blocks\.0\.layers\.(\d+)\.0\.weight")
    stages = shapes.indices(r"deconv\.(\d+)\.weight")
    if not blocks or not layers or stages not in ([0], [0, 2]):
        return None
    args = {
        "n_blocks": blocks,
        "n_layers": layers,
        "growth": shapes.dim("blocks.0.layers.0.0.weight"),
        "bottleneck": shapes.dim("bottleneck.0.weight"),
        "in_channels": shapes.dim("low_level.0.weight", 1),
        "out_channels": shapes.dim("reconstruction.weight"),
    }
    if len(stages) == 2:
        return Detected("srdensenet", 4, args, "official")
    return Detected("srdensenet", 2, args, "official", scales=(2, 3))


register_detector("srdensenet", detect_srdensenet, layouts=_LAYOUTS)
