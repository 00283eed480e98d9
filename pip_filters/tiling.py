"""Running a network on images of any size: padding to its multiple, and tiles with overlap
blended by smooth weights so that seams do not show."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right of ``x`` (N x C x H x W) so its sides divide by ``multiple``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        # Reflection needs the pad to be smaller than the side; replicate covers tiny images.
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (h, w)


def run_padded(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int) -> torch.Tensor:
    padded, (h, w) = pad_to_multiple(x, multiple)
    return fn(padded)[..., :h, :w]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length`` with at least ``overlap`` shared pixels."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return sorted(set(starts))


def blend_window(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D weights: a raised-cosine ramp over ``overlap`` px on sides shared with another tile."""
    w = torch.ones(length)
    ramp_len = min(overlap, length // 2)
    if ramp_len > 0:
        ramp = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(ramp_len) + 0.5) / ramp_len)
        if not at_start:
            w[:ramp_len] = ramp
        if not at_end:
            w[length - ramp_len:] = ramp.flip(0)
    return w


def run_tiled(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
              multiple: int, on_tile: Callable[[int, int], None] | None = None,
              out_device: torch.device | None = None) -> torch.Tensor:
    """Apply ``fn`` (N x C x h x w -> same) over overlapping tiles of ``x`` and blend the results.

    ``x`` can stay on the host while ``fn`` moves each tile to the accelerator; the output is
    accumulated on ``out_device`` (``x``'s device by default). ``on_tile(done, total)`` is called
    after each tile (for progress bars and cancellation: it may raise).
    """
    if overlap * 2 >= tile:
        raise ValueError(f"overlap ({overlap}) must be less than half the tile size ({tile})")
    n, c, h, w = x.shape
    out_device = out_device or x.device
    tops, lefts = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    out = torch.zeros((n, c, h, w), device=out_device)
    total_weight = torch.zeros((1, 1, h, w), device=out_device)
    count = len(tops) * len(lefts)
    for i, (top, left) in enumerate((t, l) for t in tops for l in lefts):
        th, tw = min(tile, h - top), min(tile, w - left)
        patch = x[:, :, top:top + th, left:left + tw]
        result = run_padded(fn, patch, multiple).to(out_device, torch.float32)
        weight = (blend_window(th, overlap, top == 0, top + th == h)[:, None]
                  * blend_window(tw, overlap, left == 0, left + tw == w)[None, :]).to(out_device)
        out[:, :, top:top + th, left:left + tw] += result * weight
        total_weight[:, :, top:top + th, left:left + tw] += weight
        if on_tile is not None:
            on_tile(i + 1, count)
    return out / total_weight
