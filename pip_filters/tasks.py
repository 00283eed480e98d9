"""The five degradations PIP knows, and how a user names them.

A task spec is what a user passes as ``task=``: ``"auto"``, one task name (or an alias),
a mapping such as ``{"derain": 0.6, "dehaze": 0.4}``, or a sequence of five weights.
It resolves to five non-negative weights that sum to one, in the order of ``TASKS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

TASKS: tuple[str, ...] = ("denoise", "derain", "dehaze", "deblur", "lowlight")

_ALIASES = {
    "noise": "denoise", "denoising": "denoise",
    "rain": "derain", "deraining": "derain",
    "haze": "dehaze", "dehazing": "dehaze", "fog": "dehaze",
    "blur": "deblur", "deblurring": "deblur",
    "low-light": "lowlight", "low_light": "lowlight", "dark": "lowlight", "enhance": "lowlight",
}


def canonical_task(name: str) -> str:
    """Return the canonical task name for ``name`` or raise ``ValueError``."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in TASKS:
        raise ValueError(f"unknown task {name!r}: use 'auto' or one of {', '.join(TASKS)}")
    return key


def task_weights(spec) -> torch.Tensor | None:
    """Resolve a task spec to a float tensor of five weights summing to 1.

    Returns ``None`` for ``"auto"`` (the caller asks the degradation sensor instead).
    """
    if spec is None or (isinstance(spec, str) and spec.strip().lower() == "auto"):
        return None
    weights = torch.zeros(len(TASKS))
    if isinstance(spec, str):
        weights[TASKS.index(canonical_task(spec))] = 1.0
    elif isinstance(spec, Mapping):
        for name, value in spec.items():
            weights[TASKS.index(canonical_task(name))] += float(value)
    elif isinstance(spec, (Sequence, torch.Tensor)) or hasattr(spec, "__array__"):
        values = torch.as_tensor(spec, dtype=torch.float32).flatten()
        if values.numel() != len(TASKS):
            raise ValueError(f"a task weight vector needs {len(TASKS)} entries, got {values.numel()}")
        weights = values.clone()
    else:
        raise TypeError(f"task must be 'auto', a task name, a mapping or five weights, not {type(spec).__name__}")
    if not torch.isfinite(weights).all() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"task weights must be finite, non-negative and not all zero: {spec!r}")
    return weights / weights.sum()


def weights_to_dict(weights: torch.Tensor) -> dict[str, float]:
    """Five weights as a ``{task: weight}`` dict, the form shown to users."""
    return {name: float(w) for name, w in zip(TASKS, weights.tolist())}
