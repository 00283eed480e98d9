"""How the degradation sensor reads light and heavy Gaussian noise, on the held-out validation
images of train/ (never test/): per noise level, how often it says "denoise" and its mean task
weights, then what task="auto" costs against the true task in PSNR.

    python tools/sensor_by_noise.py                       # the default model's shipped weights
    python tools/sensor_by_noise.py --weights runs/X/pip-nafnet-s.safetensors --psnr-sigmas 10,15

Light noise is where the sensor errs (it leaks weight to "derain"); this measures it without
touching the test sets.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pip_filters.tasks import TASKS
from pip_filters.training.degrade import gaussian_noise
from pip_filters.training.evaluate import psnr, to_uint8

import held_out  # tools/held_out.py, beside this script


def noisy_copy(image: np.ndarray, sigma: int, generator: torch.Generator) -> np.ndarray:
    """Float H x W x 3 in [0, 1]: the uint8 image with Gaussian noise of sigma (of 255), clipped."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    return gaussian_noise(x, generator=generator, sigma=sigma / 255)[0].permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    held_out.add_arguments(parser)
    parser.add_argument("--sigmas", default="5,10,15,20,25,35,50", help="noise levels (of 255) for the sensor")
    parser.add_argument("--psnr-sigmas", default="10,15", help="noise levels to restore at (slow); empty: none")
    args = parser.parse_args()
    restorer, images = held_out.load(args)
    for sigma in (int(s) for s in args.sigmas.split(",")):
        generator = torch.Generator().manual_seed(sigma)
        readings = [restorer.detect(noisy_copy(image, sigma, generator)) for image in images]
        denoise = np.mean([max(r, key=r.get) == "denoise" for r in readings])
        print(f"sigma {sigma}: read as denoise {denoise:.3f}; mean weights "
              + ", ".join(f"{t} {np.mean([r[t] for r in readings]):.3f}" for t in TASKS))
    # Restored as pip-eval restores and scored as it scores (8-bit output, RGB PSNR).
    for sigma in (int(s) for s in args.psnr_sigmas.split(",") if s):
        generator = torch.Generator().manual_seed(1000 + sigma)
        scores = []
        for image in images:
            noisy = noisy_copy(image, sigma, generator)
            scores.append([psnr(to_uint8(restorer.restore(noisy, task=task, value_range=(0, 1))), image)
                           for task in ("auto", "denoise")])
        scores = np.array(scores)
        loss = scores[:, 1] - scores[:, 0]
        print(f"sigma {sigma}: PSNR auto {scores[:, 0].mean():.2f}, true task {scores[:, 1].mean():.2f}; auto trails by"
              f" {loss.mean():.2f} dB on average, {loss.max():.2f} dB on the worst image")


if __name__ == "__main__":
    main()
