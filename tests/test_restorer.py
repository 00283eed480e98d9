"""What a user of ``pip_filters.load(...).restore`` sees: types, shapes, dtypes, ranges, tasks."""

import warnings

import numpy as np
import pytest
import torch

import pip_filters
from pip_filters.tasks import TASKS

warnings.filterwarnings("ignore", message=".*untrained.*")

rng = np.random.default_rng(0)

CASES = [
    ("gray uint8", rng.integers(0, 256, (37, 45), dtype=np.uint8), "auto"),
    ("rgb uint8", rng.integers(0, 256, (33, 40, 3), dtype=np.uint8), "auto"),
    ("rgba uint8", rng.integers(0, 256, (24, 30, 4), dtype=np.uint8), "auto"),
    ("one channel", rng.integers(0, 256, (24, 30, 1), dtype=np.uint8), "auto"),
    ("gray uint16", rng.integers(100, 60000, (40, 36), dtype=np.uint16), "auto"),
    ("rgb uint16", rng.integers(0, 65536, (20, 26, 3), dtype=np.uint16), "auto"),
    ("float32 unit", rng.random((30, 30, 3), dtype=np.float32), "auto"),
    ("float64 wide range", rng.normal(500, 80, (28, 31)), "auto"),
    ("batch rgb float32", rng.random((2, 24, 24, 3), dtype=np.float32), "auto"),
    ("gray batch", rng.integers(0, 256, (3, 20, 21), dtype=np.uint8), None),
    ("channels first", rng.random((3, 25, 27), dtype=np.float32), 0),
    ("five channels", rng.random((16, 18, 5), dtype=np.float32), -1),
]


@pytest.mark.parametrize("name,image,channel_axis", CASES, ids=[c[0] for c in CASES])
def test_numpy_round_trip_keeps_shape_and_dtype(tiny, name, image, channel_axis):
    out = tiny.restore(image, task="denoise", channel_axis=channel_axis)
    assert isinstance(out, np.ndarray)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert np.isfinite(out).all()


def test_range_is_kept_for_integers_and_floats(tiny):
    u16 = rng.integers(1000, 3000, (32, 32), dtype=np.uint16)
    out = tiny.restore(u16, task="denoise")
    # robust-percentile normalisation maps back to the input's range, not to 0..65535
    assert 500 < np.median(out) < 3500
    wide = rng.normal(-200, 10, (32, 32)).astype(np.float32)
    out = tiny.restore(wide, task="denoise")
    assert -300 < out.mean() < -100
    unit = rng.random((32, 32, 3), dtype=np.float32)
    out = tiny.restore(unit, task="denoise")
    assert out.min() >= 0 and out.max() <= 1


def test_alpha_passes_through(tiny):
    rgba = rng.integers(0, 256, (24, 24, 4), dtype=np.uint8)
    out = tiny.restore(rgba, task="derain")
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])


def test_torch_tensor_round_trip(tiny):
    image = torch.rand(2, 3, 20, 22)
    out = tiny.restore(image, channel_axis=1, task="dehaze")
    assert isinstance(out, torch.Tensor) and out.shape == image.shape and out.dtype == image.dtype
    half = torch.rand(20, 22, 3).half()
    out = tiny.restore(half, task="dehaze")
    assert out.dtype == torch.float16 and out.shape == half.shape


def test_nan_stays_nan_and_the_rest_is_restored(tiny):
    image = rng.random((32, 32), dtype=np.float32)
    image[5, 7] = np.nan
    out = tiny.restore(image, task="denoise")
    assert np.isnan(out[5, 7]) and np.isfinite(np.delete(out.ravel(), 5 * 32 + 7)).all()


def test_odd_sizes_and_tiny_images(tiny):
    for shape in [(1, 1), (3, 5), (7, 129), (65, 9, 3)]:
        image = rng.random(shape, dtype=np.float32)
        assert tiny.restore(image, task="deblur").shape == shape


def test_bad_input_gives_clear_errors(tiny):
    with pytest.raises(ValueError, match="task"):
        tiny.restore(np.zeros((8, 8), np.uint8), task="sharpen")
    with pytest.raises(TypeError):
        tiny.restore(np.zeros((8, 8), bool))
    with pytest.raises(ValueError, match="shape"):
        tiny.restore(np.zeros((2, 2, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="strength"):
        tiny.restore(np.zeros((8, 8), np.uint8), strength=2)
    with pytest.raises(ValueError, match="empty"):
        tiny.restore(np.zeros((0, 8, 3), np.uint8))


def test_tiled_matches_untiled(tiny):
    image = rng.random((200, 176, 3), dtype=np.float32)
    whole = tiny.restore(image, task="denoise")
    tiled = tiny.restore(image, task="denoise", tile=96, overlap=24)
    assert tiled.shape == whole.shape
    # Stated tolerance (README): mean absolute difference below 1% of the range. Tiles see less
    # context than the whole image (global channel statistics), so they cannot match exactly.
    assert np.abs(tiled - whole).mean() < 0.01


def test_task_override_and_mixtures_change_the_output(tiny):
    image = rng.random((48, 48, 3), dtype=np.float32)
    outs = {task: tiny.restore(image, task=task) for task in TASKS}
    for a in TASKS:
        for b in TASKS:
            if a < b:
                assert np.abs(outs[a] - outs[b]).mean() > 1e-4, (a, b)
    mix = tiny.restore(image, task={"derain": 0.5, "dehaze": 0.5})
    assert np.abs(mix - outs["derain"]).mean() > 1e-5 and np.abs(mix - outs["dehaze"]).mean() > 1e-5
    same = tiny.restore(image, task={"rain": 1})
    np.testing.assert_allclose(same, outs["derain"], atol=1e-6)


def test_strength_blends_toward_the_input(tiny):
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tiny.restore(image, strength=0.0, task="denoise"), image)
    full = tiny.restore(image, task="denoise").astype(float)
    half = tiny.restore(image, task="denoise", strength=0.5).astype(float)
    np.testing.assert_allclose(half, (full + image) / 2, atol=1.01)


def test_detect_returns_five_weights_summing_to_one(tiny):
    weights = tiny.detect(rng.random((64, 80, 3), dtype=np.float32))
    assert list(weights) == list(TASKS)
    assert abs(sum(weights.values()) - 1) < 1e-5 and all(w >= 0 for w in weights.values())
    batch = tiny.detect(rng.random((2, 40, 40, 3), dtype=np.float32))
    assert len(batch) == 2


def test_prompt_reuse_gives_the_same_result_as_recomputing(tiny):
    frame = rng.random((40, 56, 3), dtype=np.float32)
    prompt = tiny.prompt(frame, task="derain")
    assert prompt.as_dict()["derain"] == 1.0
    np.testing.assert_allclose(tiny.restore(frame, prompt=prompt), tiny.restore(frame, task="derain"), atol=1e-5)
    # a prompt made from a task name alone works on any frame
    task_prompt = tiny.prompt("derain")
    assert tiny.restore(frame, prompt=task_prompt).shape == frame.shape
    with pytest.raises(ValueError):
        tiny.prompt("auto")


def test_submitted_batches_give_what_restore_gives(tiny):
    batches = [rng.integers(0, 256, (2, 40, 56, 3), dtype=np.uint8) for _ in range(2)]
    prompt = tiny.prompt(batches[0][0])
    pending = [tiny.submit(b, prompt=prompt) for b in batches]  # both queued before any result
    for p, batch in zip(pending, batches):
        result = p.result()
        assert result.dtype == np.uint8 and result.shape == batch.shape
        assert np.array_equal(result, tiny.restore(batch, prompt=prompt))
        assert p.result() is result


def test_untrained_models_are_refused_without_opt_in():
    # pip-restormer ships no weights: it loads only when the caller accepts random weights.
    with pytest.raises(pip_filters.UntrainedModelError, match="allow_untrained"):
        pip_filters.load("pip-restormer", device="cpu")
    with pytest.warns(UserWarning, match="untrained"):
        restorer = pip_filters.load("pip-restormer", device="cpu", allow_untrained=True)
    assert not restorer.trained


def test_out_of_memory_retries_with_smaller_tiles(tiny, monkeypatch):
    image = rng.random((300, 260, 3), dtype=np.float32)
    expected = tiny.restore(image, task="denoise", tile=144, overlap=32)
    forward = type(tiny.model).forward
    seen = []

    def small_memory(self, x, *args, **kwargs):
        seen.append(tuple(x.shape[-2:]))
        if max(x.shape[-2:]) > 160:  # pretend the accelerator only fits small tiles
            raise torch.cuda.OutOfMemoryError("out of memory (simulated)")
        return forward(self, x, *args, **kwargs)

    monkeypatch.setattr(type(tiny.model), "forward", small_memory)
    out = tiny.restore(image, task="denoise")
    assert out.shape == image.shape and max(seen[-1]) <= 160
    assert np.abs(out - expected).mean() < 0.01
