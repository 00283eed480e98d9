"""Restormer (Zamir et al., CVPR 2022) as a U-shaped backbone: transformer blocks with
channel ("transposed") self-attention and gated-dconv feed-forward, four levels, skips joined by
concatenation. This is the paper configuration of PIP (``pip-restormer``).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ChannelAttention, GatedFeedForward, LayerNorm2d


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.norm1 = LayerNorm2d(dim)
        self.attention = ChannelAttention(dim, heads)
        self.norm2 = LayerNorm2d(dim)
        self.ffn = GatedFeedForward(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def _stage(dim: int, blocks: int, heads: int, expansion: float) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(dim, heads, expansion) for _ in range(blocks)))


def _down(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))


def _up(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))


class RestormerBackbone(nn.Module):
    def __init__(self, dim: int = 48, blocks=(4, 6, 6, 8), refinement_blocks: int = 4,
                 heads=(1, 2, 4, 8), expansion: float = 2.66, in_channels: int = 3):
        super().__init__()
        dims = [dim * 2 ** i for i in range(4)]  # 48, 96, 192, 384
        self.skip_channels = tuple(dims[:3])
        self.multiple = 8
        self.embed = nn.Conv2d(in_channels, dim, 3, padding=1, bias=False)
        self.encoders = nn.ModuleList(_stage(dims[i], blocks[i], heads[i], expansion) for i in range(3))
        self.downs = nn.ModuleList(_down(dims[i]) for i in range(3))
        self.latent = _stage(dims[3], blocks[3], heads[3], expansion)
        self.ups = nn.ModuleList(_up(dims[i + 1]) for i in range(3))
        # Levels 2 and 3 reduce the concatenation back to their width; level 1 keeps 2 * dim.
        self.reduces = nn.ModuleList([nn.Identity()] + [nn.Conv2d(2 * dims[i], dims[i], 1, bias=False) for i in (1, 2)])
        decoder_dims = [2 * dim, dims[1], dims[2]]
        self.decoders = nn.ModuleList(_stage(decoder_dims[i], blocks[i], heads[i], expansion) for i in range(3))
        self.refinement = _stage(2 * dim, refinement_blocks, heads[0], expansion)
        self.output = nn.Conv2d(2 * dim, in_channels, 3, padding=1, bias=False)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        y = self.embed(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            y = encoder(y)
            skips.append(y)
            y = down(y)
        return self.latent(y), skips

    def decode(self, latent: torch.Tensor, skips: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = latent
        for level in reversed(range(3)):
            y = torch.cat([self.ups[level](y), skips[level]], 1)
            y = self.decoders[level](self.reduces[level](y))
        return x + self.output(self.refinement(y))
