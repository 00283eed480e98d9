"""The streaming filter: decode -> restore -> encode as three stages joined by bounded queues.

Decoding and encoding run in threads (FFmpeg releases the GIL), restoring in the calling thread,
so the model is never starved by the codec and memory stays flat: at most a few batches of
frames are alive at any time, whatever the length of the video. Frames are grouped into
segments of ``segment_frames``; each finished segment is recorded, so an interrupted run
continues with ``resume=True`` and gives the same file as an uninterrupted one."""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from .encode import SegmentWriter, choose_settings
from .frames import stored, to_rgb, upright
from .mux import write_output
from .probe import VideoError, VideoInfo, open_input, probe, video_stream
from .sampling import sample_frames
from .scenes import SceneCuts
from .segments import WorkDir

AUTO_SAMPLES = 8  # frames sampled across the video to estimate the degradation for task="auto"


class Interrupted(VideoError):
    """Stopped before the end; the finished segments are kept for --resume."""


@dataclass
class Options:
    task: object = "auto"  # "auto", a task name, a mixture dict
    strength: float = 1.0
    ensemble: bool = False  # average the restorations of flipped copies (pip_filters.ensemble)
    batch_size: int = 4
    prompt_refresh: int = 0  # 0: new prompt only at scene cuts; N: also every N frames; 1: per frame
    scene_threshold: float | None = 0.4  # None: no scene-cut detection
    segment_frames: int = 240
    start: float = 0.0  # seconds from the first frame
    duration: float | None = None
    codec: str | None = None
    crf: int | None = None
    preset: str | None = None
    queue_frames: int = 8  # per queue, on top of one batch
    progress: bool = True


@dataclass
class Summary:
    output: Path
    frames: int = 0  # frames in the output
    restored: int = 0  # frames restored by this run (fewer when resumed)
    seconds: float = 0.0
    weights: dict | None = None  # the degradation used (detected for task="auto")
    refreshes: int = 0  # prompts computed
    cuts: int = 0  # scene cuts found
    damaged: bool = False  # some of the input could not be decoded
    resumed_from: int = 0
    problems: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.restored / self.seconds if self.seconds else 0.0


def check_paths(source: Path, target: Path, overwrite: bool) -> None:
    if target.suffix.lower() in ("", ".part"):
        raise VideoError(f"{target}: give the output a video extension such as .mp4 or .mkv")
    if target.exists() and (target.resolve() == source.resolve() or os.path.samefile(source, target)):
        raise VideoError(f"refusing to write over the input {source}")
    if target.exists() and not overwrite:
        raise VideoError(f"{target} exists (use --overwrite to replace it)")
    if not target.parent.is_dir():
        raise VideoError(f"the folder {target.parent} does not exist")


def estimate_weights(restorer, info: VideoInfo, options: Options) -> dict[str, float]:
    """The degradation averaged over frames sampled across the selection (random access)."""
    frames = sample_frames(info, AUTO_SAMPLES, options.start, options.duration)
    if not frames:
        raise VideoError(f"{info.path}: no frame could be sampled to detect the degradation")
    readings = [restorer.detect(frame) for frame in frames]
    return {name: float(np.mean([r[name] for r in readings])) for name in readings[0]}


def job_key(info: VideoInfo, restorer, options: Options, settings) -> dict:
    """Everything that decides the output's bytes: a resumed run must match it exactly."""
    stat = info.path.stat()
    return {"input": str(info.path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "model": restorer.name, "device": restorer.device.type, "precision": str(restorer.precision),
            "task": options.task if not isinstance(options.task, dict) else dict(sorted(options.task.items())),
            "strength": options.strength, "ensemble": options.ensemble, "batch_size": options.batch_size,
            "prompt_refresh": options.prompt_refresh, "scene_threshold": options.scene_threshold,
            "segment_frames": options.segment_frames, "start": options.start, "duration": options.duration,
            "encoder": settings.as_dict()}


def restore_video(source, target, restorer, options: Options | None = None, *, resume: bool = False,
                  overwrite: bool = False, stop_after_segments: int | None = None, log=print) -> Summary:
    """Restore the video ``source`` into ``target``. ``stop_after_segments`` simulates a crash
    (for tests). Raises VideoError (or Interrupted) with a message for the user."""
    options = options or Options()
    source, target = Path(source), Path(target)
    info = probe(source)
    check_paths(source, target, overwrite)
    settings = choose_settings(info, options.codec, options.crf, options.preset)
    summary = Summary(target, settings=settings.as_dict())
    if settings.note:
        summary.problems.append(settings.note)
    work = WorkDir(target)
    work.open(job_key(info, restorer, options, settings), resume, overwrite)
    task = options.task
    if task == "auto":
        if "weights" not in work.state:  # sampled once; a resumed run reuses the same reading
            work.set(weights=estimate_weights(restorer, info, options))
        task = work.state["weights"]
        log("detected degradation: " + ", ".join(f"{k} {v:.2f}" for k, v in task.items()))
    summary.weights = dict(task) if isinstance(task, dict) else {"task": task}
    summary.resumed_from = work.finished_frames
    started = time.perf_counter()
    if not work.complete:
        _stream(info, restorer, options, task, settings, work, summary, stop_after_segments)
    summary.seconds = time.perf_counter() - started
    summary.frames = work.state["frames"]
    if summary.frames == 0:
        work.remove()
        raise VideoError(f"{source}: no frame in the selected range decoded")
    window, offset, end = None, Fraction(0), work.state["end_pts"] * info.time_base
    if options.start or options.duration is not None:  # a cut-out starts at zero, with its audio
        offset = work.state["first_pts"] * info.time_base
        window = (offset, end)
    files = [work.segment_path(s["index"]) for s in work.finished]
    partial = target.with_name(f".{target.stem}.pip-video-partial{target.suffix}")
    summary.problems += write_output(partial, info, files, window, offset, end)
    os.replace(partial, target)  # the real output appears whole, or not at all
    summary.problems += work.state.get("problems", [])
    summary.damaged = bool(work.state.get("problems"))
    work.remove()
    return summary


class _Stop(Exception):
    pass


ABORT = ("abort",)  # tells the encoder to drop the segment in progress and end


def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue
    raise _Stop


def _get(q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            continue
    raise _Stop


def _stream(info, restorer, options, task, settings, work, summary, stop_after_segments):
    skip = work.finished_frames
    stop = threading.Event()  # a stage failed: everything stops at once
    halt = threading.Event()  # the restore stage stopped: decoding stops, encoding drains
    errors: list[BaseException] = []
    decoded = queue.Queue(maxsize=options.queue_frames + options.batch_size)
    restored = queue.Queue(maxsize=options.queue_frames + options.batch_size)
    encoded = [0]  # frames encoded by this run (the bar does not count when disabled)
    bar = tqdm(total=_expected_frames(info, options) or None, initial=skip, unit="frame", desc="restoring",
               file=sys.stderr, disable=not options.progress, dynamic_ncols=True)

    def guarded(stage, *args):
        def run():
            try:
                stage(*args)
            except _Stop:
                pass
            except BaseException as error:  # handed to the main thread, which reports it
                errors.append(error)
                stop.set()
                halt.set()
        return threading.Thread(target=run, daemon=True)

    threads = [guarded(_decode_stage, info, options, skip, decoded, halt),
               guarded(_encode_stage, info, settings, options, work, restored, stop, bar, encoded,
                       stop_after_segments)]
    for thread in threads:
        thread.start()
    try:
        _restore_stage(restorer, info, options, task, decoded, restored, stop, summary)
    except _Stop:
        pass
    except BaseException as error:  # Ctrl-C or a model error: stop decoding, let the encoder
        errors.insert(0, error)     # finish the segments already restored, then stop
        halt.set()
        try:
            _put(restored, ABORT, stop)
        except _Stop:
            pass
    finally:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.2)
        bar.close()
    summary.restored = encoded[0]
    if errors:
        error = errors[0]
        if isinstance(error, (KeyboardInterrupt, Interrupted)):
            raise Interrupted(f"stopped after {work.finished_frames} finished frames "
                              f"({len(work.finished)} segments); run again with --resume to continue")
        if isinstance(error, VideoError):
            raise error
        kept = f"; {len(work.finished)} finished segments are kept for --resume" if work.finished else ""
        raise VideoError(f"restoring failed: {type(error).__name__}: {error}{kept}") from error


def _expected_frames(info: VideoInfo, options: Options) -> int:
    total = info.estimated_frames
    if info.rate and (options.start or options.duration is not None):
        left = (info.duration or 0) - options.start
        if options.duration is not None:
            left = min(left, options.duration) if info.duration else options.duration
        total = max(0, int(round(left * info.rate)))
    return total


def _decode_stage(info: VideoInfo, options: Options, skip: int, out: queue.Queue, stop: threading.Event):
    """Decoded frames of the selection as (index, pts, duration, rgb); ends with a summary item.
    Frames of finished segments are counted but not converted (resume)."""
    problems, index, first_pts, end_pts, bad = [], 0, None, None, 0
    with open_input(info.path) as container:
        stream = video_stream(container, info.path)
        stream.thread_type = "AUTO"
        origin = stream.start_time or 0
        tb = stream.time_base
        start = Fraction(options.start).limit_denominator(10**6)
        end = None if options.duration is None else start + Fraction(options.duration).limit_denominator(10**6)
        if start:
            container.seek(origin + int(start / tb), stream=stream, backward=True)
        last_pts, default_duration = None, int(round(1 / (info.rate * tb))) if info.rate else 1
        finished = False
        try:
            for packet in container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    bad += 1  # a damaged packet: restore what decodes, count the rest
                    continue
                for frame in frames:
                    pts = frame.pts if frame.pts is not None else (last_pts or 0) + default_duration
                    if last_pts is not None and pts <= last_pts:
                        continue  # a duplicate or out-of-order timestamp cannot be muxed
                    t = (pts - origin) * tb
                    if t < start:
                        continue
                    if end is not None and t >= end:
                        finished = True
                        break
                    duration = frame.duration or default_duration
                    if index >= skip:
                        rgb = to_rgb(frame, info.bit_depth, info.colorspace, info.color_range)
                        _put(out, (index, pts, duration, rgb), stop)
                    first_pts = pts if first_pts is None else first_pts
                    last_pts, end_pts = pts, pts + duration
                    index += 1
                if finished:
                    break
        except av.error.FFmpegError as error:
            problems.append(f"the input is damaged or truncated after frame {index}: {error.strerror}")
    if bad:
        problems.append(f"{bad} damaged video packets could not be decoded and were left out")
    whole = not options.start and options.duration is None
    if whole and info.frames and index < info.frames:
        problems.append(f"decoded {index} of the {info.frames} frames the container lists (truncated input?)")
    elif whole and info.video_duration and end_pts is not None:
        decoded_to = float((end_pts - origin) * tb)
        if decoded_to < info.video_duration - max(0.25, 3 / float(info.rate or 30)):
            problems.append(f"the video decodes to {decoded_to:.2f} s of the {info.video_duration:.2f} s the "
                            "container states (truncated input?)")
        else:  # the container knows how long the last frame lasts better than a guessed frame rate
            stated = origin + round(Fraction(info.video_duration).limit_denominator(10**6) / tb)
            end_pts = stated if stated > last_pts else end_pts
    _put(out, (None, index, first_pts, end_pts, problems), stop)


def _restore_stage(restorer, info, options, task, inp, out, stop, summary):
    """Batches of frames that share a prompt; a new prompt at each segment start (so segments
    do not depend on each other), at scene cuts and every ``prompt_refresh`` frames."""
    per_frame = options.prompt_refresh == 1
    cuts = SceneCuts(options.scene_threshold) if options.scene_threshold else None
    value_range = (0, 65535) if info.bit_depth > 8 else None
    batch, prompt, since = [], None, 0
    in_flight = None  # (frames, Pending): the batch the GPU computes while the next one gathers

    def hand_on():
        nonlocal in_flight
        if in_flight is not None:
            (items, pending), in_flight = in_flight, None
            for (index, pts, duration, _), rgb in zip(items, pending.result()):
                _put(out, (index, pts, duration, stored(rgb, info.rotation)), stop)

    def flush():
        """Queue the gathered batch, then hand on the one before it: the host waits for the
        GPU only when the next batch is already queued behind it."""
        nonlocal in_flight
        queued = None
        if batch:
            # per_frame is the no-reuse baseline: every frame gets its own prompt
            how = {"task": task} if per_frame else {"prompt": prompt}
            pending = restorer.submit(np.stack([b[3] for b in batch]), **how, strength=options.strength,
                                      batch_size=options.batch_size, value_range=value_range,
                                      ensemble=options.ensemble)
            summary.refreshes += len(batch) if per_frame else 0
            queued = (list(batch), pending)
            batch.clear()
        hand_on()
        in_flight = queued

    try:
        while True:
            item = _get(inp, stop)
            if item[0] is None:
                flush()
                hand_on()
                _put(out, item, stop)
                return
            index, pts, duration, rgb = item
            rgb = upright(rgb, info.rotation)
            segment_start = index % options.segment_frames == 0
            refresh = segment_start or prompt is None
            if cuts is not None:
                if segment_start:
                    cuts.reset(rgb)
                elif cuts.is_cut(rgb):
                    summary.cuts += 1
                    refresh = True
            if options.prompt_refresh > 1 and since >= options.prompt_refresh:
                refresh = True
            if batch and (segment_start or len(batch) >= options.batch_size or (refresh and not per_frame)):
                flush()
            if refresh and not per_frame:
                prompt = restorer.prompt(rgb, task=task)
                summary.refreshes += 1
                since = 0
            batch.append((index, pts, duration, rgb))
            since += 1
    except _Stop:
        raise
    except BaseException:
        # Stopped by the user, or the model failed on a later batch: the batch already computed
        # still reaches the encoder, so its segment can finish and is kept for --resume.
        try:
            hand_on()
        except BaseException:
            pass
        raise


def _encode_stage(info, settings, options, work, inp, stop, bar, encoded, stop_after_segments):
    """Writes the restored frames into segment files, closing each as soon as it is full, so an
    interruption loses at most the segment in progress."""
    writer, segment, done = None, None, 0

    def close():
        nonlocal writer, done
        writer.close()
        work.add_segment(segment, writer.frames)
        writer, done = None, done + 1
        if stop_after_segments is not None and done >= stop_after_segments:
            raise Interrupted("stopped for a test")

    try:
        while True:
            item = _get(inp, stop)
            if item is ABORT:
                return
            if item[0] is None:
                _, frames, first_pts, end_pts, problems = item
                if writer is not None:
                    close()
                work.set(complete=True, frames=frames, first_pts=first_pts, end_pts=end_pts, problems=problems)
                return
            index, pts, duration, rgb = item
            if writer is None:
                segment = index // options.segment_frames
                writer = SegmentWriter(work.segment_path(segment), info, settings)
            writer.write(rgb, pts, duration)
            encoded[0] += 1
            bar.update(1)
            if (index + 1) % options.segment_frames == 0:
                close()
    finally:
        if writer is not None:
            writer.abort()  # an unfinished segment is redone on resume
