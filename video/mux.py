"""The final step: join the segment files and copy the input's audio and subtitle packets (no
re-encoding) into the output container, interleaved by time, under a temporary name."""

from __future__ import annotations

import heapq
from fractions import Fraction
from pathlib import Path

import av

from .probe import COPY_TYPES, VideoError, VideoInfo, open_input


def _segment_packets(files: list[Path], offset: Fraction, end: Fraction | None):
    """The video packets of all segments in order. Without B-frames decode order is display
    order, so dts = pts (NUT does not always store dts); each packet lasts until the next one,
    the last until the end of the last frame (NUT does not keep durations either)."""
    previous = None
    for path in files:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            shift = round(offset / stream.time_base)
            for packet in container.demux(stream):
                if packet.pts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.pts -= shift
                packet.dts = packet.pts
                if previous is not None:
                    previous.duration = packet.pts - previous.pts
                    yield _order(previous), 0, previous
                previous = packet
    if previous is not None:
        if end is not None:
            last = round((end - offset) / previous.time_base) - previous.pts
            previous.duration = max(last, 1)
        yield _order(previous), 0, previous


def _copied_packets(container, streams: dict, window: tuple[Fraction, Fraction] | None, offset: Fraction,
                    problems: list[str]):
    if not streams:
        return
    try:
        for packet in container.demux([s for s in container.streams if s.index in streams]):
            if packet.dts is None and packet.pts is None:
                continue
            when = (packet.pts if packet.pts is not None else packet.dts) * packet.time_base
            if window is not None and not (window[0] <= when < window[1]):
                continue
            shift = round(offset / packet.time_base)
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            yield _order(packet), 1, packet
    except av.error.FFmpegError as error:  # truncated input: keep what was read
        problems.append(f"copying audio/subtitles stopped early: {error.strerror}")


def _order(packet) -> float:
    ts = packet.dts if packet.dts is not None else packet.pts
    return float(ts * packet.time_base)


def write_output(target: Path, info: VideoInfo, segment_files: list[Path], window=None,
                 offset: Fraction = Fraction(0), end: Fraction | None = None) -> list[str]:
    """Mux ``segment_files`` and the input's copied streams into ``target``: only the copied
    packets inside ``window`` (seconds) when given, all shifted back by ``offset``; ``end`` is
    when the last frame ends. Returns the problems worth telling the user."""
    problems: list[str] = []
    source = open_input(info.path)
    try:
        output = av.open(str(target), "w")
    except (ValueError, av.error.FFmpegError) as error:
        source.close()
        raise VideoError(f"cannot write {target.name}: unknown container for this extension ({error})") from None
    first = av.open(str(segment_files[0]))
    try:
        video = output.add_stream_from_template(first.streams.video[0])
        video.time_base = info.time_base  # the muxer keeps the input's clock where it can
        if info.rotation:
            video.set_display_rotation(info.rotation)
        streams = {}
        for stream in source.streams:
            if stream.type not in COPY_TYPES:
                continue
            try:
                copy = output.add_stream_from_template(stream)
                copy.metadata.update(stream.metadata)
                streams[stream.index] = copy
            except (ValueError, av.error.FFmpegError) as error:
                problems.append(f"dropped {stream.type} stream #{stream.index}: {error}")
        output.metadata.update({k: v for k, v in source.metadata.items() if k.lower() != "encoder"})
        # merge by time (video first on ties); the key never compares the packets themselves
        packets = heapq.merge(_segment_packets(segment_files, offset, end),
                              _copied_packets(source, streams, window, offset, problems), key=lambda t: t[:2])
        for _, kind, packet in packets:
            packet.stream = video if kind == 0 else streams[packet.stream.index]
            output.mux(packet)
        output.close()
    except av.error.FFmpegError as error:
        output.close()
        target.unlink(missing_ok=True)
        raise VideoError(f"cannot write {target.name}: {error.strerror or error}") from None
    finally:
        first.close()
        source.close()
    return problems
