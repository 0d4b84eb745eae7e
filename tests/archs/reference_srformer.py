"""A stand-in for the authors' SRFormer, written from HVision-NKU/SRFormer's
``basicsr/archs/srformer_arch.py`` for parity tests (spandrel has no SRFormer).

It computes the way upstream does: explicit softmax, ``torch.roll``, window partition and
reverse in every layer, the shift mask built with slices for the training size and rebuilt
for any other size, and the same parameter and buffer names (``aligned_relative_position_index``,
``attn_mask``). The one knob upstream lacks is ``num_feat`` (fixed at 64 there), so that small
test networks stay small.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    b = int(windows.shape[0] / (h * w / ws / ws))
    x = windows.view(b, h // ws, w // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


class DWConv(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.depthwise_conv = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size=5, stride=1, padding=2, groups=hidden), nn.GELU()
        )
        self.hidden = hidden

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        x = x.transpose(1, 2).view(x.shape[0], self.hidden, x_size[0], x_size[1]).contiguous()
        x = self.depthwise_conv(x)
        return x.flatten(2).transpose(1, 2).contiguous()


class ConvFFN(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.dwconv = DWConv(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        x = self.act(self.fc1(x))
        x = x + self.dwconv(x, x_size)
        return self.fc2(x)


class PSA(nn.Module):
    def __init__(self, dim: int, ws: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.dim, self.ws, self.pws, self.num_heads = dim, ws, ws // 2, num_heads
        self.scale = (dim // num_heads) ** -0.5
        p = self.pws
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * p - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid([torch.arange(p), torch.arange(p)], indexing="ij"))
        flat = torch.flatten(coords, 1)
        rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += p - 1
        rel[:, :, 1] += p - 1
        rel[:, :, 0] *= 2 * p - 1
        index = rel.sum(-1)  # (p*p, p*p)
        # Repeat each half-grid row for the 2x2 pixels it covers, as upstream does.
        index = (
            index.reshape(p, p, 1, 1, p * p)
            .repeat(1, 1, 2, 2, 1)
            .permute(0, 2, 1, 3, 4)
            .reshape(4 * p * p, p * p)
        )
        self.register_buffer("aligned_relative_position_index", index)
        self.kv = nn.Linear(dim, dim // 2, bias=qkv_bias)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.softmax = nn.Softmax(dim=-1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape
        p, h = self.pws, self.num_heads
        kv = (
            self.kv(x)
            .reshape(b_, p, 2, p, 2, 2, c // 4)
            .permute(0, 1, 3, 5, 2, 4, 6)
            .reshape(b_, n // 4, 2, h, c // h)
            .permute(2, 0, 3, 1, 4)
        )
        k, v = kv[0], kv[1]
        q = self.q(x).reshape(b_, n, 1, h, c // h).permute(2, 0, 3, 1, 4)[0]
        q = q * self.scale
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.aligned_relative_position_index.view(-1)]
        bias = bias.view(self.ws * self.ws, p * p, -1).permute(2, 0, 1).contiguous()
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, h, n, n // 4) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, h, n, n // 4)
        attn = self.softmax(attn)
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)
        return self.proj(x)


class PSABlock(nn.Module):
    def __init__(
        self,
        dim: int,
        input_resolution: tuple[int, int],
        num_heads: int,
        ws: int,
        shift: int,
        mlp_ratio: float,
        qkv_bias: bool,
    ) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        self.ws, self.pws, self.shift = ws, ws // 2, shift
        if min(input_resolution) <= ws:
            self.shift = 0
            self.ws = min(input_resolution)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = PSA(dim, self.ws, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio))
        mask = self.calculate_mask(input_resolution) if self.shift > 0 else None
        self.register_buffer("attn_mask", mask)

    def calculate_mask(self, x_size: tuple[int, int]) -> torch.Tensor:
        h, w = x_size
        ws, s, pws = self.ws, self.shift, self.pws
        img_mask = torch.zeros((1, h, w, 1))
        slices = (slice(0, -ws), slice(-ws, -s), slice(-s, None))
        cnt = 0
        for hs in slices:
            for wsl in slices:
                img_mask[:, hs, wsl, :] = cnt
                cnt += 1
        mask_windows = window_partition(img_mask, ws).view(-1, ws * ws)
        perm = torch.zeros((1, h // 2, w // 2, 1))
        # Upstream writes -self.shift_size // 2, i.e. (-shift) // 2.
        pslices = (slice(0, -pws), slice(-pws, -s // 2), slice(-s // 2, None))
        cnt = 0
        for hs in pslices:
            for wsl in pslices:
                perm[:, hs, wsl, :] = cnt
                cnt += 1
        perm_windows = window_partition(perm, pws).view(-1, pws * pws)
        attn_mask = mask_windows.unsqueeze(2) - perm_windows.unsqueeze(1)
        return attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        h, w = x_size
        b, _, c = x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if self.shift > 0:
            x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = window_partition(x, self.ws).view(-1, self.ws * self.ws, c)
        if self.input_resolution == x_size:
            out = self.attn(windows, mask=self.attn_mask)
        else:
            # Upstream rebuilds the mask for any other size, also in unshifted layers (where
            # it is all zeros).
            out = self.attn(windows, mask=self.calculate_mask(x_size).to(x.device))
        x = window_reverse(out.view(-1, self.ws, self.ws, c), self.ws, h, w)
        if self.shift > 0:
            x = torch.roll(x, shifts=(self.shift, self.shift), dims=(1, 2))
        x = shortcut + x.view(b, h * w, c)
        return x + self.mlp(self.norm2(x), x_size)


class BasicLayer(nn.Module):
    def __init__(self, blocks: list[PSABlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x, x_size)
        return x


def _resi(dim: int, kind: str) -> nn.Module:
    if kind == "1conv":
        return nn.Conv2d(dim, dim, 3, 1, 1)
    return nn.Sequential(
        nn.Conv2d(dim, dim // 4, 3, 1, 1),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
        nn.Conv2d(dim // 4, dim // 4, 1, 1, 0),
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
        nn.Conv2d(dim // 4, dim, 3, 1, 1),
    )


class PSAGroup(nn.Module):
    def __init__(self, dim: int, blocks: list[PSABlock], resi_connection: str) -> None:
        super().__init__()
        self.dim = dim
        self.residual_group = BasicLayer(blocks)
        self.conv = _resi(dim, resi_connection)

    def forward(self, x: torch.Tensor, x_size: tuple[int, int]) -> torch.Tensor:
        y = self.residual_group(x, x_size)
        y = y.transpose(1, 2).view(x.shape[0], self.dim, x_size[0], x_size[1])
        return self.conv(y).flatten(2).transpose(1, 2) + x


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, norm: bool) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)
        return self.norm(x) if self.norm is not None else x


class Upsample(nn.Sequential):
    def __init__(self, scale: int, num_feat: int) -> None:
        m: list[nn.Module] = []
        if scale & (scale - 1) == 0:
            for _ in range(int(math.log(scale, 2))):
                m += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        else:
            m += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        super().__init__(*m)


class SRFormer(nn.Module):
    def __init__(
        self,
        *,
        img_size: int = 64,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Any = (6, 6, 6, 6),
        num_heads: Any = (6, 6, 6, 6),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        patch_norm: bool = True,
        upscale: int = 2,
        img_range: float = 1.0,
        upsampler: str = "",
        resi_connection: str = "1conv",
        num_feat: int = 64,
    ) -> None:
        super().__init__()
        self.img_range, self.upscale, self.upsampler = img_range, upscale, upsampler
        self.window_size, self.embed_dim = window_size, embed_dim
        mean = (0.4488, 0.4371, 0.4040) if in_chans == 3 else (0.0,)
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        # Upstream pads the training size up to a multiple of the window.
        if img_size % window_size:
            img_size += window_size - img_size % window_size
        res = (img_size, img_size)
        self.patch_embed = PatchEmbed(embed_dim, patch_norm)
        self.layers = nn.ModuleList()
        for depth, heads in zip(depths, num_heads, strict=True):
            blocks = [
                PSABlock(
                    embed_dim,
                    res,
                    heads,
                    window_size,
                    0 if i % 2 == 0 else window_size // 2,
                    mlp_ratio,
                    qkv_bias,
                )
                for i in range(depth)
            ]
            self.layers.append(PSAGroup(embed_dim, blocks, resi_connection))
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = _resi(embed_dim, resi_connection)
        if upsampler == "pixelshuffle":
            self.conv_before_upsample = nn.Sequential(
                nn.Conv2d(embed_dim, num_feat, 3, 1, 1), nn.LeakyReLU(inplace=True)
            )
            self.upsample = Upsample(upscale, num_feat)
            self.conv_last = nn.Conv2d(num_feat, in_chans, 3, 1, 1)
        elif upsampler == "pixelshuffledirect":
            self.upsample = nn.Sequential(
                nn.Conv2d(embed_dim, upscale**2 * in_chans, 3, 1, 1), nn.PixelShuffle(upscale)
            )
        else:
            raise ValueError(upsampler)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x, x_size)
        x = self.norm(x)
        return x.transpose(1, 2).view(x.shape[0], self.embed_dim, x_size[0], x_size[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        ws = self.window_size
        x = F.pad(x, (0, (ws - w % ws) % ws, 0, (ws - h % ws) % ws), "reflect")
        mean = self.mean.type_as(x)
        x = (x - mean) * self.img_range
        x = self.conv_first(x)
        x = self.conv_after_body(self.forward_features(x)) + x
        if self.upsampler == "pixelshuffle":
            x = self.conv_last(self.upsample(self.conv_before_upsample(x)))
        else:
            x = self.upsample(x)
        x = x / self.img_range + mean
        return x[:, :, : h * self.upscale, : w * self.upscale]
