"""pip-video on tiny clips made here with PyAV (VFR, audio, 10-bit, rotation, odd size, 4:4:4),
and on a real clip from ../shared/data/videos when it is there. The tiny model keeps it fast."""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="PyAV is not installed (pip install -e '.[video]')")

from pip_filters.video.cli import main  # noqa: E402
from pip_filters.video.pipeline import Interrupted, Options, restore_video  # noqa: E402
from pip_filters.video.probe import VideoError, probe  # noqa: E402
from pip_filters.video.sampling import sample_frames  # noqa: E402
from pip_filters.video.scenes import SceneCuts  # noqa: E402
from pip_filters.restorer import Pending  # noqa: E402

@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny frames gain nothing from more threads, and on a shared 2-core machine the threads of
    the model, FFmpeg and other jobs fighting over the cores made these tests 100x slower."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
VFR_MS = [0, 33, 70, 100, 180, 200, 240]  # irregular frame times in milliseconds


def make_clip(path, times_ms=VFR_MS, size=(64, 48), pix_fmt="yuv420p", codec="libx264", audio=False,
              rotation=0, colour=(1, 1, 1, 1)):
    """A clip with a moving square on a gradient; colour = (primaries, trc, matrix, range)."""
    w, h = size
    tb = Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        options = {"x265-params": "log-level=error"} if codec == "libx265" else {}
        stream = out.add_stream(codec, rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.time_base = stream.codec_context.time_base = tb
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = colour
        if rotation:
            stream.set_display_rotation(rotation)
        sound = out.add_stream("aac", rate=48000) if audio else None
        ramp = np.linspace(30, 220, w, dtype=np.float32)
        for i, ms in enumerate(times_ms):
            img = np.empty((h, w, 3), np.uint8)
            img[...] = ramp[None, :, None].astype(np.uint8)
            img[h // 4:h // 2, (4 * i) % (w - 8):(4 * i) % (w - 8) + 8] = (250, 40, 40)
            frame = av.VideoFrame.from_ndarray(img, "rgb24").reformat(
                format=pix_fmt, dst_colorspace=colour[2] if colour[2] in (1, 5, 6, 9) else None,
                dst_color_range=colour[3] or 1)
            frame.pts, frame.time_base = ms, tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            rng = np.random.default_rng(0)
            for i in range(12):
                chunk = av.AudioFrame.from_ndarray((rng.random((1, 1024)) * 0.1).astype(np.float32),
                                                   format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 48000, i * 1024
                for packet in sound.encode(chunk):
                    out.mux(packet)
            for packet in sound.encode():
                out.mux(packet)
    return path


def frame_times(path):
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def frames_rgb(path, fmt="rgb24"):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


def packets(path, kind):
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[0]
        return [(p.pts * p.time_base, bytes(p)) for p in c.demux(s) if p.dts is not None]


def quiet(**kw):
    return Options(progress=False, **kw)


def test_vfr_audio_timestamps_and_colour(tiny, tmp_path):
    src = make_clip(tmp_path / "in.mp4", audio=True, colour=(1, 1, 1, 1))
    out = tmp_path / "out.mp4"
    summary = restore_video(src, out, tiny, quiet(task="derain", batch_size=4), log=lambda m: None)
    assert summary.frames == len(VFR_MS)
    assert frame_times(out) == frame_times(src) == [Fraction(ms, 1000) for ms in VFR_MS]
    assert packets(out, "audio") == packets(src, "audio")  # copied byte for byte
    info_in, info_out = probe(src), probe(out)
    assert (info_out.color_primaries, info_out.color_trc, info_out.colorspace, info_out.color_range) == (1, 1, 1, 1)
    assert info_out.pix_fmt == "yuv420p" and info_out.frames == len(VFR_MS)
    assert abs(info_out.duration - info_in.duration) < 0.05
    assert not list(tmp_path.glob("*.pip-video-*")) and not list(tmp_path.glob(".*partial*"))


def test_hevc_10bit_rotation_hdr_tags_strength_zero_is_the_input(tiny, tmp_path):
    src = make_clip(tmp_path / "in.mov", times_ms=[0, 40, 80], pix_fmt="yuv420p10le", rotation=90,
                    colour=(9, 16, 9, 1), codec="libx265")
    out = tmp_path / "out.mov"
    restore_video(src, out, tiny, quiet(task="denoise", strength=0.0), log=lambda m: None)
    info = probe(out)
    assert info.codec == "hevc" and info.pix_fmt == "yuv420p10le" and info.bit_depth == 10
    assert info.rotation == 90
    assert (info.color_primaries, info.color_trc, info.colorspace, info.color_range) == (9, 16, 9, 1)
    assert frame_times(out) == frame_times(src) and abs(info.duration - probe(src).duration) < 1e-3
    # strength 0 gives back the input: only the (visually lossless) encoder changes it
    for a, b in zip(frames_rgb(src, "rgb48le"), frames_rgb(out, "rgb48le")):
        assert np.abs(a.astype(np.int32) - b.astype(np.int32)).mean() < 0.01 * 65535


def test_odd_size_yuv444_and_pts_after_restore(tiny, tmp_path):
    src = make_clip(tmp_path / "in.mkv", times_ms=[0, 50], size=(543, 321), pix_fmt="yuv444p",
                    colour=(2, 2, 2, 0))
    out = tmp_path / "out.mkv"
    restore_video(src, out, tiny, quiet(task={"derain": 0.6, "dehaze": 0.4}), log=lambda m: None)
    info = probe(out)
    assert (info.width, info.height, info.pix_fmt) == (543, 321, "yuv444p")
    assert frame_times(out) == frame_times(src)


def test_resume_equals_uninterrupted(tiny, tmp_path):
    src = make_clip(tmp_path / "in.mp4", audio=True)
    opts = quiet(task="derain", batch_size=2, segment_frames=3)
    whole = tmp_path / "whole.mp4"
    restore_video(src, whole, tiny, opts, log=lambda m: None)
    out = tmp_path / "out.mp4"
    with pytest.raises(Interrupted):
        restore_video(src, out, tiny, opts, stop_after_segments=1, log=lambda m: None)
    assert not out.exists()
    with pytest.raises(VideoError, match="--resume"):  # an unfinished run is never silently dropped
        restore_video(src, out, tiny, opts, log=lambda m: None)
    summary = restore_video(src, out, tiny, opts, resume=True, log=lambda m: None)
    assert summary.resumed_from == 3 and summary.restored == len(VFR_MS) - 3
    assert packets(out, "video") == packets(whole, "video")
    assert packets(out, "audio") == packets(whole, "audio")


def test_start_duration_and_auto_task(tiny, tmp_path):
    src = make_clip(tmp_path / "in.mp4", audio=True)
    out = tmp_path / "cut.mp4"
    summary = restore_video(src, out, tiny, quiet(start=0.06, duration=0.13), log=lambda m: None)
    assert set(summary.weights) == {"denoise", "derain", "dehaze", "deblur", "lowlight"}
    assert frame_times(out) == [Fraction(ms - 70, 1000) for ms in (70, 100, 180)]
    assert 0 < len(packets(out, "audio")) < len(packets(src, "audio"))


def test_per_frame_prompts_and_scene_cuts(tiny, tmp_path):
    src = make_clip(tmp_path / "in.mp4", times_ms=[0, 40, 80])
    summary = restore_video(src, tmp_path / "o.mp4", tiny, quiet(task="derain", prompt_refresh=1),
                            log=lambda m: None)
    assert summary.refreshes == 3
    cuts = SceneCuts(0.4)
    dark, bright = np.full((48, 64, 3), 20, np.uint8), np.full((48, 64, 3), 230, np.uint8)
    assert [cuts.is_cut(f) for f in (dark, dark, bright, bright)] == [False, False, True, False]


def test_sampling_with_and_without_decord(tmp_path):
    info = probe(make_clip(tmp_path / "in.mp4"))
    by_seek = sample_frames(info, 3, use_decord=False)
    assert len(by_seek) == 3 and by_seek[0].shape == (48, 64, 3) and by_seek[0].dtype == np.uint8
    pytest.importorskip("decord")
    assert len(sample_frames(info, 3)) == 3


def run_cli(capsys, *args):
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return stop.value.code, err


def test_cli_bad_inputs_fail_cleanly(tmp_path, capsys):
    code, err = run_cli(capsys, tmp_path / "missing.mp4", tmp_path / "o.mp4")
    assert code == 1 and "no such file" in err
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    code, err = run_cli(capsys, tmp_path / "junk.mp4", tmp_path / "o.mp4")
    assert code == 1 and "cannot read" in err
    with av.open(str(tmp_path / "sound.m4a"), "w") as out:  # audio only
        s = out.add_stream("aac", rate=48000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        f.sample_rate, f.pts = 48000, 0
        for p in s.encode(f) + s.encode():
            out.mux(p)
    code, err = run_cli(capsys, tmp_path / "sound.m4a", tmp_path / "o.mp4")
    assert code == 1 and "no video stream" in err
    src = make_clip(tmp_path / "in.mkv", times_ms=[0, 40])
    unknown = tmp_path / "unknown.mkv"  # rename the codec id in the Matroska header
    unknown.write_bytes(src.read_bytes().replace(b"V_MPEG4/ISO/AVC", b"V_XXXXX/ISO/ZZZ", 1))
    code, err = run_cli(capsys, unknown, tmp_path / "o.mp4")
    assert code == 1 and "codec" in err
    code, err = run_cli(capsys, src, src, "--overwrite")
    assert code == 1 and "over the input" in err
    code, err = run_cli(capsys, src, tmp_path / "o.mp4", "--task", "sharpen")
    assert code == 2 and "unknown task" in err
    assert not (tmp_path / "o.mp4").exists()


def test_cli_truncated_input_restores_what_decodes(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mkv", times_ms=list(range(0, 1000, 40)), size=(32, 32))
    data = src.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    out = tmp_path / "out.mkv"
    code = main([str(cut), str(out), "--model", "pip-nafnet-t", "--task", "denoise", "--quiet", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "damaged" in err and "Traceback" not in err
    assert 0 < len(frame_times(out)) < 25


def test_cli_preview_and_summary(tmp_path, capsys):
    src = make_clip(tmp_path / "in.mp4", times_ms=[0, 40, 80])
    assert main([str(src), str(tmp_path / "p.png"), "--preview", "--model", "pip-nafnet-t", "--device", "cpu"]) == 0
    assert "detected degradation" in capsys.readouterr().err
    from PIL import Image
    assert Image.open(tmp_path / "p.png").size == (2 * 64 + 4, 3 * 48 + 2 * 4)
    assert main([str(src), str(tmp_path / "o.mp4"), "--model", "pip-nafnet-t", "--task", "derain=0.6,dehaze=0.4",
                 "--device", "cpu", "--quiet", "--segment-frames", "2"]) == 0
    err = capsys.readouterr().err
    assert "done: 3 frames" in err and "derain 0.60" in err and "prompts computed" in err



def test_cli_ensemble_changes_the_frames_not_the_timing(tmp_path):
    src = make_clip(tmp_path / "in.mp4", times_ms=[0, 40, 80])
    common = ["--model", "pip-nafnet-t", "--task", "denoise", "--device", "cpu", "--quiet", "--crf", "0"]
    assert main([str(src), str(tmp_path / "one.mp4"), *common]) == 0
    assert main([str(src), str(tmp_path / "ens.mp4"), "--ensemble", *common]) == 0
    one, ens = frames_rgb(tmp_path / "one.mp4"), frames_rgb(tmp_path / "ens.mp4")
    assert len(ens) == len(one) == 3 and ens[0].shape == one[0].shape
    assert any(np.abs(a.astype(int) - b).mean() > 0.05 for a, b in zip(one, ens))
    assert frame_times(tmp_path / "ens.mp4") == frame_times(src)

@pytest.fixture
def real_clip():
    clip = VIDEOS / "blur_day-city_COMP3065-blurred.mp4"
    if not clip.exists():
        pytest.skip(f"real clips not found at {VIDEOS} (the shared data folder beside the checkout)")
    return clip


def test_real_clip_keeps_timing_audio_colour(tiny, real_clip, tmp_path):
    out = tmp_path / "out.mp4"
    restore_video(real_clip, out, tiny, quiet(task="deblur", duration=0.05), log=lambda m: None)
    src_times = frame_times(real_clip)
    times = frame_times(out)
    assert len(times) == 2 and times == [t - src_times[0] for t in src_times[:2]]
    src, res = probe(real_clip), probe(out)
    assert (res.color_primaries, res.color_trc, res.colorspace, res.color_range) == \
           (src.color_primaries, src.color_trc, src.colorspace, src.color_range)
    end = src_times[1] + Fraction(1, 30)
    audio_in = [b for t, b in packets(real_clip, "audio") if src_times[0] <= t < end + Fraction(1, 100)]
    audio_out = [b for _, b in packets(out, "audio")]
    assert audio_out and audio_out == audio_in[:len(audio_out)]


class Identity:
    """A restorer that changes nothing, to test the container plumbing on a whole real clip fast."""

    name, precision = "identity", "fp32"
    device = type("Device", (), {"type": "cpu"})()

    def prompt(self, image, task="auto"):
        return None

    def submit(self, frames, **_):
        return Pending(lambda: frames)


def test_real_clip_whole_length_frames_audio_duration(real_clip, tmp_path):
    out = tmp_path / "out.mp4"
    summary = restore_video(real_clip, out, Identity(), quiet(task="deblur", preset="ultrafast", segment_frames=64),
                            log=lambda m: None)
    src, res = probe(real_clip), probe(out)
    assert summary.frames == res.frames == src.frames == 180 and not summary.damaged
    assert frame_times(out) == frame_times(real_clip)
    assert packets(out, "audio") == packets(real_clip, "audio")
    assert abs(res.duration - src.duration) < 1 / 29


def test_real_clip_resume_equals_uninterrupted(tiny, real_clip, tmp_path):
    opts = quiet(task="deblur", duration=0.13, segment_frames=2, batch_size=2, preset="ultrafast")
    whole, out = tmp_path / "whole.mp4", tmp_path / "out.mp4"
    restore_video(real_clip, whole, tiny, opts, log=lambda m: None)
    with pytest.raises(Interrupted):
        restore_video(real_clip, out, tiny, opts, stop_after_segments=1, log=lambda m: None)
    restore_video(real_clip, out, tiny, opts, resume=True, log=lambda m: None)
    assert len(packets(out, "video")) == 4
    assert packets(out, "video") == packets(whole, "video")
    assert packets(out, "audio") == packets(whole, "audio")


class CtrlC(Identity):
    """Ctrl-C arrives during the third model call."""

    calls = 0

    def submit(self, frames, **kw):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return super().submit(frames, **kw)


def test_ctrl_c_keeps_finished_segments_and_resumes(tmp_path):
    src = make_clip(tmp_path / "in.mp4", audio=True)
    opts = quiet(task="derain", batch_size=1, segment_frames=2)
    whole, out = tmp_path / "whole.mp4", tmp_path / "out.mp4"
    restore_video(src, whole, Identity(), opts, log=lambda m: None)
    with pytest.raises(Interrupted, match="--resume"):
        restore_video(src, out, CtrlC(), opts, log=lambda m: None)
    assert not out.exists() and list(tmp_path.glob("out.mp4.pip-video-parts/segment-*.nut"))
    summary = restore_video(src, out, Identity(), opts, resume=True, log=lambda m: None)
    assert summary.resumed_from == 2
    assert packets(out, "video") == packets(whole, "video") and packets(out, "audio") == packets(whole, "audio")
