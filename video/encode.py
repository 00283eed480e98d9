"""Encoder settings, and the writer of one segment file.

Each segment is encoded by a fresh encoder into its own file, so it starts with a key frame
and depends on nothing before it: a resumed run re-creates exactly the segments an uninterrupted
run would have, and the finished ones are simply concatenated. B-frames are off so that decode
and presentation order agree and timestamps stay monotonic across the joins."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from .frames import from_rgb
from .probe import VideoError, VideoInfo

# Visually lossless defaults (x265's CRF scale sits a few steps above x264's for equal quality).
DEFAULT_CRF = {"libx264": 16, "libx265": 18, "libvpx-vp9": 20, "libsvtav1": 22}
DEFAULT_PRESET = {"libx264": "medium", "libx265": "medium", "libsvtav1": "8"}
SEGMENT_FORMAT = "nut"  # keeps any time base exactly (Matroska would round to milliseconds)


@dataclass
class EncodeSettings:
    codec: str
    pix_fmt: str
    crf: int | None
    preset: str | None
    options: dict[str, str] = field(default_factory=dict)
    note: str = ""  # why the pixel format differs from the input's, if it does

    def as_dict(self) -> dict:
        return {"codec": self.codec, "pix_fmt": self.pix_fmt, "crf": self.crf, "preset": self.preset,
                "options": self.options}


def choose_settings(info: VideoInfo, codec: str | None = None, crf: int | None = None,
                    preset: str | None = None) -> EncodeSettings:
    """H.264 by default, H.265 for H.265 input; the input's chroma layout and bit depth."""
    if codec is None:
        codec = "libx265" if info.codec in ("hevc", "h265") else "libx264"
    codec = {"h264": "libx264", "hevc": "libx265", "h265": "libx265", "vp9": "libvpx-vp9",
             "av1": "libsvtav1"}.get(codec, codec)
    try:
        encoder = av.codec.Codec(codec, "w")
    except (ValueError, av.error.FFmpegError):
        raise VideoError(f"unknown encoder {codec!r} in this FFmpeg build (try libx264 or libx265)") from None
    if encoder.type != "video":
        raise VideoError(f"{codec!r} is not a video encoder")
    formats = [f.name for f in (encoder.video_formats or [])]
    pix_fmt, note = _pick_pix_fmt(info, formats)
    crf = DEFAULT_CRF.get(codec) if crf is None else crf
    preset = DEFAULT_PRESET.get(codec) if preset is None else preset
    options: dict[str, str] = {}
    if crf is not None and codec in DEFAULT_CRF:
        options["crf"] = str(crf)
        if codec == "libvpx-vp9":
            options["b"] = "0"  # constant quality mode
    if preset is not None and codec in DEFAULT_PRESET:
        options["preset"] = str(preset)
    if codec == "libx264":
        options["bf"] = "0"
    elif codec == "libx265":
        options["x265-params"] = "bframes=0:log-level=error"
    return EncodeSettings(codec, pix_fmt, crf, preset, options, note)


def _pick_pix_fmt(info: VideoInfo, formats: list[str]) -> tuple[str, str]:
    fmt = av.VideoFormat(info.pix_fmt)
    chroma = "444" if "444" in info.pix_fmt or fmt.is_rgb else "422" if "422" in info.pix_fmt else "420"
    note = ""
    odd = info.width % 2 or info.height % 2
    if odd and chroma != "444":
        chroma, note = "444", "odd frame size: 4:2:0/4:2:2 needs even sides, so the output is 4:4:4"
    deep = "10le" if info.bit_depth > 8 else ""
    wanted = [f"yuv{chroma}p{deep}", f"yuv420p{deep}", f"yuv{chroma}p", "yuv420p"]
    for name in wanted:
        if not formats or name in formats:
            if name != wanted[0]:
                note = (note + "; " if note else "") + f"the encoder cannot write {wanted[0]}, using {name}"
            return name, note
    return formats[0], f"the encoder cannot write {wanted[0]}, using {formats[0]}"


class SegmentWriter:
    """Encodes frames into one segment file, written under a temporary name and renamed when
    complete, so a file with the final name is always a whole segment."""

    def __init__(self, path: Path, info: VideoInfo, settings: EncodeSettings, threads: int = 0):
        self.path, self.info, self.settings = Path(path), info, settings
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.container = av.open(str(self.partial), "w", format=SEGMENT_FORMAT)
        stream = self.container.add_stream(settings.codec, rate=info.rate or 25, options=dict(settings.options))
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, settings.pix_fmt
        # The encoder works in the input's time base, so every frame keeps its exact timestamp.
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc = info.color_primaries, info.color_trc
        ctx.colorspace, ctx.color_range = info.colorspace, info.color_range
        ctx.thread_count = threads
        self.stream = stream
        self.durations: dict[int, int] = {}
        self.frames = 0

    def write(self, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        i = self.info
        frame = from_rgb(rgb, self.settings.pix_fmt, i.colorspace, i.color_range, i.color_primaries, i.color_trc)
        frame.pts, frame.time_base = pts, self.info.time_base
        if duration:
            self.durations[pts] = duration
        self._mux(self.stream.encode(frame))
        self.frames += 1

    def _mux(self, packets) -> None:
        for packet in packets:
            # Without B-frames packets come out in frame order; give each its frame's duration
            # so the last frame of a variable-rate video keeps its length.
            if packet.pts in self.durations:
                packet.duration = self.durations.pop(packet.pts)
            self.container.mux(packet)

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        self.container.close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:
            pass
        self.partial.unlink(missing_ok=True)
