"""Geometric self-ensemble: restore flipped and transposed copies of an image, undo each
transform on its output, and average.

The network's errors differ between copies while the content agrees, so the mean is closer to
the truth (the "x8" of Lim et al., EDSR, 2017). Not every degradation survives every transform,
because the training data has an orientation: synthetic rain falls near the vertical, so a
transposed rainy image has streaks the network never saw; haze thickens toward the sky at the
top, so an upside-down hazy image is implausible. On held-out validation crops of train/ (never
test/), with the default model, the full group of 8 cost rain 2.1 dB and haze 0.7 dB, and low
light gained less with it than without the transposed copies, so each task gets the one of three
nested groups that restored it best there (see TASK_GROUP), and a mixture of tasks the smallest
group among its tasks.
"""

from __future__ import annotations

from typing import Callable

import torch

from .tasks import TASKS

# A transform: (transpose height and width first?, dims to flip afterwards).
Transform = tuple[bool, tuple[int, ...]]

GROUPS: dict[int, tuple[Transform, ...]] = {
    1: ((False, ()),),
    2: ((False, ()), (False, (-1,))),                                   # mirror left-right
    4: ((False, ()), (False, (-1,)), (False, (-2,)), (False, (-2, -1))),  # and upside down
    8: tuple((t, f) for t in (False, True) for f in ((), (-1,), (-2,), (-2, -1))),  # and transposed
}

# The group that restored each task best on held-out validation crops, the smaller one on a tie
# within 0.01 dB (`python tools/ensemble_groups.py`: pip-nafnet-s, 80 crops; gain over one pass):
# denoise 8 copies +0.33 dB, derain 4 +0.25 (8: -2.13), dehaze 2 +0.14 (4: -0.78), deblur 4
# +0.03 (8: +0.03), low light 4 +0.32 (8: +0.14).
TASK_GROUP = {"denoise": 8, "derain": 4, "dehaze": 2, "deblur": 4, "lowlight": 4}

# A task weighing less than this in a mixture (or in the sensor's reading) does not narrow the group.
MIN_WEIGHT = 0.1


def group_size(weights: torch.Tensor) -> int:
    """The ensemble size for task weights of shape (5,) or (N, 5): the smallest group among the
    tasks that any image weighs at MIN_WEIGHT or more (groups are nested, so that one suits all)."""
    used = (weights.detach().float().reshape(-1, len(TASKS)) >= MIN_WEIGHT).any(0)
    sizes = [TASK_GROUP[task] for task, on in zip(TASKS, used.tolist()) if on]
    return min(sizes, default=max(GROUPS))


def _forward(x: torch.Tensor, transform: Transform) -> torch.Tensor:
    transpose, flips = transform
    x = x.transpose(-2, -1) if transpose else x
    return x.flip(flips) if flips else x


def _inverse(x: torch.Tensor, transform: Transform) -> torch.Tensor:
    transpose, flips = transform
    x = x.flip(flips) if flips else x
    return x.transpose(-2, -1) if transpose else x


def self_ensemble(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int) -> torch.Tensor:
    """Mean of ``network`` over the ``size`` transforms of GROUPS (1, 2, 4 or 8) of an (N, C, H, W) batch."""
    if size not in GROUPS:
        raise ValueError(f"ensemble size must be one of {sorted(GROUPS)}, got {size}")
    if size == 1:
        return network(x)
    total = None
    for transform in GROUPS[size]:
        out = _inverse(network(_forward(x, transform)), transform)
        total = out if total is None else total.add_(out)
    return total.div_(size)
