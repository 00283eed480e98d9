"""What is in a video file: the video stream's size, pixel format, timing, colour tags and
rotation, and the other streams that are copied as they are. Bad input becomes a ``VideoError``
with a message for the user, never a traceback."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

# Streams copied packet by packet into the output (never re-encoded).
COPY_TYPES = ("audio", "subtitle")


class VideoError(Exception):
    """A problem with the user's input or output that deserves a plain message."""


@dataclass
class VideoInfo:
    path: Path
    container: str
    codec: str
    index: int  # the video stream's index in the container
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    rate: Fraction | None
    frames: int  # container's count; 0 when the container does not say
    duration: float | None  # seconds
    color_primaries: int = 2  # FFmpeg's AVCOL_* codes; 2 = unspecified
    color_trc: int = 2
    colorspace: int = 2
    color_range: int = 0  # 0 unspecified, 1 limited (tv), 2 full (pc / jpeg)
    rotation: int = 0  # degrees, from the display matrix
    video_duration: float | None = None  # the video stream's own length, when the file says it
    copied: list[str] = field(default_factory=list)  # "#1 audio aac", ...

    @property
    def estimated_frames(self) -> int:
        if self.frames:
            return self.frames
        if self.duration and self.rate:
            return int(round(self.duration * self.rate))
        return 0

    def describe(self) -> str:
        rate = f"{float(self.rate):.3f} fps" if self.rate else "unknown fps"
        rot = f", rotation {self.rotation}" if self.rotation else ""
        dur = f"{self.duration:.2f} s" if self.duration else "unknown duration"
        return (f"{self.codec} {self.width}x{self.height} {self.pix_fmt} ({self.bit_depth}-bit), {rate}, "
                f"{dur}{rot}")


def open_input(path) -> av.container.InputContainer:
    """av.open with the failures a user can cause turned into VideoError."""
    path = Path(path)
    if not path.exists():
        raise VideoError(f"no such file: {path}")
    if path.is_dir():
        raise VideoError(f"{path} is a folder, not a video file")
    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise VideoError(f"cannot read {path}: not a video file, or corrupt ({error.strerror})") from None


def video_stream(container, path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path} has no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise VideoError(f"{path}: the video codec is unknown to this FFmpeg build, cannot decode it")
    return stream


def bit_depth(pix_fmt: str) -> int:
    try:
        return max(c.bits for c in av.VideoFormat(pix_fmt).components)
    except (ValueError, av.error.FFmpegError):
        return 8


def probe(path) -> VideoInfo:
    """Read the container and decode the first frame (the colour tags and rotation are only
    reliable on decoded frames, and it proves the codec works)."""
    path = Path(path)
    with open_input(path) as container:
        stream = video_stream(container, path)
        ctx = stream.codec_context
        first = None
        try:
            for first in container.decode(stream):
                break
        except av.error.FFmpegError as error:
            raise VideoError(f"{path}: cannot decode the video ({ctx.name}): {error.strerror}") from None
        if first is None:
            raise VideoError(f"{path}: the video stream has no decodable frame (truncated or corrupt?)")
        own = None  # the video's own length: stream duration, Matroska's DURATION tag, or the
        # container's when nothing else is in it (a longer audio track must not count)
        if stream.duration is not None and stream.time_base:
            own = float(stream.duration * stream.time_base)
        elif "DURATION" in stream.metadata:
            own = _clock(stream.metadata["DURATION"])
        elif container.duration and len(container.streams) == 1:
            own = container.duration / av.time_base
        duration = own if own is not None else (container.duration / av.time_base if container.duration else None)
        pix_fmt = first.format.name
        info = VideoInfo(
            path=path, container=container.format.name, codec=ctx.name, index=stream.index,
            width=first.width, height=first.height, pix_fmt=pix_fmt, bit_depth=bit_depth(pix_fmt),
            time_base=stream.time_base, rate=stream.average_rate or stream.guessed_rate,
            frames=stream.frames or 0, duration=duration,
            color_primaries=first.color_primaries or ctx.color_primaries,
            color_trc=first.color_trc or ctx.color_trc,
            colorspace=first.colorspace if first.colorspace != 2 else ctx.colorspace,
            color_range=first.color_range or ctx.color_range,
            rotation=int(round(first.rotation or 0)), video_duration=own,
        )
        for s in container.streams:
            if s.type in COPY_TYPES:
                name = s.codec_context.name if s.codec_context else "unknown"
                info.copied.append(f"#{s.index} {s.type} {name}")
        return info


def _clock(text: str) -> float | None:
    """'00:01:02.500000000' -> 62.5"""
    try:
        h, m, sec = text.split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return None
