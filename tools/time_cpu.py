"""Time what the README quotes for the CPU: restore() of a 512x512 RGB image per model (with
--ensemble also the self-ensemble, per size of its group), and the training batcher's next(32) at
crop 128. Median of several runs after one warm-up.

    python tools/time_cpu.py [--threads 2] [--data ../shared/data] [--models pip-nafnet-s2] [--ensemble]
"""

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import pip_filters
from pip_filters.ensemble import TASK_GROUP


def median_seconds(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--models", default="pip-nafnet-t2,pip-nafnet-t,pip-nafnet-s2,pip-nafnet-s")
    parser.add_argument("--ensemble", action="store_true",
                        help="also time restore(..., ensemble=True) with a task of each group size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sample = np.asarray(Image.open("pip_filters/samples/noisy.png").convert("RGB"))
    image = np.pad(sample, ((0, 512 - sample.shape[0]), (0, 0), (0, 0)), mode="reflect")[:512, :512]
    print(f"torch {torch.__version__}, {args.threads} threads")
    for name in args.models.split(","):
        if pip_filters.MODELS[name].sha256 is None:
            continue  # no shipped weights
        restorer = pip_filters.load(name, device="cpu")
        seconds = median_seconds(lambda: restorer.restore(image), args.repeats)
        print(f"restore 512x512 RGB, task auto, {name}: median {seconds:.3f} s")
        for task in ("denoise", "derain", "dehaze") if args.ensemble else ():
            copies = TASK_GROUP[task]
            seconds = median_seconds(lambda: restorer.restore(image, task=task, ensemble=True), args.repeats)
            print(f"restore 512x512 RGB, task {task}, ensemble of {copies}, {name}: median {seconds:.3f} s")
    clean = args.data / "train" / "cbsd432"
    if clean.is_dir():
        from pip_filters.training.data import ImageBank, TrainingBatcher

        batcher = TrainingBatcher(ImageBank(sorted(clean.iterdir())[:40]), crop=128)
        seconds = median_seconds(lambda: batcher.next(32), args.repeats)
        print(f"TrainingBatcher.next(32), crop 128: median {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
