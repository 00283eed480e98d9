"""How a model does on fluorescence-like crops of the held-out validation images of train/
(never test/) at fixed microscope noise levels: PSNR of the input and of the output restored
with the denoise prompt, one line per level.

    python tools/microscopy_val.py --model pip-nafnet-s2
    python tools/microscopy_val.py --weights runs/X/pip-nafnet-s2.safetensors --model pip-nafnet-s2
    python tools/microscopy_val.py --model pip-nafnet-s2 --auto   # task="auto" (napari's default) instead

pip-train's ``psnr_microscopy`` draws the noise over the whole training range; this fixes it
(``degrade.microscope_noise``) at the level fitted to FMD confocal's raw frames
(``degrade.FMD_CONFOCAL_LEVEL``: 80 photons at white, pulse-height shape 3.5, dark offset 3.4/255,
read noise 0.001, lag-1 correlation ~0.05 along rows, 8-bit) and at a lighter one (300 photons), to
see whether a model's gain or loss on the real FMD frames shows on synthetic ones too.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from pip_filters.tasks import TASKS
from pip_filters.training.data import ImageBank, fluorescence_like
from pip_filters.training.degrade import FMD_CONFOCAL_LEVEL, microscope_noise
from pip_filters.training.train import _splits, crop_psnr

import held_out  # tools/held_out.py, beside this script

LEVELS = (80.0, 300.0)  # photons at white


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    held_out.add_arguments(parser)
    parser.add_argument("--crops", type=int, default=32, help="held-out crops")
    parser.add_argument("--size", type=int, default=256, help="crop size in pixels")
    parser.add_argument("--auto", action="store_true", help='the sensor\'s weights (task="auto") instead of denoise')
    args = parser.parse_args()
    restorer, _, data, root = held_out.setup(args)
    _, (val_clean, _), _ = _splits(data, root)
    generator = torch.Generator().manual_seed(3)
    clean = fluorescence_like(ImageBank(val_clean, "cpu").sample(args.crops, args.size, generator), generator)
    denoise = F.one_hot(torch.tensor(TASKS.index("denoise")), len(TASKS)).float()
    prompt = restorer.model.detect if args.auto else (lambda part: denoise.expand(len(part), -1))
    print(f"{args.crops} held-out fluorescence-like crops of {args.size} px, {'task auto' if args.auto else 'denoise prompt'}")
    for peak in LEVELS:
        level = dict(FMD_CONFOCAL_LEVEL, peak_range=(peak, peak))
        noisy, target = microscope_noise(clean, generator, **level)
        restored = torch.cat([restorer.model(part, prompt(part)) for part in noisy.split(8)])
        print(f"  {peak:g} photons at white: input {crop_psnr(noisy, target).mean():.2f} dB, "
              f"output {crop_psnr(restored, target).mean():.2f} dB")


if __name__ == "__main__":
    main()
