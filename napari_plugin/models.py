"""Which models and devices the plugin offers, and one loaded restorer per (model, device).

Loading takes a moment, so restorers are kept for the session; the lock lets two jobs that
start together share one load (jobs load from worker threads).
"""

from __future__ import annotations

import threading

import torch

import pip_filters
from pip_filters.registry import MODELS

_restorers: dict[tuple[str, str], pip_filters.Restorer] = {}
_lock = threading.Lock()


def trained_models() -> list[str]:
    """Models with shipped, pinned weights (untrained ones are refused, as in the CLI)."""
    names = [name for name, spec in MODELS.items() if spec.weights_path.exists() and spec.sha256]
    return sorted(names, key=lambda name: name != pip_filters.DEFAULT_MODEL)  # default first


def devices() -> list[str]:
    found = ["auto", "cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def get_restorer(model: str, device: str = "auto") -> pip_filters.Restorer:
    with _lock:
        key = (model, device)
        if key not in _restorers:
            _restorers[key] = pip_filters.load(model, device=device)
        return _restorers[key]
