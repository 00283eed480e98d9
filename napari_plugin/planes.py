"""Restore a napari image layer's data plane by plane, without Qt.

A layer's data is a stack of planes: the last two axes are the image (plus the colour axis for
rgb layers), every axis before them (time, z, ...) is iterated over. One value range is used for
the whole stack so that planes do not flicker, and one prompt (from the plane the user is looking
at) is shared by all planes. Planes are read one at a time, so lazy arrays (dask, zarr) are never
loaded whole; ``restore_lazy`` gives a lazy dask result that restores a plane only when it is read.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class RestoreError(ValueError):
    """A problem with the user's input, shown as a notification rather than a traceback."""


class JobCancelled(Exception):
    """Raised from the progress callback to stop a job between two tiles or planes."""


def plane_ndim(rgb: bool) -> int:
    return 3 if rgb else 2


def leading_shape(shape: tuple[int, ...], rgb: bool) -> tuple[int, ...]:
    """The shape of the axes iterated over (everything before the image plane)."""
    return tuple(shape[: len(shape) - plane_ndim(rgb)])


def is_lazy(data) -> bool:
    return not isinstance(data, np.ndarray)


def nbytes(data) -> int:
    return int(np.prod(data.shape)) * np.dtype(data.dtype).itemsize


def subsample(data, rgb: bool, side: int = 512, plane_budget: int = 8):
    """A strided view of at most ``plane_budget`` planes of about ``side`` pixels, for statistics
    (strided slicing keeps dask and zarr arrays from being read whole)."""
    lead = leading_shape(data.shape, rgb)
    per_axis = max(1, int(round(plane_budget ** (1 / len(lead))))) if lead else 1
    index = [slice(None, None, max(1, -(-n // per_axis))) for n in lead]
    index += [slice(None, None, max(1, -(-n // side))) for n in data.shape[len(lead):len(lead) + 2]]
    return np.asarray(data[tuple(index)])


def value_range(data, rgb: bool) -> tuple[float, float] | None:
    """One (low, high) for the whole layer, or None for uint8 (the core's fixed 0-255 map).

    Robust percentiles (0.1 %, 99.9 %) like the core's per-image map, but from a subsample of
    the whole stack. Raises RestoreError for an empty (constant or all-NaN) image.
    """
    sample = subsample(data, rgb).astype(np.float64, copy=False)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        raise RestoreError("the image has no finite values")
    low, high = float(finite.min()), float(finite.max())
    if low == high:
        raise RestoreError(f"the image is empty (every pixel is {low:g}); nothing to restore")
    if data.dtype == np.uint8:
        return None
    if data.dtype.kind == "f" and low >= 0 and high <= 1:
        return (0.0, 1.0)  # already in the network's range: used as is, like the core does
    lo, hi = np.percentile(finite, [0.1, 99.9])
    return (float(lo), float(hi)) if hi > lo else (low, high)


def output_range(data, value_range) -> tuple[float, float]:
    """Where restored values lie: the network's output is clamped to [0, 1] before mapping back."""
    if value_range is not None:
        return value_range
    return (0.0, 255.0) if data.dtype == np.uint8 else (0.0, 1.0)


def to_unit(plane: np.ndarray, value_range) -> np.ndarray:
    """A plane mapped to float [0, 1] with the layer's value range (what the network will see)."""
    plane = np.asarray(plane, dtype=np.float32)
    if value_range is None:
        return plane / 255.0
    lo, hi = value_range
    return np.clip((plane - lo) / (hi - lo), 0.0, 1.0)


def submit_plane(restorer, plane: np.ndarray, rgb: bool, prompt, strength: float, tile, value_range,
                 on_progress=None, ensemble: bool = False):
    """Queue one plane's restoration (``.result()`` gives it): on a GPU the next plane can be
    read and queued while this one is computed."""
    overlap = min(32, tile // 4) if tile else 32  # the core wants overlap < tile / 2
    return restorer.submit(np.asarray(plane), prompt=prompt, strength=strength, tile=tile, overlap=overlap,
                           channel_axis=-1 if rgb else None, value_range=value_range,
                           on_progress=on_progress, ensemble=ensemble)


def restore_eager(restorer, data, rgb: bool, prompt, strength: float, tile, value_range,
                  report: Callable[[int, int], None] | None = None, ensemble: bool = False) -> np.ndarray:
    """Restore every plane of a stack into a numpy array, reading one plane at a time.
    report(done, total) is called after every tile (the restorer's progress, scaled over the
    planes) and may raise JobCancelled."""
    lead = leading_shape(data.shape, rgb)
    count = int(np.prod(lead)) if lead else 1
    per_plane = [1]  # tiles per plane, known after the first tile
    out = np.empty(data.shape, data.dtype)
    in_flight = None  # (index, Pending): the plane computed while the next one is read and queued
    for number, index in enumerate(np.ndindex(*lead)):
        if report:
            report(number * per_plane[0], count * per_plane[0])  # also the cancel check per plane

        def on_progress(done, total, number=number):
            per_plane[0] = total
            if report:
                report(number * total + done, count * total)

        queued = (index, submit_plane(restorer, data[index], rgb, prompt, strength, tile, value_range, on_progress,
                                      ensemble))
        if in_flight is not None:
            out[in_flight[0]] = in_flight[1].result()
        in_flight = queued
    if in_flight is not None:
        out[in_flight[0]] = in_flight[1].result()
    return out


def restore_lazy(restorer, data, rgb: bool, prompt, strength: float, tile, value_range, ensemble: bool = False):
    """A lazy dask result: one chunk per plane (the image axes whole), restored when read."""
    import dask.array as da

    lead = leading_shape(data.shape, rgb)
    array = data if isinstance(data, da.Array) else da.from_array(data, chunks="auto")
    array = array.rechunk({axis: (1 if axis < len(lead) else -1) for axis in range(array.ndim)})

    def restore_block(block: np.ndarray) -> np.ndarray:
        out = np.empty(block.shape, block.dtype)
        for index in np.ndindex(*block.shape[: len(lead)]):
            out[index] = submit_plane(restorer, block[index], rgb, prompt, strength, tile, value_range,
                                      ensemble=ensemble).result()
        return out

    return array.map_blocks(restore_block, dtype=array.dtype, meta=np.empty((0,) * array.ndim, array.dtype))
