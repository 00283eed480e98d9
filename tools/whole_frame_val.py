"""How a model does on whole held-out images of train/ (never test/): each of the first --images
held-out clean images degraded whole by the training synthesis for every task (fixed seed), and
the real low-light pairs held out of train/lol-train-50, restored with the true task. One line per
task: mean PSNR of the input and of the output (RGB, [0, 255], full image).

    python tools/whole_frame_val.py --model pip-nafnet-s2
    python tools/whole_frame_val.py --weights runs/X/pip-nafnet-s2.safetensors --model pip-nafnet-s2
    python tools/whole_frame_val.py --model pip-nafnet-s2 --trained-pairs   # also the pairs it trained on
    python tools/whole_frame_val.py --model pip-nafnet-s2 --ensemble        # restore(..., ensemble=True)
    python tools/whole_frame_val.py --model pip-nafnet-s2 --auto            # task="auto": the sensor's choice

pip-train validates on 128 px crops, the size it trains on. Whole photos are what users restore
and what the test sets are: a NAFNet block's channel attention averages over the whole image, and
haze and low light are global, so whole frames can rank two models differently.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pip_filters.tasks import TASKS
from pip_filters.training import degrade as D
from pip_filters.training.data import decode_rgb, list_images
from pip_filters.training.evaluate import psnr, to_uint8
from pip_filters.training.train import _splits

import held_out  # tools/held_out.py, beside this script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    held_out.add_arguments(parser)
    parser.add_argument("--images", type=int, default=12, help="held-out clean images (of 26)")
    parser.add_argument("--trained-pairs", action="store_true",
                        help="also restore the LOL train pairs the model trained on: far above the held-out "
                             "pairs means it memorised them (there are few)")
    parser.add_argument("--ensemble", action="store_true", help="restore with the self-ensemble (ensemble=True)")
    parser.add_argument("--auto", action="store_true", help='restore with task="auto" instead of the true task')
    args = parser.parse_args()
    restorer, _, data, root = held_out.setup(args)
    (_, trained_stems), (val_clean, stems), kernels = _splits(data, root)
    generator = torch.Generator().manual_seed(7)
    scores = {task: [] for task in TASKS}
    for path in val_clean[:args.images]:
        clean = decode_rgb(path)
        x = torch.from_numpy(clean).permute(2, 0, 1)[None].float() / 255
        for i, task in enumerate(TASKS):
            degraded = to_uint8(D.degrade(x, torch.tensor([i]), kernels, generator)[0].permute(1, 2, 0).numpy())
            told = "auto" if args.auto else task
            scores[task].append((psnr(degraded, clean), psnr(restorer.restore(degraded, task=told, ensemble=args.ensemble), clean)))
    pairs = root / data["lowlight_pairs"]
    inputs, targets = ({f.stem: f for f in list_images(pairs / side)} for side in ("input", "target"))
    real = [_real_pair(restorer, inputs[stem], targets[stem], args.ensemble, args.auto) for stem in stems or []]
    trained = [_real_pair(restorer, inputs[stem], targets[stem], args.ensemble, args.auto)
               for stem in trained_stems or []] if args.trained_pairs else []
    print(f"{args.images} whole held-out images of train/ per task, {'task auto' if args.auto else 'true task'}:"
          " input -> output dB")
    outputs = []
    for task, rows in scores.items():
        before, after = np.mean(rows, axis=0)
        outputs.append(after)
        print(f"  {task}: {before:.2f} -> {after:.2f}")
    # three places: runs are kept or dropped on gains of a few hundredths of a dB in this mean
    print(f"  mean of the five: {np.mean(outputs):.3f}")
    if real:
        each = ", ".join(f"{stem} {r[1]:.2f} [best gain {r[3]:.2f}]" for stem, r in zip(stems, real))
        _print_pairs("held-out LOL train pairs", real, f" ({each})")
    if trained:
        _print_pairs("LOL train pairs it trained on", trained)


def _print_pairs(label: str, rows: list, detail: str = "") -> None:
    before, after, fitted, _ = np.mean(rows, axis=0)
    print(f"  real low light ({len(rows)} {label}): {before:.2f} -> {after:.2f}{detail}; "
          f"at the best global gain {fitted:.2f}")


def _real_pair(restorer, dark_path, target_path, ensemble=False, auto=False) -> tuple[float, float, float, float]:
    """PSNR of a real low-light pair's input and of its restoration (task lowlight, or auto) to the target,
    of the restoration at the one global gain that fits the target best, and that gain: the gap
    between the two restorations' PSNR is what a wrong guess of the target's overall brightness
    costs (LOL's targets were shot at exposures no input shows)."""
    dark, target = decode_rgb(dark_path), decode_rgb(target_path)
    out = restorer.restore(dark, task="auto" if auto else "lowlight", ensemble=ensemble)
    o, t = out.astype(np.float64), target.astype(np.float64)
    gain = (o * t).sum() / max((o * o).sum(), 1e-12)
    return psnr(dark, target), psnr(out, target), psnr(to_uint8(o / 255 * gain), target), gain


if __name__ == "__main__":
    main()
