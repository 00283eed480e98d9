"""pip-video: restore a video with PIP, keeping its audio, timing, colour and rotation.

    pip-video in.mp4 out.mp4 --task derain
    pip-video in.mp4 out.mp4 --task auto --resume        # continue an interrupted run
    pip-video in.mp4 check.png --preview                 # a few frames side by side, in seconds
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pip_filters.cli import parse_task
from pip_filters.registry import DEFAULT_MODEL, list_models
from pip_filters.tasks import TASKS, task_weights

PROG = "pip-video"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="the video to restore")
    p.add_argument("output", type=Path, help="the restored video (.mp4, .mkv, .mov); a .png with --preview")
    p.add_argument("--task", default="auto",
                   help=f"auto (detected from frames sampled across the video), one of {', '.join(TASKS)}, "
                        "or a mix like derain=0.6,dehaze=0.4")
    p.add_argument("--model", default=None, help=f"one of {', '.join(list_models())} (default {DEFAULT_MODEL})")
    p.add_argument("--device", default="auto", help="cpu, cuda, mps or auto")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    p.add_argument("--batch", type=int, default=4, help="frames per model call (default 4)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network: faster on long videos after a one-off compile (fp32 on a CPU)")
    p.add_argument("--strength", type=float, default=1.0, help="0 keeps the input, 1 restores fully")
    p.add_argument("--ensemble", action="store_true",
                   help="also restore flipped copies of each frame and average: better, 2 to 8 times slower")
    p.add_argument("--codec", default=None,
                   help="video encoder: libx264, libx265, ... (default: H.265 for H.265 input, else H.264)")
    p.add_argument("--crf", type=int, default=None,
                   help="quality (default: visually lossless, 16 for x264, 18 for x265)")
    p.add_argument("--preset", default=None, help="encoder speed preset (default medium)")
    p.add_argument("--start", type=float, default=0.0, help="start at this many seconds")
    p.add_argument("--duration", type=float, default=None, help="restore only this many seconds")
    p.add_argument("--prompt-refresh", type=int, default=0, metavar="N",
                   help="also recompute the prompt every N frames (1: per frame, no reuse); "
                        "by default only at scene cuts")
    p.add_argument("--scene-threshold", type=float, default=0.4,
                   help="share of the luma histogram that must change to count as a scene cut (0 disables)")
    p.add_argument("--segment-frames", type=int, default=240, help="frames per resumable segment (default 240)")
    p.add_argument("--preview", action="store_true", help="write a side-by-side PNG of a few sampled frames only")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run of the same command")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (never the input)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the model (default: torch's choice; on a busy machine fewer can be faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(message: str, status: int = 1):
        parser.exit(status, f"{PROG}: error: {message}\n")

    try:
        task = parse_task(args.task)
        task_weights(task)  # an unknown task is refused before any work
    except (ValueError, TypeError) as error:
        fail(f"bad --task {args.task!r}: {error}", 2)
    if args.batch < 1 or args.segment_frames < 1 or args.prompt_refresh < 0:
        fail("--batch and --segment-frames must be at least 1, --prompt-refresh at least 0", 2)
    if not 0.0 <= args.strength <= 1.0:
        fail("--strength must be between 0 and 1", 2)
    if args.start < 0 or (args.duration is not None and args.duration <= 0):
        fail("--start must be >= 0 and --duration > 0", 2)

    # heavy imports (torch, av) only once the arguments are known good
    import pip_filters
    from pip_filters.restorer import UntrainedModelError
    from pip_filters.weights_io import WeightsError

    from .pipeline import Options, estimate_weights, restore_video
    from .preview import preview_path, write_preview
    from .probe import VideoError, probe

    if args.threads:
        import torch
        torch.set_num_threads(max(1, args.threads))
    try:
        info = probe(args.input)
        print(f"{args.input}: {info.describe()}" + (f"; copying {', '.join(info.copied)}" if info.copied else ""),
              file=sys.stderr)
        restorer = pip_filters.load(args.model, device=args.device, precision=args.precision, compile=args.compile)
        print(f"model {restorer.name} on {restorer.device} ({str(restorer.precision).replace('torch.', '')})",
              file=sys.stderr)
        options = Options(task=task, strength=args.strength, ensemble=args.ensemble, batch_size=args.batch,
                          prompt_refresh=args.prompt_refresh, scene_threshold=args.scene_threshold or None,
                          segment_frames=args.segment_frames, start=args.start, duration=args.duration,
                          codec=args.codec, crf=args.crf, preset=args.preset, progress=not args.quiet)
        if args.preview:
            target = preview_path(args.output)
            if target.exists() and not args.overwrite:
                fail(f"{target} exists (use --overwrite to replace it)")
            if task == "auto":
                task = estimate_weights(restorer, info, options)
                print("detected degradation: " + ", ".join(f"{k} {v:.2f}" for k, v in task.items()), file=sys.stderr)
            path = write_preview(restorer, info, target, task, args.strength, start=args.start, duration=args.duration,
                                 ensemble=args.ensemble)
            print(f"preview written to {path}", file=sys.stderr)
            return 0
        summary = restore_video(args.input, args.output, restorer, options, resume=args.resume,
                                overwrite=args.overwrite, log=lambda m: print(m, file=sys.stderr))
    except (UntrainedModelError, WeightsError) as error:
        fail(f"{error}. Choose a trained model with --model.", 2)
    except VideoError as error:
        fail(str(error), 130 if type(error).__name__ == "Interrupted" else 1)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except (ValueError, OSError) as error:
        fail(str(error))

    for problem in summary.problems:
        print(f"warning: {problem}", file=sys.stderr)
    weights = summary.weights or {}
    shown = ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in weights.items())
    resumed = f", resumed after {summary.resumed_from} frames" if summary.resumed_from else ""
    print(f"done: {summary.frames} frames in {summary.output} ({summary.restored} restored at "
          f"{summary.fps:.2f} fps in {summary.seconds:.1f} s{resumed}); degradation: {shown}; "
          f"prompts computed: {summary.refreshes} ({summary.cuts} scene cuts); "
          f"video {summary.settings['codec']} {summary.settings['pix_fmt']} crf {summary.settings['crf']}",
          file=sys.stderr)
    if summary.damaged:
        print(f"{PROG}: error: the input is damaged; the output holds what could be decoded", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
