"""How the degradation sensor reads light and heavy Gaussian noise, on the held-out validation
images of train/ (never test/): per noise level, how often it says "denoise" and its mean task
weights, then what task="auto" costs against the true task in PSNR.

    python tools/sensor_by_noise.py                       # pip-nafnet-s, the shipped weights
    python tools/sensor_by_noise.py --weights runs/X/pip-nafnet-s.safetensors --psnr-sigmas 10,15

Light noise is where the sensor errs (it leaks weight to "derain"); this measures it without
touching the test sets.
"""

from __future__ import annotations

import argparse
import tomllib
import warnings
from pathlib import Path

import numpy as np
import torch

import pip_filters
from pip_filters.image_io import read_image
from pip_filters.tasks import TASKS
from pip_filters.tiling import run_padded
from pip_filters.training.degrade import gaussian_noise
from pip_filters.training.train import _splits


def psnr(restored: torch.Tensor, clean: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (restored.clamp(0, 1) - clean).pow(2).mean()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="pip-nafnet-s")
    parser.add_argument("--weights", type=Path, help="default: the package's weights for --model")
    parser.add_argument("--config", type=Path, default=None, help="default: training/configs/MODEL.toml")
    parser.add_argument("--sigmas", default="5,10,15,20,25,35,50", help="noise levels (of 255) for the sensor")
    parser.add_argument("--psnr-sigmas", default="10,15", help="noise levels to restore at (slow); empty: none")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = args.config or Path(__file__).resolve().parent.parent / "training" / "configs" / f"{args.model}.toml"
    data = tomllib.loads(config.read_text())["data"]
    _, (val_clean, _), _ = _splits(data, (config.parent / data["root"]).resolve())
    restorer = pip_filters.load(weights=args.weights, device="cpu") if args.weights else \
        pip_filters.load(args.model, device="cpu")
    model = restorer.model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy views of read-only image arrays
        images = [torch.from_numpy(np.asarray(read_image(f).array)).permute(2, 0, 1).float()[None] / 255
                  for f in val_clean]
    print(f"{len(images)} held-out images ({config.name}'s validation split of train/)")
    truth = torch.eye(len(TASKS))[:1]  # "denoise"
    with torch.no_grad():
        for sigma in (int(s) for s in args.sigmas.split(",")):
            generator = torch.Generator().manual_seed(sigma)
            weights = torch.cat([model.sensor.task_weights(gaussian_noise(x, generator=generator, sigma=sigma / 255))
                                 for x in images])
            print(f"sigma {sigma}: read as denoise {(weights.argmax(1) == 0).float().mean():.3f}; mean weights "
                  + ", ".join(f"{t} {w:.3f}" for t, w in zip(TASKS, weights.mean(0))))
        for sigma in (int(s) for s in args.psnr_sigmas.split(",") if s):
            generator = torch.Generator().manual_seed(1000 + sigma)
            gaps = []
            for x in images:
                noisy = gaussian_noise(x, generator=generator, sigma=sigma / 255)
                auto = model.sensor.task_weights(noisy)
                scores = [psnr(run_padded(lambda t, w=w: model(t, w), noisy, model.multiple), x) for w in (auto, truth)]
                gaps.append(scores)
            gaps = torch.tensor(gaps)
            loss = gaps[:, 1] - gaps[:, 0]
            print(f"sigma {sigma}: PSNR auto {gaps[:, 0].mean():.2f}, true task {gaps[:, 1].mean():.2f}; auto trails by"
                  f" {loss.mean():.2f} dB on average, {loss.max():.2f} dB on the worst image")


if __name__ == "__main__":
    main()
