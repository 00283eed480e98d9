"""What task="auto" reads from typical inputs, with the shipped weights (no ../shared needed)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pip_filters
from pip_filters.registry import MODELS

SAMPLES_DIR = Path(pip_filters.__file__).parent / "samples"
SAMPLES = {"rainy": "derain", "hazy": "dehaze", "dark": "lowlight", "noisy": "denoise", "blurry": "deblur"}
SHIPPED = [name for name, spec in MODELS.items() if spec.sha256]


def fluorescence_frame(seed: int, size: int = 256) -> np.ndarray:
    """A dark 8-bit gray frame like confocal fluorescence: a few bright nuclei on black, shot
    noise at ~60 photons at white plus read noise (FMD-like: mean ~0.05, most pixels near 0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    signal = np.zeros((size, size))
    for _ in range(6):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(10, 25)
        signal += np.exp(-((((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) ** 2)) * rng.uniform(0.3, 0.6)
    noisy = rng.poisson(signal * 60) / 60 + rng.normal(0, 0.01, signal.shape)
    return (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)


def top(weights: dict) -> str:
    return max(weights, key=weights.get)


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request):
    return pip_filters.load(request.param, device="cpu")


def test_shipped_samples_read_as_their_degradation(shipped):
    for sample, task in SAMPLES.items():
        image = np.asarray(Image.open(SAMPLES_DIR / f"{sample}.png").convert("RGB"))
        assert top(shipped.detect(image)) == task, f"{shipped.name} reads {sample}.png wrongly"


def test_dark_gray_fluorescence_reads_as_noise_not_low_light(shipped):
    for seed in range(3):
        frame = fluorescence_frame(seed)
        assert frame.mean() < 0.1 * 255 and (frame < 5).mean() > 0.5  # as dark as a confocal frame
        assert top(shipped.detect(frame)) == "denoise", f"{shipped.name} reads fluorescence (seed {seed}) wrongly"


def test_tiny_images_get_finite_task_weights(shipped):
    weights = shipped.detect(np.full((4, 5, 3), 128, np.uint8))
    assert all(np.isfinite(v) for v in weights.values()) and abs(sum(weights.values()) - 1) < 1e-5


def test_noise_estimate_measures_sigma_on_texture():
    import torch

    from pip_filters.models.sensor import noise_level

    generator = torch.Generator().manual_seed(0)
    # A textured clean crop: stripes and smooth blobs, which a plain high-pass would call noise.
    yy, xx = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    texture = 0.5 + 0.2 * torch.sin(xx / 2.5) * (yy < 64) + 0.1 * torch.cos((xx + yy) / 15)
    clean = texture.expand(2, 3, 128, 128)
    gray_sigma = 15 / 3 ** 0.5  # independent noise per channel, averaged over three channels
    noisy = clean + 15 / 255 * torch.randn(clean.shape, generator=generator)
    assert (noise_level(clean) * 255 < 0.5).all()
    assert (noise_level(noisy) * 255 / gray_sigma).sub(0.84).abs().max() < 0.1
    stronger = clean + 30 / 255 * torch.randn(clean.shape, generator=generator)
    assert (noise_level(stronger) / noise_level(noisy)).sub(2).abs().max() < 0.3
