"""Where a model's GPU time goes at 1080p: the time per call, then the kernels and the aten ops
(with their input shapes) that take the most device time, from torch.profiler.

    python tools/gpu_profile.py                           # the default model, fp16, batch 4, eager
    python tools/gpu_profile.py --compile --rows 16       # the torch.compile'd network

This is how the two hot spots of the first H100 measurement were found (issue 6): CUDA's
layer-norm kernel and the channel attention's (c x pixels) x (pixels x c) product.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch.profiler import ProfilerActivity, profile

import pip_filters
from pip_filters.tiling import pad_to_multiple


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and input arguments this script shares with tools/gpu_blocks.py."""
    parser.add_argument("--model", default=pip_filters.DEFAULT_MODEL)
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    parser.add_argument("--device", default="cuda", help="cuda; cpu only to try the script")


def model_and_input(args, compile: bool = False):
    """The restorer, a random input batch padded as restore() pads it (pip-nafnet-s2 needs 1088
    rows for 1080), and equal task weights."""
    width, height = (int(v) for v in args.size.split("x"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restorer = pip_filters.load(args.model, device=args.device, precision=args.precision,
                                    allow_untrained=True, compile=compile)
    x, _ = pad_to_multiple(restorer._input(torch.rand(args.batch, 3, height, width)), restorer.model.multiple)
    return restorer, x, torch.full((args.batch, 5), 0.2, device=args.device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--rows", type=int, default=20, help="rows of each table")
    args = parser.parse_args()
    restorer, x, weights = model_and_input(args, args.compile)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    with torch.inference_mode():
        for _ in range(3):  # warm-up (compiles, if asked)
            restorer.network(x, weights)
        sync()
        start = time.perf_counter()
        for _ in range(10):
            restorer.network(x, weights)
        sync()
        ms = (time.perf_counter() - start) / 10 * 1000
        print(f"{args.model} {args.precision} batch {args.batch} {args.size} "
              f"{'compiled' if args.compile else 'eager'}: {ms:.1f} ms per call, {args.batch / ms * 1000:.1f} images/s")
        with profile(activities=activities, record_shapes=True) as prof:
            restorer.network(x, weights)
            sync()
    events = prof.key_averages()
    print(events.table(sort_by="self_device_time_total", row_limit=args.rows, max_name_column_width=70))
    ops = [e for e in prof.key_averages(group_by_input_shape=True) if e.key.startswith("aten::")]
    print("aten ops by device time (children included), with input shapes:")
    for e in sorted(ops, key=lambda e: -e.device_time_total)[:args.rows]:
        print(f"{e.key:28s} {e.device_time_total / 1000:8.2f} ms  calls {e.count:3d}  {str(e.input_shapes)[:140]}")


if __name__ == "__main__":
    main()
