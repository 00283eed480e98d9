"""How far each Levin test kernel's centre of mass sits from its centre pixel, and what that shift
alone costs under the Kodak24 + Levin protocol (test data: a measurement, never used to train).

    python tools/kernel_offsets.py [--images 4]

For each kernel, as stored: the offset (rows, columns; positive = down, right), the blurred
input's PSNR against the sharp image (no noise), and the PSNR of the sharp image itself moved by
the offset, which is what an exact restoration in the blurred input's frame would score. Then the
input's PSNR with the kernel centred (degrade.load_kernels, the protocol since 2026-12-04).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pip_filters.training.degrade import kernel_offsets, load_kernels
from pip_filters.training.evaluate import KERNELS_FILE, _image_files, _read, convolve, psnr

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def moved(img: np.ndarray, down: float, right: float) -> np.ndarray:
    """``img`` moved by a subpixel offset (bilinear; edge pixels repeat)."""
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    h, w = img.shape[:2]
    rows = (torch.arange(h, dtype=torch.float32) - down) / (h - 1) * 2 - 1
    cols = (torch.arange(w, dtype=torch.float32) - right) / (w - 1) * 2 - 1
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij")[::-1], -1)[None]
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)[0].permute(1, 2, 0).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--images", type=int, default=4, help="first N Kodak24 images")
    args = parser.parse_args()
    stored = load_kernels(args.data / KERNELS_FILE, centre=False)
    centred = load_kernels(args.data / KERNELS_FILE)
    images = [_read(p).astype(np.float32) / 255 for p in _image_files(args.data / "test" / "kodak24")[:args.images]]
    print(f"first {len(images)} Kodak24 images, no noise")
    print("| kernel | offset (rows, cols) px | input, as stored | sharp image moved by the offset | input, centred |")
    print("|---|---|---:|---:|---:|")
    for i, (down, right) in enumerate(kernel_offsets(stored).tolist()):
        raw = np.mean([psnr(convolve(x, stored[i, 0]), x, 1.0) for x in images])
        shift = np.mean([psnr(moved(x, down, right), x, 1.0) for x in images])
        fixed = np.mean([psnr(convolve(x, centred[i, 0]), x, 1.0) for x in images])
        print(f"| k{i + 1} | {down:+.2f}, {right:+.2f} | {raw:.2f} | {shift:.2f} | {fixed:.2f} |")


if __name__ == "__main__":
    main()
