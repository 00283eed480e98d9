"""Building blocks shared by the backbones and the PIP plug-in.

Everything works on NCHW feature maps. Attention is "transposed" (Restormer-style): it mixes
channels, not pixels, so its cost grows linearly with the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel, with a learned gain and bias."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused kernel over the channels of each pixel (free to reach for channels_last
        # tensors); it accumulates in float32, so half-precision variances do not overflow.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight.to(x.dtype), self.bias.to(x.dtype), self.eps)
        return y.permute(0, 3, 1, 2)


def pointwise_then_depthwise(in_channels: int, out_channels: int, bias: bool = False) -> nn.Sequential:
    """1x1 conv to mix channels, then a 3x3 depthwise conv for local context."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, bias=bias),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=bias),
    )


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, heads, c // heads, h * w)


class ChannelAttention(nn.Module):
    """Transposed multi-head attention between two feature maps of the same size.

    Queries come from ``x``, keys and values from ``context`` (self-attention when ``context``
    is ``None``). Each head's attention map is (channels x channels). With ``topk_ratios``
    the map is made sparse: for each ratio r only the top r-fraction of logits in each row
    survive the softmax, and the outputs for the ratios are mixed by learned scalars.
    """

    def __init__(self, dim: int, heads: int, context_dim: int | None = None,
                 topk_ratios: tuple[float, ...] = (), bias: bool = False):
        super().__init__()
        context_dim = context_dim or dim
        if dim % heads or context_dim % heads:
            raise ValueError(f"channels ({dim}, {context_dim}) must divide by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.to_q = pointwise_then_depthwise(dim, dim, bias)
        self.to_kv = pointwise_then_depthwise(context_dim, 2 * dim, bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)
        self.topk_ratios = tuple(topk_ratios)
        if self.topk_ratios:
            self.ratio_weights = nn.Parameter(torch.full((len(self.topk_ratios),), 1.0 / len(self.topk_ratios)))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        context = x if context is None else context
        q = _split_heads(self.to_q(x), self.heads)
        k, v = (_split_heads(t, self.heads) for t in self.to_kv(context).chunk(2, dim=1))
        # Cosine similarity of channels: divide the small (c x c) product by the norms rather
        # than normalising the full-resolution q and k (same result, two passes fewer).
        q, k = q.float(), k.float()
        norms = q.norm(dim=-1, keepdim=True).clamp_min(1e-12) * k.norm(dim=-1, keepdim=True).clamp_min(1e-12).transpose(-2, -1)
        logits = (q @ k.transpose(-2, -1)) / norms * self.temperature  # (b, heads, c/h, c/h)
        if not self.topk_ratios:
            attn = logits.softmax(-1)
        else:
            attn = 0
            n = logits.shape[-1]
            for ratio, weight in zip(self.topk_ratios, self.ratio_weights):
                kth = logits.topk(max(1, int(n * ratio)), dim=-1).values[..., -1:]
                sparse = logits.masked_fill(logits < kth, float("-inf"))
                attn = attn + weight * sparse.softmax(-1)
        out = attn.to(v.dtype) @ v
        return self.project_out(out.reshape(b, c, h, w))


class GatedFeedForward(nn.Module):
    """Restormer's gated-dconv feed-forward: GELU(a) * b after a depthwise conv."""

    def __init__(self, dim: int, expansion: float, bias: bool = False):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = pointwise_then_depthwise(dim, 2 * hidden, bias)
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.project_in(x).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class DualGatedFeedForward(GatedFeedForward):
    """Feed-forward where each half gates the other: GELU(a) * b + GELU(b) * a."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.project_in(x).chunk(2, dim=1)
        return self.project_out(torch.addcmul(F.gelu(a) * b, F.gelu(b), a))
