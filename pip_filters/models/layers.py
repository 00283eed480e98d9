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
        weight, bias = self.weight.to(x.dtype), self.bias.to(x.dtype)
        if x.device.type == "cpu":  # one fused kernel there (and one ONNX op, as export traces on the CPU)
            return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), weight, bias, self.eps).permute(0, 3, 1, 2)
        return layer_norm_over_channels(x, weight, bias, self.eps)


def layer_norm_over_channels(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Layer norm over dim 1 of an NCHW tensor, written out in reductions and elementwise ops.

    On a GPU this replaces F.layer_norm over the permuted tensor: with a few dozen channels per
    pixel, CUDA's layer-norm kernel (one block per pixel) took 46 % of an H100's time at 1080p
    (measured for pip-nafnet-s, fp16). torch.compile fuses these ops. The variance is accumulated
    and kept in float32, so half-precision features do not overflow.
    """
    centred = x - x.mean(1, keepdim=True)
    # square, not square_: autograd needs the norm itself for the backward pass (training on a GPU)
    variance = torch.linalg.vector_norm(centred, dim=1, keepdim=True, dtype=torch.float32).square() / x.shape[1]
    scale = torch.rsqrt(variance + eps).to(x.dtype)
    return torch.addcmul(bias.view(1, -1, 1, 1), centred * scale, weight.view(1, -1, 1, 1))


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution (same weights and names as ``nn.Conv2d(in, out, 1)``). On a GPU, for
    channels_last input, it runs as a matrix product over the pixels: cuDNN ran a 24 -> 48 channel
    one at 1080p, batch 4, fp16 in 2.33 ms on an H100, the matrix product in 0.80 ms
    (tools/gpu_blocks.py). CPUs keep oneDNN's convolution (and ONNX export a Conv op)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" or not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        return pointwise_as_matmul(x, self.weight, self.bias)


def pointwise_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1 convolution of a channels_last NCHW tensor as one matrix product: the permuted view
    is a contiguous (pixels x channels) matrix, and so is the result (returned as channels_last)."""
    return F.linear(x.permute(0, 2, 3, 1), weight.flatten(1), bias).permute(0, 3, 1, 2)


def pointwise_then_depthwise(in_channels: int, out_channels: int, bias: bool = False) -> nn.Sequential:
    """1x1 conv to mix channels, then a 3x3 depthwise conv for local context."""
    return nn.Sequential(
        PointwiseConv(in_channels, out_channels, bias=bias),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, groups=out_channels, bias=bias),
    )


def pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """(b, c, h, w) -> (b, h*w, c): one row of channels per pixel, a free view of a channels_last
    tensor (and of a channel slice of one), so products over it need no layout copy."""
    b, c, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


def _head_blocks(full: torch.Tensor, heads: int) -> torch.Tensor:
    """(b, c, c) -> (b, heads, c/h, c/h): the diagonal block of each head."""
    b, c = full.shape[:2]
    n = c // heads
    return full.view(b, heads, n, heads, n).diagonal(dim1=1, dim2=3).permute(0, 3, 1, 2)


def _block_diagonal(blocks: torch.Tensor) -> torch.Tensor:
    """(b, heads, n, n) -> (b, heads*n, heads*n) with each head's block on the diagonal."""
    b, heads, n, _ = blocks.shape
    if heads == 1:
        return blocks[:, 0]
    eye = torch.eye(heads, dtype=blocks.dtype, device=blocks.device)
    return torch.einsum("bhij,hk->bhikj", blocks, eye).reshape(b, heads * n, heads * n)


def _unit_channels(x: torch.Tensor) -> torch.Tensor:
    """Each channel of each image scaled to unit L2 norm over its pixels (zero stays zero)."""
    norm = torch.linalg.vector_norm(x, dim=(2, 3), keepdim=True, dtype=torch.float32)
    scale = norm.clamp_min(1e-12).reciprocal().clamp_max(torch.finfo(x.dtype).max)
    return x * scale.to(x.dtype)


def channel_cosine(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """Cosine similarity over the pixels of every channel of q with every channel of k in the same
    head: (b, heads, c/h, c/h) in float32 for q, k of shape (b, c, h, w)."""
    # By device alone (ONNX export traces on the CPU): under torch.compile, dynamo before torch 2.14
    # reads torch.compiler.is_exporting() as True (pytorch#176347), which sent compiled GPU graphs
    # down this branch, to the one slow float32 product (61 % of an H100's time at 1080p).
    if q.device.type == "cpu":
        # One float32 product divided by the norms: CPU matrix products split the long pixel
        # dimension well, and the small product is cheaper to divide than q and k to normalise.
        # (Over all channel pairs; each head keeps its diagonal block. Our models have one head.)
        norm_q = torch.linalg.vector_norm(q, dim=(2, 3), dtype=torch.float32).clamp_min(1e-12)
        norm_k = torch.linalg.vector_norm(k, dim=(2, 3), dtype=torch.float32).clamp_min(1e-12)
        gram = pixel_rows(q).float().transpose(1, 2) @ pixel_rows(k).float()
        return _head_blocks(gram / (norm_q[:, :, None] * norm_k[:, None, :]), heads)
    return _chunked_cosine(q, k, heads)


def _chunked_cosine(q: torch.Tensor, k: torch.Tensor, heads: int) -> torch.Tensor:
    """channel_cosine's GPU form. With unit channels every partial sum lies in [-1, 1], so the
    products can run in half precision. The chunked product covers all channel pairs; each head
    keeps its diagonal block."""
    return _head_blocks(channel_gram(_unit_channels(q), _unit_channels(k)), heads)


GRAM_CHUNK = 16384  # pixels per partial product: enough work per matrix product, many products


def channel_gram(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """sum over pixels of q[:, i] * k[:, j], as (b, c, c) in float32, for q, k of shape (b, c, h, w).

    One (c x pixels) x (pixels x c) product has a tiny output and a huge inner dimension, which
    cuBLAS runs on a handful of blocks (14.5 ms at 1080p, batch 4, on an H100). Here the pixels
    are cut into chunks of whole rows, each chunk's product runs in parallel, and the partial
    products are summed in float32. For channels_last tensors the chunks are free views.
    """
    b, c, h, w = q.shape
    # The most whole rows that divide h and fit a chunk (one row if even that is too long).
    rows = next(r for r in range(max(1, min(h, GRAM_CHUNK // w)), 0, -1) if h % r == 0)
    chunks = h // rows
    q_rows = q.permute(0, 2, 3, 1).reshape(b * chunks, rows * w, c)
    k_rows = k.permute(0, 2, 3, 1).reshape(b * chunks, rows * w, c)
    partial = torch.bmm(q_rows.transpose(1, 2), k_rows)
    return partial.view(b, chunks, c, c).sum(1, dtype=torch.float32)


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
        self.project_out = PointwiseConv(dim, dim, bias=bias)
        self.topk_ratios = tuple(topk_ratios)
        if self.topk_ratios:
            self.ratio_weights = nn.Parameter(torch.full((len(self.topk_ratios),), 1.0 / len(self.topk_ratios)))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        context = x if context is None else context
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=1)
        logits = channel_cosine(q, k, self.heads) * self.temperature  # (b, heads, c/h, c/h)
        if not self.topk_ratios:
            attn = logits.softmax(-1)
        else:
            attn = 0
            n = logits.shape[-1]
            for ratio, weight in zip(self.topk_ratios, self.ratio_weights):
                kth = logits.topk(max(1, int(n * ratio)), dim=-1).values[..., -1:]
                sparse = logits.masked_fill(logits < kth, float("-inf"))
                attn = attn + weight * sparse.softmax(-1)
        # Each pixel's channels times the (block-diagonal) attention map, over the pixel rows of
        # v: the result is channels_last like every other feature map (no layout copies).
        out = pixel_rows(v) @ _block_diagonal(attn.to(v.dtype)).transpose(1, 2)
        return self.project_out(out.view(b, h, w, c).permute(0, 3, 1, 2))


class GatedFeedForward(nn.Module):
    """Restormer's gated-dconv feed-forward: GELU(a) * b after a depthwise conv."""

    def __init__(self, dim: int, expansion: float, bias: bool = False):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = pointwise_then_depthwise(dim, 2 * hidden, bias)
        self.project_out = PointwiseConv(hidden, dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.project_in(x).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class DualGatedFeedForward(GatedFeedForward):
    """Feed-forward where each half gates the other: GELU(a) * b + GELU(b) * a."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.project_in(x).chunk(2, dim=1)
        return self.project_out(torch.addcmul(F.gelu(a) * b, F.gelu(b), a))
