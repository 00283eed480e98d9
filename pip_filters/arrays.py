"""From whatever array a user hands us to the model's (N, 3, H, W) float batch, and back.

Accepted: numpy arrays or torch tensors; H x W, H x W x C, or N x H x W x C (channels last by
default when the last axis has 1, 3 or 4 entries; ``channel_axis`` says otherwise, ``None`` means
no channel axis); uint8, uint16 (and other integers), float16/32/64. The way back restores the
same type, shape, dtype and device, with values mapped back to the input's range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

AUTO = "auto"
# Robust percentiles for 16-bit and out-of-[0, 1] float data (microscopy and other science).
PERCENTILES = (0.1, 99.9)


@dataclass
class Layout:
    is_torch: bool
    dtype: object
    device: torch.device | None
    shape: tuple[int, ...]
    channel_axis: int | None  # positive axis in the original array, or None
    batched: bool


@dataclass
class ValueMap:
    """The affine map from the input's values to the model's [0, 1], per image."""

    low: torch.Tensor  # (N,)
    high: torch.Tensor  # (N,)
    integer: bool
    clip: tuple[float, float] | None  # the dtype's range for integers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.low.view(-1, 1, 1, 1)) / (self.high - self.low).view(-1, 1, 1, 1)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (self.high - self.low).view(-1, 1, 1, 1) + self.low.view(-1, 1, 1, 1)
        if self.integer:
            x = x.round()
        if self.clip:
            x = x.clamp(*self.clip)
        return x


def resolve_channel_axis(shape: tuple[int, ...], channel_axis) -> int | None:
    ndim = len(shape)
    if channel_axis == AUTO:
        return ndim - 1 if ndim >= 3 and shape[-1] in (1, 3, 4) else None
    if channel_axis is None:
        return None
    axis = int(channel_axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"channel_axis {channel_axis} is out of range for an array of shape {shape}")
    return axis % ndim


def to_batch(image, channel_axis=AUTO, dtype: torch.dtype | None = torch.float32) -> tuple[torch.Tensor, Layout]:
    """Any accepted array -> (tensor N x C x H x W on the image's device, Layout).

    ``dtype=None`` keeps the input's dtype and gives a view where it can (no copy), for a caller
    that converts on another device."""
    is_torch = isinstance(image, torch.Tensor)
    if not is_torch:
        image = np.asarray(image)
        if image.dtype == bool or image.dtype.kind not in "uif":
            raise TypeError(f"cannot restore an array of dtype {image.dtype}: use integer or float images")
    elif image.dtype in (torch.bool, torch.complex64, torch.complex128):
        raise TypeError(f"cannot restore a tensor of dtype {image.dtype}")
    shape = tuple(image.shape)
    axis = resolve_channel_axis(shape, channel_axis)
    spatial_ndim = len(shape) - (axis is not None)
    if spatial_ndim not in (2, 3):
        raise ValueError(
            f"expected H x W, H x W x C or N x H x W x C, got shape {shape} "
            f"(channel axis {axis}); pass channel_axis= to say which axis holds channels")
    layout = Layout(is_torch, image.dtype, image.device if is_torch else None, shape, axis, spatial_ndim == 3)
    if not is_torch and not image.flags.writeable:
        image = image.copy()  # torch wants writable memory; the user's array is never modified
    x = image if is_torch else torch.from_numpy(np.ascontiguousarray(image))
    if axis is None:
        x = x.unsqueeze(-1)
    else:
        x = x.movedim(axis, -1)
    if not layout.batched:
        x = x.unsqueeze(0)
    if min(x.shape[1:3]) < 1:
        raise ValueError(f"the image is empty (shape {shape})")
    return x.permute(0, 3, 1, 2).to(dtype), layout


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``. Host memory bound for a GPU is pinned first so that the copy runs
    without holding up the host, which goes on queueing the work that follows it."""
    if x.device == device:
        return x
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def start_from_batch(x: torch.Tensor, layout: Layout) -> Callable[[], object]:
    """The inverse of ``to_batch`` for a batch of the same size (already mapped to input values),
    in two halves: this call queues the copy back from a GPU without waiting for it; the function
    it returns waits and gives the result. Meanwhile the host can queue the next batch, so the GPU
    does not idle while the host converts and encodes (video)."""
    x = x.permute(0, 2, 3, 1)
    if not layout.batched:
        x = x[0]
    if layout.channel_axis is None:
        x = x[..., 0]
    else:
        x = x.movedim(-1, layout.channel_axis)
    if layout.is_torch:
        out = x.to(device=layout.device, dtype=layout.dtype)
        return lambda: out
    # Cast where the data is (a GPU sends a quarter of the bytes back for 8-bit images);
    # the values are already rounded and clipped, so this equals numpy's cast.
    target = _TORCH_DTYPES.get(np.dtype(layout.dtype))
    if target is not None:
        x = x.to(target)
    if x.device.type == "cuda":
        host = x.to("cpu", non_blocking=True)  # into pinned memory, queued behind the network
        copied = torch.cuda.Event()
        copied.record()

        def finish():
            copied.synchronize()
            return host.numpy().astype(layout.dtype, copy=False)
        return finish
    out = x.cpu().numpy().astype(layout.dtype, copy=False)
    return lambda: out


# numpy dtypes whose torch twins every device casts to (uint16 and others are cast by numpy).
_TORCH_DTYPES = {np.dtype(n): getattr(torch, n) for n in ("uint8", "int8", "int16", "int32", "int64",
                                                           "float16", "float32", "float64")}


def value_map(x: torch.Tensor, dtype, value_range=None) -> ValueMap:
    """How to bring the batch ``x`` (in input values) to [0, 1], per image."""
    n = x.shape[0]
    is_float = (dtype.is_floating_point if isinstance(dtype, torch.dtype) else np.dtype(dtype).kind == "f")
    info = None if is_float else (torch.iinfo(dtype) if isinstance(dtype, torch.dtype) else np.iinfo(dtype))
    clip = None if is_float else (float(info.min), float(info.max))
    if value_range is not None:  # made where x is: a copy to a GPU would wait for its queue
        low, high = (torch.full((n,), float(v), device=x.device) for v in value_range)
    elif info is not None and info.bits == 8 and info.min == 0:
        low, high = torch.zeros(n, device=x.device), torch.full((n,), 255.0, device=x.device)
    else:
        finite = [img[torch.isfinite(img)] for img in x.reshape(n, -1).cpu()]
        if any(f.numel() == 0 for f in finite):
            raise ValueError("the image has no finite values")
        in_unit = is_float and all(float(f.min()) >= 0 and float(f.max()) <= 1 for f in finite)
        if in_unit:  # float photos in [0, 1] keep their meaning (dark stays dark)
            low, high = torch.zeros(n), torch.ones(n)
        else:
            q = torch.tensor([p / 100 for p in PERCENTILES])
            bounds = torch.stack([_quantile(f, q) for f in finite])
            low, high = bounds[:, 0], bounds[:, 1]
    high = torch.where(high > low, high, low + 1)  # flat images: avoid dividing by zero
    return ValueMap(low.to(x.device), high.to(x.device), integer=not is_float, clip=clip)


def _quantile(values: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    # torch.quantile refuses very large inputs; a strided sample keeps it exact enough and fast.
    values = values.float()
    if values.numel() > 4_000_000:
        values = values[:: values.numel() // 4_000_000 + 1]
    return torch.quantile(values, q)
