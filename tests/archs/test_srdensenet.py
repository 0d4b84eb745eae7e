"""SRDenseNet: the paper's configuration (no official code or weights exist to compare with)."""

from __future__ import annotations

import pytest
import torch

import srzoo

# State-dict values of srzoo's reading of the paper's configuration (see the module docstring).
PARAMS = {2: 2_585_601, 3: 2_585_601, 4: 3_175_681}


@pytest.mark.parametrize("scale", sorted(PARAMS))
def test_parameter_counts(scale: int) -> None:
    assert srzoo.model_info("srdensenet").num_params(scale) == PARAMS[scale]


def test_paper_configuration() -> None:
    spec = srzoo.model_info("srdensenet")
    assert spec.colour == "y" and not spec.weights
    with torch.device("meta"):
        net = spec.build(4)
    assert net.in_channels == net.out_channels == 1
    # 128 low-level maps + 8 blocks x 8 layers x growth 16 into a 256-map bottleneck.
    assert net.bottleneck[0].in_channels == 1152 and net.bottleneck[0].out_channels == 256
    assert [type(m).__name__ for m in net.deconv] == ["ConvTranspose2d", "ReLU"] * 2
    assert net.receptive_field == 66


def test_dense_block_output_is_its_layers_outputs() -> None:
    net = srzoo.create("srdensenet", 2, n_blocks=1, n_layers=3, growth=4, bottleneck=8)
    block = net.blocks[0]
    assert [layer[0].in_channels for layer in block.layers] == [12, 16, 20]
    assert block(torch.rand(1, 12, 5, 5)).shape == (1, 12, 5, 5)


def test_unsupported_scale_is_refused() -> None:
    with pytest.raises(srzoo.UnsupportedScaleError):
        srzoo.create("srdensenet", 8)
