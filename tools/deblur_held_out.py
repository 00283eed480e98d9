"""What the deblur prompt gains per kind of blur kernel, on crops of the held-out validation images
of train/ (never test/): the USRNet training set's isotropic Gaussians (k1-k4), anisotropic
Gaussians (k5-k8) and motion kernels (k11, k12; k9 and k10 are Levin test kernels and left out),
and random camera shake (degrade.motion_kernels), each with the training noise (sigma up to 3/255).

    python tools/deblur_held_out.py                        # the default model's shipped weights
    python tools/deblur_held_out.py --weights runs/X/pip-nafnet-s.safetensors

A network that deblurs gains dB on the Gaussians first; one that gains little even there has not
learnt deblurring yet, whatever the Levin test set says. For scale, each line also gives the best
unsharp mask (x + a (x - gauss_s(x)), the best (s, a) of a small grid chosen on the same crops and
kernel kind): what plain sharpening, told the kind of blur, gets.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from pip_filters.tasks import TASKS
from pip_filters.training import degrade as D
from pip_filters.training.data import ImageBank
from pip_filters.training.train import _splits, crop_psnr

import held_out  # tools/held_out.py, beside this script

GROUPS = {"USRNet isotropic Gaussian k1-k4": ["k1", "k2", "k3", "k4"],
          "USRNet anisotropic Gaussian k5-k8": ["k5", "k6", "k7", "k8"],
          "USRNet motion k11-k12": ["k11", "k12"]}


UNSHARP_SIGMAS = (0.7, 1.0, 1.5, 2.0, 3.0)
UNSHARP_AMOUNTS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding."""
    r = int(3 * sigma) + 1
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = (k / k.sum()).repeat(x.shape[1], 1, 1, 1)
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(x.shape[1], 1, 1, -1), groups=x.shape[1])
    return F.conv2d(x, k.view(x.shape[1], 1, -1, 1), groups=x.shape[1])


def best_unsharp(blurred: torch.Tensor, clean: torch.Tensor) -> tuple[float, float, float]:
    """The mean PSNR of the best unsharp mask of the grid, and its sigma and amount."""
    best = (crop_psnr(blurred, clean).mean().item(), 0.0, 0.0)
    for sigma in UNSHARP_SIGMAS:
        smooth = gaussian_blur(blurred, sigma)
        for amount in UNSHARP_AMOUNTS:
            psnr = crop_psnr((blurred + amount * (blurred - smooth)).clamp(0, 1), clean).mean().item()
            best = max(best, (psnr, sigma, amount))
    return best


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    held_out.add_arguments(parser)
    parser.add_argument("--crops", type=int, default=48, help="held-out crops per kind of kernel")
    parser.add_argument("--crop", type=int, default=192)
    args = parser.parse_args()
    restorer, _, data, root = held_out.setup(args)
    model = restorer.model
    _, (val_clean, _), _ = _splits(data, root)
    generator = torch.Generator().manual_seed(4321)
    clean = ImageBank(val_clean, torch.device("cpu")).sample(args.crops, args.crop, generator)
    deblur = torch.zeros(1, len(TASKS))
    deblur[0, TASKS.index("deblur")] = 1
    path = root / data["kernels"]
    with np.load(path, allow_pickle=False) as z:
        names = z.files
    kinds = [(label, D.load_kernels(path, skip=[n for n in names if n not in keys]), 0.0) for label, keys in GROUPS.items()]
    kinds.append(("random camera shake", None, 1.0))
    for label, kernels, motion_prob in kinds:
        blurred = D.blur(clean, kernels, generator=generator, motion_prob=motion_prob)
        restored = torch.cat([model(chunk, deblur.expand(len(chunk), -1)) for chunk in blurred.split(8)]).clamp(0, 1)
        before, after = crop_psnr(blurred, clean).mean(), crop_psnr(restored, clean).mean()
        sharpened, sigma, amount = best_unsharp(blurred, clean)
        print(f"{label}: input {before:.2f} dB, told deblur {after:.2f} dB ({after - before:+.2f}); "
              f"best unsharp mask {sharpened:.2f} dB ({sharpened - before:+.2f}, s {sigma:g}, a {amount:g})")


if __name__ == "__main__":
    main()
