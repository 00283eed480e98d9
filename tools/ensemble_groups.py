"""Which self-ensemble group each task tolerates: PSNR of one pass and of the 2-, 4- and 8-copy
groups of pip_filters.ensemble, told the true task, on the validation crops of pip-train (the
held-out split of train/, never test/). pip_filters.ensemble.TASK_GROUP takes, per task, the
group that restored it best here (the smaller one on a tie within 0.01 dB).

    python tools/ensemble_groups.py                      # the default model's shipped weights
    python tools/ensemble_groups.py --model pip-nafnet-t2 --batches 4
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from pip_filters.ensemble import GROUPS, TASK_GROUP, self_ensemble
from pip_filters.tasks import TASKS
from pip_filters.training.train import crop_psnr, validation_batches

import held_out  # tools/held_out.py, beside this script


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    held_out.add_arguments(parser)
    parser.add_argument("--batches", type=int, default=2, help="batches of 40 validation crops (8 per task each)")
    args = parser.parse_args()
    restorer, _, data, root = held_out.setup(args)
    model = restorer.model.float()
    batches = validation_batches(data, root, torch.device("cpu"), count=args.batches)
    sizes = sorted(GROUPS)
    total = torch.zeros(len(sizes), len(TASKS), dtype=torch.float64)
    count = torch.zeros(len(TASKS), dtype=torch.float64)
    for degraded, clean, ids in batches:
        prompt = F.one_hot(ids, len(TASKS)).float()
        for row, size in enumerate(sizes):
            restored = self_ensemble(lambda x: model(x.contiguous(), prompt).clamp(0, 1), degraded, size)
            total[row].index_add_(0, ids, crop_psnr(restored, clean).double())
        count.index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
    psnr = total / count
    print(f"{restorer.name}: PSNR (dB) told the true task, {int(count.sum())} validation crops of train/")
    print("| task | " + " | ".join("one pass" if s == 1 else f"{s} copies" for s in sizes) + " | TASK_GROUP |")
    print("|---|" + "---:|" * (len(sizes) + 1))
    for t, task in enumerate(TASKS):
        cells = [f"{psnr[0, t]:.3f}"] + [f"{psnr[r, t]:.3f} ({psnr[r, t] - psnr[0, t]:+.2f})" for r in range(1, len(sizes))]
        print(f"| {task} | " + " | ".join(cells) + f" | {TASK_GROUP[task]} |")


if __name__ == "__main__":
    main()
