"""A conv-only NAFNet-style U-shaped backbone (Chen et al., "Simple Baselines for Image
Restoration"): no attention and no non-linear activations in the blocks, which keeps it fast.
It follows the ``UShapedBackbone`` protocol of ``pip.py``, so PIP plugs into its skips.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import LayerNorm2d, PointwiseConv


class SimpleGate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


class NAFBlock(nn.Module):
    def __init__(self, channels: int, expansion: int = 2):
        super().__init__()
        hidden = channels * expansion
        self.norm1 = LayerNorm2d(channels)
        self.spatial = nn.Sequential(
            PointwiseConv(channels, hidden),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden),
            SimpleGate(),
        )
        # Simplified channel attention: a global summary of the image re-weights the channels.
        self.channel_attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(hidden // 2, hidden // 2, 1))
        self.project1 = PointwiseConv(hidden // 2, channels)
        self.norm2 = LayerNorm2d(channels)
        self.ffn = nn.Sequential(PointwiseConv(channels, hidden), SimpleGate(), PointwiseConv(hidden // 2, channels))
        # Residual scales start at zero so a deep stack starts as the identity.
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.spatial(self.norm1(x))
        y = self.project1(y * self.channel_attention(y))
        x = torch.addcmul(x, y, self.beta)  # x + y * beta in one pass
        return torch.addcmul(x, self.ffn(self.norm2(x)), self.gamma)


def _stage(channels: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(NAFBlock(channels) for _ in range(blocks)))


class NAFNetBackbone(nn.Module):
    def __init__(self, width: int = 32, encoder_blocks=(1, 1, 2), middle_blocks: int = 4,
                 decoder_blocks=(1, 1, 1), in_channels: int = 3, stem: int = 1):
        """stem > 1 folds each stem x stem patch into channels first (pixel unshuffle) and unfolds
        at the end, so every block runs on 1/stem^2 of the pixels: much faster on a CPU."""
        super().__init__()
        if len(encoder_blocks) != len(decoder_blocks):
            raise ValueError("one decoder stage per encoder stage is needed")
        levels = len(encoder_blocks)
        channels = [width * 2 ** i for i in range(levels + 1)]
        self.skip_channels = tuple(channels[:levels])
        self.multiple = 2 ** levels * stem
        folded = in_channels * stem * stem
        # stem 1 keeps the plain convolutions (and their weight names, so shipped weights load).
        self.intro = nn.Sequential(nn.PixelUnshuffle(stem), nn.Conv2d(folded, width, 3, padding=1)) if stem > 1 \
            else nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders = nn.ModuleList(_stage(c, n) for c, n in zip(channels, encoder_blocks))
        self.downs = nn.ModuleList(nn.Conv2d(c, 2 * c, 2, stride=2) for c in channels[:levels])
        self.middle = _stage(channels[levels], middle_blocks)
        self.ups = nn.ModuleList(
            nn.Sequential(PointwiseConv(2 * c, 4 * c, bias=False), nn.PixelShuffle(2)) for c in channels[:levels]
        )
        self.decoders = nn.ModuleList(_stage(c, n) for c, n in zip(channels, decoder_blocks))
        self.ending = nn.Sequential(nn.Conv2d(width, folded, 3, padding=1), nn.PixelShuffle(stem)) if stem > 1 \
            else nn.Conv2d(width, in_channels, 3, padding=1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.intro(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        return self.middle(x), skips

    def decode(self, latent: torch.Tensor, skips: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        y = latent
        for level in reversed(range(len(skips))):
            y = self.decoders[level](self.ups[level](y) + skips[level])
        return x + self.ending(y)
