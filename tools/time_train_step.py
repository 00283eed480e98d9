"""Time one training step (forward with every loss, backward, AdamW) of a model on the CPU, eager or
compiled, on random crops: the measurement behind train.py compiling the step only on GPUs.

    python tools/time_train_step.py --model pip-nafnet-s2 --batch 8 --crop 256 [--compile] [--bf16]

Prints the first step (which includes compiling) and the median of the steps after a warm-up.
"""

import argparse
import statistics
import time

import torch

from pip_filters.models import build_model
from pip_filters.registry import get_spec
from pip_filters.training.train import TrainStep


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="pip-nafnet-s2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--steps", type=int, default=14, help="timed steps; the first 4 are warm-up")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile the step, as train.py does on GPUs")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, as train.py does on GPUs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = build_model(get_spec(args.model).config).to(memory_format=torch.channels_last)
    step = TrainStep(model)
    run = torch.compile(step) if args.compile else step
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    degraded = torch.rand(args.batch, 3, args.crop, args.crop).contiguous(memory_format=torch.channels_last)
    clean = torch.rand(args.batch, 3, args.crop, args.crop)
    task_ids = torch.randint(0, 5, (args.batch,))

    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            pixel, sensor, separation = run(degraded, clean, task_ids)
        loss = pixel + 0.1 * sensor + 0.01 * separation
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    mode = ("compiled" if args.compile else "eager") + (" bf16" if args.bf16 else " fp32")
    print(f"{args.model}, batch {args.batch}, crop {args.crop}, {mode}, {args.threads} threads: "
          f"first step {times[0]:.1f} s, median {statistics.median(times[4:]):.3f} s a step")


if __name__ == "__main__":
    main()
