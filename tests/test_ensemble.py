"""The geometric self-ensemble: the functional part on toy networks, and what a user of
``restore(..., ensemble=True)`` gets with the shipped default."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pip_filters
from pip_filters.ensemble import GROUPS, group_size, self_ensemble
from pip_filters.tasks import task_weights

SAMPLES = Path(pip_filters.__file__).parent / "samples"


@pytest.mark.parametrize("size", sorted(GROUPS))
def test_every_transform_is_undone(size):
    x = torch.rand(2, 3, 12, 20)  # not square: transposed copies come back the right way round
    np.testing.assert_allclose(self_ensemble(lambda y: y.clone(), x, size), x, atol=1e-6)


def test_the_mean_cancels_what_the_transforms_reverse():
    x = torch.zeros(1, 1, 4, 6)
    ramp = torch.arange(6.0).view(1, 1, 1, 6)  # a network that adds a left-to-right ramp
    out = self_ensemble(lambda y: y + ramp, x, 2)
    np.testing.assert_allclose(out, torch.full_like(x, 2.5))  # mirrored ramps average to a constant
    with pytest.raises(ValueError, match="ensemble size"):
        self_ensemble(lambda y: y, x, 3)


def test_group_size_is_the_smallest_a_used_task_allows():
    assert group_size(task_weights("denoise")) == 8
    assert group_size(task_weights("derain")) == group_size(task_weights("deblur")) == 4
    assert group_size(task_weights("dehaze")) == 2
    assert group_size(task_weights({"denoise": 0.6, "derain": 0.4})) == 4
    assert group_size(task_weights({"denoise": 0.95, "dehaze": 0.05})) == 8  # a trace of haze does not count
    batch = torch.stack([task_weights("denoise"), task_weights("dehaze")])
    assert group_size(batch) == 2  # one setting for a batch: what every image allows


def test_ensemble_keeps_shape_dtype_range_and_strength(tiny):
    rng = np.random.default_rng(1)
    for image in (rng.integers(100, 60000, (33, 47), dtype=np.uint16),
                  rng.integers(0, 256, (2, 30, 26, 3), dtype=np.uint8),
                  rng.random((29, 40, 3), dtype=np.float32)):
        out = tiny.restore(image, task="denoise", ensemble=True)
        assert out.shape == image.shape and out.dtype == image.dtype
    image = rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tiny.restore(image, task="derain", strength=0.0, ensemble=True), image)
    tiled = tiny.restore(image, task="denoise", tile=32, overlap=8, ensemble=True)
    assert tiled.shape == image.shape and tiled.dtype == np.uint8


@pytest.fixture(scope="module")
def default():
    return pip_filters.load(device="cpu")


# Averaged over many images the ensemble gains on every task (the default on the 26 whole held-out
# images of tools/whole_frame_val.py --ensemble: noise +0.35 dB, rain +0.29, haze +0.36, blur +0.03,
# low light +0.32), but one image can lose a little: on the shipped dark sample the default loses 0.33 dB
# and on the hazy one gains 0.01. So: noise and rain must gain on their samples, the five samples
# together must gain, and none may lose much (a group a task does not tolerate costs 2 dB or more,
# e.g. rain with transposed copies).
SAMPLE_TASKS = [("noisy", "denoise"), ("rainy", "derain"), ("hazy", "dehaze"), ("blurry", "deblur"),
                ("dark", "lowlight")]


@pytest.fixture(scope="module")
def ensemble_gains(default):
    """dB gained by restore(..., ensemble=True) over one pass on each shipped sample, told its task."""
    # The shipped samples are the same clean scene degraded by the training synthesis.
    clean = np.asarray(Image.open(SAMPLES / "clean.png").convert("RGB")).astype(np.float64)

    def psnr(image):
        return 10 * np.log10(255.0 ** 2 / np.mean((image.astype(np.float64) - clean) ** 2))

    gains = {}
    for sample, task in SAMPLE_TASKS:
        degraded = np.asarray(Image.open(SAMPLES / f"{sample}.png").convert("RGB"))
        gains[sample] = psnr(default.restore(degraded, task=task, ensemble=True)) - psnr(default.restore(degraded, task=task))
    return gains


@pytest.mark.parametrize("sample,gain", [("noisy", 0.3), ("rainy", 0.1)])
def test_ensemble_restores_noise_and_rain_better_than_one_pass(ensemble_gains, sample, gain):
    assert ensemble_gains[sample] > gain, ensemble_gains


def test_ensemble_gains_over_the_samples_and_costs_none_much(ensemble_gains):
    assert np.mean(list(ensemble_gains.values())) > 0.1, ensemble_gains
    assert min(ensemble_gains.values()) > -0.5, ensemble_gains
