"""A few frames sampled across a video (random access), for `--task auto` and `--preview`.

decord reads them by index without decoding the whole file; it is optional (no wheels on some
platforms), so PyAV seeking is the fallback. Frames come back as RGB uint8 arrays."""

from __future__ import annotations

import numpy as np

from .frames import to_rgb8
from .probe import VideoInfo, open_input, video_stream


def sample_times(info: VideoInfo, count: int, start: float = 0.0, duration: float | None = None) -> list[float]:
    """``count`` times (seconds) spread evenly over [start, start + duration), mid-interval so
    neither the first nor the last (often black or fading) frame is favoured."""
    end = info.duration or start
    if duration is not None:
        end = min(end, start + duration) if info.duration else start + duration
    span = max(end - start, 0.0)
    return [start + span * (k + 0.5) / count for k in range(count)]


def sample_frames(info: VideoInfo, count: int = 8, start: float = 0.0, duration: float | None = None,
                  use_decord: bool = True) -> list[np.ndarray]:
    times = sample_times(info, count, start, duration)
    if use_decord:
        try:
            return _decord_frames(info, times)
        except Exception:  # missing decord, or a file decord cannot index: PyAV can
            pass
    return _pyav_frames(info, times)


def _decord_frames(info: VideoInfo, times: list[float]) -> list[np.ndarray]:
    import decord

    reader = decord.VideoReader(str(info.path), ctx=decord.cpu(0), num_threads=1)
    stamps = reader.get_frame_timestamp(range(len(reader)))[:, 0]  # start time of each frame
    indices = sorted({int(np.clip(np.searchsorted(stamps, t, side="right") - 1, 0, len(reader) - 1))
                      for t in times})
    frames = reader.get_batch(indices).asnumpy()
    if info.rotation:  # decord ignores the display matrix; the model sees what the viewer sees
        frames = [np.rot90(f, k=info.rotation // 90) for f in frames]
    return [np.ascontiguousarray(f) for f in frames]


def _pyav_frames(info: VideoInfo, times: list[float]) -> list[np.ndarray]:
    frames = []
    with open_input(info.path) as container:
        stream = video_stream(container, info.path)
        for t in times:
            target = int(t / stream.time_base) if stream.time_base else 0
            container.seek(target + (stream.start_time or 0), stream=stream, backward=True)
            chosen = None
            for frame in container.decode(stream):
                chosen = frame
                if frame.pts is None or frame.pts >= target + (stream.start_time or 0):
                    break
            if chosen is not None:
                rgb = to_rgb8(chosen)
                frames.append(np.rot90(rgb, k=info.rotation // 90) if info.rotation else rgb)
    return frames
