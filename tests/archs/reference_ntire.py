"""Stand-ins for the upstream RLFN and the NTIRE 2023 SAFMN, which neither spandrel nor torchSR
implements.

They rebuild the module trees of bytedance/RLFN ``model/{block,rlfn,rlfn_s,rlfn_ntire}.py``,
ofsoundof/NTIRE2022_ESR ``models/team04_rlfn.py`` (the same network under IMDN's names) and
sunny2109/SAFMN ``NTIRE2023_ESR/models/team15_SAFMN.py`` (the attribute names are what the
checkpoints' keys are made of) and their forward formulas, written independently of srzoo's
modules so that a wrong wiring shows up as a different output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, 1, (k - 1) // 2, bias=bias)


class _RefESA(nn.Module):
    def __init__(self, f: int, n: int) -> None:
        super().__init__()
        self.conv1, self.conv_f = _conv(n, f, 1), _conv(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, 2, 0)
        self.conv3 = _conv(f, f, 3)
        self.conv4 = _conv(f, n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        v_max = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        c3 = F.interpolate(
            self.conv3(v_max), (x.size(2), x.size(3)), mode="bilinear", align_corners=False
        )
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class _RefRLFB(nn.Module):
    def __init__(self, c: int, mid: int | None, esa: int) -> None:
        super().__init__()
        m = c if mid is None else mid
        self.c1_r, self.c2_r, self.c3_r = _conv(c, m, 3), _conv(m, m, 3), _conv(m, c, 3)
        self.c5 = _conv(c, c, 1)
        self.esa = _RefESA(esa, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.c1_r(x), 0.05)
        out = F.leaky_relu(self.c2_r(out), 0.05)
        out = F.leaky_relu(self.c3_r(out), 0.05)
        return self.esa(self.c5(out + x))


class RefRLFN(nn.Module):
    """bytedance/RLFN's ``RLFN`` / ``RLFN_S`` / ``RLFN_Prune`` (``nb`` blocks), or with
    ``ntire2022_names`` the NTIRE 2022 repository's ``RLFN_cut``. Works on 0..255 values, like
    every released checkpoint."""

    def __init__(
        self,
        nf: int,
        nb: int,
        upscale: int,
        mf: int | None = None,
        esa: int = 16,
        ntire2022_names: bool = False,
    ) -> None:
        super().__init__()
        names = (
            ("fea_conv", "B{}", "LR_conv") if ntire2022_names else ("conv_1", "block_{}", "conv_2")
        )
        self.first, self.block, self.last = names
        self.nb = nb
        setattr(self, self.first, _conv(3, nf, 3))
        for i in range(1, nb + 1):
            setattr(self, self.block.format(i), _RefRLFB(nf, mf, esa))
        setattr(self, self.last, _conv(nf, nf, 3))
        self.upsampler = nn.Sequential(_conv(nf, 3 * upscale**2, 3), nn.PixelShuffle(upscale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = getattr(self, self.first)(x)
        out = fea
        for i in range(1, self.nb + 1):
            out = getattr(self, self.block.format(i))(out)
        return self.upsampler(getattr(self, self.last)(out) + fea)


class _RefGRN(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(2, 3), keepdim=True)
        nx = gx / (gx.mean(dim=1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class _RefSAFM(nn.Module):
    def __init__(self, dim: int, n_levels: int = 4) -> None:
        super().__init__()
        self.n_levels = n_levels
        c = dim // n_levels
        self.mfr = nn.ModuleList(
            nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=False) for _ in range(n_levels)
        )
        self.aggr = nn.Conv2d(dim, dim, 1, 1, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.size()[-2:]
        xc = x.chunk(self.n_levels, dim=1)
        out = []
        for i in range(self.n_levels):
            if i > 0:
                s = F.adaptive_max_pool2d(xc[i], (h // 2 ** (i + 1), w // 2 ** (i + 1)))
                s = F.interpolate(self.mfr[i](s), size=(h, w), mode="nearest")
            else:
                s = self.mfr[i](xc[i])
            out.append(s)
        return F.gelu(self.aggr(torch.cat(out, dim=1))) * x


class _RefCCM(nn.Module):
    def __init__(self, dim: int, growth_rate: float) -> None:
        super().__init__()
        hidden = int(dim * growth_rate)
        self.ccm = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1, bias=False),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 1, 1, 0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.ccm(x)
        return out


class _RefAttBlock(nn.Module):
    def __init__(self, dim: int, ffn_scale: float) -> None:
        super().__init__()
        self.safm = _RefSAFM(dim)
        self.ccm = _RefCCM(dim, ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.safm(x) + x
        return self.ccm(x) + x


class RefSAFMNNTIRE(nn.Module):
    """sunny2109/SAFMN's NTIRE 2023 ``SAFMN`` (``team15_SAFMN.py``): takes [0, 1]; needs inputs
    of at least 16 pixels on a side (its coarsest level pools to ``h // 16``)."""

    def __init__(
        self, dim: int, n_blocks: int = 8, ffn_scale: float = 2.0, upscaling_factor: int = 4
    ):
        super().__init__()
        self.scale = upscaling_factor
        self.norm = _RefGRN(dim)
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*[_RefAttBlock(dim, ffn_scale) for _ in range(n_blocks)])
        self.to_img = nn.Sequential(
            nn.Conv2d(dim, 3 * upscaling_factor**2, 3, 1, 1), nn.PixelShuffle(upscaling_factor)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ident = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        x = self.to_feat(x)
        x = self.norm(x)
        x = self.feats(x)
        out: torch.Tensor = self.to_img(x) + ident
        return out
