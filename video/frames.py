"""Conversions between decoded YUV frames and the RGB arrays the model restores.

The input's own matrix and range are used both ways, so an untouched frame survives the round
trip; 10-bit and deeper inputs travel as 16-bit RGB so their extra precision is not lost."""

from __future__ import annotations

import av
import numpy as np

# Matrices swscale knows (FFmpeg AVCOL_SPC_* codes); anything else uses swscale's default (BT.601).
_SWS_MATRICES = {1, 4, 5, 6, 7, 9, 10}


def _matrix(colorspace: int) -> int | None:
    return colorspace if colorspace in _SWS_MATRICES else None


def _range(color_range: int) -> int:
    return 2 if color_range == 2 else 1  # unspecified is treated as limited, as players do


def rgb_format(bit_depth: int) -> str:
    return "rgb48le" if bit_depth > 8 else "rgb24"


def to_rgb(frame: av.VideoFrame, bit_depth: int, colorspace: int, color_range: int) -> np.ndarray:
    """H x W x 3 uint8 (8-bit input) or uint16 (deeper input) in the input's matrix and range."""
    fmt = rgb_format(bit_depth)
    if frame.format.name.startswith(("rgb", "bgr", "gbr")):
        return frame.to_ndarray(format=fmt)
    rgb = frame.reformat(format=fmt, src_colorspace=_matrix(colorspace),
                         src_color_range=_range(frame.color_range or color_range))
    return rgb.to_ndarray()


def to_rgb8(frame: av.VideoFrame) -> np.ndarray:
    """RGB uint8, for sampling and previews."""
    return to_rgb(frame, 8, frame.colorspace, frame.color_range)


def from_rgb(rgb: np.ndarray, pix_fmt: str, colorspace: int, color_range: int, color_primaries: int,
             color_trc: int) -> av.VideoFrame:
    """The restored RGB array as a frame in the output pixel format, tagged like the input."""
    fmt = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=fmt)
    if not pix_fmt.startswith(("rgb", "bgr", "gbr")):
        frame = frame.reformat(format=pix_fmt, dst_colorspace=_matrix(colorspace), dst_color_range=_range(color_range))
    else:
        frame = frame.reformat(format=pix_fmt)
    frame.colorspace = colorspace
    frame.color_range = color_range
    frame.color_primaries = color_primaries
    frame.color_trc = color_trc
    return frame


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as a viewer sees it (the display matrix rotates counterclockwise), so the model
    sees rain falling down even in a phone video stored sideways."""
    k = (rotation // 90) % 4
    return np.rot90(rgb, k=k) if k else rgb


def stored(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Back from ``upright`` to the stored orientation."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=-k)) if k else rgb
