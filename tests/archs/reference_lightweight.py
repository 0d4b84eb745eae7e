"""Stand-ins for the upstream IMDN, RFDN and PAN, which neither spandrel nor torchSR implements.

They rebuild the module trees of Zheng222/IMDN ``model/{architecture,block}.py``, njulj/RFDN
``{RFDN,block}.py`` and zhaohengyuan1/PAN ``codes/models/archs/PAN_arch.py`` (the attribute names
are what the checkpoints' keys are made of) and their forward formulas, written independently of
srzoo's modules so that a wrong wiring shows up as a different output.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, k: int, bias: bool = True, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=bias)


def _mean_hw(t: torch.Tensor) -> torch.Tensor:
    return t.sum(3, keepdim=True).sum(2, keepdim=True) / (t.size(2) * t.size(3))


class _RefCCA(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            _conv(c, c // 16, 1), nn.ReLU(), _conv(c // 16, c, 1), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = _mean_hw(x)
        std = (x - m).pow(2).sum(3, keepdim=True).sum(2, keepdim=True) / (x.size(2) * x.size(3))
        return x * self.conv_du(std.pow(0.5) + m)


class _RefIMDB(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.d = int(c * 0.25)
        self.r = c - self.d
        self.c1, self.c2, self.c3 = _conv(c, c, 3), _conv(self.r, c, 3), _conv(self.r, c, 3)
        self.c4 = _conv(self.r, self.d, 3)
        self.c5 = _conv(self.d * 4, c, 1)
        self.cca = _RefCCA(self.d * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = nn.functional.leaky_relu
        d1, r1 = torch.split(act(self.c1(x), 0.05), [self.d, self.r], dim=1)
        d2, r2 = torch.split(act(self.c2(r1), 0.05), [self.d, self.r], dim=1)
        d3, r3 = torch.split(act(self.c3(r2), 0.05), [self.d, self.r], dim=1)
        return self.c5(self.cca(torch.cat([d1, d2, d3, self.c4(r3)], 1))) + x


class _RefDistillationNet(nn.Module):
    """IMDN's and RFDN's trunk: blocks ``<prefix><i>``, concatenated, fused, upsampled."""

    def __init__(self, nf: int, n: int, upscale: int, block: type[nn.Module], prefix: str) -> None:
        super().__init__()
        self.n, self.prefix = n, prefix
        self.fea_conv = _conv(3, nf, 3)
        for i in range(n):
            setattr(self, f"{prefix}{i + 1}", block(nf))
        self.c = nn.Sequential(_conv(nf * n, nf, 1), nn.LeakyReLU(0.05))
        self.LR_conv = _conv(nf, nf, 3)
        self.upsampler = nn.Sequential(_conv(nf, 3 * upscale**2, 3), nn.PixelShuffle(upscale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs = [fea]
        for i in range(self.n):
            outs.append(getattr(self, f"{self.prefix}{i + 1}")(outs[-1]))
        return self.upsampler(self.LR_conv(self.c(torch.cat(outs[1:], 1))) + fea)


class RefIMDN(_RefDistillationNet):
    def __init__(self, nf: int, n: int, upscale: int) -> None:
        super().__init__(nf, n, upscale, _RefIMDB, "IMDB")


class _RefESA(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        f = n // 4
        self.conv1, self.conv_f = _conv(n, f, 1), _conv(f, f, 1)
        self.conv_max = _conv(f, f, 3)
        self.conv2 = nn.Conv2d(f, f, 3, 2, 0)
        self.conv3, self.conv3_ = _conv(f, f, 3), _conv(f, f, 3)
        self.conv4 = _conv(f, n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        v = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        c3 = self.conv3_(F.relu(self.conv3(F.relu(self.conv_max(v)))))
        c3 = F.interpolate(c3, (x.size(2), x.size(3)), mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class _RefRFDB(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        dc = c // 2
        self.c1_d, self.c1_r = _conv(c, dc, 1), _conv(c, c, 3)
        self.c2_d, self.c2_r = _conv(c, dc, 1), _conv(c, c, 3)
        self.c3_d, self.c3_r = _conv(c, dc, 1), _conv(c, c, 3)
        self.c4, self.c5 = _conv(c, dc, 3), _conv(dc * 4, c, 1)
        self.esa = _RefESA(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, 0.05)

        r1 = act(self.c1_r(x) + x)
        r2 = act(self.c2_r(r1) + r1)
        r3 = act(self.c3_r(r2) + r2)
        ds = [act(self.c1_d(x)), act(self.c2_d(r1)), act(self.c3_d(r2)), act(self.c4(r3))]
        return self.esa(self.c5(torch.cat(ds, 1)))


class RefRFDN(_RefDistillationNet):
    """Works on 0..255 values, like the official checkpoint."""

    def __init__(self, nf: int, n: int, upscale: int) -> None:
        super().__init__(nf, n, upscale, _RefRFDB, "B")


class _RefSCPA(nn.Module):
    def __init__(self, nf: int) -> None:
        super().__init__()
        g = nf // 2
        self.conv1_a, self.conv1_b = _conv(nf, g, 1, False), _conv(nf, g, 1, False)
        self.k1 = nn.Sequential(_conv(g, g, 3, False))
        self.PAConv = nn.Module()
        self.PAConv.k2 = _conv(g, g, 1)
        self.PAConv.k3, self.PAConv.k4 = _conv(g, g, 3, False), _conv(g, g, 3, False)
        self.conv3 = _conv(g * 2, nf, 1, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def lrelu(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, 0.2)

        pa = self.PAConv
        a = lrelu(self.k1(lrelu(self.conv1_a(x))))
        b = lrelu(self.conv1_b(x))
        b = lrelu(pa.k4(pa.k3(b) * torch.sigmoid(pa.k2(b))))
        return self.conv3(torch.cat([a, b], 1)) + x


class RefPAN(nn.Module):
    def __init__(self, nf: int, unf: int, nb: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.conv_first = _conv(3, nf, 3)
        self.SCPA_trunk = nn.Sequential(*[_RefSCPA(nf) for _ in range(nb)])
        self.trunk_conv = _conv(nf, nf, 3)
        self.upconv1, self.att1, self.HRconv1 = _conv(nf, unf, 3), nn.Module(), _conv(unf, unf, 3)
        self.att1.conv = _conv(unf, unf, 1)
        if scale == 4:
            self.upconv2, self.att2 = _conv(unf, unf, 3), nn.Module()
            self.att2.conv = _conv(unf, unf, 1)
            self.HRconv2 = _conv(unf, unf, 3)
        self.conv_last = _conv(unf, 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def stage(fea: torch.Tensor, f: int, up: Any, att: Any, hr: Any) -> torch.Tensor:
            fea = up(F.interpolate(fea, scale_factor=f, mode="nearest"))
            fea = F.leaky_relu(fea * torch.sigmoid(att.conv(fea)), 0.2)
            return F.leaky_relu(hr(fea), 0.2)

        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))
        if self.scale == 4:
            fea = stage(fea, 2, self.upconv1, self.att1, self.HRconv1)
            fea = stage(fea, 2, self.upconv2, self.att2, self.HRconv2)
        else:
            fea = stage(fea, self.scale, self.upconv1, self.att1, self.HRconv1)
        ilr = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.conv_last(fea) + ilr
