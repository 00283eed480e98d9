"""How a model does on heavy rain with mist (``degrade.rain(heavy_share=1)``) on the held-out
validation images of train/ (never test/): PSNR of the input and of the output restored with
each prompt and with the sensor's weights, and what the sensor reads.

    python tools/heavy_rain_val.py                        # the default model's shipped weights
    python tools/heavy_rain_val.py --weights runs/X/pip-nafnet-s.safetensors

pip-train's validation keeps the light Rain100L-style rain so that runs stay comparable; this is
the separate check for the heavy rain a run may train on (``data.heavy_rain_share``).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from pip_filters.tasks import TASKS
from pip_filters.training.train import _batcher, _splits, crop_psnr, task_psnr

import held_out  # tools/held_out.py, beside this script

RAIN = TASKS.index("derain")


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    held_out.add_arguments(parser)
    parser.add_argument("--crops", type=int, default=80, help="held-out crops (batches of 40)")
    args = parser.parse_args()
    restorer, _, data, root = held_out.setup(args)
    model = restorer.model
    _, (val_clean, val_stems), kernels = _splits(data, root)
    only_rain = [1.0 if t == "derain" else 0.0 for t in TASKS]
    val = _batcher(data, root, val_clean, val_stems, kernels, torch.device("cpu"), crop=data["crop"],
                   seed=12345, task_probs=only_rain, heavy_rain_share=1.0)
    batches = [val.next(40) for _ in range(max(1, args.crops // 40))]
    inputs = torch.cat([crop_psnr(d, c) for d, c, _ in batches])
    print(f"{len(inputs)} held-out crops with heavy rain; input PSNR {inputs.mean():.2f} dB")
    for t, task in enumerate(TASKS):
        psnr = task_psnr(model, batches, lambda d, ids: F.one_hot(torch.full_like(ids, t), len(TASKS)).float())
        print(f"  told {task}: {psnr[RAIN]:.2f} dB")
    print(f"  auto (sensor): {task_psnr(model, batches, lambda d, ids: model.sensor.task_weights(d))[RAIN]:.2f} dB")
    reads = torch.cat([model.sensor(d).argmax(-1) for d, _, _ in batches])
    print("sensor reads: " + ", ".join(f"{task} {int((reads == t).sum())}" for t, task in enumerate(TASKS)))


if __name__ == "__main__":
    main()
