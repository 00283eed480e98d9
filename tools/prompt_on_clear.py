"""What each task's prompt does to a clear image, on the held-out validation images of train/
(never test/): PSNR of the output against the input and the mean change in grey level.

    python tools/prompt_on_clear.py                        # the default model's shipped weights
    python tools/prompt_on_clear.py --weights runs/X/pip-nafnet-s.safetensors

A prompt told (or misread by the sensor) on an image without that degradation should leave it
nearly as it is; a low PSNR here is what a misread costs at most. "auto" is what the sensor's
choice does to them.
"""

from __future__ import annotations

import argparse

import numpy as np

from pip_filters.tasks import TASKS
from pip_filters.training.evaluate import psnr, to_uint8

import held_out  # tools/held_out.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    held_out.add_arguments(parser)
    args = parser.parse_args()
    restorer, images = held_out.load(args)
    for task in (*TASKS, "auto"):
        outputs = [to_uint8(restorer.restore(image, task=task)) for image in images]
        scores = np.array([psnr(out, image) for out, image in zip(outputs, images)])
        shift = np.mean([out.astype(np.float64).mean() - image.astype(np.float64).mean()
                         for out, image in zip(outputs, images)])
        print(f"{task}: PSNR to the input {scores.mean():.2f} dB (worst {scores.min():.2f}),"
              f" mean grey-level change {shift:+.1f}")
    # What the sensor makes of them: its mean weight per task (no task is the right one here).
    mean = np.mean([[restorer.detect(image)[t] for t in TASKS] for image in images], axis=0)
    print("auto, mean weight per task: " + ", ".join(f"{t} {w:.2f}" for t, w in zip(TASKS, mean)))


if __name__ == "__main__":
    main()
