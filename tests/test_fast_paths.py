"""The fast paths must restore what the eager float32 reference restores."""

import numpy as np
import pytest
import torch

import pip_filters


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return (rng.random((56, 72, 3)) * 255).astype(np.uint8)


def test_compiled_network_matches_eager(image):
    eager = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32")
    compiled = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32", compile=True)
    assert compiled.network is not compiled.model
    for task in ("derain", {"denoise": 0.5, "lowlight": 0.5}):
        a = eager.restore(image.astype(np.float32) / 255, task=task)
        b = compiled.restore(image.astype(np.float32) / 255, task=task)
        assert b.shape == a.shape and b.dtype == a.dtype
        np.testing.assert_allclose(b, a, atol=1e-4)


def test_bfloat16_on_cpu_stays_close_to_float32(image):
    reference = pip_filters.load("pip-nafnet-t", device="cpu", precision="fp32").restore(image, task="denoise")
    half = pip_filters.load("pip-nafnet-t", device="cpu", precision="bf16").restore(image, task="denoise")
    assert half.dtype == np.uint8 and half.shape == image.shape
    difference = np.abs(half.astype(int) - reference.astype(int))
    assert difference.mean() < 1.0 and difference.max() <= 12


def test_compiled_bfloat16_on_cpu_is_refused():
    with pytest.raises(ValueError, match="fp32"):
        pip_filters.load("pip-nafnet-t", device="cpu", precision="bf16", compile=True)


def test_bench_row_reports_a_checked_speed():
    from pip_filters.bench import format_table, run_row

    threads = torch.get_num_threads()  # run_row sets its own; give the other tests theirs back
    row = run_row({"model": "pip-nafnet-t", "mode": "eager", "precision": "fp32", "batch": 2, "device": "cpu",
                   "width": 64, "height": 48, "threads": 1, "repeats": 2, "warmup": 1})
    torch.set_num_threads(threads)
    assert row["images_per_s"] > 0 and row["finite"] and row["relative_error"] < 1e-5
    assert 0.5 < row["params_m"] < 0.7 and row["gflops_per_mp"] > 1
    table = format_table([row])
    assert "pip-nafnet-t" in table and "WRONG" not in table
