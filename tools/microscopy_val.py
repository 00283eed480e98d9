"""How a model does on fluorescence-like crops of the held-out validation images of train/
(never test/) at fixed microscope noise levels: PSNR of the input and of the output restored
with the denoise prompt, one line per level.

    python tools/microscopy_val.py --model pip-nafnet-s2
    python tools/microscopy_val.py --weights runs/X/pip-nafnet-s2.safetensors --model pip-nafnet-s2

pip-train's ``psnr_microscopy`` draws the noise over the whole training range; this fixes it, at
FMD confocal's measured level (about 65 photons at white, read noise 0.012) and a lighter one, to
see whether a model's gain or loss on the real FMD frames shows on synthetic ones too.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from pip_filters.tasks import TASKS
from pip_filters.training.data import ImageBank, fluorescence_like
from pip_filters.training.train import _splits, crop_psnr

import held_out  # tools/held_out.py, beside this script

LEVELS = ((65.0, 0.012), (300.0, 0.005))  # (photons at white, read-noise sigma)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    held_out.add_arguments(parser)
    parser.add_argument("--crops", type=int, default=32, help="held-out crops")
    parser.add_argument("--size", type=int, default=256, help="crop size in pixels")
    args = parser.parse_args()
    restorer, _, data, root = held_out.setup(args)
    _, (val_clean, _), _ = _splits(data, root)
    generator = torch.Generator().manual_seed(3)
    clean = fluorescence_like(ImageBank(val_clean, "cpu").sample(args.crops, args.size, generator), generator)
    denoise = F.one_hot(torch.tensor(TASKS.index("denoise")), len(TASKS)).float()
    print(f"{args.crops} held-out fluorescence-like crops of {args.size} px, denoise prompt")
    for peak, read in LEVELS:
        noisy = torch.poisson(clean * peak, generator=generator) / peak
        noisy = (noisy + read * torch.randn(clean.shape, generator=generator)).clamp(0, 1)
        restored = torch.cat([restorer.model(part, denoise.expand(len(part), -1)) for part in noisy.split(8)])
        print(f"  {peak:g} photons, read {read}: input {crop_psnr(noisy, clean).mean():.2f} dB, "
              f"output {crop_psnr(restored, clean).mean():.2f} dB")


if __name__ == "__main__":
    main()
