"""The PIP plug-in (Prompt-In-Prompt learning, Li et al., arXiv 2312.05038).

PIP wraps the encoder-to-decoder skip connections of any U-shaped backbone. On each skip level:

1. degradation-aware prompt: five learned vectors, one per degradation, mixed by the task weights
   w and used as a per-channel gain on this image's (resized) features: Z = (w @ P_d) * F~;
2. basic restoration prompt: one learned D x S x S tensor P_b shared by every input;
3. prompt-to-prompt interaction: a transformer block, queries from P_b, keys/values from Z,
   gives the universal restoration prompt (kept at S x S so it can be reused on other frames);
4. selective prompt-to-feature interaction: top-k sparse channel cross-attention, queries from
   the skip feature, keys/values from the prompt resized to the feature; the result replaces it.

A backbone plugs in by offering ``encode(x) -> (latent, skips)``, ``decode(latent, skips, x)``,
``skip_channels`` and ``multiple`` (see ``UShapedBackbone``); ``PIPNet`` does the rest.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks import TASKS
from .layers import ChannelAttention, DualGatedFeedForward, GatedFeedForward, LayerNorm2d, PointwiseConv
from .sensor import DegradationSensor

# The sparsity ratios of the selective prompt-to-feature attention, as in the official code.
TOPK_RATIOS = (1 / 2, 2 / 3, 3 / 4, 4 / 5)


class UShapedBackbone(Protocol):
    skip_channels: tuple[int, ...]  # channels of each skip, finest level first
    multiple: int  # inputs must have sides divisible by this

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]: ...

    def decode(self, latent: torch.Tensor, skips: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor: ...


class PromptToPrompt(nn.Module):
    """Transformer block: the basic prompt attends to the degradation-aware prompt."""

    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.norm_query = LayerNorm2d(dim)
        self.norm_context = LayerNorm2d(dim)
        self.attention = ChannelAttention(dim, heads)
        self.norm_ffn = LayerNorm2d(dim)
        self.ffn = GatedFeedForward(dim, expansion)

    def forward(self, basic: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        x = basic + self.attention(self.norm_query(basic), self.norm_context(semantic))
        return x + self.ffn(self.norm_ffn(x))


class PromptToFeature(nn.Module):
    """Selective (top-k sparse) cross-attention from the features to the prompt, then a FFN."""

    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.norm_feature = LayerNorm2d(dim)
        self.norm_prompt = LayerNorm2d(dim)
        self.attention = ChannelAttention(dim, heads, topk_ratios=TOPK_RATIOS)
        self.norm_ffn = LayerNorm2d(dim)
        self.ffn = DualGatedFeedForward(dim, expansion)

    def forward(self, feature: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        x = feature + self.attention(self.norm_feature(feature), self.norm_prompt(prompt))
        return x + self.ffn(self.norm_ffn(x))


class PIPBlock(nn.Module):
    """PIP on one skip level: feature (C channels) in, prompted feature out."""

    def __init__(self, channels: int, prompt_dim: int, prompt_size: int, heads: int = 1,
                 expansion: float = 1.0, num_tasks: int = len(TASKS)):
        super().__init__()
        self.prompt_dim, self.prompt_size = prompt_dim, prompt_size
        self.degradation_prompts = nn.Parameter(torch.randn(num_tasks, prompt_dim))
        self.basic_prompt = nn.Parameter(torch.randn(1, prompt_dim, prompt_size, prompt_size) * 0.02)
        self.prompt_to_prompt = PromptToPrompt(prompt_dim, heads, expansion)
        # The 3x3 conv on the resized prompt, depthwise-separable: it runs at full resolution.
        self.prompt_to_channels = nn.Sequential(
            nn.Conv2d(prompt_dim, prompt_dim, 3, padding=1, groups=prompt_dim, bias=False),
            PointwiseConv(prompt_dim, channels, bias=False),
        )
        self.prompt_to_feature = PromptToFeature(channels, heads, expansion)

    def universal_prompt(self, feature: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The S x S universal restoration prompt for this feature and these task weights."""
        size, dim = self.prompt_size, self.prompt_dim
        resized = F.interpolate(feature, size=(size, size), mode="bilinear", align_corners=False)
        resized = resized[:, :dim]  # cut extra channels ...
        if resized.shape[1] < dim:  # ... or zero-pad missing ones
            resized = F.pad(resized, (0, 0, 0, 0, 0, dim - resized.shape[1]))
        degradation = weights.to(self.degradation_prompts.dtype) @ self.degradation_prompts
        semantic = degradation.to(resized.dtype)[:, :, None, None] * resized
        basic = self.basic_prompt.to(resized.dtype).expand(feature.shape[0], -1, -1, -1)
        return self.prompt_to_prompt(basic, semantic)

    def forward(self, feature: torch.Tensor, weights: torch.Tensor | None = None,
                prompt: torch.Tensor | None = None) -> torch.Tensor:
        if prompt is None:
            prompt = self.universal_prompt(feature, weights)
        if prompt.shape[0] != feature.shape[0]:
            prompt = prompt.expand(feature.shape[0], -1, -1, -1)
        prompt = F.interpolate(prompt.to(feature.dtype), size=feature.shape[-2:], mode="bilinear", align_corners=False)
        return self.prompt_to_feature(feature, self.prompt_to_channels(prompt))

    def prompt_separation_loss(self) -> torch.Tensor:
        """The paper's L_ddl: penalise positive cosine similarity between degradation prompts."""
        p = F.normalize(self.degradation_prompts.float(), dim=-1)
        cosine = p @ p.t()
        off_diagonal = ~torch.eye(len(p), dtype=torch.bool, device=p.device)
        return cosine[off_diagonal].clamp(min=0).mean()


class PIPNet(nn.Module):
    """A U-shaped backbone with PIP on its skips and a degradation sensor for ``task="auto"``.

    ``forward(x, weights)`` restores ``x`` (B x 3 x H x W in [0, 1], sides divisible by
    ``multiple``) for the given task weights (B x 5); with ``weights=None`` the sensor chooses.
    ``prompts`` (from ``universal_prompts``) skips recomputing the prompts, e.g. across frames.
    """

    def __init__(self, backbone: nn.Module, prompt_dims: tuple[int, ...], prompt_sizes: tuple[int, ...],
                 heads: tuple[int, ...] | None = None, expansion: float = 1.0, sensor_width: int = 32):
        super().__init__()
        channels = backbone.skip_channels
        # No prompt dims: the bare backbone (kept for the with/without-PIP comparison).
        if prompt_dims and not (len(channels) == len(prompt_dims) == len(prompt_sizes)):
            raise ValueError("one prompt dim and size per skip level is needed")
        heads = heads or (1,) * len(channels)
        self.backbone = backbone
        self.pip = nn.ModuleList(
            PIPBlock(c, d, s, h, expansion) for c, d, s, h in zip(channels, prompt_dims, prompt_sizes, heads)
        )
        self.sensor = DegradationSensor(sensor_width)

    @property
    def multiple(self) -> int:
        return self.backbone.multiple

    def detect(self, x: torch.Tensor) -> torch.Tensor:
        """Task weights (B x 5, rows sum to 1) that the sensor reads from the degraded input."""
        return self.sensor.task_weights(x)

    def universal_prompts(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per-level S x S prompts for ``x``: compute once, reuse with ``forward(..., prompts=)``."""
        weights = self.detect(x) if weights is None else weights
        _, skips = self.backbone.encode(x)
        return [block.universal_prompt(skip, weights) for block, skip in zip(self.pip, skips)]

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None,
                prompts: list[torch.Tensor] | None = None) -> torch.Tensor:
        if weights is None and prompts is None:
            weights = self.detect(x)
        latent, skips = self.backbone.encode(x)
        if len(self.pip):
            prompts = prompts or [None] * len(skips)
            skips = [block(skip, weights, prompt) for block, skip, prompt in zip(self.pip, skips, prompts)]
        return self.backbone.decode(latent, skips, x)

    def prompt_separation_loss(self) -> torch.Tensor:
        if not len(self.pip):
            return self.sensor.head.weight.new_zeros(())
        return torch.stack([block.prompt_separation_loss() for block in self.pip]).mean()
