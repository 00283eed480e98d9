"""Sample data (File > Open Sample > pip-filters): degraded images to try the plugin offline.

Rainy, hazy, dark, noisy and blurry are the procedural samples shipped in pip_filters/samples/;
the noisy microscopy time-lapse is synthesised from the clean one (photon-limited: Poisson noise
plus camera read noise on a 16-bit camera), so nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image as PILImage

import pip_filters

SAMPLES = Path(pip_filters.__file__).parent / "samples"


def _shipped(name: str) -> np.ndarray:
    with PILImage.open(SAMPLES / f"{name}.png") as image:
        return np.asarray(image.convert("RGB"))


def noisy_microscopy(frames: int = 5, photons: float = 30.0, seed: int = 0):
    """A 16-bit gray time-lapse (T, Y, X) with a slow drift, at about ``photons`` per bright pixel."""
    rng = np.random.default_rng(seed)
    gray = _shipped("clean").astype(np.float32).mean(-1) / 255.0
    signal = gray ** 2  # dark background, bright structures, like fluorescence
    stack = []
    for t in range(frames):
        expected = np.roll(signal, shift=(t, 2 * t), axis=(0, 1)) * photons
        counts = rng.poisson(expected) + rng.normal(0.0, 1.5, expected.shape)  # shot + read noise
        stack.append(np.clip(100.0 + 20.0 * counts, 0, 65535))  # camera offset 100, gain 20
    data = np.stack(stack).astype(np.uint16)
    return [(data, {"name": "noisy microscopy", "scale": (1.0, 0.1, 0.1), "units": ("s", "um", "um"),
                    "axis_labels": ("t", "y", "x"), "colormap": "gray"})]


def _sample(name: str):
    return [(_shipped(name), {"name": name, "rgb": True})]


def rainy():
    return _sample("rainy")


def hazy():
    return _sample("hazy")


def dark():
    return _sample("dark")


def noisy():
    return _sample("noisy")


def blurry():
    return _sample("blurry")
